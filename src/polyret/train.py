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
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from polyret import runtime
from polyret.config import TrainConfig, dump_train_config, load_train_config
from polyret.data.groups import write_groups_jsonl
from polyret.data.pairs import build_groups
from polyret.correction import fit_model_correction
from polyret.data.parallel import xnli_parallel_groups
from polyret.errors import PolyretError
from polyret.io import OutputDir, write_json
from polyret.model import load_model
from polyret.paths import data_path, find_data_dir
from polyret.runtime import barrier as _barrier
from polyret.runtime import rank as _rank
from polyret.runtime import world_size as _world_size
from polyret.train_logging import BatchLoggingCollator, make_log_callback

CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
MERGED_DIR = "merged"
TRAIN_LOG = "train_log.jsonl"
RUN_JSON = "run.json"
VALIDATION_GROUPS = "validation_groups.jsonl"
TRAINING_META = "polyret_training.json"


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
XNLI_ALIGN = "xnli-align"  # a training-set name: XNLI dev's alignment side (polyret.data.parallel)


def resolve_data_path(entry: str) -> Path:
    """A training-set entry -> an existing path: as given (absolute or cwd-relative), else in the data dir."""
    p = Path(entry).expanduser()
    if p.exists():
        return p
    if not p.is_absolute():
        root = find_data_dir(required=False)
        if root is not None and (root / entry).exists():
            return root / entry
        where = f"the current directory or the data directory {root}" if root else "the current directory (no data directory found)"
        raise PolyretError(f"training data {entry!r} not found in {where}")
    raise PolyretError(f"training data {entry!r} does not exist")


def load_training_groups(cfg: TrainConfig) -> list:
    """All parallel groups of all configured training sets (each keeps its `source` name)."""
    groups = []
    for entry in cfg.data:
        if entry == XNLI_ALIGN:
            groups.extend(xnli_parallel_groups(data_path("xnli"), side="align"))
            continue
        path = resolve_data_path(entry)
        part, _report = build_groups([path], unit=cfg.unit, negatives=cfg.negatives, answerless=cfg.answerless)
        if not part:
            raise PolyretError(f"{path}: no training groups found")
        groups.extend(part)
    return groups


def split_validation(groups: list, n_validation: int, seed: int) -> tuple[list, list]:
    """Hold out `n_validation` whole groups (never single pairs: a translation of a validation
    passage must not be trained on). Deterministic for a seed, independent of the input order.

    A training group that shares a passage with a held-out group (another question on the same
    paragraph: its answer sentence, or the paragraph itself in the paragraph unit) is left out of
    training as well: otherwise the held-out pool scores a text the model was trained to retrieve,
    and hides the forgetting it is there to show."""
    if n_validation == 0:
        return list(groups), []
    if n_validation >= len(groups):
        raise PolyretError(
            f"validation_groups={n_validation} leaves no training data ({len(groups)} groups in all)"
        )
    keyed = sorted(groups, key=lambda g: (g.source, g.id))
    order = list(range(len(keyed)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_validation])
    val = [g for i, g in enumerate(keyed) if i in held]
    held_texts = set().union(*(g.passage_texts for g in val))
    train = [g for i, g in enumerate(keyed) if i not in held and not (g.passage_texts & held_texts)]
    if not train:
        raise PolyretError(f"validation_groups={n_validation}: every other group shares a passage with a "
                           f"held-out one ({len(groups)} groups in all); lower validation_groups")
    return train, val


class _PicklableSamplerFactory:
    """The trainer pickles its arguments into every checkpoint (training_args.bin); the sampler
    factory is a closure over the whole PairTable. This wrapper calls it unchanged and pickles as a
    short description instead (nothing reloads the factory from a checkpoint: resume rebuilds it)."""

    def __init__(self, factory, description: str) -> None:
        self._factory = factory
        self.description = description

    def __call__(self, *args, **kwargs):
        return self._factory(*args, **kwargs)

    def __reduce__(self):
        return (str, (self.description,))


