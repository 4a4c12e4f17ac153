"""The `batchdesk` command line end to end: real processes on a fresh BATCHDESK_HOME.

The command line is a contract (DESIGN.md, "Command line"): scripts rely on its exit codes (0
success, 1 failure, 2 usage), on every error being one sentence on stderr, and on `--json`
printing JSON and nothing else. Every command here runs as `python -m batchdesk` in a process of
its own, with no database configured and no libpq variables, so the embedded server is used
unless a test names a server with `--database-url` or BATCHDESK_DATABASE_URL.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from batchdesk import __version__
from batchdesk.storage.migrations_runner import head_revision
from batchdesk.storage.submission import MAX_DESCRIPTION_LENGTH
from tests.e2e.processes import COMMAND_TIMEOUT, Run, environment_for, run_together
from tests.factories import make_png

SERVER_URL = os.environ.get("BATCHDESK_TEST_DATABASE_URL")
NO_SERVER = (
    "BATCHDESK_TEST_DATABASE_URL is not set, so there is no PostgreSQL server to point "
    "--database-url at (CI always sets it)"
)
SECRET = "s3cret-pw"

STATS_KEYS = {
    # The original system's dashboard figures...
    "total_batches",
    "queued",
    "processing",
    "completed",
    "failed",
    "total_files_all_time",
    "avg_files_per_batch",
    "max_files_in_batch",
    # ...plus the statuses the original lacked.
    "cancelled",
    "paused",
}
SUBMITTED_BATCH_KEYS = {
    "id",
    "base_directory_name",
    "customer_prefix",
    "batch_date",
    "batch_counter",
    "render_description",
    "pipeline",
    "pipeline_version",
    "total_files",
    "total_size",
    "status",
}
BATCH_TABLE_FIELDS = SUBMITTED_BATCH_KEYS | {
    "queued_count",
    "processing_count",
    "completed_count",
    "failed_count",
    "cancelled_count",
    "created_at",
    "updated_at",
    "completed_at",
    "finished_at",
    "created_by",
    "dropbox_path",
    "monday_item_id",
}
JOB_TABLE_FIELDS = {
    "id",
    "batch_id",
    "position",
    "file_name",
    "status",
    "pipeline",
    "attempts",
    "max_attempts",
    "last_error",
    "worker",
    "heartbeat_at",
    "run_after",
    "created_at",
    "started_at",
    "finished_at",
}

# Another batchdesk process, as an open window would be: it keeps the embedded server running
# between the commands of this module, so each command attaches in milliseconds instead of
# starting and stopping the server (test_embedded_server.py covers starting and stopping).
KEEPER_CODE = """
import sys
from batchdesk.app import open_app
with open_app() as app:
    print(app.database.conninfo, flush=True)
    sys.stdin.read()
"""

_names = itertools.count()


class Cli:
    """Runs `python -m batchdesk` on one BATCHDESK_HOME, with stdin that is not a terminal."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = environment_for(home)
        self.first_run: Run | None = None
        self.embedded_url = ""

    @property
    def pgdata(self) -> Path:
        return self.home / "data" / "postgres"

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> Run:
        [result] = self.run_together(args, env=env)
        return result

    def run_together(
        self, *commands: Sequence[str | Path], env: dict[str, str] | None = None
    ) -> list[Run]:
        """Start every command at once (they must not depend on each other); return their runs."""
        return run_together(self.home, *commands, env=env)


