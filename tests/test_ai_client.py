"""Testy klienta modelu i promptów: parsowanie, koszty, ponowienia przez prawdziwe HTTP."""

import json
import time
from decimal import Decimal

import pytest

from lib.ai import client as ai_client
from lib.ai import prompts
from lib.errors import AiError
from lib.load_config import Settings
from tests.fake_openai import add_fault, fake_openai_fixture  # noqa: F401

MODEL = {
    "model": "fake-model",
    "name": "fake",
    "base_url": "set-per-test",
    "api_key_env": "FAKE_KEY",
    "temperature": Decimal("0.00"),
    "max_output_tokens": 500,
    "price_input_per_mtok": Decimal("1"),
    "price_output_per_mtok": Decimal("2"),
    "price_cached_input_per_mtok": None,
}
SETTINGS = Settings().updated(AI_MAX_RETRIES=3, AI_BACKOFF_S=0.05, OPENAI_BASE_URL="")


def call(state, text, settings=None, capability=None, timeout=5.0, api_key="sk-secret-123456"):
    model = dict(MODEL, base_url=state["base_url"])
    client = ai_client.make_client(state["base_url"], api_key, timeout)
    capability = capability or ai_client.make_capability_state()
    messages = prompts.build_messages(text)
    return ai_client.complete(client, model, messages, settings or SETTINGS, capability, text), capability


def test_parse_answer_strict():
    answer = prompts.parse_answer(
        '```json\n{"text": "a", "edits": [{"original": "x", "replacement": "y", "category": "Weird", "explanation": "e"}]}\n```'
    )
    assert answer == {
        "text": "a",
        "edits": [{"original": "x", "replacement": "y", "category": "other", "explanation": "e"}],
    }
    for bad in (
        "",
        "not json",
        "[]",
        '{"edits": []}',
        '{"text": 1, "edits": []}',
        '{"text": "a"}',
        '{"text": "a", "edits": [{"original": 1, "replacement": "b"}]}',
    ):
        with pytest.raises(ValueError):
            prompts.parse_answer(bad)


def test_change_summary_counts_every_category():
    edits = [
        {"original": "a", "replacement": "b", "category": "grammar", "explanation": ""},
        {"original": "c", "replacement": "d", "category": "grammar", "explanation": ""},
        {"original": ",", "replacement": "", "category": "punctuation", "explanation": ""},
    ]
    summary = json.loads(prompts.build_change_summary(edits))
    assert summary["edits"] == edits
    assert summary["counts"] == {
        "spelling": 0,
        "grammar": 2,
        "punctuation": 1,
        "style": 0,
        "typography": 0,
        "other": 0,
    }


def test_check_preserved_placeholders_and_tags():
    original = 'Hi {name}, you have %d <a href="x">new</a> :count %(user)s at 10:30 http://x.pl'
    assert (
        prompts.check_preserved(original, 'Cześć {name}, masz %d <a href="y">nowe</a> :count %(user)s') == []
    )
    missing = prompts.check_preserved(original, "Cześć, masz <a>nowe")
    assert missing == ["%(user)s", "%d", ":count", "</a>", "{name}"]
    # Oryginał bez placeholderów i znaczników: odpowiedź nie ma czego gubić (także gdy coś dodała).
    assert prompts.check_preserved("Zwykły tekst: bez niczego", "Zwykły {x} <b>tekst</b>") == []
    assert prompts.check_preserved("Linia<br/>druga", "Linia druga") == ["<br/>"]
    assert prompts.check_preserved("Cena 10:30 i {{ total }}", "Cena 10:30") == ["{{ total }}"]


def test_read_response_takes_content_and_bill_from_any_chat_body():
    # Odpowiedź czatu czytana jako JSON (bez modelu SDK): online i linie batcha tą samą drogą.
    full = {
        "choices": [{"message": {"role": "assistant", "content": '{"text": "a", "edits": []}'}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}},
    }
    assert ai_client.read_response(full)[:4] == ('{"text": "a", "edits": []}', 12, 5, 8)
    # Brak pól, puste choices, treść nie-tekstowa, null-e: treść None, rachunek tam, gdzie jest.
    assert ai_client.read_response({})[:4] == (None, 0, 0, 0)
    assert ai_client.read_response({"choices": [], "usage": {"prompt_tokens": 3}})[:4] == (None, 3, 0, 0)
    assert ai_client.read_response({"choices": [{"message": {"content": ["x"]}}]}).content is None
    assert ai_client.read_response({"choices": [{"message": None}], "usage": None})[:4] == (None, 0, 0, 0)
    body = {"choices": [{"message": {"content": None}}], "usage": {"prompt_tokens_details": None}}
    assert ai_client.read_response(body)[:4] == (None, 0, 0, 0)


