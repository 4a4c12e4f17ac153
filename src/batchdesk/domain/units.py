"""Numbers as people read them: sizes and counts."""


def format_size(size: int) -> str:
    """Return a byte count as text with a unit: 0 B, 999 B, 1.5 KB, 12.3 MB, 1.02 GB."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.5 or unit == "TB":
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return '1 file', '2 files', '1,000 files'."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"
