"""Fault injection (issue 14): kill `encode`, `eval beir` (streaming), `train`, `experiment` and
`data download` with SIGINT and SIGKILL at a random moment, run the same command again, and check
that the result equals an uninterrupted run and that no earlier file was lost.

Each test kills one run with SIGINT, runs the same command again and kills that with SIGKILL (so a
resume from an already-interrupted state is exercised too), then lets the third run finish. The kill
moments are drawn uniformly over startup + the work (startup measured once per module, the work from
the in-process reference run), so over many CI runs they land in imports, model loading, the work and
the writing; the assertions hold wherever they land. The seed, the drawn delays and their fractions of
the span are in every kill message; POLYRET_FAULT_SEED=<seed> replays a test's draws (per test, so
`-k` on one test replays it alone).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from conftest import need
from polyret.evaluate.result import load_per_query
from train_helpers import write_synthetic

POLYRET = str(Path(sys.executable).parent / "polyret")
# The kill moments: fractions of each test's span drawn from SEED and the test's name, so one test run
# alone (`-k`) with POLYRET_FAULT_SEED set replays its own draws whatever else runs; the seed is printed
# (shown with a failing test's output) and named in every kill message.
SEED = int(os.environ.get("POLYRET_FAULT_SEED", time.time_ns() % 2**32))
RNG = random.Random(SEED)  # replaced per test by `replayable_kill_moments`


def rng_for(seed: int, test_name: str) -> random.Random:
    return random.Random(f"{seed}:{test_name}")


@pytest.fixture(autouse=True)
def replayable_kill_moments(request, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "RNG", rng_for(SEED, request.node.name))
    print(f"kill moments: replay with POLYRET_FAULT_SEED={SEED} pytest -k '{request.node.name}'")


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", POLYRET_CACHE=str(tmp_path / "cache"), COLUMNS="200")


def run(args, cwd: Path, env: dict, timeout: float = 600) -> tuple[int, float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([POLYRET, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, time.perf_counter() - t0, r.stderr


def _sigint_as_at_a_terminal() -> None:
    # A shell starts background jobs (`pytest ... &`, CI scripts) with SIGINT ignored and children inherit
    # that; polyret rightly keeps an ignored SIGINT ignored, so the child must start with the default
    # disposition or the "Ctrl-C" below would be a no-op and the run would simply finish.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [POLYRET, *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_sigint_as_at_a_terminal,
    )


def finish_killed(p: subprocess.Popen) -> int:
    """Wait for a (signalled) run; no traceback allowed; its stderr is printed for an unexpected code."""
    _, err = p.communicate(timeout=300)
    if p.returncode != -signal.SIGINT:  # a KeyboardInterrupt in the interpreter's own startup prints one
        assert "Traceback" not in err.decode(errors="replace"), err.decode(errors="replace")[-3000:]
    if p.returncode not in (0, 130, -signal.SIGINT, -signal.SIGKILL):
        print(err.decode(errors="replace")[-2000:])  # shown with the failing assertion
    return p.returncode


def run_killed(args, cwd: Path, env: dict, sig: int, delay: float) -> int:
    """Start the command, send `sig` after `delay` seconds (unless it finished), return its exit code."""
    p = start(args, cwd, env)
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
    return finish_killed(p)


def expect_code(code: int, sig: int, what: str) -> None:
    # finished before the signal (0), or interrupted: 130 for SIGINT (documented), killed for SIGKILL
    # (-SIGINT: the signal came while the interpreter itself started, before polyret's code ran)
    allowed = {0, 130, -signal.SIGINT} if sig == signal.SIGINT else {0, -signal.SIGKILL}
    assert code in allowed, f"{what}: exit code {code}"


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under folder."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_dir(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("faults") / "tiny"
    tiny_model.save(str(d))
    return d


@pytest.fixture(scope="module")
def startup(tiny_dir, tmp_path_factory) -> float:
    """Seconds a polyret process needs to import and load the tiny model (the machine's speed now)."""
    tmp = tmp_path_factory.mktemp("startup")
    code, took, err = run(["model", "info", "--model", tiny_dir], tmp, _env(tmp))
    assert code == 0, err
    return took


def kill_twice_then_finish(
    args, cwd: Path, env: dict, span: float, what: str, between=lambda: None
) -> tuple[list[float], tuple[int, float, str]]:
    """SIGINT one run, SIGKILL the next (each at a random moment in [0, span]), then run to the end."""
    delays, fractions = [], []
    for sig in (signal.SIGINT, signal.SIGKILL):
        fractions.append(RNG.random())
        delays.append(round(fractions[-1] * span, 3))
        code = run_killed(args(), cwd, env, sig, delays[-1])
        expect_code(
            code,
            sig,
            f"{what} killed after {delays} s (fractions {[round(f, 4) for f in fractions]} of "
            f"{span:.1f} s; POLYRET_FAULT_SEED={SEED})",
        )
        between()
    return delays, run(args(), cwd, env)


def test_kill_moments_replay_from_the_seed():
    """The same seed and test give the same kill moments; another seed or test, other ones."""
    assert rng_for(1234, "test_a").random() == rng_for(1234, "test_a").random()
    assert rng_for(1234, "test_a").random() != rng_for(1235, "test_a").random()
    assert rng_for(1234, "test_a").random() != rng_for(1234, "test_b").random()
    # fixed by the environment variable, as the module docstring promises
    code = "import os, test_faults; print(test_faults.SEED)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        env=dict(os.environ, POLYRET_FAULT_SEED="777"),
        timeout=120,
    )
    assert out.stdout.strip() == "777", out.stderr


