"""Tryb kursora resyncu (``task.cursor_column``): wartość kursora zapisana w zadaniu i dolna granica odczytu.

Resync z kursorem czyta ze źródła tylko wiersze z kursorem ``>=`` ostatnia zapamiętana wartość minus
``SYNC_CURSOR_LAG_S`` (transakcje, które zatwierdzają się później, niż ustawiły kursor), a usunięte
wiersze znajduje odciskami samych kluczy (``lib.sync.leaves``). Wartość zapamiętana to największy
kursor w źródle na starcie skanu, zapisana po jego zakończeniu.
"""

import datetime
from typing import Any


def encode(value: Any) -> str | None:
    """Wartość kursora ze źródła do ``task.cursor_value`` (czas w ISO 8601, liczba i tekst jak są)."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def since(stored: str | None, lag_s: float) -> Any:
    """Dolna granica odczytu z kursorem: zapamiętana wartość minus ``lag_s`` sekund.

    Czas (ISO 8601) jest cofany o ``lag_s``; liczba całkowita i inny tekst idą bez zmian (opóźnienie
    dotyczy tylko kursora czasu). Strefa czasowa zostaje ta sama, co zapamiętana.

    Returns:
        ``datetime``, ``int`` albo tekst do parametru zapytania; ``None``, gdy nic nie zapamiętano.
    """
    if stored is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(stored)
    except ValueError:
        try:
            return int(stored)
        except ValueError:
            return stored
    return moment - datetime.timedelta(seconds=lag_s)
