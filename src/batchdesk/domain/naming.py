"""How batches are named: the customer prefix taken from a file name, and the batch name itself.

A batch is named `{prefix}_{YYYY-MM-DD}_batch-{n}`, for example `PL_DXB_2026-11-28_batch-3`:
the customer prefix, the batch date, and a counter that starts at 1 for each customer and day.

The customer prefix is read from the start of a file name (directories are ignored). By default
it is two groups of 1 to 16 capital letters joined by an underscore, and it ends where something
other than a letter follows: digits, an underscore, a dot or the end of the name.

    PL_DXB191_image.png   ->  PL_DXB
    PL_DXB191_Front.png   ->  PL_DXB
    PL_DXB_front.png      ->  PL_DXB
    ACME_X.png            ->  ACME_X
    PL_DXBfront.png       ->  MISC   (the letters run on in lower case: not a prefix)
    my_render.png         ->  MISC   (lower case: not a customer)
    render-01.png         ->  MISC   (no prefix at all)

When no prefix is recognised the batch gets the fallback prefix, `MISC` unless configured.

A studio can set its own pattern (a Python regular expression searched in the file name) and its
own fallback. The pattern's group named `prefix` is the prefix, or its first group if none is
named `prefix`: `^(?P<prefix>[A-Z]{3})-` reads `ACM` from `ACM-0001.png`. Whatever the pattern
finds is tidied into a safe prefix: upper case, any character other than A-Z, 0-9, `_` or `-`
becomes `_`, repeated underscores become one, `_` and `-` are trimmed from both ends, and the
result is cut to 32 characters. If nothing is left, the fallback is used. So every prefix is 1 to
32 capital letters, digits, `_` or `-`, starting with a letter or a digit.
"""

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from batchdesk.errors import InvalidRequest

DEFAULT_PREFIX_PATTERN = r"^(?P<prefix>[A-Z]{1,16}_[A-Z]{1,16})(?![A-Za-z])"
DEFAULT_FALLBACK_PREFIX = "MISC"
PREFIX_MAX_LENGTH = 32

_VALID_PREFIX = re.compile(rf"[A-Z0-9][A-Z0-9_-]{{0,{PREFIX_MAX_LENGTH - 1}}}")
_NOT_PREFIX_CHARACTER = re.compile(r"[^A-Z0-9_-]")
_UNDERSCORE_RUN = re.compile(r"_{2,}")
_DIRECTORY_SEPARATOR = re.compile(r"[/\\]")
# Explicit ASCII classes: `\d` would also accept other scripts' digits, which int() then reads.
_BASE_DIRECTORY_NAME = re.compile(
    r"(?P<prefix>.+)_(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"_batch-(?P<counter>[1-9][0-9]*)",
    re.DOTALL,
)


def is_valid_prefix(prefix: str) -> bool:
    """Return whether `prefix` has the shape every customer prefix must have."""
    return _VALID_PREFIX.fullmatch(prefix) is not None


@dataclass(frozen=True)
class PrefixRule:
    """Where the customer prefix sits in a file name, and what to use when it is missing."""

    pattern: str = DEFAULT_PREFIX_PATTERN
    fallback: str = DEFAULT_FALLBACK_PREFIX
    # Derived from `pattern` once, in __post_init__; left out of eq/hash so rules compare by text.
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _group: int | str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Settings files are user-edited JSON, so check types too rather than fail with TypeError.
        if not isinstance(self.pattern, str):
            raise InvalidRequest(f"The prefix pattern must be text, not {self.pattern!r}.")
        try:
            regex = re.compile(self.pattern)
        except re.error as exc:
            raise InvalidRequest(
                f"The prefix pattern {self.pattern!r} is not a valid regular expression: {exc}."
            ) from exc
        group: int | str
        if "prefix" in regex.groupindex:
            group = "prefix"
        elif regex.groups >= 1:
            group = 1
        else:
            raise InvalidRequest(
                f"The prefix pattern {self.pattern!r} has no group to take the prefix from: "
                "add a named group (?P<prefix>...) around the prefix."
            )
        if not isinstance(self.fallback, str) or not is_valid_prefix(self.fallback):
            raise InvalidRequest(
                f"The fallback prefix {self.fallback!r} is not valid: use 1 to "
                f"{PREFIX_MAX_LENGTH} capital letters, digits, '_' or '-', "
                "starting with a letter or digit."
            )
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_group", group)

    def extract(self, file_name: str) -> str:
        """Return the customer prefix of `file_name`, or the fallback if it has none.

        Only the base name counts: directories before the last `/` or `\\` are ignored.
        """
        base_name = _DIRECTORY_SEPARATOR.split(file_name)[-1]
        match = self._regex.search(base_name)
        if match is None:
            return self.fallback
        found = match.group(self._group)
        if found is None:
            # The group sits in a branch of the pattern that did not take part in the match.
            return self.fallback
        return _normalise_prefix(found) or self.fallback


def _normalise_prefix(text: str) -> str:
    """Return `text` as a valid prefix, or an empty string if nothing usable is left."""
    prefix = _NOT_PREFIX_CHARACTER.sub("_", text.upper())
    prefix = _UNDERSCORE_RUN.sub("_", prefix).strip("_-")
    return prefix[:PREFIX_MAX_LENGTH].strip("_-")


def prefixes_in_order(file_names: Iterable[str], rule: PrefixRule) -> list[str]:
    """Return the distinct prefixes of `file_names`, in the order they first appear."""
    return list(dict.fromkeys(rule.extract(name) for name in file_names))


def base_directory_name(prefix: str, batch_date: datetime.date, counter: int) -> str:
    """Return the batch name `{prefix}_{YYYY-MM-DD}_batch-{counter}`.

    Raises:
        ValueError: if `counter` is less than 1.
    """
    if counter < 1:
        raise ValueError(f"A batch counter starts at 1, not {counter}.")
    # Padded by hand: strftime's %Y does not pad years before 1000 on every platform, and a
    # datetime passed as the date must not add its time.
    day = f"{batch_date.year:04d}-{batch_date.month:02d}-{batch_date.day:02d}"
    return f"{prefix}_{day}_batch-{counter}"


@dataclass(frozen=True)
class BatchName:
    """The three parts a batch's name is made of."""

    prefix: str
    batch_date: datetime.date
    counter: int

    def __str__(self) -> str:
        return base_directory_name(self.prefix, self.batch_date, self.counter)


def parse_base_directory_name(name: str) -> BatchName | None:
    """Return the parts of a batch name made by `base_directory_name`, or None if it is not one.

    The prefix is everything before the last `_YYYY-MM-DD_batch-N`; a name with an impossible
    date, a counter below 1 or a counter with leading zeros is not a batch name.
    """
    match = _BASE_DIRECTORY_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        batch_date = datetime.date(int(match["year"]), int(match["month"]), int(match["day"]))
        # int() also refuses a counter of thousands of digits (CPython's conversion limit).
        counter = int(match["counter"])
    except ValueError:
        return None
    return BatchName(prefix=match["prefix"], batch_date=batch_date, counter=counter)
