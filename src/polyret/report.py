"""Results for people: markdown tables and PNG charts, shared by every evaluator.

(JSON, TREC files and the output-folder policy live in `polyret.io`.) Matplotlib runs with the Agg
backend (no display).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from polyret.io import atomic_open


# ---- markdown -------------------------------------------------------------------------------


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Write a matplotlib figure atomically (a killed run never leaves half a PNG) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def format_value(value: Any, floatfmt: str = ".3f") -> str:
    """A table cell: floats with `floatfmt`, None/NaN as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(float(value)) else format(float(value), floatfmt)
    return str(value)


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], floatfmt: str = ".3f", align: str | None = None
) -> str:
    """A GitHub markdown table; first column left-aligned, the others right-aligned, unless `align`
    gives one letter per column (l: left, r: right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r} must give l or r for each of the {len(headers)} columns")
    head = "| " + " | ".join(headers) + " |"
    sep = "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"
    body = ["| " + " | ".join(format_value(v, floatfmt) for v in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


# ---- figures --------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    cbar_label: str = "",
    fmt: str = ".2f",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
) -> Path:
    """A labelled heatmap PNG with the value written in each cell (NaN cells left blank)."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    size = max(4.0, 0.55 * max(len(col_labels), len(row_labels)) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(col_labels)), labels=list(col_labels))
    ax.set_yticks(range(len(row_labels)), labels=list(row_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    lo, hi = np.nanmin(m) if np.isfinite(m).any() else 0, np.nanmax(m) if np.isfinite(m).any() else 1
    mid = (lo + hi) / 2
    if m.size <= 400:  # annotate only while the numbers stay readable
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    ax.text(
                        j,
                        i,
                        format(m[i, j], fmt),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if m[i, j] > mid else "white",
                    )
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if cbar_label:
        cb.set_label(cbar_label)
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=120)
    return path


def save_grouped_bars(
    series: Mapping[str, Mapping[str, float]],
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "",
    xlabel: str = "",
) -> Path:
    """Grouped bar chart: one group per label (x), one bar per series; missing values skipped."""
    plt = _pyplot()
    labels: list[str] = list(dict.fromkeys(k for s in series.values() for k in s))
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(labels) * n + 2), 4))
    x = np.arange(len(labels))
    for i, (name, vals) in enumerate(series.items()):
        ys = [vals.get(l, np.nan) for l in labels]
        ys = [np.nan if v is None else v for v in ys]
        ax.bar(x + (i - (n - 1) / 2) * width, ys, width, label=name)
    ax.set_xticks(x, labels=labels)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=120)
    return path
