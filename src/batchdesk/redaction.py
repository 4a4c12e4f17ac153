"""Passwords out of every text batchdesk writes: logs, stderr, crash reports, dialogs.

A connection string can reach an error message or a traceback in any of libpq's forms (a URL, a
URL's query, key=value, a repr of a mapping); each is rewritten with `***` for the password.
The window's log and crash reports and the command line's `cli.log` use the same formatter.
"""

import logging
import re

# postgresql://anna:secret@db -> postgresql://anna:***@db (any scheme; '/' cannot be in it).
_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]*@", re.IGNORECASE)
# ?sslmode=require&password=secret in a URL's query.
_QUERY_PASSWORD = re.compile(r"(?P<keep>[?&]password=)[^&\s'\"#]*", re.IGNORECASE)
# libpq's key=value form (also PGPASSWORD=...): a quoted value, or a bare one up to a space.
_CONNINFO_PASSWORD = re.compile(
    r"(?<![?&])(?P<keep>password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|(?:[^\s'\"\\]|\\.)+)", re.IGNORECASE
)
# {'password': 'secret'} in a repr, "password": "secret" in JSON.
_MAPPING_PASSWORD = re.compile(
    r"(?P<keep>['\"]password['\"]\s*:\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Return `text` with every database password it holds replaced by `***`."""
    text = _URL_PASSWORD.sub(r"\g<keep>***@", text)
    text = _QUERY_PASSWORD.sub(r"\g<keep>***", text)
    text = _CONNINFO_PASSWORD.sub(r"\g<keep>***", text)
    return _MAPPING_PASSWORD.sub(r"\g<keep>'***'", text)


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, traceback included (a filter sees only the message)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
