"""Which database a file store folder belongs to: a marker in the folder, an id in the database.

A machine whose path to the store is wrong (an empty mount point where the share should be
mounted, a `file_store_mapping` that points at another folder, another studio's store) must not
use what it finds there: it would write files no other machine can read, call every stored file
missing, and a garbage collector would take another database's files for unused ones. So the
folder carries a marker, `batchdesk-store.txt`, naming the store's id, and the database keeps
the same id (`studio_settings.file_store_id`); every use of the folder checks they agree.

The marker is written once, by `batchdesk db file-store PATH`. A store set before markers
existed has no id in the database and is used unchecked until that command is run again.
"""

import os
import uuid
from pathlib import Path

from batchdesk.storage.folder_store import (
    TEMPORARY_PREFIX,
    StoreUnavailable,
    publish,
    sync_folder,
)
from batchdesk.storage.pool import Connection
from batchdesk.storage.share_paths import SharePaths

MARKER_NAME = "batchdesk-store.txt"
_ID_KEY = "file_store_id"
_FIRST_WORDS = "batchdesk file store"


class WrongStore(StoreUnavailable):
    """The folder this machine reaches is not this database's file store."""


def expected_id(connection: Connection) -> str | None:
    """Return the id the database gives its file store, or None for a store set before ids."""
    row = connection.execute(
        "SELECT value FROM studio_settings WHERE key = %s", (_ID_KEY,)
    ).fetchone()
    return None if row is None else str(row[0])


def check(connection: Connection, root: Path, paths: SharePaths | None = None) -> None:
    """Raise WrongStore with a sentence unless `root` is this database's file store."""
    wanted = expected_id(connection)
    if wanted is None:
        return
    found = read_marker(root)
    if found == wanted:
        return
    if found is None:
        raise WrongStore(
            f"The folder {root} is not this studio's file store (it has no {MARKER_NAME}): "
            f"is the share mounted on this machine{_mapping_hint(paths)}?"
        )
    raise WrongStore(
        f"The folder {root} is another batchdesk database's file store (its {MARKER_NAME} "
        f"names store {found or 'unknown'}, this database's is {wanted}): check where this "
        "machine mounts the share and its file_store_mapping."
    )


def claim(connection: Connection, root: Path) -> str:
    """Mark `root` as this database's file store (in the caller's transaction); return its id.

    A folder already marked for this database is left as it is; one marked for another is
    refused, so two databases never share (and garbage-collect) one store.
    """
    wanted = expected_id(connection)
    store = wanted or str(uuid.uuid4())
    found = _write_marker(root, store)
    if found != store:
        raise WrongStore(
            f"The folder {root} is already another batchdesk database's file store (its "
            f"{MARKER_NAME} names store {found or 'unknown'}); choose another folder for this one."
        )
    connection.execute(
        "INSERT INTO studio_settings (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_ID_KEY, store),
    )
    return store


def read_marker(root: Path) -> str | None:
    """Return the store id the folder's marker names, or None when there is no marker."""
    try:
        first_line = (root / MARKER_NAME).read_text(encoding="utf-8").partition("\n")[0]
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreUnavailable(f"Cannot read {root / MARKER_NAME}: {exc}.") from exc
    words = first_line.removeprefix(_FIRST_WORDS).split()
    return words[0] if first_line.startswith(_FIRST_WORDS) and words else ""  # "": not ours


def _write_marker(root: Path, store: str) -> str:
    """Give the folder its marker unless it has one; return the id the marker then names."""
    text = (
        f"{_FIRST_WORDS} {store}\n"
        "\n"
        "This folder holds the image files of a batchdesk database, each named by its sha256.\n"
        "Do not rename, edit or delete files here: `batchdesk db gc` removes the unused ones.\n"
        "Back this folder up together with the database.\n"
    )
    marker = root / MARKER_NAME
    temporary = root / f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
    try:
        with temporary.open("x", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        publish(temporary, marker)  # never replaces a marker written meanwhile
        sync_folder(root)
    except OSError as exc:
        raise StoreUnavailable(f"Cannot write {marker}: {exc.strerror or exc}.") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return read_marker(root) or ""


def _mapping_hint(paths: SharePaths | None) -> str:
    mapping = paths.describe() if paths else None
    if mapping:
        return f", and does this machine's file_store_mapping ({mapping}) point at the right place"
    return ", or does this machine need a file_store_mapping to where it mounts the share"
