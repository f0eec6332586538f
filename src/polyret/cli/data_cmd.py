"""`polyret data status|download`."""

from __future__ import annotations

import json

import typer

from polyret.cli.app import console, data_app, split_csv
from polyret.cli.options import Json, OptionalDataPath, OutDir, renamed
from polyret.errors import PolyretError
from polyret.paths import data_dir_candidates, find_data_dir


@data_app.command("status")
def status(
    data: OptionalDataPath = None,
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check files against SHA256SUMS."),
    as_json: Json = False,
) -> None:
    """List which data sets are present and verify them against SHA256SUMS where one exists.

    --data: the data directory (default: the first of POLYRET_DATA, ./data, ../shared/data that exists)."""
    from polyret.data.download import data_status

    from rich.table import Table

    if data is not None and not data.is_dir():
        why = "is a file, not a folder" if data.exists() else "does not exist"
        raise PolyretError(f"--data {data}: no data directory there ({why})")
    root = data or find_data_dir()
    if root is None:
        tried = ", ".join(str(p) for p in data_dir_candidates())
        raise PolyretError(f"no data directory found (tried {tried}); run `polyret data download --out DIR`")
    with console.status("checking sha256 ..."):
        st = data_status(root, verify=verify)
    bad = any(e["mismatched"] for e in st["datasets"].values())
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        if bad:
            raise typer.Exit(1)  # a check found a problem: exit 1 with --json too
        return
    t = Table(title=f"data in {st['root']}")
    for col in ("data set", "present", "files", "verified", "mismatched", "not in SHA256SUMS"):
        t.add_column(col)
    for name, e in st["datasets"].items():
        n_bad = len(e["mismatched"])
        t.add_row(
            name,
            "yes" if e["present"] else "no",
            str(e["files"]),
            str(e["checked"]),
            f"[red]{n_bad}[/]" if n_bad else "0",
            str(e["unlisted"]),
        )
    console.print(t)
    if bad:
        raise typer.Exit(1)


@data_app.command("download", cls=renamed({"--dest": "--out"}))
def download(
    out: OutDir,
    mirror: str = typer.Option(
        None,
        "--mirror",
        help="A mirror serving the same relative paths: an http(s):// or file:// URL, or a local folder.",
    ),
    only: str = typer.Option(None, "--only", help="Comma-separated subset: xquad-r,mlqa-r,xnli,mlqa."),
) -> None:
    """Fetch XQuAD-R, MLQA-R, XNLI 1.0 and MLQA v1 into the folder --out (the layout of ../shared/data);
    verify sha256; skip complete files, resume partial ones."""
    from polyret.data import download as dl

    dl.check_download_target(out, mirror)  # one line for a file as --out or a mirror that cannot work
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as prog:
        tasks: dict[str, int] = {}

        def on_progress(name, done, total):
            if name not in tasks:
                tasks[name] = prog.add_task(name, total=total)
            prog.update(tasks[name], completed=done, total=total)

        report = dl.download(out, datasets=split_csv(only), mirror=mirror, progress=on_progress)
    for r in report:
        mark = "verified" if r["verified"] else "sha256 recorded (no published checksum)"
        console.print(f"{r['status']:>10}  {r['file']}  {mark}", markup=False)
