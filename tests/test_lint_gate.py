"""The function-length half of the lint gate (tools/check_function_length.py): what it counts and
where its settings come from. `make lint` runs it over src/ next to ruff's own rules."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_function_length", ROOT / "tools" / "check_function_length.py")
checker = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = checker  # dataclasses look their module up there
_spec.loader.exec_module(checker)


def _function(body_lines: int, docstring_lines: int = 0, name: str = "f") -> str:
    doc = ['    """' + "doc" * (docstring_lines > 0)] + ["    more"] * max(docstring_lines - 2, 0) + ['    """']
    doc = doc if docstring_lines >= 2 else []
    body = [f"    x{i} = {i}" for i in range(body_lines)]
    return "\n".join([f"def {name}(", "    a,", "    b,", "):"] + doc + body) + "\n"


def test_the_body_is_counted_without_signature_and_docstring(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(_function(80, docstring_lines=30, name="fits") + _function(81, name="too_long"))
    found = checker.long_functions(f, 80)
    assert [(x.name, x.body_lines) for x in found] == [("too_long", 81)]


def test_methods_and_nested_functions_are_named_and_counted_in_their_holder(tmp_path):
    inner = textwrap.indent(_function(79, name="inner"), "    ")
    src = "class C:\n" + textwrap.indent("def outer():\n" + inner + "    return inner\n", "    ")
    f = tmp_path / "m.py"
    f.write_text(src)
    # outer's body: the 4 signature lines of inner, its 79 statements, the return = 84 lines
    assert [(x.name, x.body_lines) for x in checker.long_functions(f, 80)] == [("C.outer", 84)]


def test_listed_exceptions_pass_and_others_fail(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(_function(90, name="table") + _function(90, name="driver"))
    problems = checker.check([f], 80, {f"{f.as_posix()}:table": "a case table"})
    assert len(problems) == 1 and "driver has a 90-line body (> 80)" in problems[0]


def test_settings_come_from_pyproject():
    limit, exceptions = checker.load_settings()
    assert limit == 80
    assert all(reason.strip() for reason in exceptions.values()), "every exception needs its reason"
