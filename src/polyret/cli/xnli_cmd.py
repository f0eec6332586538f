"""`polyret eval xnli` (zero-shot cross-lingual NLI) and `polyret eval tatoeba` (bitext retrieval)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from polyret.cli.app import console, eval_app, measured_settings, say_if_rerun, split_csv, use_device
from polyret.cli.options import (
    ENCODE_BATCH_SIZE,
    BatchSize,
    Bootstrap,
    Cache,
    Device,
    LabelA,
    LabelB,
    LanguageCorrection,
    Langs,
    LowResource,
    Model,
    OptionalDataDir,
    OptionalOutDir,
    OptionalOutFile,
    OutDir,
    Overwrite,
    Permutations,
    Progress,
    Prompt,
    RequiredLangs,
    Seed,
    Split,
    prompt_side,
)
from polyret.errors import PolyretError
from polyret.io import OutputDir, read_json, write_json
from polyret.paths import data_path


def _data_dir(given: Optional[Path], sub: str) -> Path:
    if given is not None:
        return given

    return data_path(sub)


def _print_correction(res) -> None:
    lc = res.get("language_correction") or {"method": "none"}
    console.print(
        f"language correction: {lc['method']}" + (f" ({lc['statistics']})" if lc.get("statistics") else ""),
        markup=False,
    )


def _c_values(cs: str) -> list[float]:
    """--cs: comma-separated positive numbers (logistic regression's inverse regularisation strengths)."""
    try:
        values = [float(c) for c in split_csv(cs) or []]
    except ValueError:
        raise PolyretError(f"--cs must be comma-separated numbers, not {cs!r}") from None
    if not values or not all(0 < c < float("inf") for c in values):
        raise PolyretError(f"--cs must be comma-separated positive numbers, not {cs!r}")
    return values


def _check_fine_tune_numbers(epochs: Optional[float], lr: Optional[float], layers: Optional[str]) -> None:
    """The fine-tuning options typer's ranges cannot express, checked before any model loads."""
    for name, value in (("--fine-tune-epochs", epochs), ("--fine-tune-lr", lr)):
        if value is not None and not 0 < value < float("inf"):
            raise PolyretError(f"{name} must be a positive number, not {value}")
    if layers is not None and layers.strip().lower() != "all" and not (layers.strip().isdigit() and int(layers) >= 1):
        raise PolyretError(f"--fine-tune-layers must be a positive number or 'all', not {layers!r}")


@eval_app.command("xnli")
def eval_xnli(
    out: OutDir = ...,
    model: Model = "default",
    data: OptionalDataDir = None,
    split: Split = "dev",
    english_train: Optional[str] = typer.Option(
        None,
        "--english-train",
        help="Comma-separated English training data: snli:dev, snli:test, sick:TRAIN[+TRIAL+TEST], xnli:align (XNLI dev's "
        "English alignment side: then only the evaluation side is scored), or TSV paths; SPEC*K repeats a set K times "
        "(default: snli:dev,sick:TRAIN for the probe; snli:dev,snli:test,sick:TRAIN+TRIAL+TEST,xnli:align*16 with --fine-tune).",
    ),
    langs: Langs = None,
    low_resource: LowResource = "sw,ur",
    prompt: Prompt = "query",
    cs: str = typer.Option(
        "0.0001,0.0003,0.001,0.003,0.01",
        "--cs",
        help="Logistic-regression C values (positive) to select from on English dev.",
    ),
    fine_tune: bool = typer.Option(
        False,
        "--fine-tune",
        help="The fine-tuned protocol: fine-tune a copy of the encoder with a head on English NLI instead of the frozen probe.",
    ),
    fine_tune_steps: Optional[int] = typer.Option(
        None, "--fine-tune-steps", min=1, help="Fine-tuning steps (implies --fine-tune; default 640)."
    ),
    fine_tune_epochs: Optional[float] = typer.Option(
        None, "--fine-tune-epochs", help="Fine-tuning epochs over the English data (instead of steps)."
    ),
    fine_tune_batch_size: Optional[int] = typer.Option(
        None, "--fine-tune-batch-size", min=1, help="Pairs per fine-tuning step (default 32)."
    ),
    fine_tune_lr: Optional[float] = typer.Option(
        None, "--fine-tune-lr", help="Encoder learning rate (default 5e-5; the head uses 1e-3)."
    ),
    fine_tune_head: Optional[str] = typer.Option(
        None, "--fine-tune-head", help="Head over [u, v, |u-v|, u*v]: linear (default) or mlp."
    ),
    fine_tune_max_length: Optional[int] = typer.Option(
        None, "--fine-tune-max-length", min=1, help="Training max length in tokens (default 64)."
    ),
    fine_tune_layers: Optional[str] = typer.Option(
        None, "--fine-tune-layers", help="Train only the top N transformer layers, or 'all' (the default)."
    ),
    max_rows: Optional[int] = typer.Option(
        None, "--max-rows", min=1, help="Only the first N rows of each XNLI file (quick runs)."
    ),
    rows: str = typer.Option(
        "auto",
        "--rows",
        help="all, or eval-side: only XNLI dev's evaluation side (for models aligned or trained on its alignment side); auto = eval-side when --english-train reads xnli:align, else all.",
    ),
    max_train: Optional[int] = typer.Option(
        None, "--max-train", min=1, help="Only the first N English training pairs."
    ),
    seed: Seed = 0,
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    cache: Cache = True,
    overwrite: Overwrite = False,
    progress: Progress = True,
    language_correction: LanguageCorrection = "auto",
    device: Device = None,
) -> None:
    """Zero-shot cross-lingual XNLI: an English-only classifier (frozen-encoder probe, or --fine-tune), every language scored.

    --data: a folder of <split>-<lang>.tsv files (default: <data>/xnli). Writes results.json, report.md
    and xnli_bars.png to --out. The language correction applies to the frozen encoder's embeddings."""
    from polyret.evaluate.xnli import evaluate_xnli
    from rich.table import Table

    use_device(device)
    c_values = _c_values(cs)
    _check_fine_tune_numbers(fine_tune_epochs, fine_tune_lr, fine_tune_layers)
    prompt_kind = prompt_side(prompt, allow_none=True)
    xnli_dir = _data_dir(data, "xnli")
    options = dict(
        split=split,
        english_train=english_train,
        langs=langs,
        low_resource=low_resource,
        prompt=prompt,
        cs=cs,
        fine_tune=fine_tune,
        fine_tune_steps=fine_tune_steps,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_batch_size=fine_tune_batch_size,
        fine_tune_lr=fine_tune_lr,
        fine_tune_head=fine_tune_head,
        fine_tune_max_length=fine_tune_max_length,
        fine_tune_layers=fine_tune_layers,
        max_rows=max_rows,
        rows=rows,
        max_train=max_train,
        seed=seed,
    )
    # --language-correction counts as a setting only when given: an output written before the option
    # existed is still this command with the same settings (re-run in place, not refused)
    extra = {} if language_correction == "auto" else {"language_correction": language_correction}
    settings = measured_settings(model=model, data=xnli_dir, **options, **extra)
    target = OutputDir(
        out,
        "eval-xnli",
        overwrite=overwrite,
        inputs=[xnli_dir, Path(model)],
        legacy_files=("results.json",),
        settings=settings,
    )
    say_if_rerun(target)
    for key in ("langs", "low_resource"):
        options[key] = split_csv(options[key]) or (() if key == "low_resource" else None)
    del options["prompt"], options["cs"]
    res = evaluate_xnli(
        model,
        xnli_dir,
        out_dir=target,
        show_progress=progress,
        kind=prompt_kind,
        Cs=c_values,
        cache=cache,
        overwrite=overwrite,
        batch_size=batch_size,
        language_correction=language_correction,
        **options,
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
    _print_correction(res)
    console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}", markup=False)


@eval_app.command("xnli-compare")
def eval_xnli_compare(
    a: Path = typer.Argument(..., help="results.json (or its folder) of model a.", exists=True),
    b: Path = typer.Argument(..., help="results.json (or its folder) of model b (e.g. the base).", exists=True),
    label_a: LabelA = "a",
    label_b: LabelB = "b",
    low_resource: LowResource = None,
    out: OptionalOutFile = None,
    n_permutations: Permutations = 10000,
    n_bootstrap: Bootstrap = 2000,
    overwrite: Overwrite = False,
) -> None:
    """Paired comparison of two `eval xnli` results on their shared rows: per language, mean, low-resource
    block (--low-resource default: a's). --out is a file stem: OUT.json and OUT.md are written."""
    from polyret.evaluate.xnli_compare import compare_xnli, comparison_markdown

    targets = [] if out is None else [out.with_suffix(".json"), out.with_suffix(".md")]
    taken = [str(t) for t in targets if t.exists()]
    if taken and not overwrite:
        raise PolyretError(f"{', '.join(taken)} already exist(s); pass --overwrite to replace")
    res = [read_json(p / "results.json" if p.is_dir() else p) for p in (a, b)]
    cmp = compare_xnli(
        res[0], res[1], low_resource=split_csv(low_resource), n_permutations=n_permutations, n_bootstrap=n_bootstrap
    )
    md = comparison_markdown(cmp, label_a, label_b)
    console.print(md, markup=False)
    if out is not None:
        write_json(out.with_suffix(".json"), cmp)
        out.with_suffix(".md").write_text(md, encoding="utf-8")
        console.print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}", markup=False)


