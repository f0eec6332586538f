"""The package's shape, read from its source with `ast`: no import cycles, nothing below `cli/`
imports `cli/`, in-package imports at module top (only modules that pull in a heavy optional
library may be imported inside a function, and the CLI's command modules import the library inside
the command that runs it), and no module longer than ~600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# Libraries that take seconds to import or are optional: importing them (or a polyret module that
# imports them at its top) inside the function that needs them keeps `import polyret...` cheap.
HEAVY = {"torch", "sentence_transformers", "transformers", "faiss", "matplotlib", "sklearn", "scipy", "datasets"}
MAX_LINES = 600
# The CLI's command modules (cli/*_cmd.py) import the library inside the command function: `polyret
# --help`, a bad option or `data status` then load none of it (tests/test_cli_startup.py measures the
# effect at run time; benchmarks/startup.py the cost). Library modules keep their imports at the top.
LAZY_IMPORTERS = "polyret.cli."


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "polyret").rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _target(module: str, name: str | None) -> str:
    """`from a.b import c`: the submodule a.b.c when c is one, else a.b."""
    full = f"{module}.{name}" if name else module
    return full if full in MODULES else module


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top?) for every import statement in the file."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.extend((_target(child.module, a.name), child.lineno, top) for a in child.names)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            else:
                visit(child, top)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


IMPORTS = {m: _imports(p) for m, p in MODULES.items()}


def _heavy_modules() -> set[str]:
    """polyret modules that import a heavy library at their top, directly or through another."""
    heavy = {m for m, imps in IMPORTS.items() if any(n.split(".")[0] in HEAVY for n, _, top in imps if top)}
    while True:
        more = {m for m, imps in IMPORTS.items() if m not in heavy and any(n in heavy for n, _, top in imps if top)}
        if not more:
            return heavy
        heavy |= more


def test_the_walker_sees_the_package():
    assert {"polyret.cli.app", "polyret.experiment.runner", "polyret.evaluate.result"} <= set(MODULES)
    assert ("polyret.evaluate.result", True) in {(n, top) for n, _, top in IMPORTS["polyret.experiment.runner"]}


def test_no_import_cycles():
    """Every in-package import counts, also those inside functions (that is how cycles hide)."""
    g = nx.DiGraph()
    for m, imps in IMPORTS.items():
        g.add_node(m)
        g.add_edges_from((m, n) for n, _, _ in imps if n in MODULES and n != m)
    # A package's __init__ re-exporting its own submodules is not a cycle: importing polyret.x.y
    # runs polyret.x first by Python's rules, whatever the edges say.
    g.remove_edges_from([(a, b) for a, b in g.edges if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles[:5])


def test_nothing_below_cli_imports_cli():
    upward = [
        f"{m}:{line} imports {n}"
        for m, imps in IMPORTS.items()
        if not m.startswith("polyret.cli") and m != "polyret.__main__"
        for n, line, _ in imps
        if n == "polyret.cli" or n.startswith("polyret.cli.")
    ]
    assert not upward, "library code must not import the CLI: " + "; ".join(upward)


def test_in_package_imports_are_at_module_top_unless_heavy():
    heavy = _heavy_modules()
    hidden = [
        f"{m}:{line} imports {n}"
        for m, imps in IMPORTS.items()
        for n, line, top in imps
        if not top and n.startswith("polyret") and n in MODULES and n not in heavy and not m.startswith(LAZY_IMPORTERS)
    ]
    assert not hidden, f"{len(hidden)} in-package imports inside functions: " + "; ".join(hidden)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module):
    n = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{MODULES[module]} has {n} lines (> {MAX_LINES}): split it along its sections"
