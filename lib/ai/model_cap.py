"""Wspólny limit zapytań do jednego modelu ze wszystkich runów AI (``AI_MODEL_CONCURRENCY``).

``AI_CONCURRENCY`` ogranicza zapytania jednego runu; runów AI może być wiele naraz (sensor po
każdej synchronizacji, ``ai.py`` z crona, kilka maszyn). Limit dla całego serwera modelu liczą
blokady ``GET_LOCK`` w lokalnym MySQL: ``N`` nazw miejsc (``lib.runtime.locks.model_slot_names``;
ten sam ``base_url`` i ``model`` = te same nazwy), a zapytanie wolno wysłać tylko trzymając jedną
z nich. Blokada znika sama, gdy proces runu zginie (sesja się zamyka), więc martwy run nie
zajmuje miejsca.

Jedno miejsce na jedno zapytanie: wątek pożycza połączenie runu (każde trzyma najwyżej jedną
blokadę, więc re-entrant ``GET_LOCK`` niczego nie liczy podwójnie), bierze pierwszą wolną blokadę,
wysyła zapytanie (z ponowieniami) i zwalnia ją ``RELEASE_LOCK``. Gdy wszystkie miejsca są zajęte,
jeden wątek runu czeka w ``GET_LOCK`` z krótkim limitem czasu (MariaDB oddaje zwolnioną blokadę
czekającej sesji, więc czekające runy dostają miejsca), pozostałe czekają na swoją kolej w runie.
"""

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lib.db_local import MySQL, connect_local
from lib.load_config import Settings
from lib.runtime.locks import model_slot_names

# Ile sekund jeden czekający wątek runu czeka w ``GET_LOCK`` na jedno miejsce (potem sprawdza ``abort``).
WAIT_S = 0.1


@dataclass
class ModelSlots:
    """Miejsca jednego runu: nazwy blokad i połączenia, które je biorą.

    Attributes:
        names: Nazwy blokad ``GET_LOCK`` (pusta lista = limit wyłączony).
        settings: Ustawienia do otwierania połączeń (``None`` = limit wyłączony).
        idle: Połączenia bez blokady, gotowe dla następnego zapytania.
        owner: Numer trzymanego miejsca -> połączenie, które je trzyma.
        wait_s: Łączny czas czekania na wolne miejsce (statystyka runu).
    """

    names: list[str]
    settings: Settings | None = None
    idle: list[MySQL] = field(default_factory=list)
    owner: dict[int, MySQL] = field(default_factory=dict)
    wait_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Najwyżej jeden wątek runu czeka w ``GET_LOCK`` (reszta tu): połączeń nie przybywa z czekającymi.
    waiter: threading.Lock = field(default_factory=threading.Lock)


def open_slots(settings: Settings, model_row: dict[str, Any]) -> ModelSlots:
    """Przygotowuje miejsca runu; ``AI_MODEL_CONCURRENCY=0`` = bez limitu."""
    cap = settings.ai_model_concurrency
    if cap <= 0:
        return ModelSlots(names=[])
    return ModelSlots(names=model_slot_names(model_row, cap), settings=settings)


def close_slots(slots: ModelSlots) -> None:
    """Zamyka połączenia runu (zwalnia blokady, które jeszcze trzymają)."""
    with slots.lock:
        sessions, slots.idle, slots.owner = [*slots.idle, *slots.owner.values()], [], {}
    for db in sessions:
        with contextlib.suppress(Exception):  # połączenie mogło zginąć - blokady i tak zniknęły
            db.close()


def _borrow(slots: ModelSlots) -> MySQL:
    with slots.lock:
        if slots.idle:
            return slots.idle.pop()
    assert slots.settings is not None
    return connect_local(slots.settings, autocommit=True)


def _try_lock(slots: ModelSlots, wait_s: float) -> int | None:
    """Bierze wolne miejsce na pożyczonym połączeniu: najpierw bez czekania, potem ``wait_s`` na jedno."""
    db = _borrow(slots)
    try:
        count = len(slots.names)
        start = random.randrange(count)  # runy nie zaczynają od tego samego numeru
        order = [(start + n) % count for n in range(count)]
        cases = " ".join("WHEN GET_LOCK(%s, 0) = 1 THEN %s" for _ in order)
        params: list[Any] = [value for n in order for value in (slots.names[n], n)]
        got = db.query_value(f"SELECT CASE {cases} ELSE -1 END", params)
        got = None if got is None or int(got) < 0 else int(got)
        if got is None and wait_s > 0:
            n = random.randrange(count)
            if db.query_value("SELECT GET_LOCK(%s, %s)", (slots.names[n], wait_s)) == 1:
                got = n
    except BaseException:
        with contextlib.suppress(Exception):  # sesja zepsuta (np. KILL): jej blokady i tak zniknęły
            db.close()
        raise
    with slots.lock:
        if got is None:
            slots.idle.append(db)
        else:
            slots.owner[got] = db
    return got


def acquire(slots: ModelSlots, abort: Callable[[], bool] | None = None) -> int | None:
    """Czeka na wolne miejsce i zwraca jego numer; ``-1``, gdy limit wyłączony; ``None`` po ``abort()``."""
    if not slots.names:
        return -1
    started = time.monotonic()
    try:
        got = _try_lock(slots, 0)
        while got is None:
            if abort is not None and abort():
                return None
            with slots.waiter:
                got = _try_lock(slots, WAIT_S)
        return got
    finally:
        waited = time.monotonic() - started
        with slots.lock:
            slots.wait_s += waited


def release(slots: ModelSlots, slot: int | None) -> None:
    """Zwalnia miejsce ``slot`` (nic dla ``-1``/``None``); połączenie wraca do runu."""
    if slot is None or slot < 0:
        return
    with slots.lock:
        db = slots.owner.pop(slot, None)
    if db is None:
        return
    try:
        db.query_value("SELECT RELEASE_LOCK(%s)", (slots.names[slot],))
    except Exception:
        with contextlib.suppress(Exception):  # sesja zginęła: blokada zniknęła razem z nią
            db.close()
        return
    with slots.lock:
        slots.idle.append(db)


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
    names = model_slot_names(model_row, cap)
    marks = " + ".join("(IS_USED_LOCK(%s) IS NOT NULL)" for _ in names)
    return int(db.query_value(f"SELECT {marks}", names) or 0)
