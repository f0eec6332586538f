"""Experiments: a grid of training runs × evaluation suites, with CIs over seeds and paired tests.

`run_experiment(config, out_dir)` (and `polyret experiment CONFIG.yaml --out DIR`) expands the grid
in the config — base models × strategies × α (Hybrid only) × merge weight λ × seeds — trains each
run, evaluates every suite on it and on the untrained base model (the reference row), then writes
`summary.json` (runs, mean + 95% CI over seeds, paired tests between variants) and `report.md`.

Layout of the output directory (everything keyed by content hashes, so re-running is cheap):

    DIR/experiment.json                 marker + the resolved config of the last invocation
    DIR/base-models/<name>/             built base models (the `tiny` test model)
    DIR/train/<train_key>/              one training run (train key = hash of the resolved
                                        TrainConfig); `polyret_experiment_train.json` marks it done
    DIR/runs/<run_key>/run.json         one evaluated model: base, trained, or trained+merged
                                        (run key = hash of {base model, train config, λ})
    DIR/runs/<run_key>/merged/          the merged model when λ < 1
    DIR/runs/<run_key>/merge_choice.json  λ = auto: the chosen λ and the held-out numbers behind it
    DIR/runs/<run_key>/eval/<suite>/    the suite's own outputs + `per_query.npz` +
                                        `polyret_suite.json` (written last: marks the suite done)
    DIR/summary.json, DIR/report.md, DIR/plots/*.png

Reuse and resume: a training run whose done-marker exists is reused; one whose directory exists
without it was interrupted and is resumed (`train(..., resume=True)`); a suite whose marker exists
is not evaluated again. λ variants of one training share it. A changed config only adds runs.

Planning (`plan_experiment`: the grid), running (`Runner`: training, merging, evaluating) and collecting
(polyret.experiment.collect: records, aggregate, tests, summary.json + report.md) are apart; the paths
and finished markers are in polyret.experiment.layout. Training, merging, model loading and suites are injectable (`Runner(..., train_fn=..., suites=...)`)
so the grid logic is testable with fakes; suites are looked up in `SUITES` (name -> callable). The
runner computes no metric: each suite returns an `EvalResult` whose per-query values it stores.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from polyret.config import TrainConfig
from polyret.errors import PolyretError
from polyret.evaluate.result import save_per_query
from polyret.experiment.collect import collect_run, summarize, write_summary
from polyret.experiment.config import ExperimentConfig, SuiteConfig, load_experiment_config, suite_label
from polyret.experiment.grid import RunSpec, expand_grid
from polyret.experiment.layout import (  # noqa: F401  (re-exported: callers import them from here)
    EXPERIMENT_MARKER,
    MERGE_CHOICE,
    MERGED_DONE,
    PER_QUERY_FILE,
    SCHEMA_VERSION,
    SUITE_DONE,
    SUMMARY_FILE,
    TRAIN_DONE,
    Layout,
    suite_dir_name,
)
from polyret.experiment.suites import SUITES, SuiteContext, SuiteFn
from polyret.io import OutputDir, finished_record, mark_finished, read_json, write_json
from polyret.model import build_tiny_model, load_model
from polyret.progress import progress_bar
from polyret.runtime import console
from polyret.train import train
from polyret.validation import choose_merge_weight

Hook = Callable[[str, RunSpec, str | None], None]


# ---------------------------------------------------------------------------------- planning
def plan_experiment(
    config: ExperimentConfig, config_dir: Path, suites: dict[str, SuiteFn], load_train_config_fn: Callable | None = None
) -> tuple[list, list[RunSpec]]:
    """(variants, runs) of the config's grid; an unknown suite is an error before anything runs."""
    unknown = [s.name for s in config.suites if s.name not in suites]
    if unknown:
        raise PolyretError(f"unknown evaluation suite {unknown[0]!r} (known: {', '.join(sorted(suites))})")
    return expand_grid(config, config_dir, load_train_config=load_train_config_fn)


