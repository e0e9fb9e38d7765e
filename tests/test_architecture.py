"""The seams the task contract promises: no function longer than 60 lines, no module longer than 400 and
none without an opening docstring saying its job, no import cycle, and no module outside a task's own
package asking which task it is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

MAX_LINES = 60
MAX_MODULE_LINES = 400
PACKAGES = ("training", "demo")


def source_files() -> list[Path]:
    files = [REPO / "app.py"]
    for package in PACKAGES:
        files += sorted(p for p in (REPO / package).rglob("*.py") if "examples" not in p.parts)
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, at the top or inside functions (`from a import b` counts as
    importing a.b when that is a module, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found & known


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in source_files()}
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}   # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_no_import_cycle_in_training_demo_or_the_app():
    graph = import_graph()
    assert "training.engine" in graph and "training.records" in graph["training.engine"]   # the graph is real
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]


def test_no_function_is_longer_than_60_lines():
    assert len(source_files()) > 30
    assert long_functions(REPO / "app.py") == []
    offenders = [f for path in source_files() for f in long_functions(path)]
    assert offenders == []


def long_modules(paths, root: Path = REPO) -> list[str]:
    """'path: N lines' for each module over MAX_MODULE_LINES, and 'path: no docstring' for each module
    (but an empty __init__.py) that does not open with one; paths relative to `root`."""
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            out.append(f"{path.relative_to(root)}: {lines} lines")
        if text.strip() and ast.get_docstring(ast.parse(text)) is None:
            out.append(f"{path.relative_to(root)}: no docstring")
    return out


def test_no_module_is_longer_than_400_lines_and_each_says_its_job():
    assert long_modules(source_files()) == []


def test_the_module_check_finds_long_and_undocumented_modules(tmp_path):
    long, bare, fine = tmp_path / "long.py", tmp_path / "bare.py", tmp_path / "fine.py"
    long.write_text('"""A module."""\n' + "x = 1\n" * MAX_MODULE_LINES)
    bare.write_text("x = 1\n")
    fine.write_text('"""A module."""\n' + "x = 1\n" * (MAX_MODULE_LINES - 1))
    assert long_modules([long, bare, fine], tmp_path) == [f"long.py: {MAX_MODULE_LINES + 1} lines",
                                                          "bare.py: no docstring"]


# `task == "image"`, `name != "speech"`, `config["task"] == "text"`, `.NAME == "image"`: code that asks which
# task it is looking at. Only a task's own package may know its name.
TASK_TEST = re.compile(r"""(==|!=|\bin)\s*\(?\s*["'](image|text|speech)["']|["'](image|text|speech)["']\s*(==|!=)""")


def test_no_module_outside_a_task_package_asks_which_task_it_is():
    outside = [p for p in source_files() if "tasks" not in p.relative_to(REPO).parts[:2]]
    assert any(p.name == "engine.py" for p in outside)
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in outside
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if TASK_TEST.search(line)]
    assert hits == []


@pytest.mark.parametrize("line", ['if task.NAME == "image":', "elif task == 'speech':", 'if name in ("text",):',
                                  'x = "image" == kind'])
def test_the_task_test_pattern_matches_what_it_should(line):
    assert TASK_TEST.search(line)