# ---- a Ctrl-C the interpreter would swallow ---------------------------------------------------

_SWALLOWED_CTRL_C = """
import signal, sys, time
from polyret.cli import _redeliver_lost_interrupts
signal.signal(signal.SIGINT, signal.default_int_handler)  # as main() sets it once the imports are done
if sys.argv[1] == "with-hook":
    _redeliver_lost_interrupts()
class GarbageWithFinalizer:  # stands for a weakref callback / __del__ run by the garbage collector
    def __del__(self):
        raise KeyboardInterrupt  # what the SIGINT handler raises when Ctrl-C lands there
GarbageWithFinalizer()
try:
    for _ in range(100):
        time.sleep(0.02)
    print("finished as if never interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize(
    "mode,expected", [("with-hook", "interrupted"), ("without", "finished as if never interrupted")]
)
def test_ctrl_c_inside_a_finalizer_still_interrupts(mode, expected):
    # The failure seen in CI: Ctrl-C landed in a weakref callback, Python printed "Exception ignored ...
    # Traceback ... KeyboardInterrupt" and the experiment ran on to the end. `without` shows the
    # interpreter's own behaviour (so the test can tell the fix from its absence).
    r = subprocess.run([sys.executable, "-c", _SWALLOWED_CTRL_C, mode], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == expected, r.stderr
    assert ("Traceback" in r.stderr) == (mode == "without"), r.stderr


# ---- encode ---------------------------------------------------------------------------------


def test_encode_killed_keeps_the_old_file_and_reruns_to_the_same_result(tiny_model, tiny_dir, startup, tmp_path):
    from polyret.encode import encode_texts

    env = _env(tmp_path)
    texts = [f"text number {i} about {'abcdefghij'[i % 10]}" for i in range(3000)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    t0 = time.perf_counter()
    reference = encode_texts(tiny_model, texts, "passage", bf16=False, show_progress=False, cache=False)
    work = time.perf_counter() - t0
    (tmp_path / "emb.npy").write_bytes(b"an earlier file")

    def old_file_intact():
        assert (tmp_path / "emb.npy").read_bytes() in (b"an earlier file",) or np.array_equal(
            np.load(tmp_path / "emb.npy"), reference
        )  # replaced only by a complete result
        # (a SIGKILL may leave the temp file `.emb.npy.*.tmp`; the next run removes it)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache" and not p.name.endswith(".tmp")) == [
            "emb.npy",
            "in.txt",
        ]

    args = lambda: ["encode", "--model", tiny_dir, "--input", "in.txt", "--no-bf16", "--out", "emb", "--overwrite"]
    delays, (code, _, err) = kill_twice_then_finish(
        args, tmp_path, env, startup + 1.5 * work, "encode", old_file_intact
    )
    assert code == 0, err
    assert np.allclose(np.load(tmp_path / "emb.npy"), reference, atol=1e-6), delays
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["emb.npy", "in.txt"], delays


# ---- eval beir (streamed corpus encoding) ---------------------------------------------------


def _beir(root: Path, n_docs: int = 3000, n_queries: int = 40) -> Path:
    rng = random.Random(0)
    words = "river mountain city harbour castle forest alpha beta gamma delta".split()
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i in range(n_docs):
            f.write(
                json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(rng.choice(words) for _ in range(12))}) + "\n"
            )
    with open(root / "queries.jsonl", "w") as f:
        for i in range(n_queries):
            f.write(json.dumps({"_id": f"q{i}", "text": " ".join(rng.choice(words) for _ in range(4))}) + "\n")
    with open(root / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(n_queries):
            f.write(f"q{i}\td{rng.randrange(n_docs)}\t1\n")
    return root


def _beir_outcome(out: Path) -> tuple:
    res = json.loads((out / "results.json").read_text())
    per_query = {m: (pq.ids.tolist(), pq.values.tolist()) for m, pq in load_per_query(out / "per_query.npz").items()}
    return res["metrics"], (out / "run.trec").read_text(), per_query


def _beir_args(data: Path, tiny_dir: Path, out: str) -> list:
    return ["eval", "beir", "--data", data, "--model", tiny_dir, "--chunk-size", "200", "--no-progress", "--out", out]


@pytest.fixture(scope="module")
def beir_reference(tiny_dir, startup, tmp_path_factory):
    """A BEIR folder and the outcome of the eval beir command run on it uninterrupted (a subprocess: an
    in-process run may differ in the last float digits, enough to swap near-tied documents in run.trec)."""
    root = tmp_path_factory.mktemp("beir-ref")
    data = _beir(root / "beir")
    code, took, err = run(_beir_args(data, tiny_dir, "ref"), root, _env(root))
    assert code == 0, err
    return data, _beir_outcome(root / "ref"), max(0.0, took - startup), root / "ref"


@pytest.mark.slow
def test_eval_beir_killed_resumes_to_the_same_result(tiny_dir, startup, beir_reference, tmp_path):
    env = _env(tmp_path)
    data, reference, work, ref_dir = beir_reference
    args = lambda: _beir_args(data, tiny_dir, "out")
    # The same command each time (no --overwrite): an interrupted output is continued, a finished one
    # (a kill that came too late) is run again in place.
    delays, (code, _, err) = kill_twice_then_finish(args, tmp_path, env, startup + 1.5 * work, "eval beir")
    assert code == 0, f"re-run after kills at {delays}: {err[-2000:]}"
    assert _beir_outcome(tmp_path / "out") == reference, delays

    # --overwrite of a finished output, killed twice: the finished output is still there, unchanged.
    before = snapshot(tmp_path / "out")

    def finished_output_intact():
        if (tmp_path / "out").exists():
            assert snapshot(tmp_path / "out") == before or _beir_outcome(tmp_path / "out") == reference
        else:  # killed between the swap's two renames: the old output waits beside it, restored next run
            assert [p for p in tmp_path.iterdir() if ".out.polyret-old-" in p.name]

    over = lambda: args() + ["--overwrite"]
    delays, (code, _, err) = kill_twice_then_finish(
        over, tmp_path, env, startup + 1.5 * work, "eval beir --overwrite", finished_output_intact
    )
    assert code == 0, err
    assert _beir_outcome(tmp_path / "out") == reference, delays
    # no temporary folder left behind (a SIGKILL's is removed by the next run)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["out"], delays


def _progress(out: Path) -> dict:
    try:
        return json.loads((out / "corpus-embeddings" / "progress.json").read_text())
    except (OSError, ValueError):  # not written yet
        return {}


@pytest.mark.slow
def test_eval_beir_killed_at_every_stage_resumes_to_the_same_result(tiny_dir, beir_reference, tmp_path):
    """The random kills above, made deterministic: one run is killed in each stage of eval beir (seen in
    the output folder), alternating SIGINT and SIGKILL, each re-run continuing the previous one's state;
    then the command runs to the end, and once more on its finished output (a kill that came too late:
    the re-run used to be refused with exit 2)."""
    env = _env(tmp_path)
    data, reference, _, _ = beir_reference
    out = tmp_path / "out"
    args = _beir_args(data, tiny_dir, "out")
    marker = lambda: (
        json.loads((out / ".polyret-output.json").read_text()) if (out / ".polyret-output.json").is_file() else {}
    )
    rows_at_start = {}
    stages = [
        ("output folder claimed, corpus store not started", signal.SIGINT, lambda: marker() and not _progress(out)),
        (
            "first corpus chunks encoded",
            signal.SIGKILL,
            lambda: 0 < _progress(out).get("rows_done", 0) < _progress(out).get("n", 0),
        ),
        (
            "corpus encoding resumed",
            signal.SIGINT,
            lambda: rows_at_start["resumed"] < _progress(out).get("rows_done", 0) < _progress(out).get("n", 0),
        ),
        (
            "corpus encoded, results not written",
            signal.SIGKILL,
            lambda: _progress(out).get("complete") and not (out / "results.json").exists(),
        ),
        (
            "corpus encoded, this run scoring",
            signal.SIGINT,  # the store was complete before this run started
            lambda: (
                (out / ".polyret-output.json").stat().st_mtime_ns > rows_at_start["t0"]
                and not (out / "results.json").exists()
            ),
        ),
    ]
    for what, sig, reached in stages:
        rows_at_start["resumed"] = _progress(out).get("rows_done", 0)
        rows_at_start["t0"] = time.time_ns()
        p = start(args, tmp_path, env)
        while p.poll() is None and not reached():
            time.sleep(0.005)
        hit = p.poll() is None
        if hit:
            p.send_signal(sig)
        code = finish_killed(p)
        assert hit, f"the run ended (exit {code}) before the stage '{what}'"
        assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), f"{what}: exit {code}"
    code, _, err = run(args, tmp_path, env)
    assert code == 0, err
    assert _beir_outcome(out) == reference
    code, _, err = run(args, tmp_path, env)  # the same command on its finished output: done again, same result
    assert code == 0, err
    assert _beir_outcome(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["out"]


def test_overwrite_killed_before_the_swap_leaves_the_old_output(tiny_dir, startup, tmp_path):
    """Deterministic companion of the random kills above: a kill during an --overwrite run's work."""
    env = _env(tmp_path)
    data = _beir(tmp_path / "beir", n_docs=20000)
    args = ["eval", "beir", "--data", data, "--model", tiny_dir, "--chunk-size", "500", "--no-progress", "--out", "out"]
    out = tmp_path / "out"
    out.mkdir()
    (out / ".polyret-output.json").write_text(json.dumps({"kind": "eval-beir", "complete": True}))
    (out / "results.json").write_text('{"old": true}')
    before = snapshot(out)
    p = start(args + ["--overwrite"], tmp_path, env)  # (SIGINT at its default disposition, as at a terminal)
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the fresh output has corpus chunks in its temp folder
        tmp = [q for q in tmp_path.iterdir() if ".polyret-tmp-" in q.name]
        if tmp and any((tmp[0] / "corpus-embeddings").glob("*")):
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    assert finish_killed(p) == 130
    assert snapshot(out) == before
    assert sorted(q.name for q in tmp_path.iterdir() if q.name != "cache") == ["beir", "out"]


