"""Contrastive losses, all with one temperature τ (logits = cos / τ).

- `in-batch` (default): InfoNCE where each query's candidates are its positive, every other row's
  positive and every hard negative in the batch. This is exactly sentence-transformers'
  `MultipleNegativesRankingLoss(scale=1/τ)`; with `symmetric=True` we add the passage→query term
  through the same class (`directions=("query_to_doc", "doc_to_query")`, one softmax per direction,
  averaged — what `MultipleNegativesSymmetricRankingLoss` computes), so nothing is re-implemented.
- `eq1`: the paper's Eq. 1, the positive against the row's OWN hard negatives only (no in-batch
  negatives). sentence-transformers has no such loss, so `HardNegativeInfoNCELoss` below is the one
  piece written here. Its optional symmetric term is the passage→query in-batch InfoNCE.

Scale (both through sentence-transformers, nothing re-implemented):
- `gather_across_devices=True` (the default under DDP, see `polyret.train`): the in-batch loss sees every
  rank's positives and negatives (all-gather with gradients), so the negative pool is the global batch,
  not a 1/world_size slice of it;
- `mini_batch_size=m`: `CachedMultipleNegativesRankingLoss` (GradCache): the same loss and gradients,
  computed m rows at a time, so the batch size no longer sets peak activation memory; with the
  teacher terms (self and cross-lingual), `CachedTeacherAnchoredLoss` (see `teacher_anchored`).

Batch composition (which rows share a batch) is the sampler's job, not the loss's: the samplers
guarantee no two rows share a parallel group, so a translation of the positive is never a negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers.base.losses.gradcache import CachedLossMixin
from torch import Tensor, nn

from polyret.errors import PolyretError

LOSS_KINDS = ("in-batch", "eq1")


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


class HardNegativeInfoNCELoss(nn.Module):
    """Eq. 1: −log softmax over [cos(q_i, p_i), cos(q_i, n_i1), …, cos(q_i, n_ik)] / τ at the positive.

    Input columns: anchor, positive, negative_1..k (k ≥ 1). With `symmetric`, the result is the mean
    of that term and the passage→query in-batch term (p_i against all queries of the batch).
    """

    def __init__(self, model, temperature: float = 0.05, symmetric: bool = False) -> None:
        super().__init__()
        if not temperature > 0:
            raise PolyretError(f"temperature must be > 0 (got {temperature})")
        self.model = model
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        embeddings = embed_columns(self.model, sentence_features)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        if len(embeddings) < 3:
            raise PolyretError(
                "loss 'eq1' needs hard-negative columns (negative_1..k): build pairs with negatives "
                "and set n_negatives >= 1, or use loss 'in-batch'"
            )
        queries, positives, negatives = embeddings[0], embeddings[1], embeddings[2:]
        q = F.normalize(queries, dim=-1)
        cands = torch.stack([positives, *negatives], dim=1)  # (B, 1+k, d)
        cands = F.normalize(cands, dim=-1)
        logits = torch.einsum("bd,bkd->bk", q, cands) / self.temperature
        target = torch.zeros(q.size(0), dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, target)
        if self.symmetric:
            back = _cos(positives, queries) / self.temperature  # (B, B): p_i against every query
            loss = 0.5 * (loss + F.cross_entropy(back, torch.arange(q.size(0), device=q.device)))
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "symmetric": self.symmetric}

    @property
    def citation(self) -> str:  # sentence-transformers' model card reads this
        return "arXiv:2408.10536, Eq. 1"


ENGLISH_COLUMNS = 2  # the cross term's inputs: the English sources of the anchor and the positive column


def cross_lingual_distance(embeddings: list[Tensor], targets: list[Tensor | None], mask: Tensor) -> Tensor:
    """The cross-lingual teacher term: Σ over the anchor and positive texts that have an English source
    (mask[r, c]) of 1 − cos(student(text), teacher(English source)), divided by ALL 2·B texts.

    Why divided by every text, not just the masked ones: each text's pull is then β_cross / (2B)
    whatever the batch's language mix (an English-only or an MLQA batch adds 0, not a noisy mean over a
    handful of rows), the same per-text size as the self term's, and the mean of equal-sized DDP ranks
    equals the global batch's. targets[c] holds the teacher's embeddings of column c's masked rows
    only, in row order (None when there are none)."""
    mask = mask.bool()
    total = embeddings[0].new_zeros(())
    for column, target in enumerate(targets):
        if target is None:
            continue
        student = embeddings[column][mask[:, column]]
        total = total + (1 - F.cosine_similarity(student, target.to(student.dtype), dim=-1)).sum()
    return total / mask.numel()


def _take_rows(feature: dict[str, Any], rows: Tensor) -> dict[str, Any]:
    """The tokenised column restricted to `rows` (batch-indexed tensors only)."""
    n = int(feature["input_ids"].shape[0]) if "input_ids" in feature else None
    return {k: v[rows] if isinstance(v, Tensor) and v.ndim >= 1 and v.shape[0] == n else v for k, v in feature.items()}


class TeacherAnchoredLoss(nn.Module):
    """A contrastive loss plus the frozen base model ("teacher") terms of multilingual knowledge
    distillation (arXiv 2004.09813):

    - self term, β × the distance of every embedded text to the teacher's embedding of the same text.
      Why: contrastive alignment alone drifts the encoder away from what it knew (XQuAD-R Mono mAP
      .800 → .745 after 150 steps); anchoring each text to its teacher embedding keeps monolingual
      geometry while the contrastive term moves languages together. The distance is
      sentence-transformers' `EmbedDistillLoss` reduction (cosine distance, mean over columns); the
      teacher embeds the same tokenised columns under `no_grad` (one extra forward pass, no backward).
    - cross term (`cross_weight` β_x > 0), β_x × `cross_lingual_distance`: every anchor / positive text
      with an English source is pulled toward the teacher's embedding of that English text. Why: the
      self term and the contrastive batches work on bias and forgetting; this moves a weaker language
      toward the model's best one. Its inputs: two more columns after the contrastive ones, the English
      sources of the anchor and the positive (`PairTable.to_dataset(english=True)`), and `labels`, a
      (B, 2) 0/1 mask of the texts that have one (not English themselves, and the group has English).
      The teacher embeds only the masked rows of those columns.
    """

    def __init__(self, model, contrastive: nn.Module, teacher, weight: float, cross_weight: float = 0.0) -> None:
        super().__init__()
        from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss

        if weight < 0 or cross_weight < 0 or not (weight > 0 or cross_weight > 0):
            raise PolyretError(
                f"teacher_weight and teacher_cross must be >= 0, one of them > 0 (got {weight}, {cross_weight})"
            )
        self.model = model
        self.contrastive = contrastive
        self.weight = weight
        self.cross_weight = cross_weight
        self.distill = EmbedDistillLoss(model, distance_metric="cosine")
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher

    def _teacher_embed(self, feature: dict[str, Tensor]) -> Tensor:
        return self.teacher(dict(feature))["sentence_embedding"]

    def _teacher_inputs(self, features: list[dict[str, Tensor]], labels: Tensor | None):
        """(contrastive columns, their labels, self targets or None, (cross targets, mask) or None)."""
        cross = None
        if self.cross_weight > 0:
            n = features[0]["input_ids"].shape[0] if features else 0
            if len(features) < 2 + ENGLISH_COLUMNS or labels is None or tuple(labels.shape) != (n, ENGLISH_COLUMNS):
                raise PolyretError(
                    "teacher_cross needs each row's English sources as two extra columns and a "
                    "(rows, 2) mask as labels: build the dataset with PairTable.to_dataset(english=True)"
                )
            features, english, mask = features[:-ENGLISH_COLUMNS], features[-ENGLISH_COLUMNS:], labels.bool()
            with torch.no_grad():
                targets = [
                    self._teacher_embed(_take_rows(f, m.nonzero().squeeze(1))) if bool(m.any()) else None
                    for f, m in zip(english, mask.T)
                ]
            cross, labels = (targets, mask), None
        own = None
        if self.weight > 0:
            with torch.no_grad():
                own = [self._teacher_embed(f) for f in features]
        return features, labels, own, cross

    def _teacher_terms(self, embeddings: list[Tensor], own: list[Tensor] | None, cross) -> Tensor:
        total = embeddings[0].new_zeros(())
        if own is not None:
            total = total + self.weight * self.distill.compute_loss_from_embeddings(embeddings, own)
        if cross is not None:
            total = total + self.cross_weight * cross_lingual_distance(embeddings, *cross)
        return total

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        features, labels, own, cross = self._teacher_inputs(list(sentence_features), labels)
        embeddings = embed_columns(self.model, features)
        loss = self.contrastive.compute_loss_from_embeddings(embeddings, labels)
        return loss + self._teacher_terms(embeddings, own, cross)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "teacher_weight": self.weight,
            "teacher_cross": self.cross_weight,
            "contrastive": type(self.contrastive).__name__,
            **self.contrastive.get_config_dict(),
        }

    @property
    def citation(self) -> str:
        return "arXiv:2004.09813 (multilingual knowledge distillation)"


class CachedTeacherAnchoredLoss(CachedLossMixin, TeacherAnchoredLoss):
    """`TeacherAnchoredLoss` under GradCache: a cached in-batch loss plus the teacher terms, with the
    same loss and gradients as the uncached combination, at memory set by mini_batch_size.

    Why it can be cached: GradCache needs the loss as a function of the batch's embeddings alone
    (step 2 of sentence-transformers' `CachedLossMixin`: the loss and its gradient w.r.t. the
    embeddings; then the encoder's backward pass mini-batch by mini-batch). Both teacher terms are
    such functions once the teacher's embeddings are fixed: they are per text, and the teacher is
    frozen (no gradient flows into it). So the teacher embeds every column (and, for the cross term,
    the English sources) first, under `no_grad` and in mini-batches (its memory is bounded too), and
    `calculate_loss` adds the teacher terms to the wrapped cached loss's `calculate_loss`; both
    back-propagate into the same cached embedding gradients. The GradCache machinery (RNG replay, DDP
    synchronisation, the backward hook) is sentence-transformers' own, inherited from the mixin.
    """

    def __init__(self, model, contrastive: nn.Module, teacher, weight: float, cross_weight: float = 0.0) -> None:
        if not isinstance(contrastive, CachedLossMixin):
            raise PolyretError(f"{type(contrastive).__name__} is not a gradient-cached loss")
        TeacherAnchoredLoss.__init__(self, model, contrastive, teacher, weight, cross_weight)
        self.mini_batch_size = contrastive.mini_batch_size
        self.mini_batch_num_tokens = contrastive.mini_batch_num_tokens
        self._targets: tuple | None = None

    def _teacher_embed(self, feature: dict[str, Tensor]) -> Tensor:
        """The frozen teacher's embedding of one column, mini-batch by mini-batch (called without a graph)."""
        # The mixin's own mini-batching helpers (module-private in sentence-transformers 6.2): the teacher
        # sees exactly the slices the student embeds, padding trimmed the same way.
        from sentence_transformers.base.losses.gradcache import _create_minibatch, _minibatch_ranges

        ranges = _minibatch_ranges(feature, self.mini_batch_size, self.mini_batch_num_tokens)
        return torch.cat([self.teacher(_create_minibatch(feature, b, e))["sentence_embedding"] for b, e in ranges])

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        contrastive = self.contrastive.calculate_loss(reps, labels, with_backward=with_backward)
        embeddings = [torch.cat(r) for r in reps]
        anchor = self._teacher_terms(embeddings, *self._targets)
        if with_backward:  # its gradient w.r.t. the cached embeddings adds to the contrastive term's
            anchor.backward()
            anchor = anchor.detach()
        return contrastive + anchor

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features, labels, own, cross = self._teacher_inputs(list(sentence_features), labels)
        self._targets = (own, cross)
        try:
            return self.forward_cached(features, labels)
        finally:
            self._targets = None


def teacher_anchored(model, contrastive: nn.Module, teacher, weight: float, cross_weight: float = 0.0) -> nn.Module:
    """The contrastive loss plus the teacher terms (self: `weight`, cross-lingual: `cross_weight`);
    cached (GradCache) when the contrastive loss is."""
    if isinstance(contrastive, CachedLossMixin):
        return CachedTeacherAnchoredLoss(model, contrastive, teacher, weight, cross_weight)
    return TeacherAnchoredLoss(model, contrastive, teacher, weight, cross_weight)


def build_loss(
    model,
    kind: str = "in-batch",
    temperature: float = 0.05,
    symmetric: bool = False,
    *,
    gather_across_devices: bool = False,
    mini_batch_size: int | None = None,
) -> nn.Module:
    """The loss module for `kind` ('in-batch' | 'eq1') at temperature τ.

    gather_across_devices: in-batch negatives from every DDP rank; mini_batch_size: GradCache
    (`CachedMultipleNegativesRankingLoss`), in-batch only.
    """
    if not temperature > 0:
        raise PolyretError(f"temperature must be > 0 (got {temperature})")
    if kind == "in-batch":
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )

        shape: dict[str, Any] = {}
        if symmetric:
            shape = {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}
        if mini_batch_size is not None:
            if mini_batch_size < 1:
                raise PolyretError(f"mini_batch_size must be >= 1 (got {mini_batch_size})")
            return CachedMultipleNegativesRankingLoss(
                model,
                scale=1.0 / temperature,
                mini_batch_size=mini_batch_size,
                gather_across_devices=gather_across_devices,
                **shape,
            )
        return MultipleNegativesRankingLoss(
            model, scale=1.0 / temperature, gather_across_devices=gather_across_devices, **shape
        )
    if mini_batch_size is not None:
        raise PolyretError(f"mini_batch_size (GradCache) works with loss 'in-batch' only, not {kind!r}")
    if kind == "eq1":
        return HardNegativeInfoNCELoss(model, temperature=temperature, symmetric=symmetric)
    raise PolyretError(f"unknown loss {kind!r} (choose from {', '.join(LOSS_KINDS)})")
