"""The one mapping from a TrainConfig to sentence-transformers' training arguments.

`trainer_arguments(cfg, device=..., ...)` builds the `SentenceTransformerTrainingArguments` polyret
trains with, from:

- the config keys (`config_kwargs`; `OWNED_BY_POLYRET` names the config key behind each field);
- device: the resolved `polyret.runtime.resolve_device` string. CPU = `use_cpu=True`; CUDA under
  torchrun = accelerate's one GPU per process (`cuda:<LOCAL_RANK>`); CUDA in one process = exactly the
  GPU asked for, never `nn.DataParallel` over every visible GPU (the HF default), because DataParallel
  would also multiply the batch size by the GPU count behind the sampler's back;
- precision: `bf16` / `fp16` (autocast; fp16 with the trainer's loss scaling) / `fp32`;
- DDP backend: nccl on GPUs, gloo on CPU (`polyret.runtime.check_ddp_backend`);
- `trainer_args`: any further `SentenceTransformerTrainingArguments` field (gradient accumulation,
  report_to, logging, ...) by its Hugging Face name. Unknown names, and names polyret sets from its own
  config keys, are one clear error naming the key.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any

from sentence_transformers import SentenceTransformerTrainingArguments

from polyret.errors import PolyretError
from polyret.runtime import check_ddp_backend, device_type, trainer_precision_args

# Fields polyret derives from its own config / device decision: set them there, not in trainer_args.
OWNED_BY_POLYRET = {
    "output_dir": "the run directory (--out)",
    "max_steps": "steps",
    "per_device_train_batch_size": "batch_size",
    "per_device_eval_batch_size": "batch_size",
    "learning_rate": "lr",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup_ratio",
    "lr_scheduler_type": "scheduler",
    "optim": "optimizer",
    "max_grad_norm": "max_grad_norm",
    "seed": "seed",
    "data_seed": "seed",
    "batch_sampler": "strategy (polyret's batch samplers)",
    "multi_dataset_batch_sampler": "strategy (polyret's batch samplers)",
    "prompts": "the model's prompts",
    "eval_strategy": "validation_groups / eval_steps",
    "eval_steps": "eval_steps",
    "save_strategy": "save_steps",
    "save_steps": "save_steps",
    "save_total_limit": "save_total_limit",
    "load_best_model_at_end": "keep_best",
    "metric_for_best_model": "keep_best (validation loss)",
    "greater_is_better": "keep_best (validation loss)",
    "logging_steps": "logging_steps",
    "use_cpu": "device (--device)",
    "bf16": "bf16",
    "fp16": "bf16 (auto picks fp16 on GPUs without bf16)",
    "disable_tqdm": "--progress/--no-progress",
    "resume_from_checkpoint": "--resume",
}


def validate_trainer_args(
    trainer_args: dict[str, Any] | None, source: str = "trainer_args", device: str | None = None
) -> dict[str, Any]:
    """Check every key is a SentenceTransformerTrainingArguments field polyret does not set itself
    (and, given the run's device, that a `ddp_backend` fits it: nccl needs CUDA)."""
    if not trainer_args:
        return {}
    if not isinstance(trainer_args, dict):
        raise PolyretError(f"{source}: must be a mapping of Hugging Face TrainingArguments names to values")
    fields = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    for key in trainer_args:
        if key in OWNED_BY_POLYRET:
            raise PolyretError(f"{source}: '{key}' is set by polyret from '{OWNED_BY_POLYRET[key]}'; set that instead")
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(str(key), fields, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PolyretError(
                f"{source}: unknown key '{key}': not a sentence-transformers / Hugging Face TrainingArguments "
                f"field{hint}"
            )
    if device is not None and trainer_args.get("ddp_backend") is not None:
        check_ddp_backend(trainer_args["ddp_backend"], device)
    return dict(trainer_args)


@dataclasses.dataclass
class PolyretTrainingArguments(SentenceTransformerTrainingArguments):
    """Pins a single-process CUDA run to the GPU polyret resolved (no DataParallel).

    Module-level (not built in a function) because the trainer pickles its arguments into every
    checkpoint (training_args.bin).
    """

    polyret_device: str | None = dataclasses.field(default=None, metadata={"help": "resolved polyret device"})

    @cached_property
    def _setup_devices(self):
        import torch

        device = super()._setup_devices
        want = self.polyret_device
        if want and want.startswith("cuda") and self.parallel_mode.value != "distributed":
            device = torch.device(want)
            torch.cuda.set_device(device)
            self._n_gpu = 1
        return device


def device_kwargs(device: str, precision: str, world: int, backend: str | None = None) -> dict[str, Any]:
    """The TrainingArguments keys that follow from the device decision."""
    out: dict[str, Any] = {
        "use_cpu": device_type(device) == "cpu",
        "polyret_device": device,
        **trainer_precision_args(precision),
    }
    if world > 1 or backend is not None:  # an impossible request is an error even in one process
        out["ddp_backend"] = check_ddp_backend(backend, device)
    return out


def training_arguments(
    device: str, precision: str, world: int, base: dict[str, Any], trainer_args: dict[str, Any] | None = None
):
    """SentenceTransformerTrainingArguments from polyret's keys + the device decision + the passthrough."""
    extra = validate_trainer_args(trainer_args)
    kwargs = {**base, **device_kwargs(device, precision, world, extra.pop("ddp_backend", None)), **extra}
    try:
        return PolyretTrainingArguments(**kwargs)
    except (ValueError, TypeError) as e:
        raise PolyretError(f"trainer_args: Hugging Face rejected the training arguments: {e}") from None


def config_kwargs(
    cfg, *, output_dir: str, sampler_factory, prompts: dict[str, str] | None, validating: bool, show_progress: bool
) -> dict[str, Any]:
    """The TrainingArguments keys polyret sets from its TrainConfig (`OWNED_BY_POLYRET` names each one's source)."""
    return dict(
        output_dir=output_dir,
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
        prompts=prompts,
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


def trainer_arguments(
    cfg,
    *,
    device: str,
    precision: str,
    world: int,
    output_dir: str,
    sampler_factory,
    prompts: dict[str, str] | None,
    validating: bool,
    show_progress: bool,
):
    """The run's SentenceTransformerTrainingArguments: config keys, device decision, `cfg.trainer_args`."""
    base = config_kwargs(
        cfg,
        output_dir=output_dir,
        sampler_factory=sampler_factory,
        prompts=prompts,
        validating=validating,
        show_progress=show_progress,
    )
    return training_arguments(device, precision, world, base, cfg.trainer_args)
