"""Database passwords in the OS keyring, so that no file of batchdesk ever holds one.

A password typed into the settings dialog is stored under the service "batchdesk" with a key
that names the connection without its password: `user@host:port/dbname`, with the parts the
connection string leaves out filled in the way `~/.pgpass` matches them (libpq's defaults and
the `PG*` variables), so `postgresql://anna@db/x` and `postgresql://anna@db:5432/x` share one
password. A connection string that carries its own password, or a machine without a usable
keyring (a headless render node), simply goes on to libpq as it is: `~/.pgpass` still works.
"""

import getpass
import logging
import os

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from batchdesk.errors import KnownError
from batchdesk.storage import conninfo as conninfo_text

log = logging.getLogger(__name__)

SERVICE = "batchdesk"
_DEFAULT_PORT = "5432"


def credential_key(conninfo: str) -> str:
    """Return the keyring key for `conninfo`: `user@host:port/dbname`, never the password.

    A `service=` entry without a host is keyed by the service name, as the service file
    decides the rest.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo_text.normalise(conninfo)).items()}
    if "service" in params and "host" not in params and "hostaddr" not in params:
        return f"service={params['service']}"
    user = params.get("user") or os.environ.get("PGUSER") or _login_name()
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    if host.startswith("/"):
        host = "localhost"  # ~/.pgpass also names every Unix socket "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or _DEFAULT_PORT
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    return f"{user}@{host}:{port}/{dbname}"


def store_password(conninfo: str, password: str) -> None:
    """Keep `password` in the keyring for `conninfo`.

    Raises:
        KnownError: no keyring is usable here, or it refused; the sentence never holds the
            password.
    """
    import keyring.errors  # here, not at the top: a few dozen ms that most starts never need

    key = credential_key(conninfo)
    try:
        keyring.set_password(SERVICE, key, password)
    except keyring.errors.NoKeyringError as exc:
        raise KnownError(
            "This computer has no keyring to keep the database password in: "
            "put it in ~/.pgpass instead."
        ) from exc
    except keyring.errors.KeyringError as exc:
        raise KnownError(
            f"The keyring refused to keep the password for {key} ({type(exc).__name__}): "
            "unlock it and try again, or put the password in ~/.pgpass."
        ) from exc
    log.info("stored the database password for %s in the keyring", key)


def forget_password(conninfo: str) -> None:
    """Remove the keyring's password for `conninfo`; nothing stored, or no keyring, is fine."""
    import keyring.errors

    key = credential_key(conninfo)
    try:
        keyring.delete_password(SERVICE, key)
    except keyring.errors.PasswordDeleteError:
        return  # there was none
    except keyring.errors.NoKeyringError:
        log.debug("no keyring backend is usable; nothing to forget for %s", key)
        return
    log.info("removed the database password for %s from the keyring", key)


def stored_password(conninfo: str) -> str | None:
    """Return the keyring's password for `conninfo`, or None (also when there is no keyring)."""
    import keyring.errors

    key = credential_key(conninfo)
    try:
        return keyring.get_password(SERVICE, key)
    except keyring.errors.NoKeyringError:
        log.debug("no keyring backend is usable; the password for %s comes from libpq", key)
    except Exception as exc:  # a third-party backend's own error types (D-Bus, KWallet)
        # A locked or broken desktop keyring must not stop the connection: libpq may still
        # find a password in ~/.pgpass, and if not it says so in a sentence.
        log.warning("could not read the keyring for %s: %s", key, type(exc).__name__)
    return None


def conninfo_with_keyring_password(conninfo: str) -> str:
    """Return `conninfo` with the keyring's password added when it has none of its own.

    Unchanged when the connection string carries a password, the keyring holds none for it,
    or no keyring is usable. The result holds a password: hand it to libpq, never show it.
    """
    if conninfo_text.has_password(conninfo):
        return conninfo
    password = stored_password(conninfo)
    if password is None:
        return conninfo
    return make_conninfo(conninfo_text.normalise(conninfo), password=password)


def password_in(conninfo: str) -> str | None:
    """Return the password written into `conninfo` itself, or None."""
    value = conninfo_to_dict(conninfo_text.normalise(conninfo)).get("password")
    return str(value) if value else None


def conninfo_with_password(conninfo: str, password: str) -> str:
    """Return `conninfo` with `password` (replacing any it has), for a one-off connection."""
    return make_conninfo(conninfo_text.normalise(conninfo), password=password)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return ""
