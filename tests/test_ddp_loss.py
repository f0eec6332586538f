"""In-batch negatives across ranks and GradCache, checked against one process on the whole batch.

- 2 CPU processes (torchrun, gloo), each holding half of a global batch, with the loss's
  gather_across_devices: the mean loss and the DDP-averaged gradients equal the single-process loss
  and gradients on the global batch (without the gather, each rank's negatives would be half the batch
  and the loss would differ: checked too).
- CachedMultipleNegativesRankingLoss (mini_batch_size): same loss and gradients as the uncached loss.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_loss_worker import ROWS, load_models, loss_and_grads  # noqa: E402

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp-loss") / "tiny"
    tiny_model.save(str(d))
    return d


def _single(model_dir, *, mini_batch_size=None, rows=slice(None), teacher=False, symmetric=False, cross=False):
    model, base = load_models(str(model_dir), teacher or cross)
    return loss_and_grads(
        model,
        ROWS[rows],
        gather=False,
        mini_batch_size=mini_batch_size,
        teacher=base,
        symmetric=symmetric,
        cross=rows if cross else None,
    )


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
# make test runs the case that exercises all of it (gather + GradCache + teacher); the others are slow
@pytest.mark.parametrize(
    "mini,teacher",
    [
        pytest.param("none", "no", marks=pytest.mark.slow),
        pytest.param("2", "no", marks=pytest.mark.slow),
        pytest.param("2", "teacher", marks=pytest.mark.slow),
        ("2", "cross"),
    ],
)
def test_two_ranks_with_gather_equal_one_process_on_the_global_batch(model_dir, tmp_path, mini, teacher):
    out = tmp_path / "rank0.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc_per_node=2",
            str(Path(__file__).parent / "ddp_loss_worker.py"),
            str(model_dir),
            str(out),
            mini,
            teacher,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out)
    assert got["world"] == 2
    # the reference: one process, the whole batch, no GradCache (and the uncached teacher term)
    with_teacher, cross = teacher in ("teacher", "cross"), teacher == "cross"
    loss, grads = _single(model_dir, teacher=with_teacher, cross=cross)
    _assert_same(got["loss"], got["grads"], loss, grads)
    # Without the gather each rank only sees its own 4 rows: a different (smaller-pool) loss.
    half_losses = [
        _single(model_dir, rows=slice(0, 4), teacher=with_teacher, cross=cross)[0],
        _single(model_dir, rows=slice(4, 8), teacher=with_teacher, cross=cross)[0],
    ]
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


@pytest.mark.parametrize(
    "mini_batch_size,symmetric",
    [pytest.param(1, False, marks=pytest.mark.slow), pytest.param(3, False, marks=pytest.mark.slow), (3, True)],
)
def test_gradcache_with_the_teacher_term_equals_the_uncached_teacher_anchored_loss(
    model_dir, mini_batch_size, symmetric
):
    from polyret.losses import CachedTeacherAnchoredLoss, TeacherAnchoredLoss, build_loss, teacher_anchored

    loss, grads = _single(model_dir, teacher=True, symmetric=symmetric)
    cached_loss, cached_grads = _single(model_dir, mini_batch_size=mini_batch_size, teacher=True, symmetric=symmetric)
    _assert_same(cached_loss, cached_grads, loss, grads)
    model, base = load_models(str(model_dir), True)
    features = [model.tokenize([r[c] for r in ROWS]) for c in range(3)]
    with torch.no_grad():
        contrastive_only = build_loss(model, "in-batch", 0.05, symmetric=symmetric)(features, None)
    assert float(loss) - float(contrastive_only) > 1e-3, "the teacher term must contribute, or the test proves nothing"
    # polyret train builds the cached class exactly when the contrastive loss is cached
    assert (
        type(teacher_anchored(model, build_loss(model, "in-batch", 0.05, mini_batch_size=2), base, 1.0))
        is CachedTeacherAnchoredLoss
    )
    assert type(teacher_anchored(model, build_loss(model, "in-batch", 0.05), base, 1.0)) is TeacherAnchoredLoss
    # evaluation (no gradients): the cached loss gives the same value
    loss_fn = teacher_anchored(model, build_loss(model, "in-batch", 0.05, mini_batch_size=mini_batch_size), base, 2.0)
    with torch.no_grad():
        value = loss_fn([model.tokenize([r[c] for r in ROWS]) for c in range(3)], None)
    assert float(value) == pytest.approx(float(_single(model_dir, teacher=True)[0]), rel=1e-5)


@pytest.mark.parametrize("mini_batch_size", [1, 3])
def test_gradcache_with_the_cross_lingual_term_equals_the_uncached_loss(model_dir, mini_batch_size):
    loss, grads = _single(model_dir, teacher=True, cross=True)
    cached_loss, cached_grads = _single(model_dir, mini_batch_size=mini_batch_size, teacher=True, cross=True)
    _assert_same(cached_loss, cached_grads, loss, grads)
    without_cross = _single(model_dir, teacher=True)[0]
    assert float(loss) - float(without_cross) > 1e-3, "the cross term must contribute, or the test proves nothing"
