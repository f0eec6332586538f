"""report.md and plots for an experiment, from its summary dict (see `polyret.experiment.runner`).

Tables: one per suite with the headline metrics (mean ± half-width of the 95% t-interval over
seeds) and ranx-style significance marks; per-source-language tables; the list of paired tests.
Plots (matplotlib, Agg): bars with CIs, the α-sweep and λ-sweep curves, per-language heatmaps.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from polyret.evaluate.result import lower_is_better
from polyret.io import write_text
from polyret.report import markdown_table, save_figure

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SUPERSCRIPT = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖᑫʳˢᵗᵘᵛʷˣʸᶻ")
_LANG_RE = re.compile(r"^(?P<metric>.+)\[(?P<lang>[^\]]+)\]$")


def fmt_value(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def fmt_cell(stat: dict[str, Any] | None) -> str:
    """'0.712 ± 0.010' (half-width of the 95% CI, same decimals as the mean), or just the mean
    when there is no interval."""
    if not stat:
        return "–"
    mean = stat["mean"]
    if stat.get("ci95") and mean is not None and not math.isnan(mean):
        lo, hi = stat["ci95"]
        digits = 1 if abs(mean) >= 10 else 3
        return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"
    return fmt_value(mean)


def fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def significance_letters(summary: dict[str, Any], suite: str, metric: str, labels: list[str]) -> dict[str, str]:
    """label -> letters of the variants it is significantly better than (Holm-adjusted p)."""
    letter = {l: LETTERS[i % 26] for i, l in enumerate(labels)}
    marks: dict[str, set[str]] = {l: set() for l in labels}
    for t in summary.get("tests", []):
        if t["suite"] != suite or t["metric"] != metric or not t.get("significant"):
            continue
        better_a = (t["delta"] < 0) if t.get("lower_is_better") else (t["delta"] > 0)
        winner, loser = (t["a"], t["b"]) if better_a else (t["b"], t["a"])
        if winner in marks and loser in letter:
            marks[winner].add(letter[loser])
    return {l: "".join(sorted(m)).translate(SUPERSCRIPT) for l, m in marks.items()}


def _per_language(agg: dict[str, dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    """{lang: stat} for metrics named `prefix[lang]`."""
    out = {}
    for name, stat in agg.items():
        m = _LANG_RE.match(name)
        if m and m.group("metric") == prefix:
            out[m.group("lang")] = stat
    return out


def _variant_labels(summary: dict[str, Any]) -> list[str]:
    return [v["label"] for v in summary["variants"]]


def markdown(summary: dict[str, Any], plots: dict[str, list[str]] | None = None) -> str:
    """report.md: the header, one section per suite, the α/λ sweeps and the paired tests."""
    plots = plots or {}
    labels = _variant_labels(summary)
    letters = {l: LETTERS[i % 26] for i, l in enumerate(labels)}
    lines = _header_lines(summary, labels, letters)
    for suite, meta in summary["suites"].items():
        lines += _suite_lines(summary, suite, meta, labels, letters)
        for p in plots.get(suite, []):
            lines += [f"![{Path(p).stem}]({p})", ""]
    for title in ("alpha", "lambda"):
        for p in plots.get(title, []):
            lines += [f"## {'α' if title == 'alpha' else 'λ'} sweep", "", f"![{Path(p).stem}]({p})", ""]
    return "\n".join(lines + _tests_lines(summary))


def _header_lines(summary: dict[str, Any], labels: list[str], letters: dict[str, str]) -> list[str]:
    runs = summary["runs"]
    done = sum(1 for r in runs if r.get("complete"))
    lines = [f"# Experiment: {summary['name']}", ""]
    if summary.get("description"):
        lines += [summary["description"], ""]
    wall = (summary.get("timing") or {}).get("wall_s")
    return lines + [
        f"Runs: {done}/{len(runs)} complete"
        + (f"; wall time of this invocation {wall:.0f} s" if wall is not None else "")
        + ("; " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) if summary.get("counts") else "")
        + ".",
        "",
        "Cells: mean over seeds ± half-width of the 95% Student-t interval (no ± with one seed). "
        "Superscript letters: the variant is significantly better (paired sign-flip randomization "
        "test over queries, seeds pooled by averaging each query over seeds, macro-weighted like the "
        f"metric, Holm-adjusted within each metric, level {summary['config']['tests']['level']}) than "
        "the variants with those letters. Rank distance: lower is better.",
        "",
        "Variants: " + ", ".join(f"({letters[l]}) {l}" for l in labels) + ".",
        "",
    ]


def _suite_lines(
    summary: dict[str, Any], suite: str, meta: dict[str, Any], labels: list[str], letters: dict[str, str]
) -> list[str]:
    """A suite's headline table (with significance letters) and its per-language tables."""
    lines = [f"## {suite}", ""]
    headline = meta.get("headline") or []
    if not headline:
        return lines + ["No finished runs for this suite yet.", ""]
    marks = {m: significance_letters(summary, suite, m, labels) for m in headline}
    rows = []
    for l in labels:
        agg = summary["aggregate"].get(l, {}).get(suite, {})
        if agg:
            n = max((agg[m]["n"] for m in headline if m in agg), default=0)
            rows.append([f"({letters[l]}) {l}", n, *[fmt_cell(agg.get(m)) + marks[m].get(l, "") for m in headline]])
    lines += [markdown_table(["variant", "seeds", *headline], rows), ""]
    for title, prefixes in (meta.get("per_language") or {}).items():
        for prefix in prefixes:
            lines += _per_language_lines(summary, suite, title, prefix, labels)
    return lines


