"""README.md is the Space's front page, short, with the docs/ pages behind it: its size, the pages it links,
and every relative link of it and of docs/*.md (file and heading) leading somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINKED_FROM_README = ["docs/training.md", "docs/demo.md", "docs/api.md", "docs/deploy.md", "docs/limits.md",
                      "bench/RESULTS.md"]


def links(page: Path) -> list[str]:
    """The targets of the page's Markdown links, outside code blocks."""
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub and the Hub give the page's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", page.read_text(encoding="utf-8")), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_at_most_12000_characters():
    assert len(README.read_text(encoding="utf-8")) <= 12_000


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_to_a_file_that_exists(page):
    checked, broken = 0, []
    for target in filter(relative, links(page)):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve()
        if not file.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
        checked += 1
    assert broken == [] and checked > 0


def test_the_readme_links_every_page():
    targets = {(REPO / t.partition("#")[0]).resolve() for t in filter(relative, links(README))}
    missing = [p for p in LINKED_FROM_README if (REPO / p).resolve() not in targets]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_docs_page_links_back_to_the_readme(page):
    assert "../README.md" in {t.partition("#")[0] for t in links(page)}
