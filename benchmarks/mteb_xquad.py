"""Benchmark: mteb's own retrieval evaluation vs polyret's nDCG@10 on the local XQuAD-R task (issue 26).

    .venv/bin/python benchmarks/mteb_xquad.py MODEL_DIR [--paragraphs 8] [--out results.json]

MODEL_DIR: a polyret model directory with a stored correction installed as a sentence-transformers
module (`polyret correction fit`). Runs, on all XQuAD-R languages (first --paragraphs paragraphs each):
  mteb raw          `mteb.evaluate` on polyret's loader's model (which leaves the module out);
  mteb corrected    `mteb.evaluate` on a plain `SentenceTransformer(MODEL_DIR, trust_remote_code=True)`;
  polyret raw / corrected   `xquad_ndcg10` (corrected: languages inferred, as the module does without
                    a `language`), plus corrected with true languages for reference.
Prints per-language nDCG@10 and the largest |mteb - polyret| (mteb rounds its scores to 5 decimals).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings


def main() -> None:
    """Run both evaluations and print / write the per-language table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--paragraphs", type=int, default=8, help="first N paragraphs per language (0 = all)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import mteb
    from sentence_transformers import SentenceTransformer

    from polyret.evaluate.mteb_bridge import xquad_ndcg10, xquad_retrieval_task
    from polyret.model import load_model

    data = os.path.join(os.environ.get("POLYRET_DATA", "data"), "lareqa", "xquad-r")
    task = xquad_retrieval_task(data, max_paragraphs=args.paragraphs or None)

    def mteb_scores(model) -> dict[str, float]:
        res = mteb.evaluate(model, tasks=[task], cache=None, overwrite_strategy="always", show_progress_bar=False)
        return {s["hf_subset"]: s["ndcg_at_10"] for s in res.task_results[0].scores["validation"]}

    model = load_model(args.model_dir, device="cpu")
    ds = task.polyret_dataset
    out = {
        "mteb raw": mteb_scores(model),
        "polyret raw": xquad_ndcg10(model, ds, cache=False),
        "mteb corrected": mteb_scores(SentenceTransformer(args.model_dir, device="cpu", trust_remote_code=True)),
        "polyret corrected": xquad_ndcg10(model, ds, language_correction="auto", infer=True, cache=False),
        "polyret corrected, true languages": xquad_ndcg10(model, ds, language_correction="auto", cache=False),
    }
    for side in ("raw", "corrected"):
        out[f"max abs diff {side}"] = max(
            abs(out[f"mteb {side}"][l] - out[f"polyret {side}"][l]) for l in out["polyret raw"]
        )
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
