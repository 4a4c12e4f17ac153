"""`batchdesk pipelines` add, show, export, history, retire, restore and try, as real processes.

Pipelines are studio data: a JSON file is checked with the sentences that name the step and the
field, stored as version 1, and replaced only when asked, as the next version. A batch keeps the
version it was submitted with, and a real worker process runs exactly that one.
"""

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from tests.e2e.processes import Run, run_together
from tests.factories import make_png

README = Path(__file__).parents[2] / "README.md"
EXAMPLE = Path(__file__).parents[2] / "docs" / "pipeline-example.json"


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def cli(conninfo: str, home: Path, *args: str | Path) -> Run:
    [run] = run_together(home, ["--database-url", conninfo, *args])
    return run


def one_sentence(run: Run, exit_code: int) -> str:
    assert run.returncode == exit_code, run
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stdout == "", run
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


def write_pipeline(
    path: Path, name: str, steps: list[dict[str, Any]], description: str = ""
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"name": name, "description": description, "steps": steps}), encoding="utf-8"
    )
    return path


def marked(suffix: str) -> list[dict[str, Any]]:
    """Steps whose one output's name says which version wrote it."""
    return [
        {"op": "fit", "mode": "long_edge", "size": 16},
        {"op": "output", "format": "png", "suffix": suffix},
    ]


def blob_count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SELECT count(*) FROM blobs").fetchone()
    assert row is not None
    return int(row[0])


def test_add_replace_show_export_history_retire_restore_round_trip(
    database_conninfo: str, home: Path
) -> None:
    first = write_pipeline(home / "v1.json", "studio-web", marked("_one"), "The studio's web set.")
    second = write_pipeline(home / "v2.json", "studio-web", marked("_two"), "Now with two.")

    added = cli(database_conninfo, home, "pipelines", "add", first, "--json")
    again = cli(database_conninfo, home, "pipelines", "add", second)
    replaced = cli(database_conninfo, home, "pipelines", "add", second, "--replace")
    same = cli(database_conninfo, home, "pipelines", "add", second, "--replace")

    assert added.returncode == 0, added
    assert added.json() == {
        "name": "studio-web",
        "version": 1,
        "created": True,
        "changed": True,
        "retired": False,
    }
    assert one_sentence(again, 1) == (
        "A pipeline named studio-web exists already (version 1); use --replace to store this "
        "as its next version."
    )
    assert replaced.stdout == "Stored pipeline studio-web as version 2.\n"
    assert "unchanged" in same.stdout

    newest = cli(database_conninfo, home, "pipelines", "show", "studio-web", "--json").json()
    oldest = cli(
        database_conninfo, home, "pipelines", "show", "studio-web", "--version", "1", "--json"
    ).json()
    assert (newest["version"], newest["steps"][1]["suffix"]) == (2, "_two")
    assert (oldest["version"], oldest["steps"][1]["suffix"]) == (1, "_one")
    assert oldest["description"] == "The studio's web set."
    assert newest["problem"] is None
    shown = cli(database_conninfo, home, "pipelines", "show", "studio-web")
    assert shown.stdout.startswith("studio-web, version 2 (offered)\nNow with two.\n")
    assert '2. output format="png" suffix="_two"' in shown.stdout

    # export writes what add reads: exported version 1, added back, is version 3 and equal to it.
    exported = home / "exported.json"
    export = cli(database_conninfo, home, "pipelines", "export", "studio-web", "--version", "1")
    cli(
        database_conninfo,
        home,
        "pipelines",
        "export",
        "studio-web",
        "--version",
        "1",
        "-o",
        exported,
    )
    assert json.loads(export.stdout) == json.loads(exported.read_text(encoding="utf-8"))
    restored = cli(database_conninfo, home, "pipelines", "add", exported, "--replace", "--json")
    assert restored.json()["version"] == 3
    third = cli(database_conninfo, home, "pipelines", "show", "studio-web", "--json").json()
    assert (third["description"], third["steps"]) == (oldest["description"], oldest["steps"])

    history = cli(database_conninfo, home, "pipelines", "history", "studio-web", "--json").json()
    assert [entry["version"] for entry in history] == [1, 2, 3]
    assert all(entry["created_by"] for entry in history)

    retired = cli(database_conninfo, home, "pipelines", "retire", "studio-web")
    listed = cli(database_conninfo, home, "pipelines", "--json").json()
    assert retired.stdout.startswith("Retired pipeline studio-web")
    assert {row["name"]: row["retired"] for row in listed}["studio-web"] is True
    assert cli(database_conninfo, home, "pipelines").stdout.count("retired") == 1
    back = cli(database_conninfo, home, "pipelines", "restore", "studio-web")
    assert back.stdout.startswith("Restored pipeline studio-web")
    assert (
        cli(database_conninfo, home, "pipelines", "show", "studio-web", "--json").json()["retired"]
        is False
    )


