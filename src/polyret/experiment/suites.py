"""Evaluation suites of an experiment: a registry (`SUITES`, name -> callable) of thin adapters.

An adapter resolves the suite's data directory and calls the benchmark's evaluator, which returns an
`EvalResult` with its own per-query values; an adapter computes no metric. Adding a benchmark is one
evaluator and one line in `SUITES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyret.config import load_train_config
from polyret.data.lareqa import LareqaDataset, every_nth_paragraph, first_paragraphs, load_lareqa
from polyret.errors import PolyretError
from polyret.evaluate.beir import evaluate_beir
from polyret.evaluate.lareqa_eval import evaluate_lareqa
from polyret.evaluate.result import EvalResult
from polyret.evaluate.tatoeba import evaluate_tatoeba
from polyret.evaluate.xnli import evaluate_xnli
from polyret.experiment.config import SuiteConfig, suite_label
from polyret.paths import data_path
from polyret.train_prepare import heldout_split


@dataclass
class SuiteContext:
    config_dir: Path
    show_progress: bool = True


SuiteFn = Callable[[Any, SuiteConfig, Path, SuiteContext], EvalResult]


def resolve_data_dir(spec: str | None, default: str, ctx: SuiteContext, suite: str) -> Path:
    """Absolute path; else relative to the experiment file's dir if it exists there; else the data dir."""
    rel = spec or default
    p = Path(rel).expanduser()
    if p.is_absolute():
        if not p.exists():
            raise PolyretError(f"suite {suite}: data dir {p} does not exist")
        return p
    if (ctx.config_dir / p).exists():
        return ctx.config_dir / p
    try:
        return data_path(*p.parts)
    except PolyretError as e:
        raise PolyretError(f"suite {suite}: {e}") from None


def _options(suite: SuiteConfig, ctx: SuiteContext) -> dict[str, Any]:
    opts = dict(suite.options)
    opts.setdefault("show_progress", ctx.show_progress)
    return opts


def lareqa_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> EvalResult:
    """LAReQA; options `max_paragraphs` (first N per language) and `every_nth_paragraph` (the demo's
    11-way parallel subset) shrink the pool, the rest go to `evaluate_lareqa`."""
    data = resolve_data_dir(suite.data, "lareqa/xquad-r", ctx, suite_label(suite))
    dataset = load_lareqa(data, langs=suite.langs)
    opts = _options(suite, ctx)
    if (n := opts.pop("max_paragraphs", None)) is not None:
        dataset = first_paragraphs(dataset, int(n))
    if (n := opts.pop("every_nth_paragraph", None)) is not None:
        dataset = every_nth_paragraph(dataset, int(n))
    return evaluate_lareqa(model, dataset, out_dir=out_dir, overwrite=True, **opts)


def heldout_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> EvalResult:
    """The groups a training config holds out (`polyret.train_prepare.heldout_split`), scored as a LAReQA
    pool (`polyret.validation`): where recipes are chosen, never an evaluation set. `data` is the training
    config; `options.config_overrides` changes its keys (e.g. `validation_seed: 42`, so every seed and
    the base are scored on one pool); the other options go to `evaluate_lareqa`."""
    label = suite_label(suite)
    if not suite.data:
        raise PolyretError(f"suite {label}: give the training config whose held-out groups to score under `data`")
    opts = _options(suite, ctx)
    cfg = load_train_config(resolve_data_dir(suite.data, suite.data, ctx, label), opts.pop("config_overrides", {}))
    _, held = heldout_split(cfg)
    if not held:
        raise PolyretError(f"suite {label}: {suite.data} holds out no groups (validation_groups: 0)")
    pool = LareqaDataset.from_groups(held, name=f"held-out training groups ({len(held)}) of {Path(suite.data).name}")
    return evaluate_lareqa(model, pool, out_dir=out_dir, overwrite=True, **opts)


def xnli_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> EvalResult:
    data = resolve_data_dir(suite.data, "xnli", ctx, suite_label(suite))
    return evaluate_xnli(
        model,
        data,
        split=suite.split or "dev",
        langs=suite.langs,
        out_dir=out_dir,
        overwrite=True,
        **_options(suite, ctx),
    )


def tatoeba_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> EvalResult:
    data = resolve_data_dir(suite.data, "tatoeba", ctx, suite_label(suite))
    if not suite.langs:
        raise PolyretError(
            f"suite {suite_label(suite)}: list the Tatoeba languages under `langs` (e.g. [deu, swh, urd])"
        )
    return evaluate_tatoeba(model, data, suite.langs, out_dir=out_dir, overwrite=True, **_options(suite, ctx))


def beir_suite(model, suite: SuiteConfig, out_dir: Path, ctx: SuiteContext) -> EvalResult:
    if not suite.data:
        raise PolyretError(f"suite {suite_label(suite)}: give the BEIR data dir under `data`")
    data = resolve_data_dir(suite.data, suite.data, ctx, suite_label(suite))
    opts = _options(suite, ctx)
    if suite.split:
        opts["split"] = suite.split
    return evaluate_beir(model, data, out_dir=out_dir, overwrite=True, **opts)


SUITES: dict[str, SuiteFn] = {
    "lareqa": lareqa_suite,
    "heldout": heldout_suite,
    "xnli": xnli_suite,
    "tatoeba": tatoeba_suite,
    "beir": beir_suite,
}
