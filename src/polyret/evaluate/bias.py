"""Language bias of a retriever on the user's own corpus, with no relevance labels.

For every query, the top-k documents of the whole corpus are retrieved; what is measured is only
the *language* of what comes back:

- `distribution[X][Y]`: the share of the top-k results of language-X queries that are in language
  Y, beside `corpus_share[Y]`, Y's share of the corpus (what a language-blind retriever returns on
  average when relevance does not depend on language).
- own-language preference of X: `(distribution[X][X] - corpus_share[X]) / (1 - corpus_share[X])`;
  0 = its own language comes back as often as the corpus holds it, 1 = nothing else comes back.
  The headline `preference` is its mean over query languages.
- TLR@k (target-language retrieval rate), where a query names its intended language T
  (`target_lang`): the share of its top-k in T, averaged per query language, then over them.
  polyret's definition, stated here; published language-preference measures for multilingual
  retrieval include LPR in MLAIRE (Jang et al., arXiv 2605.07249) and MLRS in Park & Lee, ACL 2025
  (arXiv 2502.11175); polyret does not claim to reproduce their exact formulas.

Both are reported before and after the correction stored with the model (applied with the
records' languages), so a user sees on their own data what the correction changes.

Input (JSONL, one object per line): corpus records need `text` and `lang` (or `language`);
query records need `text` and `lang`, optionally `target_lang`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyret.correction import AUTO, resolve_correction
from polyret.data.beir import iter_json_lines
from polyret.encode import ENCODE_BATCH_SIZE, encode_texts, model_id
from polyret.errors import PolyretError
from polyret.io import output_dir, write_json
from polyret.report import markdown_table, save_heatmap
from polyret.search import exact_search

LANG_KEYS = ("lang", "language")


@dataclass
class Records:
    texts: list[str]
    langs: list[str]
    targets: list[str | None]
    path: str


def read_records(path: str | Path, what: str) -> Records:
    """Texts and languages of a corpus / queries JSONL; one clear error for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise PolyretError(f"--{what} {path}: no such file")
    texts, langs, targets = [], [], []
    for lineno, obj in iter_json_lines(path):
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PolyretError(f"--{what} {path} line {lineno}: no 'text' field (a non-empty string)")
        lang = next((obj[k] for k in LANG_KEYS if isinstance(obj.get(k), str) and obj[k]), None)
        if lang is None:
            raise PolyretError(f"--{what} {path} line {lineno}: no 'lang' field; every record needs its language")
        target = obj.get("target_lang")
        if target is not None and not isinstance(target, str):
            raise PolyretError(f"--{what} {path} line {lineno}: 'target_lang' must be a language code")
        texts.append(text)
        langs.append(lang)
        targets.append(target or None)
    if not texts:
        raise PolyretError(f"--{what} {path}: empty (no JSON records)")
    return Records(texts, langs, targets, str(path))


def check_corpus(corpus: Records) -> None:
    found = sorted(set(corpus.langs))
    if len(found) < 2:
        raise PolyretError(
            f"--corpus {corpus.path}: all {len(corpus.texts)} documents are in one language "
            f"({found[0]}); language bias needs a corpus in at least two languages"
        )


def language_metrics(
    top_idx: np.ndarray,
    doc_langs: Sequence[str],
    query_langs: Sequence[str],
    targets: Sequence[str | None],
    languages: Sequence[str],
) -> dict[str, Any]:
    """The distribution / preference / TLR numbers from each query's top-k document rows."""
    lang_id = {l: i for i, l in enumerate(languages)}
    d = np.array([lang_id[l] for l in doc_langs])
    n_lang = len(languages)
    top_langs = d[top_idx]  # (n_queries, k)
    corpus_share = np.bincount(d, minlength=n_lang) / len(d)
    per_query = np.stack([(top_langs == y).mean(1) for y in range(n_lang)], axis=1)  # (n_queries, L)
    q_languages = sorted(set(query_langs))
    distribution = {
        x: dict(zip(languages, per_query[np.asarray(query_langs) == x].mean(0).tolist())) for x in q_languages
    }
    own = {}
    for x in q_languages:
        share = corpus_share[lang_id[x]] if x in lang_id else 0.0
        own[x] = (distribution[x].get(x, 0.0) - share) / (1.0 - share) if share < 1 else float("nan")
    tlr = _tlr(top_langs, d, lang_id, query_langs, targets)
    out = {
        "languages": list(languages),
        "corpus_share": dict(zip(languages, corpus_share.tolist())),
        "distribution": distribution,
        "own_language_share": {x: distribution[x].get(x, 0.0) for x in q_languages},
        "own_language_preference": own,
        "preference": float(np.nanmean(list(own.values()))),
    }
    if tlr is not None:
        out["tlr"] = tlr
    return out


def _tlr(top_langs, d, lang_id, query_langs, targets) -> dict | None:
    rows = [i for i, t in enumerate(targets) if t is not None]
    if not rows:
        return None
    per_lang: dict[str, list[float]] = {}
    for i in rows:
        t = lang_id.get(targets[i], -1)  # a target absent from the corpus: nothing can come back in it
        per_lang.setdefault(query_langs[i], []).append(float((top_langs[i] == t).mean()))
    by_lang = {x: float(np.mean(v)) for x, v in sorted(per_lang.items())}
    return {"mean": float(np.mean(list(by_lang.values()))), "per_language": by_lang, "n_queries": len(rows)}


