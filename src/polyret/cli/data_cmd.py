"""`polyret data status|download`."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from polyret.cli.app import console, data_app, split_csv
from polyret.data import download as dl
from polyret.data.download import data_status
from polyret.errors import PolyretError
from polyret.paths import data_dir_candidates, find_data_dir


@data_app.command("status")
def status(
    data: Path = typer.Option(None, "--data", help="Data directory (default: POLYRET_DATA, ./data, ../shared/data)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check files against SHA256SUMS."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List which data sets are present and verify them against SHA256SUMS where one exists."""
    from rich.table import Table

    root = data or find_data_dir()
    if root is None or not Path(root).is_dir():
        tried = ", ".join(str(p) for p in data_dir_candidates())
        raise PolyretError(f"no data directory found (tried {tried}); run `polyret data download --dest DIR`")
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
        t.add_row(name, "yes" if e["present"] else "no", str(e["files"]), str(e["checked"]),
                  f"[red]{n_bad}[/]" if n_bad else "0", str(e["unlisted"]))
    console.print(t)
    if bad:
        raise typer.Exit(1)


@data_app.command("download")
def download(
    dest: Path = typer.Option(..., "--dest", help="Where to put the files (same layout as ../shared/data)."),
    mirror: str = typer.Option(None, "--mirror", help="Base URL serving the same relative paths (e.g. an internal mirror)."),
    only: str = typer.Option(None, "--only", help="Comma-separated subset: xquad-r,mlqa-r,xnli,mlqa."),
) -> None:
    """Fetch XQuAD-R, MLQA-R, XNLI 1.0 and MLQA v1; verify sha256; skip complete, resume partial files."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console) as prog:
        tasks: dict[str, int] = {}

        def on_progress(name, done, total):
            if name not in tasks:
                tasks[name] = prog.add_task(name, total=total)
            prog.update(tasks[name], completed=done, total=total)

        report = dl.download(dest, datasets=split_csv(only), mirror=mirror, progress=on_progress)
    for r in report:
        mark = "verified" if r["verified"] else "sha256 recorded (no published checksum)"
        console.print(f"{r['status']:>10}  {r['file']}  {mark}", markup=False)
