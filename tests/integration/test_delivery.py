"""Delivery to a folder: the batch as the zip would hold it, each file whole, once per batch."""

import csv
import threading
from pathlib import Path

import psycopg
import pytest

from batchdesk.errors import Cancelled
from batchdesk.export.delivery import AutoDelivery, DeliveryEvent
from batchdesk.export.folder_export import deliver_batch
from batchdesk.export.transfer import ExportProgress
from batchdesk.storage import deliveries
from batchdesk.storage.database import Database
from tests.factories import make_batch, make_png
from tests.integration.jobs_support import run_all_jobs, submit_paths


def delivered_at(conninfo: str, name: str) -> tuple[object, object]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT delivered_at, delivered_to FROM batches WHERE base_directory_name = %s",
            (name,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_batch_is_delivered_to_its_base_directory(database: Database, tmp_path: Path) -> None:
    name = make_batch(database, tmp_path / "in", count=3).batches[0].base_directory_name
    run_all_jobs(database)

    summary = deliver_batch(database, name, tmp_path / "deliveries")

    folder = tmp_path / "deliveries" / name
    assert summary.path == folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "PL_DXB191_view0.png",
        "PL_DXB192_view1.png",
        "PL_DXB193_view2.png",
        "manifest.csv",
    ]
    for source in (tmp_path / "in").iterdir():
        assert (folder / source.name).read_bytes() == source.read_bytes()
    with (folder / "manifest.csv").open(encoding="utf-8-sig", newline="") as stream:
        assert [row["status"] for row in csv.DictReader(stream)] == ["completed"] * 3


def test_delivering_again_replaces_the_same_files_and_leaves_others(
    database: Database, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=1).batches[0].base_directory_name
    run_all_jobs(database)
    deliver_batch(database, name, tmp_path / "out")
    folder = tmp_path / "out" / name
    (folder / "PL_DXB191_view0.png").write_bytes(b"damaged")
    (folder / "notes.txt").write_text("the client's own file")

    deliver_batch(database, name, tmp_path / "out")

    assert (folder / "PL_DXB191_view0.png").read_bytes() == (
        tmp_path / "in" / "PL_DXB191_view0.png"
    ).read_bytes()
    assert (folder / "notes.txt").read_text() == "the client's own file"


def test_auto_delivery_writes_each_completed_batch_once(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    first = make_batch(database, tmp_path / "a", count=2, seed=1).batches[0].base_directory_name
    second = make_batch(database, tmp_path / "b", count=1, seed=9).batches[0]
    waiting = make_png(tmp_path / "c" / "QX_ABC1_x.png")
    run_all_jobs(database)
    queued = submit_paths(database, [waiting])  # not run: not completed, not delivered
    events: list[DeliveryEvent] = []
    delivery = AutoDelivery(database, tmp_path / "out", on_event=events.append)

    delivered = delivery.deliver_pending()

    assert sorted(s.batch for s in delivered) == sorted([first, second.base_directory_name])
    assert [e.kind for e in events] == ["delivered", "delivered"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [first, second.base_directory_name]
    )
    when, where = delivered_at(database_conninfo, first)
    assert when is not None
    assert where == str(tmp_path / "out" / first)
    assert delivered_at(database_conninfo, queued) == (None, None)
    assert delivery.deliver_pending() == []  # nothing twice


def test_batches_completed_before_the_look_back_window_are_left_alone(
    database: Database, tmp_path: Path
) -> None:
    make_batch(database, tmp_path / "in", count=1)
    run_all_jobs(database)
    delivery = AutoDelivery(database, tmp_path / "out", lookback_seconds=0.000_001)

    assert delivery.deliver_pending() == []
    assert not (tmp_path / "out").exists()


def test_two_deliverers_never_write_the_same_batch(database: Database, tmp_path: Path) -> None:
    batch = make_batch(database, tmp_path / "in", count=1).batches[0]
    run_all_jobs(database)
    holding = threading.Event()
    release = threading.Event()

    def hold_the_claim() -> None:
        with deliveries.claimed(database, batch.id) as mine:
            assert mine
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_claim)
    holder.start()
    try:
        assert holding.wait(30)
        other = AutoDelivery(database, tmp_path / "other")
        assert other.deliver_pending() == []
    finally:
        release.set()
        holder.join()
    assert not (tmp_path / "other").exists()
    assert [s.batch for s in other.deliver_pending()] == [batch.base_directory_name]