@pytest.fixture(scope="module")
def cli() -> Iterator[Cli]:
    """A fresh BATCHDESK_HOME; its very first command, `stats --json`, is kept as `first_run`."""
    # Short, under /tmp: the server's socket lives in the data directory and socket paths are
    # limited to about 100 characters; the server's own user must be able to traverse it.
    home = Path(tempfile.mkdtemp(prefix="bd-"))
    cli = Cli(home)
    cli.first_run = cli.run("stats", "--json")
    keeper = subprocess.Popen(
        [sys.executable, "-c", KEEPER_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=home,
    )
    try:
        assert keeper.stdout is not None
        cli.embedded_url = keeper.stdout.readline().strip()
        assert cli.embedded_url, "the process keeping the embedded server open did not start"
        yield cli
    finally:
        with keeper:
            try:
                keeper.communicate(timeout=COMMAND_TIMEOUT)  # its stdin closes: it lets go
            except subprocess.TimeoutExpired:
                keeper.kill()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def scratch_conninfo(cli: Cli) -> Iterator[str]:
    """A new, empty database on the embedded server, for `--database-url` (libpq key=value)."""
    name = f"scratch_{next(_names)}"
    admin = make_conninfo(cli.embedded_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(admin, dbname=name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def assert_one_sentence(run: Run, exit_code: int) -> str:
    """Check that `run` failed with `exit_code` and one line on stderr, and return that line."""
    assert run.returncode == exit_code, run
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert run.stdout == "", run
    return lines[0]


def make_renders(folder: Path, prefix: str, count: int, seed: int = 0) -> list[Path]:
    """Write `count` PNG renders named like a customer's, e.g. PL_DXB191_view0.png."""
    return [
        make_png(folder / f"{prefix}{191 + i}_view{i}.png", seed=seed + i) for i in range(count)
    ]


def submit_one(
    cli: Cli,
    *args: str | Path,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Submit with --json and return the one batch created."""
    options = ["--database-url", database_url] if database_url else []
    run = cli.run(*options, "submit", "--json", *args, env=env)
    assert run.returncode == 0, run
    [batch] = run.json()["batches"]
    return batch  # type: ignore[no-any-return]


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["base_directory_name"] for row in rows]


# --- Starting from nothing ---------------------------------------------------------------------


def test_the_first_command_on_an_empty_home_creates_the_embedded_database(cli: Cli) -> None:
    first = cli.first_run
    assert first is not None
    assert first.returncode == 0, first
    [message] = first.stderr.splitlines()
    assert "Creating the embedded database" in message
    assert str(cli.pgdata) in message
    assert first.json()["total_batches"] == 0

    status = cli.run("db", "status", "--json")
    assert status.returncode == 0, status
    assert "Creating" not in status.stderr
    report = status.json()
    assert report["embedded"] is True
    assert str(cli.pgdata) in report["database"]
    assert report["up_to_date"] is True
    assert report["current_revision"] == report["head_revision"] == head_revision()


def test_db_status_in_plain_words_names_the_embedded_database_and_its_revision(cli: Cli) -> None:
    status = cli.run("db", "status")
    assert status.returncode == 0, status
    assert status.stdout.splitlines() == [
        f"Database: embedded database in {cli.pgdata} (embedded)",
        f"Schema: up to date (revision {head_revision()})",
        "Files: New files are kept in the database.",
    ]


def test_version_prints_the_program_version(cli: Cli) -> None:
    run = cli.run("--version")
    assert run.returncode == 0, run
    assert run.stdout == f"batchdesk {__version__}\n"


# --- submit ------------------------------------------------------------------------------------


def test_submit_creates_a_batch_and_names_each_skipped_file_on_stderr(
    cli: Cli, tmp_path: Path
) -> None:
    renders = tmp_path / "renders"
    pngs = make_renders(renders, "SB_PLAIN", 2)
    notes = renders / "notes.txt"
    notes.write_text("not an image")
    empty = renders / "SB_PLAIN999_empty.png"
    empty.touch()

    run = cli.run("submit", "-d", "Spring catalogue", renders)

    assert run.returncode == 0, run
    [created] = run.stdout.splitlines()
    match = re.fullmatch(
        r"Created (SB_PLAIN_\d{4}-\d\d-\d\d_batch-1): 2 files, .+, pipeline original "
        r"\(id ([0-9a-f-]{36})\)",
        created,
    )
    assert match, created
    skipped = run.stderr.splitlines()
    assert len(skipped) == 2, run.stderr
    assert any(line.startswith(f"Skipped {notes}: ") for line in skipped), skipped
    assert any(line.startswith(f"Skipped {empty}: ") for line in skipped), skipped

    shown = cli.run("show", match[1], "--json").json()
    assert shown["id"] == match[2]
    assert shown["render_description"] == "Spring catalogue"
    assert shown["total_files"] == 2
    assert shown["total_size"] == sum(png.stat().st_size for png in pngs)
    assert [job["file_name"] for job in shown["jobs"]] == [png.name for png in pngs]


def test_submit_json_describes_the_batch_with_the_table_field_names(
    cli: Cli, tmp_path: Path
) -> None:
    pngs = make_renders(tmp_path, "SB_JSON", 3)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")

    run = cli.run("submit", "--json", "-d", "Hero shots", *pngs, notes)

    assert run.returncode == 0, run
    result = run.json()
    assert set(result) == {"batches", "skipped", "warnings"}
    [batch] = result["batches"]
    assert set(batch) == SUBMITTED_BATCH_KEYS
    assert batch["customer_prefix"] == "SB_JSON"
    assert batch["base_directory_name"] == (
        f"SB_JSON_{batch['batch_date']}_batch-{batch['batch_counter']}"
    )
    assert batch["render_description"] == "Hero shots"
    assert batch["pipeline"] == "original"
    assert batch["total_files"] == 3
    assert batch["total_size"] == sum(png.stat().st_size for png in pngs)
    assert batch["status"] == "queued"
    assert [entry["path"] for entry in result["skipped"]] == [str(notes)]
    assert "PNG" in result["skipped"][0]["reason"]
    assert result["warnings"] == []
    assert run.stderr == ""  # the skipped file is reported in the JSON, not beside it


def test_submit_of_mixed_prefixes_warns_and_makes_one_batch_named_after_the_first(
    cli: Cli, tmp_path: Path
) -> None:
    make_renders(tmp_path, "MX_ALPHA", 2)
    make_renders(tmp_path, "MX_BETA", 1)

    run = cli.run("submit", tmp_path)

    assert run.returncode == 0, run
    [warning] = run.stderr.splitlines()
    assert warning.startswith("Warning: ")
    assert "2 customer prefixes" in warning
    assert "MX_BETA" in warning
    assert "--split-by-prefix" in warning
    [created] = run.stdout.splitlines()
    assert created.startswith("Created MX_ALPHA_")
    assert ": 3 files," in created


def test_submit_split_by_prefix_makes_one_batch_per_customer(cli: Cli, tmp_path: Path) -> None:
    make_renders(tmp_path, "SP_ALPHA", 2)
    make_renders(tmp_path, "SP_BETA", 1)

    run = cli.run("submit", "--json", "--split-by-prefix", tmp_path)

    assert run.returncode == 0, run
    result = run.json()
    assert {(b["customer_prefix"], b["total_files"]) for b in result["batches"]} == {
        ("SP_ALPHA", 2),
        ("SP_BETA", 1),
    }
    assert result["warnings"] == []
    assert run.stderr == ""


def test_submit_with_no_png_exits_1_after_naming_what_was_skipped(cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not a png")

    plain, as_json = cli.run_together(["submit", notes, photo], ["submit", "--json", notes])

    assert plain.returncode == 1, plain
    assert "Traceback" not in plain.stderr
    assert plain.stdout == ""
    *skipped, error = plain.stderr.splitlines()
    assert [line.split(": ")[0] for line in skipped] == [f"Skipped {notes}", f"Skipped {photo}"]
    assert error.startswith("No PNG files to submit")
    assert as_json.returncode == 1, as_json
    assert as_json.stderr.startswith("No PNG files to submit")
    # Scripts still learn what was skipped and why.
    assert json.loads(as_json.stdout)["skipped"] == [
        {"path": str(notes), "reason": "not a PNG file (.txt)"}
    ]


def test_submit_of_only_empty_files_exits_1(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "ZB_EMPTY191_view0.png"
    empty.touch()

    run = cli.run("submit", empty)

    assert run.returncode == 1, run
    assert "Traceback" not in run.stderr
    skipped, error = run.stderr.splitlines()
    assert skipped.startswith(f"Skipped {empty}: ")
    assert "0 bytes" in skipped
    assert error.startswith("No PNG files to submit")
    assert cli.run("list", "--customer", "ZB_EMPTY", "--json").json() == []


def test_submit_skips_a_png_cut_short_and_says_why_before_uploading(
    cli: Cli, tmp_path: Path
) -> None:
    whole = make_png(tmp_path / "SB_CUT191_view0.png", size=(1600, 1200))
    cut = tmp_path / "SB_CUT192_view1.png"
    cut.write_bytes(whole.read_bytes()[:100])  # an unfinished copy: the header is intact

    run = cli.run("submit", "--json", whole, cut)

    assert run.returncode == 0, run
    result = run.json()
    assert [batch["total_files"] for batch in result["batches"]] == [1]
    assert result["skipped"] == [
        {
            "path": str(cut),
            "reason": "damaged PNG: the file is incomplete (cut short at 100 bytes)",
        }
    ]


def test_a_10000_character_description_is_refused_naming_the_limit(
    cli: Cli, tmp_path: Path
) -> None:
    png = make_png(tmp_path / "LD_LONG191_view0.png")

    run = cli.run("submit", "-d", "x" * 10_000, png)

    sentence = assert_one_sentence(run, 2)
    assert "limit" in sentence
    assert f"{MAX_DESCRIPTION_LENGTH:,}" in sentence
    assert cli.run("list", "--customer", "LD_LONG", "--json").json() == []


# --- list, show, stats -------------------------------------------------------------------------


@pytest.mark.slow
def test_list_filters_by_customer_and_status_newest_first(cli: Cli, tmp_path: Path) -> None:
    first = cli.run(
        "submit",
        "--json",
        "--split-by-prefix",
        *make_renders(tmp_path / "a", "LS_ALPHA", 2),
        *make_renders(tmp_path / "a", "LS_OTHER", 1),
    )
    [older] = [b for b in first.json()["batches"] if b["customer_prefix"] == "LS_ALPHA"]
    newer = submit_one(cli, *make_renders(tmp_path / "b", "LS_ALPHA", 1))

    by_customer, queued, finished, plain = cli.run_together(
        ["list", "--customer", "LS_ALPHA", "--json"],
        ["list", "--customer", "LS_ALPHA", "--status", "queued", "--json"],
        ["list", "--customer", "LS_ALPHA", "--status", "completed", "--status", "failed", "--json"],
        ["list", "--customer", "LS_ALPHA"],
    )

    expected = [newer["base_directory_name"], older["base_directory_name"]]
    assert names(by_customer.json()) == expected
    assert set(by_customer.json()[0]) >= BATCH_TABLE_FIELDS
    assert names(queued.json()) == expected
    assert finished.json() == []
    header, *rows = plain.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "PRI", "DONE", "SIZE", "CREATED", "DESCRIPTION"]
    assert [row.split()[:4] for row in rows] == [
        [newer["base_directory_name"], "queued", "50", "0/1"],
        [older["base_directory_name"], "queued", "50", "0/2"],
    ]


def test_list_says_when_a_filter_matches_nothing_among_existing_batches(
    cli: Cli, tmp_path: Path
) -> None:
    submit_one(cli, *make_renders(tmp_path, "LS_SOMEONE", 1))

    nothing = cli.run("list", "--customer", "LS_NOBODY")

    assert nothing.returncode == 0, nothing
    assert nothing.stdout == "No batches match.\n"


def test_list_sorts_by_a_whitelisted_column_in_either_order(cli: Cli, tmp_path: Path) -> None:
    # Submitted at the same moment: the day counter still hands out 1, 2, 3 exactly once each.
    submissions: list[list[str | Path]] = [
        ["submit", "--json", *make_renders(tmp_path / str(count), "LS_SORT", count)]
        for count in (2, 3, 1)
    ]
    submitted = cli.run_together(*submissions)
    batches = [run.json()["batches"][0] for run in submitted]
    assert sorted(b["batch_counter"] for b in batches) == [1, 2, 3]

    ascending, descending = cli.run_together(
        ["list", "--customer", "LS_SORT", "--sort-by", "total_files", "--order", "asc", "--json"],
        ["list", "--customer", "LS_SORT", "--sort-by", "total_files", "--order", "desc", "--json"],
    )

    assert [row["total_files"] for row in ascending.json()] == [1, 2, 3]
    assert [row["total_files"] for row in descending.json()] == [3, 2, 1]


@pytest.mark.slow
def test_list_finds_file_names_submitters_pipelines_and_dates(cli: Cli, tmp_path: Path) -> None:
    thumbs = submit_one(cli, "-p", "thumbnails", *make_renders(tmp_path / "a", "LS_FIND", 1))
    plain = submit_one(cli, *make_renders(tmp_path / "b", "LS_FIND", 3))
    row = cli.run("list", "--customer", "LS_FIND", "--json").json()[0]
    who = row["created_by"]
    created = datetime.fromisoformat(row["created_at"]).astimezone()
    today, tomorrow = created.date(), created.date() + timedelta(days=1)
    yesterday = today - timedelta(days=1)
    mine = ["list", "--customer", "LS_FIND", "--json"]

    runs = cli.run_together(
        [*mine, "--text", "193_VIEW2.png"],  # a file name only the three-file batch holds
        [*mine, "--text", "view0"],
        [*mine, "--pipeline", "thumbnails"],
        [*mine, "--created-by", who],
        [*mine, "--created-by", "nobody@nowhere"],
        [*mine, "--since", today.isoformat(), "--until", today.isoformat()],
        [*mine, "--since", tomorrow.isoformat()],
        [*mine, "--until", yesterday.isoformat()],
        [*mine, "--text", "view0", "--pipeline", "original", "--status", "queued"],
        [*mine, "--finished-since", yesterday.isoformat()],  # nothing has run yet
    )

    both = [plain["base_directory_name"], thumbs["base_directory_name"]]
    assert [names(run.json()) for run in runs] == [
        both[:1],
        both,
        both[1:],
        both,
        [],
        both,
        [],
        [],
        both[:1],
        [],
    ]


def test_show_finds_a_batch_by_name_and_by_id(cli: Cli, tmp_path: Path) -> None:
    pngs = make_renders(tmp_path, "SH_SHOW", 2)
    batch = submit_one(cli, "-d", "Show me", *pngs)
    name = batch["base_directory_name"]

    by_name, by_id, plain = cli.run_together(
        ["show", name, "--json"], ["show", batch["id"], "--json"], ["show", name]
    )

    shown = by_name.json()
    assert by_id.json() == shown
    assert shown["id"] == batch["id"]
    assert shown["base_directory_name"] == name
    assert shown["render_description"] == "Show me"
    assert set(shown) >= BATCH_TABLE_FIELDS
    jobs = shown["jobs"]
    assert set(jobs[0]) >= JOB_TABLE_FIELDS
    assert [(j["position"], j["file_name"], j["status"]) for j in jobs] == [
        (0, pngs[0].name, "queued"),
        (1, pngs[1].name, "queued"),
    ]
    assert [j["input_size"] for j in jobs] == [png.stat().st_size for png in pngs]

    lines = plain.stdout.splitlines()
    assert lines[0] == name
    details = dict(line.strip().split(":", 1) for line in lines[1 : lines.index("")])
    assert details["Status"].strip() == "queued"
    assert details["Description"].strip() == "Show me"
    assert details["Id"].strip() == batch["id"]
    assert details["Priority"].strip() == "50"
    assert all(any(png.name in line for line in lines) for png in pngs)


def test_stats_json_has_the_original_keys_plus_cancelled_and_agrees_with_list(
    cli: Cli, tmp_path: Path
) -> None:
    submit_one(cli, *make_renders(tmp_path, "ST_STATS", 2))

    stats_run, list_run = cli.run_together(
        ["stats", "--json"], ["list", "--json", "--limit", "10000"]
    )

    stats = stats_run.json()
    batches = list_run.json()
    assert set(stats) == STATS_KEYS
    assert stats["total_batches"] == len(batches) > 0
    for status in ("queued", "processing", "completed", "failed", "cancelled"):
        assert stats[status] == sum(1 for b in batches if b["status"] == status), status
    files = [b["total_files"] for b in batches]
    assert stats["total_files_all_time"] == sum(files)
    assert stats["max_files_in_batch"] == max(files)
    assert abs(stats["avg_files_per_batch"] - sum(files) / len(files)) <= 0.05


# --- delete ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_delete_asks_for_yes_when_it_cannot_ask_and_with_yes_deletes(
    cli: Cli, tmp_path: Path
) -> None:
    name = submit_one(cli, *make_renders(tmp_path, "DL_GONE", 2))["base_directory_name"]

    refused = cli.run("delete", name)  # stdin is not a terminal: nobody can answer a question
    still_there = cli.run("show", name)
    deleted = cli.run("delete", name, "--yes")
    gone = cli.run("show", name)

    assert "--yes" in assert_one_sentence(refused, 2)
    assert still_there.returncode == 0, still_there
    assert deleted.returncode == 0, deleted
    assert deleted.stdout == f"Deleted {name} (2 files).\n"
    assert "no batch" in assert_one_sentence(gone, 1)


# --- db ----------------------------------------------------------------------------------------


def test_db_upgrade_of_a_current_schema_says_so_and_db_check_finds_no_drift(cli: Cli) -> None:
    upgrade, check = cli.run_together(["db", "upgrade"], ["db", "check"])

    assert upgrade.returncode == 0, upgrade
    assert f"up to date (revision {head_revision()})" in upgrade.stdout
    assert check.returncode == 0, check
    assert check.stdout.startswith("All batch counts agree with their jobs.\n")


@pytest.mark.slow
def test_db_check_reports_counts_that_disagree_and_db_repair_recounts_them(
    cli: Cli, scratch_conninfo: str, tmp_path: Path
) -> None:
    on_scratch = ("--database-url", scratch_conninfo)
    batch = submit_one(cli, *make_renders(tmp_path, "DR_DRIFT", 2), database_url=scratch_conninfo)
    with psycopg.connect(scratch_conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE batches SET queued_count = queued_count + 5 WHERE id = %s", (batch["id"],)
        )

    check = cli.run(*on_scratch, "db", "check")
    repair = cli.run(*on_scratch, "db", "repair")
    check_again = cli.run(*on_scratch, "db", "check")

    assert check.returncode == 1, check
    assert check.stdout == (
        f"{batch['base_directory_name']}: counts disagree with its jobs\n"
        "Every running job has its open attempt, and no other job has one.\n"
        "Every stored file is used by a job.\n"
    )
    [advice] = check.stderr.splitlines()
    assert "db repair" in advice
    assert repair.returncode == 0, repair
    assert repair.stdout == "Recounted 1 batch.\n"
    assert check_again.returncode == 0, check_again


@pytest.mark.slow
def test_db_timezone_sets_shows_and_resets_the_zone_that_dates_batches(cli: Cli) -> None:
    today = r"today is \d{4}-\d\d-\d\d\.\n"

    london = cli.run("db", "timezone", "Europe/London")
    assert london.returncode == 0, london
    assert re.fullmatch(rf"Batch dates follow Europe/London; {today}", london.stdout)
    shown = cli.run("db", "timezone")
    assert re.fullmatch(rf"Batch dates follow Europe/London; {today}", shown.stdout)

    reset = cli.run("db", "timezone", "server")
    assert reset.returncode == 0, reset
    assert re.fullmatch(rf"Batch dates follow .+ \(the server's zone\); {today}", reset.stdout)

    unknown = cli.run("db", "timezone", "Mars/Olympus_Mons")
    assert "Mars/Olympus_Mons" in assert_one_sentence(unknown, 2)


# --- errors ------------------------------------------------------------------------------------


def test_an_unknown_batch_exits_1_with_one_sentence(cli: Cli) -> None:
    by_name, by_id, delete = cli.run_together(
        ["show", "nope"],
        ["show", "00000000-0000-0000-0000-000000000000"],
        ["delete", "nope", "--yes"],
    )

    assert "There is no batch 'nope'" in assert_one_sentence(by_name, 1)
    assert "00000000-0000-0000-0000-000000000000" in assert_one_sentence(by_id, 1)
    assert "There is no batch 'nope'" in assert_one_sentence(delete, 1)


USAGE_ERRORS = {
    "an unknown command": ["frobnicate"],
    "a sort column that is not allowed": ["list", "--sort-by", "bogus"],
    "an unknown sort order": ["list", "--order", "sideways"],
    "an unknown status": ["list", "--status", "nope"],
    "a date that is not a date": ["list", "--since", "yesterday"],
    "show without a batch": ["show"],
    "db without an action": ["db"],
    "the self-test with a command": ["--self-test", "list"],
    "the self-test with a database": ["--self-test", "--database-url", "postgresql://db.studio/x"],
}


def test_usage_errors_exit_2_with_one_sentence(cli: Cli) -> None:
    runs = cli.run_together(*USAGE_ERRORS.values())

    for (mistake, args), run in zip(USAGE_ERRORS.items(), runs, strict=True):
        assert run.returncode == 2, (mistake, run)
        assert "Traceback" not in run.stderr, (mistake, run)
        assert len(run.stderr.splitlines()) == 1, (mistake, run)
        assert run.stdout == "", (mistake, run)
        if len(args) > 1 and args[0] == "list":
            assert args[-1] in run.stderr, (mistake, run)  # names what was wrong
        if args[0] == "--self-test":
            assert f"leave out {args[1]!r}" in run.stderr, (mistake, run)


@pytest.mark.slow
def test_every_command_refuses_a_schema_newer_than_this_batchdesk(
    cli: Cli, scratch_conninfo: str, tmp_path: Path
) -> None:
    on_scratch = ("--database-url", scratch_conninfo)
    assert cli.run(*on_scratch, "db", "upgrade").returncode == 0
    with psycopg.connect(scratch_conninfo, autocommit=True) as conn:
        # A revision only a future batchdesk knows.
        conn.execute("UPDATE alembic_version SET version_num = 'f0f0f0f0f0f0'")
    png = make_png(tmp_path / "NW_NEWER191_view0.png")
    commands: list[list[str | Path]] = [
        [],  # the window
        ["submit", png],
        ["list"],
        ["show", "NW_NEWER_2026-01-01_batch-1"],
        ["stats", "--json"],
        ["delete", "NW_NEWER_2026-01-01_batch-1", "--yes"],
        ["db", "upgrade"],
        ["db", "check"],
        ["db", "repair"],
        ["db", "gc"],
        ["db", "timezone"],
    ]

    runs = cli.run_together(*([*on_scratch, *command] for command in commands))
    status = cli.run(*on_scratch, "db", "status")

    for run in runs:
        sentence = assert_one_sentence(run, 1)
        assert "f0f0f0f0f0f0" in sentence, run
        assert "newer" in sentence, run
        assert "install the newer batchdesk" in sentence, run
    assert status.returncode == 1, status
    assert "newer than this batchdesk" in status.stdout


def test_an_unreachable_server_is_one_sentence(cli: Cli) -> None:
    run = cli.run("--database-url", "postgresql://nobody@127.0.0.1:1/x", "list")

    sentence = assert_one_sentence(run, 1)
    assert sentence.startswith("Cannot use the database"), sentence
    assert "127.0.0.1:1" in sentence


def test_a_connection_that_fails_never_shows_its_password(cli: Cli) -> None:
    refused_url, refused_key_value, malformed = cli.run_together(
        ["--database-url", f"postgresql://nobody:{SECRET}@127.0.0.1:1/x", "db", "status"],
        ["--database-url", f"host=127.0.0.1 port=1 user=nobody password={SECRET}", "stats"],
        ["--database-url", f"postgresql://nobody:{SECRET}@[127.0.0.1/x", "list"],
    )

    for run in (refused_url, refused_key_value, malformed):
        assert SECRET not in run.stdout + run.stderr, run
    assert assert_one_sentence(refused_url, 1).startswith("Cannot use the database")
    assert assert_one_sentence(refused_key_value, 1).startswith("Cannot use the database")
    assert_one_sentence(malformed, 2)


def test_a_lock_timeout_the_administrator_set_is_one_sentence(
    cli: Cli, database_conninfo: str
) -> None:
    impatient = make_conninfo(database_conninfo, options="-c lock_timeout=200")
    with psycopg.connect(database_conninfo) as holder:
        holder.execute("LOCK TABLE batches IN ACCESS EXCLUSIVE MODE")  # held until the end
        run = cli.run("--database-url", impatient, "list")

    sentence = assert_one_sentence(run, 1)
    assert sentence.startswith("The database "), sentence
    assert "could not do it: canceling statement due to lock timeout" in sentence


def test_an_unexpected_database_error_is_one_sentence_with_the_details_in_the_log(
    cli: Cli, database_conninfo: str
) -> None:
    # Someone edited the tables by hand: a column batchdesk reads is gone.
    with psycopg.connect(database_conninfo, autocommit=True) as connection:
        connection.execute("ALTER TABLE batches DROP COLUMN monday_item_id")

    run = cli.run("--database-url", database_conninfo, "list", "--json")

    sentence = assert_one_sentence(run, 1)
    assert "monday_item_id" in sentence
    log_file = cli.home / "logs" / "cli.log"
    assert f"details in {log_file}" in sentence
    assert "Traceback" in log_file.read_text(encoding="utf-8")


# --- a studio server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerDatabase:
    """A scratch database on the CI server, and a URL for it that carries a password."""

    name: str
    url: str
    shown_as: str  # how batchdesk should name it: user@host:port/dbname
    password: str


def _url_with_password(server_url: str, dbname: str) -> tuple[str, str, str]:
    params = conninfo_to_dict(server_url)
    # The CI server trusts local connections and ignores a password; a server that wants one
    # has it in BATCHDESK_TEST_DATABASE_URL already, and then that one must never be shown.
    password = str(params.get("password") or SECRET)
    user = str(params.get("user") or "postgres")
    host = str(params.get("host") or "127.0.0.1")
    port = str(params.get("port") or "5432")
    shown_as = f"{user}@{host}:{port}/{dbname}"
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    if host.startswith("/"):
        url = f"postgresql://{credentials}@:{port}/{dbname}?host={quote(host, safe='')}"
        shown_as = f"{user}@socket {host}:{port}/{dbname}"
    else:
        url = f"postgresql://{credentials}@{host}:{port}/{dbname}"
    return url, shown_as, password


@pytest.fixture
def server_database() -> Iterator[ServerDatabase]:
    if not SERVER_URL:
        pytest.skip(NO_SERVER)
    name = f"batchdesk_e2e_{os.getpid()}_{next(_names)}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield ServerDatabase(name, *_url_with_password(SERVER_URL, name))
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def batch_names_on(server_url: str, dbname: str) -> list[str]:
    with psycopg.connect(make_conninfo(server_url, dbname=dbname)) as conn:
        rows = conn.execute("SELECT base_directory_name FROM batches ORDER BY 1").fetchall()
    return [row[0] for row in rows]


@pytest.mark.slow
def test_database_url_option_runs_the_commands_on_the_server_and_never_shows_the_password(
    cli: Cli, server_database: ServerDatabase, tmp_path: Path
) -> None:
    assert SERVER_URL
    db = server_database
    on_server = ("--database-url", db.url)
    runs: list[Run] = []

    upgraded = cli.run(*on_server, "db", "upgrade")
    runs.append(upgraded)
    assert upgraded.returncode == 0, upgraded
    assert (
        upgraded.stdout == f"Upgraded the {db.shown_as} from revision none to {head_revision()}.\n"
    )

    status, status_json = cli.run_together(
        [*on_server, "db", "status"], [*on_server, "db", "status", "--json"]
    )
    runs += [status, status_json]
    assert status.returncode == 0, status
    assert status.stdout.splitlines()[0] == f"Database: {db.shown_as} (server)"
    assert status_json.json() == {
        "database": db.shown_as,
        "embedded": False,
        "current_revision": head_revision(),
        "head_revision": head_revision(),
        "up_to_date": True,
        "file_store": {"new_files": "database", "folder": None, "folder_here": None},
    }

    batch = submit_one(
        cli, "-d", "On the studio server", *make_renders(tmp_path, "SV_URL", 2), database_url=db.url
    )
    assert batch_names_on(SERVER_URL, db.name) == [batch["base_directory_name"]]
    listed, shown, stats = cli.run_together(
        [*on_server, "list", "--json"],
        [*on_server, "show", batch["id"], "--json"],
        [*on_server, "stats", "--json"],
    )
    runs += [listed, shown, stats]
    assert names(listed.json()) == [batch["base_directory_name"]]
    assert len(shown.json()["jobs"]) == 2
    assert stats.json()["total_batches"] == 1

    deleted = cli.run(*on_server, "delete", batch["id"], "--yes")
    runs.append(deleted)
    assert deleted.returncode == 0, deleted
    assert batch_names_on(SERVER_URL, db.name) == []

    for run in runs:
        assert "Traceback" not in run.stderr, run
        assert db.password not in run.stdout + run.stderr, run


@pytest.mark.slow
def test_batchdesk_database_url_variable_selects_the_server_and_the_option_overrides_it(
    cli: Cli, server_database: ServerDatabase, tmp_path: Path
) -> None:
    assert SERVER_URL
    db = server_database
    from_env = {"BATCHDESK_DATABASE_URL": db.url}

    batch = submit_one(cli, *make_renders(tmp_path, "SV_ENV", 1), env=from_env)
    status = cli.run("db", "status", "--json", env=from_env)
    overridden = cli.run(
        "--database-url",
        db.url,
        "list",
        "--json",
        env={"BATCHDESK_DATABASE_URL": f"postgresql://nobody:{SECRET}@127.0.0.1:1/x"},
    )

    assert batch_names_on(SERVER_URL, db.name) == [batch["base_directory_name"]]
    assert status.returncode == 0, status
    assert status.json()["database"] == db.shown_as
    assert status.json()["embedded"] is False
    assert overridden.returncode == 0, overridden
    assert names(overridden.json()) == [batch["base_directory_name"]]
    for run in (status, overridden):
        assert db.password not in run.stdout + run.stderr, run
        assert SECRET not in run.stdout + run.stderr, run


def test_libpq_variables_fill_in_what_the_url_leaves_out(
    cli: Cli, server_database: ServerDatabase, tmp_path: Path
) -> None:
    assert SERVER_URL
    params = conninfo_to_dict(SERVER_URL)
    host = str(params.get("host") or "127.0.0.1")
    port = str(params.get("port") or "5432")
    user = str(params.get("user") or "postgres")
    # The URL names nothing: libpq takes host, port, user and database from PG* variables,
    # exactly as psql would (and a password from ~/.pgpass, which a trusting server ignores).
    libpq_env = {
        "PGHOST": host,
        "PGPORT": port,
        "PGUSER": user,
        "PGDATABASE": server_database.name,
    }

    upgraded = cli.run("--database-url", "postgresql://", "db", "upgrade", env=libpq_env)
    status = cli.run("--database-url", "postgresql://", "db", "status", "--json", env=libpq_env)

    assert upgraded.returncode == 0, upgraded
    assert status.returncode == 0, status
    assert status.json()["embedded"] is False
    assert status.json()["current_revision"] == head_revision()
    assert batch_names_on(SERVER_URL, server_database.name) == []  # upgraded, empty, on the server
    for run in (upgraded, status):
        assert server_database.password not in run.stdout + run.stderr


def test_a_database_missing_on_the_server_is_one_sentence_without_the_password(
    cli: Cli, server_database: ServerDatabase
) -> None:
    missing_url = server_database.url.replace(server_database.name, "batchdesk_no_such_database")

    run = cli.run("--database-url", missing_url, "list")

    assert server_database.password not in run.stdout + run.stderr, run
    sentence = assert_one_sentence(run, 1)
    assert sentence.startswith("Cannot use the database"), sentence
    assert "batchdesk_no_such_database" in sentence
