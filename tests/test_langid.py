"""Language identification for `polyret correction fit --texts FILE` (texts with no language field)."""

from __future__ import annotations

import json

import pytest

from polyret.errors import PolyretError
from polyret.langid import IDENTIFIERS, identify

SAMPLES = {
    "de": "Der Hund schläft den ganzen Nachmittag im Garten hinter dem Haus.",
    "en": "The dog sleeps all afternoon in the garden behind the house.",
    "zh": "狗整个下午都在房子后面的花园里睡觉。",
    "ru": "Собака весь день спит в саду за домом.",
    "ar": "ينام الكلب طوال فترة الظهيرة في الحديقة خلف المنزل.",
    "es": "El perro duerme toda la tarde en el jardín detrás de la casa.",
}


@pytest.mark.parametrize("identifier", IDENTIFIERS)
def test_identifies_clear_sentences(identifier):
    assert identify(list(SAMPLES.values()), identifier=identifier) == list(SAMPLES)


def test_candidates_restrict_the_answer_and_bad_names_fail():
    # Among de/en only, a Spanish sentence must come back as one of them.
    assert identify([SAMPLES["es"]], ["de", "en"])[0] in ("de", "en")
    with pytest.raises(PolyretError, match="unknown language identifier 'cld3'"):
        identify(["x"], identifier="cld3")
    with pytest.raises(PolyretError, match="does not know the language"):
        identify(["x"], ["xx"])


def test_correction_fit_on_unlabelled_texts(tiny_model, tmp_path, monkeypatch, capsys):
    from polyret.cli import main

    monkeypatch.setenv("POLYRET_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "tiny"
    tiny_model.save(str(model_dir))
    lines = []
    for i in range(22):  # MIN_TEXTS = 20 per language
        lines += [
            f"Der Hund Nummer {i} schläft heute im Garten hinter dem Haus.",
            f"The dog number {i} is sleeping today in the garden behind the house.",
            f"第{i}号狗今天在房子后面的花园里睡觉。",
        ]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    main(
        [
            "correction",
            "fit",
            "--model",
            str(model_dir),
            "--parallel",
            "none",
            "--texts",
            str(mixed),
            "--method",
            "center-both",
        ]
    )
    assert "de 22, en 22, zh 22" in capsys.readouterr().err
    main(["correction", "show", "--model", str(model_dir)])
    shown = json.loads(capsys.readouterr().out)
    assert shown["languages"] == ["de", "en", "zh"] and shown["in_pipeline"] is True
    assert shown["n_texts"]["de"] == {"query": 22, "passage": 22}
