"""The editor's field catalog and the parser describe the same steps."""

import pytest

from batchdesk.jobs import pipeline_spec
from batchdesk.jobs.pipeline_spec import OPS, parse_pipeline
from batchdesk.jobs.step_catalog import STARTER_STEPS, STEP_FIELDS


def test_every_operation_has_its_fields_and_a_starter_step() -> None:
    assert tuple(STEP_FIELDS) == OPS
    assert tuple(STARTER_STEPS) == OPS
    for op, (_parser, allowed) in pipeline_spec._PARSERS.items():
        assert [f.name for f in STEP_FIELDS[op]] == list(allowed), op


@pytest.mark.parametrize("op", OPS)
def test_each_starter_step_is_valid_and_each_default_is_accepted(op: str) -> None:
    starter = STARTER_STEPS[op]
    outputs = [] if op in ("output", "thumbnail") else [{"op": "output"}]
    parse_pipeline("starter", "", 1, [starter, *outputs])
    fmt = starter.get(
        "format", next((f.default for f in STEP_FIELDS[op] if f.name == "format"), "")
    )
    for spec in STEP_FIELDS[op]:
        if spec.default is None or (spec.formats and fmt not in spec.formats):
            continue
        if (op, spec.name) in (("watermark", "image_scale"), ("fit", "mode")):
            continue  # fields of another kind of the step than the starter's
        step = starter | {spec.name: spec.default}
        parse_pipeline("starter", "", 1, [step, *outputs])
        if spec.kind in ("whole", "number"):
            for value in (spec.low, spec.high_for(fmt)):
                parse_pipeline("starter", "", 1, [starter | {spec.name: value}, *outputs])
