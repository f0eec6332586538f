"""What a `polyret` start costs against the floor of any typer + rich CLI (issue 24).

    python benchmarks/startup.py [--repeat 7] [--data DIR] [--json]

In one run, on one machine: wall time and peak resident memory of

- `polyret --help`,
- `polyret data status` (on a one-file data folder with a SHA256SUMS, so the figure is start-up and
  not the hashing of gigabytes; `--data DIR` measures a real folder instead),
- a bad-input error (`polyret eval lareqa --data <missing> --out X`: exit 2, one line),

each against `python -c "import typer, rich"`, as a ratio (goal: <= 2x). Every command is a fresh
`python -m polyret` process (what the console script runs); the peak memory is the child's own
ru_maxrss from wait4, the wall time the median over --repeat runs (taken interleaved, so a load spike
on a shared machine hits every command alike).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def measure(argv: list[str], env: dict, expect: int) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process; its exit code must be `expect`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}, expected {expect}\n{err[-2000:]}")
    # ru_maxrss: KiB on Linux, bytes on macOS
    peak = usage.ru_maxrss / (1 << 20) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return wall, peak


def small_data_dir(root: Path) -> Path:
    """A data folder with one XQuAD-R file and its SHA256SUMS line (data status verifies it)."""
    d = root / "lareqa" / "xquad-r"
    d.mkdir(parents=True)
    (d / "en.json").write_text('{"data": []}', encoding="utf-8")
    digest = hashlib.sha256((d / "en.json").read_bytes()).hexdigest()
    (root / "SHA256SUMS").write_text(f"{digest}  lareqa/xquad-r/en.json\n", encoding="utf-8")
    return root


def commands(data: Path, scratch: Path) -> dict[str, tuple[list[str], int]]:
    py, polyret = sys.executable, [sys.executable, "-m", "polyret"]
    return {
        'python -c "import typer, rich"': ([py, "-c", "import typer, rich"], 0),
        "polyret --help": ([*polyret, "--help"], 0),
        "polyret data status": ([*polyret, "data", "status", "--data", str(data)], 0),
        "polyret eval lareqa (bad input)": (
            [*polyret, "eval", "lareqa", "--data", str(scratch / "missing"), "--out", str(scratch / "out")],
            2,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per command (median wall time, median peak memory)")
    ap.add_argument(
        "--data", type=Path, default=None, help="data folder for `data status` (default: a one-file folder)"
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", COLUMNS="100")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = args.data or small_data_dir(scratch / "data")
        cmds = commands(data, scratch)
        for argv, expect in cmds.values():  # warm the file cache: every command starts from the same state
            measure(argv, env, expect)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        for _ in range(args.repeat):
            for name, (argv, expect) in cmds.items():
                runs[name].append(measure(argv, env, expect))
    base_name = next(iter(cmds))
    rows = {
        name: {"wall_s": statistics.median(w for w, _ in r), "peak_rss_mib": statistics.median(m for _, m in r)}
        for name, r in runs.items()
    }
    base = rows[base_name]
    for row in rows.values():
        row["wall_ratio"] = row["wall_s"] / base["wall_s"]
        row["rss_ratio"] = row["peak_rss_mib"] / base["peak_rss_mib"]
    if args.json:
        print(json.dumps({"repeat": args.repeat, "python": sys.version.split()[0], "commands": rows}, indent=2))
        return
    print(f"{'command':34} {'wall s':>7} {'x base':>7} {'peak MiB':>9} {'x base':>7}   (median of {args.repeat})")
    for name, row in rows.items():
        print(
            f"{name:34} {row['wall_s']:7.3f} {row['wall_ratio']:7.2f} {row['peak_rss_mib']:9.1f} {row['rss_ratio']:7.2f}"
        )
    worst = max(max(r["wall_ratio"], r["rss_ratio"]) for r in rows.values())
    print(f"worst ratio {worst:.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
