"""Paired comparison of two XNLI results (`polyret eval xnli-compare`): per language, the mean over
languages and the low-resource block, on the rows both results scored (see `compare_xnli`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from polyret.data.xnli import NLI_LABELS, read_xnli_tsv, xnli_file
from polyret.errors import PolyretError
from polyret.evaluate.result import upgrade_results
from polyret.evaluate.xnli_metrics import classification_scores
from polyret.stats import macro_weights, paired_bootstrap, paired_randomization_test


def _weighted_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro-F1 (sklearn's definition, zero_division=0) of each row of row-weights `w` (B, n)."""
    f1s = []
    for c in range(len(NLI_LABELS)):
        t, p = (y_true == c).astype(float), (y_pred == c).astype(float)
        tp = w @ (t * p)
        denom = w @ t + w @ p
        f1s.append(np.divide(2.0 * tp, denom, out=np.zeros(len(tp)), where=denom > 0))
    return np.mean(f1s, axis=0)


def _rows_of(res: dict[str, Any], lang: str) -> dict[int, tuple]:
    """Row -> (correct, predicted) of one language of a result."""
    s = res["per_language"][lang]
    if "predicted" not in s:
        raise PolyretError(
            f"XNLI result for {lang} has no per-row predictions (written by an older polyret); re-run it"
        )
    rows = s.get("rows") or list(range(len(s["correct"])))
    return {r: (c, p) for r, c, p in zip(rows, s["correct"], s["predicted"])}


def _paired_rows(a: dict[str, Any], b: dict[str, Any], langs: list[str], premise) -> dict[str, dict[str, Any]]:
    """Per language: the rows both results scored, their correctness / predictions / gold labels, and the
    resampling unit of each row (its premise), checked against the gold labels of the XNLI file."""
    per = {}
    for lang in langs:
        ra, rb = _rows_of(a, lang), _rows_of(b, lang)
        common = sorted(set(ra) & set(rb))
        if not common:
            raise PolyretError(f"the two XNLI results share no {lang} rows")
        ca = np.array([ra[r][0] for r in common], float)
        cb = np.array([rb[r][0] for r in common], float)
        pa = np.array([ra[r][1] for r in common])
        pb = np.array([rb[r][1] for r in common])
        y = _gold_labels(a, lang, common)
        if np.any((pa == y) != (ca == 1)) or np.any((pb == y) != (cb == 1)):
            raise PolyretError(
                f"XNLI {lang}: the stored predictions do not match the labels of "
                f"{xnli_file(a['xnli_dir'], a['split'], lang)}; were the two results computed on other files?"
            )
        units = [premise[r] if premise is not None and r < len(premise) else r for r in common]
        per[lang] = dict(rows=common, ca=ca, cb=cb, pa=pa, pb=pb, y=y, units=units)
    return per


