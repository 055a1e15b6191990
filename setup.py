import setuptools

setuptools.setup(
    setup_requires=['pbr>=5.8.0'],
    pbr=True,
    # The compiled twin of formats.ceilometer's signed JSON and msgpack
    # paths. Optional:
    # without a C compiler the package installs and runs the pure-Python
    # path, which gives the same bytes (tests/unit/test_cwire.py).
    ext_modules=[setuptools.Extension(
        'telemetry_lib.formats._cwire', ['telemetry_lib/formats/_cwire.c'],
        depends=['telemetry_lib/formats/_cwire_msgpack.h'],
        extra_compile_args=['-O2'], optional=True)])