def test_system_prompt_override_and_languages():
    prompt = prompts.system_prompt(
        "translate", "Translate {source_lang} to {target_lang} like a pirate.", "pl", "en"
    )
    assert prompt.startswith("Translate pl to en like a pirate.") and '"edits"' in prompt
    assert "Target language: de" in prompts.system_prompt("translate", None, None, "de")
    assert "Target language" not in prompts.system_prompt("correct", None, None, None)


def test_compute_cost():
    model = {
        "price_input_per_mtok": Decimal("1.5"),
        "price_output_per_mtok": Decimal("6"),
        "price_cached_input_per_mtok": None,
    }
    assert ai_client.compute_cost(1000, 400, 500, model) == Decimal("0.004500")
    model["price_cached_input_per_mtok"] = Decimal("0.25")
    # 600 * 1,5 + 400 * 0,25 + 500 * 6 = 4000 -> 0,004 USD
    assert ai_client.compute_cost(1000, 400, 500, model) == Decimal("0.004000")


def test_happy_path_and_request_shape(fake_openai):
    result, capability = call(fake_openai, "To bląd {x}")
    assert result.text == "To błąd {x}" and result.edits[0]["category"] == "spelling"
    assert result.requests == 1 and capability["mode"] == "json_schema" and not result.repaired
    payload = fake_openai["requests"][0]["payload"]
    assert payload["response_format"]["json_schema"]["schema"] == prompts.ANSWER_SCHEMA
    assert payload["max_tokens"] == 500 and payload["messages"][1] == {
        "role": "user",
        "content": "To bląd {x}",
    }


def test_retry_after_http_date_and_seconds(fake_openai):
    add_fault(fake_openai, "429", retry_after="1")
    started = time.monotonic()
    result, _ = call(fake_openai, "a")
    assert time.monotonic() - started >= 0.95 and result.requests == 2


def test_retries_exhausted_is_item_error_without_key(fake_openai):
    add_fault(fake_openai, "500", times=10)
    with pytest.raises(ai_client.AiItemError) as info:
        call(fake_openai, "a", capability={**ai_client.make_capability_state(), "mode": "json_schema"})
    assert "HTTP 500" in str(info.value) and "sk-secret" not in str(info.value)
    assert fake_openai["total"] == 4  # 1 + AI_MAX_RETRIES


def test_non_json_body_is_retried(fake_openai):
    add_fault(fake_openai, "non_json")
    result, _ = call(fake_openai, "wogóle")
    assert result.text == "w ogóle" and result.requests == 2


def test_answer_with_a_lone_surrogate_is_repaired_not_a_crash(fake_openai):
    # JSON dopuszcza "\\ud83d" bez pary; takiego tekstu nie zapisze ani MySQL (utf8mb4), ani JSON
    # podsumowania - to niepoprawna odpowiedź (jedna próba naprawy), nie wyjątek całego runu.
    add_fault(fake_openai, "lone_surrogate")
    result, _ = call(fake_openai, "To bląd.")
    assert result.repaired and result.requests == 2 and result.text == "To błąd."
    assert "\\ud83d" in fake_openai["requests"][0]["content"]
    with pytest.raises(ValueError, match="surogat"):
        prompts.parse_answer(
            '{"text": "a", "edits": [{"original": "x", "replacement": "\\udc00", "category": "o"}]}'
        )


def test_401_and_quota_are_fatal(fake_openai):
    add_fault(fake_openai, "401")
    with pytest.raises(AiError, match=r"klucz API odrzucony \(401\).*FAKE_KEY") as info:
        call(fake_openai, "a")
    assert "sk-secret" not in str(info.value)


def test_json_object_rejected_with_400_falls_back_to_text(fake_openai):
    fake_openai["reject_json_schema"] = True
    fake_openai["reject_json_object"] = True
    capability = ai_client.make_capability_state()
    result, _ = call(fake_openai, "napewno", capability=capability)
    assert result.text == "na pewno" and capability["mode"] == "text" and capability["requests"] == 3
    again, _ = call(fake_openai, "bląd", capability=capability)
    assert again.requests == 1 and again.response_format == "text"
