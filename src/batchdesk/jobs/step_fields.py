"""Reading one step's JSON fields, each checked, failing with one sentence that names the field.

`StepFields` wraps the raw JSON object of one step and offers a reader per kind of value (whole
numbers, numbers, flags, choices, colours, suffixes, text, lists of strings). Every reader either
returns a value of the promised type or raises `InvalidRequest` saying where, which field, what it
must be and what it was.
"""

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from batchdesk.errors import InvalidRequest
from batchdesk.jobs.step_specs import Colour

SUFFIX_MAX_LENGTH = 64
# Suffixes become part of file names on every OS and inside zips: keep them boring.
_SUFFIX_PATTERN = re.compile(r"[A-Za-z0-9_.@+-]*")
_COLOUR_PATTERN = re.compile(r"#([0-9a-fA-F]{6})")


def show(value: object) -> str:
    """Return a value as a person wrote it in JSON, shortened: 'big', 12, true, a list."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _number_text(value: float) -> str:
    return f"{value:g}"


def words(names: Iterable[str]) -> str:
    """Return names as a comma-separated list for a sentence."""
    return ", ".join(names)


class StepFields:
    """Read one step's fields, each checked, failing with a sentence that names the field."""

    def __init__(self, where: str, op: str, raw: Mapping[str, Any], allowed: Sequence[str]):
        self.where = where
        self.raw = raw
        for name in raw:
            if name == "op" or name in allowed:
                continue
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.fail(f"{show(name)} is not a field of {op}{hint}; its fields are {words(allowed)}")

    def fail(self, message: str) -> NoReturn:
        raise InvalidRequest(f"{self.where}: {message}.")

    def has(self, name: str) -> bool:
        return name in self.raw

    def _wrong(self, name: str, expected: str, value: object) -> NoReturn:
        self.fail(f"{name} must be {expected}, not {show(value)}")

    def _missing(self, name: str, expected: str) -> NoReturn:
        self.fail(f"{name} is missing; it must be {expected}")

    def whole(self, name: str, low: int, high: int, default: int | None = None) -> int:
        """Read a whole number in [low, high]; required when there is no default."""
        expected = f"a whole number from {low} to {high}"
        if name not in self.raw:
            if default is None:
                self._missing(name, expected)
            return default
        value = self.raw[name]
        # JSON has one number type: 2000.0 is a whole number, true is not a number at all.
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong(name, expected, value)
        if isinstance(value, float) and not value.is_integer():
            self._wrong(name, expected, value)
        if not low <= value <= high:
            self._wrong(name, expected, value)
        return int(value)

    def number(self, name: str, low: float, high: float, default: float) -> float:
        """Read a number in [low, high], or the default when the field is absent."""
        expected = f"a number from {_number_text(low)} to {_number_text(high)}"
        if name not in self.raw:
            return default
        value = self.raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong(name, expected, value)
        if not math.isfinite(value) or not low <= value <= high:
            self._wrong(name, expected, value)
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        if name not in self.raw:
            return default
        value = self.raw[name]
        if not isinstance(value, bool):
            self._wrong(name, "true or false", value)
        return value

    def choice(self, name: str, choices: Sequence[str], default: str | None = None) -> str:
        expected = "one of " + words(repr(c) for c in choices)
        if name not in self.raw:
            if default is None:
                self._missing(name, expected)
            return default
        value = self.raw[name]
        if not isinstance(value, str) or value not in choices:
            self._wrong(name, expected, value)
        return value

    def colour(self, name: str, default: str) -> Colour:
        """Read a colour written '#rrggbb'."""
        return self._colour(name, self.raw.get(name, default), "a colour like '#ffffff'")

    def colour_or_transparent(self, name: str, default: str) -> Colour | None:
        """Read '#rrggbb' or 'transparent' (returned as None)."""
        value = self.raw.get(name, default)
        if value == "transparent":
            return None
        return self._colour(name, value, "'transparent' or a colour like '#ffffff'")

    def _colour(self, name: str, value: object, expected: str) -> Colour:
        match = _COLOUR_PATTERN.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self._wrong(name, expected, value)
        rgb = int(match.group(1), 16)
        return (rgb >> 16, (rgb >> 8) & 0xFF, rgb & 0xFF)

    def suffix(self, name: str, default: str) -> str:
        expected = (
            f"text of at most {SUFFIX_MAX_LENGTH} letters, digits and the characters _ - . @ +"
        )
        value = self.raw.get(name, default)
        if (
            not isinstance(value, str)
            or len(value) > SUFFIX_MAX_LENGTH
            or not _SUFFIX_PATTERN.fullmatch(value)
        ):
            self._wrong(name, expected, value)
        return value

    def text(self, name: str, max_length: int) -> str | None:
        """Read optional text of 1 to `max_length` characters, without control characters."""
        if name not in self.raw:
            return None
        value = self.raw[name]
        expected = f"text of 1 to {max_length} characters"
        if (
            not isinstance(value, str)
            or not 1 <= len(value) <= max_length
            or any(ord(c) < 32 for c in value)
        ):
            self._wrong(name, expected, value)
        return value

    def strings(self, name: str, max_items: int, max_length: int) -> tuple[str, ...]:
        expected = f"a list of 1 to {max_items} strings"
        if name not in self.raw:
            self._missing(name, expected)
        value = self.raw[name]
        if not isinstance(value, list) or not 1 <= len(value) <= max_items:
            self._wrong(name, expected, value)
        for item in value:
            if not isinstance(item, str) or len(item) > max_length or "\0" in item:
                self._wrong(
                    name, f"{expected}, each at most {max_length} characters without NUL", item
                )
        return tuple(value)

    def forbid(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            if name in self.raw:
                self.fail(f"{name} {reason}")
