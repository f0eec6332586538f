"""LAReQA evaluation (XQuAD-R, MLQA-R): Mono, Cross and Multi settings, rank distance, own-language share.

Every question and every candidate is encoded once; every setting is a slice of ONE score matrix
(questions x all candidates), computed in blocks of questions and never held whole:

- Mono  X:    questions in X against the candidates of X.
- Cross X->Y: questions in X against the candidates of Y != X; a question counts in a pair only
  if it has a relevant candidate in Y.
- Multi X:    questions in X against the pooled candidates of all languages.

Hence per (question, relevant candidate) pair only two ranks are needed: its rank among the
candidates of the candidate's own language (Mono/Cross) and its rank in the whole pool (Multi):
rank = 1 + #(candidates scoring higher) + #(equal-scoring candidates with a lower index), counted
per language segment of a block of scores (sorted segment + binary search) and summed.

Ties: scores are compared exactly (float32); among equal scores the candidate with the lower
index in `dataset.candidates` ranks higher (a stable sort by candidate index). The same rule
orders the top-k lists (TREC run, top-10 language share).

`polyret.evaluate.lareqa(...)` is `lareqa()` below (exported by `polyret.evaluate`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from polyret import metrics
from polyret.correction import AUTO, group_by_language, resolve_correction
from polyret.data.lareqa import LareqaDataset, load_lareqa
from polyret.encode import ENCODE_BATCH_SIZE, encode_texts, model_id
from polyret.errors import PolyretError
from polyret.evaluate.lareqa_rank import (
    CANDIDATE_MODES,
    MULTI_RECALL_K,
    OWN_LANGUAGE_TOP_K,
    TIE_BREAKING,
    LareqaRanks,
    rank_lareqa,
)
from polyret.evaluate.result import EvalResult, PerQuery
from polyret.io import output_dir
from polyret.trec import run_from_arrays, write_trec_qrels, write_trec_run
from polyret.model import load_model
from polyret.report import markdown_table, save_heatmap
from polyret.runtime import describe_model

# ---- metrics from ranks ---------------------------------------------------------------------


def _lang_dict(languages: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {l: float(v) for l, v in zip(languages, values)}


def _language_means(pq: PerQuery, lang_id: dict[str, int], n_lang: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and count of a per-query metric per source language (its first group level)."""
    g = np.asarray([lang_id[l] for l in pq.groups[:, 0].tolist()], dtype=np.int64)
    return metrics.group_mean(pq.values, g, n_lang)


