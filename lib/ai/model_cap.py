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

Dlaczego kilka sesji: ``GET_LOCK`` i ``RELEASE_LOCK`` na jednym połączeniu idą po kolei. Przy 32
wątkach i rywalizacji o GIL jedno polecenie trwa kilka ms, więc jedna sesja była wąskim gardłem
runu (~24 ms czekania na zapytanie, ~10% czasu miejsca ``AI_CONCURRENCY``).

Miejsce zostaje w runie między jego zapytaniami: zakończone zapytanie oddaje numer do puli
bezczynnych miejsc runu (bez ``RELEASE_LOCK``), a następne zapytanie runu bierze go bez
``GET_LOCK`` - dwa polecenia mniej na zapytanie (przy paczkach ~0,7 ms CPU runu na zapytanie).
Granice, żeby run nie zajmował limitu innym:

- miejsce bezczynne dłużej niż ``IDLE_S`` wraca do serwera (``release_idle`` z pętli runu);
- co ``HOLD_S`` run sprawdza jednym zapytaniem, czy inny run czeka na miejsce (czekający trzyma
  blokadę ``ailexia_ai_slotwait_<model>_<n>``) i czy jego blokady nadal istnieją (sesja mogła
  zginąć - wtedy numer przestaje być używany); gdy ktoś czeka, starsze niż ``HOLD_S`` miejsca
  są zwalniane naprawdę i przez ``COOLDOWN_S`` ten run ich nie bierze (czekający sprawdza co
  ``POLL_S``-``2*POLL_S``), więc dostaje je czekający run.
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
from lib.load_config import Settings

