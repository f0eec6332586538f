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

Training, merging, model loading and suites are injectable (`Runner(..., train_fn=..., suites=...)`)
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from polyret.config import TrainConfig
from polyret.errors import PolyretError
from polyret.evaluate.reader import SUITE_MARKER, load_result
from polyret.evaluate.result import PER_QUERY_FILE, PerQuery, save_per_query
from polyret.experiment.compare import paired_tests
from polyret.experiment.config import ExperimentConfig, SuiteConfig, load_experiment_config, suite_label
from polyret.experiment.grid import RunSpec, config_hash, expand_grid
from polyret.experiment.report import write_report
from polyret.experiment.suites import SUITES, SuiteContext, SuiteFn
from polyret.io import OutputDir, read_json, to_jsonable, write_json
from polyret.model import build_tiny_model, load_model
from polyret.runtime import console
from polyret.stats import mean_ci
from polyret.train import train
from polyret.validation import choose_merge_weight

EXPERIMENT_MARKER = "experiment.json"
TRAIN_DONE = "polyret_experiment_train.json"
SUITE_DONE = SUITE_MARKER  # what `polyret.evaluate.reader.load_result` reads a suite's summary from
SUMMARY_FILE = "summary.json"
MERGE_CHOICE = "merge_choice.json"
SCHEMA_VERSION = 1


# ---------------------------------------------------------------------------------- the runner
Hook = Callable[[str, RunSpec, str | None], None]


