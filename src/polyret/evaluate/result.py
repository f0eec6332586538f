"""`EvalResult`: what every evaluator returns.

- `metrics`: flat numbers, `"multi.map"`, per language `"multi.map[de]"`;
- `headline`: the metrics for a main table, in order; `per_language`: table title -> metric prefix
  whose `prefix[lang]` entries form a per-language table;
- `per_query`: per-query values of (some of) the metrics, computed by the evaluator from its own
  ranks / predictions; what paired significance tests need;
- `raw`: the evaluator's full results dict (what its `results.json` holds);
- `report`: the evaluator's human report (markdown).

For code written against the old dict results, an `EvalResult` reads like that dict:
`res["multi"]["map"]` is `res.raw["multi"]["map"]`.

The one output layout, `EvalResult.save(out)` (read back by `polyret.evaluate.reader.load_result`):

- `results.json`: `raw`, plus `summary` (task, flat metrics, headline, `language_tables`: table title
  -> metric prefixes). Per-language values are always under `per_language`, a dict keyed by
  language code (LAReQA: inside each setting block too, and at the top as `{lang: {metric: value}}`);
- `per_query.npz`: every per-query array (`save_per_query`): for metric i, `m{i}_ids` (query ids,
  unique), `m{i}_values`, `m{i}_groups` (macro-average levels, e.g. the query language) and
  `m{i}_clusters` (unit of paired tests), metric names under `metrics`;
- `report.md`: the evaluator's report.

Plots, TREC files and corpus embeddings an evaluator writes beside them are extras of that evaluator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyret.errors import PolyretError
from polyret.io import write_json, write_text
from polyret.stats import macro_weights

RESULTS_FILE = "results.json"
PER_QUERY_FILE = "per_query.npz"
REPORT_FILE = "report.md"
SUMMARY_KEY = "summary"

# Metrics for which a smaller number is better (significance marks, "best" in reports). Own-language
# share: less of the top 10 in the query's own language = less bias.
LOWER_IS_BETTER = {"rank_distance", "round_robin.rank_distance", "top10_own_language_share"}


def lower_is_better(metric: str) -> bool:
    return metric.split("[", 1)[0] in LOWER_IS_BETTER


@dataclass
class PerQuery:
    """Per-query values of one metric. `groups[i]` are the macro-average levels of entry i (e.g.
    (source language,) or (source, target)), so the macro-weighted mean of `values` is the headline
    number; `clusters[i]` names the unit entry i belongs to (entries of one unit, e.g. the
    translations of one question, are flipped / resampled together in paired tests)."""

    ids: np.ndarray  # (n,) str, unique
    values: np.ndarray  # (n,) float
    groups: np.ndarray  # (n, k) str
    clusters: np.ndarray | None = None  # (n,) str

    @classmethod
    def build(cls, ids, values, groups, clusters=None) -> "PerQuery":
        """From lists; entries whose value is not finite (undefined for that query) are dropped."""
        values = np.asarray(values, dtype=float)
        ok = np.isfinite(values)
        groups = np.asarray(groups, dtype=str)
        if groups.ndim == 1:
            groups = groups[:, None]
        return cls(
            np.asarray(ids, dtype=str)[ok],
            values[ok],
            groups[ok],
            None if clusters is None else np.asarray(clusters, dtype=str)[ok],
        )

    def macro_mean(self) -> float:
        return float(macro_weights([tuple(g) for g in self.groups.tolist()]) @ self.values)


@dataclass(eq=False)
class EvalResult(Mapping[str, Any]):
    task: str
    metrics: dict[str, float]
    headline: list[str] = field(default_factory=list)
    per_language: dict[str, list[str]] = field(default_factory=dict)
    per_query: dict[str, PerQuery] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    report: str = ""

    # -- the old dict view -------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    # -- checks and storage ------------------------------------------------------------------
    def check_per_query(self, tol: float = 1e-6) -> None:
        """Each per-query array must reproduce its metric under the macro weights; a mismatch would
        make every paired test on it meaningless, so it raises."""
        for metric, pq in self.per_query.items():
            if metric not in self.metrics or len(pq.values) == 0:
                continue
            got, want = pq.macro_mean(), self.metrics[metric]
            if abs(got - want) > tol * max(1.0, abs(want)):
                raise RuntimeError(
                    f"{self.task} {metric}: per-query values average to {got}, the evaluator reports {want}"
                )

    def to_json(self) -> dict[str, Any]:
        """The summary part (no per-query arrays, no raw dict): what experiment markers store."""
        return {
            "task": self.task,
            "metrics": dict(self.metrics),
            "headline": list(self.headline),
            "per_language": dict(self.per_language),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], per_query: dict[str, PerQuery] | None = None) -> "EvalResult":
        """From `to_json()` (experiment markers) or a results.json `summary` (`language_tables`)."""
        tables = obj.get("language_tables", obj.get("per_language", {}))
        return cls(
            obj.get("task", ""), dict(obj["metrics"]), list(obj.get("headline", [])), dict(tables), per_query or {}
        )

    def language_values(self) -> dict[str, dict[str, float]]:
        """Language code -> {metric: value}, from the flat `metric[lang]` entries."""
        out: dict[str, dict[str, float]] = {}
        for key, value in self.metrics.items():
            if key.endswith("]") and "[" in key:
                metric, lang = key[:-1].split("[", 1)
                out.setdefault(lang, {})[metric] = value
        return out

    def save(self, out: str | Path) -> Path:
        """Write the one layout into the folder `out`: per_query.npz, report.md, then results.json
        (last: its presence means the folder is complete)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_per_query(out / PER_QUERY_FILE, self.per_query)
        write_text(out / REPORT_FILE, self.report or self.default_report())
        summary = {
            "task": self.task,
            "metrics": dict(self.metrics),
            "headline": list(self.headline),
            "language_tables": dict(self.per_language),
        }
        write_json(out / RESULTS_FILE, {**self.raw, SUMMARY_KEY: summary})
        return out

    def default_report(self) -> str:
        """A plain report (headline metrics) for a result without the evaluator's own."""
        lines = [f"# {self.task}", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {m} | {self.metrics[m]:.4f} |" for m in self.headline if m in self.metrics]
        return "\n".join(lines) + "\n"


def upgrade_results(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A results dict written by any polyret version in today's schema: per-language values under
    `per_language`, a dict keyed by language code (older XNLI / Tatoeba results kept that dict under
    `languages`, BEIR / MIRACL under `per_lang`), `languages` the list of codes."""
    out = dict(raw)
    if "per_language" not in out:
        if isinstance(out.get("per_lang"), Mapping):
            out["per_language"] = out.pop("per_lang")
        elif isinstance(out.get("languages"), Mapping):
            out["per_language"] = out["languages"]
            out["languages"] = list(out["per_language"])
    return out


def save_per_query(path: str | Path, per_query: Mapping[str, PerQuery]) -> None:
    """All per-query arrays of a result in one .npz (written to a temp file, then renamed)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"metrics": np.asarray(list(per_query), dtype=str)}
    for i, pq in enumerate(per_query.values()):
        arrays[f"m{i}_ids"] = np.asarray(pq.ids, dtype=str)
        arrays[f"m{i}_values"] = np.asarray(pq.values, dtype=float)
        arrays[f"m{i}_groups"] = np.asarray(pq.groups, dtype=str)
        if pq.clusters is not None:
            arrays[f"m{i}_clusters"] = np.asarray(pq.clusters, dtype=str)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_per_query(path: str | Path) -> dict[str, PerQuery]:
    path = Path(path)
    if not path.is_file():
        return {}
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            out = {}
            for i, metric in enumerate(z["metrics"].tolist()):
                clusters = z[f"m{i}_clusters"] if f"m{i}_clusters" in z.files else None
                out[metric] = PerQuery(z[f"m{i}_ids"], z[f"m{i}_values"], z[f"m{i}_groups"], clusters)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        # A file polyret wrote that no longer reads back: one line naming it, never a traceback.
        raise PolyretError(
            f"{path} is damaged ({type(e).__name__}: {e}); delete it and re-run the command that wrote it"
        ) from None
    return out
