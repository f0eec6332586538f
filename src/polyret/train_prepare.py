"""Everything a training run needs, read and checked before its first step (`prepare`).

The training data (files and `xnli-align`), the held-out split, the PairTables, datasets and the
sampler, and the inputs of the steps after training: the XNLI dev text a stored language correction
is fitted on. A missing input is one PolyretError here, before a model is loaded or a folder written;
a run never trains for an hour and then finds its correction data gone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyret.config import TrainConfig
from polyret.data.pairs import build_groups
from polyret.data.parallel import NAMED_SETS, xnli_parallel_groups
from polyret.errors import PolyretError
from polyret.paths import data_path, find_data_dir

XNLI_ALIGN = "xnli-align"  # a training-set name: XNLI dev's alignment side (polyret.data.parallel)
# Parallel groups the stored correction is fitted on: 200 premises x 2 sentences per language estimate
# a mean to well within the spread between languages, and keep the fit to ~12k short encodes.
CORRECTION_GROUPS = 200


def resolve_data_path(entry: str) -> Path:
    """A training-set entry -> an existing path: as given (absolute or cwd-relative), else in the data dir."""
    p = Path(entry).expanduser()
    if p.exists():
        return p
    if not p.is_absolute():
        root = find_data_dir(required=False)
        if root is not None and (root / entry).exists():
            return root / entry
        where = (
            f"the current directory or the data directory {root}"
            if root
            else "the current directory (no data directory found)"
        )
        raise PolyretError(f"training data {entry!r} not found in {where}")
    raise PolyretError(f"training data {entry!r} does not exist")


def load_training_groups(cfg: TrainConfig) -> list:
    """All parallel groups of all configured training sets (each keeps its `source` name)."""
    groups = []
    for entry in cfg.data:
        if entry in NAMED_SETS:  # xnli-align, tatoeba-align: alignment sides (polyret.data.parallel)
            groups.extend(NAMED_SETS[entry]())
            continue
        path = resolve_data_path(entry)
        part, _report = build_groups([path], unit=cfg.unit, negatives=cfg.negatives, answerless=cfg.answerless)
        if not part:
            raise PolyretError(f"{path}: no training groups found")
        groups.extend(part)
    return groups


def split_validation(groups: list, n_validation: int, seed: int, sources: list[str] | None = None) -> tuple[list, list]:
    """Hold out `n_validation` whole groups (never single pairs: a translation of a validation
    passage must not be trained on). Deterministic for a seed, independent of the input order.

    sources: draw the held-out groups from these training sets only (None = all). The draw sees only
    their groups, so a recipe that adds a training set holds out exactly what the one without it did,
    and the two are compared on one pool.

    A training group that shares a passage with a held-out group (another question on the same
    paragraph: its answer sentence, or the paragraph itself in the paragraph unit) is left out of
    training as well: otherwise the held-out pool scores a text the model was trained to retrieve,
    and hides the forgetting it is there to show."""
    if n_validation == 0:
        return list(groups), []
    keyed = sorted(groups, key=lambda g: (g.source, g.id))
    drawable = keyed
    if sources is not None:
        have = sorted({g.source for g in keyed})
        missing = [s for s in sources if s not in have]
        if missing:
            raise PolyretError(
                f"validation_sources: no training group comes from {missing[0]!r} (the sets are {', '.join(have)})"
            )
        drawable = [g for g in keyed if g.source in sources]
    if n_validation >= len(drawable):
        raise PolyretError(
            f"validation_groups={n_validation} leaves no training data ({len(drawable)} groups to hold out from)"
        )
    order = list(range(len(drawable)))
    random.Random(seed).shuffle(order)
    held = {id(drawable[i]) for i in order[:n_validation]}
    val = [g for g in drawable if id(g) in held]
    held_texts = set().union(*(g.passage_texts for g in val))
    train = [g for g in keyed if id(g) not in held and not (g.passage_texts & held_texts)]
    if not train:
        raise PolyretError(
            f"validation_groups={n_validation}: every other group shares a passage with a "
            f"held-out one ({len(groups)} groups in all); lower validation_groups"
        )
    return train, val


def heldout_split(cfg: TrainConfig, groups: list | None = None) -> tuple[list, list]:
    """(training groups, held-out groups) of a config: what `prepare` trains on and holds out, and
    the pool an experiment's `heldout` suite scores any model on."""
    seed = cfg.seed if cfg.validation_seed is None else cfg.validation_seed
    groups = load_training_groups(cfg) if groups is None else groups
    return split_validation(groups, cfg.validation_groups, seed, cfg.validation_sources)