SLOT_PREFIX = "ailexia_ai_slot_"
# Blokady runów czekających na miejsce (sygnał dla runów, które trzymają miejsca między zapytaniami).
WAIT_PREFIX = "ailexia_ai_slotwait_"
WAITERS = 8
# Odstęp między próbami, gdy wszystkie miejsca są zajęte (plus losowy rozrzut, by runy się nie zgrywały).
POLL_S = 0.02
# Co tyle run sprawdza, czy ktoś czeka na miejsce i czy jego blokady istnieją (miejsce trzymane dłużej).
HOLD_S = 0.2
# Miejsce bezczynne dłużej wraca do serwera (``release_idle``).
IDLE_S = 0.1
# Miejsce oddane czekającym: run nie bierze go z powrotem przez ten czas (dłużej niż 2 * POLL_S).
COOLDOWN_S = 0.1


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
        idle: Numery trzymane, ale bez zapytania (gotowe dla następnego) -> od kiedy bezczynne.
        since: Numer -> kiedy ostatnio wzięty albo potwierdzony (``HOLD_S``).
        cooldown: Numer oddany czekającym -> do kiedy run go nie bierze.
        waiting: Ile wątków runu czeka teraz na miejsce.
        waiter: Blokada czekania trzymana przez run (nazwa, indeks sesji) albo ``None``.
        wait_names: Nazwy blokad czekania tego modelu (``WAITERS`` nazw).
        checked_at: Kiedy ostatnio sprawdzono czekających (``HOLD_S``).
        others_waiting: Wynik tego sprawdzenia.
    """

    names: list[str]
    db: MySQL | None = None
    held: set[int] = field(default_factory=set)
    wait_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    settings: Settings | None = None
    sessions: list[tuple[MySQL, threading.Lock]] = field(default_factory=list)
    owner: dict[int, int] = field(default_factory=dict)
    opening: int = 0
    idle: dict[int, float] = field(default_factory=dict)
    since: dict[int, float] = field(default_factory=dict)
    cooldown: dict[int, float] = field(default_factory=dict)
    waiting: int = 0
    waiter: tuple[str, int] | None = None
    wait_names: list[str] = field(default_factory=list)
    checked_at: float = 0.0
    others_waiting: bool = False

    def __post_init__(self) -> None:
        if self.db is not None and not self.sessions:
            self.sessions.append((self.db, threading.Lock()))


def model_key(model_row: dict[str, Any]) -> str:
    """Krótki klucz serwera modelu: ten sam ``base_url`` i ``model`` = ten sam limit."""
    raw = f"{model_row.get('base_url') or ''}\n{model_row['model']}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]


def _lock_names(prefix: str, model_row: dict[str, Any], count: int) -> list[str]:
    key = model_key(model_row)
    return [f"{prefix}{key}_{n}" for n in range(count)]


def slot_names(model_row: dict[str, Any], cap: int) -> list[str]:
    """Nazwy blokad ``GET_LOCK`` limitu modelu (``cap`` nazw)."""
    return _lock_names(SLOT_PREFIX, model_row, cap)


def open_slots(settings: Settings, model_row: dict[str, Any]) -> ModelSlots:
    """Przygotowuje miejsca runu (własne połączenie autocommit); ``AI_MODEL_CONCURRENCY=0`` = bez limitu."""
    cap = settings.ai_model_concurrency
    if cap <= 0:
        return ModelSlots(names=[])
    return ModelSlots(
        names=slot_names(model_row, cap),
        wait_names=_lock_names(WAIT_PREFIX, model_row, WAITERS),
        db=connect_local(settings, autocommit=True),
        settings=settings,
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
        now = time.monotonic()
        with slots.lock:
            free = [
                n
                for n in range(len(slots.names))
                if n not in slots.held and slots.cooldown.get(n, 0.0) <= now
            ]
        got = _first_free_lock(db, {n: slots.names[n] for n in free})
        if got is None:
            return None
        with slots.lock:
            slots.held.add(got)
            slots.owner[got] = index
            slots.since[got] = time.monotonic()
        db.session_locks += 1
        return got
    finally:
        lock.release()


def _first_free_lock(db: MySQL, candidates: dict[int, str]) -> int | None:
    """Jedno zapytanie: ``GET_LOCK(…, 0)`` kolejnych nazw do pierwszej wolnej (CASE kończy na niej); jej numer albo ``None``."""
    if not candidates:
        return None
    cases = " ".join("WHEN GET_LOCK(%s, 0) = 1 THEN %s" for _ in candidates)
    params: list[Any] = []
    for n, name in candidates.items():
        params.extend([name, n])
    got = db.query_value(f"SELECT CASE {cases} ELSE -1 END", params)
    return None if got is None or int(got) < 0 else int(got)


def _register_waiter(slots: ModelSlots) -> None:
    """Run czeka na miejsce: bierze jedną z blokad czekania (sygnał dla runów, które trzymają miejsca)."""
    with slots.lock:
        if slots.waiter is not None or slots.waiting == 0:
            return
    index = _take_session(slots)
    db, lock = slots.sessions[index]
    try:
        got = _first_free_lock(db, dict(enumerate(slots.wait_names)))
        if got is None:
            return  # wszystkie zajęte: inne runy już sygnalizują czekanie
        with slots.lock:
            if slots.waiter is None:
                slots.waiter = (slots.wait_names[got], index)
                db.session_locks += 1
                return
        db.query_value("SELECT RELEASE_LOCK(%s)", (slots.wait_names[got],))  # inny wątek był pierwszy
    finally:
        lock.release()


def _stop_waiting(slots: ModelSlots) -> None:
    """Wątek przestał czekać; ostatni czekający wątek runu oddaje blokadę czekania."""
    with slots.lock:
        slots.waiting -= 1
        waiter = slots.waiter if slots.waiting == 0 else None
        if waiter is not None:
            slots.waiter = None
    if waiter is None:
        return
    name, index = waiter
    db, lock = slots.sessions[index]
    with lock:
        db.session_locks = max(0, db.session_locks - 1)
        db.query_value("SELECT RELEASE_LOCK(%s)", (name,))


def _keep(slots: ModelSlots, slot: int, now: float) -> bool:
    """Czy run może dalej trzymać miejsce ``slot`` między zapytaniami (``False`` = zwolnić je teraz).

    Miejsce młodsze niż ``HOLD_S`` - tak. Starsze: raz na ``HOLD_S`` (dla wszystkich miejsc runu)
    jedno zapytanie sprawdza blokady czekania innych runów i to, czy blokady runu wciąż należą do
    jego sesji; numer, którego blokada zniknęła (sesja zabita), przestaje być trzymany.
    """
    with slots.lock:
        if now - slots.since.get(slot, 0.0) < HOLD_S:
            return True
        fresh = now - slots.checked_at < HOLD_S
        others = slots.others_waiting
        held = {n: (slots.owner.get(n), slots.since.get(n)) for n in slots.held}
        own_waiter = slots.waiter[0] if slots.waiter else None
    if not fresh:
        others = _check_holders(slots, held, own_waiter, now)
    with slots.lock:
        if slot not in slots.held:
            return False  # blokada zniknęła razem z sesją
        if others:
            return False
        slots.since[slot] = now
        return True


def _check_holders(
    slots: ModelSlots, held: dict[int, tuple[int | None, float | None]], own_waiter: str | None, now: float
) -> bool:
    """Jedno zapytanie: czy inny run czeka na miejsce; przy okazji gubi numery bez blokady runu.

    Args:
        held: Numery trzymane przez run -> (indeks sesji, ``since``) w chwili sprawdzenia; numer jest
            gubiony tylko wtedy, gdy to wciąż to samo wzięcie (ta sama sesja i ``since``).
    """
    waiters = [name for name in slots.wait_names if name != own_waiter]
    numbers = sorted(held)
    names = waiters + [slots.names[n] for n in numbers]
    columns = ", ".join(f"IS_USED_LOCK(%s) AS c{n}" for n in range(len(names)))
    index = _take_session(slots)
    db, lock = slots.sessions[index]
    try:
        row = db.query_one(f"SELECT {columns}", names)
    finally:
        lock.release()
    if not row:
        return slots.others_waiting
    values = list(row.values())
    others = any(value is not None for value in values[: len(waiters)])
    with slots.lock:
        session_ids = {
            i: db_.conn.thread_id() if db_.conn else None for i, (db_, _l) in enumerate(slots.sessions)
        }
        for n, holder in zip(numbers, values[len(waiters) :], strict=True):
            index_of = slots.owner.get(n)
            same = (index_of, slots.since.get(n)) == held[n]
            if same and index_of is not None and holder != session_ids.get(index_of):
                # Sesja z tą blokadą zginęła (KILL, zerwane połączenie): numer może mieć już inny run.
                slots.held.discard(n)
                slots.owner.pop(n, None)
                slots.idle.pop(n, None)
                slots.since.pop(n, None)
        slots.checked_at = now
        slots.others_waiting = others
    return others


def acquire(slots: ModelSlots, abort: Callable[[], bool] | None = None) -> int | None:
    """Czeka na wolne miejsce i zwraca jego numer; ``-1``, gdy limit wyłączony; ``None`` po ``abort()``.

    Najpierw miejsce bezczynne tego runu (bez zapytania do MySQL), potem ``GET_LOCK``.
    """
    if not slots.names:
        return -1
    started = time.monotonic()
    waiting = False
    try:
        while True:
            while True:
                with slots.lock:
                    slot = max(slots.idle, key=slots.idle.__getitem__) if slots.idle else None
                    if slot is not None:
                        del slots.idle[slot]
                if slot is None:
                    break
                if _keep(slots, slot, time.monotonic()):
                    return slot
                _release_now(slots, slot, give_away=True)
            got = _try_acquire(slots)
            if got is not None:
                return got
            if not waiting:
                waiting = True
                with slots.lock:
                    slots.waiting += 1
            _register_waiter(slots)
            if abort is not None and abort():
                return None
            time.sleep(POLL_S * (1 + random.random()))
    finally:
        if waiting:
            _stop_waiting(slots)
        waited = time.monotonic() - started
        with slots.lock:
            slots.wait_s += waited


def _release_now(slots: ModelSlots, slot: int, give_away: bool = False) -> None:
    """``RELEASE_LOCK`` miejsca na połączeniu, które je trzyma; ``give_away`` = nie brać go przez ``COOLDOWN_S``."""
    with slots.lock:
        index = slots.owner.get(slot)
        slots.idle.pop(slot, None)
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
            slots.since.pop(slot, None)
            if give_away:
                slots.cooldown[slot] = time.monotonic() + COOLDOWN_S


def release(slots: ModelSlots, slot: int | None) -> None:
    """Kończy zapytanie w miejscu ``slot`` (nic dla ``-1``/``None``): zostaje w runie albo wraca do serwera.

    Miejsce zostaje w puli bezczynnych miejsc runu dla jego następnego zapytania, chyba że inny run
    na nie czeka (``_keep``); wtedy ``RELEASE_LOCK`` i ``COOLDOWN_S`` dla tego runu.
    """
    if slot is None or slot < 0:
        return
    with slots.lock:
        if slot not in slots.owner:
            return
    now = time.monotonic()
    if _keep(slots, slot, now):
        with slots.lock:
            if slot in slots.owner:
                slots.idle[slot] = now
        return
    _release_now(slots, slot, give_away=True)


def release_idle(slots: ModelSlots, max_idle_s: float = IDLE_S) -> int:
    """Zwalnia miejsca bezczynne co najmniej ``max_idle_s`` (pętla runu; ``0`` = wszystkie); zwraca ich liczbę."""
    if not slots.idle:
        return 0
    now = time.monotonic()
    with slots.lock:
        stale = [slot for slot, since in slots.idle.items() if now - since >= max_idle_s]
        for slot in stale:
            del slots.idle[slot]
    for slot in stale:
        _release_now(slots, slot)
    return len(stale)


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
