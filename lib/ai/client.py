"""Klient modelu AI (API zgodne z OpenAI): zapytanie, ponowienia, wykrywanie formatu odpowiedzi.

Ponowienia robimy sami (tenacity), a nie w SDK (``max_retries=0``): tylko tak kontrolujemy
backoff, nagłówek ``Retry-After`` i liczymy każde wysłane zapytanie.

Format odpowiedzi: serwery różnią się obsługą ``response_format``. Pierwsze zapytanie runu
sprawdza kolejno ``json_schema`` -> ``json_object`` -> same instrukcje w prompcie; wynik
zapamiętywany jest w ``capability_state`` na resztę runu. Odrzucenie formatu nie jest błędem
pozycji.
"""

import datetime as dt
import email.utils
import json
import random
import threading
from typing import Any, NamedTuple

import openai
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from lib.ai import prompts
from lib.ai.cost import compute_cost  # noqa: F401 - dawne miejsce funkcji (importy zewnętrzne)
from lib.db_utils import get_logger, mask_secrets, register_secrets
from lib.errors import AiError, AiItemError
from lib.load_config import Settings, get_env_value

log = get_logger("ai_client")

RESPONSE_FORMATS = ("json_schema", "json_object", "text")
# Najdłuższe czekanie na Retry-After: dłuższe i tak lepiej potraktować jako błąd pozycji.
RETRY_AFTER_CAP_S = 120.0
BACKOFF_CAP_S = 30.0
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar")


class CompletionResult(NamedTuple):
    """Wynik jednego przetworzenia tekstu przez model."""

    text: str
    edits: list[dict[str, Any]]
    tokens_input: int
    tokens_output: int
    tokens_cached: int
    requests: int
    response_format: str
    repaired: bool


def make_client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    """Tworzy klienta OpenAI bez wbudowanych ponowień (robi je ``complete``).

    Args:
        base_url: Adres serwera zgodnego z OpenAI albo ``None`` (api.openai.com).
        api_key: Klucz API (dla serwerów lokalnych dowolny niepusty napis).
        timeout: Limit czasu jednego zapytania w sekundach (``AI_TIMEOUT_S``).

    Returns:
        Klient ``openai.OpenAI`` (bezpieczny do użycia z wielu wątków).
    """
    return openai.OpenAI(base_url=base_url or None, api_key=api_key, timeout=timeout, max_retries=0)


def model_client(settings: Settings, model_row: dict[str, Any]) -> openai.OpenAI:
    """Klient SDK dla serwera modelu z wiersza ``ai_model`` (adres i klucz z ``resolve_endpoint``).

    Raises:
        AiError: Brak klucza dla api.openai.com.
    """
    base_url, api_key = resolve_endpoint(settings, model_row)
    return make_client(base_url, api_key, settings.ai_timeout_s)


def make_capability_state(remembered: str | None = None) -> dict[str, Any]:
    """Tworzy stan runu: wykryty format odpowiedzi i licznik wysłanych zapytań.

    Args:
        remembered: Format wykryty wcześniej dla tego serwera i modelu (``ai_model.response_format``)
            albo ``None``. Zapamiętany format jest używany od pierwszego zapytania bez próby
            wstępnej; dopóki żadne zapytanie w nim się nie udało, jego odrzucenie (400/415/422, 5xx
            o formacie) wznawia wykrywanie od następnego, słabszego formatu.

    Returns:
        Słownik ``{"mode", "requests", "remembered", "probed", ...}`` współdzielony przez wątki runu;
        ``probed`` = ten run sam wykrył format (warto go zapamiętać).
    """
    mode = remembered if remembered in RESPONSE_FORMATS else None
    return {
        "mode": mode,
        "requests": 0,
        "remembered": mode is not None,
        "probed": False,
        "lock": threading.Lock(),
        "probe_lock": threading.Lock(),
    }


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None) if isinstance(exc, openai.APIStatusError) else None