def _per_language_lines(summary: dict[str, Any], suite: str, title: str, prefix: str, labels: list[str]) -> list[str]:
    aggs = {l: summary["aggregate"].get(l, {}).get(suite, {}) for l in labels}
    per = {l: _per_language(agg, prefix) for l, agg in aggs.items()}
    langs = list(dict.fromkeys(lang for l in labels for lang in per[l]))
    if not langs:
        return []
    rows = [
        [l, *[fmt_cell(per[l].get(lang)) for lang in langs], fmt_cell(aggs[l].get(prefix))] for l in labels if per[l]
    ]
    return [f"**{title}** per source language (`{prefix}`)", "", markdown_table(["variant", *langs, "mean"], rows), ""]


def _tests_lines(summary: dict[str, Any]) -> list[str]:
    tests = summary.get("tests") or []
    lines = ["## Paired tests", ""]
    if not tests:
        return lines + ["No paired tests (no per-query values for any suite, or fewer than two variants finished).", ""]
    rows = []
    for t in tests:
        lo, hi = t["delta_ci95"]
        star = " *" if t.get("significant") else ""
        rows.append(
            [
                t["a"],
                t["b"],
                t["suite"],
                t["metric"],
                f"{t['delta']:+.4f} [{lo:+.4f}, {hi:+.4f}]{star}",
                f"{t['effect_size_dz']:+.2f}",
                fmt_p(t["p_value"]),
                fmt_p(t["p_holm"]),
                t["n_queries"],
                f"{t['n_seeds'][0]}/{t['n_seeds'][1]}",
            ]
        )
    lines += [
        "delta = a − b (weighted like the metric); CI: paired bootstrap over queries; d_z: Cohen's d "
        "for paired data; p: randomization test; p_holm: Holm-adjusted within (suite, metric).",
        "",
        markdown_table(
            ["a", "b", "suite", "metric", "delta [95% CI]", "d_z", "p", "p_holm", "queries", "seeds a/b"],
            rows,
            align="lllllrrrrl",
        ),
        "",
    ]
    missing = [s for s, m in summary["suites"].items() if m.get("headline") and not any(t["suite"] == s for t in tests)]
    if missing:
        lines += [f"No per-query values (so no paired tests) for: {', '.join(missing)}.", ""]
    return lines


# ------------------------------------------------------------------------------------- plots
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(stat: dict[str, Any] | None) -> tuple[float, float, float]:
    if not stat or stat.get("mean") is None:
        return (np.nan, 0.0, 0.0)
    m = stat["mean"]
    if stat.get("ci95"):
        lo, hi = stat["ci95"]
        return (m, m - lo, hi - m)
    return (m, 0.0, 0.0)


