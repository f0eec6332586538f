"""Search and streaming-encode benchmark: throughput and peak RSS, each method in its own process.

Part A (search): N_DOCS x 384 normalised random vectors (default 1M) and N_QUERIES queries (10k),
top-100 by inner product with
  - faiss-flat:      FAISS IndexFlatIP holding the whole corpus in RAM,
  - faiss-streamed:  polyret's exact search, reading the corpus from an on-disk .npy block by block
                     (`polyret.search.exact_search` over an EmbeddingStore),
  - numpy-argsort:   the naive way, corpus in RAM, matmul + full argsort per row (blocked over
                     queries: the unblocked 10k x 1M float32 score matrix alone would be 40 GB).
Search cost is linear in the number of queries, so each method is timed on its first
`--time-queries` queries (numpy: `--numpy-queries`) and extrapolated to N_QUERIES; the report says
which figures are extrapolated. Peak RSS is the child process's VmHWM (peak resident set): corpus, index and
result heaps are all allocated at full size, so the memory figures are not extrapolated.

Part B (streaming encode): `polyret.stream.encode_corpus` writes passage embeddings chunk by chunk
to disk; peak RSS should not grow with the corpus. Measured with the default encoder
(multilingual-e5-small) on `--encode-n` short synthetic passages against plain
sentence-transformers `model.encode(all passages)` (same batch size, fp32), and, to reach sizes the
2-core machine cannot encode with a transformer in reasonable time, with a synthetic 384-d encoder
(`--fake-n`, cost ~0) against keeping all vectors in memory.

    .venv/bin/python benchmarks/search.py                       # everything, default sizes
    .venv/bin/python benchmarks/search.py --parts encode --encode-n 2000,5000,10000

Results: runs/bench-search/search.json, search.md, encode_rss.png. Timings on a shared machine
are contended; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
K = 100
WORDS = (
    "river mountain city history music science water energy school market people language "
    "government village island bridge station museum forest winter summer festival harbour"
).split()


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    # VmHWM belongs to this process image. (ru_maxrss is not usable here: Linux carries the forking
    # parent's high-water mark over exec into the child's ru_maxrss.)
    return _status_mb("VmHWM")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak_rss() -> float:
    """Start a new high-water mark at the current RSS (so model-loading spikes do not mask growth); returns it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # older kernels: the peak then includes setup
    return current_rss_mb()


# ----------------------------------------------------------------------------- data
def unit_rows(rng, n, dim=DIM):
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def write_corpus(path: Path, n: int, seed: int = 0, block: int = 100_000) -> None:
    """A (n, DIM) float32 .npy of normalised random rows, written block by block."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, DIM)})
        for start in range(0, n, block):
            f.write(unit_rows(rng, min(block, n - start)).tobytes())


def read_corpus(path: Path) -> np.ndarray:
    """The whole corpus in RAM (plain reads, so RSS counts exactly one copy)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, _, _ = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )(f)
        return np.fromfile(f, dtype="<f4", count=shape[0] * shape[1]).reshape(shape)


def synthetic_passages(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"passage {i}: " + " ".join(rng.choice(WORDS, size=int(rng.integers(8, 20)))) for i in range(n)]


