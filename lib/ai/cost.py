"""Pieniądze AI: koszt zapytania z cen modelu, podział rachunku paczki na pozycje, szacunek z góry.

Zasady (jedno miejsce):

* koszt zapytania liczony jest z tokenów ``usage`` i cen ``ai_model`` (USD za milion tokenów),
  zaokrąglony do 6 miejsc jak kolumna ``task_item.cost_usd``;
* rachunek zapytania z kilkoma tekstami (paczka) dzielony jest na pozycje proporcjonalnie do
  liczby znaków ich tekstów, w liczbach całkowitych (tokeny, mikrodolary); reszta z zaokrąglenia
  trafia do jednej pozycji (najdłuższej), więc suma po pozycjach równa się dokładnie rachunkowi;
* szacunek z góry (rezerwacja budżetu ``AI_MAX_COST_USD``) jest ograniczeniem górnym: każdy
  token ma co najmniej jeden bajt UTF-8, a odpowiedź jest ograniczona ``max_tokens``.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

_MTOK = Decimal(1_000_000)
MICRO = Decimal("0.000001")
# Narzut formatu czatu na wiadomość (rola, separatory) w tokenach - z zapasem.
MESSAGE_OVERHEAD_TOKENS = 8
REQUEST_OVERHEAD_TOKENS = 16


class Share(NamedTuple):
    """Część rachunku jednego zapytania przypisana jednej pozycji."""

    tokens_input: int
    tokens_cached: int
    tokens_output: int
    cost: Decimal


def compute_cost(
    tokens_input: int, tokens_cached: int, tokens_output: int, model_row: dict[str, Any]
) -> Decimal:
    """Liczy koszt zapytania w USD z cen modelu (USD za milion tokenów).

    Tokeny z cache (część ``tokens_input``) liczone są po ``price_cached_input_per_mtok``,
    a gdy ta cena jest NULL - jak zwykłe wejście.

    Args:
        tokens_input: Tokeny wejściowe razem z tokenami z cache (``usage.prompt_tokens``).
        tokens_cached: Tokeny wejściowe obsłużone z cache.
        tokens_output: Tokeny wyjściowe.
        model_row: Wiersz ``ai_model``.

    Returns:
        Koszt zaokrąglony do 6 miejsc (jak kolumna ``task_item.cost_usd``).
    """
    price_in = Decimal(str(model_row.get("price_input_per_mtok") or 0))
    price_out = Decimal(str(model_row.get("price_output_per_mtok") or 0))
    cached_price = model_row.get("price_cached_input_per_mtok")
    price_cached = price_in if cached_price is None else Decimal(str(cached_price))
    cached = max(0, min(int(tokens_cached or 0), int(tokens_input or 0)))
    uncached = int(tokens_input or 0) - cached
    cost = (uncached * price_in + cached * price_cached + int(tokens_output or 0) * price_out) / _MTOK
    return cost.quantize(MICRO, rounding=ROUND_HALF_UP)


def batch_price_row(model_row: dict[str, Any]) -> dict[str, Any]:
    """Wiersz modelu z cenami Batch API w miejscu cen zwykłych (do ``compute_cost``).

    ``price_batch_input_per_mtok`` / ``price_batch_output_per_mtok`` NULL = połowa ceny zwykłej
    (cennik OpenAI Batch API); tokeny z cache w batchu kosztują połowę swojej ceny (NULL = jak
    wejście batcha).

    Args:
        model_row: Wiersz ``ai_model``.

    Returns:
        Kopia wiersza z cenami batcha.
    """
    half = Decimal("0.5")
    price_in = Decimal(str(model_row.get("price_input_per_mtok") or 0))
    price_out = Decimal(str(model_row.get("price_output_per_mtok") or 0))
    batch_in = model_row.get("price_batch_input_per_mtok")
    batch_out = model_row.get("price_batch_output_per_mtok")
    cached = model_row.get("price_cached_input_per_mtok")
    return {
        **model_row,
        "price_input_per_mtok": price_in * half if batch_in is None else Decimal(str(batch_in)),
        "price_output_per_mtok": price_out * half if batch_out is None else Decimal(str(batch_out)),
        "price_cached_input_per_mtok": None if cached is None else Decimal(str(cached)) * half,
    }


def split_integer(total: int, weights: list[int]) -> list[int]:
    """Dzieli liczbę całkowitą proporcjonalnie do wag; reszta z zaokrąglenia w dół idzie do jednej pozycji.

    Pozycja z resztą to ta o największej wadze (pierwsza przy remisie), więc wynik jest
    deterministyczny. Wagi zerowe (albo same zera) dają podział równy.

    Args:
        total: Liczba do podziału (np. tokeny zapytania), nieujemna.
        weights: Wagi pozycji (np. liczba znaków tekstu), co najmniej jedna.

    Returns:
        Lista części tej samej długości co ``weights``; suma równa ``total``.
    """
    if not weights:
        raise ValueError("podział na zero pozycji")
    safe = [max(0, int(w)) for w in weights]
    if sum(safe) == 0:
        safe = [1] * len(safe)
    whole = sum(safe)
    parts = [total * w // whole for w in safe]
    heaviest = max(range(len(safe)), key=lambda i: (safe[i], -i))
    parts[heaviest] += total - sum(parts)
    return parts


def split_bill(
    tokens_input: int, tokens_cached: int, tokens_output: int, cost: Decimal, weights: list[int]
) -> list[Share]:
    """Dzieli rachunek jednego zapytania (tokeny i koszt) na pozycje proporcjonalnie do wag.

    Koszt dzielony jest w mikrodolarach (jednostka ``task_item.cost_usd``). Sumy części równają
    się dokładnie ``tokens_input``, ``tokens_cached``, ``tokens_output`` i ``cost``.

    Args:
        tokens_input: ``usage.prompt_tokens`` zapytania.
        tokens_cached: Tokeny wejściowe z cache.
        tokens_output: ``usage.completion_tokens``.
        cost: Koszt zapytania (``compute_cost``), wielokrotność 0,000001.
        weights: Znaki tekstów pozycji w paczce.

    Returns:
        Lista ``Share`` w kolejności ``weights``.
    """
    micro = int((cost / MICRO).to_integral_value(rounding=ROUND_HALF_UP))
    ins = split_integer(int(tokens_input), weights)
    cached = split_integer(int(tokens_cached), weights)
    outs = split_integer(int(tokens_output), weights)
    costs = split_integer(micro, weights)
    return [Share(ins[i], cached[i], outs[i], costs[i] * MICRO) for i in range(len(weights))]


def input_tokens_bound(messages: list[dict[str, Any]]) -> int:
    """Górne ograniczenie tokenów wejściowych zapytania: bajty UTF-8 treści + narzut formatu czatu.

    Token ma co najmniej jeden bajt, więc liczba bajtów ogranicza liczbę tokenów treści.
    """
    total = REQUEST_OVERHEAD_TOKENS
    for message in messages:
        content = message.get("content") or ""
        total += len(str(content).encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS
    return total


def output_tokens_bound(model_row: dict[str, Any], texts: list[str]) -> tuple[int, bool]:
    """Górne ograniczenie tokenów odpowiedzi i informacja, czy trzeba je wysłać jako ``max_tokens``.

    Gdy model ma ``max_output_tokens``, to on jest ograniczeniem (serwer i tak go dostaje).
    Inaczej ograniczeniem jest szacunek z tekstów (tekst wynikowy i lista poprawek: dwa razy bajty
    tekstów + 200 tokenów na pozycję), który musi pójść w zapytaniu, żeby był prawdziwy.

    Returns:
        ``(tokeny, wyślij_jako_max_tokens)``.
    """
    configured = model_row.get("max_output_tokens")
    if configured:
        return int(configured), False
    bound = sum(2 * len(t.encode("utf-8")) + 200 for t in texts) + 50
    return bound, True


def reserve_estimate(
    model_row: dict[str, Any], messages: list[dict[str, Any]], output_tokens: int, requests: int = 1
) -> Decimal:
    """Koszt, który trzeba zarezerwować z budżetu przed wysłaniem (górne ograniczenie).

    Args:
        model_row: Wiersz ``ai_model`` (ceny).
        messages: Wiadomości zapytania.
        output_tokens: Ograniczenie tokenów odpowiedzi (``output_tokens_bound``).
        requests: Ile zapytań może pójść (pojedynczy tekst: zapytanie + jedna próba naprawy, która
            niesie też złą odpowiedź).

    Returns:
        Koszt w USD (cena wejścia bez zniżki za cache).
    """
    tokens_in = input_tokens_bound(messages)
    if requests > 1:
        # Naprawa: te same wiadomości + zła odpowiedź (<= output_tokens) + krótka prośba.
        tokens_in = tokens_in * requests + output_tokens * (requests - 1) + 64 * (requests - 1)
    full = compute_cost(tokens_in, 0, output_tokens * requests, model_row)
    return full + MICRO  # zaokrąglenie compute_cost w górę o najwyżej pół mikrodolara