def _sampler_factory(table, cfg: TrainConfig, eval_table=None):
    """Our group-aware sampler for ST's batch_sampler hook (serves the validation set too)."""
    from polyret.batches import make_batch_sampler_factory

    factory = make_batch_sampler_factory(
        table, cfg.strategy, alpha=cfg.alpha, temperature=cfg.dataset_temperature, seed=cfg.seed,
        eval_table=eval_table,
    )
    return _PicklableSamplerFactory(factory, f"polyret {cfg.strategy} sampler (alpha={cfg.alpha}, seed={cfg.seed})")


def _check_sampler(factory, dataset, batch_size: int, what: str) -> None:
    """Build the sampler once up front so 'too few groups' surfaces before any run dir is written."""
    try:
        factory(dataset, batch_size=batch_size, drop_last=False)
    except PolyretError as e:
        raise PolyretError(f"{what}: {e}") from None


def _prompts(model, n_negatives: int) -> dict[str, str] | None:
    """Per-column prompts from the model (e5: 'query: ' / 'passage: '); None if it has none."""
    prompts = getattr(model, "prompts", None) or {}
    q = prompts.get("query")
    p = prompts.get("passage", prompts.get("document"))
    if q is None and p is None:
        return None
    out = {"anchor": q or "", "positive": p or ""}
    for i in range(1, n_negatives + 1):
        out[f"negative_{i}"] = p or ""
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


# ---------------------------------------------------------------------------------------------
# run dir
# ---------------------------------------------------------------------------------------------
CHECKPOINT_COMPLETE = "polyret-checkpoint-complete"


def _check_resume_config(cfg: TrainConfig, out: Path) -> None:
    stored = out / "config.yaml"
    if not stored.is_file():
        raise PolyretError(f"--resume: {out} is not a polyret training run (no config.yaml)")
    old = load_train_config(stored, {})
    # The device is where a run executes, not what it computes: resuming elsewhere is allowed.
    diff = [k for k in TrainConfig.model_fields if k != "device" and getattr(old, k) != getattr(cfg, k)]
    if diff:
        shown = ", ".join(f"{k}: {getattr(old, k)!r} -> {getattr(cfg, k)!r}" for k in diff[:4])
        raise PolyretError(
            f"--resume: the config differs from the one {out} was started with ({shown}); "
            "a resumed run must use the same config"
        )


def _open_run_dir(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, world: int):
    """The run dir under polyret.io's output-folder policy; returns the OutputDir (not yet entered).

    A run dir that was started but holds no complete checkpoint (e.g. the model failed to load, or it
    was killed before the first save) holds nothing worth keeping: a plain re-run starts it afresh and
    `--resume` starts from step 0. One with a complete checkpoint needs `--resume` or `--overwrite`.
    """
    if overwrite and resume:
        raise PolyretError("--resume and --overwrite contradict each other; pick one")
    if overwrite and world > 1:
        raise PolyretError("--overwrite is not supported under torchrun (the processes would need one temporary "
                           "folder); remove the old run yourself or choose another --out")
    target = OutputDir(out, "train", overwrite=overwrite, reuse=resume, legacy_files=(RUN_JSON,),
                       legacy_partial_files=("config.yaml",))
    if resume:
        if target.state == "empty":
            raise PolyretError(f"--resume: {out} is not a polyret training run (it is empty or missing)")
        _check_resume_config(cfg, out)
    elif target.state == "incomplete" and not overwrite:
        if _last_checkpoint(out / CHECKPOINTS) is not None:
            raise PolyretError(
                f"{out} holds an interrupted training run; pass --resume to continue it, "
                "--overwrite to start again, or choose another --out"
            )
    return target


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint: one polyret marked complete after all its files were written
    (a checkpoint cut short by a kill lacks the marker and is skipped, never resumed from)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not ckpt_dir.is_dir():
        return None
    steps = []
    for p in ckpt_dir.iterdir():
        name = p.name
        if name.startswith(PREFIX_CHECKPOINT_DIR + "-") and name.split("-")[-1].isdigit() and (p / CHECKPOINT_COMPLETE).is_file():
            steps.append((int(name.split("-")[-1]), p))
    return str(max(steps)[1]) if steps else None


