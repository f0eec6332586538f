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
from polyret.evaluate.xnli_compare import compare_xnli, comparison_markdown
from polyret.io import OutputDir, read_json, write_json
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
        help="Comma-separated English training data: snli:dev, snli:test, sick:TRAIN[+TRIAL+TEST], xnli:align (XNLI dev's "
        "English alignment side: then only the evaluation side is scored), or TSV paths; SPEC*K repeats a set K times "
        "(default: snli:dev,sick:TRAIN for the probe; snli:dev,snli:test,sick:TRAIN+TRIAL+TEST,xnli:align*16 with --fine-tune).",
    ),
    langs: Optional[str] = typer.Option(None, "--langs", help="Comma-separated languages (default: every file of the split)."),
    low_resource: str = typer.Option("sw,ur", "--low-resource", help="Languages for the low-resource block."),
    prompt: str = typer.Option("query", "--prompt", help="Encoder prompt: query, passage or none."),
    cs: str = typer.Option("0.0001,0.0003,0.001,0.003,0.01", "--cs", help="Logistic-regression C values to select from on English dev."),
    fine_tune: bool = typer.Option(False, "--fine-tune", help="The fine-tuned protocol: fine-tune a copy of the encoder with a head on English NLI instead of the frozen probe."),
    fine_tune_steps: Optional[int] = typer.Option(None, "--fine-tune-steps", help="Fine-tuning steps (implies --fine-tune; default 640)."),
    fine_tune_epochs: Optional[float] = typer.Option(None, "--fine-tune-epochs", help="Fine-tuning epochs over the English data (instead of steps)."),
    fine_tune_batch_size: Optional[int] = typer.Option(None, "--fine-tune-batch-size", help="Pairs per fine-tuning step (default 32)."),
    fine_tune_lr: Optional[float] = typer.Option(None, "--fine-tune-lr", help="Encoder learning rate (default 5e-5; the head uses 1e-3)."),
    fine_tune_head: Optional[str] = typer.Option(None, "--fine-tune-head", help="Head over [u, v, |u-v|, u*v]: linear (default) or mlp."),
    fine_tune_max_length: Optional[int] = typer.Option(None, "--fine-tune-max-length", help="Training max length in tokens (default 64)."),
    fine_tune_layers: Optional[str] = typer.Option(None, "--fine-tune-layers", help="Train only the top N transformer layers, or 'all' (the default)."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Only the first N rows of each XNLI file (quick runs)."),
    rows: str = typer.Option("auto", "--rows", help="all, or eval-side: only XNLI dev's evaluation side (for models aligned or trained on its alignment side); auto = eval-side when --english-train reads xnli:align, else all."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Only the first N English training pairs."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing results.json in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    device: Optional[str] = device_option(),
) -> None:
    """Zero-shot cross-lingual XNLI: an English-only classifier (frozen-encoder probe, or --fine-tune), every language scored."""
    use_device(device)
    try:
        c_values = [float(c) for c in split_csv(cs) or []]
    except ValueError:
        raise PolyretError(f"--cs must be comma-separated numbers, not {cs!r}") from None

    prompt_kind = _prompt_kind(prompt)
    xnli_dir = _data_dir(data, "xnli")
    settings = measured_settings(model=model, data=xnli_dir, split=split, english_train=english_train, langs=langs,
                                 low_resource=low_resource, prompt=prompt, cs=cs, fine_tune=fine_tune, fine_tune_steps=fine_tune_steps,
                                 fine_tune_epochs=fine_tune_epochs, fine_tune_batch_size=fine_tune_batch_size,
                                 fine_tune_lr=fine_tune_lr, fine_tune_head=fine_tune_head,
                                 fine_tune_max_length=fine_tune_max_length, fine_tune_layers=fine_tune_layers,
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
        fine_tune=fine_tune,
        fine_tune_steps=fine_tune_steps,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_batch_size=fine_tune_batch_size,
        fine_tune_lr=fine_tune_lr,
        fine_tune_head=fine_tune_head,
        fine_tune_max_length=fine_tune_max_length,
        fine_tune_layers=fine_tune_layers,
        overwrite=overwrite,
    )
    table = Table(title=f"XNLI {split} (zero-shot from English)")
    for col in ("lang", "n", "accuracy", "macro-F1", "gap acc"):
        table.add_column(col, justify="left" if col == "lang" else "right")
    gaps = (res.get("transfer_gap") or {}).get("per_language", {})
    for lang, s in res["per_language"].items():
        gap = f"{100 * gaps[lang]['accuracy']:+.1f}" if lang in gaps else ""
        table.add_row(lang, str(s["n"]), f"{100 * s['accuracy']:.1f}", f"{100 * s['macro_f1']:.1f}", gap)
    m = res["mean"]
    table.add_row("mean", "", f"{100 * m['accuracy']:.1f}", f"{100 * m['macro_f1']:.1f}", "")
    console.print(table)
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}", markup=False)


@eval_app.command("xnli-compare")
def eval_xnli_compare(
    a: Path = typer.Argument(..., help="results.json (or its folder) of model a."),
    b: Path = typer.Argument(..., help="results.json (or its folder) of model b (e.g. the base)."),
    label_a: str = typer.Option("a", "--label-a"),
    label_b: str = typer.Option("b", "--label-b"),
    low_resource: Optional[str] = typer.Option(None, "--low-resource", help="Languages of the block (default: a's)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write comparison.json and comparison.md to this file stem."),
    n_permutations: int = typer.Option(10000, "--permutations"),
    n_bootstrap: int = typer.Option(2000, "--bootstrap"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing comparison files at --out."),
) -> None:
    """Paired comparison of two `eval xnli` results on their shared rows: per language, mean, low-resource block."""
    targets = [] if out is None else [out.with_suffix(".json"), out.with_suffix(".md")]
    taken = [str(t) for t in targets if t.exists()]
    if taken and not overwrite:
        raise PolyretError(f"{', '.join(taken)} already exist(s); pass --overwrite to replace")
    res = [read_json(p / "results.json" if p.is_dir() else p) for p in (a, b)]
    cmp = compare_xnli(res[0], res[1], low_resource=split_csv(low_resource), n_permutations=n_permutations,
                       n_bootstrap=n_bootstrap)
    md = comparison_markdown(cmp, label_a, label_b)
    console.print(md, markup=False)
    if out is not None:
        write_json(out.with_suffix(".json"), cmp)
        out.with_suffix(".md").write_text(md, encoding="utf-8")
        console.print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}", markup=False)


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
    for lang, s in res["per_language"].items():
        table.add_row(lang, str(s["n"]), f"{100 * s['xx_to_en']:.1f}", f"{100 * s['en_to_xx']:.1f}", f"{100 * s['mean']:.1f}")
    m = res["mean"]
    table.add_row("mean", "", f"{100 * m['xx_to_en']:.1f}", f"{100 * m['en_to_xx']:.1f}", f"{100 * m['mean']:.1f}")
    console.print(table)
    if res["missing"]:
        console.print(f"[yellow]no files for: {escape(', '.join(res['missing']))}[/]")
    if out is not None:
        console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}", markup=False)
