"""`polyret` command line. Each module below registers its commands on the apps in `app.py`."""
from __future__ import annotations

import sys

from polyret.cli.app import app, console
from polyret.errors import PolyretError

# Command modules (import for their registration side effect).
from polyret.cli import model_cmd, data_cmd  # noqa: F401,E402
from polyret.cli import demo_cmd  # noqa: F401,E402
from polyret.cli import lareqa_cmd  # noqa: F401,E402
from polyret.cli import xnli_cmd  # noqa: F401,E402
from polyret.cli import beir_cmd  # noqa: F401,E402
from polyret.cli import train_cmd  # noqa: F401,E402
from polyret.cli import experiment_cmd  # noqa: F401,E402
from polyret.cli import pairs_cmd  # noqa: F401,E402
from polyret.cli import correction_cmd  # noqa: F401,E402


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one red line and exit 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except PolyretError as e:
        console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click's own usage errors arrive here with standalone_mode=False
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


__all__ = ["app", "main"]
