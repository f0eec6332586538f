"""Fine-tuning an encoder for zero-shot XNLI fast enough for a laptop CPU.

The encoder is fine-tuned on English NLI with a classification head over `[u, v, |u-v|, u*v]`
(sentence-transformers' `SoftmaxLoss`, trained by `SentenceTransformerTrainer`), and the head then
scores every language. What makes it fast (measured for multilingual-e5-small on one busy core of
this machine; the README has the numbers):

- the word-embedding table is frozen (`polyret.train.freeze_word_embeddings`): 96M of e5-small's
  118M parameters, no gradient or AdamW state for it;
- optionally only the top `train_layers` transformer layers are trained
  (`polyret.train.train_top_layers`), so the backward pass stops there (top 4 of 12: ~0.9 s per step
  of 32 pairs in bf16 on one core against ~1.2–1.8 s for the whole encoder, which the default trains:
  it ends higher, .611 against .597 at 640 steps on English dev);
- a short training max length (64 tokens: truncates 0.08% of the English training premises, no
  hypothesis; evaluation encodes at the model's own max length, which truncates nothing in XNLI);
- length-bucketed batches (`LengthBucketBatchSampler`, the trainer's `batch_sampler` hook): rows of
  a shuffled pool are sorted by token length before being cut into batches, so a batch pads to
  ~its own length instead of the pool's longest sentence;
- the runtime layer's device/precision rule (`polyret.runtime.precision_for`: bf16 autocast only on
  CPUs with native bf16, bf16/fp16 on GPUs), decided at run time for the model's device.

Defaults (`FineTuneSettings`, `FINE_TUNE_ENGLISH_TRAIN`) were chosen on XNLI **English** dev only,
one run per setting scored at intermediate steps (the constant schedule makes a run stopped at step k
equal a k-step run); linear head, batch 32, max length 64, head lr 1e-3, seed 0. First sweep (first
1,000 rows of dev-en, SNLI + SICK only):

    top 4 layers, lr 1e-4     160 .536   320 .555   640 .597   960 .564   1280 .586
    top 4 layers, lr 3e-5     160 .550   320 .550
    all layers,   lr 5e-5                320 .567   640 .611   960 .599

SNLI and SICK are captions and short scenes; XNLI is MNLI's ten genres. Adding XNLI dev's English
*alignment side* (`xnli:align`: 1,245 in-domain pairs, premises disjoint from the evaluation side,
which is then the only side scored) was the lever (English evaluation side, 1,245 rows; all layers,
lr 5e-5):

    SNLI + SICK                     320 .567   640 .613   960 .580
    + xnli:align repeated 4 times   320 .618   640 .630   960 .639
    + xnli:align repeated 16 times  320 .644   640 .669            <- chosen: 640 steps

A cross-encoder (premise and hypothesis in one sequence, sentence-transformers' CrossEncoder over the
same weights, all layers) did not do better on SNLI + SICK (lr 5e-5: 160 .515, 320 .554, 640 .546,
960 .579; lr 1e-4: 160 .555, 320 .497) and would not test the sentence embeddings that alignment
changes, so the head stays over `[u, v, |u-v|, u*v]`.
"""

from __future__ import annotations

import copy
import functools
import math
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from polyret.data.xnli import NLI_LABELS, NLIPairs
from polyret.errors import PolyretError
from polyret.encode import encode_texts
from polyret.runtime import precision_for
from polyret.train import encoder_layers, freeze_word_embeddings, train_top_layers

# All the offline English NLI data: SNLI dev + test (19.7k pairs), every SICK set (9.8k pairs) and
# XNLI dev's English alignment side (1,245 in-domain pairs, repeated 16 times so that a batch is ~40%
# MNLI-genre text): 49.4k rows. An evaluation then scores XNLI dev's evaluation side only
# (`evaluate_xnli(rows="auto")`). The fine-tuned mode's default; the frozen probe keeps
# `DEFAULT_ENGLISH_TRAIN` (its cost is encoding, and SNLI test + SICK TRIAL/TEST would add ~60% of it).
FINE_TUNE_ENGLISH_TRAIN: tuple[str, ...] = ("snli:dev", "snli:test", "sick:TRAIN+TRIAL+TEST", "xnli:align*16")
HEADS = ("linear", "mlp")


