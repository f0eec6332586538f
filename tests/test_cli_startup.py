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
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


HEAVY_LOADED = f"sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))"


def test_import_polyret_cli_imports_no_heavy_library(tmp_path):
    got = _fresh(f"""
        import json, sys
        import polyret.cli
        print(json.dumps({HEAVY_LOADED}))
    """, tmp_path)
    assert got == []


def test_every_help_data_status_and_a_bad_input_import_no_heavy_library(tmp_path):
    """One interpreter walks the whole command tree and asks each command for --help (in process, as
    the console script does), then runs `data status` on a small data folder and one bad input; after
    each, no heavy library may be loaded."""
    data = tmp_path / "data" / "lareqa" / "xquad-r"
    data.mkdir(parents=True)
    (data / "en.json").write_text('{"data": []}', encoding="utf-8")
    got = _fresh(f"""
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
    """, tmp_path)
    # the walk saw the whole tree: the root, 4 groups and their commands
    assert {"--help", "eval --help", "eval xnli --help", "data download --help", "correction show --help"} <= set(got)
    assert len(got) >= 27 + 2, sorted(got)
    for name, (code, expected_text, heavy) in got.items():
        assert heavy == [], f"{name} imported {heavy}"
        assert expected_text, name
        assert code == (2 if name == "bad input" else 0), (name, code)
    assert not (tmp_path / "o").exists()
