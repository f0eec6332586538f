"""Training rows and group-aware batch samplers for hybrid (X-X-mono / X-X / X-Y) training.

`PairTable` (polyret.pair_table, re-exported here) expands parallel groups into rows (one per group x query
language x passage language);
its `to_dataset()` holds only the text columns the loss sees (`anchor`, `positive`, `negative_1..k`),
while group / language / source metadata stays in numpy arrays on the table.

The samplers plug into sentence-transformers' batch-sampler extension point:

    factory = make_batch_sampler_factory(table, "hybrid", alpha=0.5)
    args = SentenceTransformerTrainingArguments(..., batch_sampler=factory)
    trainer = SentenceTransformerTrainer(..., train_dataset=table.to_dataset(), args=args)

Batch types (one per batch / per DDP step):
- ``x-x-mono``: every row has query language == passage language == L, L drawn uniformly among the
  languages of the step's source that have at least one global batch of groups with an (L, L) row.
- ``x-x``: every row same-language, languages mixed; a group's (L, L) drawn uniformly among those it has.
- ``x-y``: every row has query language != passage language; a group's (q, p) drawn uniformly among
  its cross-lingual pairs. Groups with no cross-lingual pair (e.g. one language) are skipped (counted).
- ``hybrid`` strategy: per step, ``x-x-mono`` with probability alpha, else ``x-y``.

Group-aware: no two rows of a step (all ranks together) share a group, nor any passage text (positive
or negative) -- so neither a translation of your positive nor your positive itself, sitting in another
group that shares the paragraph, is ever one of your in-batch negatives.

Several training sets (the groups' `source`): each step draws one source with probability
proportional to ``n_s ** (1 / temperature)``, n_s = the source's groups usable by that step's batch
type (temperature > 1 flattens towards uniform).

Epoch: N = the number of groups usable by at least one of the strategy's batch types, G = batch_size
x num_replicas (the global batch). An epoch has floor(N / G) full steps, plus one short step of
floor((N mod G) / num_replicas) rows per rank when drop_last is False and that is >= 1. Groups are
drawn without replacement from a per-(source, batch type[, language]) shuffled queue that is refilled
with a fresh permutation when it runs dry, so a group is used about once per epoch per pool it is in.
Everything is a pure function of (seed, epoch): ``set_epoch`` (called by the trainer) selects it.

DDP: every decision for a step (batch type, source, language) and the rows of all ranks are drawn from
RNGs seeded only by (seed, epoch), identical on every rank. With ``rank=None`` (default) the sampler
yields, for every step, ``num_replicas`` consecutive batches (rank 0's share, rank 1's, ...): exactly what
accelerate's ``BatchSamplerShard`` (used by the sentence-transformers trainer under DDP, split_batches
False) expects -- rank r keeps batch k * num_replicas + r, i.e. its share of step k. With ``rank=r``
given, the sampler yields only rank r's share (for a plain DataLoader without accelerate).
``num_replicas`` defaults to the torch.distributed world size when it is initialised, else 1.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from polyret import runtime
from polyret.config import STRATEGIES
from polyret.errors import PolyretError
from polyret.pair_table import NEGATIVE_POLICIES, PairTable, text_key  # noqa: F401  (re-exported)

# The sentence-transformers base class gives us `set_epoch` and isinstance checks in its trainer.
from sentence_transformers.base.sampler import DefaultBatchSampler as _BaseSampler

logger = logging.getLogger("polyret.batches")

MONO, XX, XY = "x-x-mono", "x-x", "x-y"
BATCH_TYPES = (MONO, XX, XY)


# -------------------------------------------------------------------------------------- samplers
@dataclass(frozen=True)
class BatchInfo:
    """What one step (all ranks together) is made of."""

    step: int
    batch_type: str  # x-x-mono | x-x | x-y
    lang: str | None  # the language of an x-x-mono step, else None
    source: str
    size: int  # rows per rank in this step


def _world() -> tuple[int, int]:
    return runtime.world_size(), runtime.rank()


class ParallelGroupBatchSampler(_BaseSampler):
    """Base of the strategy samplers; subclasses set `batch_types` and override `_draw_type`."""

    strategy = ""
    batch_types: tuple[str, ...] = ()

    def __init__(
        self,
        table: PairTable,
        batch_size: int,
        drop_last: bool = False,
        *,
        seed: int = 0,
        temperature: float = 1.0,
        num_replicas: int | None = None,
        rank: int | None = None,
        dataset=None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PolyretError(f"batch size must be a positive integer, got {batch_size!r}")
        if temperature <= 0:
            raise PolyretError(f"temperature must be > 0, got {temperature}")
        world, _ = _world()
        num_replicas = world if num_replicas is None else num_replicas
        if num_replicas < 1 or (rank is not None and not 0 <= rank < num_replicas):
            raise PolyretError(f"bad DDP layout: rank {rank} of {num_replicas} replicas")
        super().__init__(
            dataset if dataset is not None else table, batch_size=batch_size, drop_last=drop_last, seed=seed
        )
        self.table = table
        self.seed = int(seed)
        self.temperature = float(temperature)
        self.num_replicas = int(num_replicas)
        self.rank = rank
        self.global_batch = batch_size * self.num_replicas
        self._build_pools()
        self._n_steps, self._last_size = self._epoch_shape()

    # -- pools -----------------------------------------------------------------------------------
    def _build_pools(self) -> None:
        self._xy_rows, self._xx_rows, self._mono_row = self._rows_by_kind()
        pools = self._group_pools()
        # A pool smaller than one global batch can never fill a step: leave it out.
        self.excluded_pools = {k: len(v) for k, v in pools.items() if len(v) < self.global_batch}
        self.pools = {k: v for k, v in pools.items() if len(v) >= self.global_batch}
        if self.excluded_pools:
            logger.info(
                "pools too small for a global batch of %d, not used: %s", self.global_batch, self.excluded_pools
            )
        self.skipped_groups = 0
        if XY in self.batch_types:
            self.skipped_groups = self.table.n_groups - len(self._xy_rows)
            if self.skipped_groups:
                logger.warning(
                    "%d of %d groups have no cross-lingual (query language != passage language) pair and are "
                    "skipped for x-y batches",
                    self.skipped_groups,
                    self.table.n_groups,
                )
        self._set_source_weights()
        self.usable_groups = len({g for gs in self.pools.values() for g in gs})

    def _rows_by_kind(self) -> tuple[dict[int, list[int]], dict[int, list[int]], dict[tuple[int, str], int]]:
        """Rows per group: cross-lingual ones, same-language ones, and the same-language row per language."""
        t = self.table
        same = t.query_lang == t.passage_lang
        xy_rows: dict[int, list[int]] = {}
        xx_rows: dict[int, list[int]] = {}
        mono_row: dict[tuple[int, str], int] = {}
        for r in range(len(t)):
            g = int(t.group_index[r])
            if same[r]:
                xx_rows.setdefault(g, []).append(r)
                mono_row[(g, t.query_lang[r])] = r
            else:
                xy_rows.setdefault(g, []).append(r)
        return xy_rows, xx_rows, mono_row

    def _group_pools(self) -> dict[tuple[str, str, str | None], list[int]]:
        """Pool key (batch_type, source, lang or None) -> sorted group indices, for the strategy's types."""
        sources = self.table.group_sources
        pools: dict[tuple[str, str, str | None], list[int]] = {}
        if XY in self.batch_types:
            for g in sorted(self._xy_rows):
                pools.setdefault((XY, sources[g], None), []).append(g)
        if XX in self.batch_types:
            for g in sorted(self._xx_rows):
                pools.setdefault((XX, sources[g], None), []).append(g)
        if MONO in self.batch_types:
            for g, lang in sorted(self._mono_row):
                pools.setdefault((MONO, sources[g], lang), []).append(g)
        return pools

    def _set_source_weights(self) -> None:
        """Per batch type: sources with a usable pool and their draw weights; mono languages per source."""
        self.type_sources: dict[str, tuple[list[str], np.ndarray]] = {}
        self.mono_langs: dict[str, list[str]] = {}
        for bt in self.batch_types:
            sizes: dict[str, set[int]] = {}
            for (kbt, src, lang), gs in self.pools.items():
                if kbt == bt:
                    sizes.setdefault(src, set()).update(gs)
                    if bt == MONO:
                        self.mono_langs.setdefault(src, []).append(lang)
            if not sizes:
                raise PolyretError(self._too_few_message(bt))
            srcs = sorted(sizes)
            w = np.array([len(sizes[s]) for s in srcs], dtype=float) ** (1.0 / self.temperature)
            self.type_sources[bt] = (srcs, w / w.sum())
        for langs in self.mono_langs.values():
            langs.sort()

    def _too_few_message(self, bt: str) -> str:
        what = {
            XY: "groups with a cross-lingual pair",
            XX: "groups with a same-language pair",
            MONO: "groups with a same-language pair in any one language",
        }[bt]
        biggest = max((n for (kbt, _, _), n in self.excluded_pools.items() if kbt == bt), default=0)
        return (
            f"too few training groups for {bt} batches: need at least {self.global_batch} {what} in one training "
            f"set (batch size {self.batch_size} x {self.num_replicas} replicas), the largest pool has {biggest}"
        )

    def _epoch_shape(self) -> tuple[int, int]:
        n = self.usable_groups
        full, rem = divmod(n, self.global_batch)
        last = rem // self.num_replicas
        if self.drop_last or last == 0:
            return full, 0
        return full + 1, last

    # -- plan ------------------------------------------------------------------------------------
    def _draw_type(self, rng: np.random.Generator) -> str:
        return self.batch_types[0]

    def batch_plan(self, epoch: int | None = None) -> list[BatchInfo]:
        """Per step of `epoch` (default: the current one): its batch type, language, source and size.

        Uses only an RNG seeded by (seed, epoch), so every rank computes the same plan.
        """
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, 0])
        plan = []
        for step in range(self._n_steps):
            bt = self._draw_type(rng)
            srcs, w = self.type_sources[bt]
            src = srcs[int(rng.choice(len(srcs), p=w))] if len(srcs) > 1 else srcs[0]
            lang = None
            if bt == MONO:
                langs = self.mono_langs[src]
                lang = langs[int(rng.integers(len(langs)))]
            size = self._last_size if (self._last_size and step == self._n_steps - 1) else self.batch_size
            plan.append(BatchInfo(step, bt, lang, src, size))
        return plan

    # -- rows ------------------------------------------------------------------------------------
    def _take_groups(self, key, n: int, queues: dict, rng: np.random.Generator) -> list[int]:
        """n groups from the pool's queue, pairwise free of shared group or passage text."""
        pool = self.pools[key]
        queue: deque = queues.get(key)
        if queue is None:
            queue = queues[key] = deque(pool[i] for i in rng.permutation(len(pool)))
        chosen: list[int] = []
        chosen_set: set[int] = set()
        used: set[int] = set()
        deferred: list[int] = []
        scanned, limit = 0, 2 * len(pool) + n
        keys = self.table.group_keys
        while len(chosen) < n:
            if not queue:
                queue.extend(pool[i] for i in rng.permutation(len(pool)))
            g = queue.popleft()
            scanned += 1
            if g in chosen_set or not keys[g].isdisjoint(used):
                deferred.append(g)
            else:
                chosen.append(g)
                chosen_set.add(g)
                used.update(keys[g])
            if scanned > limit:
                bt, src, lang = key
                raise PolyretError(
                    f"cannot form a {bt} batch of {n} rows from training set {src!r}"
                    + (f" language {lang}" if lang else "")
                    + f": only {len(chosen)} of its {len(pool)} groups are free of shared passages; lower the batch size"
                )
        queue.extendleft(reversed(deferred))  # deferred groups go first next time
        return chosen

    def _row_for(self, g: int, info: BatchInfo, rng: np.random.Generator) -> int:
        if info.batch_type == MONO:
            return self._mono_row[(g, info.lang)]
        rows = self._xy_rows[g] if info.batch_type == XY else self._xx_rows[g]
        return rows[int(rng.integers(len(rows)))] if len(rows) > 1 else rows[0]

    def iter_steps(self, epoch: int | None = None) -> Iterator[tuple[BatchInfo, list[list[int]]]]:
        """(step info, [rank 0 rows, rank 1 rows, ...]) for every step of the epoch."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, 1])
        queues: dict = {}
        for info in self.batch_plan(epoch):
            groups = self._take_groups(
                (info.batch_type, info.source, info.lang), info.size * self.num_replicas, queues, rng
            )
            rows = [self._row_for(g, info, rng) for g in groups]
            yield info, [rows[r * info.size : (r + 1) * info.size] for r in range(self.num_replicas)]

    def __iter__(self) -> Iterator[list[int]]:
        for _, shares in self.iter_steps():
            if self.rank is None:
                yield from shares
            else:
                yield shares[self.rank]

    def __len__(self) -> int:
        return self._n_steps * (self.num_replicas if self.rank is None else 1)

    @property
    def steps_per_epoch(self) -> int:
        return self._n_steps


class XXMonoBatchSampler(ParallelGroupBatchSampler):
    """Every row of a step in one language L (query and passage), L uniform among usable languages."""

    strategy = "x-x-mono"
    batch_types = (MONO,)


class XXBatchSampler(ParallelGroupBatchSampler):
    """Every row same-language; languages mixed within the batch."""

    strategy = "x-x"
    batch_types = (XX,)


class XYBatchSampler(ParallelGroupBatchSampler):
    """Every row cross-lingual; a group's (query, passage) languages uniform among those it has."""

    strategy = "x-y"
    batch_types = (XY,)