class _PicklableSamplerFactory:
    """The trainer pickles its arguments into every checkpoint (training_args.bin); the sampler
    factory is a closure over the whole PairTable. This wrapper calls it unchanged and pickles as a
    short description instead (nothing reloads the factory from a checkpoint: resume rebuilds it)."""

    def __init__(self, factory, description: str) -> None:
        self._factory = factory
        self.description = description

    def __call__(self, *args, **kwargs):
        return self._factory(*args, **kwargs)

    def __reduce__(self):
        return (str, (self.description,))


def _sampler_factory(table, cfg: TrainConfig, eval_table=None):
    """Our group-aware sampler for ST's batch_sampler hook (serves the validation set too)."""
    from polyret.batches import make_batch_sampler_factory

    factory = make_batch_sampler_factory(
        table,
        cfg.strategy,
        alpha=cfg.alpha,
        temperature=cfg.dataset_temperature,
        seed=cfg.seed,
        eval_table=eval_table,
    )
    return _PicklableSamplerFactory(factory, f"polyret {cfg.strategy} sampler (alpha={cfg.alpha}, seed={cfg.seed})")


def _check_sampler(factory, dataset, batch_size: int, what: str) -> None:
    """Build the sampler once up front so 'too few groups' surfaces before any run dir is written."""
    try:
        factory(dataset, batch_size=batch_size, drop_last=False)
    except PolyretError as e:
        raise PolyretError(f"{what}: {e}") from None


def correction_groups(method: str) -> list:
    """The XNLI dev parallel groups a stored `method` correction is fitted on ([] for 'none'); a
    missing XNLI folder is an error now, not after training."""
    if method == "none":
        return []
    try:
        return xnli_parallel_groups(data_path("xnli"), side="align", max_groups=CORRECTION_GROUPS)
    except PolyretError as e:
        raise PolyretError(
            f"language_correction={method!r} is fitted on XNLI dev after training, but {e}; "
            "download XNLI (`polyret data download`) or set language_correction: none"
        ) from None


@dataclass
class Prepared:
    """A run's inputs, all read and checked: what `train` trains on and what its last steps use."""

    train_groups: list
    val_groups: list
    train_table: Any  # polyret.batches.PairTable
    train_ds: Any  # datasets.Dataset of the columns the loss sees
    val_table: Any | None
    val_ds: Any | None
    sampler_factory: Any
    correction_groups: list  # XNLI dev groups for the stored correction ([] without one)

    @property
    def validating(self) -> bool:
        return self.val_ds is not None


def prepare(cfg: TrainConfig, world: int = 1) -> Prepared:
    """Read the data, hold out the validation groups, build tables, datasets and the sampler, and
    check every input the steps after training need. Writes nothing."""
    from polyret.batches import PairTable

    # The final steps' inputs first: they are quick to check, and the training data can take a while to read.
    corr_groups = correction_groups(cfg.language_correction)
    train_groups, val_groups = heldout_split(cfg)
    negs = {"n_negatives": cfg.n_negatives, "negatives_language": cfg.negatives_language, "seed": cfg.seed}
    train_table = PairTable.from_groups(train_groups, **negs)
    train_ds = train_table.to_dataset(english=cfg.teacher_cross > 0)
    val_table = val_ds = None
    if val_groups:
        val_table = PairTable.from_groups(val_groups, **negs)
        val_ds = val_table.to_dataset(english=cfg.teacher_cross > 0)
    sampler_factory = _sampler_factory(train_table, cfg, eval_table=val_table)
    if world == 1:  # under DDP the sampler's global batch depends on the process group, built later
        _check_sampler(sampler_factory, train_ds, cfg.batch_size, "training data")
        if val_ds is not None:
            _check_sampler(
                sampler_factory,
                val_ds,
                cfg.batch_size,
                f"validation data ({len(val_groups)} held-out groups; raise validation_groups)",
            )
    return Prepared(train_groups, val_groups, train_table, train_ds, val_table, val_ds, sampler_factory, corr_groups)
