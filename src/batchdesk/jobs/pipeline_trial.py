"""Trying a pipeline on one file, locally and without the queue: `pipelines try` and the preview.

The pipeline runs exactly as a worker runs it (`run_pipeline`), timed step by step, and its
outputs are moved into a folder under the names a delivery would give them.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchdesk.jobs.image_input import DEFAULT_MAX_PIXELS
from batchdesk.jobs.image_pipeline import ProducedOutput, run_pipeline
from batchdesk.jobs.pipeline_spec import PipelineSpec
from batchdesk.jobs.step_specs import StepSpec


@dataclass(frozen=True)
class StepTiming:
    """How long one step took, its outputs' writing included."""

    number: int
    op: str
    seconds: float


@dataclass(frozen=True)
class Trial:
    """What trying a pipeline on one file did: each step's time, the outputs, the whole time."""

    steps: tuple[StepTiming, ...]
    outputs: tuple[ProducedOutput, ...]
    seconds: float


def try_pipeline(
    spec: PipelineSpec,
    image: Path,
    folder: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    should_stop: Callable[[], bool] = lambda: False,
) -> Trial:
    """Run `spec` on `image` and put its outputs into `folder` under their delivery names.

    Files of those names in `folder` are replaced. Raises what `run_pipeline` raises: JobFailed
    with one sentence naming the file and the step, or StopRequested.
    """
    folder.mkdir(parents=True, exist_ok=True)
    timings: list[StepTiming] = []

    def step_done(number: int, step: StepSpec, seconds: float) -> None:
        timings.append(StepTiming(number, step.op, seconds))

    began = time.perf_counter()
    # Work next to the results, so each output is renamed into place, never copied.
    work_dir = Path(tempfile.mkdtemp(prefix=".batchdesk-try-", dir=folder))
    try:
        produced = run_pipeline(
            spec,
            image,
            work_dir,
            file_name=image.name,
            max_pixels=max_pixels,
            should_stop=should_stop,
            on_step_done=step_done,
        )
        outputs = []
        for output in produced:
            target = folder / output.name
            os.replace(output.path, target)
            outputs.append(
                ProducedOutput(
                    output.name, target, output.size, output.media_type, output.width, output.height
                )
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return Trial(tuple(timings), tuple(outputs), time.perf_counter() - began)
