"""Evaluate stage: one module per benchmark, each returning an `EvalResult` (`evaluate/result.py`).

`polyret.evaluate.lareqa(model, data_dir, out)` runs the LAReQA evaluation; the module behind it is
`polyret.evaluate.lareqa_eval` (`evaluate_lareqa`, `score_lareqa`, ...). The other benchmarks:
`polyret.evaluate.xnli`, `.tatoeba`, `.beir`, `.miracl` (BEIR and MIRACL share `.retrieval`).
"""
from __future__ import annotations

from polyret.evaluate.lareqa_eval import evaluate_lareqa, lareqa, score_lareqa
from polyret.evaluate.result import EvalResult, PerQuery

__all__ = ["EvalResult", "PerQuery", "evaluate_lareqa", "lareqa", "score_lareqa"]
