"""Wspólny limit zapytań do jednego modelu ze wszystkich runów AI (``AI_MODEL_CONCURRENCY``).

``AI_CONCURRENCY`` ogranicza zapytania jednego runu; runów AI może być wiele naraz (sensor po
każdej synchronizacji, ``ai.py`` z crona, kilka maszyn). Limit dla całego serwera modelu liczą
blokady ``GET_LOCK`` w lokalnym MySQL: ``N`` nazw ``ailexia_ai_slot_<model>_<n>`` (``n`` od 0 do
``N-1``, ``<model>`` = skrót z ``base_url`` i ``model``), a zapytanie wolno wysłać tylko trzymając
jedną z nich. Blokada znika sama, gdy proces runu zginie (sesja się zamyka), więc martwy run nie
zajmuje miejsca.

Run trzyma wszystkie swoje miejsca na jednym połączeniu; ``GET_LOCK`` jest w MariaDB/MySQL
re-entrant w obrębie sesji, więc numery trzymane przez ten run są pomijane po stronie Pythona.
Miejsce obejmuje całe wywołanie modelu razem z ponowieniami (także przerwy między nimi): limit
mówi, ile zapytań jest naraz w toku, nigdy nie jest przekraczany.
"""

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lib.db_local import MySQL, connect_local

SLOT_PREFIX = "ailexia_ai_slot_"
# Odstęp między próbami, gdy wszystkie miejsca są zajęte (plus losowy rozrzut, by runy się nie zgrywały).
POLL_S = 0.02


@dataclass
class ModelSlots:
    """Miejsca jednego runu: nazwy blokad, połączenie, które je trzyma, i numery trzymane teraz.

    Attributes:
        names: Nazwy blokad ``GET_LOCK`` (pusta lista = limit wyłączony).
        db: Połączenie trzymające blokady (``None``, gdy limit wyłączony).
        held: Numery miejsc trzymane przez ten run.
        wait_s: Łączny czas czekania na wolne miejsce (statystyka runu).
    """

    names: list[str]
    db: MySQL | None = None
    held: set[int] = field(default_factory=set)
    wait_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def model_key(model_row: dict[str, Any]) -> str:
    """Krótki klucz serwera modelu: ten sam ``base_url`` i ``model`` = ten sam limit."""
    raw = f"{model_row.get('base_url') or ''}\n{model_row['model']}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]


def slot_names(model_row: dict[str, Any], cap: int) -> list[str]:
    """Nazwy blokad ``GET_LOCK`` limitu modelu (``cap`` nazw)."""
    key = model_key(model_row)
    return [f"{SLOT_PREFIX}{key}_{n}" for n in range(cap)]


def open_slots(settings: dict[str, Any], model_row: dict[str, Any]) -> ModelSlots:
    """Przygotowuje miejsca runu (własne połączenie autocommit); ``AI_MODEL_CONCURRENCY=0`` = bez limitu."""
    cap = int(settings["AI_MODEL_CONCURRENCY"])
    if cap <= 0:
        return ModelSlots(names=[])
    return ModelSlots(names=slot_names(model_row, cap), db=connect_local(settings, autocommit=True))


def close_slots(slots: ModelSlots) -> None:
    """Zamyka połączenie (zwalnia wszystkie blokady, które jeszcze trzyma)."""
    if slots.db is not None:
        slots.db.close()
        slots.db = None


def _try_acquire(slots: ModelSlots) -> int | None:
    """Jedno zapytanie: pierwsza wolna blokada spośród nietrzymanych przez ten run (CASE kończy na pierwszej)."""
    assert slots.db is not None
    free = [n for n in range(len(slots.names)) if n not in slots.held]
    if not free:
        return None
    cases = " ".join("WHEN GET_LOCK(%s, 0) = 1 THEN %s" for _ in free)
    params: list[Any] = []
    for n in free:
        params.extend([slots.names[n], n])
    got = slots.db.query_value(f"SELECT CASE {cases} ELSE -1 END", params)
    if got is None or int(got) < 0:
        return None
    slots.held.add(int(got))
    slots.db.session_locks += 1
    return int(got)


def acquire(slots: ModelSlots, abort: Callable[[], bool] | None = None) -> int | None:
    """Czeka na wolne miejsce i zwraca jego numer; ``-1``, gdy limit wyłączony; ``None`` po ``abort()``."""
    if not slots.names:
        return -1
    started = time.monotonic()
    try:
        while True:
            with slots.lock:
                got = _try_acquire(slots)
            if got is not None:
                return got
            if abort is not None and abort():
                return None
            time.sleep(POLL_S * (1 + random.random()))
    finally:
        waited = time.monotonic() - started
        with slots.lock:
            slots.wait_s += waited


def release(slots: ModelSlots, slot: int | None) -> None:
    """Zwalnia miejsce ``slot`` (nic dla ``-1``/``None``)."""
    if slot is None or slot < 0:
        return
    with slots.lock:
        if slot not in slots.held:
            return
        slots.held.discard(slot)
        assert slots.db is not None
        slots.db.session_locks = max(0, slots.db.session_locks - 1)
        slots.db.query_value("SELECT RELEASE_LOCK(%s)", (slots.names[slot],))


@contextmanager
def model_slot(slots: ModelSlots, abort: Callable[[], bool] | None = None) -> Iterator[bool]:
    """Trzyma jedno miejsce na czas bloku; ``False``, gdy czekanie przerwał ``abort()`` (nic nie wysyłać)."""
    slot = acquire(slots, abort)
    try:
        yield slot is not None
    finally:
        release(slots, slot)


def holders(db: MySQL, model_row: dict[str, Any], cap: int) -> int:
    """Ile miejsc limitu modelu jest teraz zajętych (na całym serwerze MySQL) - do podglądu i testów."""
    names = slot_names(model_row, cap)
    marks = " + ".join("(IS_USED_LOCK(%s) IS NOT NULL)" for _ in names)
    return int(db.query_value(f"SELECT {marks}", names) or 0)