def _pair_means(pq: PerQuery, lang_id: dict[str, int], n_lang: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_lang, n_lang) mean and count of a per-(question, target language) metric per language pair."""
    g = np.asarray([lang_id[s] * n_lang + lang_id[t] for s, t in pq.groups.tolist()], dtype=np.int64)
    means, counts = metrics.group_mean(pq.values, g, n_lang * n_lang)
    return means.reshape(n_lang, n_lang), counts.reshape(n_lang, n_lang)


def lareqa_metrics(
    ranks: LareqaRanks, dataset: LareqaDataset, per_query: dict[str, PerQuery] | None = None
) -> dict[str, Any]:
    """The Mono / Cross / Multi / bias numbers of the results dict: per-language means of the
    per-query values (`lareqa_per_query`, computed from the ranks unless given), then macro means."""
    pq = lareqa_per_query(ranks, dataset) if per_query is None else per_query
    langs = list(dataset.languages)
    n_lang = len(langs)
    lang_id = {l: x for x, l in enumerate(langs)}

    def by_lang(metric: str) -> tuple[np.ndarray, np.ndarray]:
        return _language_means(pq[metric], lang_id, n_lang)

    # Pair table X->Y (diagonal = Mono): mean over questions in X that have a relevant item in Y.
    pair_map, pair_n = _pair_means(pq["cross.map"], lang_id, n_lang)
    pair_r1, _ = _pair_means(pq["cross.recall@1"], lang_id, n_lang)
    mono_map, mono_n = by_lang("mono.map")
    np.fill_diagonal(pair_map, mono_map)
    np.fill_diagonal(pair_r1, by_lang("mono.recall@1")[0])
    np.fill_diagonal(pair_n, mono_n)
    mono_pl = {
        l: {"map": pair_map[x, x], "recall@1": pair_r1[x, x], "n_questions": int(pair_n[x, x])}
        for x, l in enumerate(langs)
    }
    off = ~np.eye(n_lang, dtype=bool) & (pair_n > 0)
    cross_pl = {}
    for x, l in enumerate(langs):
        ys = np.nonzero(off[x])[0]
        cross_pl[l] = {
            "map": float(pair_map[x, ys].mean()) if ys.size else np.nan,
            "recall@1": float(pair_r1[x, ys].mean()) if ys.size else np.nan,
            "n_targets": int(ys.size),
        }
    # Cross mAP *into* each language (its column: every other query language, first per pair): where a
    # weak target language shows, which the per-query-language mean above averages away.
    into = {l: float(pair_map[off[:, y], y].mean()) if off[:, y].any() else np.nan for y, l in enumerate(langs)}
    per_pair = {
        f"{langs[x]}->{langs[y]}": {"map": pair_map[x, y], "recall@1": pair_r1[x, y], "n_questions": int(pair_n[x, y])}
        for x in range(n_lang)
        for y in range(n_lang)
        if x != y and pair_n[x, y] > 0
    }
    k = f"recall@{MULTI_RECALL_K}"
    multi_map, multi_n = by_lang("multi.map")
    multi_rk, _ = by_lang(f"multi.{k}")
    multi_pl = {l: {"map": multi_map[x], k: multi_rk[x], "n_questions": int(multi_n[x])} for x, l in enumerate(langs)}

    def macro(pl: dict, key: str) -> float:
        return metrics.macro_mean([v[key] for v in pl.values()])

    return {
        "mono": {"map": macro(mono_pl, "map"), "recall@1": macro(mono_pl, "recall@1"), "per_language": mono_pl},
        "cross": {
            "map": macro(cross_pl, "map"),
            "recall@1": macro(cross_pl, "recall@1"),
            "per_language": cross_pl,
            "per_target_language": into,
            "per_pair": per_pair,
        },
        "multi": {"map": macro(multi_pl, "map"), k: macro(multi_pl, k), "per_language": multi_pl},
        **_bias_metrics(by_lang, langs, dataset.candidate_lang_ids()),
        "map_matrix": {"languages": langs, "rows_query_cols_candidate": pair_map},
    }


def _bias_metrics(by_lang, langs: list[str], c_lang: np.ndarray) -> dict[str, Any]:
    """Rank distance, the round-robin merge (see `metrics.round_robin_ranks`) and own-language share."""
    rd, rd_n = by_lang("rank_distance")
    rr_map, _ = by_lang("round_robin.map")
    rr_rd, _ = by_lang("round_robin.rank_distance")
    share, _ = by_lang(f"top{OWN_LANGUAGE_TOP_K}_own_language_share")
    pool_share = np.bincount(c_lang, minlength=len(langs)) / max(1, len(c_lang))
    return {
        "rank_distance": {
            "mean": metrics.macro_mean(rd),
            "per_language": _lang_dict(langs, rd),
            "n_questions": {l: int(n) for l, n in zip(langs, rd_n)},
        },
        "round_robin": {
            "map": metrics.macro_mean(rr_map),
            "rank_distance": metrics.macro_mean(rr_rd),
            "per_language": {l: {"map": rr_map[x], "rank_distance": rr_rd[x]} for x, l in enumerate(langs)},
        },
        f"top{OWN_LANGUAGE_TOP_K}_own_language_share": {
            "mean": metrics.macro_mean(share),
            "per_language": _lang_dict(langs, share),
            "pool_share": _lang_dict(langs, pool_share),  # what a language-blind ranking would give on average
        },
    }


def score_lareqa(
    question_emb,
    candidate_emb,
    dataset: LareqaDataset,
    *,
    top_k: int = 100,
    show_progress: bool = False,
    return_ranks: bool = False,
):
    """The results dict from embeddings alone (rows align with dataset.questions / .candidates).

    With `return_ranks`, returns `(results, LareqaRanks)` (the ranks feed the TREC run file).
    """
    t0 = time.perf_counter()
    ranks = rank_lareqa(question_emb, candidate_emb, dataset, top_k=top_k, show_progress=show_progress)
    ranks.per_query = lareqa_per_query(ranks, dataset)
    results = _results_header(dataset)
    results.update(lareqa_metrics(ranks, dataset, ranks.per_query))
    results["timing"] = {"score_s": time.perf_counter() - t0}
    return (results, ranks) if return_ranks else results


def _results_header(dataset: LareqaDataset) -> dict:
    return {
        "dataset": dataset.name,
        "languages": list(dataset.languages),
        "n_questions": dataset.n_questions,
        "n_candidates": dataset.n_candidates,
        "per_language_counts": dataset.stats(),
        "tie_breaking": TIE_BREAKING,
        "data_warnings": dict(dataset.load_warnings),
    }


# ---- encoding + evaluation ------------------------------------------------------------------


def _encode_unique(model, texts: list[str], kind: str, *, batch_size: int, cache, show_progress: bool) -> np.ndarray:
    """Encode each distinct text once and scatter the rows back to `texts` order."""
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    emb = encode_texts(model, list(uniq), kind=kind, batch_size=batch_size, show_progress=show_progress, cache=cache)
    return np.asarray(emb)[inverse.reshape(-1)]


def evaluate_lareqa(
    model,
    dataset: LareqaDataset,
    *,
    candidate: str = "sentence",
    batch_size: int = ENCODE_BATCH_SIZE,
    out_dir: str | Path | None = None,
    cache: bool | str | Path = True,
    show_progress: bool = True,
    overwrite: bool = False,
    top_k: int = 100,
    model_name: str | None = None,
    language_correction=AUTO,
) -> EvalResult:
    """Encode questions and candidates once, score every setting, and (with `out_dir`) write
    results.json, report.md, cross_map_heatmap.png, multi.trec and qrels.trec.

    `results["model"]` is the model's weight-hash identity; `model_name` (e.g. "default") is kept
    alongside it for people. `language_correction` (see `polyret.correction.resolve_correction`)
    is applied to the embeddings before scoring, using the dataset's language labels; what was
    applied is recorded in `results["language_correction"]`."""
    if candidate not in CANDIDATE_MODES:
        raise PolyretError(f"unknown --candidate {candidate!r}; use one of {', '.join(CANDIDATE_MODES)}")

    out = output_dir(out_dir, "eval-lareqa", overwrite=overwrite)  # the output-folder policy, checked before encoding
    t_start = time.perf_counter()
    q_emb = _encode_unique(
        model, dataset.question_texts(), "query", batch_size=batch_size, cache=cache, show_progress=show_progress
    )
    c_emb = _encode_unique(
        model,
        dataset.candidate_texts(candidate),
        "passage",
        batch_size=batch_size,
        cache=cache,
        show_progress=show_progress,
    )
    encode_s = time.perf_counter() - t_start
    q_emb, c_emb, correction_info = correct_lareqa_embeddings(
        q_emb, c_emb, dataset, language_correction, model=model, model_name=model_name or ""
    )
    scored, ranks = score_lareqa(q_emb, c_emb, dataset, top_k=top_k, show_progress=show_progress, return_ranks=True)

    results = {
        "task": "lareqa",
        "dataset": dataset.name,
        "model": model_id(model),
        "model_name": model_name,
        "candidate": candidate,
        "language_correction": correction_info,
        **scored,
    }
    results["timing"] = {"encode_s": encode_s, "score_s": scored["timing"]["score_s"]}
    results["runtime"] = describe_model(model)
    if out is None:
        results["timing"]["total_s"] = time.perf_counter() - t_start
        return lareqa_result(results, ranks, dataset)
    with out:
        t_write = time.perf_counter()
        write_lareqa_extras(results, ranks, dataset, out.path)
        results["timing"]["write_s"] = time.perf_counter() - t_write
        results["timing"]["total_s"] = time.perf_counter() - t_start
        result = lareqa_result(results, ranks, dataset)
        result.save(out.path)
    return result


def correct_lareqa_embeddings(q_emb, c_emb, dataset: LareqaDataset, spec, *, model=None, model_name: str = ""):
    """Apply the language correction `spec` to a pool's embeddings (languages from the dataset)."""
    q_langs = [q.lang for q in dataset.questions]
    c_langs = [c.lang for c in dataset.candidates]
    correction, info = resolve_correction(
        spec,
        model,
        queries=group_by_language(q_emb, q_langs),
        passages=group_by_language(c_emb, c_langs),
        model_name=model_name,
    )
    if correction is None:
        return q_emb, c_emb, info
    return (
        correction.apply(q_emb, q_langs, "query", model_name=model_name),
        correction.apply(c_emb, c_langs, "passage", model_name=model_name),
        info,
    )


