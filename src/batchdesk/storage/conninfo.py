"""Connection strings: accept what libpq accepts, and never show a password.

batchdesk hands connection strings to libpq unchanged, so everything PostgreSQL users know works:
`postgresql://` URLs, `key=value` strings, `service=` entries, and for whatever the string leaves
out the `PG*` environment variables and `~/.pgpass`.
"""

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.errors import ProgrammingError

from batchdesk.errors import InvalidRequest

# SQLAlchemy spells the driver into the scheme; libpq knows only the plain schemes.
_SQLALCHEMY_SCHEMES = ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres+psycopg://")


def normalise(conninfo: str) -> str:
    """Return `conninfo` in a form libpq accepts, or raise InvalidRequest saying why not."""
    text = conninfo.strip()
    for scheme in _SQLALCHEMY_SCHEMES:
        if text.startswith(scheme):
            text = "postgresql://" + text[len(scheme) :]
            break
    try:
        conninfo_to_dict(text)
    except ProgrammingError as exc:
        # libpq's message can quote the string back, password included: do not repeat it.
        raise InvalidRequest(
            "The database URL is not valid: use postgresql://USER@HOST:PORT/DATABASE "
            "or libpq's key=value form."
        ) from exc
    return text


def describe(conninfo: str) -> str:
    """Return `user@host:port/dbname` for display, filling gaps with what libpq would use."""
    params = {k: str(v) for k, v in conninfo_to_dict(normalise(conninfo)).items()}
    if "service" in params and "host" not in params:
        return f"service {params['service']}"
    user = params.get("user", "")
    host = params.get("host", "") or "local socket"
    if host.startswith("/"):
        host = "socket " + host
    port = params.get("port", "")
    dbname = params.get("dbname", "")
    where = host + (f":{port}" if port else "")
    return (f"{user}@" if user else "") + where + (f"/{dbname}" if dbname else "")


def has_password(conninfo: str) -> bool:
    return "password" in conninfo_to_dict(normalise(conninfo))


def strip_password(conninfo: str) -> str:
    """Return the same connection without its password, in libpq's key=value form if changed."""
    params = conninfo_to_dict(normalise(conninfo))
    if "password" not in params:
        return conninfo
    del params["password"]
    return make_conninfo("", **params)
