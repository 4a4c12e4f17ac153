"""The customer prefix rule and the batch name format."""

import datetime
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchdesk.domain.naming import (
    DEFAULT_FALLBACK_PREFIX,
    DEFAULT_PREFIX_PATTERN,
    BatchName,
    PrefixRule,
    base_directory_name,
    is_valid_prefix,
    parse_base_directory_name,
    prefixes_in_order,
)
from batchdesk.errors import InvalidRequest

VALID_PREFIX = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")

# Surrogates included: file names that were not valid UTF-8 arrive surrogate-escaped.
any_character = st.characters(exclude_categories=())
# Mostly the characters the rule cares about, so generated names often match a prefix.
file_name_character = st.one_of(
    st.sampled_from("PLDXBACMEabc_-./\\0123456789 "), st.sampled_from("é\udcff")
)
any_text = st.one_of(st.text(any_character), st.text(file_name_character, max_size=40))
capitals = st.text(string.ascii_uppercase, min_size=1, max_size=16)

RULES = [
    PrefixRule(),
    PrefixRule(pattern=r"^(?P<prefix>[A-Z]{3})-"),
    PrefixRule(pattern=r"(\w+)"),
    PrefixRule(pattern=r"^(?:(?P<prefix>[a-z]+)|\d+)"),
    PrefixRule(pattern=r"(?P<prefix>.*)", fallback="X-1"),
]
any_rule = st.sampled_from(RULES)


@pytest.mark.parametrize(
    ("file_name", "prefix"),
    [
        ("PL_DXB191_image.png", "PL_DXB"),
        ("PL_DXB191_Front.png", "PL_DXB"),
        ("PL_DXB_front.png", "PL_DXB"),
        ("PL_DXB.png", "PL_DXB"),
        ("ACME_X_2_front.png", "ACME_X"),
        ("renders/2026/PL_DXB191_image.png", "PL_DXB"),
        ("C:\\renders\\PL_DXB191_image.png", "PL_DXB"),
    ],
)
def test_extract_reads_customer_prefix_from_file_name(file_name: str, prefix: str) -> None:
    assert PrefixRule().extract(file_name) == prefix


@pytest.mark.parametrize(
    "file_name",
    [
        "my_render.png",
        "Pl_dxb191_image.png",
        "PL_DXBfront.png",
        "render-01.png",
        "123_ABC.png",
        "PL_DXB191_image.png/",
        "PL_DXB/image.png",
        "",
        "\udcff.png",
    ],
)
def test_extract_falls_back_for_lower_case_and_unprefixed_names(file_name: str) -> None:
    assert PrefixRule().extract(file_name) == DEFAULT_FALLBACK_PREFIX


def test_extract_uses_configured_fallback() -> None:
    assert PrefixRule(fallback="UNSORTED").extract("my_render.png") == "UNSORTED"


def test_custom_pattern_takes_named_group_prefix() -> None:
    rule = PrefixRule(pattern=r"^(?P<prefix>[A-Z]{3})-")

    assert rule.extract("ACM-0001.png") == "ACM"
    assert rule.extract("ACME-0001.png") == DEFAULT_FALLBACK_PREFIX


def test_custom_pattern_takes_named_group_even_when_it_is_not_first() -> None:
    rule = PrefixRule(pattern=r"^(\d+)_(?P<prefix>[A-Z]+)")

    assert rule.extract("0042_ACM.png") == "ACM"


def test_custom_pattern_without_named_group_takes_first_group() -> None:
    rule = PrefixRule(pattern=r"^([A-Z]+)-(\d+)")

    assert rule.extract("ACM-0001.png") == "ACM"


def test_extract_tidies_what_the_pattern_finds() -> None:
    rule = PrefixRule(pattern=r"^(?P<prefix>[^.]*)")

    assert rule.extract("_acme corp__x-.png") == "ACME_CORP_X"
    assert rule.extract("__.png") == DEFAULT_FALLBACK_PREFIX


def test_extract_falls_back_when_group_is_not_part_of_the_match() -> None:
    rule = PrefixRule(pattern=r"^(?:(?P<prefix>[A-Z]+)-|\d+)")

    assert rule.extract("0001.png") == DEFAULT_FALLBACK_PREFIX


def test_extract_cuts_prefix_to_32_characters() -> None:
    # Two groups of 16 letters make 33 characters, one more than a prefix may have.
    name = "A" * 16 + "_" + "B" * 16 + "_front.png"

    assert PrefixRule().extract(name) == "A" * 16 + "_" + "B" * 15


def test_invalid_pattern_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidRequest, match=r"not a valid regular expression: missing \)"):
        PrefixRule(pattern=r"^(?P<prefix>[A-Z]+")


def test_pattern_without_group_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="has no group"):
        PrefixRule(pattern=r"^[A-Z]+_")