def plot_bars(summary: dict[str, Any], suite: str, path: Path) -> Path | None:
    """Headline metrics of one suite: grouped bars per variant with 95% CI whiskers."""
    headline = summary["suites"][suite].get("headline") or []
    labels = [l for l in _variant_labels(summary) if summary["aggregate"].get(l, {}).get(suite)]
    if not headline or not labels:
        return None
    plt = pyplot()
    panels = [[m for m in headline if not lower_is_better(m)], [m for m in headline if lower_is_better(m)]]
    panels = [p for p in panels if p]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(6, 1.2 * len(headline) * len(labels) / 2 + 3), 4), squeeze=False
    )
    width = 0.8 / len(labels)
    for ax, metrics in zip(axes[0], panels):
        x = np.arange(len(metrics))
        for i, l in enumerate(labels):
            agg = summary["aggregate"][l][suite]
            vals = [_err(agg.get(m)) for m in metrics]
            ax.bar(
                x + (i - (len(labels) - 1) / 2) * width,
                [v[0] for v in vals],
                width,
                yerr=np.array([[v[1] for v in vals], [v[2] for v in vals]]),
                capsize=3,
                label=l,
            )
        ax.set_xticks(x, metrics, rotation=20, ha="right")
        ax.grid(axis="y", alpha=0.3)
        if any(lower_is_better(m) for m in metrics):
            ax.set_title("lower is better")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{suite}: mean over seeds, 95% CI")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


# A Hybrid batch is X-X-mono with probability α, else X-Y: the pure strategies are the α-axis's ends.
_ALPHA_ENDS = {"x-y": 0.0, "x-x-mono": 1.0}


def _sweep_groups(summary: dict[str, Any], axis: str) -> dict[tuple, list[tuple[float, str]]]:
    """Curves for a sweep: key -> [(x, variant label)], x = α (Hybrid, same base and λ; X-Y is α = 0 and
    X-X-mono α = 1 unless the grid has a Hybrid at that α) or λ (same base, strategy and α; the base
    model is the λ = 0 point)."""
    groups: dict[tuple, list[tuple[float, str]]] = {}
    ends: dict[tuple, list[tuple[float, str]]] = {}
    base_of = {v["base_model"]: v["label"] for v in summary["variants"] if v["strategy"] == "base"}
    for v in summary["variants"]:
        if v["strategy"] == "base":
            continue
        if axis == "alpha":
            key = (v["base_model"], v["merge_weight"])
            if v["strategy"] == "hybrid":
                groups.setdefault(key, []).append((v["alpha"], v["label"]))
            elif v["strategy"] in _ALPHA_ENDS:
                ends.setdefault(key, []).append((_ALPHA_ENDS[v["strategy"]], v["label"]))
        elif isinstance(v["merge_weight"], (int, float)):  # λ = auto has no place on the λ axis
            groups.setdefault((v["base_model"], v["strategy"], v["alpha"]), []).append((v["merge_weight"], v["label"]))
    for key, pts in groups.items():
        pts += [(x, label) for x, label in ends.get(key, []) if x not in {a for a, _ in pts}]
    out = {}
    for key, pts in groups.items():
        if len(pts) < 2:
            continue
        if axis == "lambda" and key[0] in base_of:
            pts = [(0.0, base_of[key[0]])] + pts
        out[key] = sorted(pts)
    return out


def _curve_tag(axis: str, key: tuple) -> str:
    if axis == "alpha":
        base, lam = key
        return f"{base}, λ={lam:g}" if isinstance(lam, (int, float)) else f"{base}, λ={lam}"
    base, strategy, alpha = key
    return f"{base}, {strategy}" + (f" α={alpha:g}" if alpha is not None else "")


