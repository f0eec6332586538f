"""Where an experiment keeps what (see polyret.experiment.runner for the tree), and the markers that
say a part of it is finished (all through polyret.io's `mark_finished` / `finished_record`)."""

from __future__ import annotations

from pathlib import Path

from polyret.evaluate.reader import SUITE_MARKER, load_result
from polyret.evaluate.result import PER_QUERY_FILE, EvalResult, PerQuery  # noqa: F401  (PER_QUERY_FILE re-exported)
from polyret.experiment.config import SuiteConfig, suite_label
from polyret.experiment.grid import RunSpec, config_hash
from polyret.io import finished_record

EXPERIMENT_MARKER = "experiment.json"
TRAIN_DONE = "polyret_experiment_train.json"
SUITE_DONE = SUITE_MARKER  # what `polyret.evaluate.reader.load_result` reads a suite's summary from
MERGED_DONE = "merged.done"
SUMMARY_FILE = "summary.json"
MERGE_CHOICE = "merge_choice.json"
SCHEMA_VERSION = 1


def suite_dir_name(suite: SuiteConfig) -> str:
    """A suite's folder inside a run dir: its label made path-safe, plus a hash of its settings (so
    changing a suite's options never reuses results measured with the old ones)."""
    skey = config_hash(suite.model_dump(mode="json"), 8)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in suite_label(suite))
    return f"{safe}-{skey}"


class Layout:
    """The paths of one experiment directory."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def train_dir(self, run: RunSpec) -> Path:
        return self.out_dir / "train" / run.train_key

    def run_dir(self, run: RunSpec) -> Path:
        return self.out_dir / "runs" / run.key

    def suite_dir(self, run: RunSpec, suite: SuiteConfig) -> Path:
        return self.run_dir(run) / "eval" / suite_dir_name(suite)

    def suite_done(self, run: RunSpec, suite: SuiteConfig) -> bool:
        return finished_record(self.suite_dir(run, suite) / SUITE_DONE) is not None

    def suite_result(self, run: RunSpec, suite: SuiteConfig) -> EvalResult | None:
        """The finished suite's result (summary and per-query values), or None while it is not finished."""
        return load_result(self.suite_dir(run, suite), raw=False) if self.suite_done(run, suite) else None

    def per_query(self, run: RunSpec, suite: SuiteConfig) -> dict[str, PerQuery] | None:
        result = self.suite_result(run, suite)
        return None if result is None else result.per_query