# ----------------------------------------------------------------------------------- running
class Runner:
    """Runs (or reuses) every run of an experiment; collecting is polyret.experiment.collect's.

    Injectable pieces (defaults are the real ones): `train_fn(config, out_dir, *, resume,
    show_progress) -> model dir`, `merge_fn(base, tuned, weight, out) -> dir`, `load_model_fn(name)`,
    `build_base_fn(name, out_dir) -> path or name` (resolves 'tiny'), `choose_merge_weight_fn(base,
    tuned, train_dir, candidates, work_dir, *, merge_fn) -> {"weight", ...}` (λ = auto), `suites` (name -> SuiteFn),
    `hook(event, run, suite)` called at "run_start", "train_done", "suite_done", "run_done" (tests
    raise from it to simulate an interruption).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: str | Path,
        *,
        config_dir: str | Path = ".",
        train_fn: Callable | None = None,
        merge_fn: Callable | None = None,
        load_model_fn: Callable | None = None,
        build_base_fn: Callable | None = None,
        choose_merge_weight_fn: Callable | None = None,
        load_train_config_fn: Callable | None = None,
        suites: dict[str, SuiteFn] | None = None,
        hook: Hook | None = None,
        show_progress: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.layout = Layout(out_dir)
        self.out_dir = self.layout.out_dir
        self.config_dir = Path(config_dir)
        self.train_fn = train_fn or train
        self.merge_fn = merge_fn
        self.load_model_fn = load_model_fn or load_model
        self.build_base_fn = build_base_fn or _build_base
        self.choose_merge_weight_fn = choose_merge_weight_fn or choose_merge_weight
        self.suites = dict(SUITES if suites is None else suites)
        self.hook = hook
        self.show_progress = show_progress
        self.log = log or _default_log(show_progress)
        self.variants, self.runs = plan_experiment(config, self.config_dir, self.suites, load_train_config_fn)
        self.counts = {"trained": 0, "resumed": 0, "train_reused": 0, "evaluated": 0, "eval_reused": 0, "merged": 0}
        self._base_paths: dict[str, str] = {}

    # -- directory ------------------------------------------------------------------------------
    def open_out_dir(self) -> OutputDir:
        """`--out` under polyret's output policy (`polyret.io`): new, empty or an experiment of ours
        (finished ones are reopened: their runs are reused); anything else is refused."""
        return OutputDir(self.out_dir, "experiment", reuse=True, legacy_files=(EXPERIMENT_MARKER,))

    def write_marker(self) -> None:
        write_json(
            self.out_dir / EXPERIMENT_MARKER,
            {
                "polyret_experiment": SCHEMA_VERSION,
                "config": self.config.model_dump(mode="json"),
                "config_dir": str(self.config_dir),
            },
        )

    def run_dir(self, run: RunSpec) -> Path:
        return self.layout.run_dir(run)

    def suite_dir(self, run: RunSpec, suite: SuiteConfig) -> Path:
        return self.layout.suite_dir(run, suite)

    # -- models ---------------------------------------------------------------------------------
    def base_model_path(self, spec: str) -> str:
        if spec not in self._base_paths:
            self._base_paths[spec] = str(self.build_base_fn(spec, self.out_dir / "base-models"))
        return self._base_paths[spec]

    def _train(self, run: RunSpec) -> str:
        """Train (or reuse / resume) the run's training; returns the trained model dir."""
        tdir = self.layout.train_dir(run)
        done = finished_record(tdir / TRAIN_DONE)
        if done is not None:
            self.counts["train_reused"] += 1
            return str(tdir / done["model_dir"])
        tconf = dict(run.train_config)
        tconf["model"] = self.base_model_path(run.variant.base_model)
        # A training dir with its config.yaml (written by `train` before the first step) was
        # interrupted: resume it. One without (killed while loading data) holds nothing worth
        # keeping; it is ours (inside the experiment dir), so start it afresh.
        resume = (tdir / "config.yaml").is_file()
        if tdir.exists() and not resume:
            shutil.rmtree(tdir)
        self.log(f"{'resuming' if resume else 'training'} {run.label} seed {run.seed} -> {tdir}")
        model_dir = Path(
            self.train_fn(TrainConfig.model_validate(tconf), tdir, resume=resume, show_progress=self.show_progress)
        )
        self.counts["resumed" if resume else "trained"] += 1
        rel = os.path.relpath(model_dir, tdir)
        mark_finished(tdir / TRAIN_DONE, {"model_dir": rel, "config": run.train_config, "finished": time.time()})
        if not self.config.train.keep_checkpoints and (tdir / "checkpoints").is_dir():
            # Checkpoints only serve a resume; a finished run does not need them (they are most
            # of the disk an experiment takes).
            shutil.rmtree(tdir / "checkpoints")
        return str(tdir / rel)

    def _model_for(self, run: RunSpec) -> str:
        """Path/name of the model a run evaluates (training and merging on demand)."""
        base = self.base_model_path(run.variant.base_model)
        if run.variant.is_base:
            return base
        tuned = self._train(run)
        self._fire("train_done", run)
        lam = run.variant.merge_weight
        if lam == "auto":
            lam = self._chosen_merge_weight(run, base, tuned)
        if lam is None or lam == 1.0:
            return tuned
        return self._merged(run, base, tuned, lam)

    def _merged(self, run: RunSpec, base: str, tuned: str, lam: float) -> str:
        """The run's merged model dir, merged once (an interrupted merge is redone)."""
        mdir = self.run_dir(run) / "merged"
        marker = self.run_dir(run) / MERGED_DONE
        if finished_record(marker) is None:
            if self.merge_fn is None:
                from polyret.merge import merge_models  # imports torch: only when a merge is due

                self.merge_fn = merge_models
            if mdir.exists():  # an interrupted merge: our own dir, rebuild it
                shutil.rmtree(mdir)
            self.merge_fn(base, tuned, lam, mdir)
            mark_finished(marker, {"merge_weight": lam})
            self.counts["merged"] += 1
        return str(mdir)

    def _chosen_merge_weight(self, run: RunSpec, base: str, tuned: str) -> float:
        """λ = auto: the λ rule on the training run's held-out groups, decided once per run and kept
        in `merge_choice.json` (with the validation numbers it was decided on)."""
        path = self.run_dir(run) / MERGE_CHOICE
        if not path.is_file():
            self.log(f"choosing λ for {run.label} seed {run.seed} on its held-out groups")
            choice = self.choose_merge_weight_fn(
                base,
                tuned,
                self.layout.train_dir(run),
                self.config.grid.auto_merge_weights,
                self.run_dir(run) / "lambda-search",
                merge_fn=self.merge_fn,
            )
            write_json(path, choice)
        return float(read_json(path)["weight"])

    def _fire(self, event: str, run: RunSpec, suite: str | None = None) -> None:
        if self.hook is not None:
            self.hook(event, run, suite)

    # -- running --------------------------------------------------------------------------------
    def run_one(self, run: RunSpec) -> dict[str, Any]:
        rdir = self.run_dir(run)
        rdir.mkdir(parents=True, exist_ok=True)
        write_json(rdir / "run.json", run.to_json() | {"train_config": run.train_config})
        self._fire("run_start", run)
        pending = [s for s in self.config.suites if not self.layout.suite_done(run, s)]
        self.counts["eval_reused"] += len(self.config.suites) - len(pending)
        if pending:
            model = self.load_model_fn(self._model_for(run))
            ctx = SuiteContext(self.config_dir, self.show_progress)
            for suite in pending:
                self._evaluate(run, suite, model, ctx)
            del model
        self._fire("run_done", run)
        return self.collect(run)

    def _evaluate(self, run: RunSpec, suite: SuiteConfig, model, ctx: SuiteContext) -> None:
        """One suite on one run: its outputs, per-query values, and the marker written last."""
        sdir = self.suite_dir(run, suite)
        sdir.mkdir(parents=True, exist_ok=True)
        label = suite_label(suite)
        self.log(f"evaluating {run.label}" + (f" seed {run.seed}" if run.seed is not None else "") + f" on {label}")
        t0 = time.perf_counter()
        result = self.suites[suite.name](model, suite, sdir, ctx)
        result.check_per_query()
        save_per_query(sdir / PER_QUERY_FILE, result.per_query)
        mark_finished(
            sdir / SUITE_DONE,
            {
                "suite": label,
                "config": suite.model_dump(mode="json"),
                **result.to_json(),
                "seconds": time.perf_counter() - t0,
            },
        )
        self.counts["evaluated"] += 1
        self._fire("suite_done", run, label)

    def run(self) -> dict[str, Any]:
        """Run everything not yet done, then aggregate and write summary.json and report.md."""
        t0 = time.perf_counter()
        with self.open_out_dir():  # marked complete only after summary.json and report.md
            self.write_marker()
            with progress_bar(show=self.show_progress, title="runs", elapsed=True) as progress:
                task = progress.add_task("experiment", total=len(self.runs))
                for run in self.runs:
                    progress.update(
                        task, description=f"{run.label}" + (f" seed {run.seed}" if run.seed is not None else "")
                    )
                    self.run_one(run)
                    progress.advance(task)
            return self.finish(wall_s=time.perf_counter() - t0)

    # -- collecting (polyret.experiment.collect) --------------------------------------------------
    def collect(self, run: RunSpec) -> dict[str, Any]:
        """The run's record for summary.json (only finished suites)."""
        return collect_run(self.layout, self.config, run)

    def aggregate(self) -> dict[str, Any]:
        return summarize(self.layout, self.config, self.variants, self.runs)

    def finish(self, *, wall_s: float | None = None) -> dict[str, Any]:
        """Aggregate whatever is finished; write summary.json, report.md and plots."""
        return write_summary(self.layout, self.config, self.variants, self.runs, self.counts, wall_s)


