"""One rank of the cross-rank in-batch loss check (tests/test_ddp_loss.py), launched by torchrun.

Each rank takes its slice of one fixed global batch, computes polyret's in-batch loss with
gather_across_devices=True (optionally GradCache and the teacher term), backpropagates and averages the gradients over ranks exactly as DDP does;
rank 0 saves (mean loss, averaged gradients) for the test to compare with one process on the whole batch.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

ROWS = [
    (f"query {i}: where is the {w}?", f"passage {i}: the {w} lies by the river.", f"passage {i}b: a {w} in the hills.")
    for i, w in enumerate(["castle", "harbour", "forest", "mountain", "city", "bridge", "tower", "garden"])
]


TEACHER_WEIGHT = 2.0
CROSS_WEIGHT = 3.0
# The cross-lingual teacher term's inputs: each row's English sources (anchor, positive) and which of
# the row's two texts has one (a mix, so every rank's half holds masked and unmasked texts).
ENGLISH = [
    (f"english query {i}: the {w}?", f"english passage {i}: a {w}.")
    for i, w in enumerate(["castle", "harbour", "forest", "mountain", "city", "bridge", "tower", "garden"])
]
MASK = [[1, 0], [1, 1], [0, 0], [0, 1], [1, 1], [0, 1], [1, 0], [0, 0]]


def load_models(model_dir: str, teacher: bool):
    """(model, teacher or None). With a teacher, the student is the base moved by a fixed random step
    (the same in every process), so the teacher term and its gradient are not zero."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()  # no dropout: the comparison is about the loss, not about random masks
    if not teacher:
        return model, None
    base = SentenceTransformer(model_dir, device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model, base


def loss_and_grads(
    model,
    rows,
    *,
    gather: bool,
    mini_batch_size: int | None,
    teacher=None,
    symmetric: bool = False,
    cross: slice | None = None,
):
    """(loss, {param name: grad}) of polyret's in-batch loss on `rows` (anchor, positive, negative),
    plus TEACHER_WEIGHT x the teacher term when a teacher is given (as `polyret train` builds it), and
    with `cross` (the rows' slice of ENGLISH / MASK) CROSS_WEIGHT x the cross-lingual teacher term."""
    from polyret.losses import build_loss, teacher_anchored

    model.zero_grad(set_to_none=True)
    loss_fn = build_loss(
        model,
        "in-batch",
        temperature=0.05,
        symmetric=symmetric,
        gather_across_devices=gather,
        mini_batch_size=mini_batch_size,
    )
    if teacher is not None:
        loss_fn = teacher_anchored(model, loss_fn, teacher, TEACHER_WEIGHT, CROSS_WEIGHT if cross else 0.0)
    features = [model.tokenize([r[c] for r in rows]) for c in range(3)]
    labels = None
    if cross is not None:
        features += [model.tokenize([e[c] for e in ENGLISH[cross]]) for c in range(2)]
        labels = torch.tensor(MASK[cross])
    loss = loss_fn(features, labels)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def main(model_dir: str, out: str, mini: str, teacher: str = "no") -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, base = load_models(model_dir, teacher in ("teacher", "cross"))
    per = len(ROWS) // world
    mine = slice(rank * per, (rank + 1) * per)
    loss, grads = loss_and_grads(
        model,
        ROWS[mine],
        gather=True,
        mini_batch_size=int(mini) if mini != "none" else None,
        teacher=base,
        cross=mine if teacher == "cross" else None,
    )
    dist.all_reduce(loss)
    loss /= world  # what the trainer logs: the mean of the ranks' losses
    for g in grads.values():  # DDP: gradients are averaged over ranks
        dist.all_reduce(g)
        g /= world
    if rank == 0:
        torch.save({"loss": loss, "grads": grads, "world": world}, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