def lareqa(
    model_name_or_model,
    data_dir: str | Path,
    out: str | Path | None = None,
    langs: Sequence[str] | None = None,
    *,
    candidate: str = "sentence",
    batch_size: int = ENCODE_BATCH_SIZE,
    cache: bool | str | Path = True,
    show_progress: bool = True,
    overwrite: bool = False,
    name: str | None = None,
    language_correction=AUTO,
) -> EvalResult:
    """`polyret.evaluate.lareqa(model, data_dir, out)`: load the model (name/dir) and data, evaluate."""
    dataset = load_lareqa(data_dir, langs=langs, name=name)
    model_name = None
    if isinstance(model_name_or_model, (str, Path)):
        model_name = str(model_name_or_model)
        model = load_model(model_name)
    else:
        model = model_name_or_model
    return evaluate_lareqa(
        model,
        dataset,
        candidate=candidate,
        batch_size=batch_size,
        out_dir=out,
        cache=cache,
        show_progress=show_progress,
        overwrite=overwrite,
        model_name=model_name,
        language_correction=language_correction,
    )


# ---- outputs --------------------------------------------------------------------------------


def qrels_of(dataset: LareqaDataset) -> dict[str, dict[str, int]]:
    """Multi-setting qrels: question key -> {candidate id: 1}."""
    cids = [c.cid for c in dataset.candidates]
    return {q.key: {cids[c]: 1 for c in rel.tolist()} for q, rel in zip(dataset.questions, dataset.relevant)}


