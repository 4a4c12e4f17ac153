"""Pipelines are data: what parse_pipeline accepts, and the one sentence it says when it refuses."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdesk.errors import InvalidRequest
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.pipeline_spec import OPS, parse_pipeline
from batchdesk.jobs.step_specs import (
    Encoding,
    ExternalStep,
    FitStep,
    OutputStep,
    PadStep,
    ThumbnailStep,
    WatermarkStep,
)
from batchdesk.jobs.steps import REGISTRY

OUTPUT = {"op": "output"}


def parse(steps: list[dict[str, Any]], name: str = "web-delivery") -> Any:
    return parse_pipeline(name, "a test pipeline", 1, steps)


def parse_shipped(pipeline: dict[str, Any]) -> Any:
    return parse_pipeline(
        pipeline["name"], pipeline["description"], pipeline["version"], pipeline["steps"]
    )


def refusal(steps: list[dict[str, Any]], name: str = "web-delivery") -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse(steps, name)
    return str(caught.value)


def test_every_default_pipeline_parses_and_survives_a_json_round_trip() -> None:
    pipelines = json.loads(json.dumps(default_pipelines()))
    for pipeline in pipelines:
        spec = parse_shipped(pipeline)
        assert spec.name == pipeline["name"]
        assert len(spec.steps) == len(pipeline["steps"])


def test_default_pipelines_are_the_five_we_ship_with_unique_names() -> None:
    names = [p["name"] for p in default_pipelines()]
    assert names == ["original", "web-delivery", "ecommerce-square", "thumbnails", "optimised-png"]


def test_original_has_no_steps_and_an_empty_pipeline_is_valid() -> None:
    original = next(p for p in default_pipelines() if p["name"] == "original")
    assert original["steps"] == []
    assert parse([]).steps == ()


def test_web_delivery_writes_a_full_png_a_web_jpeg_with_icc_and_a_thumbnail() -> None:
    pipeline = next(p for p in default_pipelines() if p["name"] == "web-delivery")
    spec = parse_shipped(pipeline)
    encodings = [s.encoding for s in spec.output_steps]
    assert [e.file_name("X") for e in encodings] == ["X.png", "X_web.jpg", "X_thumb.jpg"]
    assert encodings[0].compress_level == 6
    assert (encodings[1].quality, encodings[1].keep_icc) == (85, True)
    fit = spec.steps[1]
    assert isinstance(fit, FitStep)
    assert (fit.mode, fit.size) == ("long_edge", 2000)
    thumbnail = spec.steps[3]
    assert isinstance(thumbnail, ThumbnailStep)
    assert thumbnail.size == 400


def test_every_op_has_a_step_function() -> None:
    registered = {cls.op for cls in REGISTRY}
    assert registered == set(OPS)


def test_fields_left_out_take_their_defaults() -> None:
    spec = parse(
        [
            {"op": "fit", "width": 100, "height": 50},
            {"op": "pad", "width": 200, "height": 200},
            {"op": "watermark", "text": "© Studio"},
            OUTPUT,
            {"op": "thumbnail", "size": 64},
        ]
    )
    fit, pad, watermark, output, thumbnail = spec.steps
    assert fit == FitStep("box", 100, 50, None, upscale=False)
    assert pad == PadStep(200, 200, (255, 255, 255), "center")
    assert isinstance(watermark, WatermarkStep)
    assert (watermark.position, watermark.opacity, watermark.margin) == ("bottom-right", 0.5, 24)
    assert output == OutputStep(Encoding("png", ""))
    assert thumbnail == ThumbnailStep(64, Encoding("jpeg", "_thumb"))


def test_a_whole_number_written_with_a_decimal_point_is_accepted() -> None:
    fit = parse([{"op": "fit", "mode": "long_edge", "size": 2000.0}, OUTPUT]).steps[0]
    assert fit.size == 2000
    assert isinstance(fit.size, int)


def test_transparent_pad_background_is_none() -> None:
    pad = parse([{"op": "pad", "width": 9, "height": 9, "background": "transparent"}, OUTPUT])
    assert pad.steps[0].background is None


def test_external_step_keeps_its_arguments_as_a_list() -> None:
    step = parse([{"op": "external", "args": ["pngquant", "{input}", "-o", "{output}"]}, OUTPUT])
    assert step.steps[0] == ExternalStep(("pngquant", "{input}", "-o", "{output}"), "png", 60.0)


def test_the_message_names_pipeline_step_number_op_field_and_bad_value() -> None:
    message = refusal([OUTPUT, {"op": "fit", "width": "big", "height": 10}, OUTPUT])
    assert message == (
        "Pipeline web-delivery, step 2 (fit): width must be a whole number from 1 to 30000, "
        "not 'big'."
    )


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [{"op": "resize"}, OUTPUT],
            "Pipeline web-delivery, step 1: op must be one of fit, pad, trim, watermark, sharpen, "
            "strip_metadata, output, thumbnail, external, not 'resize'.",
            id="unknown op",
        ),
        pytest.param(
            [{"width": 3}, OUTPUT],
            "Pipeline web-delivery, step 1: op is missing; it must be one of fit, pad, trim, "
            "watermark, sharpen, strip_metadata, output, thumbnail, external.",
            id="missing op",
        ),
        pytest.param(
            [OUTPUT, "fit"],
            "Pipeline web-delivery, step 2 must be an object with an op field, not 'fit'.",
            id="step not an object",
        ),
        pytest.param(
            [{"op": "fit", "widht": 100, "height": 100}, OUTPUT],
            "Pipeline web-delivery, step 1 (fit): 'widht' is not a field of fit (did you mean "
            "width?); its fields are mode, width, height, size, upscale.",
            id="unknown field",
        ),
        pytest.param(
            [{"op": "fit", "height": 100}, OUTPUT],
            "Pipeline web-delivery, step 1 (fit): width is missing; it must be a whole number "
            "from 1 to 30000.",
            id="missing field",
        ),
        pytest.param(
            [{"op": "fit", "mode": "long_edge", "width": 100}, OUTPUT],
            "Pipeline web-delivery, step 1 (fit): width applies only with mode 'box'; use size "
            "(the long edge).",
            id="field of the other mode",
        ),
        pytest.param(
            [{"op": "fit", "width": 100, "height": True}, OUTPUT],
            "Pipeline web-delivery, step 1 (fit): height must be a whole number from 1 to 30000, "
            "not true.",
            id="boolean for a number",
        ),
        pytest.param(
            [{"op": "fit", "width": 100.5, "height": 1}, OUTPUT],
            "Pipeline web-delivery, step 1 (fit): width must be a whole number from 1 to 30000, "
            "not 100.5.",
            id="fraction for a whole number",
        ),
        pytest.param(
            [{"op": "pad", "width": 0, "height": 10}, OUTPUT],
            "Pipeline web-delivery, step 1 (pad): width must be a whole number from 1 to 30000, "
            "not 0.",
            id="out of range",
        ),
        pytest.param(
            [{"op": "pad", "width": 10, "height": 10, "background": "white"}, OUTPUT],
            "Pipeline web-delivery, step 1 (pad): background must be 'transparent' or a colour "
            "like '#ffffff', not 'white'.",
            id="colour by name",
        ),
        pytest.param(
            [{"op": "pad", "width": 10, "height": 10, "position": "middle"}, OUTPUT],
            "Pipeline web-delivery, step 1 (pad): position must be one of 'center', 'top-left', "
            "'top', 'top-right', 'left', 'right', 'bottom-left', 'bottom', 'bottom-right', "
            "not 'middle'.",
            id="unknown choice",
        ),
        pytest.param(
            [{"op": "trim", "tolerance": 256}, OUTPUT],
            "Pipeline web-delivery, step 1 (trim): tolerance must be a whole number from 0 to "
            "255, not 256.",
            id="tolerance too high",
        ),
        pytest.param(
            [{"op": "watermark", "text": "a", "opacity": 1.5}, OUTPUT],
            "Pipeline web-delivery, step 1 (watermark): opacity must be a number from 0 to 1, "
            "not 1.5.",
            id="opacity above one",
        ),
        pytest.param(
            [{"op": "watermark", "text": "a", "image_path": "/logo.png"}, OUTPUT],
            "Pipeline web-delivery, step 1 (watermark): give either text or image_path (exactly "
            "one of them).",
            id="text and image",
        ),
        pytest.param(
            [{"op": "watermark"}, OUTPUT],
            "Pipeline web-delivery, step 1 (watermark): give either text or image_path (exactly "
            "one of them).",
            id="neither text nor image",
        ),
        pytest.param(
            [{"op": "watermark", "image_path": "/logo.png", "font_size": 0.1}, OUTPUT],
            "Pipeline web-delivery, step 1 (watermark): font_size applies only to a text "
            "watermark.",
            id="font size on an image watermark",
        ),
        pytest.param(
            [{"op": "output", "format": "png", "quality": 80}],
            "Pipeline web-delivery, step 1 (output): quality applies only to jpeg and webp "
            "output, not png.",
            id="quality on png",
        ),
        pytest.param(
            [{"op": "output", "format": "jpeg", "quality": 96}],
            "Pipeline web-delivery, step 1 (output): quality must be a whole number from 1 to 95, "
            "not 96.",
            id="jpeg quality above 95",
        ),
        pytest.param(
            [{"op": "output", "format": "gif"}],
            "Pipeline web-delivery, step 1 (output): format must be one of 'png', 'jpeg', "
            "'webp', not 'gif'.",
            id="unknown format",
        ),
        pytest.param(
            [{"op": "output", "suffix": "/../web"}],
            "Pipeline web-delivery, step 1 (output): suffix must be text of at most 64 letters, "
            "digits and the characters _ - . @ +, not '/../web'.",
            id="suffix with a path",
        ),
        pytest.param(
            [{"op": "thumbnail"}],
            "Pipeline web-delivery, step 1 (thumbnail): size is missing; it must be a whole "
            "number from 1 to 30000.",
            id="thumbnail without size",
        ),
        pytest.param(
            [{"op": "external", "args": "pngquant {input} {output}"}, OUTPUT],
            "Pipeline web-delivery, step 1 (external): args must be a list of 1 to 100 strings, "
            "not 'pngquant {input} {output}'.",
            id="command line as one string",
        ),
        pytest.param(
            [{"op": "external", "args": ["pngquant", "{input}"]}, OUTPUT],
            "Pipeline web-delivery, step 1 (external): args must contain {output} where the tool "
            "takes that file's path.",
            id="no output placeholder",
        ),
        pytest.param(
            [{"op": "external", "args": ["tool", "{input}", "{output}"], "timeout": 0}, OUTPUT],
            "Pipeline web-delivery, step 1 (external): timeout must be a number from 1 to 3600, "
            "not 0.",
            id="zero timeout",
        ),
        pytest.param(
            [{"op": "fit", "width": 10, "height": 10}],
            "Pipeline web-delivery produces nothing: add an output or thumbnail step, or leave "
            "the steps empty to deliver each input unchanged as PNG.",
            id="no output step",
        ),
        pytest.param(
            [OUTPUT, {"op": "sharpen"}],
            "Pipeline web-delivery, step 2 (sharpen) comes after the last output, so its result "
            "would be lost: move it before an output step or remove it.",
            id="step after the last output",
        ),
        pytest.param(
            [{"op": "output", "suffix": "_Web"}, {"op": "output", "suffix": "_web"}],
            "Pipeline web-delivery, step 2 (output): its output would be named NAME_web.png like "
            "step 1's; give it a different suffix.",
            id="duplicate output names",
        ),
        pytest.param(
            [{"op": "thumbnail", "size": 256}, {"op": "thumbnail", "size": 512}],
            "Pipeline web-delivery, step 2 (thumbnail): its output would be named "
            "NAME_thumb.jpg like step 1's; give it a different suffix.",
            id="two thumbnails with the default suffix",
        ),
    ],
)
def test_a_bad_pipeline_is_refused_with_one_sentence(
    steps: list[dict[str, Any]], expected: str
) -> None:
    assert refusal(steps) == expected


def test_the_same_suffix_in_two_formats_is_two_names() -> None:
    spec = parse([{"op": "output", "format": "png"}, {"op": "output", "format": "jpeg"}])
    assert [s.encoding.file_name("a") for s in spec.output_steps] == ["a.png", "a.jpg"]


@pytest.mark.parametrize(
    ("name", "version", "steps", "expected"),
    [
        ("", 1, [], "A pipeline's name must be text of 1 to 100 characters, not ''."),
        ("p", 0, [], "Pipeline p: version must be a whole number from 1 up, not 0."),
        ("p", 1, {"op": "output"}, "Pipeline p: steps must be a list of at most 100 steps, "),
    ],
)
def test_a_bad_name_version_or_step_list_is_refused(
    name: str, version: int, steps: Any, expected: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_pipeline(name, "", version, steps)
    assert str(caught.value).startswith(expected)


def test_a_refusal_exits_with_the_usage_code() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse([{"op": "nope"}])
    assert caught.value.exit_code == 2


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
_field_names = st.sampled_from(
    [
        "width",
        "height",
        "size",
        "mode",
        "format",
        "quality",
        "suffix",
        "text",
        "args",
        "background",
        "tolerance",
        "keep_icc",
        "nonsense",
    ]
)
_steps = st.lists(
    st.builds(
        lambda op, fields: {"op": op, **fields},
        st.sampled_from([*OPS, "bogus"]),
        st.dictionaries(_field_names, _json_values, max_size=4),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_any_json_is_either_a_pipeline_or_one_invalid_request(steps: list[dict[str, Any]]) -> None:
    try:
        spec = parse(steps)
    except InvalidRequest as exc:
        message = str(exc)
        assert message.startswith("Pipeline web-delivery")
        assert message.endswith(".")
        assert "\n" not in message
    else:
        assert len(spec.steps) == len(steps)
