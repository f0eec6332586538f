"""The typer apps every command module attaches to. Commands are thin: parse, call the API, print."""
from __future__ import annotations

import typer

app = typer.Typer(
    name="polyret",
    help="Multilingual dense retrieval: hybrid-batch training and LAReQA / XNLI / BEIR / MIRACL evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
model_app = typer.Typer(help="Prepare and inspect encoders.", no_args_is_help=True)
data_app = typer.Typer(help="Find, download, check and convert data sets.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate an encoder.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")

from polyret.runtime import console  # noqa: E402  (the one console; re-exported for the commands)


def split_csv(value: str | None) -> list[str] | None:
    """'ar,de, en' -> ['ar', 'de', 'en']; None/'' -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]