def _language_table(results: dict) -> tuple[list[list], list[str]]:
    """report.md's per-query-language rows (plus the macro average) and their headers."""
    langs = results["languages"]
    k, own = f"recall@{MULTI_RECALL_K}", f"top{OWN_LANGUAGE_TOP_K}_own_language_share"
    mono, cross, multi = results["mono"], results["cross"], results["multi"]
    rd, share = results["rank_distance"], results[own]
    into = cross.get("per_target_language", {})
    rows = [
        [
            l,
            mono["per_language"][l]["map"],
            mono["per_language"][l]["recall@1"],
            cross["per_language"][l]["map"],
            cross["per_language"][l]["recall@1"],
            into.get(l, float("nan")),
            multi["per_language"][l]["map"],
            multi["per_language"][l][k],
            rd["per_language"][l],
            share["per_language"][l],
        ]
        for l in langs
    ]
    rows.append(
        [
            "**avg**",
            mono["map"],
            mono["recall@1"],
            cross["map"],
            cross["recall@1"],
            metrics.macro_mean(list(into.values())) if into else float("nan"),
            multi["map"],
            multi[k],
            rd["mean"],
            share["mean"],
        ]
    )
    headers = [
        "query lang",
        "Mono mAP",
        "Mono R@1",
        "Cross mAP",
        "Cross R@1",
        "Cross mAP into",
        "Multi mAP",
        f"Multi R@{MULTI_RECALL_K}",
        "rank dist.",
        f"top-{OWN_LANGUAGE_TOP_K} own-lang",
    ]
    return rows, headers


