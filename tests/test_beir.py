"""BEIR layout reader/writer: round trip with `lang`, judged-query restriction, precise errors."""

from __future__ import annotations

import gzip
import json

import pytest

from polyret.data.beir import BeirDoc, BeirQuery, iter_corpus, load_beir, read_qrels, read_queries, write_beir
from polyret.errors import PolyretError


def _small(tmp_path):
    docs = [
        BeirDoc("d1", "Paris is in France.", title="Paris", lang="en"),
        BeirDoc("d2", "Berlin liegt in Deutschland.", lang="de"),
        BeirDoc("d3", "no language"),
    ]
    queries = [
        BeirQuery("q1", "Where is Paris?", lang="en"),
        BeirQuery("q2", "Wo liegt Berlin?", lang="de"),
        BeirQuery("q3", "unjudged query"),
    ]
    qrels = {"q1": {"d1": 1, "d2": 0}, "q2": {"d2": 2}}
    return write_beir(tmp_path / "beir", docs, queries, qrels), docs, queries, qrels


def test_round_trip_keeps_lang_and_restricts_to_judged_queries(tmp_path):
    root, docs, queries, qrels = _small(tmp_path)
    assert (root / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert list(iter_corpus(root / "corpus.jsonl")) == docs
    assert json.loads((root / "corpus.jsonl").read_text().splitlines()[2]) == {
        "_id": "d3",
        "title": "",
        "text": "no language",
    }
    split = load_beir(root, "test")
    assert list(split.queries) == ["q1", "q2"]  # q3 has no judgement
    assert split.queries["q2"] == queries[1]
    assert split.qrels == qrels


def test_reads_gzipped_files_and_numeric_ids(tmp_path):
    root = tmp_path / "b"
    (root / "qrels").mkdir(parents=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"_id": 7, "title": "T", "text": "x"}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "q"}) + "\n")
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n1\t7\t1\n")
    split = load_beir(root, "dev")
    assert [d.id for d in iter_corpus(split.corpus_path)] == ["7"]
    assert split.qrels == {"1": {"7": 1}}


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": ', "line 2 is not valid JSON"),
        ('{"_id": "d1", "title": "t"}', "line 1 has no 'text' field"),
        ('{"text": "a"}', "line 1 has no '_id' field"),
        ('{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}', "line 2 repeats document id 'd1'"),
        ('["not", "an", "object"]', "line 1 is not a JSON object"),
        ('{"_id": "d1", "text": 5}', "field 'text' must be a string"),
    ],
)
def test_corpus_errors_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "corpus.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(PolyretError, match=message) as e:
        list(iter_corpus(p))
    assert str(p) in str(e.value)


def test_qrels_errors(tmp_path):
    p = tmp_path / "test.tsv"
    p.write_text("q1\td1\t1\n")
    with pytest.raises(PolyretError, match="line 1 must be the header"):
        read_qrels(p)
    p.write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(PolyretError, match="line 2 has 2 tab-separated columns"):
        read_qrels(p)
    p.write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(PolyretError, match="line 2: score 'high' is not a number"):
        read_qrels(p)


def test_load_errors(tmp_path):
    root, *_ = _small(tmp_path)
    with pytest.raises(PolyretError, match=r"dev.tsv does not exist \(splits present: test\)"):
        load_beir(root, "dev")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td1\t1\n")
    with pytest.raises(PolyretError, match="judges 1 query id.*'q9'"):
        load_beir(root, "test")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n')
    with pytest.raises(PolyretError, match="line 2 repeats query id 'q1'"):
        read_queries(root / "queries.jsonl")
    with pytest.raises(PolyretError, match="neither corpus.jsonl nor corpus.jsonl.gz"):
        load_beir(tmp_path, "test")


def test_writer_refuses_existing_dir_and_dangling_judgements(tmp_path):
    root, docs, queries, qrels = _small(tmp_path)
    with pytest.raises(PolyretError, match="already holds a finished beir-data output; pass --overwrite"):
        write_beir(root, docs, queries, qrels)
    write_beir(root, docs[:2], queries, qrels, overwrite=True)
    assert len(list(iter_corpus(root / "corpus.jsonl"))) == 2
    with pytest.raises(PolyretError, match="judge document 'd9'"):
        write_beir(tmp_path / "other", docs, queries, {"q1": {"d9": 1}})


def test_duplicate_ids_found_across_batches_and_named(tmp_path):
    from polyret.data.beir import DuplicateIds

    p = tmp_path / "c.jsonl"
    seen = DuplicateIds("document id", batch=3)
    for i in range(10):
        seen.add(f"d{i}", p, i + 1)
    seen.add("d1", p, 11)  # repeats an id from an earlier, already merged batch
    with pytest.raises(PolyretError, match="c.jsonl line 11 repeats document id 'd1'"):
        seen.finish()
    seen = DuplicateIds("document id", batch=100)
    for i, d in enumerate(["a", "b", "a"]):
        seen.add(d, p, i + 1)
    with pytest.raises(PolyretError, match="line 3 repeats document id 'a'"):
        seen.finish()
