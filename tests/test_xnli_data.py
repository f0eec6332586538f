"""NLI readers: XNLI TSV, SNLI line-aligned files, SICK — real files and precise errors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import need
from polyret.data.xnli import (
    NLI_LABELS,
    NLIPairs,
    detokenize,
    find_xnli_languages,
    load_english_train,
    read_sick,
    read_snli_aligned,
    read_xnli_tsv,
)
from polyret.errors import PolyretError


def write(path, text: str, newline: str = "\n"):
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- XNLI TSV
def test_shared_xnli_dev_reads_all_rows_with_crlf(shared_data):
    path = need(shared_data, "xnli", "dev-sw.tsv")
    assert b"\r\n" in path.read_bytes()[:2000]  # the shared copy really is CRLF
    pairs = read_xnli_tsv(path)
    assert len(pairs) == 2490
    assert pairs.label_counts() == {"entailment": 830, "neutral": 830, "contradiction": 830}
    assert not any(h.endswith("\r") for h in pairs.hypotheses)
    # rows are aligned across languages: same label sequence as English
    en = read_xnli_tsv(need(shared_data, "xnli", "dev-en.tsv"))
    assert np.array_equal(en.labels, pairs.labels)
    assert en.premises[0] == "And he said, Mama, I'm home."


def test_shared_xnli_languages_are_the_15(shared_data):
    need(shared_data, "xnli")
    langs = find_xnli_languages(shared_data / "xnli", "dev")
    assert len(langs) == 15 and langs[0] == "en" and {"sw", "ur"} <= set(langs)


def test_xnli_tsv_crlf_bom_and_limit(tmp_path):
    p = write(
        tmp_path / "dev-xx.tsv",
        "\ufeffA man sleeps.\tA person rests.\tentailment\nA man sleeps.\tA cat runs.\tNEUTRAL\nA\tB\tcontradiction\n",
        newline="\r\n",
    )
    pairs = read_xnli_tsv(p)
    assert pairs.premises[0] == "A man sleeps." and pairs.labels.tolist() == [0, 1, 2]
    assert len(read_xnli_tsv(p, limit=2)) == 2


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("a\tb\tentailment\na\tb\tmaybe\n", 2, "label 'maybe'"),
        ("a\tb\tentailment\n\na\tb\tneutral\n", 2, "blank line"),
        ("a\tb\tentailment\na\tb\tneutral\na\tcontradiction\n", 3, "got 2"),
        ("a\tb\tentailment\n \tb\tneutral\n", 2, "empty premise"),
    ],
)
def test_xnli_tsv_errors_name_file_and_line(tmp_path, body, line, words):
    p = write(tmp_path / "dev-bad.tsv", body)
    with pytest.raises(PolyretError) as e:
        read_xnli_tsv(p)
    msg = str(e.value)
    assert "dev-bad.tsv" in msg and f"line {line}" in msg and words in msg


def test_xnli_tsv_missing_empty_and_non_utf8(tmp_path):
    with pytest.raises(PolyretError, match="does not exist"):
        read_xnli_tsv(tmp_path / "nope.tsv")
    with pytest.raises(PolyretError, match="no rows"):
        read_xnli_tsv(write(tmp_path / "empty.tsv", ""))
    (tmp_path / "latin.tsv").write_bytes("caf\xe9\tb\tneutral\n".encode("latin-1"))
    with pytest.raises(PolyretError, match="not UTF-8"):
        read_xnli_tsv(tmp_path / "latin.tsv")


# ----------------------------------------------------------------------------- SNLI
def test_detokenize_snli_style_text():
    assert detokenize("Two women are embracing . ") == "Two women are embracing."
    assert (
        detokenize("He does n't like his brother 's cart , really !") == "He doesn't like his brother's cart, really!"
    )
    assert detokenize("words `` HELP ME '' on it") == 'words "HELP ME" on it'


def test_shared_snli_dev(shared_data):
    d = need(shared_data, "nli-en", "snli")
    pairs = read_snli_aligned(d, "dev")
    assert len(pairs) == 9842
    assert pairs.label_counts() == {"entailment": 3329, "neutral": 3235, "contradiction": 3278}
    assert pairs.premises[0] == "Two women are embracing while holding to go packages."
    raw = read_snli_aligned(d, "dev", detok=False)
    assert raw.premises[0].endswith("packages .")


def test_snli_misaligned_and_bad_label(tmp_path):
    write(tmp_path / "s1.dev", "a\nb\n")
    write(tmp_path / "s2.dev", "c\nd\n")
    write(tmp_path / "labels.dev", "neutral\n")
    with pytest.raises(PolyretError, match=r"not line-aligned \(s1 2, s2 2, labels 1"):
        read_snli_aligned(tmp_path, "dev")
    write(tmp_path / "labels.dev", "neutral\n-\n")
    with pytest.raises(PolyretError, match=r"labels\.dev, line 2: label '-'"):
        read_snli_aligned(tmp_path, "dev")
    with pytest.raises(PolyretError, match=r"missing .*s1\.test"):
        read_snli_aligned(tmp_path, "test")


# ----------------------------------------------------------------------------- SICK
def test_shared_sick_sets(shared_data):
    p = need(shared_data, "nli-en", "SICK.txt")
    train = read_sick(p)
    assert len(train) == 4439 and train.source == "sick:TRAIN"
    assert len(read_sick(p, ["trial"])) == 495
    assert len(read_sick(p, ["TRAIN", "TRIAL", "TEST"])) == 9840
    assert set(train.labels.tolist()) == {0, 1, 2}  # upper-case labels mapped


def test_sick_errors(tmp_path):
    header = "pair_ID\tsentence_A\tsentence_B\tentailment_label\tSemEval_set\n"
    p = write(tmp_path / "SICK.txt", header + "1\ta\tb\tNEUTRAL\tTRAIN\n2\ta\tb\tYES\tTRAIN\n")
    with pytest.raises(PolyretError, match=r"SICK.txt, line 3: label 'YES'"):
        read_sick(p)
    with pytest.raises(PolyretError, match="DEV unknown"):
        read_sick(p, ["DEV"])
    q = write(tmp_path / "other.txt", "a\tb\tc\n")
    with pytest.raises(PolyretError, match=r"line 1: header lacks column\(s\) sentence_A"):
        read_sick(q)


# ----------------------------------------------------------------------------- training specs
def test_load_english_train_specs(shared_data, tmp_path):
    need(shared_data, "nli-en", "SICK.txt")
    tsv = write(tmp_path / "mine.tsv", "a\tb\tentailment\nc\td\tneutral\n")
    pairs = load_english_train(f"sick:TRIAL,{tsv}", data_dir=shared_data)
    assert len(pairs) == 495 + 2 and pairs.parts == ["sick:TRIAL", str(tsv)]
    with pytest.raises(PolyretError, match="neither snli:<split>, sick:<SET>, xnli:<side> nor an existing TSV"):
        load_english_train("mnli:train", data_dir=shared_data)
    with pytest.raises(PolyretError, match="no English training data"):
        load_english_train(" , ", data_dir=shared_data)
    # a repeat weights one set: K copies of its rows, named in parts
    twice = load_english_train(f"sick:TRIAL*2,{tsv}*3", data_dir=shared_data)
    assert len(twice) == 2 * 495 + 3 * 2 and twice.parts == ["sick:TRIAL*2", f"{tsv}*3"]
    assert twice.premises[:495] == twice.premises[495:990] == pairs.premises[:495]
    for bad in ("sick:TRIAL*0", "sick:TRIAL*x", "*2"):
        with pytest.raises(PolyretError, match=r"a repeat is <spec>\*K"):
            load_english_train(bad, data_dir=shared_data)


def test_english_train_from_one_side_of_xnli_dev(shared_data):
    from polyret.data.parallel import xnli_premise_index, xnli_side_rows
    from polyret.data.xnli import reads_xnli_side

    xnli = need(shared_data, "xnli")
    en = read_xnli_tsv(xnli / "dev-en.tsv")
    align = load_english_train("xnli:align", data_dir=shared_data)
    rows = xnli_side_rows(xnli, "align")
    assert align.parts == ["xnli:align"] and len(align) == len(rows)
    assert align.hypotheses == [en.hypotheses[i] for i in rows] and (align.labels == en.labels[rows]).all()
    # the two sides share no premise: an evaluation of the other side never scores a trained premise
    premise = xnli_premise_index(xnli, "dev")
    assert not set(premise[rows]) & set(premise[xnli_side_rows(xnli, "eval")])
    with pytest.raises(PolyretError, match="unknown XNLI side 'test'"):
        load_english_train("xnli:test", data_dir=shared_data)
    assert reads_xnli_side("snli:dev, xnli:align*4", "align") and not reads_xnli_side("snli:dev", "align")
    assert not reads_xnli_side(["xnli:align"], "eval") and reads_xnli_side(["xnli:eval"], "eval")


def test_nli_pairs_concat_and_head():
    a = NLIPairs(["p1", "p2"], ["h1", "h2"], [0, 2], source="a")
    b = NLIPairs(["p3"], ["h3"], [1], source="b")
    c = NLIPairs.concat([a, b])
    assert c.premises == ["p1", "p2", "p3"] and c.labels.tolist() == [0, 2, 1] and c.parts == ["a", "b"]
    assert len(c.head(2)) == 2 and c.head(None) is c
    assert list(c.label_counts()) == list(NLI_LABELS)
