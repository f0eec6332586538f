"""`load_result(path)`: any evaluation folder polyret ever wrote, as an `EvalResult`.

Today's layout (`EvalResult.save`): results.json with a `summary`, per_query.npz, report.md. Older
folders still load: results.json without a summary (the summary is rebuilt from the results dict by
the evaluator's own function), per-language values under `languages` / `per_lang`
(`upgrade_results`), per-query values in `per_query.jsonl` (BEIR / MIRACL) or inside results.json
(XNLI's per-row `correct` lists), and experiment suite folders, whose `polyret_suite.json` marker
holds the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

from polyret.errors import PolyretError
from polyret.evaluate.lareqa_eval import lareqa_summary
from polyret.evaluate.result import (
    PER_QUERY_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SUMMARY_KEY,
    EvalResult,
    PerQuery,
    load_per_query,
    upgrade_results,
)
from polyret.evaluate.retrieval import retrieval_result
from polyret.evaluate.tatoeba import tatoeba_result
from polyret.evaluate.xnli import xnli_result
from polyret.io import read_json

# The experiment runner's suite marker: a summary (`EvalResult.to_json()`) beside the suite's outputs.
SUITE_MARKER = "polyret_suite.json"
LEGACY_PER_QUERY_JSONL = "per_query.jsonl"


def load_result(path: str | Path, *, raw: bool = True) -> EvalResult:
    """The result in folder `path` (or of the results.json file `path`), whichever layout wrote it.

    `raw=False`: where an experiment marker holds the summary, results.json (the evaluator's full
    dict, possibly large) is not read; `result.raw` is then empty."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    results_path, marker = folder / RESULTS_FILE, folder / SUITE_MARKER
    if not results_path.is_file() and not marker.is_file():
        raise PolyretError(f"{folder} holds no evaluation result ({RESULTS_FILE} or {SUITE_MARKER})")
    read_raw = results_path.is_file() and (raw or not marker.is_file())
    raw = upgrade_results(read_json(results_path)) if read_raw else {}
    summary = raw.pop(SUMMARY_KEY, None) or (read_json(marker) if marker.is_file() else None)
    per_query = load_per_query(folder / PER_QUERY_FILE)
    if summary is not None:
        result = EvalResult.from_json(summary, per_query)
        result.raw = raw
    else:
        result = _rebuild(raw, folder)
        result.per_query = per_query or result.per_query
    if (folder / REPORT_FILE).is_file():
        result.report = (folder / REPORT_FILE).read_text(encoding="utf-8")
    return result


def _rebuild(raw: dict, folder: Path) -> EvalResult:
    """The summary of an old results.json (no `summary` in it), by the evaluator's own function
    (the report is the folder's report.md, not rendered again)."""
    task = raw.get("task") or ("lareqa" if "mono" in raw else None)
    if task == "lareqa":
        return lareqa_summary(raw, report=False)
    if task == "xnli":
        return xnli_result(raw, report=False)  # per-row values from the results' own `correct` lists
    if task == "tatoeba":
        return tatoeba_result(raw, None, report=False)
    if task in ("beir", "miracl"):
        return retrieval_result(raw, _legacy_retrieval_per_query(folder / LEGACY_PER_QUERY_JSONL), report=False)
    raise PolyretError(f"{folder / RESULTS_FILE}: unknown kind of result (task {task!r})")


def _legacy_retrieval_per_query(path: Path) -> dict[str, dict[str, float]]:
    """{qid: {metric: value}} from an old per_query.jsonl (none: empty)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            qid = rec.pop("qid")
            out[qid] = {k: float(v) for k, v in rec.items() if k != "lang"}
    return out


__all__ = ["EvalResult", "PerQuery", "SUITE_MARKER", "load_result"]
