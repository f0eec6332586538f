"""Fail when a function body in src/ is longer than the limit in pyproject.toml.

Ruff has the complexity rule (C901) but no length rule, so this is the other half of the lint gate
(`make lint`). A body is counted from its first statement after the docstring to its last line, so
the signature, decorators and docstring are free; nested functions count toward the function that
holds them (that is what a reader has to hold in mind). Case tables that are long by nature are
listed, each with its reason, under [tool.polyret.function-length] in pyproject.toml.

Usage: python tools/check_function_length.py [PATH ...]   (default: src)
"""

from __future__ import annotations

import ast
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LongFunction:
    path: Path
    line: int
    name: str  # dotted within its module: Class.method, outer.inner
    body_lines: int


def load_settings(pyproject: Path = ROOT / "pyproject.toml") -> tuple[int, dict[str, str]]:
    """(max body lines, {"module/path.py:qualified.name": reason}) from pyproject.toml."""
    section = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["polyret"]["function-length"]
    return int(section["max-body-lines"]), dict(section.get("exceptions", {}))


def body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the function's end."""
    body = fn.body
    first = body[0]
    if (
        len(body) > 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        first = body[1]
    return fn.end_lineno - first.lineno + 1


def long_functions(path: Path, limit: int) -> list[LongFunction]:
    found: list[LongFunction] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                n = body_lines(child)
                if n > limit:
                    found.append(LongFunction(path, child.lineno, name, n))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), "")
    return found


def check(paths: list[Path], limit: int, exceptions: dict[str, str]) -> list[str]:
    """One message per function over the limit that is not a listed exception."""
    problems = []
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for f in files:
            rel = f.resolve().relative_to(ROOT).as_posix() if f.resolve().is_relative_to(ROOT) else f.as_posix()
            for fn in long_functions(f, limit):
                if f"{rel}:{fn.name}" not in exceptions:
                    problems.append(f"{rel}:{fn.line}: {fn.name} has a {fn.body_lines}-line body (> {limit})")
    return problems


def main(argv: list[str]) -> int:
    limit, exceptions = load_settings()
    problems = check([Path(a) for a in argv] or [ROOT / "src"], limit, exceptions)
    for p in problems:
        print(p)
    if problems:
        print(
            f"{len(problems)} function(s) over {limit} body lines: split them, or list a case table with its "
            "reason under [tool.polyret.function-length] in pyproject.toml"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
