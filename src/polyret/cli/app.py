"""The typer apps every command module attaches to. Commands are thin: parse, call the API, print."""

from __future__ import annotations

import typer

from polyret import runtime
from polyret.cli import coercion
from polyret.runtime import console, set_device  # console: the one console, re-exported for the commands

coercion.install()  # option values without importing pydantic (see polyret.cli.coercion)

# Plain (click) help pages: typer's rich help loads rich's Markdown renderer and markdown-it, which
# made `polyret --help` cost 3x a bare typer + rich start (benchmarks/startup.py); the text is the same.
HELP_STYLE = {"rich_markup_mode": None}

app = typer.Typer(
    name="polyret",
    help="Multilingual dense retrieval: hybrid-batch training and LAReQA / XNLI / BEIR / MIRACL evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    **HELP_STYLE,
)
model_app = typer.Typer(help="Prepare and inspect encoders.", no_args_is_help=True, **HELP_STYLE)
data_app = typer.Typer(help="Find, download, check and convert data sets.", no_args_is_help=True, **HELP_STYLE)
eval_app = typer.Typer(help="Evaluate an encoder.", no_args_is_help=True, **HELP_STYLE)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")


def use_device(device: str | None) -> None:
    """Apply a command's --device for every model it loads. A device that cannot work (`cuda` without a
    GPU, a malformed name) fails here, before any work. Plain `auto` in one process cannot fail: it is
    resolved when the first model loads, so a command that stops earlier (a bad input) never imports torch."""
    if device is None and runtime.chosen_device_spec() is None and runtime.world_size() == 1:
        return
    set_device(device)


def split_csv(value: str | None) -> list[str] | None:
    """'ar,de, en' -> ['ar', 'de', 'en']; None/'' -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def measured_settings(**options) -> dict:
    """A command's options that define what it measures, for `OutputDir(settings=...)`: the same command
    run again on its finished output is redone in place, other settings need --overwrite. Paths that
    exist are made absolute (the same relative path from another folder is other data)."""
    from pathlib import Path

    def resolved(value):
        if isinstance(value, (str, Path)) and str(value) and Path(value).expanduser().exists():
            return str(Path(value).expanduser().resolve())
        return value

    return {k: resolved(v) for k, v in options.items()}


def say_if_rerun(target) -> None:
    """One line when an `OutputDir` redoes a finished output of the same command in place."""
    if target is not None and target.rerun:
        console.print(
            f"{target.final} holds a finished run of this command with the same settings: running it again "
            "in place (cached work such as corpus vectors is reused)",
            markup=False,
        )