def plot_sweep(summary: dict[str, Any], axis: str, path: Path) -> Path | None:
    """α- or λ-sweep: headline metrics of every suite against the swept value, 95% CI bars;
    the untrained base as a dashed line (α) or the λ = 0 point (λ)."""
    curves = _sweep_groups(summary, axis)
    suites = [s for s, m in summary["suites"].items() if m.get("headline")]
    if not curves or not suites:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(suites), 2, figsize=(10, 3.4 * len(suites)), squeeze=False)
    base_of = {v["base_model"]: v["label"] for v in summary["variants"] if v["strategy"] == "base"}
    for row, suite in enumerate(suites):
        headline = summary["suites"][suite]["headline"]
        for col, metrics in enumerate(
            ([m for m in headline if not lower_is_better(m)], [m for m in headline if lower_is_better(m)])
        ):
            ax = axes[row][col]
            if not metrics:
                ax.axis("off")
                continue
            for key, pts in curves.items():
                tag = "" if len(curves) == 1 else " (" + _curve_tag(axis, key) + ")"
                for m in metrics:
                    vals = [_err(summary["aggregate"][l].get(suite, {}).get(m)) for _, l in pts]
                    xs = [x for x, _ in pts]
                    line = ax.errorbar(
                        xs,
                        [v[0] for v in vals],
                        yerr=np.array([[v[1] for v in vals], [v[2] for v in vals]]),
                        marker="o",
                        capsize=3,
                        label=m + tag,
                    )
                    if axis == "alpha" and key[0] in base_of:
                        b = summary["aggregate"][base_of[key[0]]].get(suite, {}).get(m)
                        if b:
                            ax.axhline(b["mean"], ls="--", lw=0.8, color=line[0].get_color())
            ax.set_xlabel(
                "α (share of X-X-mono batches; 0 = X-Y, 1 = X-X-mono)"
                if axis == "alpha"
                else "λ (weight of the fine-tuned model)"
            )
            ax.set_title(f"{suite}" + (" (lower is better)" if col == 1 else ""))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        ("α sweep (dashed: untrained base)" if axis == "alpha" else "λ sweep (λ = 0: untrained base)")
        + ", 95% CI over seeds"
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def plot_language_heatmap(summary: dict[str, Any], suite: str, prefix: str, path: Path) -> Path | None:
    """Variants × source languages of one per-language metric (means over seeds)."""
    labels = _variant_labels(summary)
    rows, langs = [], []
    for l in labels:
        per = _per_language(summary["aggregate"].get(l, {}).get(suite, {}), prefix)
        if per:
            rows.append((l, per))
            langs += [x for x in per if x not in langs]
    if not rows:
        return None
    plt = pyplot()
    mat = np.array([[per.get(x, {}).get("mean", np.nan) if per.get(x) else np.nan for x in langs] for _, per in rows])
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(langs) + 3), 0.45 * len(rows) + 1.8))
    im = ax.imshow(mat, aspect="auto", cmap="viridis_r" if lower_is_better(prefix) else "viridis")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(rows)), [l for l, _ in rows])
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if not np.isnan(mat[i, j]):
                # Dark text on the bright end of viridis, light text on the dark end.
                bright = im.norm(mat[i, j]) > 0.5
                if lower_is_better(prefix):
                    bright = not bright
                ax.text(
                    j,
                    i,
                    fmt_value(float(mat[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="k" if bright else "w",
                )
    fig.colorbar(im, ax=ax)
    ax.set_title(f"{suite}: {prefix} per source language")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(summary: dict[str, Any], out_dir: str | Path) -> Path:
    """Write DIR/report.md and DIR/plots/*.png; returns the report path."""
    out_dir = Path(out_dir)
    pdir = out_dir / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, list[str]] = {}
    for suite, meta in summary["suites"].items():
        made = [plot_bars(summary, suite, pdir / f"bars_{_safe(suite)}.png")]
        for prefixes in (meta.get("per_language") or {}).values():
            for prefix in prefixes:
                made.append(
                    plot_language_heatmap(summary, suite, prefix, pdir / f"heatmap_{_safe(suite)}_{_safe(prefix)}.png")
                )
        plots[suite] = [str(p.relative_to(out_dir)) for p in made if p is not None]
    for axis in ("alpha", "lambda"):
        p = plot_sweep(summary, axis, pdir / f"{axis}_sweep.png")
        plots[axis] = [str(p.relative_to(out_dir))] if p else []
    path = out_dir / "report.md"
    write_text(path, markdown(summary, plots))  # atomic, like every other output
    return path
