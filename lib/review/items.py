"""Odczyt pozycji do przeglądu: lista, jedna pozycja, strona (keyset) i opis zmian modelu.

SQL pozycji jest w ``lib/task_item.py``; tu są sprawdzenia parametrów podanych przez człowieka
i kształt wyniku. Z tych funkcji czytają terminal (``review.py``) i strona przeglądu.
"""

import json
from typing import Any, NamedTuple

from lib import task_item
from lib.db_local import MySQL
from lib.errors import UsageError
from lib.review.rules import check_status
from lib.task import get_task

# Największa strona pozycji na stronie przeglądu.
PAGE_LIMIT_MAX = 200


# Filtr flag strony przeglądu -> warunek zapytania strony.
FLAG_FILTERS = {None: None, "flagged": task_item.ONLY_FLAGGED, "unflagged": task_item.ONLY_UNFLAGGED}


class Page(NamedTuple):
    """Strona pozycji: wiersze rosnąco po ``id_task_item`` i czy istnieją strony obok."""

    items: list[dict[str, Any]]
    has_prev: bool
    has_next: bool


def list_items(
    db: MySQL, id_task: int, status: str | None = "processed", limit: int = 20
) -> list[dict[str, Any]]:
    """Zwraca pozycje zadania do przeglądu (nieusunięte) w porządku źródła.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        status: Status pozycji albo ``None`` = wszystkie.
        limit: Maksymalna liczba pozycji.

    Returns:
        Lista słowników z kolumnami pozycji (``id_task_item``, ``remote_key``, ``status``,
        teksty, ``change_summary``, ``is_changed``, ``approved_by``, ``export_error``...).

    Raises:
        UsageError: Nieznane zadanie, status albo ujemny limit.
    """
    check_status(status)
    if limit < 1:
        raise UsageError(f"--limit musi być dodatni (jest {limit})")
    get_task(db, id_task)
    return task_item.list_for_review(db, id_task, status, limit)


def get_item(db: MySQL, id_item: int) -> dict[str, Any]:
    """Zwraca jedną pozycję (wszystkie kolumny).

    Raises:
        UsageError: Gdy pozycja nie istnieje.
    """
    row = task_item.get_item_row(db, id_item)
    if row is None:
        raise UsageError(f"pozycja {id_item} nie istnieje w tabeli task_item")
    return row


def page_items(
    db: MySQL,
    id_task: int,
    status: str,
    after: int | None = None,
    before: int | None = None,
    limit: int = 20,
    flags: str | None = None,
) -> Page:
    """Zwraca jedną stronę nieusuniętych pozycji zadania o danym statusie (keyset, bez OFFSET).

    Koszt strony nie zależy od tego, jak daleko jest ona w zadaniu ani od innych zadań
    (``task_item.status_page_query``).

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        status: Status pozycji (jeden z ``ITEM_STATUSES``).
        after: Pozycje o ``id_task_item`` większym niż ten (następna strona).
        before: Pozycje o ``id_task_item`` mniejszym niż ten (poprzednia strona).
        limit: Liczba pozycji na stronie (1..``PAGE_LIMIT_MAX``).
        flags: ``flagged`` (tylko z flagami zabezpieczeń AI), ``unflagged`` (tylko bez) albo
            ``None`` (wszystkie).

    Returns:
        ``Page`` z pozycjami rosnąco po ``id_task_item``.

    Raises:
        UsageError: Nieznany status albo limit spoza zakresu.
    """
    check_status(status)
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise UsageError(f"liczba pozycji na stronie musi być w zakresie 1..{PAGE_LIMIT_MAX} (jest {limit})")
    if flags not in FLAG_FILTERS:
        raise UsageError(f"nieznany filtr flag {flags!r} (dozwolone: flagged, unflagged)")
    backwards = before is not None
    rows = task_item.review_page(
        db, id_task, status, before if backwards else after, limit + 1, backwards, FLAG_FILTERS[flags]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return Page(rows, more, True)
    return Page(rows, after is not None, more)


def parse_summary(raw: str | None) -> dict[str, Any]:
    """Odczytuje ``change_summary`` (JSON) w postaci ``{"edits": [...], "counts": {...}}``.

    Args:
        raw: Zawartość kolumny ``change_summary`` albo ``None``.

    Returns:
        Słownik z kluczami ``edits`` i ``counts`` (puste, gdy brak lub niepoprawny JSON;
        wtedy dodatkowo ``invalid`` z surowym tekstem).
    """
    if not raw:
        return {"edits": [], "counts": {}}
    try:
        data = json.loads(raw)
    except ValueError:
        return {"edits": [], "counts": {}, "invalid": raw}
    if not isinstance(data, dict):
        return {"edits": [], "counts": {}, "invalid": raw}
    edits = data.get("edits") if isinstance(data.get("edits"), list) else []
    counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
    return {"edits": edits, "counts": counts}
