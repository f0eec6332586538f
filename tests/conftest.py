"""Shared fixtures.

- `shared_data`: the data directory (POLYRET_DATA / ./data / ../shared/data); tests that need it skip
  with the reason when it is absent.
- `default_model_dir` / `default_model`: the converted multilingual-e5-small (prepared once per
  machine into the polyret cache, reused afterwards).
- `tiny_model`: a randomly initialised 2-layer BERT with the e5 tokenizer, for fast unit tests of
  code paths that need *a* model but not a good one.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from polyret.paths import find_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = find_data_dir()
    if d is None:
        pytest.skip("no data directory (set POLYRET_DATA or place ../shared/data next to the repo)")
    return d


def need(shared_data: Path, *parts: str) -> Path:
    """A path under the data dir, or skip the test naming what is missing."""
    p = shared_data.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"data not present: {p}")
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
