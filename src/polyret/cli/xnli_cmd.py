"""`polyret eval xnli` (zero-shot cross-lingual NLI) and `polyret eval tatoeba` (bitext retrieval)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.markup import escape

from polyret.cli.app import console, device_option, eval_app, measured_settings, say_if_rerun, split_csv, use_device
from polyret.errors import PolyretError
from polyret.evaluate.tatoeba import evaluate_tatoeba
from polyret.evaluate.xnli import evaluate_xnli
from polyret.io import OutputDir
from polyret.paths import data_path


def _prompt_kind(prompt: str) -> str | None:
    if prompt not in ("query", "passage", "none"):
        raise PolyretError(f"--prompt must be query, passage or none, not {prompt!r}")
    return None if prompt == "none" else prompt


def _data_dir(given: Optional[Path], sub: str) -> Path:
    if given is not None:
        return given

    return data_path(sub)


@eval_app.command("xnli")
def eval_xnli(
    out: Path = typer.Option(..., "--out", help="Output directory (results.json, report.md, xnli_bars.png)."),
    model: str = typer.Option("default", "--model", help="Model name or directory."),
    data: Optional[Path] = typer.Option(None, "--data", help="XNLI directory with <split>-<lang>.tsv (default: <data>/xnli)."),
    split: str = typer.Option("dev", "--split", help="Split file prefix to evaluate: dev or test."),
    english_train: Optional[str] = typer.Option(
        None, "--english-train",
        help="Comma-separated English training data: snli:dev, snli:test, sick:TRAIN, or TSV paths "
        "(default: snli:dev,sick:TRAIN).",
    ),
    langs: Optional[str] = typer.Option(None, "--langs", help="Comma-separated languages (default: every file of the split)."),
    low_resource: str = typer.Option("sw,ur", "--low-resource", help="Languages for the low-resource block."),
    prompt: str = typer.Option("query", "--prompt", help="Encoder prompt: query, passage or none."),
    cs: str = typer.Option("0.0001,0.0003,0.001,0.003,0.01", "--cs", help="Logistic-regression C values to select from on English dev."),
    fine_tune_steps: int = typer.Option(0, "--fine-tune-steps", help="Fine-tune the encoder with the head for N steps instead of freezing it (slow)."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Only the first N rows of each XNLI file (quick runs)."),
    rows: str = typer.Option("all", "--rows", help="all, or eval-side: only XNLI dev's evaluation side (for models aligned or trained on its alignment side)."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Only the first N English training pairs."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing results.json in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    device: Optional[str] = device_option(),
) -> None:
    """Zero-shot cross-lingual XNLI: English-only classifier over frozen embeddings, every language scored."""
    use_device(device)
    try:
        c_values = [float(c) for c in split_csv(cs) or []]
    except ValueError:
        raise PolyretError(f"--cs must be comma-separated numbers, not {cs!r}") from None

    prompt_kind = _prompt_kind(prompt)
    xnli_dir = _data_dir(data, "xnli")
    settings = measured_settings(model=model, data=xnli_dir, split=split, english_train=english_train, langs=langs,
                                 low_resource=low_resource, prompt=prompt, cs=cs, fine_tune_steps=fine_tune_steps,
                                 max_rows=max_rows, rows=rows, max_train=max_train, seed=seed)
    target = OutputDir(out, "eval-xnli", overwrite=overwrite, inputs=[xnli_dir, Path(model)], legacy_files=("results.json",),
                       settings=settings)
    say_if_rerun(target)
    res = evaluate_xnli(
        model,
        xnli_dir,
        split=split,
        english_train=english_train,
        langs=split_csv(langs),
        low_resource=split_csv(low_resource) or (),
        out_dir=target,
        seed=seed,
        show_progress=progress,
        kind=prompt_kind,
        Cs=c_values,
        max_rows=max_rows,
        rows=rows,
        max_train=max_train,
        fine_tune_steps=fine_tune_steps,
        overwrite=overwrite,
    )
    table = Table(title=f"XNLI {split} (zero-shot from English)")
    for col in ("lang", "n", "accuracy", "macro-F1", "gap acc"):
        table.add_column(col, justify="left" if col == "lang" else "right")
    gaps = (res.get("transfer_gap") or {}).get("per_language", {})
    for lang, s in res["languages"].items():
        gap = f"{100 * gaps[lang]['accuracy']:+.1f}" if lang in gaps else ""
        table.add_row(lang, str(s["n"]), f"{100 * s['accuracy']:.1f}", f"{100 * s['macro_f1']:.1f}", gap)
    m = res["mean"]
    table.add_row("mean", "", f"{100 * m['accuracy']:.1f}", f"{100 * m['macro_f1']:.1f}", "")
    console.print(table)
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}", markup=False)


@eval_app.command("tatoeba")
def eval_tatoeba(
    langs: str = typer.Option(..., "--langs", help="Comma-separated languages: Tatoeba codes (deu, swh) or two-letter codes (de, sw)."),
    model: str = typer.Option("default", "--model", help="Model name or directory."),
    data: Optional[Path] = typer.Option(None, "--data", help="Tatoeba directory (default: <data>/tatoeba)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (results.json, report.md, tatoeba_bars.png)."),
    prompt: str = typer.Option("query", "--prompt", help="Encoder prompt: query, passage or none."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing results.json in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    device: Optional[str] = device_option(),
) -> None:
    """Tatoeba bitext retrieval: accuracy@1 in both directions for each language paired with English."""
    use_device(device)
    prompt_kind = _prompt_kind(prompt)
    tatoeba_dir = _data_dir(data, "tatoeba")
    settings = measured_settings(langs=langs, model=model, data=tatoeba_dir, prompt=prompt)
    target = None if out is None else OutputDir(out, "eval-tatoeba", overwrite=overwrite, inputs=[tatoeba_dir, Path(model)],
                                                 legacy_files=("results.json",), settings=settings)
    say_if_rerun(target)
    res = evaluate_tatoeba(
        model,
        tatoeba_dir,
        split_csv(langs) or [],
        out_dir=target,
        kind=prompt_kind,
        show_progress=progress,
        overwrite=overwrite,
    )
    table = Table(title="Tatoeba accuracy@1 (%)")
    for col in ("lang", "n", "xx→en", "en→xx", "mean"):
        table.add_column(col, justify="left" if col == "lang" else "right")
    for lang, s in res["languages"].items():
        table.add_row(lang, str(s["n"]), f"{100 * s['xx_to_en']:.1f}", f"{100 * s['en_to_xx']:.1f}", f"{100 * s['mean']:.1f}")
    m = res["mean"]
    table.add_row("mean", "", f"{100 * m['xx_to_en']:.1f}", f"{100 * m['en_to_xx']:.1f}", f"{100 * m['mean']:.1f}")
    console.print(table)
    if res["missing"]:
        console.print(f"[yellow]no files for: {escape(', '.join(res['missing']))}[/]")
    if out is not None:
        console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}", markup=False)
