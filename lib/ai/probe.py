"""Test modelu jedną krótką korektą (``ailexia model test``, strona operatora).

Ta sama droga co pozycja zadania: prompt z ``prompts.build_messages``, wykrywanie formatu
odpowiedzi, ponowienia i walidacja ``client.complete``, koszt z cen modelu.
"""

import time
from typing import Any

from lib.ai import client as ai_client
from lib.ai import prompts
from lib.ai.cost import compute_cost
from lib.load_config import Settings

# Krótki tekst testu modelu: dwa typowe błędy, które każdy model (i serwer testowy) poprawia.
TEST_TEXT = "To jest bląd, którego wogóle nie widać."


def probe_model(settings: Settings, model_row: dict[str, Any], text: str = TEST_TEXT) -> dict[str, Any]:
    """Wysyła jedną krótką korektę przez klienta AI projektu i mierzy odpowiedź.

    Args:
        settings: Ustawienia (klucze API, limity czasu).
        model_row: Wiersz ``ai_model``.
        text: Tekst do poprawienia.

    Returns:
        Słownik: model, text, answer, edits, latency_ms, tokens_input, tokens_output, cost_usd,
        response_format, requests.

    Raises:
        AiError: Błąd całego modelu (401, 404, brak klucza).
        AiItemError: Odpowiedź niepoprawna po ponowieniach.
    """
    base_url, api_key = ai_client.resolve_endpoint(settings, model_row)
    client = ai_client.make_client(base_url, api_key, settings.ai_timeout_s)
    state = ai_client.make_capability_state(model_row.get("response_format"))
    messages = prompts.build_messages(text, "correct", model_row.get("system_prompt"))
    started = time.monotonic()
    try:
        result = ai_client.complete(client, model_row, messages, settings, state, original_text=text)
    finally:
        client.close()
    latency_ms = int((time.monotonic() - started) * 1000)
    cost = compute_cost(result.tokens_input, result.tokens_cached, result.tokens_output, model_row)
    return {
        "model": model_row["name"],
        "text": text,
        "answer": result.text,
        "edits": len(result.edits),
        "latency_ms": latency_ms,
        "tokens_input": result.tokens_input,
        "tokens_output": result.tokens_output,
        "cost_usd": float(cost),
        "response_format": result.response_format,
        "requests": result.requests,
    }
