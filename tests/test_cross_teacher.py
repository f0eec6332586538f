"""The cross-lingual teacher term (multilingual knowledge distillation, arXiv 2004.09813): values
against a numpy hand computation, and the contract of its inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from polyret.errors import PolyretError
from polyret.losses import TeacherAnchoredLoss, build_loss, teacher_anchored

ANCHORS = ["query: wo ist die Burg?", "query: where is the harbour?", "query: 森林在哪里?"]
POSITIVES = ["passage: the castle lies by the river.", "passage: der Hafen liegt im Norden.", "passage: 森林在山上。"]
ANCHORS_EN = ["query: where is the castle?", "query: where is the harbour?", "query: where is the forest?"]
POSITIVES_EN = [
    "passage: the castle lies by the river.",
    "passage: the harbour lies in the north.",
    "passage: the forest is on the hill.",
]
# which texts have an English source other than themselves: row 0's German query, row 1's German
# passage, row 2's Chinese query and passage
MASK = np.array([[1, 0], [0, 1], [1, 1]])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _embed(model, texts) -> np.ndarray:
    with torch.no_grad():
        return model(model.tokenize(texts))["sentence_embedding"].double().numpy()


@pytest.fixture(scope="module")
def moved(tiny_model):
    """(student moved by a fixed random step, frozen base as teacher): the teacher terms are not zero."""
    student, teacher = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    student.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return student, teacher


def _features(model):
    return [model.tokenize(t) for t in (ANCHORS, POSITIVES, ANCHORS_EN, POSITIVES_EN)]


@pytest.mark.parametrize("self_weight,cross_weight", [(2.0, 5.0), (0.0, 5.0)])
def test_value_equals_a_numpy_hand_computation(moved, self_weight, cross_weight):
    student, teacher = moved
    loss = teacher_anchored(
        student, build_loss(student, "in-batch", temperature=0.05), teacher, self_weight, cross_weight
    )
    with torch.no_grad():
        got = loss(_features(student), torch.tensor(MASK)).item()
    a, p = _unit(_embed(student, ANCHORS)), _unit(_embed(student, POSITIVES))
    ta, tp = _unit(_embed(teacher, ANCHORS)), _unit(_embed(teacher, POSITIVES))
    ea, ep = _unit(_embed(teacher, ANCHORS_EN)), _unit(_embed(teacher, POSITIVES_EN))
    logits = a @ p.T / 0.05  # InfoNCE over the batch's positives
    contrastive = np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits))
    self_term = np.mean([np.mean(1 - np.sum(a * ta, 1)), np.mean(1 - np.sum(p * tp, 1))])
    # the German query -> English query, the German passage -> English passage, the Chinese query and
    # passage -> theirs; summed, divided by all 6 texts
    cross = ((1 - a[0] @ ea[0]) + (1 - p[1] @ ep[1]) + (1 - a[2] @ ea[2]) + (1 - p[2] @ ep[2])) / 6
    assert cross > 1e-3  # the English sources are far enough for the check to mean something
    assert got == pytest.approx(contrastive + self_weight * self_term + cross_weight * cross, rel=1e-4)


def test_english_sources_that_no_row_needs_are_not_embedded_and_an_empty_mask_adds_nothing(moved):
    student, teacher = moved
    calls = []
    loss = TeacherAnchoredLoss(student, build_loss(student, "in-batch"), teacher, 1.0, 4.0)
    original = loss._teacher_embed
    loss._teacher_embed = lambda f: calls.append(int(f["input_ids"].shape[0])) or original(f)
    with torch.no_grad():
        full = loss(_features(student), torch.tensor(MASK)).item()
        calls.clear()
        none = loss(_features(student), torch.zeros(3, 2, dtype=torch.long)).item()
        plain = TeacherAnchoredLoss(student, build_loss(student, "in-batch"), teacher, 1.0)(
            _features(student)[:2]
        ).item()
    assert calls == [3, 3]  # the self term's two columns only: no English source was embedded
    assert none == pytest.approx(plain, rel=1e-6) and full > none + 1e-3


def test_missing_english_columns_or_mask_is_one_clear_error(moved):
    student, teacher = moved
    loss = teacher_anchored(student, build_loss(student, "in-batch"), teacher, 1.0, 4.0)
    with pytest.raises(PolyretError, match="to_dataset\\(english=True\\)"):
        loss(_features(student)[:2], None)
    with pytest.raises(PolyretError, match="to_dataset\\(english=True\\)"):
        loss(_features(student), torch.ones(3, 1, dtype=torch.long))
    with pytest.raises(PolyretError, match="one of them > 0"):
        teacher_anchored(student, build_loss(student, "in-batch"), teacher, 0.0, 0.0)


def test_pair_table_english_columns_and_bitext_groups_keep_only_their_cross_lingual_rows():
    from polyret.batches import PairTable
    from polyret.data.groups import ParallelGroup

    qa = ParallelGroup("qa", queries={"de": "de q", "en": "en q"}, positives={"en": "en p", "zh": "zh p"}, source="s")
    bitext = ParallelGroup(
        "bt", queries={"de": "Hallo.", "en": "Hello."}, positives={"de": "Hallo.", "en": "Hello."}, source="s"
    )
    no_english = ParallelGroup("ne", queries={"es": "es q"}, positives={"vi": "vi p"}, source="s")
    table = PairTable.from_groups([qa, bitext, no_english])
    cols = table.columns(english=True)
    rows = list(
        zip(cols["anchor"], cols["positive"], cols["anchor_en"], cols["positive_en"], map(tuple, cols["label"]))
    )
    assert rows == [
        ("de q", "en p", "en q", "en p", (1, 0)),  # the German question pulls toward the English one
        ("de q", "zh p", "en q", "en p", (1, 1)),
        ("en q", "en p", "en q", "en p", (0, 0)),  # English texts have no other English source
        ("en q", "zh p", "en q", "en p", (0, 1)),
        ("Hallo.", "Hello.", "Hello.", "Hello.", (1, 0)),  # a bitext: x -> en and en -> x, never x -> x
        ("Hello.", "Hallo.", "Hello.", "Hello.", (0, 1)),
        ("es q", "vi p", "es q", "vi p", (0, 0)),  # no English in the group: nothing to pull toward
    ]
    assert table.stats["rows_identical_skipped"] == 2
    assert list(table.columns()) == ["anchor", "positive"]  # the default dataset is unchanged


def test_training_feeds_the_cross_term_its_english_columns_and_mask(tiny_model, tmp_path, monkeypatch):
    import polyret.losses
    from polyret.config import load_train_config
    from polyret.data.groups import ParallelGroup, write_groups_jsonl
    from polyret.train import train
    from train_helpers import tiny_overrides

    langs = ("de", "en", "zh")
    groups = [
        ParallelGroup(
            f"g{i}",
            queries={l: f"{l} question {i}?" for l in langs},
            positives={l: f"{l} passage {i}." for l in langs},
            source="syn",
        )
        for i in range(40)
    ]
    write_groups_jsonl(groups, tmp_path / "g.jsonl")
    tiny_model.save(str(tmp_path / "tiny"))
    calls = []
    original = polyret.losses.cross_lingual_distance

    def recording(embeddings, targets, mask):
        calls.append(
            (len(embeddings), tuple(mask.shape), [None if t is None else len(t) for t in targets], mask.sum(0).tolist())
        )
        return original(embeddings, targets, mask)

    monkeypatch.setattr(polyret.losses, "cross_lingual_distance", recording)
    cfg = load_train_config(
        None,
        tiny_overrides(tmp_path / "tiny", tmp_path / "g.jsonl", steps=2, teacher_cross=5.0, save_steps=2, eval_steps=2),
    )
    train(cfg, tmp_path / "run", show_progress=False)
    assert calls and all(n == 2 and shape == (4, 2) for n, shape, _, _ in calls)
    # the teacher embedded exactly the masked rows of each English column
    assert all(sizes == [s or None for s in sums] for _, _, sizes, sums in calls)
    assert sum(sum(s) for *_, s in calls) > 0


def test_quick_is_quick_v2_plus_the_cross_term_and_tatoeba():
    from pathlib import Path

    from polyret.config import load_train_config

    root = Path(__file__).resolve().parents[1] / "configs"
    quick, distill = (load_train_config(root / name).model_dump() for name in ("quick-v2.yaml", "quick.yaml"))
    assert {k for k in quick if quick[k] != distill[k]} == {"data", "teacher_cross", "validation_sources"}
    assert distill["validation_sources"] == quick["data"]  # one held-out pool for both recipes
    assert (quick["teacher_cross"], distill["teacher_cross"]) == (0.0, 100.0)
    assert distill["data"] == [*quick["data"], "tatoeba-align"]
