"""Fill a batchdesk home with a few realistic batches, for screenshots and trying the window.

    BATCHDESK_HOME=/tmp/demo .venv/bin/python scripts/demo_data.py

Renders are generated (a product shape on a studio backdrop), submitted like an artist would,
and some are run so the tree shows every state: completed, failed, processing, queued.
"""

import os
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from batchdesk.app import AppContext, open_app
from batchdesk.domain.file_selection import select_files
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage.submission import SubmissionRequest, submit

SIZE = (1600, 1200)


def render(path: Path, hue: int, view: int, size: tuple[int, int] = SIZE) -> Path:
    """A product render: a soft backdrop, a shadow and a rounded object."""
    image = _render_at_default_size(hue, view)
    if size != SIZE:
        image = image.resize(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, compress_level=1)
    return path


def _render_at_default_size(hue: int, view: int) -> Image.Image:
    backdrop = Image.linear_gradient("L").resize(SIZE).point(lambda v: 200 + v // 5)
    image = Image.merge("RGB", (backdrop, backdrop, backdrop.point(lambda v: min(255, v + 8))))
    draw = ImageDraw.Draw(image)
    cx, cy = SIZE[0] // 2 + (view - 1) * 120, SIZE[1] // 2
    shadow = Image.new("L", SIZE, 0)
    ImageDraw.Draw(shadow).ellipse((cx - 330, cy + 250, cx + 330, cy + 330), fill=120)
    image.paste((90, 90, 90), mask=shadow.filter(ImageFilter.GaussianBlur(30)))
    colour = ((hue * 53) % 200 + 40, (hue * 97) % 180 + 50, (hue * 151) % 200 + 40)
    draw.rounded_rectangle((cx - 260, cy - 300, cx + 260, cy + 270), radius=90, fill=colour)
    draw.ellipse((cx - 140, cy - 220, cx + 20, cy - 120), fill=(255, 255, 255))
    return image


def submit_files(app: AppContext, paths: list[Path], description: str, pipeline: str) -> None:
    selection = select_files(paths)
    request = SubmissionRequest(
        files=selection.files,
        source_paths=tuple(paths),
        description=description,
        pipeline=pipeline,
        created_by="anna@studio-ws-04",
    )
    submit(app.database, request)


def run_queue(app: AppContext) -> None:
    runner = Runner(app.database, RunnerConfig(threads=2))
    runner.start()
    runner.drained.wait()
    runner.stop()


def main() -> int:
    home = os.environ.get("BATCHDESK_HOME")
    if not home:
        print("Set BATCHDESK_HOME to the folder to fill.", file=sys.stderr)
        return 2
    renders = Path(home) / "renders"
    with open_app(None) as app:
        views = ("front", "side", "back", "top")
        submit_files(
            app,
            [render(renders / "a" / f"PL_DXB191_{v}.png", 1, i) for i, v in enumerate(views)],
            "3-view render, sofa Oslo",
            "web-delivery",
        )
        submit_files(
            app,
            [render(renders / "b" / f"QX_ABC7_{v}.png", 2, i) for i, v in enumerate(views[:3])]
            + [_damaged(renders / "b" / "QX_ABC7_detail.png")],
            "Lamp Aurora, retouch round 2",
            "ecommerce-square",
        )
        run_queue(app)  # those two finish: one completed, one failed
        submit_files(app, campaign(renders / "c"), "Spring campaign heroes", "web-delivery")
        submit_files(
            app,
            [render(renders / "d" / f"PL_DXB204_{v}.png", 9, i) for i, v in enumerate(views)],
            "Armchair Bergen, first pass",
            "thumbnails",
        )
    print(f"Demo batches are in {home}; open them with: BATCHDESK_HOME={home} scripts/run")
    return 0


def campaign(folder: Path) -> list[Path]:
    """36 large heroes (six looks, each in six crops' names): slow enough to watch being run."""
    looks = [
        render(folder / f"RN_LHR{n}_hero.png", 3 + n, n % 3, size=(3200, 2400)) for n in range(6)
    ]
    paths = []
    for n in range(36):
        path = folder / f"RN_LHR{n}_hero.png"
        if not path.exists():
            path.write_bytes(looks[n % 6].read_bytes())
        paths.append(path)
    return paths


def _damaged(path: Path) -> Path:
    """A render whose chunks are all there but whose image data is corrupt: the job fails."""
    content = bytearray(render(path, 5, 1).read_bytes())
    offset = 8  # after the signature: find the first image data chunk
    while content[offset + 4 : offset + 8] != b"IDAT":
        offset += 12 + int.from_bytes(content[offset : offset + 4], "big")
    middle = offset + 8 + int.from_bytes(content[offset : offset + 4], "big") // 2
    content[middle : middle + 8] = bytes(255 - b for b in content[middle : middle + 8])
    path.write_bytes(bytes(content))
    return path


if __name__ == "__main__":
    sys.exit(main())
