"""Ramy runów silników: blokada, wpis w ``run_log`` i wynik runu.

Blokady są w ``lib.runtime.locks``, dziennik w ``lib.runtime.run_log``.

Rama runu to wspólna obudowa pracy silnika: blokada, wpis w ``run_log``, zamknięcie wpisu
wynikiem albo błędem. Są dwie:

* ``run_with_task_lock`` - synchronizacja, weryfikacja i eksport: jeden run zadania naraz
  (blokada zadania); błąd runu zapisuje też ``task.status='error'`` i ``error_log``;
* ``run_with_operation_lock`` - AI: wiele runów jednego zadania może pracować naraz, każdy
  trzyma blokadę swojej operacji (``operation_uuid``); status zadania się nie zmienia.

Obie budują wynik ``run_log`` tą samą funkcją ``run_outcome``.
"""

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from lib.db_local import MySQL, connect_local, is_dropped
from lib.db_utils import get_logger
from lib.errors import AilexiaError, TaskError, UsageError
from lib.load_config import Settings
from lib.runtime.locks import acquire_task_lock, release_task_lock
from lib.runtime.run_log import close_abandoned_runs, log_run_end, log_run_start
from lib.task import CLOSED_STATUSES, get_task, mark_error

log = get_logger("runs")

# Statusy wpisu run_log, które run może zapisać na końcu.
RUN_LOG_STATUSES = ("completed", "paused", "cancelled", "resync", "error")


def run_outcome(stats: dict[str, Any], settings: Settings) -> tuple[str, str | None]:
    """Status wpisu ``run_log`` i komunikat z wyniku runu silnika.

    Zatrzymanie (``stopped``) daje ``cancelled`` albo ``paused``; wyczerpany budżet AI daje
    ``paused``; jawny ``outcome`` silnika (np. ``resync`` weryfikacji) jest używany, gdy jest znany.

    Args:
        stats: Statystyki zwrócone przez silnik.
        settings: Ustawienia (limit kosztu do komunikatu).

    Returns:
        Krotka ``(status, komunikat albo None)``.
    """
    stopped = stats.get("stopped")
    if stopped:
        return ("cancelled" if stopped == "cancelled" else "paused"), f"zatrzymano: {stopped}"
    if stats.get("budget_reached"):
        return "paused", f"osiągnięto limit kosztu AI_MAX_COST_USD={settings.ai_max_cost_usd}"
    outcome = stats.get("outcome") or "completed"
    return (outcome if outcome in RUN_LOG_STATUSES else "completed"), None