def _build_base(spec: str, out_root: Path) -> str:
    """'tiny' -> a random tiny model built once inside the experiment dir; anything else as given."""
    if spec == "tiny":
        out = out_root / "tiny"
        st = out / "st"
        if not (st / "modules.json").is_file():
            build_tiny_model(out)
        return str(st)
    return spec


def _default_log(show: bool) -> Callable[[str], None]:
    if not show:
        return lambda msg: None
    return lambda msg: console.print(f"[dim]{escape(str(msg))}[/]")


def run_experiment(
    config: str | Path | ExperimentConfig,
    out_dir: str | Path,
    *,
    report_only: bool = False,
    **runner_kwargs: Any,
) -> dict[str, Any]:
    """Run (or resume) an experiment from a YAML path or a config object; returns the summary.

    `report_only`: aggregate what is finished and rewrite summary.json / report.md, run nothing.
    """
    if isinstance(config, ExperimentConfig):
        cfg, cdir = config, Path(runner_kwargs.pop("config_dir", "."))
    else:
        cfg, cdir = load_experiment_config(config)
        runner_kwargs.pop("config_dir", None)
    runner = Runner(cfg, out_dir, config_dir=cdir, **runner_kwargs)
    if report_only:
        if not (Path(out_dir) / EXPERIMENT_MARKER).is_file():
            raise PolyretError(f"{out_dir} is not an experiment directory (no {EXPERIMENT_MARKER}); nothing to report")
        return runner.finish()
    return runner.run()
