"""What the integrity checks of issue 28 cost: a cached `eval lareqa` re-run and an `eval beir` re-run on a
finished corpus store, each timed with the checks on and off (POLYRET_VERIFY=0), in one run.

    .venv/bin/python benchmarks/integrity.py [--model tiny|default|DIR] [--langs de,en,es,zh] [--repeats 5]

Both evaluations run in-process with the model already loaded (no process start, no model load in the
times: that is the strict comparison, the checks' share of a CLI re-run is smaller). The LAReQA data are
XQuAD-R from $POLYRET_DATA; the BEIR folder is the same languages exported with `export_lareqa_beir`
(multi setting: every question against every language's sentences). Runs alternate on/off; the median of
each is reported, with the checks also timed on their own (store verification, cache lookups with and
without their row checks), which is the less noisy number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from polyret.data.beir import export_lareqa_beir
from polyret.data.lareqa import load_lareqa
from polyret.encode import EmbeddingCache, model_id
from polyret.evaluate.beir import evaluate_beir
from polyret.evaluate.lareqa_eval import evaluate_lareqa
from polyret.io import OutputDir
from polyret.model import build_tiny_model, check_model_dir, load_model
from polyret.paths import data_path
from polyret.stream import EmbeddingStore


def _timed(fn, verify: bool) -> float:
    os.environ["POLYRET_VERIFY"] = "1" if verify else "0"
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _on_off(fn, repeats: int) -> tuple[float, float]:
    """Median seconds with the checks on and off, runs alternating (on, off, off, on, ...)."""
    on, off = [], []
    for i in range(repeats):
        for verify in (True, False) if i % 2 == 0 else (False, True):
            (on if verify else off).append(_timed(fn, verify))
    return statistics.median(on), statistics.median(off)


def _checks_alone(store_dir: Path, cache_root: Path, repeats: int) -> tuple[float, float, int]:
    """(store verification s, cache row checks s, cached rows): the checks timed on their own."""
    store = [
        _timed(lambda: EmbeddingStore.open(store_dir), True) - _timed(lambda: EmbeddingStore.open(store_dir), False)
        for _ in range(repeats)
    ]
    entries = [
        (p.parent, [line.split()[0] for line in p.read_text().splitlines()]) for p in cache_root.rglob("keys.txt")
    ]
    cache = []
    for _ in range(repeats):
        total = 0.0
        for entry, keys in entries:
            dim = json.loads((entry / "meta.json").read_text())["dim"]
            lookup = lambda entry=entry, dim=dim, keys=keys: EmbeddingCache(entry, dim).get(keys)
            total += _timed(lookup, True) - _timed(lookup, False)
        cache.append(total)
    return statistics.median(store), statistics.median(cache), sum(len(k) for _, k in entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="tiny", help="tiny (a random 2-layer model, built here), default, or a model dir"
    )
    ap.add_argument("--langs", default="de,en,es,zh")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    langs = args.langs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        name = str(build_tiny_model(tmp / "tiny") and tmp / "tiny" / "st") if args.model == "tiny" else args.model
        t0 = time.perf_counter()
        model = load_model(name)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if Path(model.polyret_source_dir or "").is_dir():
            check_model_dir(model.polyret_source_dir)
        model_check_s = time.perf_counter() - t0
        lareqa_dir = data_path("lareqa") / "xquad-r"
        dataset = load_lareqa(lareqa_dir, langs=langs)
        cache = tmp / "cache"
        lareqa = lambda: evaluate_lareqa(model, dataset, cache=cache, show_progress=False)
        lareqa()  # fills the cache: what follows are cached re-runs
        beir_dir = tmp / "beir"
        export_lareqa_beir(lareqa_dir, "multi", beir_dir, langs=langs)
        beir_out = tmp / "beir-out"
        beir = lambda: evaluate_beir(
            model,
            beir_dir,
            out_dir=OutputDir(beir_out, "eval-beir", settings={"bench": 1}),
            cache=cache,
            show_progress=False,
        )
        beir()  # encodes the corpus into the store: what follows are re-runs on a finished store
        lq_on, lq_off = _on_off(lareqa, args.repeats)
        be_on, be_off = _on_off(beir, args.repeats)
        store_dir = next(beir_out.rglob("embeddings.npy")).parent
        store_s, cache_s, cached_rows = _checks_alone(store_dir, cache, args.repeats)
        n = EmbeddingStore.open(store_dir)
    print(
        f"model {args.model} ({model_id(model)}), XQuAD-R {','.join(langs)}; corpus store {n.n} x {n.dim}; "
        f"median of {args.repeats} runs each"
    )
    print(f"model folder check: {model_check_s * 1000:.1f} ms of a {load_s:.2f} s load ({model_check_s / load_s:.2%})")
    for what, on, off in (
        ("eval lareqa (cached re-run)", lq_on, lq_off),
        ("eval beir (re-run, finished store)", be_on, be_off),
    ):
        print(f"{what:<36} checks on {on:7.3f} s  off {off:7.3f} s  ratio {on / off:.3f} ({(on - off) / off:+.1%})")
    print(f"the checks alone: store verification {store_s * 1000:.1f} ms ({store_s / be_off:.2%} of the beir re-run)")
    print(
        f"                  cache row checks, all {cached_rows} cached rows {cache_s * 1000:.1f} ms "
        f"({cache_s / lq_off:.2%} of the lareqa re-run)"
    )


if __name__ == "__main__":
    main()