# ---- train ----------------------------------------------------------------------------------

TRAIN = {
    "steps": 8,
    "batch_size": 4,
    "lr": 1e-3,
    "validation_groups": 12,
    "eval_steps": 2,
    "save_steps": 2,
    "save_total_limit": 2,
    "keep_best": False,
    "logging_steps": 1,
    "max_seq_length": 32,
    "warmup_ratio": 0.0,
}


def _train_config(tiny_dir: Path, data: Path) -> Path:
    import yaml

    path = data.parent / "train.yaml"
    path.write_text(yaml.safe_dump({"model": str(tiny_dir), "data": [str(data)], **TRAIN}))
    return path


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def train_reference(tiny_dir, startup, tmp_path_factory):
    """An uninterrupted `polyret train` run (a subprocess, like the runs it is compared with)."""
    root = tmp_path_factory.mktemp("train-ref")
    data = write_synthetic(root / "groups.jsonl", n=60)
    code, took, err = run(
        ["train", "--config", _train_config(tiny_dir, data), "--out", root / "ref", "--no-progress"], root, _env(root)
    )
    assert code == 0, err
    return root, data, max(0.0, took - startup)


def test_train_killed_resumes_to_the_same_weights(tiny_dir, startup, train_reference, tmp_path):
    import torch

    root, data, work = train_reference
    env = _env(tmp_path)
    config = _train_config(tiny_dir, data)
    run_dir = tmp_path / "run"

    def args():  # the command a user re-runs: --resume once the run dir holds a run
        return ["train", "--config", config, "--out", run_dir, "--no-progress"] + (
            ["--resume"] if (run_dir / "config.yaml").is_file() else []
        )

    delays, (code, _, err) = kill_twice_then_finish(args, tmp_path, env, startup + 1.5 * work, "train")
    assert code == 0, f"re-run after kills at {delays}: {err[-3000:]}"
    a, b = _weights(root / "ref" / "model"), _weights(run_dir / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), delays
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "complete" and run_json["steps"] == 8


