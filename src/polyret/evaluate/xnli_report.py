"""The XNLI report: markdown and the per-language bar plot (`polyret.evaluate.xnli` writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from polyret.report import save_figure


def _fmt_ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _correction_note(info: dict[str, Any] | None) -> str:
    info = info or {"method": "none"}
    return info["method"] + (f" ({info['statistics']})" if info.get("statistics") else "")


def xnli_markdown(results: dict[str, Any]) -> str:
    """The human report: protocol, per-language table, means, low-resource block, transfer gap."""
    p = results["protocol"]
    langs = results["per_language"]
    gap = (results.get("transfer_gap") or {}).get("per_language", {})
    lines = [
        f"# XNLI zero-shot ({results['split']}) — {results['model']}",
        "",
        f"- Mode: {p['mode']}; features {p['features']}; prompt: {p['prompt'] or 'none'}.",
        f"- Language correction: {_correction_note(results.get('language_correction'))}.",
        f"- English training data: {', '.join(p['english_train']['sources'])} ({p['english_train']['n']} pairs).",
        f"- Model selection: {p['selection']['method']}"
        + (f" → C = {p['selection']['C']}" if "C" in p["selection"] else "")
        + ".",
    ]
    if p["selection_on_evaluated_split"]:
        lines.append(
            "- **Note:** the evaluated split is dev, and XNLI English dev was also used for model "
            "selection, so the English row (and the transfer gap) is slightly optimistic."
        )
    if results["missing"]:
        lines.append(f"- Missing language files (not evaluated): {', '.join(results['missing'])}.")
    lines += [
        "",
        "Scores in %, 95% bootstrap CI over pairs in brackets; gap = English minus the language.",
        "",
        "| lang | n | accuracy | 95% CI | macro-F1 | 95% CI | F1 ent / neu / con | gap acc |",
        "|---|---:|---:|---|---:|---|---|---:|",
    ]
    for lang, s in langs.items():
        pc = s["per_class_f1"]
        g = f"{100 * gap[lang]['accuracy']:+.1f}" if lang in gap else ""
        lines.append(
            f"| {lang} | {s['n']} | {100 * s['accuracy']:.1f} | {_fmt_ci(s['accuracy_ci95'])} | "
            f"{100 * s['macro_f1']:.1f} | {_fmt_ci(s['macro_f1_ci95'])} | "
            f"{100 * pc['entailment']:.1f} / {100 * pc['neutral']:.1f} / {100 * pc['contradiction']:.1f} | {g} |"
        )
    lines.append("")
    for key, label in (("mean", "Mean over languages"), ("mean_non_english", "Mean over non-English languages")):
        m = results.get(key)
        if m:
            lines.append(
                f"- {label} ({m['n_languages']}): accuracy {100 * m['accuracy']:.1f}, macro-F1 {100 * m['macro_f1']:.1f}"
            )
    low = results["low_resource"]
    if low["mean"]:
        lines.append(
            f"- Low-resource ({', '.join(low['per_language'])}): accuracy {100 * low['mean']['accuracy']:.1f}, "
            f"macro-F1 {100 * low['mean']['macro_f1']:.1f}"
        )
    tg = results.get("transfer_gap")
    if tg and tg["mean"]:
        lines.append(
            f"- Mean transfer gap (en − other): accuracy {100 * tg['mean']['accuracy']:.1f} points"
            + (
                f"; low-resource {100 * tg['low_resource_mean']['accuracy']:.1f} points"
                if tg.get("low_resource_mean")
                else ""
            )
        )
    t = results["timing"]
    lines += [
        "",
        "Timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()),
        "",
        "![XNLI bars](xnli_bars.png)",
        "",
    ]
    return "\n".join(lines)


def plot_xnli_bars(results: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars of accuracy and macro-F1 per language with 95% CI whiskers."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    langs = list(results["per_language"])
    x = np.arange(len(langs))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(langs) + 2), 4))
    width = 0.4
    for k, (metric, colour) in enumerate((("accuracy", "tab:blue"), ("macro_f1", "tab:orange"))):
        vals = np.array([results["per_language"][l][metric] for l in langs]) * 100
        cis = np.array([results["per_language"][l][f"{metric}_ci95"] for l in langs]) * 100
        err = np.vstack([vals - cis[:, 0], cis[:, 1] - vals])
        ax.bar(x + (k - 0.5) * width, vals, width, yerr=err, capsize=2, label=metric.replace("_", "-"), color=colour)
    low = set(results["low_resource"]["per_language"])
    ax.set_xticks(x, [f"{l}*" if l in low else l for l in langs])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.axhline(100 / 3, color="grey", lw=0.8, ls=":")
    ax.set_title(f"XNLI {results['split']} zero-shot (* low-resource; dotted: chance)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=120)
    return path