# ----------------------------------------------------------------------------- workers (child processes)
def worker_search(method: str, corpus_path: str, queries_path: str, n_time: int, out_rows: str) -> dict:
    import faiss

    q_all = np.load(queries_path)
    q = np.ascontiguousarray(q_all[:n_time])
    base = reset_peak_rss()
    t0 = time.perf_counter()
    if method == "faiss-flat":
        index = faiss.IndexFlatIP(DIM)
        with open(corpus_path, "rb") as f:  # fill the index block by block: no second full copy
            version = np.lib.format.read_magic(f)
            shape, _, _ = (
                np.lib.format.read_array_header_1_0(f) if version == (1, 0) else np.lib.format.read_array_header_2_0(f)
            )
            for start in range(0, shape[0], 100_000):
                rows = min(100_000, shape[0] - start)
                index.add(np.fromfile(f, dtype="<f4", count=rows * DIM).reshape(rows, DIM))
        setup = time.perf_counter() - t0
        t1 = time.perf_counter()
        scores, ids = index.search(q, K)
        search = time.perf_counter() - t1
    elif method == "faiss-streamed":
        from polyret.search import exact_search
        from polyret.stream import EmbeddingStore

        store = EmbeddingStore.from_npy(Path(corpus_path))
        setup = time.perf_counter() - t0
        t1 = time.perf_counter()
        scores, ids = exact_search(q, store, K, corpus_block=65_536)
        search = time.perf_counter() - t1
    elif method == "numpy-argsort":
        corpus = read_corpus(Path(corpus_path))
        setup = time.perf_counter() - t0
        t1 = time.perf_counter()
        ids = np.empty((len(q), K), dtype=np.int64)
        for start in range(0, len(q), 32):  # 32 x 1M float32 scores = 128 MB per block
            s = q[start : start + 32] @ corpus.T
            ids[start : start + 32] = np.argsort(-s, axis=1)[:, :K]
        search = time.perf_counter() - t1
    else:
        raise SystemExit(f"unknown method {method}")
    np.save(out_rows, ids)
    return {
        "method": method,
        "timed_queries": len(q),
        "setup_s": setup,
        "search_s": search,
        "rss_before_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }


def worker_encode(encoder: str, n: int, mode: str, out_dir: str, chunk: int, batch: int) -> dict:
    texts = synthetic_passages(n)
    if encoder == "default":
        from polyret.model import load_model, prepare_default_model

        model = load_model(str(prepare_default_model()))
    base = reset_peak_rss()
    t0 = time.perf_counter()
    if encoder == "fake":

        def encode(batch_texts):  # 384-d vectors at ~zero cost: isolates the store's own memory use
            rng = np.random.default_rng(len(batch_texts))
            return unit_rows(rng, len(batch_texts))
    else:
        from polyret.encode import encode_texts

        def encode(batch_texts):
            return encode_texts(model, batch_texts, "passage", batch_size=batch, bf16=False, show_progress=False)

    if mode == "stream":
        from polyret.stream import encode_corpus

        store = encode_corpus(
            lambda: ((f"p{i}", t) for i, t in enumerate(texts)),
            Path(out_dir),
            encode,
            identity=f"bench-{encoder}",
            chunk_size=chunk,
            show_progress=False,
        )
        shape = (store.n, store.dim)
    elif mode == "in-memory":
        if encoder == "fake":
            vecs = np.vstack([encode(texts[s : s + chunk]) for s in range(0, n, chunk)])
        else:  # plain sentence-transformers, as a user would call it
            vecs = model.encode(
                texts, prompt="passage: ", batch_size=batch, normalize_embeddings=True, convert_to_numpy=True
            )
        shape = vecs.shape
    else:
        raise SystemExit(f"unknown mode {mode}")
    return {
        "encoder": encoder,
        "mode": mode,
        "n": n,
        "shape": list(shape),
        "seconds": time.perf_counter() - t0,
        "rss_before_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "_worker", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- parts
def part_search(a, work: Path) -> dict:
    corpus_path, queries_path = work / "corpus.npy", work / "queries.npy"
    t = time.perf_counter()
    write_corpus(corpus_path, a.n_docs)
    np.save(queries_path, unit_rows(np.random.default_rng(1), a.n_queries))
    print(f"[search] wrote {a.n_docs:,} x {DIM} corpus in {time.perf_counter() - t:.0f}s", flush=True)
    rows = {}
    out = {"n_docs": a.n_docs, "n_queries": a.n_queries, "k": K, "methods": {}}
    for method, n_time in (
        ("faiss-flat", a.time_queries),
        ("faiss-streamed", a.time_queries),
        ("numpy-argsort", a.numpy_queries),
    ):
        n_time = min(n_time, a.n_queries)
        res = run_child(
            ["search", method, str(corpus_path), str(queries_path), str(n_time), str(work / f"{method}.npy")]
        )
        res["queries_per_s"] = n_time / res["search_s"]
        res["extrapolated"] = n_time < a.n_queries
        res["search_s_for_all_queries"] = res["search_s"] * a.n_queries / n_time
        rows[method] = np.load(work / f"{method}.npy")
        out["methods"][method] = res
        print(
            f"[search] {method}: {res['queries_per_s']:.1f} q/s on {n_time} queries, peak RSS {res['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    # every method must return the same neighbours (on the queries all of them ran)
    n_common = min(len(r) for r in rows.values())
    ref = rows["faiss-flat"][:n_common]
    for method, r in rows.items():
        same = np.mean([len(np.intersect1d(a_, b_)) / K for a_, b_ in zip(r[:n_common], ref)])
        out["methods"][method]["top100_overlap_with_faiss_flat"] = float(same)
    return out


def part_encode(a, work: Path) -> dict:
    out = {"runs": []}
    plans = [("default", n, mode) for n in a.encode_n for mode in ("stream", "in-memory")]
    plans += [("fake", n, mode) for n in a.fake_n for mode in ("stream", "in-memory")]
    for encoder, n, mode in plans:
        res = run_child(["encode", encoder, str(n), mode, str(work / f"enc-{encoder}-{n}"), str(a.chunk), str(a.batch)])
        res["rss_growth_mb"] = res["peak_rss_mb"] - res["rss_before_mb"]
        out["runs"].append(res)
        print(
            f"[encode] {encoder} {mode} n={n:,}: {res['seconds']:.1f}s, peak RSS {res['peak_rss_mb']:.0f} MB "
            f"(+{res['rss_growth_mb']:.0f} MB over the loaded process)",
            flush=True,
        )
    return out


def markdown(results: dict) -> str:
    lines = ["# benchmarks/search.py", "", f"Machine: {os.cpu_count()} CPUs, shared (timings contended).", ""]
    s = results.get("search")
    if s:
        lines += [
            f"## Top-{s['k']} search: {s['n_docs']:,} x {DIM} corpus, {s['n_queries']:,} queries",
            "",
            "| method | timed queries | queries/s | time for all queries (s) | setup (s) | peak RSS (MB) | top-100 overlap vs FAISS flat |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        base = s["methods"]["faiss-flat"]["queries_per_s"]
        for m, r in s["methods"].items():
            ext = " (extrapolated)" if r["extrapolated"] else ""
            lines.append(
                f"| {m} | {r['timed_queries']} | {r['queries_per_s']:.1f} ({r['queries_per_s'] / base:.2f}x flat) | "
                f"{r['search_s_for_all_queries']:.0f}{ext} | {r['setup_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['top100_overlap_with_faiss_flat']:.4f} |"
            )
        lines += [
            "",
            f"An unblocked {s['n_queries']:,} x {s['n_docs']:,} float32 score matrix would need "
            f"{s['n_queries'] * s['n_docs'] * 4 / 1e9:.0f} GB.",
            "",
        ]
    e = results.get("encode")
    if e:
        lines += [
            "## Streaming encode: peak RSS vs corpus size",
            "",
            "| encoder | mode | passages | seconds | peak RSS (MB) | growth over loaded process (MB) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in e["runs"]:
            lines.append(
                f"| {r['encoder']} | {r['mode']} | {r['n']:,} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['rss_growth_mb']:.0f} |"
            )
        lines += ["", "![RSS vs corpus size](encode_rss.png)", ""]
    return "\n".join(lines)


def plot_encode(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["encode"]["runs"]
    encoders = sorted({r["encoder"] for r in runs})
    fig, axes = plt.subplots(1, len(encoders), figsize=(5 * len(encoders), 3.6), squeeze=False)
    for ax, enc in zip(axes[0], encoders):
        for mode, style in (("stream", "o-"), ("in-memory", "s--")):
            pts = sorted(
                (r["n"], r["peak_rss_mb"] - r["rss_before_mb"])
                for r in runs
                if r["encoder"] == enc and r["mode"] == mode
            )
            if pts:
                ax.plot(*zip(*pts), style, label=mode)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("passages")
        ax.set_ylabel("peak RSS growth while encoding (MB)")
        ax.set_title(f"encoder: {enc}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "search":
            res = worker_search(rest[0], rest[1], rest[2], int(rest[3]), rest[4])
        else:
            res = worker_encode(rest[0], int(rest[1]), rest[2], rest[3], int(rest[4]), int(rest[5]))
        print(json.dumps(res))
        return

    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="search,encode")
    p.add_argument("--n-docs", type=int, default=1_000_000)
    p.add_argument("--n-queries", type=int, default=10_000)
    p.add_argument(
        "--time-queries", type=int, default=1000, help="queries timed per FAISS method (extrapolated to --n-queries)"
    )
    p.add_argument("--numpy-queries", type=int, default=64, help="queries timed for matmul + argsort")
    p.add_argument("--encode-n", type=ints, default=[2000, 5000, 10000], help="passages encoded with the default model")
    p.add_argument(
        "--fake-n", type=ints, default=[100_000, 300_000, 1_000_000], help="passages for the synthetic encoder"
    )
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("runs/bench-search"))
    a = p.parse_args()
    parts = a.parts.split(",")
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="polyret-bench-") as tmp:
        work = Path(tmp)
        if "search" in parts:
            results["search"] = part_search(a, work)
        if "encode" in parts:
            results["encode"] = part_encode(a, work)
    (a.out / "search.json").write_text(json.dumps(results, indent=2) + "\n")
    if "encode" in results:
        plot_encode(results, a.out / "encode_rss.png")
    md = markdown(results)
    (a.out / "search.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
