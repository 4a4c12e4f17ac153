"""The pipeline editor's preview latency for a 4K PNG through the `web-delivery` steps.

Baseline, in the same run on the same file: the same four steps called directly with Pillow (open,
save the PNG, Lanczos to a 2000 px long edge and save the JPEG, a 400 px JPEG thumbnail), with no
checks, no temporary files renamed into place and nothing loaded for the screen. Measured:

- **pipeline**: `try_pipeline`, as `batchdesk pipelines try` runs it (checks, one decode, each
  output written to a temporary file and renamed into place);
- **preview**: `run_preview`, what the editor's preview thread does: the pipeline, then the
  sample and every output loaded as QImages scaled for the screen;
- **end to end**: from a change in the editor to the preview shown, through `PipelinePreview`
  on its own thread, including its debounce delay, with a 10 ms timer on the GUI thread whose
  longest gap says whether the window stayed responsive.

Target: the preview takes at most 1.5x the direct Pillow baseline, and the GUI thread's longest
gap during the end-to-end run stays under 100 ms. No database is needed.

    .venv/bin/python bench/bench_pipeline_preview.py [--repeat 5] [--size 3840x2160]
"""

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtGui import QGuiApplication

from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.pipeline_spec import PipelineSpec, parse_pipeline
from batchdesk.jobs.pipeline_trial import try_pipeline
from benchsupport import below, median, seconds, verdict

from batchdesk.gui.pipeline_preview import PipelinePreview, run_preview

RATIO_TARGET = 1.5
GAP_TARGET = 0.100


def make_render(path: Path, size: tuple[int, int]) -> Path:
    """A PNG with a render's detail (gradients and noise), so encoders have real work to do."""
    noise = Image.effect_noise(size, 40)
    ramp = Image.linear_gradient("L").resize(size)
    Image.merge("RGB", (ramp, noise, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save(path)
    return path


def web_delivery() -> PipelineSpec:
    row = next(p for p in default_pipelines() if p["name"] == "web-delivery")
    return parse_pipeline(row["name"], row["description"], row["version"], row["steps"])


def direct_pillow(sample: Path, folder: Path) -> float:
    """The web-delivery steps written straight with Pillow; return the seconds taken."""
    began = time.perf_counter()
    with Image.open(sample) as opened:
        image = opened.convert("RGB")
    image.save(folder / "full.png", format="PNG", compress_level=6)
    scale = 2000 / max(image.size)
    web = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
    )
    web.save(folder / "web.jpg", format="JPEG", quality=85)
    thumb = web.copy()
    thumb.thumbnail((400, 400), Image.Resampling.LANCZOS)
    thumb.save(folder / "thumb.jpg", format="JPEG", quality=85)
    return time.perf_counter() - began


STEP_TIMES: list[str] = []  # the last trial's steps, for the report


def timed_pipeline(spec: PipelineSpec, sample: Path, folder: Path) -> float:
    began = time.perf_counter()
    trial = try_pipeline(spec, sample, folder)
    took = time.perf_counter() - began
    STEP_TIMES[:] = [f"{s.number} {s.op} {seconds(s.seconds)}" for s in trial.steps]
    return took


def timed_preview(spec: PipelineSpec, sample: Path) -> float:
    began = time.perf_counter()
    result = run_preview(1, spec, sample, threading.Event())
    seconds_taken = time.perf_counter() - began
    if result is None or result.error is not None or len(result.outputs) != 3:
        raise RuntimeError(f"the preview did not make three outputs: {result}")
    return seconds_taken


def end_to_end(spec: PipelineSpec, sample: Path, delay_ms: int) -> tuple[float, float]:
    """Request a preview as the editor does; return (seconds until shown, longest GUI gap)."""
    preview = PipelinePreview(delay_ms)
    loop = QEventLoop()
    shown: list[float] = []
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    def finished(_result: object) -> None:
        shown.append(time.perf_counter())
        loop.quit()

    probe = QTimer(interval=10)
    probe.timeout.connect(tick)
    preview.finished.connect(finished)
    began = last[0] = time.perf_counter()
    probe.start()
    preview.request(spec, sample)
    loop.exec()
    probe.stop()
    preview.wait()
    return shown[0] - began, max(gaps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", default="3840x2160", help="the sample's WIDTHxHEIGHT")
    parser.add_argument("--delay-ms", type=int, default=250, help="the editor's debounce")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    app = QGuiApplication.instance() or QGuiApplication([])
    root = Path(tempfile.mkdtemp(prefix="batchdesk-bench-preview-", dir="/tmp"))
    try:
        sample = make_render(root / "render-4k.png", (width, height))
        spec = web_delivery()
        print(f"sample: {width} x {height} RGB PNG, {sample.stat().st_size / 1e6:.1f} MB")
        print(f"steps: {', '.join(step.op for step in spec.steps)}")
        direct_pillow(sample, root)  # warm the file cache and Pillow's plugins
        bases, pipelines, previews, ratios = [], [], [], []
        for round_number in range(args.repeat):
            parts = [
                ("base", lambda: direct_pillow(sample, root)),
                ("pipeline", lambda: timed_pipeline(spec, sample, root / "try")),
                ("preview", lambda: timed_preview(spec, sample)),
            ]
            if round_number % 2:
                parts.reverse()  # noise hits each part alike
            took = {name: run() for name, run in parts}
            bases.append(took["base"])
            pipelines.append(took["pipeline"])
            previews.append(took["preview"])
            ratios.append(took["preview"] / took["base"])
            print(
                f"round {round_number + 1}: direct Pillow {seconds(took['base'])}, "
                f"pipeline {seconds(took['pipeline'])}, preview {seconds(took['preview'])}"
            )
        waits, worst_gaps = [], []
        for _ in range(args.repeat):
            wait, gap = end_to_end(spec, sample, args.delay_ms)
            waits.append(wait)
            worst_gaps.append(gap)
        ratio = median(ratios)
        gap = max(worst_gaps)
        print()
        print(f"direct Pillow (baseline)   {seconds(median(bases))}")
        print(
            f"pipeline (try_pipeline)    {seconds(median(pipelines))}  "
            f"{median(pipelines) / median(bases):.2f}x"
        )
        print(f"  its steps (last round): {'; '.join(STEP_TIMES)}")
        print(f"preview (run_preview)      {seconds(median(previews))}  {ratio:.2f}x (median)")
        print(
            f"end to end (change -> shown, {args.delay_ms} ms debounce included)  "
            f"{seconds(median(waits))}"
        )
        print(
            f"preview / direct Pillow: {ratio:.2f}x, target <= {RATIO_TARGET}x: "
            f"{verdict(ratio, RATIO_TARGET)}"
        )
        print(
            f"longest GUI-thread gap during the previews: {gap * 1000:.1f} ms, target < "
            f"{GAP_TARGET * 1000:.0f} ms: {below(gap, GAP_TARGET)}"
        )
        del app
        return 0 if ratio <= RATIO_TARGET and gap < GAP_TARGET else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
