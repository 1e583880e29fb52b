"""Paczki tekstów dla modelu: podział na paczki, wiadomości zapytania i odczyt odpowiedzi per pozycja.

Krótkie teksty jadą po kilka w jednym zapytaniu (``AI_PACK_ITEMS`` tekstów i ``AI_PACK_CHARS``
znaków najwyżej; ``ai_model.pack_items`` / ``pack_chars`` nadpisują to dla modelu). Prompt
systemowy paczki jest stały dla zadania i idzie pierwszy (cache prefiksu u dostawców), a
wiadomość użytkownika to tablica JSON ``[{"id": "1", "text": "..."}, ...]`` z tekstami
dosłownie. Odpowiedź to ``{"items": [{"id", "text", "edits"}, ...]}`` - każda pozycja
sprawdzana osobno modelem ``prompts.PackItem`` (te same reguły co pojedynczy tekst) i
``prompts.check_answer``. Pozycja brakująca, zdublowana albo niepoprawna jest zwracana jako
problem: silnik (``lib/ai/online.py``) wysyła ją potem samą, a resztę paczki zapisuje.

Tekst dłuższy niż połowa ``AI_PACK_CHARS`` jedzie sam; paczka z jednym tekstem to zwykłe
zapytanie o jeden tekst (format sprzed paczek), więc ``AI_PACK_ITEMS=1`` daje dawne zachowanie.
"""

import json
from collections.abc import Callable
from typing import Any, TypeVar

from lib.ai import prompts
from lib.load_config import Settings

T = TypeVar("T")


def pack_limits(settings: Settings, model_row: dict[str, Any]) -> tuple[int, int]:
    """Limity paczki: ``ai_model.pack_items`` / ``pack_chars`` albo ustawienia ``AI_PACK_*``.

    Returns:
        ``(najwięcej tekstów, najwięcej znaków)``; co najmniej ``(1, 1)``.
    """
    items = model_row.get("pack_items")
    chars = model_row.get("pack_chars")
    max_items = int(items) if items is not None else settings.ai_pack_items
    max_chars = int(chars) if chars is not None else settings.ai_pack_chars
    return max(1, max_items), max(1, max_chars)


def is_long(text: str, max_chars: int) -> bool:
    """Czy tekst jedzie sam: dłuższy niż połowa limitu znaków paczki."""
    return len(text) > max_chars // 2


def plan_packs(
    entries: list[T], text_of: Callable[[T], str], max_items: int, max_chars: int
) -> list[list[T]]:
    """Dzieli wpisy na paczki (zachłannie, w kolejności): limity liczby tekstów i znaków; długie osobno.

    Args:
        entries: Wpisy (np. pozycje do wysłania).
        text_of: Funkcja zwracająca tekst wpisu.
        max_items: Najwięcej tekstów w paczce (1 = każdy tekst osobno).
        max_chars: Najwięcej znaków tekstów w paczce.

    Returns:
        Lista paczek (każda niepusta); długie teksty w paczkach jednoelementowych.
    """
    packs: list[list[T]] = []
    current: list[T] = []
    chars = 0
    for entry in entries:
        size = len(text_of(entry))
        if max_items <= 1 or is_long(text_of(entry), max_chars):
            packs.append([entry])
            continue
        if current and (len(current) >= max_items or chars + size > max_chars):
            packs.append(current)
            current, chars = [], 0
        current.append(entry)
        chars += size
    if current:
        packs.append(current)
    return packs


def pack_ids(count: int) -> list[str]:
    """Identyfikatory pozycji w paczce: ``"1"`` .. ``"n"`` (krótkie - mniej tokenów)."""
    return [str(n) for n in range(1, count + 1)]


def build_pack_messages(
    texts: list[str],
    action: str = "correct",
    model_prompt: str | None = None,
    source_lang: str | None = None,
    target_lang: str | None = None,
) -> list[dict[str, str]]:
    """Wiadomości zapytania z paczką: stały prompt systemowy, potem tablica JSON tekstów (dosłownie).

    Args:
        texts: Teksty paczki (kolejność = identyfikatory ``"1"`` .. ``"n"``).
        action: ``correct`` albo ``translate``.
        model_prompt: ``ai_model.system_prompt`` albo ``None``.
        source_lang: Język źródłowy.
        target_lang: Język docelowy.

    Returns:
        Lista ``{"role", "content"}``.
    """
    payload = [{"id": key, "text": text} for key, text in zip(pack_ids(len(texts)), texts, strict=True)]
    return [
        {
            "role": "system",
            "content": prompts.system_prompt(action, model_prompt, source_lang, target_lang, pack=True),
        },
        {"role": "user", "content": json.dumps(payload, ensure_ascii=False)},
    ]


def parse_pack(content: str | None, originals: list[str]) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """Czyta odpowiedź na paczkę i sprawdza każdą pozycję osobno.

    Args:
        content: Treść odpowiedzi modelu.
        originals: Teksty paczki w kolejności identyfikatorów.

    Returns:
        ``(answers, problems)``: numer pozycji (0..n-1) -> odpowiedź ``{"text", "edits"}``
        albo opis problemu (brak wpisu, duplikat, niepoprawna odpowiedź). Każda pozycja jest
        dokładnie w jednym z dwóch słowników.
    """
    index_of = {key: n for n, key in enumerate(pack_ids(len(originals)))}
    try:
        if content is None or not content.strip():
            raise ValueError("pusta odpowiedź modelu")
        data = prompts.load_json(content)
        entries = data.get("items") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ValueError("odpowiedź na paczkę nie ma listy 'items'")
    except ValueError as exc:
        return {}, {n: f"paczka: {exc}" for n in range(len(originals))}
    found: dict[int, list[Any]] = {}
    for entry in entries:
        key = prompts.pack_item_id(entry)
        position = index_of.get(key) if key is not None else None
        if position is not None:
            found.setdefault(position, []).append(entry)
    answers: dict[int, dict[str, Any]] = {}
    problems: dict[int, str] = {}
    for position, original in enumerate(originals):
        given = found.get(position, [])
        if not given:
            problems[position] = "paczka: brak odpowiedzi dla tej pozycji"
            continue
        if len(given) > 1:
            problems[position] = f"paczka: {len(given)} odpowiedzi dla tej samej pozycji"
            continue
        try:
            answer = prompts.pack_item_from_data(given[0])
            prompts.check_answer(original, answer)
        except ValueError as exc:
            problems[position] = f"paczka: {exc}"
            continue
        answers[position] = answer
    return answers, problems
