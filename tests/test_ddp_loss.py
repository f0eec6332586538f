"""In-batch negatives across ranks and GradCache, checked against one process on the whole batch.

- 2 CPU processes (torchrun, gloo), each holding half of a global batch, with the loss's
  gather_across_devices: the mean loss and the DDP-averaged gradients equal the single-process loss
  and gradients on the global batch (without the gather, each rank's negatives would be half the batch
  and the loss would differ: checked too).
- CachedMultipleNegativesRankingLoss (mini_batch_size): same loss and gradients as the uncached loss.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_loss_worker import ROWS, loss_and_grads  # noqa: E402

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp-loss") / "tiny"
    tiny_model.save(str(d))
    return d


def _single(model_dir, *, mini_batch_size=None, rows=ROWS):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    return loss_and_grads(model, rows, gather=False, mini_batch_size=mini_batch_size)


def _assert_same(loss_a, grads_a, loss_b, grads_b):
    assert float(loss_a) == pytest.approx(float(loss_b), rel=1e-5, abs=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        # fp32 summation order differs (padding per mini-batch, gathered concatenation): compare at the
        # scale of each gradient tensor; measured differences are <= 2e-5 of it, a wrong loss is O(1).
        diff = (grads_a[name] - grads_b[name]).abs().max().item()
        scale = grads_b[name].abs().max().item()
        assert diff <= 1e-4 * scale + 1e-9, f"{name}: max |diff| {diff:.3g} at gradient scale {scale:.3g}"


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
@pytest.mark.parametrize("mini", ["none", "2"])
def test_two_ranks_with_gather_equal_one_process_on_the_global_batch(model_dir, tmp_path, mini):
    out = tmp_path / "rank0.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(Path(__file__).parent / "ddp_loss_worker.py"),
         str(model_dir), str(out), mini],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out)
    assert got["world"] == 2
    loss, grads = _single(model_dir)
    _assert_same(got["loss"], got["grads"], loss, grads)
    # Without the gather each rank only sees its own 4 rows: a different (smaller-pool) loss.
    half_losses = [_single(model_dir, rows=ROWS[:4])[0], _single(model_dir, rows=ROWS[4:])[0]]
    assert abs(float(sum(half_losses)) / 2 - float(loss)) > 1e-3


@pytest.mark.parametrize("mini_batch_size", [1, 3])
def test_gradcache_loss_and_gradients_equal_the_uncached_loss(model_dir, mini_batch_size):
    loss, grads = _single(model_dir)
    cached_loss, cached_grads = _single(model_dir, mini_batch_size=mini_batch_size)
    _assert_same(cached_loss, cached_grads, loss, grads)


def test_gradcache_is_selected_by_mini_batch_size_and_rejected_for_eq1(tiny_model):
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    from polyret.config import config_from_dict
    from polyret.errors import PolyretError
    from polyret.losses import build_loss

    loss = build_loss(tiny_model, "in-batch", 0.05, symmetric=True, mini_batch_size=16, gather_across_devices=True)
    assert isinstance(loss, CachedMultipleNegativesRankingLoss)
    assert loss.mini_batch_size == 16 and loss.gather_across_devices and loss.scale == pytest.approx(20.0)
    assert loss.directions == ("query_to_doc", "doc_to_query")
    with pytest.raises(PolyretError, match="works with loss 'in-batch' only"):
        build_loss(None, "eq1", 0.05, mini_batch_size=4)
    with pytest.raises(PolyretError, match="key 'mini_batch_size'|mini_batch_size \\(GradCache\\) works"):
        config_from_dict({"loss": "eq1", "n_negatives": 1, "negatives": "same-paragraph", "mini_batch_size": 4})


def _teacher_anchored_loss_and_grads(model_dir, mini_batch_size, symmetric):
    """(loss, grads) of the in-batch loss + 2 × teacher term: a moved student anchored to the base model."""
    from sentence_transformers import SentenceTransformer

    from polyret.losses import CachedTeacherAnchoredLoss, TeacherAnchoredLoss, build_loss, teacher_anchored

    teacher = SentenceTransformer(str(model_dir), device="cpu")
    student = SentenceTransformer(str(model_dir), device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():  # move the student away from the teacher, so the teacher term has a gradient
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    student.eval()
    contrastive = build_loss(student, "in-batch", 0.05, symmetric=symmetric, mini_batch_size=mini_batch_size)
    loss_fn = teacher_anchored(student, contrastive, teacher, 2.0)
    expected = CachedTeacherAnchoredLoss if mini_batch_size else TeacherAnchoredLoss
    assert type(loss_fn) is expected
    features = [student.tokenize([r[c] for r in ROWS]) for c in range(3)]
    loss = loss_fn(features, None)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in student.named_parameters() if p.grad is not None}
    with torch.no_grad():  # evaluation (no gradients): the cached loss returns the same value
        assert float(loss_fn([student.tokenize([r[c] for r in ROWS]) for c in range(3)], None)) == pytest.approx(
            float(loss), rel=1e-5)
    without_teacher = contrastive([student.tokenize([r[c] for r in ROWS]) for c in range(3)], None)
    return loss.detach(), grads, float(without_teacher)


@pytest.mark.parametrize("mini_batch_size,symmetric", [(1, False), (3, False), (3, True)])
def test_gradcache_with_the_teacher_term_equals_the_uncached_teacher_anchored_loss(model_dir, mini_batch_size, symmetric):
    loss, grads, contrastive_only = _teacher_anchored_loss_and_grads(model_dir, None, symmetric)
    assert float(loss) - contrastive_only > 1e-3, "the teacher term must contribute, or the test proves nothing"
    cached_loss, cached_grads, _ = _teacher_anchored_loss_and_grads(model_dir, mini_batch_size, symmetric)
    _assert_same(cached_loss, cached_grads, loss, grads)
