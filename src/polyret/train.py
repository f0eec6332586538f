"""Training stage: hybrid-batch contrastive fine-tuning on sentence-transformers' trainer.

`train(config, out_dir)` wires our pieces into `SentenceTransformerTrainer` through its documented
extension points and writes one self-describing run directory:

    out_dir/
      config.yaml             the resolved TrainConfig (a resume must match it)
      validation_groups.jsonl training groups held out (validation loss, best checkpoint, recipe pool)
      checkpoints/checkpoint-N trainer checkpoints (weights, optimizer, scheduler, RNG state)
      train_log.jsonl         one JSON object per log/eval event (step, loss, lr, eval_loss, ...)
      model/                  final sentence-transformers model (+ README.md card, polyret_training.json)
      merged/                 only with merge_weight λ: θ = (1−λ)θ_base + λθ_tuned
      run.json                summary: steps, wall time, pairs/s, best checkpoint, final paths

- batches: `SentenceTransformerTrainingArguments(batch_sampler=make_batch_sampler_factory(...))`
  (our group-aware X-X-mono / X-X / X-Y / Hybrid samplers; language/group metadata live in the
  PairTable, not in the dataset columns the loss sees);
- loss: `polyret.losses.build_loss` (ST's MultipleNegativesRankingLoss at scale 1/τ, or Eq. 1);
- prompts: the model's own query/passage prompts, applied per column by ST's data collator;
- bf16 autocast on CPU, optional frozen word-embedding matrix, max_seq_length from the config;
- DDP: launched with `torchrun`, the HF trainer sets up gloo on CPU; every rank builds the same
  PairTable and the sampler is deterministic, so ranks agree on each step's batch type.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyret import runtime
from polyret.config import TrainConfig, dump_train_config
from polyret.correction import fit_model_correction
from polyret.data.groups import write_groups_jsonl
from polyret.data.parallel import NAMED_SETS
from polyret.errors import PolyretError
from polyret.io import OutputDir, mark_finished, write_json, write_text
from polyret.model import load_model
from polyret.report import markdown_table
from polyret.runtime import barrier as _barrier
from polyret.runtime import rank as _rank
from polyret.runtime import world_size as _world_size
from polyret.train_logging import BatchLoggingCollator, make_log_callback
from polyret.train_prepare import (  # noqa: F401  (re-exported: polyret.train is where callers look)
    CORRECTION_GROUPS,
    XNLI_ALIGN,
    Prepared,
    _sampler_factory,
    correction_groups,
    load_training_groups,
    prepare,
    resolve_data_path,
    split_validation,
)
from polyret.train_rundir import (  # noqa: F401  (re-exported, as above)
    CHECKPOINT_COMPLETE,
    CHECKPOINTS,
    MERGED_DIR,
    MODEL_DIR,
    RUN_JSON,
    TRAIN_LOG,
    VALIDATION_GROUPS,
    check_resume_config,
    clear_unstarted_run,
    final_path,
    finished_run,
    last_checkpoint,
    open_run_dir,
    remove_incomplete_checkpoints,
    trainer_class,
)

TRAINING_META = "polyret_training.json"


# ---------------------------------------------------------------------------------------------
# model and loss
# ---------------------------------------------------------------------------------------------
def _prompts(model, n_negatives: int, english: bool = False) -> dict[str, str] | None:
    """Per-column prompts from the model (e5: 'query: ' / 'passage: '); None if it has none."""
    prompts = getattr(model, "prompts", None) or {}
    q = prompts.get("query")
    p = prompts.get("passage", prompts.get("document"))
    if q is None and p is None:
        return None
    out = {"anchor": q or "", "positive": p or ""}
    for i in range(1, n_negatives + 1):
        out[f"negative_{i}"] = p or ""
    if english:  # the cross-lingual teacher term's English sources, prompted as the texts they translate
        out |= {"anchor_en": out["anchor"], "positive_en": out["positive"]}
    return out


def encoder_layers(model) -> list:
    """The transformer layers of the model's first module (bottom to top)."""
    first = model[0]
    auto = getattr(first, "auto_model", None) or getattr(first, "model", None)
    layers = getattr(getattr(auto, "encoder", None), "layer", None)
    if layers is None:
        raise PolyretError("train_layers: the model's first module has no encoder.layer stack to choose from")
    return list(layers)


