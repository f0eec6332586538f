"""PairTable and the group-aware X-X-mono / X-X / X-Y / Hybrid batch samplers, on synthetic groups."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest

from polyret.batches import (
    HybridBatchSampler,
    PairTable,
    XXBatchSampler,
    XXMonoBatchSampler,
    XYBatchSampler,
    make_batch_sampler,
    make_batch_sampler_factory,
    text_key,
)
from polyret.data.groups import ParallelGroup
from polyret.errors import PolyretError

LANGS = ["ar", "de", "es", "hi", "vi", "zh"]


def synthetic_groups(
    n: int, seed: int = 0, sources: dict[str, float] | None = None, negatives: int = 2, share_paragraphs: bool = False
) -> list[ParallelGroup]:
    """Random groups: 1-3 query and 1-3 passage languages each; optional shared paragraphs
    (pairs of groups whose positive is the other's negative, like two questions on one paragraph)."""
    rnd = random.Random(seed)
    sources = sources or {"a": 1.0}
    names, weights = list(sources), list(sources.values())
    out = []
    for i in range(n):
        ql = rnd.sample(LANGS, rnd.randint(1, 3))
        pl = rnd.sample(LANGS, rnd.randint(1, 3))
        negs = {l: [f"neg {i} {l} {k}" for k in range(negatives)] for l in pl} if negatives else {}
        out.append(
            ParallelGroup(
                id=f"g{i}",
                queries={l: f"question {i} {l}" for l in ql},
                positives={l: f"passage {i} {l}" for l in pl},
                negatives=negs,
                source=rnd.choices(names, weights)[0],
            )
        )
    if share_paragraphs:  # group 2k's positive is a negative of group 2k+1 (same language)
        for a, b in zip(out[0::2], out[1::2]):
            lang = next(iter(a.positives))
            b.negatives.setdefault(lang, []).append(a.positives[lang])
    return out


@pytest.fixture(scope="module")
def groups():
    return synthetic_groups(1200, seed=1, sources={"big": 3.0, "small": 1.0}, share_paragraphs=True)


@pytest.fixture(scope="module")
def table(groups):
    return PairTable.from_groups(groups)


def step_batches(sampler):
    """[(info, [rows of rank 0, rows of rank 1, ...])] for the sampler's current epoch."""
    return list(sampler.iter_steps())


# ------------------------------------------------------------------------------------ PairTable
def test_pair_table_rows_and_metadata(groups, table):
    assert len(table) == sum(len(g.queries) * len(g.positives) for g in groups)
    assert table.stats["groups"] == len(groups)
    for r in range(0, len(table), 37):
        gi, q, p, src = table.row_info(r)
        g = groups[gi]
        assert table.anchors[r] == g.queries[q] and table.positives[r] == g.positives[p] and src == g.source
    # every (group, q, p) appears exactly once
    keys = Counter(zip(table.group_index.tolist(), table.query_lang, table.passage_lang))
    assert max(keys.values()) == 1
    same = (table.query_lang == table.passage_lang).sum()
    assert table.stats["rows_same_language"] == same
    assert table.stats["rows_cross_language"] == len(table) - same


def test_dataset_has_only_text_columns(table):
    ds = table.to_dataset()
    assert ds.column_names == ["anchor", "positive"]
    assert len(ds) == len(table) and ds[5]["anchor"] == table.anchors[5]


def test_hard_negatives_fill_and_drop():
    gs = synthetic_groups(300, seed=2, negatives=1)
    t = PairTable.from_groups(gs, n_negatives=3, seed=0)
    assert t.to_dataset().column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    positives_by_lang = {}
    for g in gs:
        for l, text in g.positives.items():
            positives_by_lang.setdefault(text, (g.id, l))
    for r in range(len(t)):
        gi, q, p, _ = t.row_info(r)
        negs = t.negatives[r]
        assert len(negs) == 3 and len(set(negs)) == 3
        assert negs[0] == gs[gi].negatives[p][0]  # own negative first
        for borrowed in negs[1:]:  # the rest: positives of OTHER groups, same passage language
            owner, lang = positives_by_lang[borrowed]
            assert owner != gs[gi].id and lang == p
            assert text_key(borrowed) in t.group_keys[gi]  # so the lender never shares its batch
    assert t.stats["negatives_filled"] == 2 * len(t)

    half = synthetic_groups(300, seed=2, negatives=1)
    for g in half[::2]:
        g.negatives = {}
    dropped = PairTable.from_groups(half, n_negatives=1, negatives_policy="drop")
    without = sum(len(g.queries) * len(g.positives) for g in half[::2])
    assert (
        dropped.stats["rows_dropped_negatives"] == without and len(dropped) + without == dropped.stats["rows"] + without
    )
    assert set(dropped.group_index.tolist()) == set(range(1, 300, 2))
    with pytest.raises(PolyretError, match="no training rows left"):
        PairTable.from_groups(synthetic_groups(20, negatives=1), n_negatives=2, negatives_policy="drop")


def test_pair_table_bad_input():
    gs = synthetic_groups(5)
    with pytest.raises(PolyretError, match="duplicate group id 'g0'"):
        PairTable.from_groups(gs + [gs[0]])
    with pytest.raises(PolyretError, match="no training groups"):
        PairTable.from_groups([])
    with pytest.raises(PolyretError, match="negatives_policy"):
        PairTable.from_groups(gs, n_negatives=1, negatives_policy="cycle")


# ------------------------------------------------------------------------------ batch properties
def assert_group_aware(table, rows):
    gids = [int(table.group_index[r]) for r in rows]
    assert len(set(gids)) == len(gids), "two rows of one step share a group"
    seen: set[int] = set()
    for g in set(gids):
        assert table.group_keys[g].isdisjoint(seen), "two groups of one step share a passage text"
        seen |= table.group_keys[g]


@pytest.mark.parametrize("strategy", ["x-x-mono", "x-x", "x-y", "hybrid"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_every_batch_obeys_its_type(table, strategy, replicas):
    s = make_batch_sampler(table, strategy, 16, seed=3, alpha=0.4, num_replicas=replicas)
    types = Counter()
    for info, shares in step_batches(s):
        assert len(shares) == replicas and all(len(sh) == info.size for sh in shares)
        rows = [r for sh in shares for r in sh]
        assert_group_aware(table, rows)
        q, p, src = table.query_lang[rows], table.passage_lang[rows], table.source[rows]
        assert set(src) == {info.source}
        types[info.batch_type] += 1
        if info.batch_type == "x-x-mono":
            assert set(q) == set(p) == {info.lang}
        elif info.batch_type == "x-x":
            assert (q == p).all() and info.lang is None
        else:
            assert (q != p).all() and info.batch_type == "x-y"
    expected = {"x-x-mono": {"x-x-mono"}, "x-x": {"x-x"}, "x-y": {"x-y"}, "hybrid": {"x-x-mono", "x-y"}}[strategy]
    assert set(types) == expected


def test_x_x_batches_mix_languages(table):
    s = XXBatchSampler(table, 16, seed=0)
    n_langs = [len(set(table.query_lang[sh[0]])) for _, sh in step_batches(s)]
    assert max(n_langs) >= 3


def test_hybrid_alpha_and_mono_language_uniform(table):
    s = HybridBatchSampler(table, 8, alpha=0.3, seed=11)
    plans = [i for e in range(8) for i in s.batch_plan(e)]
    mono = [i for i in plans if i.batch_type == "x-x-mono"]
    share = len(mono) / len(plans)
    n = len(plans)
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5, share
    # language uniform among the source's usable languages: each within 5 sigma of its share
    for src in s.mono_langs:
        langs = [i.lang for i in mono if i.source == src]
        k = len(s.mono_langs[src])
        for lang in s.mono_langs[src]:
            c = langs.count(lang)
            assert abs(c - len(langs) / k) < 5 * (len(langs) * (1 / k) * (1 - 1 / k)) ** 0.5 + 1
    assert HybridBatchSampler(table, 8, alpha=0.0).batch_plan(0)[0].batch_type == "x-y"
    assert {i.batch_type for i in HybridBatchSampler(table, 8, alpha=1.0).batch_plan(0)} == {"x-x-mono"}
    with pytest.raises(PolyretError, match="alpha"):
        HybridBatchSampler(table, 8, alpha=1.5)


def test_mono_language_needs_enough_groups():
    # 'ar' has only 5 groups with an (ar, ar) row: too few for a batch of 8, so never drawn.
    gs = [ParallelGroup(id=f"d{i}", queries={"de": f"q{i}"}, positives={"de": f"p{i}"}) for i in range(40)]
    gs += [ParallelGroup(id=f"a{i}", queries={"ar": f"qa{i}"}, positives={"ar": f"pa{i}"}) for i in range(5)]
    s = XXMonoBatchSampler(PairTable.from_groups(gs), 8)
    assert s.mono_langs == {"default": ["de"]}
    assert s.excluded_pools == {("x-x-mono", "default", "ar"): 5}
    assert {i.lang for i in s.batch_plan(0)} == {"de"} and len(s) == 40 // 8


def test_x_y_pair_uniform_within_group():
    g = ParallelGroup(
        id="multi", queries={l: f"q {l}" for l in ["de", "es", "vi"]}, positives={l: f"p {l}" for l in ["de", "es"]}
    )
    others = [ParallelGroup(id=f"o{i}", queries={"ar": f"qo{i}"}, positives={"de": f"po{i}"}) for i in range(3)]
    t = PairTable.from_groups([g] + others)
    s = XYBatchSampler(t, 4, seed=5)
    counts = Counter()
    for e in range(600):
        s.set_epoch(e)
        for batch in s:
            for r in batch:
                if t.group_index[r] == 0:
                    counts[(t.query_lang[r], t.passage_lang[r])] += 1
    # cross-lingual pairs of the group: (de,es) (es,de) (vi,de) (vi,es) -- each ~1/4
    assert set(counts) == {("de", "es"), ("es", "de"), ("vi", "de"), ("vi", "es")}
    assert all(abs(c - 150) < 5 * (600 * 0.25 * 0.75) ** 0.5 for c in counts.values()), counts


def test_sources_drawn_in_proportion_with_temperature(table):
    sizes = Counter(table.group_sources)
    s1 = XYBatchSampler(table, 4, seed=0)
    plans = [i.source for e in range(6) for i in s1.batch_plan(e)]
    share = plans.count("big") / len(plans)
    srcs, w = s1.type_sources["x-y"]
    assert abs(w[srcs.index("big")] - sizes["big"] / len(table.group_ids)) < 0.02  # ~all groups have x-y rows
    assert abs(share - w[srcs.index("big")]) < 4 * (0.25 * 0.75 / len(plans)) ** 0.5
    flat = XYBatchSampler(table, 4, seed=0, temperature=1000.0)
    plans = [i.source for e in range(6) for i in flat.batch_plan(e)]
    assert abs(plans.count("big") / len(plans) - 0.5) < 4 * (0.25 / len(plans)) ** 0.5


# ----------------------------------------------------------------------- determinism and length
def test_deterministic_for_seed_and_epoch(table):
    a = XYBatchSampler(table, 16, seed=7)
    b = XYBatchSampler(table, 16, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(XYBatchSampler(table, 16, seed=8)) != list(b)
    assert a.batch_plan(1) == b.batch_plan(1)


@pytest.mark.parametrize("strategy", ["x-x-mono", "x-y", "hybrid"])
@pytest.mark.parametrize("batch_size,replicas,drop_last", [(16, 1, False), (16, 1, True), (7, 2, False), (7, 3, True)])
def test_exact_len_and_epoch_definition(table, strategy, batch_size, replicas, drop_last):
    s = make_batch_sampler(table, strategy, batch_size, drop_last, num_replicas=replicas, seed=1)
    batches = list(s)
    assert len(s) == len(batches) == s.steps_per_epoch * replicas
    full, rem = divmod(s.usable_groups, batch_size * replicas)
    last = rem // replicas
    assert s.steps_per_epoch == full + (1 if (last and not drop_last) else 0)
    sizes = [len(b) for b in batches]
    if drop_last or not last:
        assert set(sizes) == {batch_size}
    else:
        assert sizes[-replicas:] == [last] * replicas and set(sizes[:-replicas]) == {batch_size}


@pytest.mark.parametrize("strategy", ["x-y", "x-x"])
def test_one_source_epoch_uses_each_group_once(strategy):
    t = PairTable.from_groups(synthetic_groups(500, seed=6, negatives=0))
    s = make_batch_sampler(t, strategy, 16, seed=2)
    uses = Counter(int(t.group_index[r]) for b in s for r in b)
    assert max(uses.values()) == 1 and sum(uses.values()) == s.usable_groups


def test_batch_plan_matches_iteration(table):
    s = HybridBatchSampler(table, 8, alpha=0.5, seed=4, num_replicas=2)
    s.set_epoch(3)
    batches = list(s)
    plan = s.batch_plan(3)
    assert len(batches) == 2 * len(plan)
    for k, info in enumerate(plan):
        for rows in batches[2 * k : 2 * k + 2]:
            pairs = set(zip(table.query_lang[rows], table.passage_lang[rows]))
            if info.batch_type == "x-x-mono":
                assert pairs == {(info.lang, info.lang)}
            else:
                assert all(q != p for q, p in pairs)


# ----------------------------------------------------------------------------------------- DDP
@pytest.mark.parametrize("batch_size", [8, 7])
def test_ddp_ranks_share_type_and_split_rows(table, batch_size):
    """rank=None yields step-major [rank0, rank1] batches; accelerate's BatchSamplerShard (what the
    sentence-transformers trainer wraps samplers in under DDP) hands rank r exactly our rank-r share."""
    from accelerate.data_loader import BatchSamplerShard

    full = HybridBatchSampler(table, batch_size, alpha=0.5, seed=9, num_replicas=2)
    full.set_epoch(2)
    per_rank = []
    for rank in range(2):
        mine = HybridBatchSampler(table, batch_size, alpha=0.5, seed=9, num_replicas=2, rank=rank)
        mine.set_epoch(2)
        shard = BatchSamplerShard(full, num_processes=2, process_index=rank, even_batches=False)
        got = list(shard)
        assert got == list(mine) and len(shard) == len(mine) == len(got)
        per_rank.append(got)
    plan = full.batch_plan(2)
    assert len(per_rank[0]) == len(plan) and [len(b) for b in per_rank[1]] == [i.size for i in plan]
    for info, b0, b1 in zip(plan, *per_rank):
        assert not set(table.group_index[b0]) & set(table.group_index[b1])  # disjoint groups across ranks
        for rows in (b0, b1):
            langs = set(zip(table.query_lang[rows], table.passage_lang[rows]))
            if info.batch_type == "x-x-mono":
                assert langs == {(info.lang, info.lang)}
            else:
                assert all(q != p for q, p in langs)


def test_num_replicas_read_from_torch_distributed(table, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    s = XYBatchSampler(table, 4)
    assert s.num_replicas == 3 and s.rank is None and len(s) == 3 * s.steps_per_epoch


# ------------------------------------------------------------------------------------ bad input
def test_single_language_groups_skipped_for_x_y(caplog):
    gs = synthetic_groups(60, seed=3)
    mono = [
        ParallelGroup(id=f"m{i}", queries={"de": f"mq{i}"}, positives={"de": f"mp{i}"}, source="a") for i in range(7)
    ]
    t = PairTable.from_groups(gs + mono)
    with caplog.at_level(logging.WARNING, logger="polyret.batches"):
        s = XYBatchSampler(t, 4)
    expected = t.stats["groups_without_cross_language_pair"]
    assert s.skipped_groups == expected >= 7
    assert f"{expected} of {len(gs) + 7} groups have no cross-lingual" in caplog.text
    used = {int(t.group_index[r]) for b in s for r in b}
    assert not used & set(range(len(gs), len(gs) + 7))


def test_too_few_groups_is_a_clear_error():
    t = PairTable.from_groups(synthetic_groups(20, seed=4))
    with pytest.raises(PolyretError, match=r"too few training groups for x-y batches: need at least 64"):
        XYBatchSampler(t, 32, num_replicas=2)
    with pytest.raises(PolyretError, match="unknown batch strategy"):
        make_batch_sampler(t, "x-z", 4)
    with pytest.raises(PolyretError, match="batch size"):
        XYBatchSampler(t, 0)


def test_batch_impossible_when_all_groups_share_passages():
    # Every group's negative is the same text: no two groups may share a batch.
    gs = [
        ParallelGroup(id=f"g{i}", queries={"de": f"q{i}"}, positives={"es": f"p{i}"}, negatives={"es": ["shared"]})
        for i in range(10)
    ]
    s = XYBatchSampler(PairTable.from_groups(gs), 2)
    with pytest.raises(PolyretError, match="free of shared passages"):
        list(s)


# ------------------------------------------------------------------ sentence-transformers hook
def test_factory_matches_sentence_transformers_signature(table):
    import inspect

    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.base.trainer import BaseTrainer

    params = list(inspect.signature(BaseTrainer.get_batch_sampler).parameters)[2:]
    assert params == ["batch_size", "drop_last", "valid_label_columns", "generator", "seed"]
    val = PairTable.from_groups(synthetic_groups(200, seed=9))
    factory = make_batch_sampler_factory(table, "hybrid", alpha=0.5, eval_table=val)
    ds, val_ds = table.to_dataset(), val.to_dataset()
    kw = dict(batch_size=8, drop_last=False, valid_label_columns=["label"], generator=None)
    s = factory(ds, seed=42, **kw)
    assert isinstance(s, DefaultBatchSampler) and s.seed == 42 and s.table is table
    assert factory(val_ds, seed=42, **kw).table is val
    assert make_batch_sampler_factory(table, "x-y", seed=5)(ds, seed=42, **kw).seed == 5
    with pytest.raises(PolyretError, match="not the PairTable's"):
        factory(ds.select(range(10)), seed=0, **kw)


def test_trainer_dataloader_uses_our_batches(table, tmp_path, tiny_model):
    """The sampler through SentenceTransformerTrainer's own dataloader: same batches, text columns only."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    ds = table.to_dataset()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        seed=3,
        report_to="none",
        batch_sampler=make_batch_sampler_factory(table, "x-y"),
    )
    trainer = SentenceTransformerTrainer(
        model=tiny_model, args=args, train_dataset=ds, loss=MultipleNegativesRankingLoss(tiny_model)
    )
    loader = trainer.get_train_dataloader()
    expected = XYBatchSampler(table, 8, seed=3)
    first = next(iter(expected))
    batch = next(iter(loader))
    assert len(loader) == len(expected)
    assert len(first) == 8 and not any("lang" in k or "group" in k or "source" in k for k in batch)
    # the collator tokenised exactly our first batch's anchors and positives, in order
    decode = lambda ids: tiny_model.tokenizer.batch_decode(ids, skip_special_tokens=True)  # noqa: E731
    assert decode(batch["anchor_input_ids"]) == [table.anchors[r] for r in first]
    assert decode(batch["positive_input_ids"]) == [table.positives[r] for r in first]


def test_random_configurations_keep_every_invariant():
    """Property sweep: random table sizes, sources, strategies, batch sizes, replicas and drop_last."""
    rnd = random.Random(123)
    checked = 0
    for trial in range(25):
        n = rnd.randint(40, 400)
        gs = synthetic_groups(
            n,
            seed=trial,
            sources={"a": 1.0, "b": rnd.random() + 0.1},
            negatives=rnd.randint(0, 2),
            share_paragraphs=rnd.random() < 0.5,
        )
        t = PairTable.from_groups(gs, n_negatives=rnd.randint(0, 1))
        strategy = rnd.choice(["x-x-mono", "x-x", "x-y", "hybrid"])
        bs, replicas, drop_last = rnd.randint(1, 6), rnd.randint(1, 3), rnd.random() < 0.5
        try:
            s = make_batch_sampler(
                t,
                strategy,
                bs,
                drop_last,
                num_replicas=replicas,
                seed=trial,
                alpha=rnd.random(),
                temperature=rnd.choice([0.5, 1.0, 3.0]),
            )
            steps = list(s.iter_steps())
        except PolyretError as e:  # only the documented "too few" / "cannot form" cases may stop it
            assert "too few training groups" in str(e) or "free of shared passages" in str(e)
            continue
        assert len(steps) == s.steps_per_epoch and len(s) == len(steps) * replicas
        for info, shares in steps:
            rows = [r for sh in shares for r in sh]
            assert len(rows) == info.size * replicas and (info.size == bs or info.step == len(steps) - 1)
            assert_group_aware(t, rows)
            q, p = t.query_lang[rows], t.passage_lang[rows]
            assert set(t.source[rows]) == {info.source}
            if info.batch_type == "x-x-mono":
                assert set(q) == set(p) == {info.lang}
            elif info.batch_type == "x-x":
                assert (q == p).all()
            else:
                assert (q != p).all()
        checked += 1
    assert checked >= 15


def test_mono_language_drawn_uniformly_from_very_unequal_pools():
    """X-X-mono draws the batch language uniformly among usable languages, not by pool size: with
    pools of 1000 / 40 / 16 groups a size-weighted draw would give ~95% 'de'. A chi-square
    goodness-of-fit test must accept uniform and reject size-proportional."""
    from scipy.stats import chisquare

    sizes = {"de": 1000, "es": 40, "ar": 16}
    gs = [
        ParallelGroup(id=f"{l}{i}", queries={l: f"q {l} {i}"}, positives={l: f"p {l} {i}"})
        for l, n in sizes.items()
        for i in range(n)
    ]
    s = XXMonoBatchSampler(PairTable.from_groups(gs), 8, seed=3)
    assert sorted(s.mono_langs["default"]) == sorted(sizes)
    draws = Counter(i.lang for e in range(6) for i in s.batch_plan(e))
    n = sum(draws.values())
    observed = [draws[l] for l in sizes]
    assert n > 700
    assert chisquare(observed).pvalue > 1e-3, draws  # uniform: not rejected
    by_size = [n * v / sum(sizes.values()) for v in sizes.values()]
    assert chisquare(observed, by_size).pvalue < 1e-12, draws  # size-proportional: rejected
