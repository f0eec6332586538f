"""LAReQA loader: real XQuAD-R files, in-memory construction, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import need
from polyret.data.lareqa import LareqaCandidate, LareqaDataset, LareqaQuestion, load_lareqa
from polyret.errors import PolyretError

XQUAD_CANDIDATES = {
    "ar": 1222,
    "de": 1276,
    "el": 1234,
    "en": 1180,
    "es": 1215,
    "hi": 1244,
    "ru": 1219,
    "th": 852,
    "tr": 1167,
    "vi": 1209,
    "zh": 1196,
}


@pytest.fixture(scope="module")
def xquad_dir(shared_data) -> Path:
    return need(shared_data, "lareqa", "xquad-r")


def test_full_xquad_r_shape(xquad_dir):
    with pytest.warns(UserWarning, match=r"tr\.json: 2 x sentence differs"):
        ds = load_lareqa(xquad_dir)
    assert ds.name == "xquad-r"
    assert ds.languages == tuple(sorted(XQUAD_CANDIDATES))
    assert ds.n_questions == 13_090 and ds.n_candidates == 13_014
    assert {l: s["candidates"] for l, s in ds.stats().items()} == XQUAD_CANDIDATES
    assert all(s["questions"] == 1190 for s in ds.stats().values())
    # 11-way parallel: every question has exactly one relevant sentence in each language.
    lang = ds.candidate_lang_ids()
    assert all(len(r) == 11 and len(set(lang[r])) == 11 for r in ds.relevant)
    assert ds.load_warnings == {"sentence differs from its context slice; used the `sentences` string": 2}


def test_subset_relevance_is_the_answer_sentence(xquad_dir):
    ds = load_lareqa(xquad_dir, langs=["en", "de"])
    assert ds.languages == ("en", "de") and ds.n_questions == 2380
    en_file = json.loads((xquad_dir / "en.json").read_text(encoding="utf-8"))
    answer_text = {
        qa["id"]: qa["answers"][0]["text"] for a in en_file["data"] for p in a["paragraphs"] for qa in p["qas"]
    }
    contained = 0
    for q, rel in zip(ds.questions, ds.relevant):
        cands = [ds.candidates[c] for c in rel]
        assert sorted(c.lang for c in cands) == ["de", "en"]
        en_sentence = next(c for c in cands if c.lang == "en")
        contained += answer_text[q.qid] in en_sentence.sentence
        # The same question id links the English and German question.
    assert contained / ds.n_questions > 0.97  # answers spanning a sentence break are the rare rest
    by_qid = {}
    for q in ds.questions:
        by_qid.setdefault(q.qid, set()).add(q.lang)
    assert all(v == {"en", "de"} for v in by_qid.values())


def test_bare_name_resolves_in_data_dir(xquad_dir):
    ds = load_lareqa("xquad-r", langs=["th"])
    assert ds.n_candidates == 852 and ds.questions[0].lang == "th"


def test_in_memory_construction_and_groups():
    qs = [LareqaQuestion("a", "en", "q a"), LareqaQuestion("a", "de", "F a")]
    cs = [LareqaCandidate("en", "s", "s", "p", 0), LareqaCandidate("de", "t", "t", "p", 0)]
    ds = LareqaDataset("mem", qs, cs, [[0, 1], [1, 0]])
    assert ds.languages == ("de", "en") and [r.tolist() for r in ds.relevant] == [[0, 1], [0, 1]]
    with pytest.raises(PolyretError, match="no relevant candidate"):
        LareqaDataset("mem", qs, cs, [[0], []])
    with pytest.raises(PolyretError, match="out of range"):
        LareqaDataset("mem", qs, cs, [[0], [2]])
    with pytest.raises(PolyretError, match="duplicate question id"):
        LareqaDataset("mem", [qs[0], qs[0]], cs, [[0], [1]])

    from polyret.data.groups import ParallelGroup

    groups = [
        ParallelGroup("g1", {"en": "q1", "de": "f1"}, {"en": "p1", "de": "d1"}),
        ParallelGroup("g2", {"en": "q2"}, {"en": "p2", "es": "e2"}),
    ]
    gd = LareqaDataset.from_groups(groups, name="val")
    assert gd.languages == ("de", "en", "es")
    assert [c.lang for c in gd.candidates] == ["de", "en", "en", "es"]  # grouped by language
    rel = {q.key: sorted(gd.candidates[c].sentence for c in r) for q, r in zip(gd.questions, gd.relevant)}
    assert rel == {"g1.de": ["d1", "p1"], "g1.en": ["d1", "p1"], "g2.en": ["e2", "p2"]}

    # Hard negatives join the pool relevant to nothing (the answer must beat its paragraph's other
    # sentences); a negative that is already a candidate (here g2's positive p2) is not added twice.
    groups[0].negatives.update({"en": ["n1", "p2", "n2"], "de": ["dn1"]})
    nd = LareqaDataset.from_groups(groups, name="val")
    assert sorted(c.sentence for c in nd.candidates) == ["d1", "dn1", "e2", "n1", "n2", "p1", "p2"]
    rel = {q.key: sorted(nd.candidates[c].sentence for c in r) for q, r in zip(nd.questions, nd.relevant)}
    assert rel == {"g1.de": ["d1", "p1"], "g1.en": ["d1", "p1"], "g2.en": ["e2", "p2"]}
    # the negatives count in the ranking: g1.en's query sits nearer the negative n1 than its answer p1
    from polyret.evaluate.lareqa_eval import score_lareqa

    def scored(ds):
        vec = {t: np.eye(8, dtype=np.float32)[i] for i, t in enumerate(["p1", "d1", "p2", "e2", "n1", "n2", "dn1"])}
        c = np.stack([vec[x.sentence] for x in ds.candidates])
        want = {"g1.de": vec["d1"] + vec["p1"], "g1.en": vec["p1"] + 1.5 * vec["n1"], "g2.en": vec["p2"] + vec["e2"]}
        return score_lareqa(np.stack([want[x.key] for x in ds.questions]), c, ds)

    plain = LareqaDataset.from_groups(groups, name="val", with_negatives=False)
    assert len(plain.candidates) == 4
    assert scored(plain)["mono"]["map"] == pytest.approx(1.0)
    assert scored(nd)["mono"]["map"] < 0.99


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path.parent


def _good_paragraph(qid="x1"):
    return {
        "context": "One two. Three four.",
        "sentence_breaks": [[0, 8], [9, 20]],
        "sentences": ["One two.", "Three four."],
        "qas": [{"id": qid, "question": "q?", "answers": [{"answer_start": 9, "text": "Three"}]}],
    }


def test_bad_files_fail_with_one_clear_error(tmp_path):
    d = _write(tmp_path / "bad-json" / "en.json", "{not json")
    with pytest.raises(PolyretError, match=r"en\.json is not valid JSON \(line 1"):
        load_lareqa(d)

    par = _good_paragraph()
    del par["sentences"]
    d = _write(tmp_path / "missing" / "en.json", {"data": [{"title": "T0", "paragraphs": [_good_paragraph("a"), par]}]})
    with pytest.raises(PolyretError, match=r"en\.json: article 0 \('T0'\), paragraph 1: missing field 'sentences'"):
        load_lareqa(d)

    d = _write(
        tmp_path / "dup" / "en.json", {"data": [{"title": "T", "paragraphs": [_good_paragraph(), _good_paragraph()]}]}
    )
    with pytest.raises(PolyretError, match=r"paragraph 1, question id 'x1': duplicate question id"):
        load_lareqa(d)

    par = _good_paragraph()
    par["sentence_breaks"] = [[0, 8]]
    d = _write(tmp_path / "len" / "en.json", {"data": [{"title": "T", "paragraphs": [par]}]})
    with pytest.raises(PolyretError, match="1 sentence_breaks but 2 sentences"):
        load_lareqa(d)

    d = _write(tmp_path / "ok" / "en.json", {"data": [{"title": "T", "paragraphs": [_good_paragraph()]}]})
    with pytest.raises(PolyretError, match=r"no file for language\(s\) fr \(available: en\)"):
        load_lareqa(d, langs=["en", "fr"])
    with pytest.raises(PolyretError, match="no such LAReQA data directory"):
        load_lareqa(tmp_path / "nope")
    ds = load_lareqa(d)
    assert ds.relevant[0].tolist() == [1] and ds.candidates[1].sentence == "Three four."


def test_answer_in_no_span_uses_last_span_before(tmp_path):
    par = _good_paragraph()
    par["qas"][0]["answers"][0]["answer_start"] = 8  # the space between the two sentences
    d = _write(tmp_path / "gap" / "en.json", {"data": [{"title": "T", "paragraphs": [par]}]})
    with pytest.warns(UserWarning, match="1 x answer start inside no sentence span"):
        ds = load_lareqa(d)
    assert ds.relevant[0].tolist() == [0]
    assert np.array_equal(ds.relevant_matrix(), [[0]])
