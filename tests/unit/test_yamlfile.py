"""The one YAML loader: bounded against hostile files."""

import resource
import time

from telemetry_lib import ConfigError
from telemetry_lib import yamlfile
from tests import base

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + \
    ''.join('%s: &%s [%s]\n' % (b, b, ','.join(['*' + a] * 9))
            for a, b in zip('abcdefgh', 'bcdefghi'))


class TestBounds(base.TestCase):

    def test_billion_laughs_is_refused_fast_and_small(self):
        path = self.write_file('bomb.yaml', BOMB)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        with self.assertRaises(ConfigError) as ctx:
            yamlfile.load(path)
        assert time.monotonic() - started < 1.0
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    - before) / 1024.0
        assert grown_mb < 20, grown_mb
        assert 'aliases' in str(ctx.exception) and path in str(ctx.exception)

    def test_a_few_aliases_are_fine(self):
        path = self.write_file('ok.yaml', 'a: &x [1, 2]\nb: *x\nc: *x\n')
        assert yamlfile.load(path) == {'a': [1, 2], 'b': [1, 2],
                                       'c': [1, 2]}

    def test_deep_nesting_and_size(self):
        path = self.write_file('deep.yaml', '[' * 200 + ']' * 200)
        with self.assertRaises(ConfigError) as ctx:
            yamlfile.load(path)
        assert 'nested' in str(ctx.exception)
        big = self.write_file('big.yaml',
                              '# x\n' * (yamlfile.MAX_BYTES // 4 + 10))
        with self.assertRaises(ConfigError) as ctx:
            yamlfile.load(big)
        assert 'larger than' in str(ctx.exception)

    def test_lines_are_remembered_and_errors_say_where(self):
        path = self.write_file('x.yaml', 'a: 1\nb:\n  c: 2\n')
        data = yamlfile.load(path)
        assert data.line == 1 and data['b'].line == 3
        path = self.write_file('bad.yaml', 'a: [1,\nb: 2\n')
        with self.assertRaises(ConfigError) as ctx:
            yamlfile.load(path)
        assert str(ctx.exception).startswith(path + ':')
        assert len(str(ctx.exception).splitlines()) == 1

    def test_hostile_values_are_one_line_naming_the_file(self):
        # Issue 20 item 1: these escaped as other exceptions (a NUL byte
        # from the reader, built before the try; int()'s digit limit; an
        # unhashable key).
        for name, text, where in (
                ('nul.yaml', 'a: 1\npublishers: ["file:///tmp/x\0y"]\n',
                 ':2: '),
                ('ctl.yaml', 'a: "\x01"\n', ':1: '),
                ('digits.yaml', 'a: %s\n' % ('9' * 5000), ': '),
                ('key.yaml', '{a: 1}: 2\n', ':1: '),
                ('listkey.yaml', '? [1, 2]\n: 2\n', ':1: ')):
            path = self.write_file(name, text)
            with self.assertRaises(ConfigError) as ctx:
                yamlfile.load(path)
            message = str(ctx.exception)
            assert message.startswith(path + where), message
            assert len(message.splitlines()) == 1, message
            assert len(message) < 300, message
