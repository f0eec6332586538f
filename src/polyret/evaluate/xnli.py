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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyret.correction import AUTO, LanguageCorrection, resolve_correction
from polyret.data.xnli import (
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
from polyret.evaluate.result import RESULTS_FILE, EvalResult, PerQuery  # noqa: F401  (RESULTS_FILE: re-exported)
from polyret.evaluate.xnli_metrics import (  # noqa: F401  (re-exported: tests and older code import them from here)
    _macro_f1_rows,
    bootstrap_ci,
    classification_scores,
    summarise_languages,
)
from polyret.evaluate.xnli_report import plot_xnli_bars, xnli_markdown
from polyret.io import OutputDir, output_dir
from polyret.model import load_model
from polyret.runtime import console, describe_model

# Around the optimum for multilingual-e5-small on SNLI dev + SICK TRAIN (C = 0.001 on XNLI en dev;
# 0.1 and 1.0 were 2.7 and 3.4 points worse and the slowest to fit).
DEFAULT_CS: tuple[float, ...] = (0.0001, 0.0003, 0.001, 0.003, 0.01)


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
                model,
                texts[start : start + step],
                kind=kind,
                batch_size=batch_size,
                show_progress=show_progress,
                cache=cache,
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


@dataclass
class XnliOptions:
    """What an XNLI evaluation does (see `evaluate_xnli`); every field is also a keyword of it.

    `rows`: "all", or "eval-side" -- only the rows of XNLI dev's evaluation side
    (`polyret.data.parallel`), for a model whose alignment or training used the other side; "auto"
    = "eval-side" when the English training data reads XNLI dev's alignment side (`xnli:align`),
    else "all". `english_train`: specs for `polyret.data.xnli.load_english_train` or `NLIPairs`;
    None = SNLI dev + SICK TRAIN for the probe, all offline English NLI (`FINE_TUNE_ENGLISH_TRAIN`)
    for the fine-tuned mode. `fine_tune`: True (or a `FineTuneSettings`) for the fine-tuned protocol;
    the `fine_tune_*` fields override single settings (a positive steps / epochs alone turns it on).
    `max_rows` / `max_train` truncate each evaluation file / the training data."""

    split: str = "dev"
    english_train: str | Sequence[str] | NLIPairs | None = None
    langs: Sequence[str] | None = None
    low_resource: Sequence[str] = ("sw", "ur")
    seed: int = 0
    kind: str | None = "query"
    Cs: Sequence[float] = DEFAULT_CS
    n_bootstrap: int = 1000
    max_rows: int | None = None
    max_train: int | None = None
    rows: str = "auto"
    batch_size: int = ENCODE_BATCH_SIZE
    fine_tune: bool | FineTuneSettings = False
    fine_tune_steps: int | None = None
    fine_tune_epochs: float | None = None
    fine_tune_batch_size: int | None = None
    fine_tune_lr: float | None = None
    fine_tune_head: str | None = None
    fine_tune_max_length: int | None = None
    fine_tune_layers: int | str | None = None

    def settings(self) -> FineTuneSettings | None:
        return _fine_tune_settings(
            self.fine_tune,
            steps=self.fine_tune_steps,
            epochs=self.fine_tune_epochs,
            batch_size=self.fine_tune_batch_size,
            lr=self.fine_tune_lr,
            head=self.fine_tune_head,
            max_length=self.fine_tune_max_length,
            train_layers=self.fine_tune_layers,
        )


@dataclass
class _XnliInputs:
    """Everything read from disk before any model work (a malformed file fails first)."""

    present: list[str]
    missing: list[str]
    settings: FineTuneSettings | None
    rows: str
    eval_sets: dict[str, NLIPairs]
    row_index: dict[str, list[int]]
    premise_of_row: list[int] | None
    select_path: Path
    select_set: NLIPairs
    train: NLIPairs


@dataclass
class _Classifier:
    """A trained NLI classifier: the encoder its features come from and how it predicts."""

    encoder: Any
    cache: Any
    predict: Callable[[np.ndarray], np.ndarray]
    selection: dict[str, Any]
    tuned_id: str | None
    correction: LanguageCorrection | None = None


def evaluate_xnli(
    model,
    xnli_dir: str | Path,
    *,
    options: XnliOptions | None = None,
    out_dir: str | Path | OutputDir | None = None,
    cache: bool | str | Path = True,
    overwrite: bool = False,
    show_progress: bool = True,
    language_correction=AUTO,
    **option_values: Any,
) -> EvalResult:
    """Zero-shot XNLI: train on English NLI, score every `<split>-<lang>.tsv` in `xnli_dir`.

    `options` (an `XnliOptions`); its fields may be given as keywords instead or on top
    (`split="test"`, `fine_tune=True`, ...). `model`: a SentenceTransformer or a name for
    `polyret.model.load_model`. The tuned copy of the fine-tuned mode never reads or writes the
    embedding cache (it is keyed by the model's identity, which a one-off copy shares with its base).
    `langs`: None = every language file of the split; listed languages whose file is missing are
    reported under "missing" and the others are still evaluated. Training on one side of XNLI dev
    and scoring it is refused.

    `language_correction` (`polyret.correction.resolve_correction`; default: the model's stored
    correction when it has one) is applied to the frozen encoder's embeddings, each sentence in its
    file's language (English training data: `en`), before the pair features; what was applied is
    recorded in `results["language_correction"]`. The fine-tuned mode trains a new encoder, whose
    embeddings no stored correction describes: there it is never applied.

    Writes results.json, report.md, per_query.npz and xnli_bars.png to `out_dir` when given
    (refusing to replace an existing results.json unless `overwrite`). Per-row correctness is the
    per-query value of `accuracy`.
    """
    opts = _options(options, option_values)
    t_start = time.perf_counter()
    xnli_dir = Path(xnli_dir)
    out = output_dir(out_dir, "eval-xnli", overwrite=overwrite)  # the output-folder policy, checked before any work
    log = _logger(show_progress)
    inputs = _read_inputs(xnli_dir, opts, log)
    if isinstance(model, (str, Path)):  # loaded only once every input file has been read and checked
        model = load_model(str(model))

    timing: dict[str, float] = {}
    if inputs.settings is not None:
        clf, correction_info = _fine_tuned_classifier(
            model, inputs, opts, language_correction, show_progress, log, timing
        )
    else:
        clf, correction_info = _probe_classifier(
            model, inputs, opts, language_correction, cache, show_progress, log, timing
        )
    t2 = time.perf_counter()
    per_language = {
        lang: _score_language(clf, inputs, opts, i, lang, show_progress, log) for i, lang in enumerate(inputs.present)
    }
    timing["evaluate_s"] = time.perf_counter() - t2
    timing["total_s"] = time.perf_counter() - t_start
    results = _xnli_results(model, xnli_dir, inputs, opts, clf, per_language, correction_info, timing)
    result = xnli_result(results)
    if out is not None:
        with out:
            plot_xnli_bars(results, out.path / "xnli_bars.png")
            result.save(out.path)
    return result


def _options(options: XnliOptions | None, values: dict[str, Any]) -> XnliOptions:
    """`options` with the keyword values on top; an unknown keyword is a TypeError, as Python's own."""
    known = {f.name for f in dataclasses.fields(XnliOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"evaluate_xnli() got an unexpected keyword argument {unknown[0]!r}")
    return dataclasses.replace(options or XnliOptions(), **values)


def _read_inputs(xnli_dir: Path, opts: XnliOptions, log) -> _XnliInputs:
    """Languages (requested ones, missing files listed, or every file of the split), evaluation
    rows, model-selection and English training data, all read and checked."""
    split = opts.split
    langs = list(dict.fromkeys(find_xnli_languages(xnli_dir, split) if opts.langs is None else opts.langs))
    present = [l for l in langs if xnli_file(xnli_dir, split, l).is_file()]
    missing = [l for l in langs if l not in present]
    if missing:
        log(f"[yellow]XNLI {split}: no file for {', '.join(missing)} in {xnli_dir}; evaluating the others[/]")
    if not present:
        raise PolyretError(f"none of the requested XNLI {split} files exist in {xnli_dir} ({', '.join(missing)})")
    settings = opts.settings()
    english_train = opts.english_train
    if settings is not None and english_train is None:
        english_train = list(FINE_TUNE_ENGLISH_TRAIN)
    rows = rows_to_score(opts.rows, english_train, split)
    keep = xnli_side_rows(xnli_dir, "eval", split) if rows == "eval-side" else None
    eval_sets = {l: read_xnli_tsv(xnli_file(xnli_dir, split, l)).take(keep).head(opts.max_rows) for l in present}
    # Original file rows of what is scored (row ids of the per-row results: an eval-side run and a
    # full run pair up on the rows they share), and each row's premise (the unit of paired tests).
    row_index = {l: keep[: len(p)].tolist() if keep is not None else list(range(len(p))) for l, p in eval_sets.items()}
    en_path = xnli_file(xnli_dir, split, "en")
    premise_of_row = xnli_premise_index(xnli_dir, split).tolist() if en_path.is_file() else None
    select_path = xnli_file(xnli_dir, "dev", "en")
    if not select_path.is_file():
        raise PolyretError(f"model selection needs XNLI English dev ({select_path}), which is missing")
    select_set = read_xnli_tsv(select_path).take(keep if split == "dev" else None).head(opts.max_rows)
    train = english_train if isinstance(english_train, NLIPairs) else load_english_train(english_train)
    train = train.head(opts.max_train)
    log(f"English training pairs: {len(train)} ({', '.join(train.parts)})")
    return _XnliInputs(
        present, missing, settings, rows, eval_sets, row_index, premise_of_row, select_path, select_set, train
    )


def _fine_tuned_classifier(
    model,
    inputs: _XnliInputs,
    opts: XnliOptions,
    language_correction,
    show_progress: bool,
    log,
    timing: dict[str, float],
) -> tuple[_Classifier, dict]:
    """The fine-tuned protocol: a copy of the encoder trained with a head on English NLI."""
    settings = inputs.settings
    if language_correction not in (None, "none", AUTO):
        raise PolyretError(
            "a language correction describes the given encoder, not the copy --fine-tune trains; "
            "use --language-correction none or auto with --fine-tune"
        )
    log(
        f"fine-tuning the encoder with a {settings.head} head for {settings.total_steps(len(inputs.train))} steps "
        f"(batch {settings.batch_size}, lr {settings.lr}, top {settings.train_layers or 'all'} layers, "
        f"max length {settings.max_length})"
    )
    t0 = time.perf_counter()
    enc_model, head = fine_tune_nli(
        model, inputs.train, settings, kind=opts.kind, seed=opts.seed, show_progress=show_progress
    )
    timing["fine_tune_s"] = time.perf_counter() - t0
    selection = {
        "method": "none at run time (fixed hyperparameters chosen once on XNLI English dev; "
        "head trained jointly with the encoder)"
    }
    # The cache is keyed by model identity; a tuned copy must neither read nor write it.
    clf = _Classifier(enc_model, False, lambda X: head_predict(head, X), selection, _model_name(enc_model))
    return clf, {"method": "none", "statistics": "not applied: the fine-tuned encoder is a new model"}


def _probe_classifier(
    model,
    inputs: _XnliInputs,
    opts: XnliOptions,
    language_correction,
    cache,
    show_progress: bool,
    log,
    timing: dict[str, float],
) -> tuple[_Classifier, dict]:
    """The frozen-encoder probe: logistic regression on (corrected) pair features, C chosen on English dev."""
    t0 = time.perf_counter()
    correction, info = resolve_correction(language_correction, model, model_name=_model_name(model))
    clf = _Classifier(model, cache, lambda X: X, {}, None, correction)
    u, v = _pair_embeddings(clf, inputs.train, "en", opts, show_progress)
    su, sv = _pair_embeddings(clf, inputs.select_set, "en", opts, show_progress)
    timing["encode_train_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    fitted, sel = train_classifier(
        pair_features(u, v),
        inputs.train.labels,
        pair_features(su, sv),
        inputs.select_set.labels,
        Cs=opts.Cs,
        seed=opts.seed,
    )
    timing["classifier_s"] = time.perf_counter() - t1
    log(f"selected C={sel['C']} on XNLI English dev (accuracy by C: {sel['selection_accuracy']})")
    clf.predict = fitted.predict
    clf.selection = {"method": "logistic-regression C by accuracy on XNLI English dev"} | sel
    return clf, info


def _pair_embeddings(
    clf: _Classifier, pairs: NLIPairs, lang: str, opts: XnliOptions, show_progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Premise and hypothesis embeddings of `pairs` (all in `lang`), language-corrected when the
    classifier has a correction (the statistics of the prompt's kind; no prompt: query)."""
    u, v = encode_pairs(
        clf.encoder, pairs, kind=opts.kind, cache=clf.cache, show_progress=show_progress, batch_size=opts.batch_size
    )
    if clf.correction is None:
        return u, v
    kind = "passage" if opts.kind == "passage" else "query"
    return clf.correction.apply(u, lang, kind), clf.correction.apply(v, lang, kind)


def _score_language(
    clf: _Classifier, inputs: _XnliInputs, opts: XnliOptions, i: int, lang: str, show_progress: bool, log
) -> dict[str, Any]:
    """One language's scores, bootstrap CIs and per-row predictions."""
    pairs = inputs.eval_sets[lang]
    pu, pv = _pair_embeddings(clf, pairs, lang, opts, show_progress)
    y_pred = clf.predict(pair_features(pu, pv))
    scores = classification_scores(pairs.labels, y_pred)
    ci = bootstrap_ci(pairs.labels, y_pred, n_boot=opts.n_bootstrap, seed=opts.seed + i)
    scores["accuracy_ci95"], scores["macro_f1_ci95"] = ci["accuracy"], ci["macro_f1"]
    # Row-level correctness (file order) for paired significance tests between models.
    scores["correct"] = (y_pred == pairs.labels).astype(int).tolist()
    scores["rows"] = inputs.row_index[lang]
    scores["predicted"] = y_pred.astype(int).tolist()  # for paired macro-F1 comparisons (`compare_xnli`)
    log(f"{opts.split}-{lang}: accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  (n={scores['n']})")
    return scores


def _xnli_results(
    model,
    xnli_dir: Path,
    inputs: _XnliInputs,
    opts: XnliOptions,
    clf: _Classifier,
    per_language: dict[str, dict[str, Any]],
    correction_info: dict,
    timing: dict[str, float],
) -> dict[str, Any]:
    """The results dict (results.json)."""
    settings, train = inputs.settings, inputs.train
    return {
        "task": "xnli",
        "model": _model_name(model),
        "split": opts.split,
        "xnli_dir": str(xnli_dir),
        "protocol": {
            "mode": (
                f"fine-tuned encoder + {settings.head} head"
                if settings is not None
                else "frozen encoder + logistic regression"
            ),
            "features": "[u, v, |u-v|, u*v]",
            "prompt": opts.kind,
            "english_train": {"sources": train.parts, "n": len(train), "label_counts": train.label_counts()},
            "selection": clf.selection | {"data": str(inputs.select_path), "n": len(inputs.select_set)},
            "selection_on_evaluated_split": opts.split == "dev" and "en" in per_language and settings is None,
            "fine_tune": settings.describe(len(train)) if settings is not None else None,
            "fine_tuned_model": clf.tuned_id,
            "n_bootstrap": opts.n_bootstrap,
            "max_rows": opts.max_rows,
            "rows": inputs.rows,
            "seed": opts.seed,
        },
        "language_correction": correction_info,
        "languages": list(per_language),
        "per_language": per_language,
        "premise_of_row": inputs.premise_of_row,
        "missing": inputs.missing,
        **summarise_languages(per_language, low_resource=opts.low_resource),
        "timing": timing,
        "runtime": describe_model(model),
    }


def xnli_result(results: dict[str, Any], *, report: bool = True) -> EvalResult:
    """Flat metrics (accuracy / macro-F1 per language and their means) and per-row correctness.

    Per-row values (for paired tests between models) are given for the mean accuracy over languages,
    each language's accuracy (`accuracy[sw]`), the non-English mean and the low-resource block
    (`low_resource.accuracy`). A row's id is its language and its row in the XNLI file (so a run on
    the evaluation side pairs with a full run on the rows they share); rows are clustered by premise:
    a premise's three hypotheses and their translations into every language are one unit of the
    paired tests (they are not independent)."""
    langs = results["per_language"]
    flat = {f"{m}[{l}]": float(s[m]) for l, s in langs.items() for m in ("accuracy", "macro_f1")}
    headline = []
    for prefix, block, keys in (
        ("", results["mean"], ("accuracy", "macro_f1")),
        ("non_english.", results.get("mean_non_english"), ("accuracy",)),
        ("low_resource.", results.get("low_resource"), ("accuracy", "macro_f1")),
    ):
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
    return EvalResult(
        "xnli",
        flat,
        headline,
        {"XNLI accuracy": ["accuracy"], "XNLI macro-F1": ["macro_f1"]},
        per_query,
        results,
        xnli_markdown(results) if report else "",
    )


def _logger(show: bool):
    if not show:
        return lambda msg: None

    return lambda msg: console.print(msg)