def train_top_layers(model, n_layers: int) -> int:
    """Freeze everything but the top `n_layers` transformer layers; returns the parameters frozen."""
    layers = encoder_layers(model)
    if n_layers > len(layers):
        raise PolyretError(f"train_layers={n_layers}, but the model has only {len(layers)} layers")
    keep = {id(p) for layer in layers[-n_layers:] for p in layer.parameters()}
    frozen = 0
    for p in model.parameters():
        if id(p) not in keep and p.requires_grad:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def freeze_word_embeddings(model) -> int:
    """Freeze the input (word) embedding matrix; returns how many parameters were frozen."""
    first = model[0]
    auto = getattr(first, "auto_model", None) or getattr(first, "model", None)
    if auto is None or not hasattr(auto, "get_input_embeddings"):
        raise PolyretError("freeze_word_embeddings: the model's first module has no word-embedding matrix")
    weight = auto.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


@dataclass
class ModelAndLoss:
    model: Any
    loss: Any
    frozen_parameters: int
    base_max_length: int  # the model's own max_seq_length, restored before it is saved


def build_model_and_loss(cfg: TrainConfig, device: str, world: int) -> ModelAndLoss:
    """The model to train (frozen parts per the config) and its loss (teacher-anchored when configured)."""
    import torch

    from polyret.losses import build_loss, teacher_anchored

    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, device=device)
    base_max_length = model.max_seq_length
    model.max_seq_length = cfg.max_seq_length  # a training-time truncation, not a property of the result
    teacher = copy.deepcopy(model) if cfg.teacher_weight > 0 or cfg.teacher_cross > 0 else None  # the base, frozen
    frozen = freeze_word_embeddings(model) if cfg.freeze_word_embeddings else 0
    if cfg.train_layers:
        frozen += train_top_layers(model, cfg.train_layers)
    loss = build_loss(
        model,
        cfg.loss,
        temperature=cfg.temperature,
        symmetric=cfg.symmetric,
        gather_across_devices=cfg.gather_across_ranks and world > 1,
        mini_batch_size=cfg.mini_batch_size,
    )
    if teacher is not None:
        loss = teacher_anchored(
            model, loss, teacher, cfg.teacher_weight, cfg.teacher_cross
        )  # GradCache'd when the loss is
    return ModelAndLoss(model, loss, frozen, base_max_length)


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
def _enter_run_dir(target: OutputDir, cfg: TrainConfig, resume: bool, val_groups: list) -> Path:
    """Rank 0 starts writing: returns the folder this run writes into (a sibling under --overwrite)."""
    if not resume and not target.fresh and target.state == "incomplete":  # no complete checkpoint: start afresh
        clear_unstarted_run(target.final)
    work = target.__enter__().path
    if resume:
        remove_incomplete_checkpoints(work / CHECKPOINTS)
    if not resume or not (work / "config.yaml").is_file():
        dump_train_config(cfg, work / "config.yaml")
        write_groups_jsonl(val_groups, work / VALIDATION_GROUPS)
    return work


def _make_trainer(
    cfg: TrainConfig,
    built: ModelAndLoss,
    prep: Prepared,
    args,
    work: Path,
    resume: bool,
    resume_from: str | None,
    extra_callbacks: list | None,
):
    callbacks = [make_log_callback(work / TRAIN_LOG, resume_from), *(extra_callbacks or [])]
    if cfg.early_stopping_patience is not None and prep.validating:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = trainer_class()(
        model=built.model,
        args=args,
        train_dataset=prep.train_ds,
        eval_dataset=prep.val_ds,
        loss=built.loss,
        callbacks=callbacks,
    )
    if cfg.log_batches:
        log_path = work / f"batch_log.rank{_rank()}.jsonl"
        if not resume:
            log_path.unlink(missing_ok=True)
        batch_log = BatchLoggingCollator(trainer.data_collator, prep.train_table, log_path)
        trainer.data_collator = batch_log
        trainer.add_callback(batch_log.step_callback())
    return trainer


