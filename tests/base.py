"""Shared test scaffolding."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from oslo_config import cfg

from telemetry_lib import opts


def wait_until(predicate, timeout=10.0, interval=0.005):
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


DATA_DIR = os.path.join(os.path.dirname(__file__), 'unit', 'data')


class TestCase(unittest.TestCase):
    """A test with its own ``ConfigOpts`` (never the global one) and a
    scratch directory removed afterwards.
    """

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        opts.register_all(self.conf)
        self.conf([], project='telemetry_lib')
        self.tmpdir = tempfile.mkdtemp(prefix='telemetry-lib-test-')
        self.addCleanup(shutil.rmtree, self.tmpdir, ignore_errors=True)
        self.conf.set_override('state_path', self.tmpdir)

    def write_file(self, name, text):
        path = os.path.join(self.tmpdir, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        return path

    def self_signed_cert(self, host='127.0.0.1'):
        """``(cert_file, key_file)`` of a fresh certificate for ``host``."""
        cert = os.path.join(self.tmpdir, 'cert.pem')
        key = os.path.join(self.tmpdir, 'key.pem')
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
             '-keyout', key, '-out', cert, '-days', '1',
             '-subj', '/CN=%s' % host, '-addext',
             'subjectAltName=IP:%s' % host],
            check=True, capture_output=True, timeout=60)
        return cert, key


def stored_measures(path):
    """Rows in an SQLite store's measure table; 0 while the agent has not
    made it yet. Read-only: a test must not create the file before the
    agent does.
    """
    import sqlite3
    if not os.path.exists(path):
        return 0
    try:
        db = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
        try:
            return db.execute('SELECT COUNT(*) FROM measure').fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0
