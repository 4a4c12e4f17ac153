"""Running a pipeline on one input file: check it, decode it once, apply the steps, write outputs.

The input is read and checked by `image_input`; each step is applied through the registry in
`steps`; every output is written to a temporary file and renamed into place once complete, so
nothing is ever half written. A full disk, a step's error or a lack of memory becomes one
`JobFailed` sentence naming the file and the step.
"""

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from batchdesk.jobs.image_input import (
    DEFAULT_MAX_PIXELS,
    Source,
    png_header_size,
    read_back,
    read_input,
    read_png_size,
)
from batchdesk.jobs.input_buffer import InputBuffer
from batchdesk.jobs.job_failures import JobFailed, StopRequested
from batchdesk.jobs.pipeline_spec import PipelineSpec
from batchdesk.jobs.step_specs import Encoding, StepSpec
from batchdesk.jobs.steps import apply_step
from batchdesk.jobs.working_image import StepContext, StepError, WorkingImage, save_image

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class ProducedOutput:
    """One file a job produced: its delivery name, where it is now, and what it holds."""

    name: str
    path: Path
    size: int
    media_type: str
    width: int
    height: int


# -- writing outputs --------------------------------------------------------------------------


def _stem(file_name: str) -> str:
    """Return the input's name without folders and without its .png extension."""
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = (
        name[:-4] if name.lower().endswith(".png") and len(name) > 4 else PurePosixPath(name).stem
    )
    return stem if stem.strip(". ") else "image"


class _OutputWriter:
    """Write a job's outputs to temporary files and rename each into place once complete.

    Files on disk get short numbered names: the delivery name (the input's stem plus suffix and
    extension) can be longer than the file system allows, or clash with the job's input file.
    """

    def __init__(self, work_dir: Path, file_name: str) -> None:
        self.work_dir = work_dir
        self.file_name = file_name
        self.stem = _stem(file_name)
        self.folder = Path(tempfile.mkdtemp(prefix="outputs-", dir=work_dir))
        self.outputs: list[ProducedOutput] = []

    def write(self, where: str, working: WorkingImage, encoding: Encoding) -> None:
        name = encoding.file_name(self.stem)
        final, size = self._write(
            where, name, encoding.extension, partial(save_image, working, encoding)
        )
        self._add(name, final, encoding.media_type, size)

    def copy(self, source: Source) -> None:
        """Deliver the input unchanged (its bytes, not a re-encoding) as `<stem>.png`."""
        name = f"{self.stem}.png"
        if isinstance(source, InputBuffer):
            header = png_header_size(source.head(33))
            assert header is not None  # read_input has checked it
            width, height, _mode = header
        else:
            width, height, _mode = read_png_size(source)

        def copy_to(target: Path) -> tuple[int, int]:
            if isinstance(source, InputBuffer):
                source.write_to(target)
            else:
                shutil.copyfile(source, target)
            return width, height

        final, size = self._write(self.file_name, name, ".png", copy_to)
        self._add(name, final, "image/png", size)

    def _write(
        self, where: str, name: str, extension: str, write: Callable[[Path], tuple[int, int]]
    ) -> tuple[Path, tuple[int, int]]:
        number = len(self.outputs) + 1
        part = self.folder / f"{number}.part"
        final = self.folder / f"{number}{extension}"
        try:
            size = write(part)
            os.replace(part, final)
        except OSError as exc:
            part.unlink(missing_ok=True)
            if exc.errno in _DISK_FULL:
                raise JobFailed(
                    f"{where}: disk full while writing {name}; free space in {self.work_dir} "
                    "and retry the batch.",
                    retryable=True,
                ) from exc
            raise
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return final, size

    def _add(self, name: str, path: Path, media_type: str, size: tuple[int, int]) -> None:
        self.outputs.append(
            ProducedOutput(name, path, path.stat().st_size, media_type, size[0], size[1])
        )


# -- running a pipeline -----------------------------------------------------------------------


def run_pipeline(
    spec: PipelineSpec,
    source: Source,
    work_dir: Path,
    *,
    file_name: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    should_stop: Callable[[], bool] = lambda: False,
    on_step_done: Callable[[int, StepSpec, float], None] | None = None,
) -> list[ProducedOutput]:
    """Run a checked pipeline on one PNG file and return the outputs it wrote into `work_dir`.

    Args:
        spec: the pipeline; with no steps the input is delivered unchanged as `<stem>.png`.
        source: the PNG to process (read only): a file, or a job's input held in memory.
        work_dir: where outputs and temporary files go; the caller removes it afterwards.
        file_name: the name the user submitted, used in output names and messages.
        max_pixels: inputs (and tools' outputs) with more pixels are refused before decoding.
        should_stop: asked before the decode and between steps.
        on_step_done: told each step's number, step and seconds (with its outputs written),
            for `pipelines try` and the editor's preview.

    Raises:
        JobFailed: one sentence naming the file, the step and what to do.
        StopRequested: `should_stop` said so; nothing is half written.
    """

    def stop_if_requested() -> None:
        if should_stop():
            raise StopRequested(f"{file_name}: stopped on request")

    stop_if_requested()
    image = read_input(source, file_name, max_pixels, decode=bool(spec.steps))
    try:
        writer = _OutputWriter(work_dir, file_name)
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise JobFailed(
            f"{file_name}: disk full in {work_dir}; free space there and retry the batch.",
            retryable=True,
        ) from exc
    if image is None:
        writer.copy(source)
        return writer.outputs
    working = WorkingImage.from_decoded(image)
    del image  # the steps hold it now: one that replaces it frees it (memory_estimate counts so)
    for number, step in enumerate(spec.steps, 1):
        stop_if_requested()
        where = f"{file_name}, step {number} ({step.op})"
        context = StepContext(
            pipeline=spec.name,
            work_dir=work_dir,
            deliver=partial(writer.write, where),
            read_back=partial(read_back, max_pixels=max_pixels),
            stop_if_requested=stop_if_requested,
        )
        started = time.perf_counter()
        try:
            working = apply_step(step, working, context)
        except StepError as exc:
            raise JobFailed(f"{where}: {exc.message}.", retryable=exc.retryable) from exc
        except MemoryError as exc:
            raise JobFailed(
                f"{where}: this workstation ran out of memory; run fewer jobs at once, or scale "
                "the image down.",
                retryable=True,
            ) from exc
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            raise JobFailed(
                f"{where}: disk full while working in {work_dir}; free space there and retry "
                "the batch.",
                retryable=True,
            ) from exc
        if on_step_done is not None:
            on_step_done(number, step, time.perf_counter() - started)
    return writer.outputs