@eval_app.command("tatoeba")
def eval_tatoeba(
    langs: RequiredLangs = ...,
    model: Model = "default",
    data: OptionalDataDir = None,
    out: OptionalOutDir = None,
    prompt: Prompt = "query",
    side: str = typer.Option(
        "all",
        "--side",
        help="all lines, or one side of the split: eval (score a model trained on tatoeba-align) or align.",
    ),
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    cache: Cache = True,
    overwrite: Overwrite = False,
    progress: Progress = True,
    language_correction: LanguageCorrection = "auto",
    device: Device = None,
) -> None:
    """Tatoeba bitext retrieval: accuracy@1 in both directions for each language paired with English.

    --data: the Tatoeba folder (default: <data>/tatoeba). Writes results.json, report.md and
    tatoeba_bars.png to --out when given."""
    from polyret.evaluate.tatoeba import evaluate_tatoeba
    from rich.markup import escape
    from rich.table import Table

    use_device(device)
    prompt_kind = prompt_side(prompt, allow_none=True)
    tatoeba_dir = _data_dir(data, "tatoeba")
    extra = {} if language_correction == "auto" else {"language_correction": language_correction}
    extra |= {"side": side} if side != "all" else {}  # earlier runs' settings unchanged
    settings = measured_settings(langs=langs, model=model, data=tatoeba_dir, prompt=prompt, **extra)
    target = (
        None
        if out is None
        else OutputDir(
            out,
            "eval-tatoeba",
            overwrite=overwrite,
            inputs=[tatoeba_dir, Path(model)],
            legacy_files=("results.json",),
            settings=settings,
        )
    )
    say_if_rerun(target)
    res = evaluate_tatoeba(
        model,
        tatoeba_dir,
        split_csv(langs) or [],
        out_dir=target,
        kind=prompt_kind,
        batch_size=batch_size,
        cache=cache,
        show_progress=progress,
        overwrite=overwrite,
        language_correction=language_correction,
        side=side,
    )
    table = Table(title="Tatoeba accuracy@1 (%)")
    for col in ("lang", "n", "xx→en", "en→xx", "mean"):
        table.add_column(col, justify="left" if col == "lang" else "right")
    for lang, s in res["per_language"].items():
        table.add_row(
            lang, str(s["n"]), f"{100 * s['xx_to_en']:.1f}", f"{100 * s['en_to_xx']:.1f}", f"{100 * s['mean']:.1f}"
        )
    m = res["mean"]
    table.add_row("mean", "", f"{100 * m['xx_to_en']:.1f}", f"{100 * m['en_to_xx']:.1f}", f"{100 * m['mean']:.1f}")
    console.print(table)
    _print_correction(res)
    if res["missing"]:
        console.print(f"[yellow]no files for: {escape(', '.join(res['missing']))}[/]")
    if out is not None:
        console.print(f"wrote {out / 'results.json'}, {out / 'report.md'}", markup=False)
