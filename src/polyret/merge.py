"""Weight-space merge of a fine-tuned encoder with its base: θ = (1 − λ)·θ_base + λ·θ_tuned.

Why hand-written: sentence-transformers' `SentenceTransformer.merge` delegates to mergekit (an LLM
merging toolkit with a heavy dependency tree) for what is, for two models, one linear interpolation
per tensor. We do that interpolation here on the state dicts, after checking both models have the
same tensors and shapes; the result is saved as an ordinary sentence-transformers dir whose model
card (README.md) and `polyret_merge.json` record λ, base and tuned.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from polyret.errors import PolyretError
from polyret.io import output_dir, write_json, write_text
from polyret.model import check_loaded_model, check_model_dir, load_model

MERGE_META = "polyret_merge.json"


def _load(model_or_path, role: str):
    from sentence_transformers import SentenceTransformer

    if isinstance(model_or_path, SentenceTransformer):
        name = getattr(model_or_path, "_polyret_source", None) or "<in-memory model>"
        check_loaded_model(model_or_path, f"{role} model {name}")
        return model_or_path, name

    name = str(model_or_path)
    try:
        return load_model(name), name
    except PolyretError:
        raise
    except Exception as e:  # a dir that is not a model, a missing hub id offline, ...
        raise PolyretError(f"{role} model {name!r} could not be loaded ({type(e).__name__}: {e})") from None


@torch.no_grad()
def interpolate_state_dicts(
    base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """(1 − weight)·base + weight·tuned for floating tensors; integer buffers (ids) come from base."""
    if set(base) != set(tuned):
        only_base = sorted(set(base) - set(tuned))[:3]
        only_tuned = sorted(set(tuned) - set(base))[:3]
        raise PolyretError(
            f"the models have different parameters (only in base: {only_base}, only in tuned: {only_tuned}); "
            "merge needs a fine-tune of the same base architecture"
        )
    out = {}
    for name, b in base.items():
        t = tuned[name]
        if b.shape != t.shape:
            raise PolyretError(f"parameter {name!r} has shape {tuple(b.shape)} in base but {tuple(t.shape)} in tuned")
        if b.is_floating_point():
            out[name] = ((1.0 - weight) * b.double() + weight * t.double()).to(b.dtype)
        else:
            out[name] = b.clone()
    return out


def merge_models(base, tuned, weight: float, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write θ = (1 − λ)·θ_base + λ·θ_tuned (λ = `weight`) to `out` and return `out`.

    `base` / `tuned`: a model name ('default'), a model dir, or a loaded SentenceTransformer.
    λ = 0 gives the base back, λ = 1 the tuned model.
    """
    if not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise PolyretError(f"merge weight λ must be in [0, 1] (got {weight!r})")
    weight = float(weight)

    # The output-folder policy (polyret.io) before anything is loaded: --out equal to or inside --tuned /
    # --base is refused, and --overwrite replaces an earlier merge only once the new one is complete.
    target = output_dir(
        out,
        "merged-model",
        overwrite=overwrite,
        legacy_files=(MERGE_META,),
        inputs=[m for m in (base, tuned) if isinstance(m, (str, Path))],
    )
    base_model, base_name = _load(base, "base")
    tuned_model, tuned_name = _load(tuned, "tuned")

    merged_state = interpolate_state_dicts(base_model.state_dict(), tuned_model.state_dict(), weight)
    # The tuned model carries the structure we save (modules, tokenizer, prompts); only weights change.
    # A caller's in-memory model is copied first so it is left as it was.
    from sentence_transformers import SentenceTransformer

    result = copy.deepcopy(tuned_model) if isinstance(tuned, SentenceTransformer) else tuned_model
    result.load_state_dict(merged_state)
    meta = {
        "merge": "linear",
        "weight": weight,
        "base": base_name,
        "tuned": tuned_name,
        "formula": "theta = (1 - weight) * theta_base + weight * theta_tuned",
    }
    with target:
        result.save(str(target.path))
        write_json(target.path / MERGE_META, meta)
        _append_card(target.path, meta)
        # The loaders' check on what was just written: success only for a folder every command can load.
        check_model_dir(target.path)
    return target.final


def _append_card(out: Path, meta: dict) -> None:
    card = out / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    text += (
        "\n\n## polyret weight-space merge\n\n"
        f"θ = (1 − λ)·θ_base + λ·θ_tuned with **λ = {meta['weight']:g}**\n\n"
        f"- base: `{meta['base']}`\n- tuned: `{meta['tuned']}`\n"
    )
    write_text(card, text)