def report_markdown(results: dict) -> str:
    """Paper-style tables: one row per source language, plus the macro average."""
    langs = results["languages"]
    rows, headers = _language_table(results)
    matrix = results["map_matrix"]["rows_query_cols_candidate"]
    mat_rows = [[l, *[matrix[i][j] for j in range(len(langs))]] for i, l in enumerate(langs)]
    t = results.get("timing", {})
    lines = [
        f"# LAReQA: {results['dataset']}",
        "",
        f"- model: {results.get('model_name') or ''} `{results.get('model', '?')}`; "
        f"candidates: {results.get('candidate', 'sentence')}",
        f"- {results['n_questions']} questions, {results['n_candidates']} candidates, languages: {', '.join(langs)}",
        "- mAP: LAReQA average precision over the full ranking; averages are per query language, "
        "then the macro mean (Cross: per target language first). Rank distance: Multi pool, questions "
        "with >= 2 relevant items (lower = less language bias).",
        f"- ties: {results.get('tie_breaking', TIE_BREAKING)}",
    ]
    rr = results["round_robin"]
    lines.append(
        f"- the per-language rankings merged round-robin (no language preferred): Multi mAP {rr['map']:.4f}, "
        f"rank distance {rr['rank_distance']:.1f}; what is left of the Multi gap there is per-language "
        "ranking quality, the rest is language bias"
    )
    if results.get("data_warnings"):
        lines.append("- data warnings: " + "; ".join(f"{n} x {msg}" for msg, n in results["data_warnings"].items()))
    if t:
        lines.append("- timing (s): " + ", ".join(f"{key} {val:.1f}" for key, val in t.items()))
    lines += [
        "",
        "## Per query language",
        "",
        markdown_table(headers, rows),
        "",
        "## mAP by query language (rows) and candidate language (columns); diagonal = Mono",
        "",
        markdown_table(["query \\ cand.", *langs], mat_rows, floatfmt=".2f"),
        "",
    ]
    return "\n".join(lines)


def write_lareqa_extras(results: dict, ranks: LareqaRanks, dataset: LareqaDataset, out: Path) -> None:
    """What LAReQA writes beside the common layout: the mAP heatmap and the TREC run / qrels."""
    out = Path(out)
    langs = list(dataset.languages)
    save_heatmap(
        np.asarray(results["map_matrix"]["rows_query_cols_candidate"], dtype=float),
        langs,
        langs,
        out / "cross_map_heatmap.png",
        title=f"{dataset.name}: mAP (diagonal = Mono)",
        xlabel="candidate language",
        ylabel="query language",
        cbar_label="mAP",
        vmin=0.0,
        vmax=1.0,
    )
    write_trec_run(
        out / "multi.trec",
        run_from_arrays(
            [q.key for q in dataset.questions], [c.cid for c in dataset.candidates], ranks.top_idx, ranks.top_scores
        ),
        tag="polyret-lareqa-multi",
    )
    write_trec_qrels(out / "qrels.trec", qrels_of(dataset))


# ---- typed result ---------------------------------------------------------------------------


