"""The external step: run a studio tool on the current image and carry on with what it writes.

The tool gets the image as a PNG in a private temporary folder and runs in its own process
group, so a timeout or a cancel stops everything it started. What it writes is read back with
the job's limits; its complaints are reported as the last lines of its output.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from batchdesk.jobs import attempt_log
from batchdesk.jobs.step_specs import EXTENSIONS, Encoding, ExternalStep
from batchdesk.jobs.working_image import (
    StepContext,
    StepError,
    UnusableImage,
    WorkingImage,
    save_image,
)

_TOOL_POLL_SECONDS = 0.2
_TOOL_OUTPUT_CHARS = 500


def _tail(data: bytes) -> str:
    """Return the last lines of a tool's output, at most ~500 characters, on one line."""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    if len(lines[-1]) > _TOOL_OUTPUT_CHARS:
        return "…" + lines[-1][-_TOOL_OUTPUT_CHARS:]
    kept: list[str] = []
    for line in reversed(lines):
        if sum(len(k) + 3 for k in kept) + len(line) > _TOOL_OUTPUT_CHARS:
            break
        kept.insert(0, line)
    return " / ".join(kept)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the tool and everything it started: a child left holding our pipes would hang us."""
    if sys.platform == "win32":
        process.kill()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # Something escaped the process group and still holds a pipe: stop waiting for it.
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _run_tool(args: list[str], step: ExternalStep, context: StepContext, cwd: Path) -> None:
    tool = step.args[0]
    advice = f"install it or take the step out of pipeline {context.pipeline}"
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            # Its own process group, so a timeout or a cancel can stop everything it started.
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise StepError(
            f"the tool {tool!r} is not installed on this workstation; {advice}", retryable=True
        ) from exc
    except OSError as exc:
        raise StepError(
            f"the tool {tool!r} cannot be run ({exc.strerror or exc}); {advice}", retryable=True
        ) from exc
    deadline = time.monotonic() + step.timeout
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=_TOOL_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                context.stop_if_requested()
                if time.monotonic() >= deadline:
                    raise StepError(
                        f"the tool {tool!r} did not finish within {step.timeout:g} s; check it "
                        f"by hand, or raise timeout in pipeline {context.pipeline}",
                        retryable=True,
                    ) from None
    finally:
        if process.returncode is None:
            _kill(process)
    code = process.returncode
    said_on_stderr = _tail(stderr)
    if said_on_stderr:  # kept with the attempt, whether the tool succeeded or not
        attempt_log.note(f"{tool}: {said_on_stderr}")
    if code == 0:
        return
    if code > 0:
        how = f"exit code {code}"
    else:
        try:
            how = f"signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"signal {-code}"
    said = said_on_stderr or _tail(stdout)
    said = f" and said: {said}" if said else ""
    raise StepError(
        f"the tool {tool!r} failed with {how}{said}; check the tool and its arguments in "
        f"pipeline {context.pipeline}"
    )


def external(step: ExternalStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Run a studio tool on the current image (as PNG) and carry on with the image it writes.

    The metadata carries across the tool; an ICC profile in the tool's output replaces ours.
    """
    folder = Path(tempfile.mkdtemp(prefix="external-", dir=context.work_dir))
    try:
        source = folder / "input.png"
        target = folder / f"output{EXTENSIONS[step.output_format]}"
        # Level 1: the tool reads this file once, so speed matters more than its size.
        save_image(working, Encoding("png", "", compress_level=1), source)
        args = [
            a.replace("{input}", str(source)).replace("{output}", str(target)) for a in step.args
        ]
        _run_tool(args, step, context, folder)
        what = f"the tool {step.args[0]!r}"
        if not target.is_file():
            raise StepError(
                f"{what} finished without writing its output file; check that its arguments in "
                f"pipeline {context.pipeline} write to {{output}}"
            )
        try:
            image = context.read_back(target, step.output_format)
        except UnusableImage as exc:
            raise StepError(
                f"{what} wrote {exc}; check the tool and its arguments in pipeline "
                f"{context.pipeline}"
            ) from exc
        produced = WorkingImage.from_decoded(image)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return replace(
        working, image=produced.image, icc_profile=produced.icc_profile or working.icc_profile
    )