def compare_xnli(
    a: dict[str, Any],
    b: dict[str, Any],
    *,
    low_resource: Sequence[str] | None = None,
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of two XNLI results (`results.json` dicts), delta = a − b, on the rows both
    scored (matched by language and file row, so an eval-side run pairs with a full run).

    For each language, the mean over the common languages and the low-resource block (default: a's
    block): accuracy delta with a two-sided sign-flip randomization p-value and a paired-bootstrap 95%
    CI; macro-F1 delta with a paired-bootstrap 95% CI and p-value. The resampled / sign-flipped unit
    is the premise (its three hypotheses in every language together): rows sharing a premise are not
    independent evidence. Means weight languages equally.
    """
    a, b = upgrade_results(a), upgrade_results(b)  # results.json of any polyret version
    langs = [l for l in a["per_language"] if l in b["per_language"]]
    if not langs:
        raise PolyretError("the two XNLI results share no language")
    premise = a.get("premise_of_row") or b.get("premise_of_row")
    low = [l for l in (low_resource if low_resource is not None else a["low_resource"]["languages"]) if l in langs]

    per = _paired_rows(a, b, langs, premise)

    rng = np.random.default_rng(seed)
    all_units = sorted({u for d in per.values() for u in d["units"]})
    unit_pos = {u: i for i, u in enumerate(all_units)}
    # One cluster resample shared by every language, so block and mean deltas are resampled jointly.
    draws = rng.integers(0, len(all_units), size=(n_bootstrap, len(all_units)))
    counts = np.zeros((n_bootstrap, len(all_units)))
    for k in range(n_bootstrap):
        counts[k] = np.bincount(draws[k], minlength=len(all_units))
    f1_delta_boot = {}
    out_lang: dict[str, Any] = {}
    for i, (lang, d) in enumerate(per.items()):
        rt = paired_randomization_test(
            d["ca"], d["cb"], clusters=d["units"], n_permutations=n_permutations, seed=seed + i
        )
        bs = paired_bootstrap(d["ca"], d["cb"], clusters=d["units"], n_resamples=n_bootstrap, seed=seed + i)
        w = counts[:, [unit_pos[u] for u in d["units"]]]
        f1_a = classification_scores(d["y"], d["pa"])["macro_f1"]
        f1_b = classification_scores(d["y"], d["pb"])["macro_f1"]
        boot = _weighted_macro_f1(d["y"], d["pa"], w) - _weighted_macro_f1(d["y"], d["pb"], w)
        f1_delta_boot[lang] = boot
        out_lang[lang] = _delta_block(
            d["ca"].mean(), d["cb"].mean(), rt.delta, bs.ci, rt.p_value, f1_a, f1_b, boot, len(d["rows"]), rt.n_units
        )

    def block(names: list[str], offset: int) -> dict[str, Any] | None:
        if not names:
            return None
        ca = np.concatenate([per[l]["ca"] for l in names])
        cb = np.concatenate([per[l]["cb"] for l in names])
        units = [u for l in names for u in per[l]["units"]]
        w = macro_weights([(l,) for l in names for _ in per[l]["rows"]])
        rt = paired_randomization_test(
            ca, cb, weights=w, clusters=units, n_permutations=n_permutations, seed=seed + offset
        )
        bs = paired_bootstrap(ca, cb, weights=w, clusters=units, n_resamples=n_bootstrap, seed=seed + offset)
        boot = np.mean([f1_delta_boot[l] for l in names], axis=0)
        return {"languages": names} | _delta_block(
            float(np.mean([out_lang[l]["accuracy_a"] for l in names])),
            float(np.mean([out_lang[l]["accuracy_b"] for l in names])),
            rt.delta,
            bs.ci,
            rt.p_value,
            float(np.mean([out_lang[l]["macro_f1_a"] for l in names])),
            float(np.mean([out_lang[l]["macro_f1_b"] for l in names])),
            boot,
            len(ca),
            rt.n_units,
        )

    return {
        "a": a.get("model"),
        "b": b.get("model"),
        "method": (
            f"accuracy: paired sign-flip randomization ({n_permutations} permutations) and paired bootstrap "
            f"({n_bootstrap} resamples); macro-F1: paired bootstrap; unit: premise cluster; languages weighted equally"
        ),
        "languages": out_lang,
        "mean": block(langs, 1000),
        "low_resource": block(low, 2000),
    }


def _gold_labels(res: dict[str, Any], lang: str, rows: list[int]) -> np.ndarray:
    """Gold labels of `rows` of a language, read back from the XNLI file the result was computed on."""
    path = xnli_file(res["xnli_dir"], res["split"], lang)
    if not path.is_file():
        raise PolyretError(f"macro-F1 comparison needs the gold labels of {path}, which is missing")
    return read_xnli_tsv(path).labels[rows]


def _delta_block(acc_a, acc_b, acc_delta, acc_ci, acc_p, f1_a, f1_b, f1_boot, n_rows, n_units) -> dict[str, Any]:
    f1_delta = f1_a - f1_b
    lo, hi = np.quantile(f1_boot, [0.025, 0.975])
    centred = f1_boot - f1_boot.mean()
    p = (1 + int(np.count_nonzero(np.abs(centred) >= abs(f1_delta)))) / (1 + len(f1_boot))
    return {
        "accuracy_a": float(acc_a),
        "accuracy_b": float(acc_b),
        "accuracy_delta": float(acc_delta),
        "accuracy_delta_ci95": [float(acc_ci[0]), float(acc_ci[1])],
        "accuracy_p": float(acc_p),
        "macro_f1_a": float(f1_a),
        "macro_f1_b": float(f1_b),
        "macro_f1_delta": float(f1_delta),
        "macro_f1_delta_ci95": [float(lo), float(hi)],
        "macro_f1_p": float(min(p, 1.0)),
        "n_rows": int(n_rows),
        "n_units": int(n_units),
    }


def comparison_markdown(cmp: dict[str, Any], label_a: str = "a", label_b: str = "b") -> str:
    """A table of `compare_xnli`'s output: per language, the mean and the low-resource block."""
    lines = [
        f"XNLI {label_a} − {label_b} (paired; {cmp['method']}). Points; 95% CI in brackets.",
        "",
        f"| lang | rows | acc {label_a} | acc {label_b} | Δ acc [95% CI] | p | F1 {label_a} | F1 {label_b} | Δ F1 [95% CI] | p |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    rows = list(cmp["languages"].items()) + [
        ("mean", cmp["mean"]),
        ("low-resource (" + "+".join((cmp["low_resource"] or {}).get("languages", [])) + ")", cmp["low_resource"]),
    ]
    for name, d in rows:
        if not d:
            continue
        lines.append(
            f"| {name} | {d['n_rows']} | {100 * d['accuracy_a']:.1f} | {100 * d['accuracy_b']:.1f} | "
            f"{100 * d['accuracy_delta']:+.1f} [{100 * d['accuracy_delta_ci95'][0]:+.1f}, {100 * d['accuracy_delta_ci95'][1]:+.1f}] | "
            f"{d['accuracy_p']:.3g} | {100 * d['macro_f1_a']:.1f} | {100 * d['macro_f1_b']:.1f} | "
            f"{100 * d['macro_f1_delta']:+.1f} [{100 * d['macro_f1_delta_ci95'][0]:+.1f}, {100 * d['macro_f1_delta_ci95'][1]:+.1f}] | "
            f"{d['macro_f1_p']:.3g} |"
        )
    return "\n".join(lines) + "\n"
