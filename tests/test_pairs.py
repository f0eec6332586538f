"""build-pairs: MLQA / LAReQA / TyDi SQuAD JSON and group JSONL -> parallel groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import need
from polyret.data.groups import ParallelGroup, read_groups_jsonl, write_groups_jsonl
from polyret.data.pairs import build_groups, file_kind, locate_sentence, locator_accuracy
from polyret.errors import PolyretError


def squad(paragraphs: list[tuple[str, list[tuple[str, str, str | None]]]], breaks: bool = False) -> dict:
    """SQuAD JSON from [(context, [(id, question, answer text or None)])]; answer_start from find()."""
    pars = []
    for ctx, qas in paragraphs:
        items = []
        for qid, question, answer in qas:
            ans = {"text": answer, "answer_start": ctx.find(answer)} if answer else {"text": "", "answer_start": 0}
            items.append({"id": qid, "question": question, "answers": [ans]})
        par = {"context": ctx, "qas": items}
        if breaks:
            spans, pos = [], 0
            for sent in ctx.split(" | "):
                start = ctx.index(sent, pos)
                spans.append([start, start + len(sent)])
                pos = start + len(sent)
            par["sentence_breaks"] = spans
            par["sentences"] = [ctx[a:b] for a, b in spans]
        pars.append(par)
    return {"version": "1.0", "data": [{"title": "t", "paragraphs": pars}]}


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


DE = "Berlin ist groß. Die Stadt hat drei Millionen Einwohner. Sie liegt an der Spree."
ES = "Berlín es grande. La ciudad tiene tres millones de habitantes. Está junto al Spree."


@pytest.fixture
def mlqa_dir(tmp_path):
    d = tmp_path / "mini-mlqa"
    write(
        d / "test-context-de-question-es.json",
        squad([(DE, [("q1", "¿Cuántos habitantes?", "drei Millionen"), ("q2", "¿Dónde está?", "an der Spree")])]),
    )
    write(d / "test-context-es-question-de.json", squad([(ES, [("q1", "Wie viele Einwohner?", "tres millones")])]))
    (d / "LICENSE").write_text("not data")
    return d


# ------------------------------------------------------------------------------------ synthetic
def test_mlqa_join_on_id_with_sentence_unit_and_negatives(mlqa_dir):
    groups, report = build_groups([mlqa_dir], negatives="same-paragraph")
    by_id = {g.id: g for g in groups}
    assert report.groups == 2 and report.records == 3 and set(report.sources) == {"mini-mlqa"}
    q1 = by_id["q1"]
    assert q1.queries == {"es": "¿Cuántos habitantes?", "de": "Wie viele Einwohner?"}
    assert q1.positives == {
        "de": "Die Stadt hat drei Millionen Einwohner.",
        "es": "La ciudad tiene tres millones de habitantes.",
    }
    assert q1.negatives["de"] == ["Berlin ist groß.", "Sie liegt an der Spree."]
    assert by_id["q2"].positives == {"de": "Sie liegt an der Spree."} and by_id["q2"].languages == {"de", "es"}


def test_paragraph_unit_and_answer_across_sentences(tmp_path):
    d = tmp_path / "x"
    write(d / "context-de-question-es.json", squad([(DE, [("q", "¿?", "groß. Die Stadt")])]))
    groups, report = build_groups([d])
    assert groups[0].positives["de"] == "Berlin ist groß. Die Stadt hat drei Millionen Einwohner."
    assert report.counts["answers_across_sentences"] == 1
    groups, _ = build_groups([d], unit="paragraph")
    assert groups[0].positives["de"] == DE
    with pytest.raises(PolyretError, match="same-paragraph negatives need --unit sentence"):
        build_groups([d], unit="paragraph", negatives="same-paragraph")


def test_lareqa_uses_gold_sentences(tmp_path):
    # the gold second sentence holds two splitter sentences: the gold one must win
    ctx = "Erster Satz hier. | Herr Müller kam. Er sagte 42. | Dritter."
    f = write(tmp_path / "set" / "de.json", squad([(ctx, [("a", "Welche Zahl?", "42")])], breaks=True))
    groups, _ = build_groups([f], negatives="same-paragraph")
    assert groups[0].positives == {"de": "Herr Müller kam. Er sagte 42."}
    assert groups[0].negatives == {"de": ["Erster Satz hier.", "Dritter."]}
    plain = tmp_path / "plain" / "context-de-question-en.json"
    write(plain, squad([(ctx.replace(" | ", " "), [("a", "Welche Zahl?", "42")])]))
    assert build_groups([plain])[0][0].positives == {"de": "Er sagte 42."}


def test_tydi_records_never_join(tmp_path):
    d = tmp_path / "tydi"
    write(d / "tydiqa.goldp.sw.train.json", squad([(DE, [("0", "a?", "Berlin"), ("0", "b?", "Spree")])]))
    write(d / "tydiqa.goldp.ko.train.json", squad([(ES, [("0", "c?", "Spree")])]))
    groups, report = build_groups([d])
    assert sorted(g.id for g in groups) == ["ko:0", "sw:0", "sw:0#2"]
    assert all(len(g.languages) == 1 for g in groups) and report.counts["single_language_groups"] == 3


def test_answerless_records(tmp_path):
    d = tmp_path / "noans"
    write(d / "context-de-question-es.json", squad([(DE, [("q1", "¿Cuántos habitantes?", None)])]))
    write(d / "context-es-question-de.json", squad([(ES, [("q1", "Wie viele Einwohner hat die Stadt?", None)])]))
    write(
        d / "context-vi-question-de.json",
        squad([("Berlin lớn. Có ba triệu dân.", [("q1", "Wie viele Einwohner hat die Stadt?", None)])]),
    )
    with pytest.raises(
        PolyretError, match=r"context-de-question-es.json: data\[0\].paragraphs\[0\].qas\[0\] \(id q1\): no answer text"
    ):
        build_groups([d])
    groups, report = build_groups([d], answerless="overlap")
    # de and es contexts are located with the id's de / es question; no vi question: vi left out
    assert groups[0].positives == {
        "de": "Die Stadt hat drei Millionen Einwohner.",
        "es": "La ciudad tiene tres millones de habitantes.",
    }
    assert report.counts["positives_unlocated"] == 1 and report.counts["positives_located_by_overlap"] == 2
    assert set(build_groups([d], unit="paragraph")[0][0].positives) == {"de", "es", "vi"}

    # the training config says the same: `answerless: overlap` reaches the builder, and the default
    # stops with the builder's error naming the record
    from polyret.config import TrainConfig
    from polyret.train import load_training_groups

    cfg = TrainConfig(data=[str(d)], unit="sentence", answerless="overlap", negatives="same-paragraph")
    assert [g.positives for g in load_training_groups(cfg)] == [groups[0].positives]
    with pytest.raises(PolyretError, match="no answer text"):
        load_training_groups(TrainConfig(data=[str(d)], unit="sentence"))


def test_jsonl_passthrough_roundtrip(tmp_path, mlqa_dir):
    groups, _ = build_groups([mlqa_dir])
    out = tmp_path / "g.jsonl"
    write_groups_jsonl(groups, out)
    again, report = build_groups([out])
    assert [g.to_json() for g in again] == [g.to_json() for g in groups]
    assert report.counts["jsonl_groups"] == 2


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("context-de-question-es.json", "{not json", r"context-de-question-es.json is not valid JSON \(line 1"),
        ("context-de-question-es.json", {"version": 1}, "not SQuAD JSON"),
        (
            "context-de-question-es.json",
            {"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "z"}]}]}]},
            r"data\[0\].paragraphs\[0\].qas\[0\] \(id z\): a record needs an 'id' and a non-empty 'question'",
        ),
        (
            "context-de-question-es.json",
            {
                "data": [
                    {
                        "paragraphs": [
                            {
                                "context": "abc",
                                "qas": [{"id": "z", "question": "?", "answers": [{"text": "q", "answer_start": 99}]}],
                            }
                        ]
                    }
                ]
            },
            r"\(id z\): answer_start 99 is outside its context",
        ),
        ("notes.json", {"data": []}, "cannot tell its format or language"),
    ],
)
def test_malformed_files_name_file_and_record(tmp_path, name, content, message):
    p = tmp_path / "bad" / name
    p.parent.mkdir()
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(PolyretError, match=message):
        build_groups([p])


def test_missing_inputs(tmp_path):
    with pytest.raises(PolyretError, match="no such file or directory"):
        build_groups([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolyretError, match="holds no .json or .jsonl"):
        build_groups([tmp_path / "empty"])
    assert file_kind(Path("dev-context-zh-question-hi.json")) == ("mlqa", "zh", "hi")
    assert file_kind(Path("tydiqa.goldp.ar.dev.json")) == ("tydi", "ar", "ar")


def test_locate_sentence_picks_overlap():
    sents = ["Paris is the capital of France.", "It has 2 million inhabitants.", "The Seine flows through it."]
    assert locate_sentence("How many inhabitants does Paris have?", sents, "en") == 1
    assert locate_sentence("哪条河流经巴黎？", ["巴黎是法国首都。", "塞纳河流经巴黎。"], "zh") == 1


# ----------------------------------------------------------------------------------------- real
def test_build_pairs_real_mlqa_test(shared_data):
    d = need(shared_data, "mlqa-test")
    groups, report = build_groups([d], unit="paragraph")
    # Expected counts read straight from the files (not numbers the builder once printed): one record
    # per question; one group per question id (ids join across files; every record has a context).
    raw = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(d.glob("*.json"))]
    qas = [qa for data in raw for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(groups) == report.groups == len({qa["id"] for qa in qas})
    assert set(report.query_langs) == {"ar", "de", "es", "hi", "vi", "zh"}
    assert set(report.passage_langs) == {"de", "es", "vi", "zh"}
    assert report.records == len(qas) and not report.counts.get("conflicting_positives")
    assert all(1 <= len(g.queries) <= 3 and 1 <= len(g.positives) <= 3 for g in groups)
    # every MLQA file pairs different languages, and ids join across files into multi-language groups
    assert report.counts.get("single_language_groups", 0) == 0
    with pytest.raises(PolyretError, match="no answer text"):
        build_groups([d / "test-context-de-question-ar.json"])


def test_build_pairs_real_mlqa_overlap_subset(shared_data):
    d = need(shared_data, "mlqa-test")
    files = [d / "test-context-de-question-es.json", d / "test-context-es-question-de.json"]
    groups, report = build_groups(files, answerless="overlap", negatives="same-paragraph")
    ids = [
        {
            qa["id"]
            for a in json.loads(f.read_text(encoding="utf-8"))["data"]
            for p in a["paragraphs"]
            for qa in p["qas"]
        }
        for f in files
    ]
    # a positive needs the id's question in the context's language, i.e. from the other file: ids in both
    assert report.groups == len(ids[0] & ids[1])
    for g in groups[:200]:
        assert set(g.positives) == {"de", "es"} and set(g.queries) == {"de", "es"}
        for lang, pos in g.positives.items():
            assert pos not in g.negatives.get(lang, [])


def test_build_pairs_real_lareqa(shared_data):
    de = need(shared_data, "lareqa", "xquad-r", "de.json")
    zh = need(shared_data, "lareqa", "xquad-r", "zh.json")
    groups, report = build_groups([de, zh], negatives="same-paragraph")
    data = json.loads(de.read_text())
    zh_ids = {qa["id"] for a in json.loads(zh.read_text())["data"] for p in a["paragraphs"] for qa in p["qas"]}
    de_ids = {qa["id"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]}
    assert report.groups == len(de_ids | zh_ids) == 1190  # XQuAD's 1190 questions, parallel in both
    assert all(g.languages == {"de", "zh"} for g in groups)
    par = data["data"][0]["paragraphs"][0]
    qa = par["qas"][0]
    g = next(g for g in groups if g.id == qa["id"])
    start = qa["answers"][0]["answer_start"]
    gold = next(s for (a, b), s in zip(par["sentence_breaks"], par["sentences"]) if a <= start < b)
    assert g.positives["de"] == gold.strip()
    assert sorted(g.negatives["de"] + [g.positives["de"]]) == sorted(s.strip() for s in par["sentences"])


def test_locator_accuracy_real(shared_data):
    total, acc = locator_accuracy(need(shared_data, "lareqa", "xquad-r", "es.json"))
    assert total == 1190 and 0.7 < acc < 0.95  # measured 0.810


def test_cli_build_pairs(tmp_path, mlqa_dir, capsys):
    from polyret.cli import main

    out = tmp_path / "pairs.jsonl"
    main(["data", "build-pairs", "--from", str(mlqa_dir), "--out", str(out), "--negatives", "same-paragraph"])
    got = read_groups_jsonl(out)
    assert [g.id for g in got] == ["q1", "q2"] and isinstance(got[0], ParallelGroup)
    with pytest.raises(SystemExit) as e:
        main(["data", "build-pairs", "--from", str(mlqa_dir), "--out", str(out)])
    assert e.value.code == 2 and "exists; pass --overwrite" in " ".join(capsys.readouterr().err.split())
    main(["data", "build-pairs", "--from", str(mlqa_dir), "--out", str(out), "--unit", "paragraph", "--overwrite"])
    assert read_groups_jsonl(out)[0].positives["de"] == DE
    with pytest.raises(SystemExit) as e:
        main(["data", "build-pairs", "--from", str(tmp_path / "missing"), "--out", str(tmp_path / "o.jsonl")])
    assert e.value.code == 2
