"""Issue 28 (the CLI's part): every option that can be checked without a model is checked before one
loads, as one line naming the option or path, with the documented exit code (docs/cli.md), and no
`Traceback` ever reaches the user. Each case runs the real command in a subprocess; none may load a
model (they all answer within the start-up time) or write anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyret.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"


def polyret(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", COLUMNS="200", HF_HUB_OFFLINE="1"
    )
    return subprocess.run(
        [sys.executable, "-m", "polyret", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# name -> (arguments, words the one error line must hold); {F}: a regular file, {N}: a missing path
CASES = {
    "xnli --cs negative": (
        ["eval", "xnli", "--out", "o", "--cs", "-1"],
        "--cs must be comma-separated positive numbers",
    ),
    "xnli --cs zero": (["eval", "xnli", "--out", "o", "--cs", "0.1,0"], "--cs must be"),
    "xnli --cs text": (["eval", "xnli", "--out", "o", "--cs", "a,b"], "--cs must be comma-separated numbers"),
    "xnli --fine-tune-steps 0": (["eval", "xnli", "--out", "o", "--fine-tune-steps", "0"], "--fine-tune-steps"),
    "xnli --fine-tune-layers": (["eval", "xnli", "--out", "o", "--fine-tune-layers", "top"], "--fine-tune-layers"),
    "xnli --fine-tune-lr": (["eval", "xnli", "--out", "o", "--fine-tune-lr", "-1e-5"], "--fine-tune-lr"),
    "xnli --max-rows 0": (["eval", "xnli", "--out", "o", "--max-rows", "0"], "--max-rows"),
    "xnli --data missing": (["eval", "xnli", "--out", "o", "--data", "{N}"], "{N}"),
    "xnli --out a file": (["eval", "xnli", "--out", "{F}"], "{F}"),
    "tatoeba --batch-size 0": (["eval", "tatoeba", "--langs", "de", "--batch-size", "0"], "--batch-size"),
    "lareqa --batch-size 0": (["eval", "lareqa", "--out", "o", "--batch-size", "0"], "--batch-size"),
    "lareqa --out a file": (["eval", "lareqa", "--out", "{F}"], "{F}"),
    "beir --k 10": (["eval", "beir", "--data", ".", "--out", "o", "--k", "10"], "--k"),
    "beir --hnsw-ef-search 0": (
        ["eval", "beir", "--data", ".", "--out", "o", "--hnsw-ef-search", "0"],
        "--hnsw-ef-search",
    ),
    "beir --data a file": (["eval", "beir", "--data", "{F}", "--out", "o"], "{F}"),
    "miracl --chunk-size 0": (["eval", "miracl", "--lang", "sw", "--out", "o", "--chunk-size", "0"], "--chunk-size"),
    "miracl --qrels missing": (["eval", "miracl", "--lang", "sw", "--out", "o", "--qrels", "{N}"], "{N}"),
    "encode-corpus --batch-size 0": (
        ["encode-corpus", "--corpus", "{F}", "--out", "o", "--batch-size", "0"],
        "--batch-size",
    ),
    "encode-corpus --corpus missing": (["encode-corpus", "--corpus", "{N}", "--out", "o"], "{N}"),
    "encode-corpus --prompt": (
        ["encode-corpus", "--corpus", "{F}", "--out", "o", "--prompt", "doc"],
        "--prompt must be",
    ),
    "encode --max-length 0": (["encode", "--input", "{F}", "--out", "o.npy", "--max-length", "0"], "--max-length"),
    "train --steps 0": (["train", "--out", "o", "--steps", "0"], "--steps"),
    "train --alpha 2": (["train", "--out", "o", "--alpha", "2"], "--alpha"),
    "train --config missing": (["train", "--out", "o", "--config", "{N}"], "{N}"),
    "ablation --permutations 0": (
        ["ablation", ".", ".", "--suite", "s", "--out", "o", "--permutations", "0"],
        "--permutations",
    ),
    "ablation side missing": (
        ["ablation", "{N}", "{N}", "--suite", "s", "--suite-b", "t", "--out", "o"],
        "{N}: no summary.json",
    ),
    "xnli-compare side missing": (["eval", "xnli-compare", "{N}", "{F}"], "{N}"),
    "correction fit --n-directions 0": (["correction", "fit", "--n-directions", "0"], "--n-directions"),
    "download --out a file": (["data", "download", "--out", "{F}"], "{F}"),
    "download --dest a file": (["data", "download", "--dest", "{F}"], "{F}"),
    "download --out below a file": (["data", "download", "--out", "{F}/sub"], "{F} is a file"),
    "download --mirror missing folder": (
        ["data", "download", "--out", "d", "--mirror", "{N}"],
        "--mirror {N}: {N} does not exist",
    ),
    "download --mirror missing file URL": (
        ["data", "download", "--out", "d", "--mirror", "file://{N}"],
        "does not exist",
    ),
    "download --mirror a file": (["data", "download", "--out", "d", "--mirror", "{F}"], "is not a folder"),
    "download --mirror ftp": (
        ["data", "download", "--out", "d", "--mirror", "ftp://example.org/x"],
        "unsupported URL scheme",
    ),
    "download --mirror remote file URL": (
        ["data", "download", "--out", "d", "--mirror", "file://host/x"],
        "host 'host'",
    ),
    "status --data missing": (
        ["data", "status", "--data", "{N}"],
        "--data {N}: no data directory there (does not exist)",
    ),
    "status --data a file": (["data", "status", "--data", "{F}"], "--data {F}: no data directory there (is a file"),
    "unknown option": (["eval", "beir", "--no-such-option"], "No such option: --no-such-option"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_option_is_one_line_exit_2_before_any_model(case, tmp_path):
    args, words = CASES[case]
    n, f = tmp_path / "nonexistent", tmp_path / "a-file"
    f.write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    r = polyret(*[a.format(N=n, F=f) for a in args], cwd=tmp_path)
    err = r.stderr
    assert r.returncode == 2, (r.returncode, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in r.stdout
    lines = [line for line in err.splitlines() if line.strip() and "is deprecated" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words.format(N=n, F=f) in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made
    assert f.read_text() == "not a folder"


def test_status_with_a_missing_data_folder_names_it_not_the_default_places(tmp_path):
    r = polyret("data", "status", "--data", tmp_path / "gone", cwd=tmp_path)
    assert r.returncode == 2 and str(tmp_path / "gone") in r.stderr and "tried" not in r.stderr


@pytest.mark.parametrize("as_url", [False, True])
def test_download_from_a_local_mirror(tmp_path, shared_data, as_url):
    """A local folder (or its file:// URL) with the data directory's layout serves `data download`."""
    from conftest import need

    src = need(shared_data, "lareqa", "xquad-r")
    mirror = shared_data.resolve().as_uri() if as_url else str(shared_data)
    r = polyret("data", "download", "--only", "xquad-r", "--out", tmp_path / "d", "--mirror", mirror, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = sorted(p.name for p in (tmp_path / "d" / "lareqa" / "xquad-r").glob("*.json"))
    assert got == sorted(p.name for p in src.glob("*.json")) and len(got) == 11
    assert r.stderr.count("  verified") == 11  # each file checked against its published sha256
    for name in got:
        assert (tmp_path / "d" / "lareqa" / "xquad-r" / name).read_bytes() == (src / name).read_bytes()


def _failing(exc: BaseException):
    def command(*args, **kwargs):
        raise exc

    return command


@pytest.mark.parametrize(
    "exc, code, words",
    [
        (
            RuntimeError("boom"),
            1,
            "internal error: RuntimeError: boom (a bug in polyret; POLYRET_DEBUG=1 shows the traceback)",
        ),
        (PermissionError(13, "Permission denied", "/some/where"), 2, "/some/where: Permission denied"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_exit_codes_without_a_traceback(exc, code, words, tmp_path, monkeypatch, capsys):
    """1: polyret's own failure; 2: the environment (an OSError naming its file); 130: Ctrl-C."""
    import polyret.data.download as download  # `data status` imports data_status from here when it runs

    monkeypatch.delenv("POLYRET_DEBUG", raising=False)
    monkeypatch.setattr(download, "data_status", _failing(exc))
    with pytest.raises(SystemExit) as e:
        main(["data", "status", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == code
    assert words in " ".join(err.split()) and "Traceback" not in err
    monkeypatch.setenv("POLYRET_DEBUG", "1")  # the traceback of a bug, for a report
    if code == 1:
        with pytest.raises(RuntimeError, match="boom"):
            main(["data", "status", "--data", str(tmp_path)])