def pair_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[u, v, |u - v|, u * v] row-wise, float32."""
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"u and v must be 2-D arrays of one shape, got {u.shape} and {v.shape}")
    return np.hstack([u, v, np.abs(u - v), u * v])


@dataclass(frozen=True)
class FineTuneSettings:
    """Hyperparameters of the fine-tuned XNLI mode (defaults chosen on XNLI English dev).

    steps / epochs: training length (epochs, when given, wins: ceil(epochs * pairs / batch_size)
    steps). lr: the encoder's learning rate; head_lr: the freshly initialised head's (at the
    encoder's rate it would barely move in a few hundred steps). head: 'linear' or 'mlp' (one hidden
    layer of `mlp_hidden` units, GELU). max_length: training truncation in tokens. train_layers: the
    top N transformer layers are trained (None = all); the word-embedding table is frozen unless
    `freeze_word_embeddings` is False. bucket: length-bucketed batches. The learning rate is
    constant after `warmup_steps` linear warm-up steps, so a run stopped at step k equals a k-step run
    (which is how one run per learning rate gave the whole steps curve of the sweep).
    """

    steps: int = 640
    epochs: float | None = None
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    head: str = "linear"
    mlp_hidden: int = 512
    max_length: int = 64
    train_layers: int | None = None
    freeze_word_embeddings: bool = True
    bucket: bool = True
    warmup_steps: int = 30

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise PolyretError(f"fine-tune head must be one of {', '.join(HEADS)}, not {self.head!r}")
        for name in ("steps", "batch_size", "max_length", "mlp_hidden"):
            if int(getattr(self, name)) < 1:
                raise PolyretError(f"fine-tune {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise PolyretError(f"fine-tune epochs must be positive, got {self.epochs!r}")
        for name in ("lr", "head_lr"):
            if not float(getattr(self, name)) > 0:
                raise PolyretError(f"fine-tune {name} must be positive, got {getattr(self, name)!r}")
        if self.train_layers is not None and self.train_layers < 1:
            raise PolyretError(f"fine-tune train_layers must be >= 1 or None (all), got {self.train_layers!r}")
        if self.warmup_steps < 0:
            raise PolyretError(f"fine-tune warmup_steps must be >= 0, got {self.warmup_steps!r}")

    def total_steps(self, n_pairs: int) -> int:
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * n_pairs / self.batch_size))
        return self.steps

    def with_options(self, **options: Any) -> "FineTuneSettings":
        """A copy with the given fields replaced (None values are ignored: 'not given')."""
        known = set(asdict(self))
        bad = sorted(set(options) - known)
        if bad:
            raise PolyretError(f"unknown fine-tune option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return replace(self, **{k: v for k, v in options.items() if v is not None})

    def describe(self, n_pairs: int) -> dict[str, Any]:
        return asdict(self) | {
            "total_steps": self.total_steps(n_pairs),
            "loss": "SoftmaxLoss",
            "schedule": f"linear warm-up {self.warmup_steps} steps, then constant",
        }


# ----------------------------------------------------------------------------- batches
class _LengthBuckets:
    """Batches of pairs with similar token lengths, for the trainer's `batch_sampler` hook.

    Each epoch the rows are shuffled (a pure function of (seed, epoch)), cut into pools of
    `pool_batches` batches, each pool sorted by (premise length, hypothesis length) and cut into
    batches, and the batches of all pools shuffled. Every row is used once per epoch; a batch pads
    only to its own longest sentence, which is close to its shortest. `lengths`: (n, 2) token counts
    of premise and hypothesis, in dataset order. Build it with `length_bucket_factory`.

    The trainer needs a subclass of sentence-transformers' `DefaultBatchSampler`, and importing that
    costs seconds: `LengthBucketBatchSampler` (this mixin over it) is made on first use, so importing
    this module (every `polyret` start does, through the XNLI evaluator) stays cheap.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns=None,
        generator=None,
        seed: int = 0,
        *,
        lengths: np.ndarray,
        pool_batches: int = 50,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        lengths = np.asarray(lengths)
        if lengths.ndim != 2 or len(lengths) != len(dataset):
            raise PolyretError(f"length buckets: {len(lengths)} lengths for a dataset of {len(dataset)} rows")
        if pool_batches < 1:
            raise PolyretError(f"length buckets: pool_batches must be >= 1, got {pool_batches}")
        self.lengths = lengths
        self.pool = pool_batches * batch_size

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([int(self.seed), int(self.epoch)])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.lexsort((self.lengths[pool, 1], self.lengths[pool, 0]))]
            batches += [pool[b : b + self.batch_size] for b in range(0, len(pool), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(batches)
        return batches

    def __iter__(self):
        for batch in self._batches():
            yield batch.tolist()

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


@functools.cache
def _length_bucket_sampler_class() -> type:
    """`LengthBucketBatchSampler`: the length-bucket logic over sentence-transformers' DefaultBatchSampler."""
    from sentence_transformers.base.sampler import DefaultBatchSampler

    return type(
        "LengthBucketBatchSampler",
        (_LengthBuckets, DefaultBatchSampler),
        {"__module__": __name__, "__doc__": _LengthBuckets.__doc__},
    )


def __getattr__(name: str):
    """PEP 562: `LengthBucketBatchSampler` is built (importing sentence-transformers) when first asked for."""
    if name == "LengthBucketBatchSampler":
        return _length_bucket_sampler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pair_token_lengths(model, pairs: NLIPairs, prompt: str | None, max_length: int) -> np.ndarray:
    """(n, 2) token counts of premise and hypothesis as the encoder sees them (prompt, truncation)."""
    prefix = prompt or ""
    out = []
    for texts in (pairs.premises, pairs.hypotheses):
        ids = model.tokenizer(
            [prefix + t for t in texts], add_special_tokens=True, truncation=True, max_length=max_length
        )["input_ids"]
        out.append(np.fromiter((len(x) for x in ids), np.int64, len(ids)))
    return np.stack(out, axis=1)


def length_bucket_factory(lengths: np.ndarray, pool_batches: int = 50):
    """A callable for `SentenceTransformerTrainingArguments(batch_sampler=...)`."""
    return functools.partial(_length_bucket_sampler_class(), lengths=lengths, pool_batches=pool_batches)


# ----------------------------------------------------------------------------- head
def pair_head(kind: str, in_dim: int, n_labels: int, *, hidden: int = 512, device=None):
    """The classification head over `[u, v, |u-v|, u*v]`: feature standardisation, then a linear layer
    ('linear') or Linear -> GELU -> Linear ('mlp').

    The standardisation (BatchNorm without affine parameters: per-feature mean/variance, running
    statistics at evaluation) is the fine-tuned counterpart of the probe's StandardScaler. e5's
    normalised embeddings give features of tiny scale (std ~0.017), so a bare linear head at lr 1e-3
    needs thousands of steps just to grow its weights: measured on frozen features, English dev
    accuracy after 200 / 800 steps was .36 / .46 bare and .52 / .52 standardised.
    """
    import torch

    class PairHead(torch.nn.Sequential):
        """SoftmaxLoss reads `classifier.weight.dtype` to cast its features: exposed here as the
        first linear layer's weight."""

        @property
        def weight(self):
            return next(m for m in self if isinstance(m, torch.nn.Linear)).weight

    norm = torch.nn.BatchNorm1d(in_dim, affine=False)
    if kind == "linear":
        layers = [norm, torch.nn.Linear(in_dim, n_labels)]
    elif kind == "mlp":
        layers = [norm, torch.nn.Linear(in_dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, n_labels)]
    else:
        raise PolyretError(f"fine-tune head must be one of {', '.join(HEADS)}, not {kind!r}")
    return PairHead(*layers).to(device)


def head_predict(head, X: np.ndarray) -> np.ndarray:
    """Argmax labels of the head over pair features `X` (numpy, float32)."""
    import torch

    with torch.no_grad():
        logits = head(torch.from_numpy(X).to(head.weight.dtype).to(head.weight.device))
    return logits.argmax(dim=1).cpu().numpy()


# ----------------------------------------------------------------------------- training
def fine_tune_nli(
    model,
    train: NLIPairs,
    settings: FineTuneSettings | None = None,
    *,
    kind: str | None = "query",
    seed: int = 0,
    show_progress: bool = True,
    work_dir: str | Path | None = None,
    probe=None,
):
    """Fine-tune a copy of `model` with a head on English NLI pairs; `model` itself is not changed.

    Returns (fine-tuned model, head): `head` maps `pair_features` of the fine-tuned, normalised
    embeddings to logits over `NLI_LABELS`. The copy's max length is restored to the model's own
    after training (the short one is a training-time truncation only). `probe`: an
    `english_dev_probe` (the sweep's steps curve on English dev).
    """
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import SoftmaxLoss

    from polyret.train_args import PolyretTrainingArguments, device_kwargs  # heavy: sentence-transformers

    s = settings or FineTuneSettings()
    if len(train) == 0:
        raise PolyretError("fine-tuning needs English training pairs; got none")
    steps = s.total_steps(len(train))
    tuned = copy.deepcopy(model)
    base_max_length = tuned.max_seq_length
    tuned.max_seq_length = min(s.max_length, base_max_length)
    # A model with no more layers than asked trains them all (the default of 4 is a speed choice
    # made for 12-layer e5-small, not a property of smaller models).
    if s.train_layers is not None and s.train_layers < len(encoder_layers(tuned)):
        train_top_layers(tuned, s.train_layers)
    if s.freeze_word_embeddings:
        freeze_word_embeddings(tuned)
    dim = (
        tuned.get_embedding_dimension()
        if hasattr(tuned, "get_embedding_dimension")
        else tuned.get_sentence_embedding_dimension()
    )
    torch.manual_seed(seed)  # the head's initialisation
    loss = SoftmaxLoss(
        tuned,
        dim,
        num_labels=len(NLI_LABELS),
        concatenation_sent_rep=True,
        concatenation_sent_difference=True,
        concatenation_sent_multiplication=True,
    )
    loss.classifier = pair_head(s.head, 4 * dim, len(NLI_LABELS), hidden=s.mlp_hidden, device=tuned.device)
    ds = Dataset.from_dict({"sentence1": train.premises, "sentence2": train.hypotheses, "label": train.labels.tolist()})
    prompt = (getattr(tuned, "prompts", None) or {}).get(kind) if kind is not None else None
    sampler = {}
    if s.bucket:
        sampler["batch_sampler"] = length_bucket_factory(pair_token_lengths(tuned, train, prompt, tuned.max_seq_length))
    device = str(tuned.device)  # the model's own device (the command's --device when it was loaded)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        args = PolyretTrainingArguments(
            **device_kwargs(device, precision_for(device), world=1),
            **sampler,
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=s.batch_size,
            learning_rate=s.lr,
            learning_rate_mapping={r"^classifier\.": s.head_lr},
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=min(s.warmup_steps, steps),
            seed=seed,
            save_strategy="no",
            report_to="none",
            logging_strategy="steps" if show_progress else "no",
            logging_steps=max(1, steps // 10),
            disable_tqdm=not show_progress,
            prompts=prompt,
            dataloader_drop_last=True,  # a batch of one would break the head's batch statistics
        )
        if probe is not None:
            probe.loss = loss
        trainer = SentenceTransformerTrainer(
            model=tuned, args=args, train_dataset=ds, loss=loss, callbacks=[probe] if probe is not None else None
        )
        trainer.train()
    tuned.max_seq_length = base_max_length
    tuned.eval()
    for p in tuned.parameters():  # a scoring copy: nothing trains it further
        p.requires_grad_(False)
    return tuned, loss.classifier.eval()


def english_dev_probe(pairs: NLIPairs, at_steps: list[int], *, kind: str | None = "query"):
    """A TrainerCallback that scores accuracy on `pairs` (English dev: choosing steps and learning
    rates on English only) with the current encoder + head at the given steps; pass it to
    `fine_tune_nli(probe=...)`, which attaches the loss (its `.model` and `.classifier`). Scores land
    in `probe.scores` ({step: accuracy}). The encoder is still at the training max length then."""
    from transformers import TrainerCallback

    texts = list(dict.fromkeys(pairs.premises + pairs.hypotheses))
    index = {t: i for i, t in enumerate(texts)}

    class EnglishDevProbe(TrainerCallback):
        def __init__(self) -> None:
            self.scores: dict[int, float] = {}
            self.loss = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step not in at_steps or self.loss is None:
                return
            enc, head = self.loss.model, self.loss.classifier
            enc.eval(), head.eval()
            emb = encode_texts(enc, texts, kind=kind, show_progress=False)
            u = emb[[index[t] for t in pairs.premises]]
            v = emb[[index[t] for t in pairs.hypotheses]]
            acc = float(np.mean(head_predict(head, pair_features(u, v)) == pairs.labels))
            self.scores[state.global_step] = acc
            print(f"english-dev step {state.global_step}: accuracy {acc:.4f}", flush=True)
            enc.train(), head.train()

    return EnglishDevProbe()