def test_half_written_checkpoint_is_not_resumed_from(tiny_dir, train_reference, tmp_path):
    """The issue's case 4: a checkpoint dir cut short (no trainer_state.json, no completion marker)
    is not taken as the last checkpoint; --resume continues from the last complete one."""
    import shutil

    import torch

    from polyret.config import load_train_config
    from polyret.train import CHECKPOINT_COMPLETE, train

    root, data, _ = train_reference
    ref = root / "ref"
    assert sorted(p.name for p in (ref / "checkpoints").iterdir()) == ["checkpoint-6", "checkpoint-8"]
    assert all((ref / "checkpoints" / c / CHECKPOINT_COMPLETE).is_file() for c in ("checkpoint-6", "checkpoint-8"))
    run_dir = tmp_path / "run"
    shutil.copytree(ref, run_dir)
    for name in ("model", "run.json"):
        p = run_dir / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (run_dir / ".polyret-output.json").write_text(json.dumps({"kind": "train", "complete": False}))
    half = run_dir / "checkpoints" / "checkpoint-8"  # killed while writing step 8's checkpoint
    for f in half.iterdir():  # only the weights made it to disk
        if f.name != "model.safetensors":
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    final = train(load_train_config(_train_config(tiny_dir, data)), run_dir, resume=True, show_progress=False)
    assert json.loads((run_dir / "run.json").read_text())["resumed_from"].endswith("checkpoint-6")
    a, b = _weights(ref / "model"), _weights(final)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- experiment -----------------------------------------------------------------------------


