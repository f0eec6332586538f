"""The trainer's wiring, checked end to end on the tiny model (issue 14, "tests that can fail"):
the prompt each column gets, hard negatives reaching each loss, a short training that improves a
validation metric, and a run that crosses an epoch boundary (new batches per epoch, exact resume)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polyret.config import load_train_config
from polyret.data.groups import ParallelGroup, write_groups_jsonl
from polyret.train import train
from train_helpers import tiny_overrides

LANGS = ("de", "es", "zh")
TOPICS = "river mountain city harbour castle forest desert island valley glacier".split()


def topic_groups(n: int, seed: int = 0, negatives: bool = False) -> list[ParallelGroup]:
    """Group i: queries '<lang> Q i: <2 topic words>?' and passages '<lang> P i: <same words> ...';
    a negative is a passage on other words. A retrieval task an encoder can learn in a few steps."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.sample(TOPICS, 2)
        other = [w for w in TOPICS if w not in words][:2]
        out.append(
            ParallelGroup(
                id=f"g{i}",
                queries={l: f"{l} Q{i} {' '.join(words)}?" for l in LANGS},
                positives={l: f"{l} P{i} {' '.join(words)} {rng.choice(TOPICS)}." for l in LANGS},
                negatives={l: [f"{l} N{i} {' '.join(other)}."] for l in LANGS} if negatives else {},
                source="topics",
            )
        )
    return out


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("wiring") / "tiny"
    tiny_model.save(str(d))
    return d


def _record_texts(monkeypatch) -> list[str]:
    """Every text the tokenizer receives while the trainer's data collator builds a batch: what the
    model really reads, prompts included (recorded at the Hugging Face tokenizer, below every
    sentence-transformers layer; the model card's dataset statistics, also tokenized, are left out)."""
    from sentence_transformers.base.data_collator import BaseDataCollator
    from transformers import PreTrainedTokenizerBase

    seen: list[str] = []
    collating = [False]
    original_call, original_collate = PreTrainedTokenizerBase.__call__, BaseDataCollator.__call__

    def call(self, text=None, *a, **k):
        if collating[0]:
            items = text if isinstance(text, (list, tuple)) else [text]
            for t in items:
                if isinstance(t, str):
                    seen.append(t)
                elif isinstance(t, (list, tuple)):
                    seen.extend(x for x in t if isinstance(x, str))
        return original_call(self, text, *a, **k)

    def collate(self, features):
        collating[0] = True
        try:
            return original_collate(self, features)
        finally:
            collating[0] = False

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", call)
    monkeypatch.setattr(BaseDataCollator, "__call__", collate)
    return seen


@pytest.mark.parametrize("loss,teacher_weight", [("in-batch", 0.0), ("eq1", 0.0), ("in-batch", 0.5), ("eq1", 0.5)])
def test_prompts_per_column_and_hard_negatives_reach_each_loss(loss, teacher_weight, model_dir, tmp_path, monkeypatch):
    """Each contrastive loss, alone and inside the teacher-anchored loss (which embeds the columns
    itself and calls the contrastive loss on the embeddings), gets the negatives column."""
    import polyret.losses
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss

    data = tmp_path / "groups.jsonl"
    write_groups_jsonl(topic_groups(40, negatives=True), data)
    seen = _record_texts(monkeypatch)
    columns_per_call: list[int] = []
    teacher_columns: list[int] = []
    built = polyret.losses.build_loss

    def build_loss(*a, **k):
        module = built(*a, **k)
        compute = module.compute_loss_from_embeddings  # every path to the contrastive loss ends here

        def counting(embeddings, labels=None):
            columns_per_call.append(len(embeddings))
            return compute(embeddings, labels)

        module.compute_loss_from_embeddings = counting
        return module

    distill = EmbedDistillLoss.compute_loss_from_embeddings

    def counting_distill(self, embeddings, targets, *a, **k):
        teacher_columns.append(len(targets))
        return distill(self, embeddings, targets, *a, **k)

    monkeypatch.setattr(polyret.losses, "build_loss", build_loss)
    monkeypatch.setattr(EmbedDistillLoss, "compute_loss_from_embeddings", counting_distill)
    cfg = load_train_config(
        None,
        tiny_overrides(
            model_dir,
            data,
            steps=2,
            unit="sentence",
            negatives="same-paragraph",
            n_negatives=1,
            loss=loss,
            teacher_weight=teacher_weight,
            save_steps=2,
            eval_steps=2,
        ),
    )
    train(cfg, tmp_path / "run", show_progress=False)
    # anchor / positive / negative_1: three columns in every loss call (training and validation)
    assert columns_per_call and set(columns_per_call) == {3}
    # the teacher anchors every column, negatives included (and is only there when asked for)
    assert set(teacher_columns) == ({3} if teacher_weight else set())
    queries = [t for t in seen if " Q" in t]
    passages = [t for t in seen if " P" in t]
    negatives = [t for t in seen if " N" in t]
    assert queries and passages and negatives
    assert all(t.startswith("query: ") for t in queries), queries[:3]
    assert all(t.startswith("passage: ") for t in passages + negatives), (passages + negatives)[:3]
    # nothing else reaches the model (the prompt alone is tokenized too, for prompt-length pooling)
    assert all(t in ("query: ", "passage: ") for t in seen if not (" Q" in t or " P" in t or " N" in t)), seen[:5]


