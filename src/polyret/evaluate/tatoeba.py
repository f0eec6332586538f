"""Tatoeba bitext retrieval: a cheap measure of cross-lingual alignment.

For each language XXX paired with English, every sentence retrieves its nearest neighbour (cosine)
among all sentences on the other side; accuracy@1 is the share whose neighbour is its own
translation (same line). Reported in both directions (XXX→en, en→XXX) and their mean, as in
LASER / XTREME. Duplicate sentences count by line, as in LASER's scorer: retrieving an identical
copy on another line counts as a miss.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyret.correction import AUTO, resolve_correction
from polyret.data.tatoeba import (
    ISO1_TO_TATOEBA,
    Bitext,
    read_tatoeba,
    tatoeba_code,
    tatoeba_eval_texts,
    tatoeba_files,
    tatoeba_side,
)
from polyret.encode import ENCODE_BATCH_SIZE, encode_texts, model_id
from polyret.errors import PolyretError
from polyret.evaluate.result import RESULTS_FILE, EvalResult, PerQuery  # noqa: F401  (RESULTS_FILE: re-exported)
from polyret.io import OutputDir, output_dir
from polyret.model import load_model
from polyret.report import save_grouped_bars
from polyret.runtime import describe_model

TATOEBA_TO_ISO1 = {code: iso1 for iso1, code in ISO1_TO_TATOEBA.items()}


def nearest_is_aligned(queries: np.ndarray, targets: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Per row i: is its highest-dot-product target row i (embeddings L2-normalised => cosine)?

    Ties go to the lowest index (numpy argmax), so a tie with an earlier row counts as a miss.
    Scores are computed `chunk` rows at a time (never the whole query x target matrix).
    """
    queries = np.asarray(queries, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    if queries.shape != targets.shape or queries.ndim != 2:
        raise ValueError(f"aligned 2-D embeddings expected, got {queries.shape} and {targets.shape}")
    hits = np.zeros(len(queries), dtype=bool)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ targets.T
        hits[start : start + len(sims)] = sims.argmax(axis=1) == np.arange(start, start + len(sims))
    return hits


def retrieval_accuracy_at_1(queries: np.ndarray, targets: np.ndarray, *, chunk: int = 4096) -> float:
    """Share of rows whose nearest target is their own (see `nearest_is_aligned`)."""
    return int(nearest_is_aligned(queries, targets, chunk=chunk).sum()) / len(queries)


def evaluate_tatoeba(
    model,
    tatoeba_dir: str | Path,
    langs: Sequence[str],
    *,
    out_dir: str | Path | OutputDir | None = None,
    kind: str | None = "query",
    batch_size: int = ENCODE_BATCH_SIZE,
    cache: bool | str | Path = True,
    show_progress: bool = True,
    overwrite: bool = False,
    language_correction=AUTO,
    side: str = "all",
) -> EvalResult:
    """Accuracy@1 in both directions for each language in `langs` (ISO 639-3 or two-letter codes).

    side: 'all' lines, or one side of the split (`polyret.data.tatoeba`): 'eval' for a model trained
    on the alignment side (`tatoeba-align`); each side is searched among its own lines only.

    Languages without files are listed under "missing" and the others still evaluated.
    `language_correction` (`polyret.correction.resolve_correction`; default: the model's stored
    correction when it has one) is applied to every sentence's embedding in its language (the
    correction's two-letter code of the Tatoeba language, `en` for the English side) before the
    search; what was applied is recorded in `results["language_correction"]`. Writes results.json,
    report.md, per_query.npz and tatoeba_bars.png to `out_dir` when given.
    """
    t_start = time.perf_counter()
    tatoeba_dir = Path(tatoeba_dir)
    if not tatoeba_dir.is_dir():
        raise PolyretError(f"Tatoeba directory {tatoeba_dir} does not exist")
    if not langs:
        raise PolyretError("no Tatoeba languages given (e.g. --langs deu,swh,urd)")
    out = output_dir(out_dir, "eval-tatoeba", overwrite=overwrite)  # the output-folder policy, checked before any work
    langs = list(dict.fromkeys(langs))
    present = [l for l in langs if all(p.is_file() for p in tatoeba_files(tatoeba_dir, l))]
    missing = [l for l in langs if l not in present]
    if not present:
        raise PolyretError(f"no Tatoeba files in {tatoeba_dir} for {', '.join(langs)}")
    eval_texts = tatoeba_eval_texts(tatoeba_dir) if side == "align" else None
    # fail on bad files (or a bad side) before any model work
    bitexts = {l: tatoeba_side(read_tatoeba(tatoeba_dir, l), side, eval_texts) for l in present}
    if isinstance(model, (str, Path)):
        model = load_model(str(model))

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(model, texts, kind=kind, batch_size=batch_size, show_progress=show_progress, cache=cache)

    emb = {lang: (encode(bt.other), encode(bt.english)) for lang, bt in bitexts.items()}
    emb, correction_info = _corrected(emb, bitexts, language_correction, model, kind)
    per_language: dict[str, dict[str, Any]] = {}
    hits: dict[tuple[str, str], np.ndarray] = {}  # (lang, direction) -> per-sentence hit@1
    for lang, bt in bitexts.items():
        other, eng = emb[lang]
        hits[lang, "xx_to_en"] = nearest_is_aligned(other, eng)
        hits[lang, "en_to_xx"] = nearest_is_aligned(eng, other)
        x2e = int(hits[lang, "xx_to_en"].sum()) / len(other)
        e2x = int(hits[lang, "en_to_xx"].sum()) / len(eng)
        per_language[lang] = {
            "tatoeba_code": bt.lang,
            "n": len(bt),
            "xx_to_en": x2e,
            "en_to_xx": e2x,
            "mean": (x2e + e2x) / 2,
        }
    metrics = ("xx_to_en", "en_to_xx", "mean")
    results: dict[str, Any] = {
        "task": "tatoeba",
        "model": _model_name(model),
        "tatoeba_dir": str(tatoeba_dir),
        "prompt": kind,
        "side": side,
        "language_correction": correction_info,
        "languages": list(per_language),
        "per_language": per_language,
        "mean": {m: float(np.mean([s[m] for s in per_language.values()])) for m in metrics}
        | {"n_languages": len(per_language)},
        "missing": missing,
        "timing": {"total_s": time.perf_counter() - t_start},
        "runtime": describe_model(model),
    }
    result = tatoeba_result(results, hits)
    if out is not None:
        with out:
            plot_tatoeba_bars(results, out.path / "tatoeba_bars.png")
            result.save(out.path)
    return result


def correction_language(lang: str) -> str:
    """The code a language correction knows a Tatoeba language by: `deu` -> `de`, `de` -> `de`;
    a code without a two-letter form is kept."""
    code = tatoeba_code(lang)
    return TATOEBA_TO_ISO1.get(code, lang)


def _corrected(
    emb: dict[str, tuple[np.ndarray, np.ndarray]], bitexts: dict[str, Bitext], spec, model, kind: str | None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Both sides of every bitext with the language correction `spec` applied, and its record.
    Statistics fitted on the evaluated texts (a method name without stored statistics) use every
    sentence of a language once (English: all English sides)."""
    by_lang: dict[str, list[np.ndarray]] = {"en": []}
    for lang, (other, eng) in emb.items():
        by_lang.setdefault(correction_language(lang), []).append(other)
        by_lang["en"].append(eng)
    pool = {l: np.concatenate(parts) for l, parts in by_lang.items()}
    correction, info = resolve_correction(spec, model, queries=pool, passages=pool, model_name=_model_name(model))
    if correction is None:
        return emb, info
    side = "passage" if kind == "passage" else "query"
    fixed = {
        lang: (correction.apply(other, correction_language(lang), side), correction.apply(eng, "en", side))
        for lang, (other, eng) in emb.items()
    }
    return fixed, info | {
        "languages_applied": {lang: correction_language(lang) for lang in bitexts} | {"English": "en"}
    }


def tatoeba_result(
    results: dict[str, Any], hits: dict[tuple[str, str], np.ndarray] | None, *, report: bool = True
) -> EvalResult:
    """Flat accuracies and, per sentence and direction, hit@1 as the per-query values of
    `accuracy.mean` (groups: language, direction; a sentence's two directions form one cluster)."""
    flat = {
        f"accuracy.{k}[{l}]": float(s[k])
        for l, s in results["per_language"].items()
        for k in ("xx_to_en", "en_to_xx", "mean")
    }
    headline = [f"accuracy.{k}" for k in ("xx_to_en", "en_to_xx", "mean")]
    flat |= {f"accuracy.{k}": float(results["mean"][k]) for k in ("xx_to_en", "en_to_xx", "mean")}
    per_query = {}
    if hits:  # None: a results.json read back without its per-query file
        keys = [(l, d, i) for (l, d), h in hits.items() for i in range(len(h))]
        per_query["accuracy.mean"] = PerQuery.build(
            [f"{l}|{d}|{i}" for l, d, i in keys],
            np.concatenate(list(hits.values())).astype(float),
            [[l, d] for l, d, _ in keys],
            [f"{l}|{i}" for l, _, i in keys],
        )
    return EvalResult(
        "tatoeba",
        flat,
        headline,
        {"Tatoeba accuracy@1 (mean of directions)": ["accuracy.mean"]},
        per_query,
        results,
        tatoeba_markdown(results) if report else "",
    )


def _model_name(model) -> str:
    try:
        return model_id(model)
    except Exception:  # an identity string is informative only; never fail a run on it
        return type(model).__name__


def tatoeba_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Tatoeba bitext retrieval — {results['model']}",
        "",
        f"Accuracy@1 (%) of nearest-neighbour search by cosine, prompt: {results['prompt'] or 'none'}.",
        "",
        "| lang | file code | n | xx→en | en→xx | mean |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines.insert(3, f"Language correction: {_correction_note(results)}.")
    for lang, s in results["per_language"].items():
        lines.append(
            f"| {lang} | {s['tatoeba_code']} | {s['n']} | {100 * s['xx_to_en']:.1f} | "
            f"{100 * s['en_to_xx']:.1f} | {100 * s['mean']:.1f} |"
        )
    m = results["mean"]
    lines.append(f"| **mean** | | | {100 * m['xx_to_en']:.1f} | {100 * m['en_to_xx']:.1f} | {100 * m['mean']:.1f} |")
    if results["missing"]:
        lines += ["", f"Missing (no files): {', '.join(results['missing'])}."]
    lines += ["", "![Tatoeba bars](tatoeba_bars.png)", ""]
    return "\n".join(lines)


def plot_tatoeba_bars(results: dict[str, Any], path: str | Path) -> Path:
    langs = results["per_language"]
    series = {
        "xx→en": {l: 100 * s["xx_to_en"] for l, s in langs.items()},
        "en→xx": {l: 100 * s["en_to_xx"] for l, s in langs.items()},
    }
    return save_grouped_bars(series, path, title="Tatoeba bitext retrieval", ylabel="accuracy@1 (%)")


def _correction_note(results: dict[str, Any]) -> str:
    info = results.get("language_correction") or {"method": "none"}
    return info["method"] + (f" ({info['statistics']})" if info.get("statistics") else "")
