"""What the command line prints: sentences on stderr, JSON and tables on stdout."""

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from batchdesk.domain.units import format_size


def err(message: str) -> None:
    """Print one sentence for a person on stderr."""
    print(message, file=sys.stderr, flush=True)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return rows as left-aligned columns under their headers."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def short(text: str, width: int) -> str:
    """Return `text` on one line, cut with an ellipsis to at most `width` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def local_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


class ProgressLine:
    """A single updating progress line on stderr, shown only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        percent = 100 * done // total
        sys.stderr.write(f"\r{phase} {percent:3d}% ({format_size(done)} of {format_size(total)})")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
