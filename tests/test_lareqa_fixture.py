"""An MLQA-R-shaped LAReQA fixture (built on disk in the real file format) and checks of its shape.

MLQA-R shape: 7 languages (ar de en es hi vi zh); a question id exists in only 2-4 of them (so it
has 2-4 relevant sentences); paragraphs are not parallel across languages (each language has its
own paragraphs with different sentences and sentence counts); English has far more questions.
Other test modules import `build_mlqa_like` from here.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from polyret.data.lareqa import LareqaDataset, load_lareqa

MLQA_LANGS = ("ar", "de", "en", "es", "hi", "vi", "zh")


def _sentence(rng: random.Random, lang: str, n_words: int) -> str:
    words = [f"{lang}{rng.randrange(10_000)}" for _ in range(n_words)]
    return " ".join(words).capitalize() + "."


def build_mlqa_like(root: Path, n_questions: int = 60, seed: int = 0) -> dict:
    """Write `root/LL.json` for the 7 MLQA languages; return the ground truth.

    Truth: {"relevant": {qid: {lang: (paragraph_id, position)}}, "no_span": n, "mismatch": n}.
    Two quirks are planted: one answer start inside the gap between two sentences (-> the last span
    starting before it) and one `sentences` string that differs from its context slice.
    """
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    others = [l for l in MLQA_LANGS if l != "en"]
    # Language set per question: English + 1-3 others for most; a few without English (2 others).
    lang_sets: dict[str, list[str]] = {}
    for i in range(n_questions):
        qid = f"q{i:04d}"
        if i % 10 == 9:
            lang_sets[qid] = rng.sample(others, 2)
        else:
            lang_sets[qid] = ["en", *rng.sample(others, rng.randint(1, 3))]
    relevant: dict[str, dict[str, tuple[str, int]]] = {q: {} for q in lang_sets}
    planted_gap = planted_mismatch = False
    for lang in MLQA_LANGS:
        qids = [q for q, ls in lang_sets.items() if lang in ls]
        rng.shuffle(qids)  # questions land in different paragraphs in every language
        articles, ai = [], 0
        while qids:
            paragraphs = []
            for pi in range(rng.randint(1, 3)):
                if not qids:
                    break
                n_sent = rng.randint(2, 6)
                sents = [_sentence(rng, lang, rng.randint(3, 9)) for _ in range(n_sent)]
                context, breaks = "", []
                for s in sents:
                    if context:
                        context += " "
                    breaks.append([len(context), len(context) + len(s)])
                    context += s
                sentences = list(sents)
                if not planted_mismatch and lang == "de":
                    sentences[0] = sentences[0][:-1] + "!"  # differs from the context slice
                    planted_mismatch = True
                qas = []
                for _ in range(min(len(qids), rng.randint(1, 4))):
                    qid = qids.pop()
                    si = rng.randrange(n_sent)
                    start = breaks[si][0] + rng.randrange(max(1, breaks[si][1] - breaks[si][0] - 1))
                    if not planted_gap and lang == "es" and si > 0:
                        start = breaks[si][0] - 1  # the space before sentence si: inside no span
                        si -= 1  # the last span starting before it
                        planted_gap = True
                    qas.append(
                        {
                            "id": qid,
                            "question": f"{lang} question {qid} {rng.randrange(1000)}?",
                            "answers": [{"answer_start": start, "text": context[start : start + 3]}],
                        }
                    )
                    relevant[qid][lang] = (f"{ai}-{pi}", si)
                paragraphs.append({"context": context, "qas": qas, "sentence_breaks": breaks, "sentences": sentences})
            articles.append({"title": f"{lang}-article-{ai}", "paragraphs": paragraphs})
            ai += 1
        (root / f"{lang}.json").write_text(
            json.dumps({"version": "1.1", "data": articles}, ensure_ascii=False), encoding="utf-8"
        )
    assert planted_gap and planted_mismatch
    return {"relevant": relevant, "no_span": 1, "mismatch": 1}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fixture_has_the_mlqa_shape(tmp_path):
    truth = build_mlqa_like(tmp_path / "mlqa-like", n_questions=80)
    ds = load_lareqa(tmp_path / "mlqa-like")
    assert isinstance(ds, LareqaDataset)
    assert ds.languages == MLQA_LANGS
    n_rel = Counter(len(r) for r in ds.relevant)
    assert set(n_rel) <= {2, 3, 4} and len(n_rel) == 3  # 2-4 relevant, all three counts occur
    per_lang = Counter(q.lang for q in ds.questions)
    assert per_lang["en"] > 2 * max(n for l, n in per_lang.items() if l != "en")
    # Not parallel: languages differ in candidate counts.
    n_cand = Counter(c.lang for c in ds.candidates)
    assert len(set(n_cand.values())) > 1
    assert sum(len(v) for v in truth["relevant"].values()) == ds.n_questions


def test_loader_relevance_matches_construction(tmp_path):
    truth = build_mlqa_like(tmp_path / "m", n_questions=50, seed=3)
    with pytest.warns(UserWarning, match="no sentence span"):
        ds = load_lareqa(tmp_path / "m")
    assert ds.load_warnings == {
        "answer start inside no sentence span; used the last span starting before it": truth["no_span"],
        "sentence differs from its context slice; used the `sentences` string": truth["mismatch"],
    }
    for q, rel in zip(ds.questions, ds.relevant):
        got = {ds.candidates[c].lang: (ds.candidates[c].paragraph_id, ds.candidates[c].position) for c in rel}
        assert got == truth["relevant"][q.qid], q.key
    # The `sentences` string wins over the context slice.
    de_first = next(c for c in ds.candidates if c.lang == "de")
    assert de_first.sentence.endswith("!") and de_first.sentence not in de_first.context
