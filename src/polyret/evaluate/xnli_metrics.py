"""XNLI metrics: accuracy / macro-F1 / per-class F1, percentile-bootstrap CIs, means over languages."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from polyret.data.xnli import NLI_LABELS


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class F1 over the three NLI labels (scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score

    labels = list(range(len(NLI_LABELS)))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class_f1": {name: float(f) for name, f in zip(NLI_LABELS, per_class)},
    }


def _macro_f1_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each row of (B, n) label matrices (sklearn's definition, zero_division=0)."""
    f1s = []
    for c in range(n_classes):
        t, p = y_true == c, y_pred == c
        tp = np.sum(t & p, axis=1)
        denom = np.sum(t, axis=1) + np.sum(p, axis=1)  # 2TP + FP + FN
        f1s.append(np.divide(2.0 * tp, denom, out=np.zeros(len(tp)), where=denom > 0))
    return np.mean(f1s, axis=0)


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int = 250,
) -> dict[str, list[float]]:
    """Percentile-bootstrap CIs (resampling pairs) for accuracy and macro-F1, vectorised in chunks."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n = len(y_true)
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one prediction")
    rng = np.random.default_rng(seed)
    accs, f1s = [], []
    correct = (y_true == y_pred).astype(np.float64)
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        accs.append(correct[idx].mean(axis=1))
        f1s.append(_macro_f1_rows(y_true[idx], y_pred[idx], len(NLI_LABELS)))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    acc, f1 = np.concatenate(accs), np.concatenate(f1s)
    return {
        "accuracy": [float(np.percentile(acc, lo)), float(np.percentile(acc, hi))],
        "macro_f1": [float(np.percentile(f1, lo)), float(np.percentile(f1, hi))],
    }


def summarise_languages(
    per_language: dict[str, dict[str, Any]],
    *,
    low_resource: Sequence[str] = ("sw", "ur"),
    english: str = "en",
) -> dict[str, Any]:
    """Means over languages, the low-resource block and the transfer gap from per-language scores."""
    metrics = ("accuracy", "macro_f1")
    langs = list(per_language)

    def mean_over(ls: list[str]) -> dict[str, float] | None:
        if not ls:
            return None
        return {m: float(np.mean([per_language[l][m] for l in ls])) for m in metrics} | {"n_languages": len(ls)}

    others = [l for l in langs if l != english]
    low_present = [l for l in low_resource if l in per_language]
    low_mean = mean_over(low_present)
    out: dict[str, Any] = {
        "mean": mean_over(langs),
        "mean_non_english": mean_over(others),
        "low_resource": {
            "languages": list(low_resource),
            "missing": [l for l in low_resource if l not in per_language],
            "mean": low_mean,
            # the same means flat, for consumers that read low_resource["accuracy"]
            **{m: (low_mean[m] if low_mean else None) for m in metrics},
            "per_language": {l: {m: per_language[l][m] for m in metrics} for l in low_present},
        },
    }
    if english in per_language:
        en = per_language[english]
        gaps = {l: {m: float(en[m] - per_language[l][m]) for m in metrics} for l in others}
        out["transfer_gap"] = {
            "reference": english,
            "per_language": gaps,
            "mean": {m: float(np.mean([g[m] for g in gaps.values()])) for m in metrics} if gaps else None,
            "low_resource_mean": (
                {m: float(np.mean([gaps[l][m] for l in low_present if l in gaps])) for m in metrics}
                if any(l in gaps for l in low_present)
                else None
            ),
        }
    else:
        out["transfer_gap"] = None
    return out
