"""A pipeline as a JSON document: what `pipelines add` reads and `pipelines export` writes.

The document is `{"name", "description", "steps"}` plus, when exported, the `version` it was;
a version given to `add` is ignored, because the database numbers versions. Everything is
checked here with the sentences of `pipeline_spec` (naming the step and the field), so a bad
document is refused before anything is stored.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchdesk.errors import FileProblem, InvalidRequest
from batchdesk.jobs.pipeline_spec import PipelineSpec, parse_pipeline
from batchdesk.jobs.step_fields import show, words
from batchdesk.storage.pipeline_store import PipelineRow

MAX_DOCUMENT_BYTES = 1024 * 1024
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""The names the database accepts (the pipelines table's check, migration 0001)."""

_FIELDS = ("name", "description", "version", "steps")


@dataclass(frozen=True)
class PipelineDocument:
    """A checked pipeline ready to be stored: its steps as JSON, and as the runner sees them."""

    name: str
    description: str
    steps: list[dict[str, Any]]
    spec: PipelineSpec


def check_name(name: object) -> str:
    """Return a pipeline name the database accepts, or raise InvalidRequest saying what is wrong."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "A pipeline's name must be 1 to 64 lower-case letters, digits, _ and -, starting "
            f"with a letter or a digit, not {show(name)}."
        )
    return name


def document_from_json(value: object) -> PipelineDocument:
    """Check a parsed JSON value as a pipeline document."""
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"A pipeline file must hold one JSON object with {words(_FIELDS)}, not {show(value)}."
        )
    unknown = [key for key in value if key not in _FIELDS]
    if unknown:
        raise InvalidRequest(
            f"{show(unknown[0])} is not a field of a pipeline; its fields are {words(_FIELDS)}."
        )
    name = check_name(value.get("name"))
    description = value.get("description", "")
    steps = value.get("steps")
    if steps is None:
        raise InvalidRequest(f"Pipeline {name}: steps is missing; it must be a list of steps.")
    spec = parse_pipeline(name, description, 1, steps)
    return PipelineDocument(name, description, steps, spec)


def read_document(path: Path) -> PipelineDocument:
    """Read and check a pipeline document from a file."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise FileProblem(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidRequest(f"{path} is larger than a pipeline file can be (1 MB).")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{path} is not UTF-8 text (byte {exc.start}).") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from exc
    return document_from_json(value)


def document_json(row: PipelineRow) -> dict[str, Any]:
    """Return a stored version as the document `add` reads back."""
    return {
        "name": row.name,
        "description": row.description,
        "version": row.version,
        "steps": row.steps,
    }


def check_row(row: PipelineRow) -> PipelineSpec:
    """Return a stored pipeline's spec, or raise InvalidRequest with the sentence naming the
    step and the field (for submit: refused before anything is uploaded)."""
    return parse_pipeline(row.name, row.description, row.version, row.steps)
