"""What the command line prints: sentences on stderr, JSON and tables on stdout."""

import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from batchdesk.domain.units import format_size

# Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts sequences
# that recolour, move the cursor, clear the screen or set the window title), DEL, the line and
# paragraph separators, and the bidirectional marks, embeddings, overrides and isolates
# (U+202E shows what follows right to left, so a name can reorder a table's columns).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """Return `text` with every terminal control character written out, e.g. `\\x1b`, `\\u202e`.

    For everything printed for people that came from people or files: descriptions, file
    names, errors, who submitted. `--json` prints the values exactly.
    """
    return _INVISIBLE.sub(_escape, text)


def err(message: str) -> None:
    """Print one sentence for a person on stderr, control characters made visible."""
    print(visible(message), file=sys.stderr, flush=True)


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
    """Return `text` on one line, made visible, cut with an ellipsis to at most `width`."""
    text = visible(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def local_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


class ProgressLine:
    """A single updating progress line on stderr, shown only when stderr is a terminal."""

    def __init__(self, counting: str | None = None) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False
        self.counting = counting  # what is counted ("folders"); None: bytes

    def __call__(
        self, phase: str, done: int, total: int, files: tuple[int, int] | None = None
    ) -> None:
        """Show `done` of `total`, and with `files`, (files done, files in all) beside it."""
        if not self.enabled or total == 0:
            return
        percent = 100 * done // total
        if self.counting:
            amount = f"{done:,} of {total:,} {self.counting}"
        else:
            amount = f"{format_size(done)} of {format_size(total)}"
        if files:
            amount += f", {files[0]:,} of {files[1]:,} files"
        sys.stderr.write(f"\r{phase} {percent:3d}% ({amount})")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