def test_pattern_that_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="must be text"):
        PrefixRule(pattern=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("fallback", ["", "misc", "_MISC", "-MISC", "MI SC", "A" * 33, "MISC\n"])
def test_bad_fallback_is_refused(fallback: str) -> None:
    with pytest.raises(InvalidRequest, match=r"fallback prefix .* is not valid"):
        PrefixRule(fallback=fallback)


def test_rules_with_same_settings_are_equal_and_hashable() -> None:
    assert PrefixRule() == PrefixRule(DEFAULT_PREFIX_PATTERN, DEFAULT_FALLBACK_PREFIX)
    assert len({PrefixRule(), PrefixRule(), PrefixRule(fallback="X")}) == 2


def test_rule_cannot_be_changed() -> None:
    rule = PrefixRule()

    with pytest.raises(AttributeError):
        rule.fallback = "X"  # type: ignore[misc]


def test_is_valid_prefix_accepts_only_the_prefix_shape() -> None:
    assert is_valid_prefix("PL_DXB")
    assert is_valid_prefix("9-A")
    assert not is_valid_prefix("PL_DXB\n")
    assert not is_valid_prefix("pl_dxb")


def test_prefixes_in_order_lists_each_prefix_once_in_first_seen_order() -> None:
    names = ["PL_DXB1.png", "my.png", "AB_CD_1.png", "PL_DXB2.png", "other.png"]

    assert prefixes_in_order(names, PrefixRule()) == ["PL_DXB", "MISC", "AB_CD"]


def test_prefixes_in_order_of_no_files_is_empty() -> None:
    assert prefixes_in_order(iter([]), PrefixRule()) == []


def test_base_directory_name_joins_prefix_date_and_counter() -> None:
    day = datetime.date(2026, 11, 28)

    assert base_directory_name("PL_DXB", day, 3) == "PL_DXB_2026-11-28_batch-3"
    assert str(BatchName("PL_DXB", day, 3)) == "PL_DXB_2026-11-28_batch-3"


def test_base_directory_name_pads_early_years_and_ignores_time() -> None:
    assert base_directory_name("A", datetime.date(5, 1, 2), 1) == "A_0005-01-02_batch-1"
    moment = datetime.datetime(2026, 11, 28, 23, 59)
    assert base_directory_name("A", moment, 1) == "A_2026-11-28_batch-1"


@pytest.mark.parametrize("counter", [0, -1])
def test_base_directory_name_refuses_counter_below_one(counter: int) -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        base_directory_name("PL_DXB", datetime.date(2026, 11, 28), counter)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PL_DXB_2026-11-28_batch-3", BatchName("PL_DXB", datetime.date(2026, 11, 28), 3)),
        ("MISC_2024-02-29_batch-120", BatchName("MISC", datetime.date(2024, 2, 29), 120)),
        (
            "X_2020-01-01_batch-1_2026-11-28_batch-3",
            BatchName("X_2020-01-01_batch-1", datetime.date(2026, 11, 28), 3),
        ),
    ],
)
def test_parse_base_directory_name_reads_the_parts(name: str, expected: BatchName) -> None:
    assert parse_base_directory_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "PL_DXB_2026-02-30_batch-1",
        "PL_DXB_2026-13-01_batch-1",
        "PL_DXB_0000-01-01_batch-1",
        "PL_DXB_2026-11-28_batch-0",
        "PL_DXB_2026-11-28_batch-03",
        "PL_DXB_2026-11-28_batch--3",
        "PL_DXB_2026-11-28_batch-",
        "PL_DXB_2026-11-28",
        "PL_DXB_26-11-28_batch-1",
        "_2026-11-28_batch-1",
        "PL_DXB_2026-11-28_batch-3.zip",
        "PL_DXB_2026-11-28_batch-3\n",
        "PL_DXB_2026-11-28_batch-٣",
        "PL_DXB_2026-11-28_batch-" + "9" * 5000,
        "",
    ],
)
def test_parse_base_directory_name_rejects_other_names(name: str) -> None:
    assert parse_base_directory_name(name) is None


@given(rule=any_rule, text=any_text)
def test_extract_always_returns_a_valid_prefix(rule: PrefixRule, text: str) -> None:
    assert VALID_PREFIX.fullmatch(rule.extract(text))


@st.composite
def prefixed_names(draw: st.DrawFn) -> tuple[str, str]:
    """Draw a file name that starts with a default-rule prefix, and that prefix."""
    first = draw(capitals)
    # Both groups at 16 letters would overflow the 32-character prefix (see the cut test above).
    second = draw(st.text(string.ascii_uppercase, min_size=1, max_size=min(16, 31 - len(first))))
    digits = draw(st.text(string.digits))
    not_a_letter = any_character.filter(lambda c: c not in string.ascii_letters + "/\\")
    rest = st.text(st.characters(exclude_categories=(), exclude_characters="/\\"))
    suffix = draw(st.one_of(st.just(""), st.tuples(not_a_letter, rest).map("".join)))
    prefix = f"{first}_{second}"
    return prefix + digits + suffix, prefix


@given(prefixed_names())
def test_extract_reads_generated_prefix_exactly(name_and_prefix: tuple[str, str]) -> None:
    name, prefix = name_and_prefix

    assert PrefixRule().extract(name) == prefix


no_separator_text = st.text(st.characters(exclude_categories=(), exclude_characters="/\\"))


@given(
    rule=any_rule,
    directory=st.sampled_from(["some/dir/", "C:\\renders\\", "/", "PL_DXB/", "a\\b/c/"]),
    name=st.one_of(no_separator_text, prefixed_names().map(lambda pair: pair[0])),
)
def test_extract_ignores_directories(rule: PrefixRule, directory: str, name: str) -> None:
    assert rule.extract(directory + name) == rule.extract(name)


valid_prefixes = st.from_regex(r"[A-Z0-9][A-Z0-9_-]{0,31}", fullmatch=True)


@given(prefix=valid_prefixes, batch_date=st.dates(), counter=st.integers(min_value=1))
def test_base_directory_name_parses_back(
    prefix: str, batch_date: datetime.date, counter: int
) -> None:
    name = base_directory_name(prefix, batch_date, counter)

    assert parse_base_directory_name(name) == BatchName(prefix, batch_date, counter)


@given(
    rule=any_rule,
    text=st.one_of(any_text, prefixed_names().map(lambda pair: pair[0])),
)
def test_extract_is_idempotent_on_its_own_output(rule: PrefixRule, text: str) -> None:
    prefix = rule.extract(text)

    if re.search(rule.pattern, prefix):
        assert rule.extract(prefix) == prefix
