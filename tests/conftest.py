"""Shared fixtures.

- `shared_data`: the data directory (POLYRET_DATA / ./data / ../shared/data); tests that need it skip
  with the reason when it is absent -- except in CI (`CI` set to true, as CI services do), where a
  missing data directory or file FAILS the test: CI must not stay green because the data went missing.
- `default_model_dir` / `default_model`: the converted multilingual-e5-small (prepared once per
  machine into the polyret cache, reused afterwards).
- `tiny_model`: a randomly initialised 2-layer BERT with the e5 tokenizer, for fast unit tests of
  code paths that need *a* model but not a good one.
"""

from __future__ import annotations

from pathlib import Path

import os

import pytest

from polyret.paths import find_data_dir


def pytest_configure(config) -> None:
    # Under pytest-xdist (`make test`: one worker per core) each worker, and every polyret / torchrun
    # process it starts (they inherit OMP_NUM_THREADS), gets an equal share of the cores: torch's
    # default of one thread per core in every worker would oversubscribe the machine.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(
            1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) // workers
        )
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_data(reason: str):
    """Skip locally; fail in CI, where the data is part of the contract."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: tests that need data fail instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = find_data_dir()
    if d is None:
        missing_data("no data directory (set POLYRET_DATA or place ../shared/data next to the repo)")
    return d


def need(shared_data: Path, *parts: str) -> Path:
    """A path under the data dir, or skip (in CI: fail) the test naming what is missing."""
    p = shared_data.joinpath(*parts)
    if not p.exists():
        missing_data(f"data not present: {p}")
    return p


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from polyret.model import prepare_default_model

    return prepare_default_model()


@pytest.fixture(scope="session")
def default_model(default_model_dir):
    from polyret.model import load_model

    return load_model(str(default_model_dir))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from polyret.model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    return build_tiny_model(out)
