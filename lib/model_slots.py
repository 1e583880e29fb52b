"""Wspólny limit zapytań do jednego modelu ze wszystkich runów AI (``AI_MODEL_CONCURRENCY``).

``AI_CONCURRENCY`` ogranicza zapytania jednego runu; runów AI może być wiele naraz (sensor po
każdej synchronizacji, ``ai.py`` z crona, kilka maszyn). Limit dla całego serwera modelu liczą
blokady ``GET_LOCK`` w lokalnym MySQL: ``N`` nazw ``ailexia_ai_slot_<model>_<n>`` (``n`` od 0 do
``N-1``, ``<model>`` = skrót z ``base_url`` i ``model``), a zapytanie wolno wysłać tylko trzymając
jedną z nich. Blokada znika sama, gdy proces runu zginie (sesja się zamyka), więc martwy run nie
zajmuje miejsca.

Run trzyma swoje miejsca na kilku połączeniach (``SESSIONS``, otwieranych dopiero, gdy wszystkie
otwarte są zajęte); miejsce zwalnia ta sesja, która je wzięła. ``GET_LOCK`` jest w MariaDB/MySQL
re-entrant w obrębie sesji, więc numery trzymane przez ten run są pomijane po stronie Pythona
(inna sesja tego samego runu po prostu nie dostanie cudzej blokady).
Miejsce obejmuje całe wywołanie modelu razem z ponowieniami (także przerwy między nimi): limit
mówi, ile zapytań jest naraz w toku, nigdy nie jest przekraczany.

Dlaczego kilka sesji: każde zapytanie do modelu to dwa polecenia (``GET_LOCK`` i ``RELEASE_LOCK``),
a na jednym połączeniu idą one po kolei. Przy 32 wątkach i rywalizacji o GIL jedno polecenie trwa
kilka ms, więc jedna sesja była wąskim gardłem runu (~24 ms czekania na zapytanie, ~10% czasu
miejsca ``AI_CONCURRENCY``).
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


# Najwięcej połączeń jednego runu trzymających miejsca (polecenia na jednym połączeniu idą po kolei).
SESSIONS = 4


@dataclass
class ModelSlots:
    """Miejsca jednego runu: nazwy blokad, połączenia, które je trzymają, i numery trzymane teraz.

    Attributes:
        names: Nazwy blokad ``GET_LOCK`` (pusta lista = limit wyłączony).
        db: Pierwsze połączenie trzymające blokady (``None``, gdy limit wyłączony).
        held: Numery miejsc trzymane przez ten run.
        wait_s: Łączny czas czekania na wolne miejsce (statystyka runu).
        settings: Ustawienia do otwierania kolejnych połączeń (``None`` = tylko ``db``).
        sessions: Otwarte połączenia (``db`` pierwsze) z blokadą wątków każdego z nich.
        owner: Numer miejsca -> indeks połączenia w ``sessions``, które go trzyma.
        opening: Ile połączeń jest właśnie otwieranych.
    """

    names: list[str]
    db: MySQL | None = None
    held: set[int] = field(default_factory=set)
    wait_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    settings: dict[str, Any] | None = None
    sessions: list[tuple[MySQL, threading.Lock]] = field(default_factory=list)
    owner: dict[int, int] = field(default_factory=dict)
    opening: int = 0

    def __post_init__(self) -> None:
        if self.db is not None and not self.sessions:
            self.sessions.append((self.db, threading.Lock()))


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
    return ModelSlots(
        names=slot_names(model_row, cap), db=connect_local(settings, autocommit=True), settings=settings
    )


def close_slots(slots: ModelSlots) -> None:
    """Zamyka połączenia (zwalnia wszystkie blokady, które jeszcze trzymają)."""
    for db, _lock in slots.sessions:  # pierwsza sesja to ``slots.db``
        db.close()
    slots.db = None
    slots.sessions = []


def _take_session(slots: ModelSlots) -> int:
    """Zajmuje wolne połączenie runu (jego blokada wątków założona) i zwraca jego indeks.

    Gdy wszystkie otwarte są zajęte, otwiera kolejne (do ``SESSIONS``); inaczej czeka na jedno z nich.
    """
    sessions = list(slots.sessions)
    for index, (_db, lock) in enumerate(sessions):
        if lock.acquire(blocking=False):
            return index
    with slots.lock:
        grow = slots.settings is not None and len(slots.sessions) + slots.opening < SESSIONS
        if grow:
            slots.opening += 1
    if grow:
        try:
            db = connect_local(slots.settings, autocommit=True)
        finally:
            with slots.lock:
                slots.opening -= 1
        lock = threading.Lock()
        lock.acquire()
        with slots.lock:
            slots.sessions.append((db, lock))
            return len(slots.sessions) - 1
    index = random.randrange(len(sessions))
    sessions[index][1].acquire()
    return index


def _try_acquire(slots: ModelSlots) -> int | None:
    """Jedno zapytanie: pierwsza wolna blokada spośród nietrzymanych przez ten run (CASE kończy na pierwszej)."""
    index = _take_session(slots)
    db, lock = slots.sessions[index]
    try:
        # Wolne numery liczone dopiero z zajętą sesją: numer wzięty przed chwilą na tej samej sesji
        # jest już w ``held`` (inaczej GET_LOCK, re-entrant, oddałby go drugi raz).
        with slots.lock:
            free = [n for n in range(len(slots.names)) if n not in slots.held]
        if not free:
            return None
        cases = " ".join("WHEN GET_LOCK(%s, 0) = 1 THEN %s" for _ in free)
        params: list[Any] = []
        for n in free:
            params.extend([slots.names[n], n])
        got = db.query_value(f"SELECT CASE {cases} ELSE -1 END", params)
        if got is None or int(got) < 0:
            return None
        with slots.lock:
            slots.held.add(int(got))
            slots.owner[int(got)] = index
        db.session_locks += 1
        return int(got)
    finally:
        lock.release()


def acquire(slots: ModelSlots, abort: Callable[[], bool] | None = None) -> int | None:
    """Czeka na wolne miejsce i zwraca jego numer; ``-1``, gdy limit wyłączony; ``None`` po ``abort()``."""
    if not slots.names:
        return -1
    started = time.monotonic()
    try:
        while True:
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
    """Zwalnia miejsce ``slot`` (nic dla ``-1``/``None``) na połączeniu, które je trzyma."""
    if slot is None or slot < 0:
        return
    with slots.lock:
        index = slots.owner.get(slot)
    if index is None:
        return
    db, lock = slots.sessions[index]
    with lock:
        db.session_locks = max(0, db.session_locks - 1)
        db.query_value("SELECT RELEASE_LOCK(%s)", (slots.names[slot],))
        # Numer wraca do wolnych dopiero po RELEASE_LOCK: wcześniej ta sama sesja mogłaby go
        # dostać drugi raz (GET_LOCK jest re-entrant) i miejsce liczyłoby się podwójnie.
        with slots.lock:
            slots.owner.pop(slot, None)
            slots.held.discard(slot)


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
