"""Modele odpowiedzi (``lib/ai/prompts.py``): schemat JSON wysyłany modelowi i walidacja to jedno.

Schemat na drucie nie zmienił się (porównanie z dosłownym schematem); każda cecha schematu
(wymagane pole, typ, lista kategorii) jest sprawdzana mutacją poprawnej odpowiedzi przez tę samą
ścieżkę, którą idzie odpowiedź modelu. Łagodności walidacji wobec schematu są wymienione
w ``LENIENT`` - nowa rozbieżność (ręcznie dopisany schemat, złagodzony walidator) psuje test.
"""

import copy
import json
from typing import Any

import pytest

from lib.ai import packs as ai_pack
from lib.ai import prompts

EDIT_SCHEMA = {
    "type": "object",
    "properties": {
        "original": {"type": "string"},
        "replacement": {"type": "string"},
        "category": {"type": "string", "enum": list(prompts.CATEGORIES)},
        "explanation": {"type": "string"},
    },
    "required": ["original", "replacement", "category", "explanation"],
    "additionalProperties": False,
}
WIRE_ANSWER = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "edits": {"type": "array", "items": EDIT_SCHEMA}},
    "required": ["text", "edits"],
    "additionalProperties": False,
}
WIRE_PACK = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "text": {"type": "string"},
                    "edits": {"type": "array", "items": EDIT_SCHEMA},
                },
                "required": ["id", "text", "edits"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["items"],
    "additionalProperties": False,
}

# Jedyne łagodności walidacji wobec schematu: pole -> mutacje przyjmowane zamiast błędu
# (category: brak, zły typ albo wartość spoza listy -> "other"; explanation: brak albo null -> "";
# id pozycji paczki: liczba to ten sam identyfikator co tekst).
LENIENT = {
    "id": {"wrong_type"},
    "edits.0.category": {"missing", "wrong_type"},
    "edits.0.explanation": {"missing"},
}
WRONG_TYPE = {"string": 1, "array": "x", "object": ["x"]}

EDIT = {"original": "bląd", "replacement": "błąd", "category": "spelling", "explanation": "pisownia"}
SAMPLE = {"text": "To błąd.", "edits": [EDIT]}
PACK_SAMPLE = {"id": "1", **SAMPLE}


def _fields(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any], bool]]:
    """Każde pole schematu: (ścieżka z indeksem 0 dla list, schemat pola, czy wymagane)."""
    found = []
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        found.append((path, sub, name in schema.get("required", [])))
        if sub.get("type") == "array":
            found += _fields(sub["items"], f"{path}.0.")
        elif sub.get("type") == "object":
            found += _fields(sub, f"{path}.")
    return found


def _mutated(sample: dict[str, Any], path: str, value: Any = None, delete: bool = False) -> dict[str, Any]:
    data = copy.deepcopy(sample)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key: Any = int(last) if isinstance(node, list) else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return data


def _accepts(validate, data: dict[str, Any]) -> bool:
    try:
        validate(data)
    except ValueError:
        return False
    return True


def test_wire_schemas_are_unchanged_and_generated_from_the_models():
    assert prompts.ANSWER_SCHEMA == WIRE_ANSWER == prompts.wire_schema(prompts.Answer)
    assert prompts.PACK_ANSWER_SCHEMA == WIRE_PACK == prompts.wire_schema(prompts.PackAnswer)


@pytest.mark.parametrize(
    ("schema", "sample", "validate"),
    [
        (WIRE_ANSWER, SAMPLE, prompts.answer_from_data),
        (WIRE_PACK["properties"]["items"]["items"], PACK_SAMPLE, prompts.pack_item_from_data),
    ],
    ids=["answer", "pack_item"],
)
def test_validation_follows_the_schema_field_by_field(schema, sample, validate):
    assert validate(sample) == SAMPLE  # poprawna odpowiedź przechodzi bez zmian
    checked = 0
    for path, sub, required in _fields(schema):
        lenient = LENIENT.get(path, set())
        assert required, f"{path}: tryb strict wymaga każdego pola w schemacie"
        if sub.get("type") == "array":
            continue
        missing = _mutated(sample, path, delete=True)
        wrong = _mutated(sample, path, WRONG_TYPE[sub["type"]])
        assert _accepts(validate, missing) == ("missing" in lenient), f"{path}: brak pola (schemat: wymagane)"
        assert _accepts(validate, wrong) == ("wrong_type" in lenient), f"{path}: zły typ ({sub['type']})"
        checked += 1
    for path in ("text", "edits"):
        assert not _accepts(validate, _mutated(sample, path, delete=True)), path
        assert not _accepts(validate, _mutated(sample, path, 1)), path
    assert not _accepts(validate, _mutated(sample, "edits.0", "nie obiekt"))
    assert checked >= 5


def test_category_enum_and_the_documented_leniencies():
    for category in EDIT_SCHEMA["properties"]["category"]["enum"]:
        edit = dict(EDIT, category=category)
        assert prompts.answer_from_data({"text": "a", "edits": [edit]})["edits"][0] == edit
    assert set(prompts.CATEGORIES) == set(EDIT_SCHEMA["properties"]["category"]["enum"])
    loose = {"original": "a", "replacement": "b", "category": " Grammar ", "explanation": None}
    assert prompts.answer_from_data({"text": "a", "edits": [loose], "extra": 1}) == {
        "text": "a",
        "edits": [{"original": "a", "replacement": "b", "category": "grammar", "explanation": ""}],
    }
    bare = prompts.answer_from_data({"text": "a", "edits": [{"original": "a", "replacement": "b"}]})
    assert bare["edits"][0]["category"] == "other" and bare["edits"][0]["explanation"] == ""


def test_lone_surrogate_is_an_item_error_not_a_crash():
    with pytest.raises(ValueError, match="surogat"):
        prompts.answer_from_data({"text": "\ud83d", "edits": []})
    with pytest.raises(ValueError, match="poprawka nr 1: explanation"):
        prompts.answer_from_data({"text": "a", "edits": [dict(EDIT, explanation="\udc00")]})


def test_pack_items_are_validated_one_by_one():
    originals = ["a", "b", "c"]
    content = json.dumps(
        {
            "items": [
                {"id": "1", "text": "A", "edits": []},
                {"id": 2, "text": "B", "edits": [{"original": 1, "replacement": "x"}]},  # zła poprawka
                {"id": " 3 ", "text": "C", "edits": []},  # id liczbą albo z odstępami - to samo id
            ]
        }
    )
    answers, problems = ai_pack.parse_pack(content, originals)
    assert answers == {0: {"text": "A", "edits": []}, 2: {"text": "C", "edits": []}}
    assert set(problems) == {1} and "poprawka nr 1: pole 'original' nie jest tekstem" in problems[1]
