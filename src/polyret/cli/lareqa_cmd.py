"""`polyret eval lareqa`: LAReQA (XQuAD-R / MLQA-R) Mono, Cross and Multi retrieval + language bias."""

from __future__ import annotations

import warnings
from pathlib import Path


from polyret.cli.app import console, eval_app, measured_settings, say_if_rerun, split_csv, use_device
from polyret.cli.options import (
    ENCODE_BATCH_SIZE,
    BatchSize,
    Cache,
    Candidate,
    DataName,
    Device,
    LanguageCorrection,
    Langs,
    Model,
    OutDir,
    Overwrite,
    Progress,
)
from polyret.io import OutputDir


def _column_titles() -> dict[str, str]:
    from polyret.evaluate.lareqa_eval import MULTI_RECALL_K, OWN_LANGUAGE_TOP_K

    return {
        "mono.map": "Mono mAP",
        "mono.recall@1": "Mono R@1",
        "cross.map": "Cross mAP",
        "cross.recall@1": "Cross R@1",
        "multi.map": "Multi mAP",
        f"multi.recall@{MULTI_RECALL_K}": f"Multi R@{MULTI_RECALL_K}",
        "rank_distance": "rank dist.",
        f"top{OWN_LANGUAGE_TOP_K}_own_language_share": f"top-{OWN_LANGUAGE_TOP_K} own",
    }


@eval_app.command("lareqa")
def eval_lareqa(
    out: OutDir = ...,
    model: Model = "default",
    data: DataName = "xquad-r",
    langs: Langs = None,
    candidate: Candidate = "sentence",
    batch_size: BatchSize = ENCODE_BATCH_SIZE,
    cache: Cache = True,
    overwrite: Overwrite = False,
    progress: Progress = True,
    language_correction: LanguageCorrection = "auto",
    device: Device = None,
) -> None:
    """Evaluate an encoder on LAReQA: every setting is a slice of one question x candidate score matrix.

    --data: a folder of LL.json files, or a data-set name under <data>/lareqa (xquad-r, mlqa-r). Writes
    results.json, report.md, cross_map_heatmap.png, multi.trec and qrels.trec to --out."""
    from rich.markup import escape

    from polyret.data.lareqa import load_lareqa

    use_device(device)  # an impossible device fails before anything else
    # The output-folder policy (polyret.io) before any slow work.
    settings = measured_settings(
        model=model, data=data, langs=langs, candidate=candidate, language_correction=language_correction
    )
    target = OutputDir(
        out,
        "eval-lareqa",
        overwrite=overwrite,
        inputs=[Path(data), Path(model)],
        legacy_files=("results.json",),
        settings=settings,
    )
    say_if_rerun(target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_lareqa(data, langs=split_csv(langs))
    for w in caught:
        console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    console.print(
        f"{dataset.name}: {dataset.n_questions} questions, {dataset.n_candidates} candidates, "
        f"{len(dataset.languages)} languages ({', '.join(dataset.languages)})"
    )
    from rich.table import Table

    from polyret.evaluate.lareqa_eval import evaluate_lareqa  # imported once the inputs are known good
    from polyret.model import load_model

    enc = load_model(model)
    res = evaluate_lareqa(
        enc,
        dataset,
        candidate=candidate,
        batch_size=batch_size,
        out_dir=target,
        cache=cache,
        show_progress=progress,
        overwrite=overwrite,
        model_name=model,
        language_correction=language_correction,
    )
    # One column per headline metric of the typed result, one row per query language.
    table = Table(title=f"LAReQA {res['dataset']} ({candidate})")
    table.add_column("query lang")
    titles = _column_titles()
    for metric in res.headline:
        table.add_column(titles.get(metric, metric), justify="right")

    def f(metric: str, x) -> str:
        return "–" if x is None or x != x else format(x, ".1f" if metric == "rank_distance" else ".3f")

    for lang in res["languages"]:
        table.add_row(lang, *(f(m, res.metrics.get(f"{m}[{lang}]")) for m in res.headline))
    table.add_row("avg", *(f(m, res.metrics[m]) for m in res.headline), style="bold")
    console.print(table)
    lc = res["language_correction"]
    console.print(
        f"language correction: {lc['method']}" + (f" ({lc['statistics']})" if lc["method"] != "none" else ""),
        markup=False,
    )
    t = res["timing"]
    console.print(
        f"encode {t['encode_s']:.1f}s, score {t['score_s']:.1f}s, total {t['total_s']:.1f}s -> {out}/results.json",
        markup=False,
    )
