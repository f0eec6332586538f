"""`polyret train` (hybrid-batch fine-tuning) and `polyret merge` (weight-space merge with the base).

Both also run under `torchrun --nproc_per_node=N -m polyret train ...` (DDP, gloo on CPU).
"""

from __future__ import annotations

from typing import Optional

import typer

from polyret.cli.app import app, console, use_device
from polyret.cli.options import (
    Config,
    Device,
    OptionalBatchSize,
    OptionalModel,
    OptionalSeed,
    OutDir,
    Overwrite,
    Progress,
)
from polyret.errors import PolyretError
from polyret.runtime import rank


# polyret.config.STRATEGIES, spelled out (importing the config module would load pydantic for --help);
# tests/test_cli_vocabulary.py keeps them equal.
STRATEGY_HELP = "Batch strategy: x-x-mono | x-x | x-y | hybrid."


@app.command("train")
def train_command(
    out: OutDir = ...,
    config: Config = None,
    strategy: Optional[str] = typer.Option(None, "--strategy", help=STRATEGY_HELP),
    alpha: Optional[float] = typer.Option(
        None, "--alpha", min=0.0, max=1.0, help="Hybrid: probability of an X-X-mono batch."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimizer steps."),
    batch_size: OptionalBatchSize = None,
    seed: OptionalSeed = None,
    model: OptionalModel = None,
    merge_weight: Optional[float] = typer.Option(
        None, "--merge-weight", min=0.0, max=1.0, help="Also write <out>/merged with λ."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: Overwrite = False,
    progress: Progress = True,
    device: Device = None,
) -> None:
    """Fine-tune an encoder with X-X-mono / X-X / X-Y / Hybrid(α) batches (arXiv 2408.10536).

    --out is the run folder (model/, checkpoints/, train_log.jsonl, run.json); options given here
    override the --config file's (--model default: the config's base model)."""
    from polyret.config import STRATEGIES, load_train_config
    from polyret.train import RUN_JSON, train

    if device is not None:
        use_device(device)  # otherwise the config's device (train resolves it before any work)
    if strategy is not None and strategy not in STRATEGIES:
        raise PolyretError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if resume and overwrite:
        raise PolyretError("--resume and --overwrite contradict each other; pick one")
    overrides = {
        "strategy": strategy,
        "alpha": alpha,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "model": model,
        "merge_weight": merge_weight,
    }
    cfg = load_train_config(config, overrides)
    if resume and config is None and (out / "config.yaml").is_file():
        cfg = load_train_config(out / "config.yaml", overrides)
    final = train(cfg, out, resume=resume, show_progress=progress, overwrite=overwrite, device=device)
    if rank() == 0:
        import json

        run = json.loads((out / RUN_JSON).read_text(encoding="utf-8"))
        console.print(
            f"[green]trained[/] {run['steps']} steps in {run['wall_seconds']:.0f} s "
            f"({run['pairs_per_second']} pairs/s); best validation loss {run['best_validation_loss']}"
        )
        print(final)


@app.command("merge")
def merge_command(
    base: str = typer.Option(..., "--base", help="Base model: 'default' or a model dir."),
    tuned: str = typer.Option(..., "--tuned", help="Fine-tuned model dir (same architecture)."),
    weight: float = typer.Option(..., "--weight", help="λ in θ = (1−λ)·θ_base + λ·θ_tuned, in [0, 1]."),
    out: OutDir = ...,
    overwrite: Overwrite = False,
) -> None:
    """Interpolate a fine-tuned model with its base in weight space; --out is the merged model's folder."""
    from rich.markup import escape

    from polyret.merge import merge_models

    path = merge_models(base, tuned, weight, out, overwrite=overwrite)
    console.print(f"[green]merged[/] λ={weight:g}: (1−λ)·{escape(base)} + λ·{escape(tuned)}")
    print(path)
