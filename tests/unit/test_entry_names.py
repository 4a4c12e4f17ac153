"""Export names: one safe path component each, unique in their folder, whatever came in."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchdesk.export.entry_names import UniqueNames, collision_key, safe_component


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("PL_DXB191_view.png", "PL_DXB191_view.png"),
        ("../../etc/passwd", "passwd"),
        ("/abs/olute.png", "olute.png"),
        ("C:\\renders\\a.png", "a.png"),
        ("C:a.png", "C_a.png"),
        ("..", "file"),
        ("", "file"),
        ("con.png", "_con.png"),
        ("LPT1", "_LPT1"),
        ('what?"<*>|.png', "what______.png"),
        ("tab\there.png", "tab_here.png"),
        (".hidden.png", "_.hidden.png"),
        ("trailing. ", "trailing"),
        ("日本語 レンダー.png", "日本語 レンダー.png"),
    ],
)
def test_names_become_one_harmless_component(given_name: str, expected: str) -> None:
    assert safe_component(given_name) == expected


def test_a_long_name_is_cut_to_fit_and_keeps_its_extension() -> None:
    name = safe_component("é" * 400 + ".png")
    assert name.endswith(".png")
    assert len(name.encode("utf-8")) <= 240


@given(st.text(max_size=400))
def test_no_name_can_escape_or_hide(name: str) -> None:
    safe = safe_component(name)
    assert safe not in ("", ".", "..")
    assert "/" not in safe
    assert "\\" not in safe
    assert ":" not in safe
    assert all(ord(c) >= 32 and c != "\x7f" for c in safe)
    assert not safe.startswith(".")
    assert not safe.endswith((".", " "))
    assert len(safe.encode("utf-8")) <= 255


def test_collisions_get_numbered_in_the_order_they_come() -> None:
    names = UniqueNames(reserved=("manifest.csv",))
    claimed = [names.claim(n) for n in ["a.png", "A.png", "a.png", "a (2).png", "Manifest.csv"]]
    assert claimed == ["a.png", "A (2).png", "a (3).png", "a (2) (2).png", "Manifest (2).csv"]


def test_names_equal_after_unicode_normalisation_collide() -> None:
    composed = unicodedata.normalize("NFC", "é.png")
    decomposed = unicodedata.normalize("NFD", "é.png")
    names = UniqueNames()
    assert names.claim(composed) == "é.png"
    assert names.claim(decomposed) == "é (2).png"


@given(st.lists(st.text(max_size=30), max_size=40))
def test_claimed_names_never_collide(raw_names: list[str]) -> None:
    names = UniqueNames(reserved=("manifest.csv", "originals"))
    keys = [collision_key(names.claim(n)) for n in raw_names]
    assert len(set(keys)) == len(keys)
    assert not {"manifest.csv", "originals"} & set(keys)