def run_with_task_lock(
    settings: Settings,
    id_task: int,
    kind: str,
    run_id: str | None,
    body: Callable[[MySQL, dict, float], dict],
    skip_closed: bool = False,
) -> dict[str, Any]:
    """Rama runu synchronizacji, weryfikacji i eksportu: blokada zadania, dziennik runu, błędy.

    ``body(db, task_row, started)`` wykonuje właściwą pracę i zwraca statystyki. Błąd zadania
    trafia do ``task.error_log`` (status ``error``); przerwanie z zewnątrz (SIGINT, zakończenie runu
    w UI Dagstera) kończy się jak pauza: niezatwierdzona partia jest wycofana, zadanie dostaje
    ``paused`` (``signal``) i da się je wznowić.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        kind: ``sync`` albo ``export`` (wpis ``run_log``).
        run_id: Identyfikator runu Dagstera.
        body: Funkcja wykonująca run.
        skip_closed: ``True`` = zadanie cancelled/archived kończy run bez błędu (``outcome``
            ``skipped``), np. weryfikacja po anulowaniu w trakcie skanu.

    Returns:
        Statystyki z ``body`` uzupełnione o ``duration_s``.

    Raises:
        UsageError: Nieznane zadanie albo status cancelled/archived.
        TaskBusyError: Inny run trzyma blokadę zadania.
        AilexiaError: Błąd zadania (po zapisaniu ``error``).
    """
    db = connect_local(settings)
    try:
        acquire_task_lock(db, id_task)
        try:
            task_row = get_task(db, id_task)
            db.commit()
            if task_row["status"] in CLOSED_STATUSES:
                if skip_closed:
                    return {"outcome": "skipped", "reason": f"zadanie ma status {task_row['status']}"}
                raise UsageError(f"zadanie {id_task} ma status {task_row['status']} - nie jest przetwarzane")
            # Trzymamy blokadę zadania: inny "running" sync/eksport tego zadania to trup po SIGKILL.
            close_abandoned_runs(db, id_task, ("sync", "export"))
            id_log = log_run_start(db, id_task, kind, run_id)
            started = time.monotonic()
            try:
                stats = body(db, task_row, started)
            except UsageError:
                raise
            except AilexiaError as exc:
                _record_error(settings, db, id_task, id_log, str(exc))
                raise
            except Exception as exc:
                if is_dropped(exc):
                    message = (
                        f"utracono połączenie z lokalną bazą MySQL w trakcie runu ({exc.__class__.__name__}: {exc}); "
                        "niezatwierdzona partia wycofana, następny run wznowi zadanie"
                    )
                else:
                    message = f"nieoczekiwany błąd: {exc.__class__.__name__}: {exc}"
                _record_error(settings, db, id_task, id_log, message)
                raise
            except BaseException:
                _record_interrupt(settings, db, id_task, id_log)
                raise
            stats["duration_s"] = round(time.monotonic() - started, 3)
            status, message = run_outcome(stats, settings)
            log_run_end(db, id_log, status, stats, message)
            return stats
        finally:
            release_task_lock(db, id_task)
    finally:
        db.close()


def run_with_operation_lock(
    settings: Settings,
    id_task: int,
    kind: str,
    run_id: str | None,
    lock_prefix: str,
    stats: Callable[[], dict[str, Any]],
    body: Callable[[MySQL, str], dict[str, Any]],
    liveness_prefix: str | None = None,
) -> dict[str, Any]:
    """Rama runu AI: blokada operacji (nie zadania), dziennik runu, błędy bez zmiany statusu zadania.

    Run dostaje identyfikator operacji (UUID) i trzyma ``GET_LOCK(lock_prefix + uuid)`` na osobnym
    połączeniu przez cały czas życia - zanim zapisze wpis ``run_log``, więc wpis ``running`` z wolną
    blokadą operacji to zawsze martwy run (zamykany tutaj przy starcie kolejnego runu).
    ``liveness_prefix``: druga blokada (``liveness_prefix`` + uuid) na połączeniu ``control``.
    Run żyje, dopóki trzyma którąkolwiek z dwóch - zabicie jednej sesji (np. ``KILL`` przez
    operatora) nie czyni go martwym dla innych runów; martwy jest dopiero, gdy obie są wolne.
    ``body(control, operation)`` wykonuje pracę na połączeniu ``control`` (bez autocommit) i zwraca
    statystyki; przy wyjątku wpis dostaje ``error`` ze statystykami zebranymi do tej chwili (``stats()``).

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        kind: Rodzaj wpisu ``run_log`` (``ai``).
        run_id: Identyfikator runu Dagstera.
        lock_prefix: Prefiks nazwy blokady operacji (też w rezerwacjach pozycji).
        stats: Funkcja zwracająca statystyki zebrane do tej chwili (słownik).
        body: Funkcja wykonująca run.

    Returns:
        Statystyki z ``body``.

    Raises:
        TaskError: Nie udało się założyć blokady operacji.
        AilexiaError: Błąd z ``body`` (po zamknięciu wpisu ``run_log``).
    """
    operation = str(uuid.uuid4())
    control = connect_local(settings, autocommit=False)
    lock_db: MySQL | None = None
    id_log: int | None = None
    try:
        lock_db = connect_local(settings, autocommit=True)
        if lock_db.query_value("SELECT GET_LOCK(%s, 0)", (lock_prefix + operation,)) != 1:
            raise TaskError(f"zadanie {id_task}: nie udało się założyć blokady operacji AI {operation}")
        # Po zerwaniu sesja nie łączy się po cichu ponownie (blokada przepadła): błąd, nie praca bez niej.
        lock_db.session_locks += 1
        prefixes: tuple[str, ...] = (lock_prefix,)
        if liveness_prefix is not None:
            if control.query_value("SELECT GET_LOCK(%s, 0)", (liveness_prefix + operation,)) != 1:
                raise TaskError(
                    f"zadanie {id_task}: nie udało się założyć blokady życia operacji AI {operation}"
                )
            control.session_locks += 1
            prefixes = (lock_prefix, liveness_prefix)
        # Blokady przed wpisem: wpis "running" z wolnymi blokadami operacji to zawsze martwy run.
        close_abandoned_runs(control, id_task, (kind,), prefixes)
        id_log = log_run_start(control, id_task, kind, run_id, operation)
        result = body(control, operation)
        status, message = run_outcome(result, settings)
        log_run_end(control, id_log, status, result, message)
        return result
    except BaseException as exc:
        if id_log is not None:
            try:
                log_run_end(control, id_log, "error", stats(), str(exc)[:2000])
            except Exception as log_exc:
                log.warning("zadanie %s: nie udało się zamknąć run_log: %s", id_task, log_exc)
        raise
    finally:
        if lock_db is not None:
            lock_db.close()  # zamknięcie sesji zwalnia GET_LOCK
        control.close()


