"""What a training run records as it goes: trainer log events (train_log.jsonl) and, per rank,
each step's batch type and languages (batch_log.rank<R>.jsonl)."""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

from polyret.runtime import rank as _rank


def make_log_callback(path: Path, resumed_from: str | None):
    from transformers import TrainerCallback

    class JsonlLogCallback(TrainerCallback):
        """Appends every trainer log event (train loss, lr, eval_loss, runtime) to train_log.jsonl."""

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self._write({"event": "train_begin", "step": state.global_step, "resumed_from": resumed_from})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                self._write({"event": "log", "step": state.global_step, "epoch": state.epoch, **logs})

        def _write(self, record: dict) -> None:
            record = {"time": round(time.time(), 3), **record}
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=str) + "\n")

    return JsonlLogCallback()


def describe_rows(table, rows: list[int]) -> dict[str, Any]:
    """Batch type and languages of a set of PairTable rows, read from the table's metadata."""
    infos = [table.row_info(r) for r in rows]
    qls = [q for _, q, _, _ in infos]
    pls = [p for _, _, p, _ in infos]
    same = [q == p for q, p in zip(qls, pls)]
    if all(same):
        langs = set(qls)
        batch_type, lang = ("x-x-mono", qls[0]) if len(langs) == 1 else ("x-x", None)
    elif not any(same):
        batch_type, lang = "x-y", None
    else:
        batch_type, lang = "mixed", None
    return {
        "batch_type": batch_type,
        "lang": lang,
        "sources": sorted({s for *_, s in infos}),
        "query_langs": sorted(set(qls)),
        "passage_langs": sorted(set(pls)),
        "groups": [table.group_ids[g] for g, *_ in infos],
        "rows": [[table.group_ids[g], q, p] for g, q, p, _ in infos],  # (group, query lang, passage lang) per row
    }


class BatchLoggingCollator:
    """Wraps the trainer's collator to record, per rank, what each training step drew.

    The collator sees each batch's rows as text; (anchor, positive) maps back to the PairTable row
    whose metadata says the batch type and languages -- so only text columns ever reach the loss.
    Validation batches (rows of the held-out table, absent from the training table) are not recorded.
    The dataloader collates one batch ahead, so records wait in `pending` until a step ends
    (`step_callback`): each written line is a batch that was actually trained on, with its step.
    """

    def __init__(self, inner, table, path: Path) -> None:
        self._inner, self._table, self._path = inner, table, path
        self._lookup: dict[tuple[str, str], int] = {}
        for i, (a, p) in enumerate(zip(table.anchors, table.positives)):
            self._lookup.setdefault((a, p), i)
        self.pending: deque[dict] = deque()

    def __call__(self, features):
        rows = [self._lookup.get((f["anchor"], f["positive"])) for f in features]
        if all(r is not None for r in rows):
            self.pending.append({"rank": _rank(), "size": len(rows), **describe_rows(self._table, rows)})
        return self._inner(features)

    def __getattr__(self, name):  # valid_label_columns, tokenize_fn, prompts, ...
        return getattr(self._inner, name)

    def step_callback(self):
        from transformers import TrainerCallback

        log = self

        class _WriteTrainedBatch(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if log.pending:
                    record = {"step": state.global_step, **log.pending.popleft()}
                    with log._path.open("a", encoding="utf-8") as f:
                        f.write(json.dumps(record, ensure_ascii=False) + "\n")

        return _WriteTrainedBatch()
