"""`polyret correction fit|show`: per-language statistics that remove language bias, stored with a model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from polyret.cli.app import HELP_STYLE, app, console, split_csv, use_device
from polyret.cli.options import Cache, Device, Langs, Model, OptionalOutDir, Overwrite, renamed
from polyret.errors import PolyretError
from polyret.langid import DEFAULT_IDENTIFIER, identify
from polyret.paths import data_path

correction_app = typer.Typer(
    help="Fit and inspect language-bias corrections stored with a model.", no_args_is_help=True, **HELP_STYLE
)
app.add_typer(correction_app, name="correction")


def _parse_texts(specs: list[str], identifier: str) -> dict[str, list[str]]:
    """LANG=FILE: texts of a known language; FILE alone: texts whose languages are identified
    (`polyret.langid`, among the XNLI languages the statistics cover)."""
    from polyret.encode import read_encode_input

    out: dict[str, list[str]] = {}
    for spec in specs:
        lang, sep, path = spec.partition("=")
        if sep and lang and path and not Path(spec).is_file():
            out.setdefault(lang, []).extend(read_encode_input(Path(path)))
            continue
        if sep and not Path(spec).is_file():
            raise PolyretError(
                f"--texts {spec!r}: expected LANG=FILE or FILE (a .txt with one text per line, or .jsonl)"
            )
        texts = read_encode_input(Path(spec))
        found = identify(texts, identifier=identifier)
        for text, lang in zip(texts, found):
            out.setdefault(lang, []).append(text)
        counts = Counter(found)
        console.print(
            f"{spec}: {len(texts)} texts, languages identified by {identifier}: "
            + ", ".join(f"{l} {n}" for l, n in sorted(counts.items())),
            markup=False,
        )
    return out


@correction_app.command("fit", cls=renamed({"--into": "--out"}))
def fit(
    model: Model = "default",
    method: str = typer.Option(
        "center-both",
        "--method",
        help="center | center-both | lir | procrustes | rotate (center-both measured best; see the README).",
    ),
    parallel: Optional[str] = typer.Option(
        "xnli", "--parallel", help="Parallel text: 'xnli' (XNLI dev alignment side, 15 languages) or 'none'."
    ),
    langs: Langs = None,
    texts: list[str] = typer.Option(
        [], "--texts", help="More text: LANG=FILE, or FILE alone (each text's language identified; repeatable)."
    ),
    identifier: str = typer.Option(
        DEFAULT_IDENTIFIER, "--identifier", help="Language identifier for --texts FILE: py3langid | lingua."
    ),
    n_directions: int = typer.Option(1, "--n-directions", min=1, help="lir: directions removed per language."),
    max_groups: Optional[int] = typer.Option(
        200, "--max-groups", min=0, help="Parallel groups (XNLI premises) to fit on; 0 = all 415."
    ),
    out: OptionalOutDir = None,
    cache: Cache = True,
    overwrite: Overwrite = False,
    device: Device = None,
    st_module: bool = typer.Option(
        True,
        "--st-module/--no-st-module",
        help="Also make it the last module of the model's sentence-transformers pipeline (modules.json), so SentenceTransformer(dir, trust_remote_code=True) applies it.",
    ),
) -> None:
    """Fit a language correction for a model on parallel / per-language text and store it with the model.

    --out: the model folder to store it in (default: the model's own folder); --langs: the languages of
    the parallel text (default: all 15 XNLI languages)."""
    from polyret.correction import CORRECTION_DIR, check_method, fit_model_correction, stored_correction
    from polyret.data.parallel import xnli_parallel_groups
    from polyret.model import load_model, resolve_model_path

    use_device(device)  # an impossible device fails before anything else
    check_method(method)
    target = out or Path(resolve_model_path(model))
    if not Path(target).is_dir():
        raise PolyretError(f"{target}: not a local model directory; pass --out DIR")
    if stored_correction(target) is not None and not overwrite:
        raise PolyretError(f"{target / CORRECTION_DIR} exists; pass --overwrite to replace it")
    extra = _parse_texts(texts, identifier)
    groups = None
    source = []
    if parallel and parallel != "none":
        if parallel != "xnli":
            raise PolyretError(f"--parallel {parallel!r}: use 'xnli' or 'none'")
        groups = xnli_parallel_groups(data_path("xnli"), split_csv(langs), max_groups=max_groups or None)
        source.append(f"XNLI dev alignment side ({len(groups)} premises x {len(groups[0].queries)} languages)")
    if extra:
        source.append("texts " + ", ".join(f"{l}: {len(v)}" for l, v in extra.items()))
    if groups is None and not extra:
        raise PolyretError("nothing to fit on: give --parallel xnli and/or --texts LANG=FILE")
    enc = load_model(model)
    corr = fit_model_correction(
        enc, method, groups=groups, texts=extra, n_directions=n_directions, cache=cache, source="; ".join(source)
    )
    root = corr.save(target)
    console.print(f"[green]{method}[/] correction for {len(corr.stats)} languages -> {root}")
    _sync_module(Path(target), st_module)
    if corr.uncorrected:
        console.print(f"[yellow]left uncorrected (too little text):[/] {', '.join(corr.uncorrected)}")


def _sync_module(target: Path, st_module: bool) -> None:
    from polyret.correction_st import install_correction_module, remove_correction_module

    if st_module and (target / "modules.json").is_file():
        install_correction_module(target)
        console.print(
            f"pipeline: {target / 'modules.json'} ends with the correction module "
            "(SentenceTransformer(dir, trust_remote_code=True) applies it)"
        )
    elif not st_module and remove_correction_module(target):
        console.print(f"pipeline: the correction module was taken out of {target / 'modules.json'}")


@correction_app.command("module")
def module(
    model: Model = "default",
    remove: bool = typer.Option(False, "--remove", help="Take the module out of the pipeline (the statistics stay)."),
) -> None:
    """Add a stored correction to the model's sentence-transformers pipeline (or take it out)."""
    from polyret.correction import stored_correction
    from polyret.model import resolve_model_path

    target = Path(resolve_model_path(model))
    if stored_correction(target) is None:
        raise PolyretError(f"{target}: no language correction stored; run `polyret correction fit` first")
    if not remove and not (target / "modules.json").is_file():
        raise PolyretError(f"{target}: no modules.json; not a sentence-transformers directory")
    _sync_module(target, not remove)


@correction_app.command("show")
def show(model: Model = "default") -> None:
    """Print the correction stored with a model (method, languages, text counts, source), after the
    checks every use of it runs: fitted for this model, files intact, shapes consistent (exit 2 if not)."""
    from polyret.correction import CORRECTION_DIR, LanguageCorrection
    from polyret.correction_st import has_correction_module
    from polyret.encode import model_id
    from polyret.model import load_model, resolve_model_path

    model_dir = Path(resolve_model_path(model))
    meta = model_dir / CORRECTION_DIR / "correction.json"
    if not meta.is_file():
        raise PolyretError(f"{meta.parent}: no language correction stored with model {model!r}")
    corr = LanguageCorrection.load(model_dir, model_id=model_id(load_model(str(model_dir))))
    console.print(f"checked: fitted for this model ({corr.model_id}), files and shapes intact", markup=False)
    info = json.loads(meta.read_text(encoding="utf-8"))
    info["in_pipeline"] = has_correction_module(meta.parent.parent)
    typer.echo(json.dumps(info, indent=2))
