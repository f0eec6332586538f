"""Evaluate stage: one module per benchmark.

`polyret.evaluate.lareqa(model, data_dir, out)` runs the LAReQA evaluation (the `lareqa` submodule
is callable); submodules load lazily so importing the package stays cheap.
"""
from __future__ import annotations

import importlib

_SUBMODULES = ("lareqa",)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