def _recall_at_1(model_dir: Path, groups: list[ParallelGroup]) -> float:
    """Cross-lingual R@1 over the held-out groups: de query -> es passage among all es passages."""
    from polyret.model import load_model

    m = load_model(str(model_dir))
    q = m.encode([g.queries["de"] for g in groups], prompt_name="query", normalize_embeddings=True)
    p = m.encode([g.positives["es"] for g in groups], prompt_name="passage", normalize_embeddings=True)
    return float(np.mean(np.argmax(q @ p.T, axis=1) == np.arange(len(groups))))


def test_short_training_improves_held_out_retrieval(model_dir, tmp_path):
    train_groups, held_out = topic_groups(160, seed=1), topic_groups(40, seed=2)
    held_out = [
        ParallelGroup(id=f"h{i}", queries=g.queries, positives=g.positives, source=g.source)
        for i, g in enumerate(held_out)
    ]
    data = tmp_path / "groups.jsonl"
    write_groups_jsonl(train_groups, data)
    before = _recall_at_1(model_dir, held_out)
    cfg = load_train_config(
        None,
        tiny_overrides(
            model_dir,
            data,
            steps=40,
            batch_size=16,
            lr=2e-3,
            strategy="x-y",
            validation_groups=16,
            eval_steps=20,
            save_steps=40,
        ),
    )
    final = train(cfg, tmp_path / "run", show_progress=False)
    after = _recall_at_1(final, held_out)
    # chance is 1/40; a random tiny encoder sits near it, a trained one must be clearly better
    assert after >= before + 0.15, (before, after)
    log = [json.loads(l) for l in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in log if "eval_loss" in r]
    assert evals[-1] < evals[0], evals


def test_epoch_boundary_new_batches_and_exact_resume(model_dir, tmp_path):
    """48 training groups in batches of 8: 6 steps per epoch; 14 steps cross two boundaries. The
    trainer must call set_epoch (the batches of epoch 2 are the sampler's plan for epoch 1, not a
    replay of epoch 0), and a resume from a checkpoint before the boundary ends at the same weights."""
    from polyret.batches import PairTable
    from polyret.train import _sampler_factory, split_validation

    data = tmp_path / "groups.jsonl"
    write_groups_jsonl(topic_groups(60, seed=3), data)
    over = tiny_overrides(
        model_dir, data, steps=14, batch_size=8, log_batches=True, save_steps=2, eval_steps=2, strategy="x-y"
    )
    cfg = load_train_config(None, over)
    a = tmp_path / "A"
    train(cfg, a, show_progress=False)
    log = [json.loads(l) for l in (a / "batch_log.rank0.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 15))

    # The sampler the run used, rebuilt: its plan per epoch names the groups of each step.
    from polyret.data.groups import read_groups_jsonl

    train_groups, _ = split_validation(read_groups_jsonl(data), cfg.validation_groups, cfg.seed)
    table = PairTable.from_groups(train_groups, n_negatives=0, seed=cfg.seed)
    sampler = _sampler_factory(table, cfg)(table.to_dataset(), batch_size=8, drop_last=False)
    per_epoch = len(sampler)
    assert per_epoch == 6
    expected = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for rows in sampler:
            expected.append(sorted(table.group_ids[table.row_info(r)[0]] for r in rows))
    got = [sorted(r["groups"]) for r in log]
    assert got == expected[:14]
    assert got[6:12] != got[0:6]  # epoch 1 is not a replay of epoch 0

    # resume from step 4 (epoch 0) across both boundaries
    b = tmp_path / "B"
    shutil.copytree(a, b)
    for name in ("model", "run.json", *[f"checkpoints/checkpoint-{s}" for s in range(6, 15, 2)]):
        p = b / name
        if p.exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    (b / ".polyret-output.json").write_text(json.dumps({"kind": "train", "complete": False}))
    train(cfg, b, resume=True, show_progress=False)
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_split_validation_keeps_held_out_passages_out_of_training():
    """A held-out group's passages (its answer sentence, its paragraph's other sentences) are never a
    training text: groups that share one are dropped from training, the rest kept."""
    from polyret.data.groups import ParallelGroup
    from polyret.train import split_validation

    groups = [
        ParallelGroup(f"g{i}", {"en": f"q{i}"}, {"en": f"s{i}", "de": f"d{i}"}, {"en": [f"n{i}"]}) for i in range(40)
    ]
    # g40 answers with g0's negative sentence, g41 with g1's German answer: siblings on a paragraph
    groups += [ParallelGroup("g40", {"en": "q40"}, {"en": "n0"}), ParallelGroup("g41", {"de": "q41"}, {"de": "d1"})]
    pairs = {"g0": "g40", "g40": "g0", "g1": "g41", "g41": "g1"}
    # a seed whose held-out set takes one side of a sibling pair (else there is nothing to drop)
    seed = next(s for s in range(50) if {g.id for g in split_validation(groups, 10, seed=s)[1]} & set(pairs))
    train, val = split_validation(groups, 10, seed=seed)
    assert len(val) == 10
    val_texts = {t for g in val for t in [*g.positives.values(), *[n for ns in g.negatives.values() for n in ns]]}
    train_texts = {t for g in train for t in [*g.positives.values(), *[n for ns in g.negatives.values() for n in ns]]}
    assert not val_texts & train_texts
    held = {g.id for g in val}
    dropped = {g.id for g in groups} - held - {g.id for g in train}
    assert dropped == {pairs[h] for h in held & set(pairs)} - held and dropped
    again, _ = split_validation(list(reversed(groups)), 10, seed=seed)
    assert [g.id for g in again] == [g.id for g in train]  # independent of input order
