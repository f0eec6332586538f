"""Zero-shot cross-lingual XNLI with a frozen encoder (the standard protocol, not MTEB's pair AP).

Protocol (what `evaluate_xnli` does):
1. Encode premise u and hypothesis v with the encoder, frozen, using e5's `query: ` prompt (e5's
   recommendation for symmetric tasks; `kind=None` encodes without a prompt). Embeddings are
   cached on disk, so a second run over the same sentences only trains and scores.
2. Pair features [u, v, |u - v|, u * v] (InferSent / SentEval).
3. A multinomial logistic regression (scikit-learn, standardised features) is trained on English
   NLI only: by default SNLI dev (line-aligned, de-tokenised) + SICK TRAIN. The regularisation C
   is chosen on XNLI **English dev** only, by accuracy.
4. Every `<split>-<lang>.tsv` is scored: accuracy, macro-F1, per-class F1 (scikit-learn), with a 95%
   percentile-bootstrap CI over pairs; means over languages, a low-resource block (sw, ur by
   default) and the transfer gap (English minus each language).

With `fine_tune=True` (the fine-tuned protocol, `polyret.evaluate.nli_finetune`) a copy of the
encoder is instead fine-tuned together with a head (linear or a small MLP) over the same four-part
features on English NLI (by default all the offline English data: SNLI, SICK and XNLI dev's English
alignment side, 49.4k rows; only the evaluation side of dev is then scored), and the trained head
scores the languages; no C to select then, and nothing is selected on any XNLI data at run time (the
defaults were chosen once on English dev).
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyret.data.xnli import (
    NLI_LABELS,
    NLIPairs,
    find_xnli_languages,
    load_english_train,
    read_xnli_tsv,
    rows_to_score,
    xnli_file,
    xnli_premise_index,
    xnli_side_rows,
)
from polyret.encode import ENCODE_BATCH_SIZE, encode_texts, model_id
from polyret.errors import PolyretError
from polyret.evaluate.nli_finetune import (  # pair_features lives there: the tuned head uses it too
    FINE_TUNE_ENGLISH_TRAIN,
    FineTuneSettings,
    fine_tune_nli,
    head_predict,
    pair_features,
)
from polyret.evaluate.result import EvalResult, PerQuery
from polyret.io import OutputDir, output_dir, write_json
from polyret.model import load_model
from polyret.runtime import console, describe_model

# Around the optimum for multilingual-e5-small on SNLI dev + SICK TRAIN (C = 0.001 on XNLI en dev;
# 0.1 and 1.0 were 2.7 and 3.4 points worse and the slowest to fit).
DEFAULT_CS: tuple[float, ...] = (0.0001, 0.0003, 0.001, 0.003, 0.01)
RESULTS_FILE = "results.json"


# ----------------------------------------------------------------------------- pure metric helpers
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


# ----------------------------------------------------------------------------- classifier
def train_classifier(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_select: np.ndarray,
    y_select: np.ndarray,
    *,
    Cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
):
    """Fit standardised logistic regression for each C; keep the one best on the selection set.

    Cs are tried in increasing order, each fit warm-started from the previous solution (a stronger-
    regularised optimum is a good start for a weaker one), which cuts the lbfgs iterations.
    Returns (fitted pipeline, {"C": best, "selection_accuracy": {C: acc}}).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if not Cs:
        raise PolyretError("no regularisation values (Cs) to select from")
    scaler = StandardScaler().fit(X_train)
    Xt, Xs = scaler.transform(X_train), scaler.transform(X_select)
    lr = LogisticRegression(max_iter=1000, warm_start=True, random_state=seed)
    best, best_acc, scores = None, -1.0, {}
    for C in sorted(Cs):
        lr.set_params(C=C)
        # One BLAS thread: these matrix products are small, and OpenBLAS's spinning worker threads
        # made the fit 4.5x slower on a busy 2-core machine (76 s -> 17 s for 14k pairs).
        with threadpool_limits(limits=1, user_api="blas"):
            lr.fit(Xt, y_train)
        acc = float(np.mean(lr.predict(Xs) == y_select))
        scores[str(C)] = acc
        if acc > best_acc:  # ties keep the smaller (stronger-regularised) C
            best = Pipeline([("scale", scaler), ("logreg", copy.deepcopy(lr))])
            best_acc, best_C = acc, C
    return best, {"C": float(best_C), "selection_accuracy": scores}


