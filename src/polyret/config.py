"""Training configuration: one pydantic model, loaded from YAML, overridable from the CLI.

Unknown keys are rejected (a typo must not silently fall back to a default), and every error names
the file and the key. `load_train_config(path, overrides)` is what `polyret train` and the experiment
grid call; the resolved config is written next to the run so a run dir always says what it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from polyret.errors import PolyretError
from polyret.io import read_text, write_text

Strategy = Literal["x-x-mono", "x-x", "x-y", "hybrid"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)  # the one list (batches, experiment grid, CLI help)


class TrainConfig(BaseModel):
    """Everything a training run depends on. Field docs double as the README's key table."""

    # strict: YAML 1.1 reads `steps: yes` as True, and lax pydantic would take it as 1 step; a number
    # written as a string ("300") is refused too. (An int is still accepted where a float is expected.)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)

    # --- what to train --------------------------------------------------------------------------
    model: str = Field("default", description="base encoder: 'default', a local model dir, or a hub id")
    data: list[str] = Field(
        default_factory=lambda: ["mlqa-test"],
        description="training sets: groups JSONL files or source dirs/files (MLQA, LAReQA, TyDi); "
        "relative paths are tried against the config file's dir, the cwd, then the data dir",
    )
    unit: Literal["sentence", "paragraph"] = Field(
        "paragraph",
        description="passage unit built from QA contexts: the answer's sentence, or the whole context "
        "(the default, because the MLQA test files carry no answer positions)",
    )
    answerless: Literal["error", "overlap"] = Field(
        "error",
        description="sentence unit, QA records without an answer (the data dir's MLQA test copy): error, or "
        "overlap (the sentence sharing most character n-grams with the question; ~.75-.82 agreement with gold)",
    )
    negatives: Literal["none", "same-paragraph"] = Field(
        "none",
        description="hard negatives to build; same-paragraph also makes the held-out groups a LAReQA-shaped "
        "pool (the answer sentence among its paragraph's sentences), even with n_negatives 0",
    )
    n_negatives: int = Field(0, ge=0, le=16, description="hard-negative columns per row (0 = pairs only)")
    negatives_language: Literal["passage", "query"] = Field(
        "passage",
        description="language of a row's hard negatives: the passage's (its paragraph's other sentences), or "
        "the query's (distractors in the question's own language that answer nothing: what crowds a "
        "multilingual pool; from the group's paragraph in that language, else other groups' passages in it)",
    )

    # --- batches --------------------------------------------------------------------------------
    strategy: Strategy = Field("hybrid", description="batch strategy: x-x-mono | x-x | x-y | hybrid")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Hybrid: probability of an X-X-mono batch")
    dataset_temperature: float = Field(1.0, gt=0.0, description="several training sets: draw a set with p ∝ size^(1/T)")
    batch_size: int = Field(32, ge=2, description="pairs per batch (per process under DDP)")

    # --- loss -----------------------------------------------------------------------------------
    loss: Literal["in-batch", "eq1"] = Field(
        "in-batch",
        description="in-batch: InfoNCE over other rows' positives + all hard negatives; "
        "eq1: the paper's Eq. 1, positive vs its own hard negatives only",
    )
    temperature: float = Field(0.05, gt=0.0, le=1.0, description="τ (logits are cos/τ)")
    symmetric: bool = Field(False, description="add the passage→query in-batch term")
    gather_across_ranks: bool = Field(
        True,
        description="under DDP, in-batch negatives from every process's rows (the global batch), "
        "not just this process's; no effect in one process",
    )
    mini_batch_size: int | None = Field(
        None,
        ge=1,
        description="GradCache: compute the in-batch loss this many rows at a time (same loss and gradients, "
        "memory set by mini_batch_size instead of batch_size); in-batch loss only",
    )
    teacher_weight: float = Field(
        0.0,
        ge=0.0,
        description="β: add β × cosine distance of every text's embedding to the frozen base model's "
        "embedding of it (keeps what the base knew; 0 = off)",
    )
    teacher_cross: float = Field(
        0.0,
        ge=0.0,
        description="β_x: add β_x × cosine distance of every anchor / positive text that has an English source "
        "(a translation in its group) to the frozen base model's embedding of that English text, summed and "
        "divided by the batch's texts (multilingual distillation's cross term, arXiv 2004.09813; 0 = off)",
    )

    # --- optimisation ---------------------------------------------------------------------------
    steps: int = Field(300, ge=1, description="optimizer steps")
    lr: float = Field(3e-5, gt=0.0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    scheduler: Literal["linear", "constant_with_warmup", "cosine"] = "linear"
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "sgd"] = "adamw_torch"
    max_grad_norm: float = Field(1.0, gt=0.0)
    max_seq_length: int = Field(64, ge=8, le=512, description="tokens per text (64–128 is CPU-practical)")
    bf16: bool | Literal["auto"] = Field(
        "auto",
        description="bf16 autocast; auto = only on CPUs with native bf16 (AVX512-BF16/AMX), where it is "
        "faster: elsewhere it is emulated and measured ~3x slower than float32",
    )
    freeze_word_embeddings: bool = Field(
        True, description="freeze the 250k-token embedding table (most of the model's parameters)"
    )
    train_layers: int | None = Field(
        None,
        ge=1,
        description="train only the top N transformer layers (the rest frozen: cheaper steps, less "
        "forgetting); None = all layers",
    )
    seed: int = 42
    device: str = Field(
        "auto",
        description="auto (CUDA if present, else CPU) | cpu | cuda | cuda:N | mps; --device overrides it. "
        "Not part of a run's identity: a run may be resumed on another device",
    )
    trainer_args: dict[str, Any] = Field(
        default_factory=dict,
        description="further sentence-transformers / Hugging Face TrainingArguments by their own names "
        "(gradient_accumulation_steps, report_to, logging_dir, ...); unknown names are an error",
    )

    # --- validation, checkpoints, logging -------------------------------------------------------
    validation_groups: int = Field(
        300, ge=0, description="training groups held out for validation loss / best checkpoint / recipe pool"
    )
    validation_seed: int | None = Field(
        None,
        description="seed of the held-out split (None = seed): fix it to compare seeds on one held-out pool",
    )
    validation_sources: list[str] | None = Field(
        None,
        description="training sets the held-out groups are drawn from (None = all): recipes that add a set "
        "keep the same held-out pool",
    )
    eval_steps: int = Field(50, ge=1, description="validate every N steps")
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps")
    save_total_limit: int | None = Field(2, ge=1, description="checkpoints kept (None = all)")
    keep_best: bool = Field(True, description="end on the checkpoint with the lowest validation loss")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="stop when the validation loss has not improved for this many evaluations "
        "(transformers' EarlyStoppingCallback; needs keep_best)",
    )
    logging_steps: int = Field(10, ge=1)
    log_batches: bool = Field(
        False, description="write batch_log.rank<R>.jsonl: each training batch's type and languages, per rank"
    )

    # --- after training -------------------------------------------------------------------------
    merge_weight: float | None = Field(
        None, ge=0.0, le=1.0, description="λ: also write θ=(1−λ)θ_base+λθ_tuned to <out>/merged"
    )
    language_correction: Literal["none", "center", "center-both", "lir", "procrustes", "rotate"] = Field(
        "none",
        description="fit this language-bias correction for the final model on the XNLI dev alignment "
        "side and store it in the model dir (evaluations then apply it automatically)",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> "TrainConfig":
        if self.loss == "eq1" and self.n_negatives == 0:
            raise ValueError("loss 'eq1' compares the positive with hard negatives only: set n_negatives >= 1")
        if self.mini_batch_size is not None and self.loss != "in-batch":
            raise ValueError("mini_batch_size (GradCache) works with loss 'in-batch' only")
        if self.n_negatives > 0 and self.negatives == "none":
            raise ValueError("n_negatives > 0 needs negatives: same-paragraph")
        if not self.data:
            raise ValueError("data: give at least one training set")
        if self.n_negatives == 0 and self.negatives_language != "passage":
            raise ValueError("negatives_language chooses hard negatives: set n_negatives >= 1")
        if self.keep_best and self.validation_groups == 0:
            raise ValueError("keep_best needs validation_groups > 0")
        if self.early_stopping_patience is not None and not self.keep_best:
            raise ValueError("early_stopping_patience needs keep_best: true (it stops on the validation loss)")
        if self.keep_best and self.save_steps % self.eval_steps:
            raise ValueError("keep_best needs save_steps to be a multiple of eval_steps")
        return self

    def summary(self) -> dict[str, Any]:
        """The facts a model card and a report table name."""
        return {
            "model": self.model,
            "data": self.data,
            "unit": self.unit,
            "answerless": self.answerless,
            "strategy": self.strategy,
            "alpha": self.alpha if self.strategy == "hybrid" else None,
            "loss": self.loss,
            "temperature": self.temperature,
            "symmetric": self.symmetric,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
            "max_seq_length": self.max_seq_length,
            "negatives": self.negatives if self.n_negatives else "none",
            "n_negatives": self.n_negatives,
            "negatives_language": self.negatives_language,
            "teacher_weight": self.teacher_weight,
            "teacher_cross": self.teacher_cross,
            "train_layers": self.train_layers,
            "language_correction": self.language_correction,
        }


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(config)"
    if first["type"] == "extra_forbidden":
        known = ", ".join(TrainConfig.model_fields)
        return f"{source}: unknown key '{key}' (known keys: {known})"
    msg = first["msg"].removeprefix("Value error, ")
    if key == "(config)":
        return f"{source}: {msg}"
    return f"{source}: key '{key}': {msg} (got {first.get('input')!r})"


def read_yaml_mapping(path: str | Path, what: str, expected: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file is {}); one clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise PolyretError(f"{path}: {what} not found")
    try:
        loaded = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise PolyretError(f"{path}: not valid YAML ({e})") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise PolyretError(f"{path}: the top level must be a mapping of {expected}")
    return loaded


def config_from_dict(raw: dict[str, Any], source: str = "<config>") -> TrainConfig:
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise PolyretError(_format_validation_error(e, source)) from None


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """YAML file (or None for all defaults) + overrides (None values ignored) -> validated config.

    Relative `data` entries in the file are resolved later against the file's directory too
    (see `polyret.train.resolve_data_paths`); we record that directory here.
    """
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        raw.update(read_yaml_mapping(path, "config file", "keys to values"))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in TrainConfig.model_fields:
            raise PolyretError(
                f"override '{key}' is not a config key (known keys: {', '.join(TrainConfig.model_fields)})"
            )
        raw[key] = value
    if isinstance(raw.get("data"), str):
        raw["data"] = [raw["data"]]
    if path is not None and isinstance(raw.get("data"), list):
        # Paths written relative to the config file mean relative to that file.
        base = Path(path).resolve().parent
        raw["data"] = [
            str(base / d) if isinstance(d, str) and not Path(d).is_absolute() and (base / d).exists() else d
            for d in raw["data"]
        ]
    cfg = config_from_dict(
        raw, source + (" + overrides" if overrides and any(v is not None for v in overrides.values()) else "")
    )
    return cfg


def dump_train_config(cfg: TrainConfig, path: str | Path) -> None:
    write_text(path, yaml.safe_dump(cfg.model_dump(), sort_keys=False, allow_unicode=True))