def _error_message(exc: BaseException) -> str:
    """Krótki opis błędu API (bez treści zapytania)."""
    status = _status(exc)
    message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    message = " ".join(str(message).split())[:300]
    return f"HTTP {status}: {message}" if status else f"{exc.__class__.__name__}: {message}"


def _mentions_format(exc: BaseException) -> bool:
    text = _error_message(exc).lower()
    return any(word in text for word in _FORMAT_WORDS)


def _is_transient(exc: BaseException) -> bool:
    """Czy błąd warto ponowić: 429, 5xx, timeout, zerwane połączenie.

    5xx mówiące o ``response_format`` nie jest przejściowe: to odrzucenie formatu (llama.cpp).
    """
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    if isinstance(exc, json.JSONDecodeError):
        # Ciało odpowiedzi, które nie jest JSON (np. strona HTML pośrednika) - zwykle chwilowe.
        return True
    status = _status(exc)
    if status == 429:
        return not _is_quota_error(exc)
    if status is not None and status >= 500:
        return not _mentions_format(exc)
    return status in (408, 409)


def _is_quota_error(exc: BaseException) -> bool:
    """429 z ``insufficient_quota``: ponawianie nic nie da (koniec środków na koncie)."""
    body = getattr(exc, "body", None)
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code") or body["error"].get("type")
    return code == "insufficient_quota" or "insufficient_quota" in _error_message(exc)


def _retry_after(exc: BaseException | None) -> float | None:
    """Czyta ``retry-after-ms`` / ``Retry-After`` (sekundy albo data HTTP) z odpowiedzi."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _make_wait(base_s: float):
    """Czas czekania przed ponowieniem: ``Retry-After`` albo wykładniczo z losowym rozrzutem."""

    def wait(retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = _retry_after(exc)
        if after is not None:
            return min(after, RETRY_AFTER_CAP_S)
        delay = min(BACKOFF_CAP_S, base_s * 2 ** (retry_state.attempt_number - 1))
        return delay * random.uniform(0.75, 1.25)

    return wait


class Shape(NamedTuple):
    """Kształt odpowiedzi: nazwa i schemat JSON dla ``response_format=json_schema``."""

    name: str
    schema: dict[str, Any]


SINGLE = Shape("correction", prompts.ANSWER_SCHEMA)
PACK = Shape("correction_pack", prompts.PACK_ANSWER_SCHEMA)


class RawResult(NamedTuple):
    """Surowa odpowiedź (bez sprawdzenia treści) z rachunkiem wszystkich wysłanych zapytań."""

    content: str | None
    tokens_input: int
    tokens_output: int
    tokens_cached: int
    requests: int
    response_format: str


def request_body(
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    mode: str,
    settings: Settings,
    shape: Shape = SINGLE,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Buduje ciało zapytania ``/chat/completions`` (jedno miejsce: zapytania online i linie batcha).

    Args:
        model_row: Wiersz ``ai_model``.
        messages: Wiadomości z ``prompts.build_messages`` albo ``ai_pack.build_pack_messages``.
        mode: Format odpowiedzi: ``json_schema``, ``json_object`` albo ``text``.
        settings: Ustawienia (``OPENAI_BASE_URL``).
        shape: Schemat odpowiedzi (``SINGLE`` albo ``PACK``).
        max_tokens: Ograniczenie odpowiedzi, gdy model nie ma ``max_output_tokens``.

    Returns:
        Słownik JSON zapytania (model, wiadomości, temperatura, limit tokenów, ``response_format``).
    """
    kwargs: dict[str, Any] = {"model": model_row["model"], "messages": messages}
    if model_row.get("temperature") is not None:
        kwargs["temperature"] = float(model_row["temperature"])
    limit = int(model_row["max_output_tokens"]) if model_row.get("max_output_tokens") else max_tokens
    if limit:
        # api.openai.com zna już tylko max_completion_tokens dla nowych modeli; serwery zgodne - max_tokens.
        key = (
            "max_tokens" if model_row.get("base_url") or settings.openai_base_url else "max_completion_tokens"
        )
        kwargs[key] = int(limit)
    if mode == "json_schema":
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": shape.name, "strict": True, "schema": shape.schema},
        }
    elif mode == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


