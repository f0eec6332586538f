"""What one lever adds: paired tests between the same variants of two finished experiments.

A grid answers "which batching" inside one experiment. A lever that is not a grid axis — the teacher
term (two experiments whose train overrides differ only in it), the language correction (two suites
of one experiment that score the same embeddings raw and corrected) — is measured here: for every
variant present on both sides, side a minus side b on the same queries, seeds pooled as in the grid's
own tests (`compare.seed_pooled`, `compare.paired_test`), Holm-adjusted within each metric over the
variants. A variant whose runs are the very same runs on both sides (the base model of two
experiments that differ only in training) is skipped: its delta is zero by construction.

    polyret ablation runs/alignment-grid runs/alignment-grid-noteacher --suite "xquad-r corrected" \\
        --label-a teacher --label-b "no teacher" --out runs/teacher-ablation
    polyret ablation runs/alignment-grid runs/alignment-grid --suite "xquad-r corrected" --suite-b "xquad-r raw" \\
        --label-a corrected --label-b raw --out runs/correction-ablation
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polyret.errors import PolyretError
from polyret.evaluate.reader import load_result
from polyret.evaluate.result import PerQuery, lower_is_better
from polyret.experiment.compare import holm_within, paired_test, seed_pooled
from polyret.experiment.config import SuiteConfig, suite_label
from polyret.experiment.report import pyplot, fmt_p
from polyret.experiment.runner import PER_QUERY_FILE, SUITE_DONE, SUMMARY_FILE, suite_dir_name
from polyret.io import finished_record, read_json, write_json, write_text
from polyret.report import markdown_table, save_figure

ABLATION_JSON, ABLATION_MD, ABLATION_PNG = "ablation.json", "ablation.md", "ablation.png"


def _summary(exp_dir: Path) -> dict[str, Any]:
    path = exp_dir / SUMMARY_FILE
    if not path.is_file():
        raise PolyretError(
            f"{exp_dir}: no {SUMMARY_FILE} — not a finished polyret experiment "
            "(`polyret experiment CONFIG --out DIR`, or `--report-only` on a partial one)"
        )
    return read_json(path)


def _suite(summary: dict[str, Any], exp_dir: Path, label: str) -> SuiteConfig:
    suites = [SuiteConfig.model_validate(s) for s in summary["config"]["suites"]]
    for s in suites:
        if suite_label(s) == label:
            return s
    known = ", ".join(repr(suite_label(s)) for s in suites)
    raise PolyretError(f"{exp_dir}: no suite {label!r} (its suites: {known})")


def experiment_per_query(exp_dir: str | Path, suite: str) -> dict[str, tuple[dict[str, PerQuery], list[str]]]:
    """variant label -> (its seed-pooled per-query values on `suite`, what was pooled: one
    'run key/suite folder' per run, equal only for the same run scored with the same suite settings),
    over the runs of a finished experiment dir whose suite has finished."""
    exp_dir = Path(exp_dir)
    summary = _summary(exp_dir)
    sdir = suite_dir_name(_suite(summary, exp_dir, suite))
    runs: dict[str, list[tuple[str, dict[str, PerQuery]]]] = {}
    for rec in summary["runs"]:
        folder = exp_dir / rec["dir"] / "eval" / sdir
        if finished_record(folder / SUITE_DONE) is not None and (folder / PER_QUERY_FILE).is_file():
            runs.setdefault(rec["variant"], []).append(
                (f"{rec['key']}/{sdir}", load_result(folder, raw=False).per_query)
            )
    return {v: (seed_pooled([pq for _, pq in rs]), sorted(k for k, _ in rs)) for v, rs in runs.items()}


def ablation(
    a: str | Path,
    b: str | Path,
    *,
    suite: str,
    suite_b: str | None = None,
    variants: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    n_permutations: int = 10000,
    n_bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.05,
) -> dict[str, Any]:
    """Side a (experiment `a`, suite `suite`) minus side b (experiment `b`, suite `suite_b` or the
    same label), per shared variant and per-query metric. Returns the JSON-able result."""
    a, b = Path(a), Path(b)
    suite_b = suite_b or suite
    if a.resolve() == b.resolve() and suite == suite_b:
        raise PolyretError(
            f"{a}: both sides are the same experiment and suite {suite!r}; nothing to compare "
            "(give a second experiment dir, or --suite-b for another suite of this one)"
        )
    side_a, side_b = experiment_per_query(a, suite), experiment_per_query(b, suite_b)
    shared = [v for v in side_a if v in side_b]
    if variants:
        missing = [v for v in variants if v not in shared]
        if missing:
            raise PolyretError(
                f"variant(s) {', '.join(map(repr, missing))} not finished on both sides "
                f"(shared: {', '.join(map(repr, shared)) or 'none'})"
            )
        shared = list(variants)
    if not shared:
        raise PolyretError(
            f"{a} ({suite}) and {b} ({suite_b}) have no finished variant in common "
            f"(a: {', '.join(side_a) or 'none'}; b: {', '.join(side_b) or 'none'})"
        )
    tests: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for v in shared:
        (pa, keys_a), (pb, keys_b) = side_a[v], side_b[v]
        if keys_a == keys_b:  # the same runs scored with the same suite settings
            skipped.append({"variant": v, "why": "the same runs on both sides (delta 0 by construction)"})
            continue
        for metric in sorted(set(pa) & set(pb)):
            if metrics and metric not in metrics:
                continue
            t = paired_test(
                pa[metric], pb[metric], metric, n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed
            )
            if t is not None:
                tests.append({"variant": v, "metric": metric} | t | {"n_seeds": [len(keys_a), len(keys_b)]})
    return {
        "a": {"experiment": str(a), "suite": suite},
        "b": {"experiment": str(b), "suite": suite_b},
        "tests": holm_within(tests, ("metric",), level),
        "skipped": skipped,
        "level": level,
    }


def ablation_markdown(result: dict[str, Any], label_a: str = "a", label_b: str = "b") -> str:
    a, b = result["a"], result["b"]
    lines = [
        f"# Ablation: {label_a} − {label_b}",
        "",
        f"- **{label_a}**: `{a['experiment']}`, suite {a['suite']!r}",
        f"- **{label_b}**: `{b['experiment']}`, suite {b['suite']!r}",
        "",
        "Per variant, on the queries both sides scored (seeds pooled): the delta of the metric's macro "
        "average, its paired-bootstrap 95% CI, the sign-flip randomization p and the Holm-adjusted p "
        f"within each metric over the variants (bold: significant at {result['level']}).",
        "",
    ]
    rows = []
    for t in result["tests"]:
        lo, hi = t["delta_ci95"]
        d = f"{t['delta']:+.4f}" + (" ↓" if t["lower_is_better"] else "")
        p = fmt_p(t["p_holm"])
        rows.append(
            [
                t["variant"],
                t["metric"],
                d,
                f"[{lo:+.4f}, {hi:+.4f}]",
                fmt_p(t["p_value"]),
                "**" + p + "**" if t["significant"] else p,
                t["n_queries"],
                f"{t['n_seeds'][0]} / {t['n_seeds'][1]}",
            ]
        )
    lines.append(
        markdown_table(
            ["variant", "metric", "Δ", "95% CI", "p", "p (Holm)", "queries", "seeds a / b"], rows, align="llrlrrrl"
        )
    )
    if any(t["lower_is_better"] for t in result["tests"]):
        lines += ["", "↓: lower is better (a negative Δ favours " + label_a + ")."]
    for s in result["skipped"]:
        lines.append(f"\nSkipped {s['variant']}: {s['why']}.")
    return "\n".join(lines) + "\n"


def plot_ablation(
    result: dict[str, Any], path: Path, label_a: str = "a", label_b: str = "b", metrics: Sequence[str] | None = None
) -> Path | None:
    """One panel per metric: each variant's delta with its 95% CI (a dot-and-whisker plot)."""
    tests = result["tests"]
    shown = list(metrics) if metrics else list(dict.fromkeys(t["metric"] for t in tests if "[" not in t["metric"]))
    shown = [m for m in shown if any(t["metric"] == m for t in tests)][:6]
    if not shown:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(shown), figsize=(3.2 * len(shown) + 1, 0.45 * len(tests) / len(shown) + 2.2), squeeze=False
    )
    for ax, m in zip(axes[0], shown):
        rows = [t for t in tests if t["metric"] == m]
        y = list(range(len(rows)))[::-1]
        for yi, t in zip(y, rows):
            lo, hi = t["delta_ci95"]
            colour = "tab:blue" if t["significant"] else "tab:gray"
            ax.errorbar(t["delta"], yi, xerr=[[t["delta"] - lo], [hi - t["delta"]]], fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_yticks(y, [t["variant"] for t in rows])
        ax.set_title(m + (" (lower is better)" if lower_is_better(m) else ""), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{label_a} − {label_b}: Δ and 95% CI (blue: Holm p < {result['level']})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def write_ablation(result: dict[str, Any], out_dir: Path, label_a: str = "a", label_b: str = "b") -> list[Path]:
    """ablation.json (machines), ablation.md and ablation.png (people) into `out_dir`."""
    write_json(out_dir / ABLATION_JSON, result | {"labels": [label_a, label_b]})
    write_text(out_dir / ABLATION_MD, ablation_markdown(result, label_a, label_b))
    png = plot_ablation(result, out_dir / ABLATION_PNG, label_a, label_b)
    return [out_dir / ABLATION_JSON, out_dir / ABLATION_MD] + ([png] if png else [])
