"""`polyret` command line. Each module below registers its commands on the apps in `app.py`."""

from __future__ import annotations

import signal
import sys

# Ctrl-C while the libraries below import (a second or more) would print a KeyboardInterrupt
# traceback: until main() runs, SIGINT exits quietly with the documented code 130.
_QUIET_STARTUP_SIGINT = signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _QUIET_STARTUP_SIGINT:
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

from polyret.cli.app import app, console  # noqa: E402
from polyret.errors import PolyretError  # noqa: E402
from polyret import runtime  # noqa: E402

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
from polyret.cli import encode_corpus_cmd  # noqa: F401,E402
from polyret.cli import bias_cmd  # noqa: F401,E402


EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_OWN_FAILURE = 1  # polyret's own failure (a bug): one line, the traceback only with POLYRET_DEBUG=1
DEBUG_ENV = "POLYRET_DEBUG"


def _error_line(message: str) -> None:
    """The one red `error:` line every refusal prints (literally: paths may hold [brackets])."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # one line, greppable


def _usage_error(e) -> int:
    """A click usage error (unknown option, a value outside its range, a path that is not there) as one
    line naming the option, plus where the help is; the exit code click gives it (2)."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":  # a group called without a command: its help
        e.show()
        return 0
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and hasattr(e, "param") else ""
    _error_line(e.format_message() + hint)
    return e.exit_code


def _unexpected(e: BaseException) -> int:
    """An exception no check anticipated. An OSError is the environment (a disk full, a permission
    denied): one line naming the file, exit 2. Anything else is a bug in polyret: one line, exit 1, and
    the traceback for a bug report with POLYRET_DEBUG=1."""
    import os

    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        raise e
    if isinstance(e, OSError):
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _error_line(f"{where}{e.strerror or e}")
        return EXIT_BAD_INPUT
    _error_line(f"internal error: {type(e).__name__}: {e} (a bug in polyret; {DEBUG_ENV}=1 shows the traceback)")
    return EXIT_OWN_FAILURE


def _redeliver_lost_interrupts() -> None:
    """A Ctrl-C that lands while the garbage collector runs a weakref callback or a __del__ cannot
    propagate: Python prints "Exception ignored in ... KeyboardInterrupt" with a traceback and carries
    on, so the run would finish as if never interrupted. Deliver such an interrupt again (quietly) to
    the main thread, where it ends the command like any other Ctrl-C."""
    import _thread
    import threading
    import time

    default_hook = sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: the main thread's SIGINT handler then runs outside
            # this hook and the callback (should it land in another callback, this hook sends it again)
            def later() -> None:
                time.sleep(0.05)
                _thread.interrupt_main()

            threading.Thread(target=later, daemon=True).start()
            return
        default_hook(unraisable)

    sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> None:
    """Entry point. Exit codes (docs/cli.md): 0 success; 1 a check found a problem (`typer.Exit(1)`:
    checksums, a bar in a report) or polyret itself failed (a bug); 2 bad input (a PolyretError, a
    usage error, an OSError of the environment); 130 interrupted (Ctrl-C / SIGINT). Every error is one
    red line, never a traceback (POLYRET_DEBUG=1 shows a bug's traceback)."""
    import typer

    if _QUIET_STARTUP_SIGINT:  # from here on Ctrl-C is a KeyboardInterrupt again (an ignored SIGINT stays ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _redeliver_lost_interrupts()
    if runtime.world_size() > 1:  # under torchrun: stop with a message when torchrun tears the job down
        runtime.stop_cleanly_on_sigterm()
    try:
        # standalone_mode=False: the command's exit code (typer.Exit, and 130 for Ctrl-C in typer >= 0.20)
        # is returned instead of exiting, and usage errors are raised, so every outcome is handled here.
        code = app(args=argv, standalone_mode=False)
    except PolyretError as e:
        # The message quotes user paths and file excerpts: printed literally (no rich markup).
        _error_line(str(e))
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:  # click < typer 0.20 turns Ctrl-C into Abort
        code = EXIT_INTERRUPTED
    except Exception as e:
        # Usage errors (click's ClickException, vendored inside typer >= 0.20) carry their exit code (2).
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):
            sys.exit(_usage_error(e))
        sys.exit(_unexpected(e))
    if code == EXIT_INTERRUPTED and runtime.world_size() > 1:
        # torchrun stopped this rank (another one failed) or Ctrl-C: every store/checkpoint is resumable.
        console.print(f"[yellow]rank {runtime.rank()} interrupted[/]; re-run the same command to resume")
    elif code == EXIT_INTERRUPTED:
        console.print("[yellow]interrupted[/]")
    if isinstance(code, int) and code != EXIT_OK:
        sys.exit(code)
    # success: return (the console script's sys.exit(main()) exits 0; in-process callers carry on)


__all__ = ["app", "main"]
