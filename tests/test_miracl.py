"""MIRACL: readers on the real v1.0 topics/qrels, precise errors, and the full evaluation path on a
small corpus built here (real Swahili topics, synthetic passages under the real judged docids)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from conftest import need
from polyret.cli import main
from polyret.data.miracl import MIRACL_LANGS, iter_corpus, read_topics, read_trec_qrels
from polyret.errors import PolyretError
from polyret.evaluate.miracl import evaluate_miracl, miracl_task


def test_reads_real_swahili_dev_topics_and_qrels(shared_data):
    topics = read_topics(need(shared_data, "miracl", "topics", "topics.miracl-v1.0-sw-dev.tsv"))
    qrels = read_trec_qrels(need(shared_data, "miracl", "qrels", "qrels.miracl-v1.0-sw-dev.tsv"))
    assert len(topics) == 482 and topics["6"] == "Bandari kubwa nchini Kenya iko wapi?"
    assert set(qrels) == set(topics)
    assert sum(map(len, qrels.values())) == 5092
    assert sum(r > 0 for ds in qrels.values() for r in ds.values()) == 910
    assert qrels["6"]["32589#0"] == 1 and qrels["6"]["33690#3"] == 0


def test_every_dev_language_parses_and_every_topic_is_judged(shared_data):
    for lang in MIRACL_LANGS:
        topics = read_topics(need(shared_data, "miracl", "topics", f"topics.miracl-v1.0-{lang}-dev.tsv"))
        qrels = read_trec_qrels(need(shared_data, "miracl", "qrels", f"qrels.miracl-v1.0-{lang}-dev.tsv"))
        assert set(qrels) == set(topics), lang
        assert all(any(r > 0 for r in ds.values()) for ds in qrels.values()), lang


def test_reader_errors_name_file_and_line(tmp_path):
    t = tmp_path / "topics.tsv"
    t.write_text("1\tfine\n2\tone\ttoo many\n")
    with pytest.raises(PolyretError, match=r"topics.tsv line 2 has 3 tab-separated columns"):
        read_topics(t)
    q = tmp_path / "qrels.tsv"
    q.write_text("1 Q0 d#0 1\n1 Q0 d#1\n")
    with pytest.raises(PolyretError, match=r"qrels.tsv line 2 has 3 columns, expected 4"):
        read_trec_qrels(q)
    q.write_text("1 Q0 d#0 yes\n")
    with pytest.raises(PolyretError, match="line 1: relevance 'yes' is not an integer"):
        read_trec_qrels(q)
    c = tmp_path / "corpus.jsonl"
    c.write_text('{"docid": "1#0", "title": "T", "text": "x"}\n{"_id": "1#1", "text": "y"}\n')
    with pytest.raises(PolyretError, match=r"corpus.jsonl line 2 has no string 'docid' field"):
        list(iter_corpus(c))


def test_corpus_directory_of_shards_in_natural_order(tmp_path):
    shards = tmp_path / "miracl-corpus-v1.0-sw"
    shards.mkdir()
    for i in (10, 2, 1):
        with gzip.open(shards / f"docs-{i}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.write(json.dumps({"docid": f"{i}#0", "title": "", "text": f"shard {i}"}) + "\n")
    assert [d.id for d in iter_corpus(shards)] == ["1#0", "2#0", "10#0"]
    with gzip.open(shards / "docs-3.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"docid": "2#0", "title": "", "text": "again"}) + "\n")
    with pytest.raises(PolyretError, match="docs-3.jsonl.gz line 1 repeats docid '2#0'"):
        list(iter_corpus(shards))


def test_without_a_corpus_the_error_says_which_file_is_needed(shared_data, capsys):
    with pytest.raises(PolyretError, match="miracl-corpus-v1.0-sw.*miracl/miracl-corpus.*Hugging Face"):
        miracl_task("sw", None)
    with pytest.raises(SystemExit) as e:
        main(["eval", "miracl", "--lang", "sw", "--out", "unused"])
    assert e.value.code == 2 and "--corpus" in capsys.readouterr().err
    with pytest.raises(PolyretError, match="unknown MIRACL language 'xx'"):
        miracl_task("xx", None)


def test_full_path_on_a_small_corpus(shared_data, tmp_path, default_model):
    topics_path = need(shared_data, "miracl", "topics", "topics.miracl-v1.0-sw-dev.tsv")
    qrels_all = read_trec_qrels(need(shared_data, "miracl", "qrels", "qrels.miracl-v1.0-sw-dev.tsv"))
    topics = read_topics(topics_path)
    qids = list(topics)[:4]
    # Relevant passages restate their question; judged non-relevant ones and distractors restate
    # unrelated questions. The corpus holds exactly the judged passages of the chosen queries + 20 others.
    others = [q for q in topics if q not in qids][:20]
    corpus, qrels_lines = [], []
    for q in qids:
        for j, (docid, rel) in enumerate(qrels_all[q].items()):
            text = topics[q] if rel > 0 else topics[others[j % len(others)]] + " Habari nyingine."
            corpus.append({"docid": docid, "title": f"Kichwa {docid.split('#')[0]}", "text": text})
            qrels_lines.append(f"{q} Q0 {docid} {rel}")
    corpus += [{"docid": f"900{j}#0", "title": "", "text": topics[q]} for j, q in enumerate(others)]
    corpus_path = tmp_path / "sw-corpus.jsonl.gz"
    with gzip.open(corpus_path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in corpus)
    qrels_path = tmp_path / "qrels-subset.tsv"
    qrels_path.write_text("\n".join(qrels_lines) + "\n")

    out = tmp_path / "out"
    res = evaluate_miracl(
        default_model,
        "sw",
        corpus=corpus_path,
        topics=topics_path,
        qrels=qrels_path,
        out_dir=out,
        chunk_size=16,
        show_progress=False,
    )
    assert res["n_queries"] == 4 and res["n_docs"] == len(corpus)
    assert res["n_topics_unjudged"] == 482 - 4 and res["n_relevant_missing_from_corpus"] == 0
    assert set(res["metrics"]) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert res["metrics"]["recall@100"] == 1.0  # corpus smaller than 100: every relevant passage retrieved
    assert res["metrics"]["ndcg@10"] > 0.8  # relevant passages restate the question
    # recompute nDCG@10 from the written run with the textbook formula
    run = {}
    for line in (out / "run.trec").read_text().splitlines():
        qid, _, docid, rank, _score, _ = line.split()
        run.setdefault(qid, []).append(docid)
    ndcgs = []
    for q in qids:
        rel = {d: r for d, r in qrels_all[q].items() if r > 0}
        dcg = sum(rel.get(d, 0) / np.log2(i + 2) for i, d in enumerate(run[q][:10]))
        idcg = sum(r / np.log2(i + 2) for i, r in enumerate(sorted(rel.values(), reverse=True)[:10]))
        ndcgs.append(dcg / idcg)
    assert res["metrics"]["ndcg@10"] == pytest.approx(np.mean(ndcgs), abs=1e-9)
    assert json.loads((out / "results.json").read_text())["lang"] == "sw"
