#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""The exception family of telemetry_lib.

Every error the library raises on purpose is a :class:`TelemetryError`, so a
host application can catch one class. Load-time errors (configuration, URLs,
plugins) carry a message meant for an operator: it names the file, line,
option or field and says what was expected.
"""

from telemetry_lib import masking

#: Longest text an error message carries from its input (a value quoted
#: back to the operator): a 72 MB YAML value must not become a 72 MB line.
MAX_ECHO = 400


def brief(text, limit=MAX_ECHO):
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return '%s... (%d characters in all)' % (text[:limit], len(text))


class TelemetryError(Exception):
    """Base class of every error telemetry_lib raises on purpose.

    Its message is bounded and has whatever may be a password masked: it
    goes to logs, to a CLI's output and to ``/healthz``.
    """

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (masking.redact(brief(args[0], 3 * MAX_ECHO)),) + args[1:]
        super().__init__(*args)


class ConfigError(TelemetryError):
    """A configuration file or option is invalid.

    :param message: what is wrong and what was expected.
    :param path: the file, when the error comes from one.
    :param line: 1-based line in ``path``, when known.
    :param where: the element inside the file (``source 'meter_source'``).
    :param field: the field inside that element.
    """

    def __init__(self, message, path=None, line=None, where=None,
                 field=None):
        self.reason = brief(message)
        self.path = path
        self.line = line
        self.where = where
        self.field = field
        super().__init__(self._render())

    def _render(self):
        location = ''
        if self.path:
            location = brief(self.path, 200)
            if self.line is not None:
                location += ':%d' % self.line
            location += ': '
        subject = ''
        if self.where:
            subject = brief(self.where, 300)
            if self.field:
                subject += ", field '%s'" % self.field
            subject += ': '
        elif self.field:
            subject = "field '%s': " % self.field
        # Whatever the message quotes -- a URL that did not parse, a line
        # of a file -- a password in it is masked.
        return masking.redact(location + subject + self.reason)


class ConfigErrors(ConfigError):
    """Several problems in one file; ``problems`` lists them, ``str()``
    gives one line each.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.reason, first.path, first.line, first.where,
                         first.field)

    def __str__(self):
        return '\n'.join(str(p) for p in self.problems)


class InvalidURL(ConfigError):
    """A publisher or storage URL cannot be parsed or has a bad option."""


class PluginLoadError(ConfigError):
    """No plugin of that name exists, or it failed to load."""


class InvalidSample(TelemetryError, ValueError):
    """A sample, event or trait has a field of the wrong type or value."""

    def __init__(self, message):
        super().__init__(brief(message))


class PublishError(TelemetryError):
    """A publisher could not deliver a batch, or part of one.

    :param message: what happened, without the payload.
    :param items: indexes into the batch of the items this error concerns;
        ``None`` means the whole batch. The other items of the batch count as
        delivered, so a publisher that knows which items failed never makes
        the good ones pay for the bad.
    """

    def __init__(self, message, items=None):
        super().__init__(message)
        self.items = None if items is None else tuple(items)


class RetryableError(PublishError):
    """The delivery may succeed later: a timeout, a 5xx, a dropped peer.

    :param retry_after: seconds the peer asked us to wait, if it said.
    :param permanent_items: indexes of items of the same batch that failed
        for good (a peer that rejected some messages and released others);
        they are dropped and counted, not retried.
    """

    def __init__(self, message, items=None, retry_after=None,
                 permanent_items=()):
        super().__init__(message, items)
        self.retry_after = retry_after
        self.permanent_items = tuple(permanent_items)


class PermanentError(PublishError):
    """Sending the same items again can never succeed (a 4xx, bad data)."""


class StorageError(TelemetryError):
    """A storage driver could not write or answer a query.

    :param retryable: whether the same call may succeed later (a locked
        database, a peer down), as opposed to bad input.
    """

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.retryable = retryable


class NotFound(StorageError):
    """What a query names does not exist: ``kind`` says what
    (``resource``, ``metric``, ``aggregation``).
    """

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


class InvalidQuery(StorageError):
    """A query the driver can never answer: a bad aggregation, granularity
    or time range. Not retryable.
    """

    def __init__(self, message):
        super().__init__(message, retryable=False)


class StorageUnavailable(StorageError):
    """The backend cannot be reached or is not ready (a peer down, a locked
    database): the same call may succeed later.
    """

    def __init__(self, message, retryable=True):
        super().__init__(message, retryable=retryable)


class PollsterError(TelemetryError):
    """A pollster could not read what it measures this time (a daemon
    down, a peer unreachable): counted and logged as one line by the
    agent, which polls again at the next interval.
    """
