"""`polyret data build-pairs` and `polyret data sentence-agreement`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from polyret.cli.app import console, data_app, split_csv
from polyret.cli.options import Json, Langs, OptionalDataPath, OutFile, Overwrite, renamed
from polyret.io import OutputFile


@data_app.command("build-pairs")
def build_pairs(
    inputs: list[Path] = typer.Option(
        ...,
        "--from",
        help="QA files or directories (MLQA *context-XX-question-YY.json, LAReQA LL.json, "
        "TyDi tydiqa.goldp.LL.SPLIT.json, group *.jsonl); repeat the option for several.",
    ),
    out: OutFile = ...,
    unit: str = typer.Option("sentence", "--unit", help="sentence (the answer's sentence) or paragraph."),
    negatives: str = typer.Option(
        "none", "--negatives", help="none or same-paragraph (other sentences of the answer's paragraph)."
    ),
    splitter: str = typer.Option(
        "auto", "--splitter", help="Sentence splitter: auto (sentencex; PyThaiNLP for Thai), sentencex, pysbd."
    ),
    answerless: str = typer.Option(
        "error",
        "--answerless",
        help="Sentence unit, records without an answer: error, or overlap (the sentence "
        "sharing most character n-grams with the id's same-language question; ~0.75-0.82 agreement with gold on XQuAD-R).",
    ),
    source: str = typer.Option(
        None, "--source", help="Training-set name for every group (default: each file's directory name)."
    ),
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Join QA records on question id into parallel groups and write them to the JSONL file --out
    (--json: the build report too, on stdout)."""
    from polyret.data.groups import write_groups_jsonl
    from polyret.data.pairs import build_groups

    from rich.table import Table

    # Checked before reading anything; written atomically at the end (polyret.io).
    OutputFile(out, overwrite=overwrite, inputs=inputs)
    groups, report = build_groups(
        inputs, unit=unit, negatives=negatives, splitter=splitter, source=source, answerless=answerless, progress=True
    )
    n = write_groups_jsonl(groups, out)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    t = Table(title=f"{n} groups -> {out}")
    t.add_column("language")
    t.add_column("groups with query", justify="right")
    t.add_column("groups with positive", justify="right")
    for lang in sorted(set(report.query_langs) | set(report.passage_langs)):
        t.add_row(lang, str(report.query_langs.get(lang, 0)), str(report.passage_langs.get(lang, 0)))
    console.print(t)
    console.print(f"{len(report.files)} files, {report.records} records; sources: {dict(report.sources)}", markup=False)
    for key, value in sorted(report.counts.items()):
        console.print(f"  {key}: {value}", markup=False)


@data_app.command("sentence-agreement", cls=renamed({"--xquad-r": "--data"}))
def sentence_agreement_cmd(
    data: OptionalDataPath = None,
    langs: Langs = None,
    splitters: str = typer.Option(
        "auto,sentencex,pysbd", "--splitters", help="Comma-separated sentence splitters to compare."
    ),
    as_json: Json = False,
) -> None:
    """Agreement of sentence splitters with XQuAD-R's gold sentence breaks, per language (--data: the
    XQuAD-R folder; default <data>/lareqa/xquad-r)."""
    from polyret.data.sentences import agreement_json, agreement_table, sentence_agreement

    with console.status("splitting XQuAD-R paragraphs ..."):
        rows = sentence_agreement(data, split_csv(langs), split_csv(splitters) or ["auto"])
    typer.echo(json.dumps(agreement_json(rows), indent=2) if as_json else agreement_table(rows))