def lareqa_per_query(ranks: LareqaRanks, dataset: LareqaDataset) -> dict[str, PerQuery]:
    """Per-query Mono / Cross / Multi values, rank distance and own-language share from the ranks,
    with the same metric functions as `lareqa_metrics`. Groups reproduce its averaging (per source
    language; Cross: per target first), so a macro-weighted mean equals the headline number. The
    cluster of an entry is its question id: translations of one question are not independent."""
    langs = list(dataset.languages)
    n_lang = len(langs)
    keys = np.asarray([q.key for q in dataset.questions])
    qids = np.asarray([q.qid for q in dataset.questions])
    q_lang = dataset.question_lang_ids()
    c_lang = dataset.candidate_lang_ids()
    src = np.asarray(langs)[q_lang][:, None]

    in_y = ranks.rel_lang[:, None, :] == np.arange(n_lang)[None, :, None]
    ranks_qy = np.where(in_y, ranks.rank_lang[:, None, :], np.inf)
    ap_qy = metrics.average_precision(ranks_qy)
    r1_qy = metrics.recall_at_k(ranks_qy, 1)
    own = np.arange(len(keys)), q_lang
    qi, yi = np.nonzero(np.arange(n_lang)[None, :] != q_lang[:, None])
    pair_ids = [f"{keys[i]}>{langs[y]}" for i, y in zip(qi.tolist(), yi.tolist())]
    pair_groups = np.stack([src[qi, 0], np.asarray(langs)[yi]], axis=1)
    top = ranks.top_idx[:, :OWN_LANGUAGE_TOP_K]
    top_langs = np.where(top >= 0, c_lang[np.maximum(top, 0)], -1)
    rr_ranks = metrics.round_robin_ranks(ranks.rank_lang, ranks.rel_lang, np.bincount(c_lang, minlength=n_lang))
    return {
        "mono.map": PerQuery.build(keys, ap_qy[own], src, qids),
        "mono.recall@1": PerQuery.build(keys, r1_qy[own], src, qids),
        "cross.map": PerQuery.build(pair_ids, ap_qy[qi, yi], pair_groups, qids[qi]),
        "cross.recall@1": PerQuery.build(pair_ids, r1_qy[qi, yi], pair_groups, qids[qi]),
        "multi.map": PerQuery.build(keys, metrics.average_precision(ranks.rank_pool), src, qids),
        f"multi.recall@{MULTI_RECALL_K}": PerQuery.build(
            keys, metrics.recall_at_k(ranks.rank_pool, MULTI_RECALL_K), src, qids
        ),
        "rank_distance": PerQuery.build(keys, metrics.rank_distance(ranks.rank_pool), src, qids),
        f"top{OWN_LANGUAGE_TOP_K}_own_language_share": PerQuery.build(
            keys, metrics.own_language_share(top_langs, q_lang), src, qids
        ),
        "round_robin.map": PerQuery.build(keys, metrics.average_precision(rr_ranks), src, qids),
        "round_robin.rank_distance": PerQuery.build(keys, metrics.rank_distance(rr_ranks), src, qids),
    }


def lareqa_result(results: dict[str, Any], ranks: LareqaRanks, dataset: LareqaDataset) -> EvalResult:
    """The results dict as an `EvalResult`: flat metrics, headline, per-language tables, per-query values."""
    result = lareqa_summary(results)
    result.per_query = ranks.per_query if ranks.per_query is not None else lareqa_per_query(ranks, dataset)
    return result


def lareqa_summary(results: dict[str, Any], *, report: bool = True) -> EvalResult:
    """Flat metrics, headline and per-language tables of a LAReQA results dict (no per-query values);
    adds the top-level `per_language` (language -> flat metric -> value) to `results` when absent."""
    flat: dict[str, float] = {}
    headline: list[str] = []
    per_language: dict[str, list[str]] = {}
    settings = (
        ("mono", ("map", "recall@1")),
        ("cross", ("map", "recall@1")),
        ("multi", ("map", f"recall@{MULTI_RECALL_K}")),
    )
    for setting, ks in settings:
        block = results[setting]
        for k in ks:
            flat[f"{setting}.{k}"] = float(block[k])
            headline.append(f"{setting}.{k}")
            for lang, vals in block["per_language"].items():
                flat[f"{setting}.{k}[{lang}]"] = float(vals[k])
        per_language[f"{setting.capitalize()} mAP"] = [f"{setting}.map"]
    for lang, v in results["cross"].get("per_target_language", {}).items():  # absent in older results
        flat[f"cross.map_into[{lang}]"] = float(v)
    own = f"top{OWN_LANGUAGE_TOP_K}_own_language_share"
    for extra, title in (("rank_distance", "Rank distance"), (own, f"Top-{OWN_LANGUAGE_TOP_K} own-language share")):
        flat[extra] = float(results[extra]["mean"])
        headline.append(extra)
        for lang, v in results[extra]["per_language"].items():
            flat[f"{extra}[{lang}]"] = float(v)
        per_language[title] = [extra]
    for k in ("map", "rank_distance"):
        flat[f"round_robin.{k}"] = float(results["round_robin"][k])
    result = EvalResult("lareqa", flat, headline, per_language, {}, results, report_markdown(results) if report else "")
    results.setdefault("per_language", result.language_values())
    return result