def test_a_bad_pipeline_file_is_refused_with_the_sentence_naming_step_and_field(
    database_conninfo: str, home: Path
) -> None:
    bad_field = write_pipeline(
        home / "bad.json", "studio-web", [{"op": "fit", "mode": "long_edge", "size": 0}]
    )
    bad_name = write_pipeline(home / "name.json", "Studio Web", [])
    not_json = home / "broken.json"
    not_json.write_text('{"name": "x",', encoding="utf-8")

    runs = [
        cli(database_conninfo, home, "pipelines", "add", path)
        for path in (bad_field, bad_name, not_json, home / "missing.json")
    ]

    assert one_sentence(runs[0], 2) == (
        "Pipeline studio-web, step 1 (fit): size must be a whole number from 1 to 30000, not 0."
    )
    assert one_sentence(runs[1], 2).startswith("A pipeline's name must be 1 to 64 lower-case")
    assert one_sentence(runs[2], 2).startswith(f"{not_json} is not valid JSON:")
    assert one_sentence(runs[3], 1).startswith(f"{home / 'missing.json'} cannot be read")
    names = {row["name"] for row in cli(database_conninfo, home, "pipelines", "--json").json()}
    assert "studio-web" not in names
    unknown = cli(database_conninfo, home, "pipelines", "show", "nope")
    assert one_sentence(unknown, 1) == "There is no pipeline named 'nope'."
    no_version = cli(database_conninfo, home, "pipelines", "show", "original", "--version", "7")
    assert one_sentence(no_version, 1) == (
        "Pipeline original has no version 7; its versions are 1 to 1."
    )
    usage = cli(database_conninfo, home, "pipelines", "show", "original", "--version", "x")
    assert "must be a whole number from 1 up" in one_sentence(usage, 2)


def test_submit_refuses_unknown_retired_and_invalid_pipelines_before_uploading(
    database_conninfo: str, home: Path
) -> None:
    png = make_png(home / "in" / "PL_DXB191_a.png")
    cli(database_conninfo, home, "pipelines", "retire", "thumbnails")
    with psycopg.connect(database_conninfo) as connection:
        # What only SQL could do before: a pipeline whose steps cannot run.
        connection.execute(
            "INSERT INTO pipelines (name, steps) VALUES ('broken', %s)",
            (json.dumps([{"op": "fit", "mode": "box", "width": -5, "height": 10}]),),
        )

    unknown, retired, invalid = (
        cli(database_conninfo, home, "submit", "-p", name, png)
        for name in ("nope", "thumbnails", "broken")
    )

    assert "There is no pipeline named 'nope'; choose one of" in one_sentence(unknown, 1)
    assert "thumbnails" not in one_sentence(unknown, 1)  # retired: not offered
    assert one_sentence(retired, 1) == (
        "Pipeline thumbnails is retired and not offered for new batches; choose another, or "
        "restore it with `batchdesk pipelines restore thumbnails`."
    )
    assert one_sentence(invalid, 2) == (
        "Pipeline broken, step 1 (fit): width must be a whole number from 1 to 30000, not -5."
    )
    assert blob_count(database_conninfo) == 0