# ---------------------------------------------------------------------------------------------
# finishing: save, card, merge, correction, run.json
# ---------------------------------------------------------------------------------------------
def _write_card(model_dir: Path, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    write_json(model_dir / TRAINING_META, meta)
    card = model_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    s = meta["summary"]
    rows = [
        ("base model", f"`{meta['base_model']}`"),
        (
            "training data",
            f"{', '.join(f'`{d}`' for d in meta['data'])} ({meta['train_groups']} groups, "
            f"{meta['train_pairs']} pairs; {meta['validation_groups']} groups held out)",
        ),
        ("unit / negatives", f"{s['unit']} / {s['negatives']} (k={s['n_negatives']})"),
        ("batch strategy", s["strategy"]),
        ("α (Hybrid: P[X-X-mono batch])", s["alpha"] if s["alpha"] is not None else "n/a"),
        ("loss", f"{s['loss']}{' + symmetric' if s['symmetric'] else ''}, τ = {s['temperature']}"),
        ("steps × batch", f"{meta['steps_done']} × {s['batch_size']} (× {meta['world_size']} processes)"),
        ("lr / max length", f"{s['lr']} / {s['max_seq_length']}"),
        ("seed", s["seed"]),
        ("best checkpoint", meta.get("best_checkpoint") or "last"),
    ]
    table = markdown_table(["setting", "value"], [(k, str(v)) for k, v in rows])
    intro = "Contrastive fine-tuning with language-controlled batches (arXiv 2408.10536)."
    write_text(card, text + f"\n\n## polyret training\n\n{intro}\n\n{table}\n")


def store_language_correction(
    model_dir: Path, method: str, *, show_progress: bool = True, groups: list | None = None
) -> Path:
    """Fit `method` for the trained model on XNLI dev's alignment side and store it in its dir
    (`groups`: those `prepare` already read)."""
    groups = groups or correction_groups(method)
    model = load_model(str(model_dir))
    corr = fit_model_correction(
        model,
        method,
        groups=groups,
        show_progress=show_progress,
        source=f"XNLI dev alignment side ({len(groups)} premises x {len(groups[0].queries)} languages)",
    )
    return corr.save(model_dir)


@dataclass
class RunFacts:
    """What the finishing steps record about the run that just ended."""

    out: Path  # where the run lives afterwards
    work: Path  # where it wrote (a sibling under --overwrite)
    resume_from: str | None
    wall: float
    train_runtime: float | None
    device: str
    precision: str
    world: int


def _save_model(trainer, cfg: TrainConfig, built: ModelAndLoss, prep: Prepared, facts: RunFacts) -> Path:
    model_dir = facts.work / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    trainer.model.max_seq_length = built.base_max_length
    trainer.model.save(str(model_dir))
    meta = {
        "base_model": cfg.model,
        "data": [d if d in NAMED_SETS else str(resolve_data_path(d)) for d in cfg.data],
        "summary": cfg.summary(),
        "steps_done": trainer.state.global_step,
        "world_size": facts.world,
        "train_groups": len(prep.train_groups),
        "train_pairs": len(prep.train_ds),
        "validation_groups": len(prep.val_groups),
        "frozen_parameters": built.frozen_parameters,
        "best_checkpoint": final_path(trainer.state.best_model_checkpoint, facts.work, facts.out),
        "best_validation_loss": trainer.state.best_metric,
    }
    _write_card(model_dir, cfg, meta)
    return model_dir


def _run_record(trainer, cfg: TrainConfig, facts: RunFacts) -> dict[str, Any]:
    out, world = facts.out, facts.world
    start = int(Path(facts.resume_from).name.split("-")[-1]) if facts.resume_from else 0
    steps_run = trainer.state.global_step - start
    pairs = steps_run * cfg.batch_size * world
    merged = cfg.merge_weight is not None
    return {
        "status": "complete",
        "final_model": str(out / (MERGED_DIR if merged else MODEL_DIR)),
        "model": str(out / MODEL_DIR),
        "merged": str(out / MERGED_DIR) if merged else None,
        "steps": trainer.state.global_step,
        "steps_this_invocation": steps_run,
        "resumed_from": facts.resume_from,
        "wall_seconds": round(facts.wall, 1),
        "train_runtime": facts.train_runtime,
        "pairs_per_second": round(pairs / facts.wall, 2) if facts.wall > 0 else None,
        "best_checkpoint": final_path(trainer.state.best_model_checkpoint, facts.work, out),
        "best_validation_loss": trainer.state.best_metric,
        "runtime": runtime.describe(facts.device, facts.precision),
        "in_batch_negatives": {  # what one query's softmax ran over, under DDP and GradCache
            "across_ranks": bool(cfg.loss == "in-batch" and cfg.gather_across_ranks and world > 1),
            "pool_rows": cfg.batch_size * (world if cfg.gather_across_ranks and world > 1 else 1),
            "mini_batch_size": cfg.mini_batch_size,
        },
        "config": cfg.summary(),
    }


def finish(
    trainer, cfg: TrainConfig, built: ModelAndLoss, prep: Prepared, facts: RunFacts, show_progress: bool
) -> None:
    """Rank 0, after the last step: save the model and its card, merge, store the correction, and
    write run.json last (a finished run is one with run.json)."""
    model_dir = _save_model(trainer, cfg, built, prep, facts)
    model_dirs = [model_dir]
    if cfg.merge_weight is not None:
        from polyret.merge import merge_models

        merge_models(cfg.model, model_dir, cfg.merge_weight, facts.work / MERGED_DIR, overwrite=True)
        model_dirs.append(facts.work / MERGED_DIR)
    if cfg.language_correction != "none":  # each model dir gets statistics of its own weights
        for d in model_dirs:
            store_language_correction(
                d, cfg.language_correction, show_progress=show_progress, groups=prep.correction_groups
            )
    mark_finished(facts.work / RUN_JSON, _run_record(trainer, cfg, facts))


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    overwrite: bool = False,
    device: str | None = None,
    callbacks: list | None = None,
) -> Path:
    """Train per `config` into `out_dir`; returns the final model dir (`<out>/merged` when the
    config sets merge_weight, else `<out>/model`). `resume=True` continues from the last checkpoint
    of `out_dir` and ends at the same weights an uninterrupted run would.
    device: auto | cpu | cuda | cuda:N | mps; None = the command's --device, else the config's `device`
    (see `polyret.runtime.device_for`). callbacks: extra Hugging Face `TrainerCallback`s (e.g. to
    measure steps, as benchmarks/train.py does), added after polyret's own.

    Every input is read and checked before anything is written (`prepare`, the model): a missing one
    is one PolyretError, and the run dir, or the finished run an --overwrite would replace, is untouched."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub during training
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(config)
    out = Path(out_dir)
    rank, world = _rank(), _world_size()
    final = out / (MERGED_DIR if cfg.merge_weight is not None else MODEL_DIR)

    # Device and precision first: an impossible request (no GPU, bad index, nccl on CPU) fails before any work.
    device = runtime.resolve_device(device) if device is not None else runtime.device_for(cfg.device)
    precision = runtime.precision_for(device, cfg.bf16)
    from polyret.train_args import trainer_arguments, validate_trainer_args

    validate_trainer_args(cfg.trainer_args, device=device)
    if resume and (done := finished_run(out)) is not None:
        check_resume_config(cfg, out)
        return Path(done["final_model"])
    target = open_run_dir(cfg, out, resume, overwrite, world) if rank == 0 else None  # checks only
    try:
        prep = prepare(cfg, world)
        built = build_model_and_loss(cfg, device, world)
    except BaseException:
        if target is not None:  # nothing was written: free --out's lock now, not when the object is collected
            target.release()
        raise

    # `work` is where this run writes (a sibling temporary folder under --overwrite, swapped in at the
    # end); `out` is where the run lives afterwards (paths recorded in run.json name `out`).
    work = _enter_run_dir(target, cfg, resume, prep.val_groups) if rank == 0 else out
    try:
        resume_from = last_checkpoint(work / CHECKPOINTS) if resume else None
        args = trainer_arguments(
            cfg,
            device=device,
            precision=precision,
            world=world,
            output_dir=str(work / CHECKPOINTS),
            sampler_factory=prep.sampler_factory,
            prompts=_prompts(built.model, cfg.n_negatives, english=cfg.teacher_cross > 0),
            validating=prep.validating,
            show_progress=show_progress,
        )
        trainer = _make_trainer(cfg, built, prep, args, work, resume, resume_from, callbacks)
        _barrier()
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume_from)
        facts = RunFacts(
            out,
            work,
            resume_from,
            time.perf_counter() - t0,
            result.metrics.get("train_runtime"),
            device,
            precision,
            world,
        )
        if trainer.is_world_process_zero():
            finish(trainer, cfg, built, prep, facts, show_progress)
    except BaseException as e:
        if target is not None:
            target.__exit__(type(e), e, e.__traceback__)  # a temp folder goes; an in-place run dir stays resumable
        raise
    if target is not None:
        target.commit()
    _barrier()
    return final
