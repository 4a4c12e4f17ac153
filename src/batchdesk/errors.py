"""The two kinds of failure: what the environment did (KnownError) and bugs (everything else).

A KnownError carries one sentence a person can act on; the CLI prints it on stderr and exits 1,
the window shows it in a message. Any other exception is a bug and gets a traceback.
"""


class KnownError(Exception):
    """Something outside batchdesk went wrong: a server down, a disk full, a bad file or request."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(KnownError):
    """A request that can never succeed as asked: an unknown sort column, a too long description."""

    exit_code = 2


class NotFound(KnownError):
    """An unknown batch, job or pipeline."""


class DatabaseUnavailable(KnownError):
    """The database cannot be reached, or refused the connection."""


class AccessDenied(KnownError):
    """The database role lacks a right that what was asked needs (or its transactions are
    read-only); waiting does not help, the database's owner granting it does."""


class DatabaseProblem(KnownError):
    """The database server said no for a reason of its own: a full disk, a timeout its
    administrator set, a damaged table."""


class SchemaMismatch(KnownError):
    """The database schema is newer than this batchdesk, or missing where it must exist."""


class FileProblem(KnownError):
    """A file could not be read or written."""


class Cancelled(KnownError):
    """The user cancelled a long operation; nothing was left half done."""
