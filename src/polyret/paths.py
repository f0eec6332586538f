"""Where polyret finds data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

from polyret.errors import PolyretError

DATA_ENV = "POLYRET_DATA"
CACHE_ENV = "POLYRET_CACHE"


def data_dir_candidates() -> list[Path]:
    """Search order: $POLYRET_DATA, ./data, ../shared/data (next to the checkout)."""
    out: list[Path] = []
    env = os.environ.get(DATA_ENV)
    if env:
        out.append(Path(env).expanduser())
    out.append(Path.cwd() / "data")
    out.append(Path.cwd().parent / "shared" / "data")
    # The repository root's sibling, so tests and scripts work from any cwd inside the repo.
    repo_root = Path(__file__).resolve().parents[2]
    out.append(repo_root.parent / "shared" / "data")
    seen, uniq = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def find_data_dir(required: bool = False) -> Path | None:
    """The first existing data directory, or None (or an error when `required`)."""
    env = os.environ.get(DATA_ENV)
    if env and not Path(env).expanduser().is_dir():
        raise PolyretError(f"{DATA_ENV}={env} is not a directory")
    for p in data_dir_candidates():
        if p.is_dir():
            return p
    if required:
        tried = ", ".join(str(p) for p in data_dir_candidates())
        raise PolyretError(
            f"no data directory found (tried {tried}); set {DATA_ENV} or run `polyret data download --out DIR`"
        )
    return None


def data_path(*parts: str, required: bool = True) -> Path | None:
    """A path inside the data directory; None (or an error) when it does not exist."""
    root = find_data_dir(required=required)
    if root is None:
        return None
    p = root.joinpath(*parts)
    if not p.exists():
        if required:
            raise PolyretError(f"{p} does not exist (data directory: {root})")
        return None
    return p


def cache_dir() -> Path:
    """Cache root: $POLYRET_CACHE, else ~/.cache/polyret."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "polyret"
    root.mkdir(parents=True, exist_ok=True)
    return root