class Runner:
    """Runs (or reuses) every run of an experiment and aggregates the results.

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
        self.out_dir = Path(out_dir)
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
        unknown = [s.name for s in config.suites if s.name not in self.suites]
        if unknown:
            raise PolyretError(
                f"unknown evaluation suite {unknown[0]!r} (known: {', '.join(sorted(self.suites))})"
            )
        self.variants, self.runs = expand_grid(config, self.config_dir, load_train_config=load_train_config_fn)
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
            {"polyret_experiment": SCHEMA_VERSION, "config": self.config.model_dump(mode="json"),
             "config_dir": str(self.config_dir)},
        )

    def run_dir(self, run: RunSpec) -> Path:
        return self.out_dir / "runs" / run.key

    def suite_dir(self, run: RunSpec, suite: SuiteConfig) -> Path:
        return self.run_dir(run) / "eval" / suite_dir_name(suite)

    # -- models ---------------------------------------------------------------------------------
    def base_model_path(self, spec: str) -> str:
        if spec not in self._base_paths:
            self._base_paths[spec] = str(self.build_base_fn(spec, self.out_dir / "base-models"))
        return self._base_paths[spec]

    def _load(self, name: str):
        return self.load_model_fn(name)

    def _train(self, run: RunSpec) -> str:
        """Train (or reuse / resume) the run's training; returns the trained model dir."""
        tdir = self.out_dir / "train" / run.train_key
        done = tdir / TRAIN_DONE
        if done.is_file():
            self.counts["train_reused"] += 1
            return str(tdir / read_json(done)["model_dir"])
        tconf = dict(run.train_config)
        tconf["model"] = self.base_model_path(run.variant.base_model)
        # A training dir with its config.yaml (written by `train` before the first step) was
        # interrupted: resume it. One without (killed while loading data) holds nothing worth
        # keeping; it is ours (inside the experiment dir), so start it afresh.
        resume = (tdir / "config.yaml").is_file()
        if tdir.exists() and not resume:
            shutil.rmtree(tdir)
        self.log(f"{'resuming' if resume else 'training'} {run.label} seed {run.seed} -> {tdir}")
        model_dir = Path(self.train_fn(TrainConfig.model_validate(tconf), tdir, resume=resume, show_progress=self.show_progress))
        self.counts["resumed" if resume else "trained"] += 1
        rel = os.path.relpath(model_dir, tdir)
        write_json(done, {"model_dir": rel, "config": run.train_config, "finished": time.time()})
        if not self.config.train.keep_checkpoints:
            # Checkpoints only serve a resume; a finished run does not need them (they are most
            # of the disk an experiment takes).
            for ckpt in ("checkpoints",):
                if (tdir / ckpt).is_dir():
                    shutil.rmtree(tdir / ckpt)
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
        mdir = self.run_dir(run) / "merged"
        marker = self.run_dir(run) / "merged.done"
        if not marker.is_file():
            if self.merge_fn is None:
                from polyret.merge import merge_models  # imports torch: only when a merge is due

                self.merge_fn = merge_models
            if mdir.exists():  # an interrupted merge: our own dir, rebuild it
                shutil.rmtree(mdir)
            self.merge_fn(base, tuned, lam, mdir)
            marker.write_text("done\n", encoding="utf-8")
            self.counts["merged"] += 1
        return str(mdir)

    def _chosen_merge_weight(self, run: RunSpec, base: str, tuned: str) -> float:
        """λ = auto: the λ rule on the training run's held-out groups, decided once per run and kept
        in `merge_choice.json` (with the validation numbers it was decided on)."""
        path = self.run_dir(run) / MERGE_CHOICE
        if not path.is_file():
            self.log(f"choosing λ for {run.label} seed {run.seed} on its held-out groups")
            choice = self.choose_merge_weight_fn(
                base, tuned, self.out_dir / "train" / run.train_key, self.config.grid.auto_merge_weights,
                self.run_dir(run) / "lambda-search", merge_fn=self.merge_fn)
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
        pending = [s for s in self.config.suites if not (self.suite_dir(run, s) / SUITE_DONE).is_file()]
        self.counts["eval_reused"] += len(self.config.suites) - len(pending)
        if pending:
            model_name = self._model_for(run)
            model = self._load(model_name)
            ctx = SuiteContext(self.config_dir, self.show_progress)
            for suite in pending:
                sdir = self.suite_dir(run, suite)
                sdir.mkdir(parents=True, exist_ok=True)
                label = suite_label(suite)
                self.log(f"evaluating {run.label}" + (f" seed {run.seed}" if run.seed is not None else "") + f" on {label}")
                t0 = time.perf_counter()
                result = self.suites[suite.name](model, suite, sdir, ctx)
                result.check_per_query()
                save_per_query(sdir / PER_QUERY_FILE, result.per_query)
                write_json(
                    sdir / SUITE_DONE,
                    {"suite": label, "config": suite.model_dump(mode="json"), **result.to_json(),
                     "seconds": time.perf_counter() - t0},
                )
                self.counts["evaluated"] += 1
                self._fire("suite_done", run, label)
            del model
        self._fire("run_done", run)
        return self.collect(run)

    def collect(self, run: RunSpec) -> dict[str, Any]:
        """The run's record for summary.json (only finished suites)."""
        rec = run.to_json() | {"dir": os.path.relpath(self.run_dir(run), self.out_dir), "results": {}}
        for suite in self.config.suites:
            marker = self.suite_dir(run, suite) / SUITE_DONE
            if marker.is_file():
                rec["results"][suite_label(suite)] = load_result(marker.parent, raw=False).metrics
        rec["complete"] = len(rec["results"]) == len(self.config.suites)
        if (self.run_dir(run) / MERGE_CHOICE).is_file():
            rec["merge_weight_chosen"] = read_json(self.run_dir(run) / MERGE_CHOICE)["weight"]
        return rec

    def run(self) -> dict[str, Any]:
        """Run everything not yet done, then aggregate and write summary.json and report.md."""
        t0 = time.perf_counter()
        progress = _progress(self.show_progress)
        with self.open_out_dir():  # marked complete only after summary.json and report.md
            self.write_marker()
            with progress:
                task = progress.add_task("experiment", total=len(self.runs))
                for run in self.runs:
                    progress.update(task, description=f"{run.label}" + (f" seed {run.seed}" if run.seed is not None else ""))
                    self.run_one(run)
                    progress.advance(task)
            return self.finish(wall_s=time.perf_counter() - t0)

    def finish(self, *, wall_s: float | None = None) -> dict[str, Any]:
        """Aggregate whatever is finished; write summary.json, report.md and plots."""
        summary = self.aggregate()
        summary["timing"] = {"wall_s": wall_s}
        summary["counts"] = dict(self.counts)
        summary = to_jsonable(summary)  # what summary.json holds (undefined numbers are None)
        write_json(self.out_dir / SUMMARY_FILE, summary)
        write_report(summary, self.out_dir)
        return summary

    def _per_query(self, run: RunSpec, suite: SuiteConfig) -> dict[str, PerQuery] | None:
        sdir = self.suite_dir(run, suite)
        return load_result(sdir, raw=False).per_query if (sdir / SUITE_DONE).is_file() else None

    # -- aggregation ----------------------------------------------------------------------------
    def aggregate(self) -> dict[str, Any]:
        with_base = len(self.config.base_models) > 1
        records = [self.collect(r) for r in self.runs]
        by_variant: dict[str, list[tuple[RunSpec, dict]]] = {}
        for run, rec in zip(self.runs, records):
            by_variant.setdefault(run.label, []).append((run, rec))
        aggregate: dict[str, dict[str, dict[str, dict]]] = {}
        for var in self.variants:
            label = var.label(with_base)
            aggregate[label] = {}
            for suite in self.config.suites:
                sl = suite_label(suite)
                values: dict[str, list[float]] = {}
                for _, rec in by_variant.get(label, []):
                    for m, v in rec["results"].get(sl, {}).items():
                        values.setdefault(m, []).append(v)
                aggregate[label][sl] = {m: mean_ci(vs).to_json() for m, vs in values.items()}
        suites_meta = {}
        for suite in self.config.suites:
            sl = suite_label(suite)
            meta = None
            for run in self.runs:
                marker = self.suite_dir(run, suite) / SUITE_DONE
                if marker.is_file():
                    m = load_result(marker.parent, raw=False)
                    meta = {"name": suite.name, "headline": m.headline, "per_language": m.per_language}
                    break
            suites_meta[sl] = meta or {"name": suite.name, "headline": [], "per_language": {}}
        variants_meta = [
            {"label": v.label(with_base), "base_model": v.base_model, "strategy": v.strategy, "alpha": v.alpha,
             "merge_weight": v.merge_weight, "seeds": [r.seed for r, _ in by_variant.get(v.label(with_base), [])]}
            for v in self.variants
        ]
        return {
            "schema": SCHEMA_VERSION,
            "name": self.config.name,
            "description": self.config.description,
            "config": self.config.model_dump(mode="json"),
            "variants": variants_meta,
            "suites": suites_meta,
            "runs": records,
            "aggregate": aggregate,
            "tests": paired_tests(self.config, self.variants, self.runs, self._per_query),
        }


def suite_dir_name(suite: SuiteConfig) -> str:
    """A suite's folder inside a run dir: its label made path-safe, plus a hash of its settings (so
    changing a suite's options never reuses results measured with the old ones)."""
    skey = config_hash(suite.model_dump(mode="json"), 8)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in suite_label(suite))
    return f"{safe}-{skey}"


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


def _progress(show: bool):
    return Progress(
        TextColumn("[bold]runs[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), disable=not show, transient=False,
    )


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
