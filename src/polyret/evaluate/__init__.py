"""Evaluate stage: one module per benchmark, one contract.

Every evaluator takes `(model, data, ...)` -- a model (object or name for `polyret.model.load_model`)
and the benchmark's data -- and returns an `EvalResult` (`evaluate/result.py`), whose `save(out)`
writes the one layout (results.json, per_query.npz, report.md); `load_result(path)` reads any
result folder back, older layouts included:

- `evaluate_lareqa(model, dataset)` / `lareqa(model, data_dir, out)` (`evaluate.lareqa_eval`);
- `evaluate_xnli(model, xnli_dir, options=XnliOptions(...))` (`evaluate.xnli`);
- `evaluate_tatoeba(model, tatoeba_dir, langs)` (`evaluate.tatoeba`);
- `evaluate_beir(model, beir_dir)` and `evaluate_miracl(model, corpus, lang=...)` (`evaluate.beir`,
  `evaluate.miracl`, sharing `evaluate.retrieval`).

The names are exported lazily (PEP 562): `import polyret.evaluate` imports no evaluator, so neither
torch nor scikit-learn, until one of them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalResult": "polyret.evaluate.result",
    "PerQuery": "polyret.evaluate.result",
    "upgrade_results": "polyret.evaluate.result",
    "load_result": "polyret.evaluate.reader",
    "evaluate_lareqa": "polyret.evaluate.lareqa_eval",
    "lareqa": "polyret.evaluate.lareqa_eval",
    "score_lareqa": "polyret.evaluate.lareqa_eval",
    "evaluate_xnli": "polyret.evaluate.xnli",
    "XnliOptions": "polyret.evaluate.xnli",
    "evaluate_tatoeba": "polyret.evaluate.tatoeba",
    "evaluate_beir": "polyret.evaluate.beir",
    "evaluate_miracl": "polyret.evaluate.miracl",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