@pytest.mark.slow
def test_a_batch_submitted_before_replace_runs_the_old_version_in_a_real_worker(
    database_conninfo: str, home: Path
) -> None:
    cli(
        database_conninfo,
        home,
        "pipelines",
        "add",
        write_pipeline(home / "1.json", "studio-web", marked("_one")),
    )
    early = make_png(home / "early" / "PL_DXB191_a.png", size=(64, 48))
    late = make_png(home / "late" / "PL_DXB192_b.png", size=(64, 48), seed=1)
    first = cli(database_conninfo, home, "submit", "--json", "-p", "studio-web", early).json()
    cli(
        database_conninfo,
        home,
        "pipelines",
        "add",
        "--replace",
        write_pipeline(home / "2.json", "studio-web", marked("_two")),
    )
    second = cli(database_conninfo, home, "submit", "--json", "-p", "studio-web", late).json()

    worker = cli(database_conninfo, home, "worker", "--drain", "--threads", "1")

    assert worker.returncode == 0, worker
    assert worker.stderr.count("Completed ") == 2, worker.stderr
    old, new = (result["batches"][0] for result in (first, second))
    assert (old["pipeline_version"], new["pipeline_version"]) == (1, 2)
    shown = cli(database_conninfo, home, "show", old["base_directory_name"], "--json").json()
    assert (shown["pipeline"], shown["pipeline_version"]) == ("studio-web", 1)
    with psycopg.connect(database_conninfo) as connection:
        outputs = dict(
            connection.execute(
                "SELECT b.base_directory_name, o.name FROM job_outputs o "
                "JOIN jobs j ON j.id = o.job_id JOIN batches b ON b.id = j.batch_id"
            ).fetchall()
        )
    assert outputs == {
        old["base_directory_name"]: "PL_DXB191_a_one.png",
        new["base_directory_name"]: "PL_DXB192_b_two.png",
    }


def test_try_runs_a_pipeline_on_one_file_and_times_each_step(
    database_conninfo: str, home: Path
) -> None:
    png = make_png(home / "in" / "render.png", size=(300, 200))

    tried = cli(
        database_conninfo,
        home,
        "pipelines",
        "try",
        "web-delivery",
        png,
        "-o",
        home / "out",
        "--json",
    )
    said = cli(database_conninfo, home, "pipelines", "try", "web-delivery", png)

    assert tried.returncode == 0, tried
    result = tried.json()
    assert (result["pipeline"], result["version"]) == ("web-delivery", 1)
    assert [s["op"] for s in result["steps"]] == ["output", "fit", "output", "thumbnail"]
    assert all(s["seconds"] >= 0 for s in result["steps"])
    names = [o["name"] for o in result["outputs"]]
    assert names == ["render.png", "render_web.jpg", "render_thumb.jpg"]
    for output in result["outputs"]:
        path = Path(output["path"])
        assert path.parent == home / "out"
        assert path.stat().st_size == output["size"]
        with Image.open(path) as image:
            assert image.size == (output["width"], output["height"])
    assert sorted(p.name for p in (home / "out").iterdir()) == sorted(names)
    assert said.returncode == 0, said
    assert said.stdout.startswith(f"Tried web-delivery (version 1) on {png} in ")
    assert "step  2 fit" in said.stdout
    assert "render_thumb.jpg" in said.stdout
    assert (home / "try-web-delivery" / "render_web.jpg").exists()
    cut = home / "in" / "cut.png"
    cut.write_bytes(png.read_bytes()[:100])
    failed = cli(database_conninfo, home, "pipelines", "try", "web-delivery", cut)
    assert "cut.png" in one_sentence(failed, 1)


def test_the_readme_example_pipeline_is_added_tried_and_is_the_file_the_readme_shows(
    database_conninfo: str, home: Path
) -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("### Adding a studio pipeline") :]
    shown = section[
        section.index("```json\n") + 8 : section.index("```", section.index("```json") + 7)
    ]
    assert json.loads(shown) == json.loads(EXAMPLE.read_text(encoding="utf-8"))
    png = make_png(home / "render.png", size=(400, 300))

    added = cli(database_conninfo, home, "pipelines", "add", EXAMPLE)
    tried = cli(database_conninfo, home, "pipelines", "try", "studio-web", png, "--json")

    assert added.stdout == "Added pipeline studio-web (version 1).\n", added
    assert [o["name"] for o in tried.json()["outputs"]] == ["render_web.jpg", "render_thumb.jpg"]