def _remove_incomplete_checkpoints(ckpt_dir: Path) -> list[str]:
    """Delete checkpoint dirs without the completion marker (ours, cut short by a kill)."""
    import shutil as _shutil

    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    removed = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            if p.is_dir() and p.name.startswith(PREFIX_CHECKPOINT_DIR + "-") and not (p / CHECKPOINT_COMPLETE).is_file():
                _shutil.rmtree(p)
                removed.append(p.name)
    return removed


def _final_path(path: str | None, work: Path, out: Path) -> str | None:
    """A path inside the working folder named as it will be after an --overwrite swap."""
    if path is None or work == out:
        return path
    p = Path(path)
    return str(out / p.relative_to(work)) if p.is_relative_to(work) else path


def _trainer_class():
    """SentenceTransformerTrainer whose checkpoints count only once complete.

    transformers writes `checkpoint-N` file by file and then rotates old checkpoints; a kill in
    between leaves a dir that `get_last_checkpoint` would pick and a resume would fail on (no
    trainer_state.json). Here rotation is held back until a marker file is written last, atomically,
    into the finished checkpoint; `_last_checkpoint` only takes marked ones.
    """
    from sentence_transformers import SentenceTransformerTrainer
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

    class PolyretTrainer(SentenceTransformerTrainer):
        def _save_checkpoint(self, model, trial):
            limit = self.args.save_total_limit
            self.args.save_total_limit = None  # no rotation before the new checkpoint is marked complete
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.args.save_total_limit = limit
            _barrier()  # every rank has written its part
            if self.args.should_save:
                run_dir = self._get_output_dir(trial=trial)
                ckpt = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
                write_json(ckpt / CHECKPOINT_COMPLETE, {"step": self.state.global_step})
                rotate_checkpoints(output_dir=run_dir, save_total_limit=limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    return PolyretTrainer


def _write_card(model_dir: Path, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    (model_dir / TRAINING_META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    card = model_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    s = meta["summary"]
    lines = [
        "",
        "",
        "## polyret training",
        "",
        "Contrastive fine-tuning with language-controlled batches (arXiv 2408.10536).",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | `{meta['base_model']}` |",
        f"| training data | {', '.join(f'`{d}`' for d in meta['data'])} ({meta['train_groups']} groups, {meta['train_pairs']} pairs; {meta['validation_groups']} groups held out) |",
        f"| unit / negatives | {s['unit']} / {s['negatives']} (k={s['n_negatives']}) |",
        f"| batch strategy | {s['strategy']} |",
        f"| α (Hybrid: P[X-X-mono batch]) | {s['alpha'] if s['alpha'] is not None else 'n/a'} |",
        f"| loss | {s['loss']}{' + symmetric' if s['symmetric'] else ''}, τ = {s['temperature']} |",
        f"| steps × batch | {meta['steps_done']} × {s['batch_size']} (× {meta['world_size']} processes) |",
        f"| lr / max length | {s['lr']} / {s['max_seq_length']} |",
        f"| seed | {s['seed']} |",
        f"| best checkpoint | {meta.get('best_checkpoint') or 'last'} |",
        "",
    ]
    card.write_text(text + "\n".join(lines), encoding="utf-8")


# Parallel groups the stored correction is fitted on: 200 premises x 2 sentences per language estimate
# a mean to well within the spread between languages, and keep the fit to ~12k short encodes.
CORRECTION_GROUPS = 200


def store_language_correction(model_dir: Path, method: str, *, show_progress: bool = True) -> Path:
    """Fit `method` for the trained model on XNLI dev's alignment side and store it in its dir."""
    groups = xnli_parallel_groups(data_path("xnli"), side="align", max_groups=CORRECTION_GROUPS)
    model = load_model(str(model_dir))
    corr = fit_model_correction(
        model, method, groups=groups, show_progress=show_progress,
        source=f"XNLI dev alignment side ({len(groups)} premises x {len(groups[0].queries)} languages)",
    )
    return corr.save(model_dir)


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
    measure steps, as benchmarks/train.py does), added after polyret's own."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub during training
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(config)
    out = Path(out_dir)
    rank, world = _rank(), _world_size()

    # Device and precision first: an impossible request (no GPU, bad index, nccl on CPU) fails before any work.
    device = runtime.resolve_device(device) if device is not None else runtime.device_for(cfg.device)
    precision = runtime.precision_for(device, cfg.bf16)
    from polyret.train_args import validate_trainer_args

    validate_trainer_args(cfg.trainer_args, device=device)  # e.g. nccl on a CPU: an error before any work

    if resume and (out / RUN_JSON).is_file():
        done = json.loads((out / RUN_JSON).read_text(encoding="utf-8"))
        if done.get("status") == "complete":
            _check_resume_config(cfg, out)
            return Path(done["final_model"])
    # The output-folder policy (polyret.io), checked by the process that writes (rank 0).
    target = _open_run_dir(cfg, out, resume, overwrite, world) if rank == 0 else None

    # Data before any write: a data error leaves no half-made run dir.
    from polyret.batches import PairTable

    groups = load_training_groups(cfg)
    train_groups, val_groups = split_validation(groups, cfg.validation_groups, cfg.seed)
    train_table = PairTable.from_groups(train_groups, n_negatives=cfg.n_negatives, seed=cfg.seed)
    train_ds = train_table.to_dataset()
    val_table = val_ds = None
    if val_groups:
        val_table = PairTable.from_groups(val_groups, n_negatives=cfg.n_negatives, seed=cfg.seed)
        val_ds = val_table.to_dataset()
    sampler_factory = _sampler_factory(train_table, cfg, eval_table=val_table)
    if world == 1:  # under DDP the sampler's global batch depends on the process group, built later
        _check_sampler(sampler_factory, train_ds, cfg.batch_size, "training data")
        if val_ds is not None:
            _check_sampler(
                sampler_factory, val_ds, cfg.batch_size,
                f"validation data ({len(val_groups)} held-out groups; raise validation_groups)",
            )

    import torch

    from polyret.losses import build_loss

    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, device=device)  # before anything is written: a bad model path leaves no half-made run dir

    # `work` is where this run writes (a sibling temporary folder under --overwrite, swapped in at the
    # end); `out` is where the run lives afterwards (paths recorded in run.json name `out`).
    work = out
    if rank == 0:
        if not resume and not target.fresh and target.state == "incomplete":  # no complete checkpoint: start afresh
            for p in out.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        work = target.__enter__().path
        if resume:
            _remove_incomplete_checkpoints(work / CHECKPOINTS)
        if not resume or not (work / "config.yaml").is_file():
            dump_train_config(cfg, work / "config.yaml")
            write_groups_jsonl(val_groups, work / VALIDATION_GROUPS)
    ckpt_dir = work / CHECKPOINTS
    resume_from = _last_checkpoint(ckpt_dir) if resume else None
    base_max_length = model.max_seq_length
    model.max_seq_length = cfg.max_seq_length  # a training-time truncation, not a property of the result
    teacher = copy.deepcopy(model) if cfg.teacher_weight > 0 else None  # the base, frozen, before any step
    frozen = freeze_word_embeddings(model) if cfg.freeze_word_embeddings else 0
    if cfg.train_layers:
        frozen += train_top_layers(model, cfg.train_layers)
    loss = build_loss(
        model, cfg.loss, temperature=cfg.temperature, symmetric=cfg.symmetric,
        gather_across_devices=cfg.gather_across_ranks and world > 1, mini_batch_size=cfg.mini_batch_size,
    )
    if teacher is not None:
        from polyret.losses import teacher_anchored

        loss = teacher_anchored(model, loss, teacher, cfg.teacher_weight)  # GradCache'd when the loss is

    validating = val_ds is not None
    base_args = dict(
        output_dir=str(ckpt_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # < 1 means a fraction of max_steps
        lr_scheduler_type=cfg.scheduler,
        optim=cfg.optimizer,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        batch_sampler=sampler_factory,
        prompts=_prompts(model, cfg.n_negatives),
        eval_strategy="steps" if validating else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=validating and cfg.keep_best,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=cfg.logging_steps,
        report_to="none",
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
    )
    from polyret.train_args import training_arguments

    args = training_arguments(device, precision, world, base_args, cfg.trainer_args)

    callbacks = [make_log_callback(work / TRAIN_LOG, resume_from), *(callbacks or [])]
    if cfg.early_stopping_patience is not None and validating:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, loss=loss, callbacks=callbacks
    )
    if cfg.log_batches:
        log_path = work / f"batch_log.rank{rank}.jsonl"
        if not resume:
            log_path.unlink(missing_ok=True)
        batch_log = BatchLoggingCollator(trainer.data_collator, train_table, log_path)
        trainer.data_collator = batch_log
        trainer.add_callback(batch_log.step_callback())
    _barrier()

    t0 = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    except BaseException as e:
        if target is not None:
            target.__exit__(type(e), e, e.__traceback__)  # a temp folder goes; an in-place run dir stays resumable
        raise
    wall = time.perf_counter() - t0

    model_dir = work / MODEL_DIR
    final = out / MODEL_DIR
    if trainer.is_world_process_zero():
        if model_dir.exists():
            shutil.rmtree(model_dir)
        trainer.model.max_seq_length = base_max_length
        trainer.model.save(str(model_dir))
        steps_run = trainer.state.global_step - (int(Path(resume_from).name.split("-")[-1]) if resume_from else 0)
        meta = {
            "base_model": cfg.model,
            "data": [d if d == XNLI_ALIGN else str(resolve_data_path(d)) for d in cfg.data],
            "summary": cfg.summary(),
            "steps_done": trainer.state.global_step,
            "world_size": world,
            "train_groups": len(train_groups),
            "train_pairs": len(train_ds),
            "validation_groups": len(val_groups),
            "frozen_parameters": frozen,
            "best_checkpoint": _final_path(trainer.state.best_model_checkpoint, work, out),
            "best_validation_loss": trainer.state.best_metric,
        }
        _write_card(model_dir, cfg, meta)
        if cfg.merge_weight is not None:
            from polyret.merge import merge_models

            merge_models(cfg.model, model_dir, cfg.merge_weight, work / MERGED_DIR, overwrite=True)
            final = out / MERGED_DIR
        if cfg.language_correction != "none":  # each model dir gets statistics of its own weights
            for d in dict.fromkeys([model_dir, work / MERGED_DIR if cfg.merge_weight is not None else model_dir]):
                store_language_correction(d, cfg.language_correction, show_progress=show_progress)
        pairs = steps_run * cfg.batch_size * world
        run = {
            "status": "complete",
            "final_model": str(final),
            "model": str(out / MODEL_DIR),
            "merged": str(out / MERGED_DIR) if cfg.merge_weight is not None else None,
            "steps": trainer.state.global_step,
            "steps_this_invocation": steps_run,
            "resumed_from": resume_from,
            "wall_seconds": round(wall, 1),
            "train_runtime": result.metrics.get("train_runtime"),
            "pairs_per_second": round(pairs / wall, 2) if wall > 0 else None,
            "best_checkpoint": _final_path(trainer.state.best_model_checkpoint, work, out),
            "best_validation_loss": trainer.state.best_metric,
            "runtime": runtime.describe(device, precision),
            "in_batch_negatives": {  # what one query's softmax ran over, under DDP and GradCache
                "across_ranks": bool(cfg.loss == "in-batch" and cfg.gather_across_ranks and world > 1),
                "pool_rows": cfg.batch_size * (world if cfg.gather_across_ranks and world > 1 else 1),
                "mini_batch_size": cfg.mini_batch_size,
            },
            "config": cfg.summary(),
        }

        write_json(work / RUN_JSON, run)
        target.commit()
    elif cfg.merge_weight is not None:
        final = out / MERGED_DIR
    _barrier()
    return final