def _record_error(settings: Settings, db: MySQL, id_task: int, id_log: int, message: str) -> None:
    """Zapisuje błąd runu: ``error`` + ``error_log`` w zadaniu i wpis ``run_log``.

    Gdy połączenie runu zostało zerwane (np. ``KILL`` sesji, restart serwera), zapis idzie
    świeżym połączeniem - inaczej zadanie zostałoby w ``in_progress`` bez przyczyny. Jeśli i to
    się nie uda (serwer niedostępny), zostaje ostrzeżenie w logu, a wyjątek runu idzie wyżej.
    """
    try:
        mark_error(db, id_task, message)
        log_run_end(db, id_log, "error", {}, message)
        return
    except Exception as exc:
        log.warning(
            "zadanie %s: połączenie runu nie działa (%s) - zapisuję błąd nowym połączeniem", id_task, exc
        )
    db.close()
    try:
        fresh = connect_local(settings)
        try:
            mark_error(fresh, id_task, message)
            log_run_end(fresh, id_log, "error", {}, message)
        finally:
            fresh.close()
    except Exception as exc:
        log.error("zadanie %s: nie udało się zapisać błędu runu (%s): %s", id_task, exc, message)


def _record_interrupt(settings: Settings, db: MySQL, id_task: int, id_log: int) -> None:
    """Zapisuje przerwanie runu jako pauzę (``signal``) świeżym połączeniem.

    Stare połączenie mogło zostać przerwane w połowie zapytania; zamknięcie go wycofuje
    niezatwierdzoną partię (stan zostaje spójny i wznawialny od ``last_processed_id``).
    """
    db.close()
    with contextlib.suppress(Exception):
        fresh = connect_local(settings, autocommit=True)
        try:
            fresh.execute(
                "UPDATE task SET status='paused', pause_reason='signal' WHERE id_task=%s "
                "AND status NOT IN ('cancelled','paused')",
                (id_task,),
            )
            fresh.execute(
                "UPDATE run_log SET status='paused', finished_at=NOW(3), message='przerwane z zewnątrz (sygnał)' "
                "WHERE id_run_log=%s",
                (id_log,),
            )
        finally:
            fresh.close()
    log.warning("zadanie %s: run przerwany z zewnątrz - zapisano pauzę (signal)", id_task)
