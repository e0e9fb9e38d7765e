"""docs/limits.md is true: every constant it names holds the value it gives, and every limit of the modules
that bound uploads, decoding and Teach is on the page."""

from __future__ import annotations

import importlib
import re

import pytest

from conftest import REPO

PAGE = (REPO / "docs" / "limits.md").read_text(encoding="utf-8")
CONSTANT = re.compile(r"`((?:[a-z_]+\.)+[A-Z][A-Z0-9_]*)`")
LIMIT_NAME = re.compile(r"^(MAX|MIN)_|_(LIMIT|BYTES|SECONDS|WAITING)$")
MODULES = ("app", "demo.uploads", "demo.batch", "demo.teach", "demo.teach_server", "demo.tabs.teach",
           "training.tasks.image.decode", "training.tasks.speech.audio")


def rows() -> list[tuple[str, str]]:
    """(value cell, where cell) of every table row of the page."""
    out = []
    for line in PAGE.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and not set(cells[0]) <= {"-"} and cells[0] != "limit":
            out.append((cells[1], cells[2]))
    return out


def value_of(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def numbers(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


NAMED = [(value, dotted) for value, where in rows() for dotted in CONSTANT.findall(where)]


@pytest.mark.parametrize("value,dotted", NAMED, ids=[d for _, d in NAMED])
def test_each_value_on_the_page_is_the_codes(value, dotted):
    actual = value_of(dotted)
    if isinstance(actual, str):                      # "50mb"
        actual = float(re.match(r"\d+", actual).group())
    if isinstance(actual, (int, float)):
        assert float(actual) in numbers(value), f"{dotted} is {actual}; the page says {value!r}"
    elif isinstance(actual, re.Pattern):             # a name pattern: the longest name the page gives, no longer
        longest = int(max(numbers(value)))
        assert actual.fullmatch("a" * longest) and not actual.fullmatch("a" * (longest + 1))
    else:                                            # the formats: each one named
        assert all(str(name).lower() in value.lower() for name in actual), f"{dotted} is {actual}; the page says {value!r}"


def test_every_limit_of_the_bounding_modules_is_on_the_page():
    assert len(NAMED) > 40
    named = {dotted for _, dotted in NAMED}
    missing = []
    for module in MODULES:
        source = (REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", source, re.MULTILINE))   # not those it imports
        missing += [f"{module}.{name}" for name in sorted(defined) if LIMIT_NAME.search(name)
                    and not name.endswith("_VARIABLE") and f"{module}.{name}" not in named]
    assert missing == []
