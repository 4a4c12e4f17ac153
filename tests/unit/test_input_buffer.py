"""A job's input held in memory: the pipeline reads it as it reads a file, to the same outputs."""

import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.image_pipeline import ProducedOutput, run_pipeline
from batchdesk.jobs.input_buffer import InputBuffer, InputBuffers
from batchdesk.jobs.pipeline_spec import parse_pipeline

FILE = "PL_DXB191_front.png"
SHIPPED = {p["name"]: p for p in default_pipelines()}


def make_render(path: Path, mode: str, size: tuple[int, int] = (900, 600)) -> Path:
    """Write a PNG with smooth areas and grain, larger than one read of the decoder."""
    rnd = random.Random(7)
    noise = Image.frombytes("L", size, rnd.randbytes(size[0] * size[1]))
    picture = Image.merge("RGB", [Image.linear_gradient("L").resize(size), noise, noise])
    picture.convert(mode).save(path, format="PNG")
    return path


def received(path: Path, chunk: int = 1 << 16) -> InputBuffer:
    """The file's bytes as the runner receives them: in chunks, into a buffer of its size."""
    data = path.read_bytes()
    buffer = InputBuffer(len(data))
    for start in range(0, len(data), chunk):
        buffer.write(memoryview(data)[start : start + chunk])
    return buffer


def produced(outputs: list[ProducedOutput]) -> list[tuple[str, int, int, str, bytes]]:
    return [(o.name, o.width, o.height, o.media_type, o.path.read_bytes()) for o in outputs]


@pytest.mark.parametrize("pipeline", sorted(SHIPPED))
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_every_shipped_pipeline_makes_the_same_bytes_from_memory_as_from_the_file(
    tmp_path: Path, pipeline: str, mode: str
) -> None:
    raw: dict[str, Any] = SHIPPED[pipeline]
    spec = parse_pipeline(raw["name"], raw["description"], raw["version"], raw["steps"])
    source = make_render(tmp_path / FILE, mode)
    (tmp_path / "from-file").mkdir()
    (tmp_path / "from-memory").mkdir()

    from_file = run_pipeline(spec, source, tmp_path / "from-file", file_name=FILE)
    with received(source) as buffer:
        from_memory = run_pipeline(spec, buffer, tmp_path / "from-memory", file_name=FILE)

    assert produced(from_memory) == produced(from_file)
    assert from_file  # each shipped pipeline delivers something


def test_each_reader_of_a_buffer_has_its_own_position(tmp_path: Path) -> None:
    # The check and the decode read the same input at once, each from its own place.
    with received(make_render(tmp_path / FILE, "RGB"), chunk=1000) as buffer:
        data = (tmp_path / FILE).read_bytes()
        first, second = buffer.open(), buffer.open()
        assert first.read(100) == data[:100]
        assert second.read(8) == data[:8]
        assert first.read() == data[100:]
        second.seek(-4, 2)
        assert second.read() == data[-4:]
        assert buffer.size == len(data)


def test_a_buffer_refuses_more_bytes_than_the_input_s_recorded_size() -> None:
    with InputBuffer(10) as buffer:
        buffer.write(b"12345")
        with pytest.raises(ValueError, match="more bytes arrived"):
            buffer.write(b"123456")
        buffer.clear()  # a download that starts over
        buffer.write(b"1234567890")
        assert buffer.head(4) == b"1234"


def test_a_buffer_handed_back_is_lent_again_for_the_next_input_it_can_hold() -> None:
    # A new map costs a page fault and a zeroed page per 4 KB: dearer than a temporary file.
    buffers = InputBuffers()
    with buffers.lent(3_000_000) as first:
        first.write(b"a" * 3_000_000)
    with buffers.lent(2_000_000) as second:
        assert second is first
        assert second.size == 0  # nothing of the last input is read as this one's
        with pytest.raises(ValueError, match="recorded size"):
            second.write(b"b" * 2_000_001)
    with buffers.lent(1_000) as one, buffers.lent(1_000) as other:
        assert other is not one  # each job running has its own


def test_a_buffer_too_small_for_the_next_input_is_replaced_and_a_huge_one_is_not_kept() -> None:
    buffers = InputBuffers(keep_up_to=64 << 20)
    with buffers.lent(1_000) as small:
        pass
    with buffers.lent(50 << 20) as larger:
        assert larger is not small
        larger.write(bytes(50 << 20))
    with pytest.raises(ValueError, match="closed"):
        small.head(1)  # released, not kept beside the larger one
    with buffers.lent(100 << 20) as huge:
        pass
    with pytest.raises(ValueError, match="closed"):
        huge.head(1)  # over keep_up_to: given back to the system at once
    with pytest.raises(ValueError, match="closed"):
        larger.head(1)  # too small for the huge one: released, one map per job running