def test_a_failed_delivery_is_reported_and_tried_again_later(
    database: Database, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=1).batches[0].base_directory_name
    run_all_jobs(database)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the delivery folder should be")
    events: list[DeliveryEvent] = []
    delivery = AutoDelivery(database, blocked, retry_after=3600, on_event=events.append)

    assert delivery.deliver_pending() == []
    assert delivery.deliver_pending() == []  # not hammered: waits for retry_after

    assert [(e.kind, e.batch) for e in events] == [("failed", name)]
    assert f"{blocked} is a file, not a folder" in events[0].message
    blocked.unlink()
    delivery.retry_after = 0
    assert [s.batch for s in delivery.deliver_pending()] == [name]


def test_the_delivery_thread_delivers_what_completes_while_it_runs(
    database: Database, tmp_path: Path
) -> None:
    delivered = threading.Event()
    delivery = AutoDelivery(
        database,
        tmp_path / "out",
        interval=0.1,
        on_event=lambda e: delivered.set() if e.kind == "delivered" else None,
    )
    delivery.start()
    try:
        make_batch(database, tmp_path / "in", count=1)
        run_all_jobs(database)
        assert delivered.wait(30)
    finally:
        delivery.stop()


def test_a_delivery_by_hand_is_recorded_and_auto_delivery_then_skips_the_batch(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=2).batches[0].base_directory_name
    run_all_jobs(database)

    deliver_batch(database, name, tmp_path / "by-hand")

    when, where = delivered_at(database_conninfo, name)
    assert when is not None
    assert where == str(tmp_path / "by-hand" / name)
    assert AutoDelivery(database, tmp_path / "auto").deliver_pending() == []
    assert not (tmp_path / "auto").exists()


def test_a_batch_delivered_by_hand_before_it_completed_is_delivered_when_it_completes(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=1).batches[0].base_directory_name
    deliver_batch(database, name, tmp_path / "by-hand")  # queued: only manifest.csv
    assert delivered_at(database_conninfo, name)[0] is not None
    run_all_jobs(database)

    delivered = AutoDelivery(database, tmp_path / "auto").deliver_pending()

    assert [s.batch for s in delivered] == [name]
    assert (tmp_path / "auto" / name / "PL_DXB191_view0.png").is_file()


def test_the_batch_folder_appears_only_when_whole_with_its_manifest(
    database: Database, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=3).batches[0].base_directory_name
    run_all_jobs(database)
    target = tmp_path / "out" / name
    seen_while_writing: list[list[str]] = []

    def look(_progress: ExportProgress) -> None:
        seen_while_writing.append(sorted(p.name for p in (tmp_path / "out").iterdir()))

    deliver_batch(database, name, tmp_path / "out", progress=look)

    assert seen_while_writing
    assert all(name not in seen for seen in seen_while_writing)  # not there until complete
    assert all(seen[0].startswith(f".{name}.partial-") for seen in seen_while_writing if seen)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [name]
    assert (target / "manifest.csv").is_file()


def test_a_partial_folder_left_by_a_killed_delivery_is_removed_by_the_next_one(
    database: Database, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=1).batches[0].base_directory_name
    run_all_jobs(database)
    left = tmp_path / "out" / f".{name}.partial-1a2b3c4d"  # as a SIGKILLed deliverer leaves it
    left.mkdir(parents=True)
    (left / "PL_DXB191_view0.png").write_bytes(b"half a fi")
    other = tmp_path / "out" / ".PL_DXB_2020-01-01_batch-1.partial-1a2b3c4d"  # another batch's
    other.mkdir()

    deliver_batch(database, name, tmp_path / "out")

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [other.name, name]


def test_a_cancelled_delivery_leaves_nothing_and_records_nothing(
    database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    name = make_batch(database, tmp_path / "in", count=3).batches[0].base_directory_name
    run_all_jobs(database)
    progressed = threading.Event()

    with pytest.raises(Cancelled, match=rf"^Delivery of {name} cancelled; nothing was left in "):
        deliver_batch(
            database,
            name,
            tmp_path / "out",
            progress=lambda _p: progressed.set(),
            cancelled=progressed.is_set,
        )

    assert list((tmp_path / "out").iterdir()) == []
    assert delivered_at(database_conninfo, name) == (None, None)