# ----------------------------------------------------------------------------- encoding
def encode_pairs(
    model,
    pairs: NLIPairs,
    *,
    kind: str | None,
    cache,
    show_progress: bool,
    batch_size: int = ENCODE_BATCH_SIZE,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of premises and hypotheses; each distinct sentence is encoded once.

    XNLI and SNLI repeat every premise three times, so de-duplicating saves a third of the work.
    With a cache, texts go to the encoder in chunks of `chunk`, so an interrupted run keeps what
    it has encoded (each chunk is stored on completion) and a re-run resumes from there.
    """
    texts = list(dict.fromkeys(pairs.premises + pairs.hypotheses))
    index = {t: i for i, t in enumerate(texts)}
    step = chunk if cache else max(1, len(texts))
    parts = []
    for start in range(0, len(texts), step):
        parts.append(
            encode_texts(
                model, texts[start : start + step], kind=kind, batch_size=batch_size,
                show_progress=show_progress, cache=cache,
            )
        )
    emb = np.concatenate(parts) if len(parts) > 1 else parts[0]
    u = emb[[index[t] for t in pairs.premises]]
    v = emb[[index[t] for t in pairs.hypotheses]]
    return u, v


def _model_name(model) -> str:
    try:
        return model_id(model)
    except Exception:  # an identity string is informative only; never fail a run on it
        return type(model).__name__


# ----------------------------------------------------------------------------- the evaluation
def _fine_tune_settings(fine_tune: bool | FineTuneSettings, **options: Any) -> FineTuneSettings | None:
    """The fine-tuned mode's settings, or None for the frozen probe. A positive steps/epochs turns
    fine-tuning on by itself (the older `fine_tune_steps=N` spelling); other options without it are
    a mistake, reported rather than silently ignored. train_layers: a number, or 'all'."""
    given = {k: v for k, v in options.items() if v is not None}
    on = bool(fine_tune) or (given.get("steps") or 0) > 0 or (given.get("epochs") or 0) > 0
    if not on:
        if any(v for v in given.values()):
            names = ", ".join(f"fine_tune_{k}" for k, v in given.items() if v)
            raise PolyretError(f"{names} given, but fine-tuning is off (add fine_tune=True / --fine-tune)")
        return None
    settings = fine_tune if isinstance(fine_tune, FineTuneSettings) else FineTuneSettings()
    layers = given.pop("train_layers", None)
    if layers is not None:
        if str(layers).strip().lower() == "all":
            settings = dataclasses.replace(settings, train_layers=None)
        else:
            try:
                given["train_layers"] = int(layers)
            except (TypeError, ValueError):
                raise PolyretError(f"fine-tune train layers must be a number or 'all', not {layers!r}") from None
    return settings.with_options(**given)


def evaluate_xnli(
    model,
    xnli_dir: str | Path,
    *,
    split: str = "dev",
    english_train: str | Sequence[str] | NLIPairs | None = None,
    langs: Sequence[str] | None = None,
    low_resource: Sequence[str] = ("sw", "ur"),
    out_dir: str | Path | OutputDir | None = None,
    seed: int = 0,
    show_progress: bool = True,
    kind: str | None = "query",
    Cs: Sequence[float] = DEFAULT_CS,
    n_bootstrap: int = 1000,
    max_rows: int | None = None,
    max_train: int | None = None,
    fine_tune: bool | FineTuneSettings = False,
    fine_tune_steps: int | None = None,
    fine_tune_epochs: float | None = None,
    fine_tune_batch_size: int | None = None,
    fine_tune_lr: float | None = None,
    fine_tune_head: str | None = None,
    fine_tune_max_length: int | None = None,
    fine_tune_layers: int | str | None = None,
    cache: bool | str | Path = True,
    overwrite: bool = False,
    rows: str = "auto",
) -> EvalResult:
    """Zero-shot XNLI: train on English NLI, score every `<split>-<lang>.tsv` in `xnli_dir`.

    `rows`: "all", or "eval-side" -- only the rows of XNLI dev's evaluation side
    (`polyret.data.parallel`), for a model whose alignment or training used the other side; "auto"
    (the default) = "eval-side" when the English training data reads XNLI dev's alignment side
    (`xnli:align`), else "all". Training on one side and scoring it is refused.

    `model`: a SentenceTransformer or a name for `polyret.model.load_model`. `english_train`: specs
    for `polyret.data.xnli.load_english_train` or `NLIPairs`; None = SNLI dev + SICK TRAIN for the
    probe, all offline English NLI (`FINE_TUNE_ENGLISH_TRAIN`) for the fine-tuned mode.

    `fine_tune`: True (or a `FineTuneSettings`) for the fine-tuned protocol; the `fine_tune_*`
    options override single settings (steps, epochs, batch size, encoder lr, head 'linear'/'mlp',
    training max length, trained top layers -- an int, or 'all'); a positive `fine_tune_steps` or
    `fine_tune_epochs` alone also turns it on. The tuned copy never reads or writes the embedding
    cache (it is keyed by the model's identity, which a one-off copy shares with its base).
    `langs`: None = every language file of the split; listed languages whose file is missing are
    reported under "missing" and the others are still evaluated. `max_rows` / `max_train` truncate
    each evaluation file / the training data (quick runs and tests). Writes results.json, report.md
    and xnli_bars.png to `out_dir` when given (refusing to replace an existing results.json unless
    `overwrite`). Per-row correctness is the per-query value of `accuracy`.
    """
    t_start = time.perf_counter()
    xnli_dir = Path(xnli_dir)
    out = output_dir(out_dir, "eval-xnli", overwrite=overwrite)  # the output-folder policy, checked before any work
    log = _logger(show_progress)

    # Which languages: requested ones (missing files listed) or every file of the split.
    if langs is None:
        langs = find_xnli_languages(xnli_dir, split)
    langs = list(dict.fromkeys(langs))
    present = [l for l in langs if xnli_file(xnli_dir, split, l).is_file()]
    missing = [l for l in langs if l not in present]
    if missing:
        log(f"[yellow]XNLI {split}: no file for {', '.join(missing)} in {xnli_dir}; evaluating the others[/]")
    if not present:
        raise PolyretError(f"none of the requested XNLI {split} files exist in {xnli_dir} ({', '.join(missing)})")
    # Read everything first, so a malformed file fails before any encoding time is spent.
    settings = _fine_tune_settings(fine_tune, steps=fine_tune_steps, epochs=fine_tune_epochs,
                                   batch_size=fine_tune_batch_size, lr=fine_tune_lr, head=fine_tune_head,
                                   max_length=fine_tune_max_length, train_layers=fine_tune_layers)
    if settings is not None and english_train is None:
        english_train = list(FINE_TUNE_ENGLISH_TRAIN)
    rows = rows_to_score(rows, english_train, split)
    keep = None
    if rows == "eval-side":
        keep = xnli_side_rows(xnli_dir, "eval", split)
    eval_sets = {l: read_xnli_tsv(xnli_file(xnli_dir, split, l)).take(keep).head(max_rows) for l in present}
    # Original file rows of what is scored (row ids of the per-row results: an eval-side run and a
    # full run pair up on the rows they share), and each row's premise (the unit of paired tests).
    row_index = {l: keep[: len(p)].tolist() if keep is not None else list(range(len(p))) for l, p in eval_sets.items()}
    en_path = xnli_file(xnli_dir, split, "en")
    premise_of_row = xnli_premise_index(xnli_dir, split).tolist() if en_path.is_file() else None
    select_path = xnli_file(xnli_dir, "dev", "en")
    if not select_path.is_file():
        raise PolyretError(f"model selection needs XNLI English dev ({select_path}), which is missing")
    select_set = read_xnli_tsv(select_path).take(keep if split == "dev" else None).head(max_rows)
    train = english_train if isinstance(english_train, NLIPairs) else load_english_train(english_train)
    train = train.head(max_train)
    log(f"English training pairs: {len(train)} ({', '.join(train.parts)})")
    if isinstance(model, (str, Path)):  # loaded only once every input file has been read and checked

        model = load_model(str(model))

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    if settings is not None:
        log(f"fine-tuning the encoder with a {settings.head} head for {settings.total_steps(len(train))} steps "
            f"(batch {settings.batch_size}, lr {settings.lr}, top {settings.train_layers or 'all'} layers, "
            f"max length {settings.max_length})")
        enc_model, head = fine_tune_nli(model, train, settings, kind=kind, seed=seed, show_progress=show_progress)
        timing["fine_tune_s"] = time.perf_counter() - t0
        enc_cache = False  # the cache is keyed by model identity; a tuned copy must neither read nor write it
        predict = lambda X: head_predict(head, X)  # noqa: E731
        selection = {"method": "none at run time (fixed hyperparameters chosen once on XNLI English dev; "
                               "head trained jointly with the encoder)"}
        tuned_id = _model_name(enc_model)
    else:
        tuned_id = None
        enc_model, enc_cache = model, cache
        u, v = encode_pairs(enc_model, train, kind=kind, cache=enc_cache, show_progress=show_progress)
        su, sv = encode_pairs(enc_model, select_set, kind=kind, cache=enc_cache, show_progress=show_progress)
        timing["encode_train_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        clf, sel = train_classifier(pair_features(u, v), train.labels, pair_features(su, sv), select_set.labels, Cs=Cs, seed=seed)
        timing["classifier_s"] = time.perf_counter() - t1
        log(f"selected C={sel['C']} on XNLI English dev (accuracy by C: {sel['selection_accuracy']})")
        predict = clf.predict
        selection = {"method": "logistic-regression C by accuracy on XNLI English dev"} | sel

    per_language: dict[str, dict[str, Any]] = {}
    t2 = time.perf_counter()
    for i, lang in enumerate(present):
        pairs = eval_sets[lang]
        pu, pv = encode_pairs(enc_model, pairs, kind=kind, cache=enc_cache, show_progress=show_progress)
        y_pred = predict(pair_features(pu, pv))
        scores = classification_scores(pairs.labels, y_pred)
        ci = bootstrap_ci(pairs.labels, y_pred, n_boot=n_bootstrap, seed=seed + i)
        scores["accuracy_ci95"], scores["macro_f1_ci95"] = ci["accuracy"], ci["macro_f1"]
        # Row-level correctness (file order) for paired significance tests between models.
        scores["correct"] = (y_pred == pairs.labels).astype(int).tolist()
        scores["rows"] = row_index[lang]
        scores["predicted"] = y_pred.astype(int).tolist()  # for paired macro-F1 comparisons (`compare_xnli`)
        per_language[lang] = scores
        log(f"{split}-{lang}: accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  (n={scores['n']})")
    timing["evaluate_s"] = time.perf_counter() - t2
    timing["total_s"] = time.perf_counter() - t_start

    results: dict[str, Any] = {
        "task": "xnli",
        "model": _model_name(model),
        "split": split,
        "xnli_dir": str(xnli_dir),
        "protocol": {
            "mode": (f"fine-tuned encoder + {settings.head} head" if settings is not None
                     else "frozen encoder + logistic regression"),
            "features": "[u, v, |u-v|, u*v]",
            "prompt": kind,
            "english_train": {"sources": train.parts, "n": len(train), "label_counts": train.label_counts()},
            "selection": selection | {"data": str(select_path), "n": len(select_set)},
            "selection_on_evaluated_split": split == "dev" and "en" in per_language and settings is None,
            "fine_tune": settings.describe(len(train)) if settings is not None else None,
            "fine_tuned_model": tuned_id,
            "n_bootstrap": n_bootstrap,
            "max_rows": max_rows,
            "rows": rows,
            "seed": seed,
        },
        "languages": per_language,
        "premise_of_row": premise_of_row,
        "missing": missing,
        **summarise_languages(per_language, low_resource=low_resource),
        "timing": timing,
        "runtime": describe_model(model),
    }
    if out is not None:
        with out:
            write_xnli_outputs(results, out.path)
    return xnli_result(results)


def xnli_result(results: dict[str, Any]) -> EvalResult:
    """Flat metrics (accuracy / macro-F1 per language and their means) and per-row correctness.

    Per-row values (for paired tests between models) are given for the mean accuracy over languages,
    each language's accuracy (`accuracy[sw]`), the non-English mean and the low-resource block
    (`low_resource.accuracy`). A row's id is its language and its row in the XNLI file (so a run on
    the evaluation side pairs with a full run on the rows they share); rows are clustered by premise:
    a premise's three hypotheses and their translations into every language are one unit of the
    paired tests (they are not independent)."""
    langs = results["languages"]
    flat = {f"{m}[{l}]": float(s[m]) for l, s in langs.items() for m in ("accuracy", "macro_f1")}
    headline = []
    for prefix, block, keys in (("", results["mean"], ("accuracy", "macro_f1")),
                                ("non_english.", results.get("mean_non_english"), ("accuracy",)),
                                ("low_resource.", results.get("low_resource"), ("accuracy", "macro_f1"))):
        for k in keys:
            if isinstance((block or {}).get(k), (int, float)):
                flat[prefix + k] = float(block[k])
                headline.append(prefix + k)
    premise = results.get("premise_of_row")
    rows = {l: s.get("rows") or list(range(len(s["correct"]))) for l, s in langs.items()}

    def per_row(selected: list[str]) -> PerQuery:
        ids, values, groups, clusters = [], [], [], []
        for l in selected:
            for r, c in zip(rows[l], langs[l]["correct"]):
                ids.append(f"{l}|{r}")
                values.append(c)
                groups.append(l)
                clusters.append(f"p{premise[r]}" if premise is not None and r < len(premise) else str(r))
        return PerQuery.build(ids, values, groups, clusters)

    per_query = {"accuracy": per_row(list(langs))}
    per_query |= {f"accuracy[{l}]": per_row([l]) for l in langs}
    if "non_english.accuracy" in flat:
        per_query["non_english.accuracy"] = per_row([l for l in langs if l != "en"])
    low = [l for l in (results.get("low_resource") or {}).get("per_language", {}) if l in langs]
    if low and "low_resource.accuracy" in flat:
        per_query["low_resource.accuracy"] = per_row(low)
    return EvalResult("xnli", flat, headline, {"XNLI accuracy": ["accuracy"], "XNLI macro-F1": ["macro_f1"]},
                      per_query, results)


def _logger(show: bool):
    if not show:
        return lambda msg: None

    return lambda msg: console.print(msg)


# ----------------------------------------------------------------------------- outputs
def _fmt_ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def xnli_markdown(results: dict[str, Any]) -> str:
    """The human report: protocol, per-language table, means, low-resource block, transfer gap."""
    p = results["protocol"]
    langs = results["languages"]
    gap = (results.get("transfer_gap") or {}).get("per_language", {})
    lines = [
        f"# XNLI zero-shot ({results['split']}) — {results['model']}",
        "",
        f"- Mode: {p['mode']}; features {p['features']}; prompt: {p['prompt'] or 'none'}.",
        f"- English training data: {', '.join(p['english_train']['sources'])} "
        f"({p['english_train']['n']} pairs).",
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
            lines.append(f"- {label} ({m['n_languages']}): accuracy {100 * m['accuracy']:.1f}, macro-F1 {100 * m['macro_f1']:.1f}")
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
    lines += ["", "Timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()), "", "![XNLI bars](xnli_bars.png)", ""]
    return "\n".join(lines)


def plot_xnli_bars(results: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars of accuracy and macro-F1 per language with 95% CI whiskers."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    langs = list(results["languages"])
    x = np.arange(len(langs))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(langs) + 2), 4))
    width = 0.4
    for k, (metric, colour) in enumerate((("accuracy", "tab:blue"), ("macro_f1", "tab:orange"))):
        vals = np.array([results["languages"][l][metric] for l in langs]) * 100
        cis = np.array([results["languages"][l][f"{metric}_ci95"] for l in langs]) * 100
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_xnli_outputs(results: dict[str, Any], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / RESULTS_FILE, results)
    plot_xnli_bars(results, out_dir / "xnli_bars.png")
    (out_dir / "report.md").write_text(xnli_markdown(results), encoding="utf-8")
