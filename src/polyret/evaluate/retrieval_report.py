"""What a retrieval evaluation (BEIR, MIRACL) shows a person: report.md and a bar plot per language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from polyret.report import save_figure


def retrieval_markdown(results: dict[str, Any]) -> str:
    keys = list(results["metrics"])
    info = results["search"]
    recall_key = f"recall_vs_exact@{info['k']}"
    search_note = (
        f"{info['kind']} (exact)"
        if info["kind"] == "flat"
        else f"{info['kind']} (recall vs exact@{info['k']} on {info['recall_sample_queries']} queries: {info[recall_key]:.4f})"
    )
    lines = [
        f"# {results['task'].upper()} retrieval — model {results['model']}",
        "",
        f"{results['n_queries']} judged queries, {results['n_docs']:,} documents; search: {search_note}. "
        "Metrics by pytrec_eval, averaged over all judged queries (trec_eval -c).",
        "",
        "| | " + " | ".join(keys) + " | queries |",
        "|---|" + "---:|" * (len(keys) + 1),
        "| all | " + " | ".join(f"{100 * results['metrics'][k]:.2f}" for k in keys) + f" | {results['n_queries']} |",
    ]
    for lang, m in results["per_language"].items():
        lines.append(f"| {lang} | " + " | ".join(f"{100 * m[k]:.2f}" for k in keys) + f" | {m['n_queries']} |")
    lines += ["", "Values in %."]
    if results["warnings"]:
        lines += ["", "Warnings:", *[f"- {w}" for w in results["warnings"]]]
    lines += [
        "",
        "Timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["timing"].items()),
        "",
        f"![bars]({results['task']}_bars.png)",
        "",
    ]
    return "\n".join(lines)


def plot_retrieval_bars(results: dict[str, Any], path: Path) -> Path:
    """One group of bars per language (or just 'all'), one bar per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {"all": results["metrics"]} | results["per_language"]
    keys = list(results["metrics"])
    x = np.arange(len(groups))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(groups) + 2), 4))
    for i, key in enumerate(keys):
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, [100 * g[key] for g in groups.values()], width, label=key)
    ax.set_xticks(x, list(groups))
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results['task'].upper()} — {results['n_queries']} queries, {results['n_docs']:,} docs")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path
