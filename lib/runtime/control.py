"""Sterowanie runem z zewnątrz: pauza i anulowanie przez operatora, okno czasowe, sygnały.

Silniki (sync, AI, eksport) dostają funkcję ``should_stop()`` i wołają ją na granicy partii.
Zwraca ona powód zatrzymania albo ``None``:
``manual`` (operator ustawił ``paused``), ``cancelled``, ``time_limit``, ``signal``.
"""

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from lib.db_local import connect_local
from lib.db_utils import get_logger
from lib.load_config import Settings

log = get_logger("control")

StopCheck = Callable[[], str | None]

# Sygnały są globalne dla procesu, więc zdarzenie też: ustawia je obsługa SIGTERM/SIGINT,
# czytają wszystkie runy w tym procesie (skrypt woła dagster.materialize w tym samym procesie).
PROCESS_STOP_EVENT = threading.Event()


def make_stop_check(
    settings: Settings,
    id_task: int,
    max_seconds: float | None = None,
    stop_event: threading.Event | None = None,
    poll_s: float = 1.0,
) -> StopCheck:
    """Buduje funkcję ``should_stop`` dla runu zadania.

    Status zadania czytany jest osobnym połączeniem (autocommit) najwyżej co ``poll_s`` sekund,
    więc wołanie jej po każdej partii jest tanie.

    Args:
        settings: Ustawienia (połączenie lokalne).
        id_task: Zadanie.
        max_seconds: Limit czasu runu (``--max-seconds``); ``None`` = bez limitu.
        stop_event: Zdarzenie ustawiane przez obsługę SIGTERM/SIGINT albo przez Dagstera.
        poll_s: Najkrótszy odstęp między odczytami statusu.

    Returns:
        Funkcja bez argumentów zwracająca powód zatrzymania albo ``None``.
    """
    deadline = time.monotonic() + max_seconds if max_seconds else None
    stop_event = PROCESS_STOP_EVENT if stop_event is None else stop_event
    state: dict[str, Any] = {"checked": 0.0, "reason": None, "db": None}

    def should_stop() -> str | None:
        if state["reason"]:
            return state["reason"]
        if stop_event is not None and stop_event.is_set():
            state["reason"] = "signal"
        elif deadline is not None and time.monotonic() >= deadline:
            state["reason"] = "time_limit"
        elif time.monotonic() - state["checked"] >= poll_s:
            state["checked"] = time.monotonic()
            try:
                if state["db"] is None:
                    state["db"] = connect_local(settings, autocommit=True)
                status = state["db"].query_value("SELECT status FROM task WHERE id_task=%s", (id_task,))
            except Exception as exc:  # brak odczytu statusu nie może przerwać pracy
                log.warning("nie udało się odczytać statusu zadania %s: %s", id_task, exc)
                status = None
            if status == "paused":
                state["reason"] = "manual"
            elif status == "cancelled":
                state["reason"] = "cancelled"
        if state["reason"]:
            log.info("zadanie %s: zatrzymanie na granicy partii (%s)", id_task, state["reason"])
            if state["db"] is not None:
                state["db"].close()
                state["db"] = None
        return state["reason"]

    return should_stop


def install_signal_handlers(stop_event: threading.Event = PROCESS_STOP_EVENT) -> None:
    """Podpina SIGTERM i SIGINT pod ``stop_event``: run kończy partię i zapisuje ``paused``.

    Drugi sygnał przerywa proces natychmiast (operator naprawdę chce go zatrzymać).
    """

    def handler(signum: int, _frame: Any) -> None:
        if stop_event.is_set():
            raise KeyboardInterrupt
        log.warning(
            "otrzymano sygnał %s - kończę bieżącą partię i wstrzymuję zadanie", signal.Signals(signum).name
        )
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def graceful_signals(stop_event: threading.Event = PROCESS_STOP_EVENT) -> Iterator[None]:
    """Na czas bloku SIGTERM/SIGINT tylko zgłaszają zatrzymanie (pauza na granicy partii).

    Dagster podczas wykonywania kroku zamienia sygnały na natychmiastowy wyjątek przerwania;
    wewnątrz tego bloku run kończy bieżącą partię, zapisuje stan i kończy się jak pauza.
    Poprzednie procedury obsługi są przywracane na wyjściu. Poza głównym wątkiem (gdzie
    sygnałów nie da się przechwycić) blok nic nie zmienia.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    install_signal_handlers(stop_event)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
