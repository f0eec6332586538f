"""Issue 24: start-up costs nothing. `import polyret.cli`, the `--help` of every command and
subcommand, `polyret data status` and a bad-input error import none of the heavy libraries.

Static checks (tests/test_architecture.py) cannot see an import that runs at import time inside a
function (`class X(base())`); these run the real code in a fresh interpreter and read `sys.modules`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "scipy", "sklearn", "matplotlib")
SRC = Path(__file__).resolve().parents[1] / "src"


def _fresh(code: str, cwd: Path, timeout: float = 600) -> dict:
    """Run `code` in a new interpreter (this checkout's src first); it prints one JSON object last."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", COLUMNS="120")
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


HEAVY_LOADED = f"sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))"


def test_import_polyret_cli_imports_no_heavy_library(tmp_path):
    got = _fresh(
        f"""
        import json, sys
        import polyret.cli
        print(json.dumps({HEAVY_LOADED}))
    """,
        tmp_path,
    )
    assert got == []


def test_every_help_data_status_and_a_bad_input_import_no_heavy_library(tmp_path):
    """One interpreter walks the whole command tree and asks each command for --help (in process, as
    the console script does), then runs `data status` on a small data folder and one bad input; after
    each, no heavy library may be loaded."""
    data = tmp_path / "data" / "lareqa" / "xquad-r"
    data.mkdir(parents=True)
    (data / "en.json").write_text('{"data": []}', encoding="utf-8")
    got = _fresh(
        f"""
        import contextlib, io, json, sys
        import typer.main
        from polyret.cli import app, main

        def walk(cmd, path):
            yield path
            for name, sub in sorted(getattr(cmd, "commands", {{}}).items()):
                yield from walk(sub, path + [name])

        def run(args):
            out, err = io.StringIO(), io.StringIO()
            code = 0
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(args)
                except SystemExit as e:
                    code = e.code
            return code, out.getvalue() + err.getvalue()

        report = {{}}
        for path in walk(typer.main.get_command(app), []):
            code, text = run(path + ["--help"])
            report[" ".join(path + ["--help"])] = [code, "Usage" in text, {HEAVY_LOADED}]
        code, text = run(["data", "status", "--data", "data"])
        report["data status"] = [code, "xquad-r" in text, {HEAVY_LOADED}]
        code, text = run(["eval", "lareqa", "--data", "no-such-folder", "--out", "o"])
        report["bad input"] = [code, "no such LAReQA" in text, {HEAVY_LOADED}]
        print(json.dumps(report))
    """,
        tmp_path,
    )
    # the walk saw the whole tree: the root, 4 groups and their commands
    assert {"--help", "eval --help", "eval xnli --help", "data download --help", "correction show --help"} <= set(got)
    assert len(got) >= 27 + 2, sorted(got)
    for name, (code, expected_text, heavy) in got.items():
        assert heavy == [], f"{name} imported {heavy}"
        assert expected_text, name
        assert code == (2 if name == "bad input" else 0), (name, code)
    assert not (tmp_path / "o").exists()


def test_data_status_and_bad_inputs_import_neither_pydantic_nor_numpy(tmp_path):
    """typer converts option values with pydantic (polyret.cli.coercion converts the plain ones itself),
    and the refusals below come before any array exists: each run, in its own interpreter, loads neither
    (pydantic + numpy were most of these commands' start-up: benchmarks/startup.py)."""
    data = tmp_path / "data" / "lareqa" / "xquad-r"
    data.mkdir(parents=True)
    (data / "en.json").write_text('{"data": []}', encoding="utf-8")
    runs = {
        "data status": (["data", "status", "--data", "data"], 0, "xquad-r"),
        "eval lareqa, missing --data": (["eval", "lareqa", "--data", "no-such", "--out", "o"], 2, "no such LAReQA"),
        "eval lareqa, empty --data": (["eval", "lareqa", "--data", "data", "--out", "o"], 2, "no LL.json files"),
        "eval xnli, missing --data": (["eval", "xnli", "--data", "no-such", "--out", "o"], 2, "does not exist"),
        "eval beir, missing --data": (["eval", "beir", "--data", "no-such", "--out", "o"], 2, "does not exist"),
    }
    for name, (args, expected_code, expected_text) in runs.items():
        got = _fresh(
            f"""
            import contextlib, io, json, sys
            from polyret.cli import main
            err = io.StringIO()
            code = 0
            with contextlib.redirect_stdout(err), contextlib.redirect_stderr(err):
                try:
                    main({args!r})
                except SystemExit as e:
                    code = e.code
            print(json.dumps([code, err.getvalue(), sorted({{m.split('.')[0] for m in sys.modules}} & {{"pydantic", "numpy"}})]))
        """,
            tmp_path,
        )
        assert got[0] == expected_code, (name, got)
        assert expected_text in got[1], (name, got[1])
        assert got[2] == [], f"{name} imported {got[2]}"
    assert not (tmp_path / "o").exists()


def test_plain_option_values_match_typers_own_conversion():
    """polyret.cli.coercion converts without pydantic exactly what typer's adapter converts, and leaves
    the rest (malformed, out of range) to typer's adapter, whose refusal is the one users see."""
    from pathlib import Path as P

    from typer._adapters import try_build_adapter
    from typer.models import OptionInfo

    from polyret.cli.coercion import _MISS, plain_value

    cases = [  # (annotation, option settings, value, the value the option gets)
        (str, {}, "xquad-r", "xquad-r"),
        (str, {}, "", ""),
        (int, {}, "64", 64),
        (int, {}, "+7", 7),
        (int, {}, "-3", -3),
        (int, {}, "007", 7),
        (int, {}, 32, 32),
        (int, {"min": 1}, "1", 1),
        (float, {}, "0.5", 0.5),
        (float, {}, "1e-3", 0.001),
        (float, {}, ".5", 0.5),
        (float, {}, "5.", 5.0),
        (float, {}, 2, 2.0),
        (float, {"min": 0.0, "max": 1.0}, "1", 1.0),
        (bool, {}, True, True),
        (P, {}, "runs/x", P("runs/x")),
        (P, {}, P("a"), P("a")),
        (list[str], {}, ("a", "b"), ["a", "b"]),
        (list[P], {}, ("a",), [P("a")]),
    ]
    for annotation, settings, value, expected in cases:
        info = OptionInfo(**settings)
        got = plain_value(annotation, info, value)
        assert got == expected and type(got) is type(expected), (annotation, value, got)
        typers = try_build_adapter(annotation, info).validate_python(value)
        assert typers == expected and type(typers) is type(expected), (annotation, value, typers)
    # left to typer: its adapter accepts some (" 5", "1_000", "nan") and refuses others with its message
    for annotation, settings, value in [
        (int, {}, " 5"),
        (int, {}, "1_000"),
        (int, {}, "abc"),
        (int, {}, "1.5"),
        (int, {"min": 1}, "0"),
        (float, {}, "nan"),
        (float, {"max": 1.0}, "2"),
        (int, {"min": 0, "clamp": True}, "-1"),
        (bool, {}, "yes"),
        (P, {}, ""),
        (int, {}, True),
        (list[int], {}, ("1", "x")),
    ]:
        assert plain_value(annotation, OptionInfo(**settings), value) is _MISS, (annotation, value)
