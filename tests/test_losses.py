"""Losses against hand-computed InfoNCE on random embeddings (no model forward needed)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from polyret.errors import PolyretError
from polyret.losses import HardNegativeInfoNCELoss, build_loss


def _emb(seed: int, b: int = 5, k: int = 2, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, d, generator=g)
    p = torch.randn(b, d, generator=g)
    negs = [torch.randn(b, d, generator=g) for _ in range(k)]
    return q, p, negs


def _cos(a, b):
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def _manual_in_batch(q, p, negs, tau):
    """−mean_i log( e^{s(q_i,p_i)/τ} / Σ_j e^{s(q_i,c_j)/τ} ), c = all positives and all negatives."""
    cands = torch.cat([p, *negs], dim=0)
    total = 0.0
    for i in range(q.size(0)):
        s = _cos(q[i : i + 1], cands)[0] / tau
        total += -(s[i] - torch.logsumexp(s, 0)).item()
    return total / q.size(0)


def _manual_eq1(q, p, negs, tau):
    total = 0.0
    for i in range(q.size(0)):
        own = torch.stack([p[i], *[n[i] for n in negs]])
        s = _cos(q[i : i + 1], own)[0] / tau
        total += -(s[0] - torch.logsumexp(s, 0)).item()
    return total / q.size(0)


def _manual_backward(q, p, tau):
    """Passage→query: p_i against every query of the batch."""
    s = _cos(p, q) / tau
    return F.cross_entropy(s, torch.arange(q.size(0))).item()


@pytest.mark.parametrize("tau", [0.05, 0.2])
def test_in_batch_is_infonce_over_all_positives_and_negatives(tau):
    q, p, negs = _emb(0)
    loss = build_loss(None, "in-batch", temperature=tau)
    got = loss.compute_loss_from_embeddings([q, p, *negs], None).item()
    assert got == pytest.approx(_manual_in_batch(q, p, negs, tau), rel=1e-5)
    # pairs only: candidates are the batch's positives
    got_pairs = loss.compute_loss_from_embeddings([q, p], None).item()
    assert got_pairs == pytest.approx(_manual_in_batch(q, p, [], tau), rel=1e-5)
    assert loss.scale == pytest.approx(1 / tau)


def test_symmetric_adds_the_passage_to_query_term():
    q, p, negs = _emb(1)
    tau = 0.05
    got = build_loss(None, "in-batch", temperature=tau, symmetric=True).compute_loss_from_embeddings(
        [q, p, *negs], None
    )
    want = 0.5 * (_manual_in_batch(q, p, negs, tau) + _manual_backward(q, p, tau))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_eq1_compares_the_positive_with_its_own_negatives_only():
    q, p, negs = _emb(2)
    tau = 0.1
    loss = build_loss(None, "eq1", temperature=tau)
    assert isinstance(loss, HardNegativeInfoNCELoss)
    got = loss.compute_loss_from_embeddings([q, p, *negs], None).item()
    assert got == pytest.approx(_manual_eq1(q, p, negs, tau), rel=1e-5)
    # Other rows' positives are not negatives under Eq. 1 ...
    p2 = p.clone()
    p2[1:] = torch.randn_like(p2[1:])
    row0 = lambda pp: loss.compute_loss_from_embeddings([q[:1], pp[:1], *[n[:1] for n in negs]], None).item()
    assert row0(p) == pytest.approx(row0(p2))
    # ... but they are under in-batch InfoNCE, so changing them changes that loss.
    ib = build_loss(None, "in-batch", temperature=tau)
    assert ib.compute_loss_from_embeddings([q, p, *negs], None).item() != pytest.approx(
        ib.compute_loss_from_embeddings([q, p2, *negs], None).item()
    )
    # symmetric Eq. 1 = mean of Eq. 1 and the passage→query in-batch term
    sym = build_loss(None, "eq1", temperature=tau, symmetric=True).compute_loss_from_embeddings([q, p, *negs], None)
    assert sym.item() == pytest.approx(0.5 * (_manual_eq1(q, p, negs, tau) + _manual_backward(q, p, tau)), rel=1e-5)


def test_eq1_value_is_log_k_plus_1_when_all_candidates_tie_and_falls_with_a_closer_positive():
    b, k, d = 4, 3, 6
    q = torch.ones(b, d)
    same = [torch.ones(b, d) for _ in range(k + 1)]
    loss = HardNegativeInfoNCELoss(None, temperature=0.05)
    assert loss.compute_loss_from_embeddings([q, *same], None).item() == pytest.approx(math.log(k + 1), rel=1e-5)
    far = [-torch.ones(b, d) for _ in range(k)]
    assert loss.compute_loss_from_embeddings([q, torch.ones(b, d), *far], None).item() < 1e-6


def test_gradients_flow_to_every_column():
    q, p, negs = _emb(3)
    cols = [t.clone().requires_grad_(True) for t in (q, p, *negs)]
    for kind in ("in-batch", "eq1"):
        for c in cols:
            c.grad = None
        build_loss(None, kind, temperature=0.05, symmetric=True).compute_loss_from_embeddings(cols, None).backward()
        assert all(c.grad is not None and c.grad.abs().sum() > 0 for c in cols)


def test_bad_settings_are_clear_errors():
    q, p, _ = _emb(4)
    with pytest.raises(PolyretError, match="hard-negative"):
        build_loss(None, "eq1").compute_loss_from_embeddings([q, p], None)
    with pytest.raises(PolyretError, match="temperature"):
        build_loss(None, "in-batch", temperature=0.0)
    with pytest.raises(PolyretError, match="unknown loss"):
        build_loss(None, "triplet")