def _request(
    client: openai.OpenAI,
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    mode: str,
    settings: Settings,
    state: dict[str, Any],
    counter: list[int],
    shape: Shape = SINGLE,
    max_tokens: int | None = None,
) -> Any:
    """Wysyła jedno zapytanie (z ponowieniami przy błędach przejściowych).

    ``max_tokens`` (gdy model nie ma ``max_output_tokens``) ogranicza odpowiedź - tak budżet
    ``AI_MAX_COST_USD`` ma prawdziwe górne ograniczenie kosztu zapytania.
    """
    kwargs = request_body(model_row, messages, mode, settings, shape, max_tokens)

    def send() -> Any:
        with state["lock"]:
            state["requests"] += 1
        counter[0] += 1
        # Ciało jest już czystym JSON-em, więc idzie przez ``client.post`` (udokumentowana droga SDK
        # do dowolnego endpointu) zamiast ``chat.completions.create``: ten przepuszcza parametry
        # przez ``maybe_transform`` po typach TypedDict, co przy 32 wątkach zajmowało ~14% czasu
        # GIL. Nagłówki, timeout i błędy (``APIStatusError`` itd.) są te same. ``cast_to=object``:
        # SDK oddaje odczytany JSON bez budowania modelu ``ChatCompletion`` (kolejne ~4% czasu GIL
        # przy paczkach); pola czytają ``_usage`` i ``_content`` - te same dla odpowiedzi batcha.
        return client.post("/chat/completions", body=kwargs, cast_to=object)

    def before_sleep(retry_state) -> None:
        exc = retry_state.outcome.exception()
        log.warning(
            "model %s: %s - ponawiam za %.2f s (próba %d)",
            model_row["model"],
            mask_secrets(_error_message(exc), [client.api_key or ""]),
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
            retry_state.attempt_number + 1,
        )

    retrying = Retrying(
        stop=stop_after_attempt(settings.ai_max_retries + 1),
        wait=_make_wait(settings.ai_backoff_s),
        retry=retry_if_exception(_is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(send)


def _fatal_error(exc: BaseException, model_row: dict[str, Any], settings: Settings) -> AiError | None:
    """Zamienia błąd API, który dotyczy całego runu (klucz, model, limit konta), na ``AiError``."""
    status = _status(exc)
    server = model_row.get("base_url") or settings.openai_base_url or "api.openai.com"
    key_env = model_row.get("api_key_env") or "OPENAI_API_KEY"
    if status == 401:
        return AiError(f"klucz API odrzucony (401) przez {server}: sprawdź zmienną {key_env}")
    if status == 403:
        return AiError(
            f"brak uprawnień (403) do modelu {model_row['model']} na {server}: sprawdź klucz ze zmiennej {key_env}"
        )
    if status == 404:
        return AiError(
            f"model {model_row['model']} nie istnieje na serwerze {server} (404): popraw ai_model.model lub base_url"
        )
    if status == 429 and _is_quota_error(exc):
        return AiError(f"brak środków na koncie API (429 insufficient_quota) na {server}")
    return None


def _usage(body: Any) -> tuple[int, int, int]:
    """Rachunek odpowiedzi czatu (JSON): tokeny wejścia, wyjścia i wejścia z cache; brak = 0."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), int(cached or 0)


def _content(body: Any) -> str | None:
    """Treść pierwszej odpowiedzi czatu (JSON); ``ValueError``, gdy odpowiedź nie ma takiego pola."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise ValueError("odpowiedź serwera bez 'choices'")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise ValueError("odpowiedź serwera bez 'message'")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("treść odpowiedzi serwera nie jest tekstem")
    return content


def _validate(content: str | None, original: str | None) -> dict[str, Any]:
    """Parsuje odpowiedź i sprawdza, czy placeholdery/znaczniki przetrwały."""
    answer = prompts.parse_answer(content)
    prompts.check_answer(original, answer)
    return answer


def _first_response(
    client: openai.OpenAI,
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    settings: Settings,
    state: dict[str, Any],
    counter: list[int],
    shape: Shape,
    max_tokens: int | None,
) -> tuple[Any, str]:
    """Wysyła zapytanie w wykrytym formacie; pierwsze w runie wykrywa format (inne wątki czekają).

    Format zapamiętany z wcześniejszych runów (``make_capability_state(remembered=...)``) idzie od
    razu; jego odrzucenie przed pierwszym udanym zapytaniem wznawia wykrywanie od słabszego formatu.
    """
    mode = state["mode"]
    if mode is None:
        with state["probe_lock"]:
            mode = state["mode"]
            if mode is None:
                return _probe(client, model_row, messages, settings, state, counter, shape, max_tokens)
    try:
        response = _request(client, model_row, messages, mode, settings, state, counter, shape, max_tokens)
    except openai.APIStatusError as exc:
        if not state["remembered"] or not _format_rejected(exc, mode, model_row, settings):
            raise
        with state["probe_lock"]:
            if state["remembered"] and state["mode"] == mode:
                log.info(
                    "serwer odrzucił zapamiętany response_format=%s (%s) - wykrywam format od nowa",
                    mode,
                    _error_message(exc),
                )
                start = RESPONSE_FORMATS.index(mode) + 1
                return _probe(client, model_row, messages, settings, state, counter, shape, max_tokens, start)
            mode = state["mode"]
        response = _request(client, model_row, messages, mode, settings, state, counter, shape, max_tokens)
    if state["remembered"]:
        state["remembered"] = False  # format potwierdzony udanym zapytaniem
    return response, mode


def _format_rejected(
    exc: openai.APIStatusError, mode: str, model_row: dict[str, Any], settings: Settings
) -> bool:
    """Czy błąd to odrzucenie formatu ``mode`` przez serwer (400/415/422, 5xx), a nie błąd całego runu."""
    status = _status(exc) or 0
    rejected = mode != "text" and (status in (400, 415, 422) or status >= 500)
    return rejected and _fatal_error(exc, model_row, settings) is None


def _api_errors(
    client: openai.OpenAI, model_row: dict[str, Any], settings: Settings, counter: list[int], call
):
    """Wywołuje ``call()``; błędy API zamienia na ``AiError`` (cały run) albo ``AiItemError`` (te pozycje)."""
    try:
        return call()
    except (AiError, AiItemError):
        raise
    except openai.APIError as exc:
        fatal = _fatal_error(exc, model_row, settings)
        if fatal is not None:
            raise fatal from None
        message = mask_secrets(_error_message(exc), [client.api_key or ""])
        raise AiItemError(f"błąd modelu po {counter[0]} zapytaniach: {message}") from None
    except json.JSONDecodeError as exc:
        raise AiItemError(
            f"serwer zwrócił odpowiedź, która nie jest JSON (po {counter[0]} zapytaniach): {exc.msg}"
        ) from None


def read_response(body: dict[str, Any]) -> RawResult:
    """Czyta gotową odpowiedź czatu (np. linię wyników batcha): treść i rachunek, bez sprawdzania treści.

    Args:
        body: Ciało odpowiedzi ``/chat/completions`` (JSON).

    Returns:
        ``RawResult`` (``requests`` = 1, ``response_format`` = ``batch``); ``content`` ``None``,
        gdy odpowiedź nie ma treści.
    """
    tokens_in, tokens_out, tokens_cached = _usage(body)
    try:
        content = _content(body)
    except ValueError:
        content = None
    return RawResult(content, tokens_in, tokens_out, tokens_cached, 1, "batch")


def validate_answer(content: str | None, original_text: str | None) -> dict[str, Any]:
    """Sprawdza treść odpowiedzi na jeden tekst tymi samymi regułami co online (bez naprawy).

    Returns:
        ``{"text", "edits"}``.

    Raises:
        AiItemError: Odpowiedź bez poprawnego JSON-u albo bez placeholderów/znaczników oryginału.
    """
    try:
        return _validate(content, original_text)
    except (ValueError, AttributeError, TypeError) as exc:
        raise AiItemError(f"niepoprawna odpowiedź modelu: {' '.join(str(exc).split())[:300]}") from None


def complete(
    client: openai.OpenAI,
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    settings: Settings,
    capability_state: dict[str, Any],
    original_text: str | None = None,
    max_tokens: int | None = None,
) -> CompletionResult:
    """Wysyła tekst do modelu i zwraca sprawdzoną odpowiedź.

    Pierwsze wywołanie w runie wykrywa obsługiwany ``response_format`` (pozostałe wątki czekają
    na wynik). Błędy przejściowe (429, 5xx, timeout, połączenie) są ponawiane z backoffem
    i ``Retry-After``; niepoprawna odpowiedź dostaje jedną próbę naprawy.

    Args:
        client: Klient z ``make_client``.
        model_row: Wiersz ``ai_model``.
        messages: Wiadomości z ``prompts.build_messages``.
        settings: Ustawienia (``AI_MAX_RETRIES``, opcjonalnie ``AI_BACKOFF_S``).
        capability_state: Stan runu z ``make_capability_state``.
        original_text: Tekst źródłowy do kontroli placeholderów (``None`` = bez kontroli).
        max_tokens: Ograniczenie odpowiedzi, gdy model nie ma ``max_output_tokens`` (budżet).

    Returns:
        ``CompletionResult`` z tekstem, poprawkami i tokenami (suma wszystkich zapytań).

    Raises:
        AiError: Błąd dotyczący całego runu (401, 403, 404, brak środków).
        AiItemError: Błąd tej pozycji po wyczerpaniu ponowień albo po nieudanej naprawie.
    """
    counter = [0]

    def call() -> CompletionResult:
        response, mode = _first_response(
            client, model_row, messages, settings, capability_state, counter, SINGLE, max_tokens
        )
        return _finish(
            client,
            model_row,
            messages,
            settings,
            capability_state,
            mode,
            response,
            original_text,
            counter,
            max_tokens,
        )

    return _api_errors(client, model_row, settings, counter, call)


def request_pack(
    client: openai.OpenAI,
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    settings: Settings,
    capability_state: dict[str, Any],
    max_tokens: int | None = None,
) -> RawResult:
    """Wysyła paczkę tekstów (``lib/ai/packs.py``) i zwraca surową odpowiedź z rachunkiem.

    Format odpowiedzi jak w ``complete`` (wykrywanie json_schema -> json_object -> instrukcje,
    ponowienia błędów przejściowych). Bez próby naprawy: treść sprawdza ``ai_pack.parse_pack``
    pozycja po pozycji, a złe pozycje silnik wysyła potem pojedynczo - paczka nie jest
    wysyłana drugi raz.

    Raises:
        AiError: Błąd dotyczący całego runu (401, 403, 404, brak środków).
        AiItemError: Zapytanie nie dało odpowiedzi (po ponowieniach).
    """
    counter = [0]

    def call() -> RawResult:
        response, mode = _first_response(
            client, model_row, messages, settings, capability_state, counter, PACK, max_tokens
        )
        tokens_in, tokens_out, tokens_cached = _usage(response)
        try:
            content = _content(response)
        except ValueError:
            content = None
        return RawResult(content, tokens_in, tokens_out, tokens_cached, counter[0], mode)

    return _api_errors(client, model_row, settings, counter, call)


def _probe(
    client: openai.OpenAI,
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    settings: Settings,
    state: dict[str, Any],
    counter: list[int],
    shape: Shape = SINGLE,
    max_tokens: int | None = None,
    start: int = 0,
) -> tuple[Any, str]:
    """Próbuje formatów od najlepszego (od ``RESPONSE_FORMATS[start]``); zapamiętuje pierwszy przyjęty."""
    for mode in RESPONSE_FORMATS[start:]:
        try:
            response = _request(
                client, model_row, messages, mode, settings, state, counter, shape, max_tokens
            )
        except openai.APIStatusError as exc:
            if not _format_rejected(exc, mode, model_row, settings):
                raise
            log.info("serwer odrzucił response_format=%s (%s) - próbuję słabszego", mode, _error_message(exc))
            continue
        state["mode"] = mode
        state["remembered"] = False
        state["probed"] = True
        log.info("model %s: response_format=%s", model_row["model"], mode)
        return response, mode
    raise AssertionError("nieosiągalne: tryb 'text' nie jest odrzucany")


def _finish(
    client: openai.OpenAI,
    model_row: dict[str, Any],
    messages: list[dict[str, str]],
    settings: Settings,
    state: dict[str, Any],
    mode: str,
    response: Any,
    original_text: str | None,
    counter: list[int],
    max_tokens: int | None = None,
) -> CompletionResult:
    """Parsuje odpowiedź; przy niepoprawnej prosi raz o naprawę."""
    tokens_in, tokens_out, tokens_cached = _usage(response)
    content: str | None = None
    try:
        content = _content(response)
        answer = _validate(content, original_text)
        repaired = False
    except (ValueError, AttributeError, TypeError) as exc:
        problem = str(exc)
        log.info("model %s: niepoprawna odpowiedź (%s) - jedna próba naprawy", model_row["model"], problem)
        retry = _request(
            client,
            model_row,
            prompts.repair_messages(messages, content if isinstance(content, str) else None, problem),
            mode,
            settings,
            state,
            counter,
            SINGLE,
            max_tokens,
        )
        more_in, more_out, more_cached = _usage(retry)
        tokens_in, tokens_out, tokens_cached = (
            tokens_in + more_in,
            tokens_out + more_out,
            tokens_cached + more_cached,
        )
        try:
            answer = _validate(_content(retry), original_text)
        except (ValueError, AttributeError, TypeError) as again:
            raise AiItemError(f"niepoprawna odpowiedź modelu także po próbie naprawy: {again}") from None
        repaired = True
    return CompletionResult(
        text=answer["text"],
        edits=answer["edits"],
        tokens_input=tokens_in,
        tokens_output=tokens_out,
        tokens_cached=tokens_cached,
        requests=counter[0],
        response_format=mode,
        repaired=repaired,
    )


def resolve_endpoint(settings: Settings, model_row: dict[str, Any]) -> tuple[str | None, str]:
    """Ustala adres serwera i klucz API modelu (klucz z ``ai_model.api_key_env``).

    Args:
        settings: Ustawienia (``OPENAI_BASE_URL`` i źródło zmiennych).
        model_row: Wiersz ``ai_model``.

    Returns:
        ``(base_url, api_key)``; ``base_url`` ``None`` = api.openai.com. Dla własnego serwera bez
        klucza zwracany jest ``"not-needed"``.

    Raises:
        AiError: Brak klucza dla api.openai.com.
    """
    base_url = model_row.get("base_url") or settings.openai_base_url or None
    key_env = model_row.get("api_key_env") or "OPENAI_API_KEY"
    api_key = get_env_value(settings, key_env)
    if not api_key:
        if base_url is None:
            raise AiError(
                f"brak klucza API: ustaw zmienną {key_env} (model {model_row['name']!r} używa api.openai.com)"
            )
        api_key = "not-needed"
    register_secrets([api_key])
    return base_url, api_key