def top_k(q_emb: np.ndarray, d_emb: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k document rows per query by inner product (FAISS flat; ties: FAISS's order)."""
    _, rows = exact_search(q_emb, d_emb, min(k, len(d_emb)))
    return rows


def bias_report(
    model,
    corpus: Records,
    queries: Records,
    *,
    k: int = 10,
    language_correction=AUTO,
    model_name: str = "",
    cache: bool = True,
    show_progress: bool = True,
    batch_size: int = ENCODE_BATCH_SIZE,
) -> dict[str, Any]:
    """Before / after the correction: results dict (what results.json holds)."""
    check_corpus(corpus)
    if k < 1:
        raise PolyretError(f"--k {k}: must be at least 1")
    t0 = time.perf_counter()
    d_emb = encode_texts(
        model, corpus.texts, "passage", batch_size=batch_size, cache=cache, show_progress=show_progress
    )
    q_emb = encode_texts(model, queries.texts, "query", batch_size=batch_size, cache=cache, show_progress=show_progress)
    languages = sorted(set(corpus.langs))
    results: dict[str, Any] = {
        "model": model_id(model),
        "model_name": model_name,
        "k": k,
        "corpus": corpus.path,
        "queries": queries.path,
        "n_documents": len(corpus.texts),
        "n_queries": len(queries.texts),
        "before": language_metrics(top_k(q_emb, d_emb, k), corpus.langs, queries.langs, queries.targets, languages),
    }
    correction, info = resolve_correction(language_correction, model, model_name=model_name)
    results["language_correction"] = info
    if correction is not None:
        known = set(correction.languages)
        missing = sorted((set(corpus.langs) | set(queries.langs)) - known)
        if missing:
            raise PolyretError(
                f"the stored correction ({correction.source}) has no statistics for {', '.join(missing)}; "
                "refit it with text in those languages or pass --language-correction none"
            )
        qc = correction.apply(q_emb, queries.langs, "query", model_name=model_name)
        dc = correction.apply(d_emb, corpus.langs, "passage", model_name=model_name)
        results["after"] = language_metrics(top_k(qc, dc, k), corpus.langs, queries.langs, queries.targets, languages)
    results["seconds"] = round(time.perf_counter() - t0, 2)
    return results


def report_markdown(results: dict) -> str:
    """report.md: the headline numbers, then the top-k language distribution per query language."""
    stages = [s for s in ("before", "after") if s in results]
    lines = [
        f"# Language bias: top-{results['k']} results by language",
        "",
        f"Model `{results['model_name'] or results['model']}`; corpus {results['corpus']} "
        f"({results['n_documents']} documents); queries {results['queries']} ({results['n_queries']}).",
        f"Correction: {results['language_correction'].get('method')} "
        f"({results['language_correction'].get('statistics', '')}).",
        "",
    ]
    head = [[s, results[s]["preference"], results[s].get("tlr", {}).get("mean", float("nan"))] for s in stages]
    lines += [
        markdown_table(["", "own-language preference", f"TLR@{results['k']}"], head),
        "",
        "Own-language preference: (own-language share of the top-k - the language's corpus share) / "
        "(1 - corpus share), mean over query languages; 0 = no preference, 1 = only its own language.",
        "",
    ]
    for s in stages:
        m = results[s]
        langs = m["languages"]
        rows = [[x, *[m["distribution"][x].get(y, 0.0) for y in langs]] for x in m["distribution"]]
        rows.append(["corpus share", *[m["corpus_share"][y] for y in langs]])
        lines += [
            f"## {s}: share of the top-{results['k']} in each language (rows: query language)",
            "",
            markdown_table(["query \\ result", *langs], rows),
            "",
        ]
    return "\n".join(lines)


def write_bias_outputs(results: dict, out: Path) -> list[Path]:
    """results.json, report.md and one heatmap per stage (bias_heatmap_before/after.png)."""
    out = Path(out)
    write_json(out / "results.json", results)
    (out / "report.md").write_text(report_markdown(results), encoding="utf-8")
    written = []
    for stage in ("before", "after"):
        if stage not in results:
            continue
        m = results[stage]
        langs, rows = m["languages"], list(m["distribution"])
        matrix = np.array(
            [[m["distribution"][x].get(y, 0.0) for y in langs] for x in rows] + [[m["corpus_share"][y] for y in langs]]
        )
        written.append(
            save_heatmap(
                matrix,
                [*rows, "corpus"],
                langs,
                out / f"bias_heatmap_{stage}.png",
                title=f"top-{results['k']} language share, {stage} correction (preference {m['preference']:.2f})",
                xlabel="result language",
                ylabel="query language",
                cbar_label="share of top-k",
                vmin=0.0,
                vmax=1.0,
            )
        )
    return written


def run_bias(
    model,
    corpus_path,
    queries_path,
    out,
    *,
    k: int = 10,
    language_correction=AUTO,
    model_name: str = "",
    overwrite: bool = False,
    cache: bool = True,
    show_progress: bool = True,
    batch_size: int = ENCODE_BATCH_SIZE,
) -> dict:
    """Read, measure, write (with `out`); returns the results dict."""
    target = output_dir(out, "bias", overwrite=overwrite)
    corpus = read_records(corpus_path, "corpus")
    check_corpus(corpus)
    queries = read_records(queries_path, "queries")
    results = bias_report(
        model,
        corpus,
        queries,
        k=k,
        language_correction=language_correction,
        model_name=model_name,
        cache=cache,
        show_progress=show_progress,
        batch_size=batch_size,
    )
    if target is not None:
        with target:
            write_bias_outputs(results, target.path)
    return results
