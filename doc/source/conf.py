# Sphinx configuration of the telemetry_lib documentation.

extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
    'openstackdocstheme',
]

openstackdocs_repo_name = 'openstack/telemetry_lib'
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
project = 'telemetry_lib'
copyright = 'telemetry_lib developers'
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'openstackdocs'
pygments_style = 'native'
autodoc_member_order = 'bysource'
