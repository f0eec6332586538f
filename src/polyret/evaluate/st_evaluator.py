"""polyret's LAReQA evaluation as a sentence-transformers evaluator, for anyone's trainer.

    from polyret.data.lareqa import load_lareqa
    from polyret.evaluate.st_evaluator import LareqaEvaluator

    evaluator = LareqaEvaluator(load_lareqa("data/xquad-r", langs=["de", "en", "zh"]), name="xquad-r")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=..., evaluator=evaluator)
    # args: eval_strategy="steps", load_best_model_at_end=True,
    #       metric_for_best_model="eval_xquad-r_multi_map" (or ..._rank_distance with greater_is_better=False)

Every call runs `polyret.evaluate.lareqa_eval.evaluate_lareqa` on the model being trained (same
encoding, same ranks, same numbers as `polyret eval lareqa`; no embedding cache, since the weights
change between calls) and returns flat metrics: `mono_map`, `cross_map`, `multi_map`,
`rank_distance`, `multi_recall@10`, `mono_recall@1`, `cross_recall@1`, `own_language_share@10`,
and `multi_map_<lang>` per language, each prefixed with `name_`. `primary_metric` picks the one a
trainer keeps its best checkpoint by; `greater_is_better` follows it (False for rank_distance).
"""

from __future__ import annotations

import contextlib
import csv
import os
from typing import Any

from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from polyret.correction import LanguageCorrection
from polyret.data.lareqa import LareqaDataset
from polyret.encode import ENCODE_BATCH_SIZE
from polyret.errors import PolyretError
from polyret.evaluate.lareqa_eval import CANDIDATE_MODES, evaluate_lareqa

# evaluator key -> key in polyret's flat LAReQA metrics (EvalResult.metrics)
METRICS = {
    "mono_map": "mono.map",
    "cross_map": "cross.map",
    "multi_map": "multi.map",
    "rank_distance": "rank_distance",
    "mono_recall@1": "mono.recall@1",
    "cross_recall@1": "cross.recall@1",
    "multi_recall@10": "multi.recall@10",
    "own_language_share@10": "top10_own_language_share",
}
LOWER_IS_BETTER = {"rank_distance", "own_language_share@10"}


@contextlib.contextmanager
def _without_correction_module(model):
    """Take a trailing `LanguageCorrectionModule` off `model` for the duration; yields its statistics
    as a `LanguageCorrection` (None if the pipeline has no such module)."""
    names = [n for n, m in model.named_children() if type(m).__name__ == "LanguageCorrectionModule"]
    if not names:
        yield None
        return
    module = model._modules[names[-1]]
    meta = module.meta
    correction = LanguageCorrection(
        meta["method"],
        module.stats,
        meta.get("model_id"),
        meta.get("source", ""),
        meta.get("n_texts", {}),
        list(meta.get("uncorrected", [])),
        int(meta.get("n_directions", 0)),
        meta.get("pivot", "en"),
    )
    saved = dict(model._modules)
    for n in names:
        del model._modules[n]
    try:
        yield correction
    finally:
        model._modules.clear()
        model._modules.update(saved)


class LareqaEvaluator(SentenceEvaluator):
    """LAReQA Mono / Cross / Multi mAP and rank distance of a SentenceTransformer on `dataset`.

    language_correction: 'none' (default: a stored correction was fitted for other weights than the
    ones being trained), a `LanguageCorrection`, or any spec `polyret eval lareqa` accepts.
    """

    def __init__(
        self,
        dataset: LareqaDataset,
        *,
        name: str = "lareqa",
        primary_metric: str = "multi_map",
        candidate: str = "sentence",
        batch_size: int = ENCODE_BATCH_SIZE,
        language_correction: Any = "none",
        write_csv: bool = True,
        show_progress: bool = False,
    ):
        super().__init__()
        if primary_metric not in METRICS:
            raise PolyretError(f"primary_metric {primary_metric!r}: choose from {', '.join(METRICS)}")
        if candidate not in CANDIDATE_MODES:
            raise PolyretError(f"candidate {candidate!r}: choose from {', '.join(CANDIDATE_MODES)}")
        self.dataset = dataset
        self.name = name
        self.primary_metric = primary_metric
        self.greater_is_better = primary_metric not in LOWER_IS_BETTER
        self.candidate = candidate
        self.batch_size = batch_size
        self.language_correction = language_correction
        self.write_csv = write_csv
        self.show_progress = show_progress
        self.csv_file = f"lareqa_evaluation_{name}_results.csv" if name else "lareqa_evaluation_results.csv"
        self.last_result = None  # the full polyret EvalResult of the latest call

    def compute(self, model) -> dict[str, float]:
        """The unprefixed metrics of `model` (no logging, no CSV)."""
        with _without_correction_module(model) as module_correction:
            # A pipeline that ends with polyret's correction module is evaluated with that correction,
            # applied with the dataset's known languages (the module itself would see no task here).
            spec = (
                module_correction
                if module_correction is not None and self.language_correction == "none"
                else self.language_correction
            )
            result = evaluate_lareqa(
                model,
                self.dataset,
                candidate=self.candidate,
                batch_size=self.batch_size,
                cache=False,
                show_progress=self.show_progress,
                language_correction=spec,
            )
        self.last_result = result
        out = {key: float(result.metrics[src]) for key, src in METRICS.items()}
        for lang in self.dataset.languages:
            out[f"multi_map_{lang}"] = float(result.metrics[f"multi.map[{lang}]"])
        return out

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        was_training = getattr(model, "training", False)
        model.eval()
        try:
            values = self.compute(model)
        finally:
            model.train(was_training)
        if output_path is not None and self.write_csv:
            self._append_csv(output_path, epoch, steps, values)
        metrics = self.prefix_name_to_metrics(values, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def _append_csv(self, output_path: str, epoch: int, steps: int, values: dict[str, float]) -> None:
        os.makedirs(output_path, exist_ok=True)
        path = os.path.join(output_path, self.csv_file)
        new = not os.path.isfile(path)
        with open(path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "steps", *values])
            writer.writerow([epoch, steps, *values.values()])

    def get_config_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset.name, "candidate": self.candidate, "primary_metric": self.primary_metric}