class HybridBatchSampler(ParallelGroupBatchSampler):
    """Per step: x-x-mono with probability alpha, else x-y (arXiv 2408.10536)."""

    strategy = "hybrid"
    batch_types = (MONO, XY)

    def __init__(self, table: PairTable, batch_size: int, drop_last: bool = False, *, alpha: float = 0.5, **kw) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise PolyretError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        # alpha 0 / 1 degenerate to pure x-y / x-x-mono: don't demand pools the plan never uses.
        if self.alpha == 0.0:
            self.batch_types = (XY,)
        elif self.alpha == 1.0:
            self.batch_types = (MONO,)
        super().__init__(table, batch_size, drop_last, **kw)

    def _draw_type(self, rng: np.random.Generator) -> str:
        u = rng.random()  # always drawn, so the plan's RNG stream does not depend on alpha's value
        if len(self.batch_types) == 1:
            return self.batch_types[0]
        return MONO if u < self.alpha else XY


SAMPLERS: dict[str, type[ParallelGroupBatchSampler]] = {
    "x-x-mono": XXMonoBatchSampler,
    "x-x": XXBatchSampler,
    "x-y": XYBatchSampler,
    "hybrid": HybridBatchSampler,
}


def make_batch_sampler(
    table: PairTable,
    strategy: str,
    batch_size: int,
    drop_last: bool = False,
    *,
    alpha: float = 0.5,
    temperature: float = 1.0,
    seed: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
    dataset=None,
) -> ParallelGroupBatchSampler:
    if strategy not in SAMPLERS:
        raise PolyretError(f"unknown batch strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    kw = dict(seed=seed, temperature=temperature, num_replicas=num_replicas, rank=rank, dataset=dataset)
    if strategy == "hybrid":
        return HybridBatchSampler(table, batch_size, drop_last, alpha=alpha, **kw)
    return SAMPLERS[strategy](table, batch_size, drop_last, **kw)


def make_batch_sampler_factory(
    table: PairTable,
    strategy: str,
    alpha: float = 0.5,
    temperature: float = 1.0,
    seed: int | None = None,
    *,
    num_replicas: int | None = None,
    rank: int | None = None,
    eval_table: PairTable | None = None,
) -> Callable[..., ParallelGroupBatchSampler]:
    """A callable for ``SentenceTransformerTrainingArguments(batch_sampler=...)``.

    The trainer calls it as ``factory(dataset, batch_size=, drop_last=, valid_label_columns=,
    generator=, seed=)`` for the train dataset and for the eval dataset; `dataset` must be
    ``table.to_dataset()`` (or ``eval_table.to_dataset()``). `seed=None` uses the trainer's seed.
    The torch `generator` is ignored: all randomness comes from (seed, epoch) so DDP ranks agree.
    """
    if strategy not in SAMPLERS:
        raise PolyretError(f"unknown batch strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")

    def factory(dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed: int = 0):
        use_seed = seed_override if seed_override is not None else (seed or 0)
        tables = [t for t in (table, eval_table) if t is not None and len(t) == len(dataset)]
        if len(tables) > 1:  # train and eval tables of equal length: the fingerprint decides
            tables = [t for t in tables if t.owns_dataset(dataset)]
        if len(tables) != 1:
            raise PolyretError(
                f"the batch sampler got a dataset of {len(dataset)} rows that is not the PairTable's "
                f"({len(table)} rows"
                + (f", eval table {len(eval_table)} rows" if eval_table is not None else "")
                + "); build the trainer's datasets with PairTable.to_dataset()"
            )
        tab = tables[0]
        return make_batch_sampler(
            tab,
            strategy,
            batch_size,
            drop_last,
            alpha=alpha,
            temperature=temperature,
            seed=use_seed,
            num_replicas=num_replicas,
            rank=rank,
            dataset=dataset,
        )

    seed_override = seed
    factory.strategy = strategy  # type: ignore[attr-defined]
    return factory


__all__ = [
    "BATCH_TYPES",
    "STRATEGIES",
    "BatchInfo",
    "HybridBatchSampler",
    "PairTable",
    "ParallelGroupBatchSampler",
    "XXBatchSampler",
    "XXMonoBatchSampler",
    "XYBatchSampler",
    "make_batch_sampler",
    "make_batch_sampler_factory",
    "text_key",
]
