"""Zestawy ewaluacyjne: czytnik JSONL (błędy plik:linia) i zestawy dostarczane w ``evals/``."""

import json
from collections import Counter
from pathlib import Path

import pytest

from lib.ai.quality.evalset import load_eval_set
from lib.errors import ConfigError

EVALS = Path(__file__).resolve().parent.parent / "evals"
CORRECTION_CATEGORIES = {
    "o_u", "rz_z", "ch_h", "diacritics", "capitals", "comma", "inflection", "agreement",
    "common_forms", "typography", "correct",
}  # fmt: skip


def _write(tmp_path, lines):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines), "utf-8")
    return path


def test_reads_single_and_several_references_translation_and_blank_lines(tmp_path):
    path = _write(
        tmp_path,
        [
            {"id": "a", "text": "Wiem że tak.", "reference": "Wiem, że tak.", "categories": ["comma"]},
            "",
            {"id": "b", "text": "Dobrze.", "references": ["Dobrze.", "Dobrze!"]},
            {
                "id": "c",
                "text": "Dzień dobry.",
                "reference": "Good morning.",
                "action": "translate",
                "target_lang": "en",
            },
        ],
    )
    items = load_eval_set(path)
    assert [(i.id, i.references, i.categories, i.action, i.line) for i in items] == [
        ("a", ("Wiem, że tak.",), ("comma",), "correct", 1),
        ("b", ("Dobrze.", "Dobrze!"), (), "correct", 3),
        ("c", ("Good morning.",), (), "translate", 4),
    ]
    assert items[2].target_lang == "en" and items[2].source_lang is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{nie json", "niepoprawny JSON"),
        ("[1, 2]", "nie jest obiektem"),
        ({"text": "a", "reference": "a"}, "'id'"),
        ({"id": "x", "text": "", "reference": "a"}, "'text'"),
        ({"id": "x", "text": "a"}, "dokładnie jedno"),
        ({"id": "x", "text": "a", "reference": "a", "references": ["a"]}, "dokładnie jedno"),
        ({"id": "x", "text": "a", "references": []}, "niepustą listą"),
        ({"id": "x", "text": "a", "references": ["a", 3]}, "niepustym napisem"),
        ({"id": "x", "text": "a", "reference": "a", "categories": "comma"}, "'categories'"),
        ({"id": "x", "text": "a", "reference": "a", "action": "summarise"}, "nieznana akcja"),
        ({"id": "x", "text": "a", "reference": "a", "action": "translate"}, "'target_lang'"),
        ({"id": "x", "text": "a", "reference": "a", "target_lang": "en"}, "tylko akcji 'translate'"),
        ({"id": "x", "text": "a", "referenc": "a"}, "nieznane pole 'referenc'"),
    ],
)
def test_bad_line_is_one_line_error_with_file_and_line(tmp_path, line, problem):
    path = _write(tmp_path, [{"id": "ok", "text": "a", "reference": "a"}, line])
    with pytest.raises(ConfigError) as err:
        load_eval_set(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: ") and problem in message and "\n" not in message


def test_duplicate_id_missing_file_and_empty_set(tmp_path):
    path = _write(
        tmp_path, [{"id": "a", "text": "x", "reference": "x"}, {"id": "a", "text": "y", "reference": "y"}]
    )
    with pytest.raises(ConfigError, match=r":2: powtórzone id 'a' \(pierwsze w linii 1\)"):
        load_eval_set(path)
    with pytest.raises(ConfigError, match="nie ma takiego pliku"):
        load_eval_set(tmp_path / "brak.jsonl")
    with pytest.raises(ConfigError, match="zestaw jest pusty"):
        load_eval_set(_write(tmp_path, ["", "  "]))


def test_shipped_correction_set():
    items = load_eval_set(EVALS / "pl_correction.jsonl")
    assert len(items) >= 300
    assert len({item.id for item in items}) == len(items)
    assert len({item.text for item in items}) == len(items)
    assert all(item.action == "correct" and item.categories for item in items)
    assert {c for item in items for c in item.categories} == CORRECTION_CATEGORIES
    correct = [item for item in items if "correct" in item.categories]
    assert len(correct) >= 100
    # "correct" = tekst już poprawny (jedyny wzorzec to sam tekst); pozostałe mają błąd do poprawienia.
    assert all(item.references == (item.text,) and item.categories == ("correct",) for item in correct)
    assert all(item.text not in item.references for item in items if "correct" not in item.categories)
    per_category = Counter(c for item in items for c in item.categories)
    assert min(per_category.values()) >= 15, per_category
    assert sum(len(item.references) > 1 for item in items) >= 5


def test_shipped_translation_set():
    items = load_eval_set(EVALS / "pl_en_translation.jsonl")
    assert len(items) >= 100
    assert len({item.id for item in items}) == len(items)
    assert all((i.action, i.source_lang, i.target_lang) == ("translate", "pl", "en") for i in items)
    assert all(item.text not in item.references for item in items)