@pytest.mark.slow
def test_experiment_killed_reruns_to_the_same_summary(tiny_dir, startup, tmp_path):
    import yaml

    data = _beir(tmp_path / "beir", n_docs=400, n_queries=30)
    groups = write_synthetic(tmp_path / "groups.jsonl", n=60)
    cfg = {
        "name": "faults",
        "base_models": [str(tiny_dir)],
        "train": {
            "overrides": {
                "data": [str(groups)],
                "steps": 4,
                "batch_size": 4,
                "max_seq_length": 32,
                "lr": 1e-3,
                "warmup_ratio": 0.0,
                "validation_groups": 0,
                "keep_best": False,
                "save_steps": 2,
                "logging_steps": 2,
            }
        },
        "grid": {"strategies": ["x-y"], "merge_weights": [1.0], "seeds": [0]},
        "suites": [{"name": "beir", "data": str(data), "options": {"chunk_size": 100}}],
        "tests": {"n_permutations": 200, "n_bootstrap": 100},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = _env(tmp_path)
    code, took, err = run(["experiment", path, "--out", tmp_path / "ref", "--no-progress"], tmp_path, env)
    assert code == 0, err
    work = max(0.0, took - startup)
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    args = lambda: ["experiment", path, "--out", tmp_path / "out", "--no-progress"]
    delays, (code, _, err) = kill_twice_then_finish(args, tmp_path, env, startup + 1.5 * work, "experiment")
    assert code == 0, f"re-run after kills at {delays}: {err[-3000:]}"
    got = json.loads((tmp_path / "out" / "summary.json").read_text())
    for key in ("aggregate", "tests"):
        assert got[key] == ref[key], (key, delays)
    assert [r["results"] for r in got["runs"]] == [r["results"] for r in ref["runs"]], delays


# ---- data download --------------------------------------------------------------------------


class SlowRangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files (with `Range: bytes=N-`) in 64 KiB pieces with a pause, so a kill lands mid-file."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data):
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        try:
            for i in range(start, len(data), 1 << 16):
                self.wfile.write(data[i : i + (1 << 16)])
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.mark.slow
def test_download_killed_resumes_to_verified_files(tmp_path, shared_data, startup):
    from polyret.data import download as dl

    root = tmp_path / "mirror"
    for lang in dl.XQUAD_R_LANGS:
        dst = root / "lareqa" / "xquad-r" / f"{lang}.json"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(need(shared_data, "lareqa", "xquad-r", f"{lang}.json").read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(SlowRangeHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "NOTES.md").write_text("mine")  # a user's file in the destination must survive
    try:
        env = _env(tmp_path)
        args = lambda: [
            "data",
            "download",
            "--only",
            "xquad-r",
            "--dest",
            dest,
            "--mirror",
            f"http://127.0.0.1:{server.server_address[1]}",
        ]
        # ~18 MB in 64 KiB pieces 10 ms apart: about 3 s of transfer after startup
        delays, (code, _, err) = kill_twice_then_finish(args, tmp_path, env, startup + 4.0, "data download")
        assert code == 0, f"re-run after kills at {delays}: {err[-2000:]}"
    finally:
        server.shutdown()
    got = snapshot(dest)
    assert got.pop("NOTES.md") == hashlib.sha256(b"mine").hexdigest()
    assert got == snapshot(root), delays  # every file complete and identical to the source, nothing extra
