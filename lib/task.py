"""Cykl życia wiersza ``task``: odczyt, blokady, etapy i postęp, statusy, liczniki, dziennik runów."""

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import pymysql

from lib.db_local import MySQL, connect_local, error_code
from lib.db_utils import get_logger
from lib.errors import AilexiaError, TaskBusyError, UsageError

log = get_logger("task")

# Zakresy postępu etapów synchronizacji (specyfikacja).
STAGE_RANGES = {
    "init": (0.0, 5.0),
    "fetch": (5.0, 40.0),
    "compare": (40.0, 70.0),
    "update": (70.0, 90.0),
    "verify": (90.0, 98.0),
    "done": (100.0, 100.0),
}

# Kody MySQL zerwanego połączenia (gone away, lost during query, lost).
_LOCAL_DROPPED = (2006, 2013, 2055)
# Statusy, których skrypty nie ruszają (operator zamknął zadanie).
CLOSED_STATUSES = ("cancelled", "archived")
# Statusy zadań, które tryb cron i sensor podejmują.
PICKUP_STATUSES = ("new", "resync")


def get_task(db: MySQL, id_task: int) -> dict[str, Any]:
    """Zwraca wiersz zadania.

    Args:
        db: Połączenie lokalne.
        id_task: Identyfikator zadania.

    Returns:
        Wiersz ``task`` jako słownik.

    Raises:
        UsageError: Gdy zadanie nie istnieje.
    """
    row = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    if row is None:
        raise UsageError(f"zadanie {id_task} nie istnieje w tabeli task")
    return row


def get_connection_row(db: MySQL, id_connection: int) -> dict[str, Any]:
    """Zwraca wiersz ``database_connection``.

    Raises:
        UsageError: Gdy połączenie nie istnieje.
    """
    row = db.query_one("SELECT * FROM database_connection WHERE id_database_connection=%s", (id_connection,))
    if row is None:
        raise UsageError(f"połączenie {id_connection} nie istnieje w tabeli database_connection")
    return row


def stage_for_progress(progress: float) -> str:
    """Zwraca nazwę etapu, w którego zakresie leży postęp (5-90% przy przetwarzaniu strumieniowym)."""
    if progress < STAGE_RANGES["fetch"][0]:
        return "init"
    if progress < STAGE_RANGES["compare"][0]:
        return "fetch"
    if progress < STAGE_RANGES["update"][0]:
        return "compare"
    if progress < STAGE_RANGES["verify"][0]:
        return "update"
    if progress < 100.0:
        return "verify"
    return "done"


def lock_name(db: MySQL, id_task: int, kind: str = "task") -> str:
    """Zwraca nazwę blokady ``GET_LOCK`` zadania, unikalną w obrębie serwera (z nazwą bazy)."""
    base = f"{db.database}:{kind}:{id_task}"
    if len(base) <= 60:
        return f"ax:{base}"
    return "ax:" + hashlib.sha1(base.encode()).hexdigest()


def acquire_task_lock(db: MySQL, id_task: int, wait_s: int = 0, kind: str = "task") -> None:
    """Zakłada blokadę zadania (``GET_LOCK``) na połączeniu ``db`` - runy jednego zadania się nie nakładają.

    Blokada znika sama, gdy połączenie się zamknie (np. proces zginął).

    Args:
        db: Połączenie, które będzie trzymać blokadę przez cały run.
        id_task: Zadanie.
        wait_s: Ile sekund czekać na zwolnienie blokady.
        kind: Rodzaj blokady (``task`` dla sync i eksportu).

    Raises:
        TaskBusyError: Gdy inny proces trzyma blokadę.
    """
    got = db.query_value("SELECT GET_LOCK(%s, %s)", (lock_name(db, id_task, kind), wait_s))
    if got != 1:
        raise TaskBusyError(f"zadanie {id_task} jest właśnie przetwarzane przez inny run; spróbuj później")
    db.session_locks += 1


def release_task_lock(db: MySQL, id_task: int, kind: str = "task") -> None:
    """Zwalnia blokadę zadania (bez błędu, gdy połączenie już nie istnieje)."""
    db.session_locks = max(0, db.session_locks - 1)
    try:
        db.query_value("SELECT RELEASE_LOCK(%s)", (lock_name(db, id_task, kind),))
    except Exception:  # połączenie mogło zginąć - blokada i tak zniknęła
        pass


def is_task_locked(db: MySQL, id_task: int, kind: str = "task") -> bool:
    """Sprawdza, czy jakiś proces trzyma blokadę zadania (żywy run)."""
    return db.query_value("SELECT IS_USED_LOCK(%s)", (lock_name(db, id_task, kind),)) is not None


def lock_task_row(db: MySQL, id_task: int) -> dict[str, Any]:
    """Blokuje wiersz zadania w bieżącej transakcji (``FOR UPDATE``) i zwraca jego status.

    Transakcja wsadowa zaczyna od wiersza zadania, więc ``UPDATE task`` operatora czeka,
    zamiast kończyć się zakleszczeniem.
    """
    row = db.query_one("SELECT status, pause_reason FROM task WHERE id_task=%s FOR UPDATE", (id_task,))
    if row is None:
        raise UsageError(f"zadanie {id_task} zostało usunięte w trakcie pracy")
    return row


def mark_error(db: MySQL, id_task: int, message: str) -> None:
    """Ustawia zadanie w stan ``error`` z komunikatem w ``error_log`` (osobna transakcja)."""
    db.rollback()
    db.execute(
        "UPDATE task SET status='error', error_log=%s, finished_at=NOW() WHERE id_task=%s",
        (message[:60000], id_task),
    )
    db.commit()


def mark_paused(db: MySQL, id_task: int, reason: str) -> None:
    """Kończy run wstrzymaniem: ``paused`` z powodem; zadanie anulowane zostaje ``cancelled``.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        reason: ``manual``, ``time_limit``, ``signal`` albo ``cancelled``.
    """
    db.rollback()
    if reason == "cancelled":
        db.execute("UPDATE task SET finished_at=NOW() WHERE id_task=%s", (id_task,))
    else:
        db.execute(
            "UPDATE task SET status='paused', pause_reason=%s WHERE id_task=%s AND status<>'cancelled'",
            (reason, id_task),
        )
    db.commit()


def set_connection_status(db: MySQL, id_connection: int, status: str, error: str | None = None) -> None:
    """Zapisuje stan połączenia źródłowego (``active`` po udanym połączeniu, ``error`` po błędzie)."""
    db.execute(
        "UPDATE database_connection SET status=%s, last_error=%s WHERE id_database_connection=%s AND status<>'disabled'",
        (status, error, id_connection),
    )
    db.commit()


def refresh_review_counters(db: MySQL, id_task: int) -> dict[str, int]:
    """Przelicza ``records_approved/rejected/exported`` z pozycji zadania.

    Zatwierdzone liczymy razem z już wyeksportowanymi i konfliktami (każda z nich była
    zatwierdzona przez człowieka).

    Returns:
        Słownik z nowymi wartościami liczników.
    """
    row = db.query_one(
        "SELECT COALESCE(SUM(approved_at IS NOT NULL AND status IN ('accepted','exported','conflict')),0) AS approved, "
        "COALESCE(SUM(status='rejected'),0) AS rejected, COALESCE(SUM(status='exported'),0) AS exported "
        "FROM task_item WHERE id_task=%s AND deleted_at IS NULL",
        (id_task,),
    )
    counters = {k: int(v or 0) for k, v in (row or {}).items()}
    db.execute(
        "UPDATE task SET records_approved=%s, records_rejected=%s, records_exported=%s WHERE id_task=%s",
        (counters.get("approved", 0), counters.get("rejected", 0), counters.get("exported", 0), id_task),
    )
    db.commit()
    return counters


ABANDONED_RUN_MESSAGE = (
    "run nie został zamknięty: jego proces zakończył się nagle (np. kill -9, utrata maszyny); "
    "wykryto przy starcie kolejnego runu"
)


def log_run_start(
    db: MySQL, id_task: int, kind: str, run_id: str | None, operation_uuid: str | None = None
) -> int:
    """Zapisuje początek runu w ``run_log`` i zwraca id wpisu."""
    db.execute(
        "INSERT INTO run_log (id_task, kind, run_id, operation_uuid) VALUES (%s, %s, %s, %s)",
        (id_task, kind, run_id, operation_uuid),
    )
    id_run_log = int(db.last_insert_id)
    db.commit()
    return id_run_log


def close_abandoned_runs(
    db: MySQL, id_task: int, kinds: tuple[str, ...], operation_lock_prefix: str | None = None
) -> int:
    """Zamyka wpisy ``run_log`` w stanie ``running``, których proces już nie żyje.

    Run zabity bez sprzątania (SIGKILL, utrata maszyny) zostawia wpis ``running``. Wołający
    wie, kiedy taki wpis jest martwy: sync i eksport trzymają blokadę zadania, więc każdy inny
    ``running`` tych rodzajów dla zadania jest martwy; run AI trzyma blokadę swojej operacji
    (``operation_lock_prefix`` + ``operation_uuid``), więc martwy jest ten, którego blokada jest wolna.
    Wpis dostaje ``error`` i komunikat; ``finished_at`` zostaje puste (chwila śmierci jest nieznana).

    Args:
        db: Połączenie (transakcja zatwierdzana tutaj).
        id_task: Zadanie.
        kinds: Rodzaje runów do sprawdzenia (``sync``, ``export``, ``ai``).
        operation_lock_prefix: Prefiks blokady operacji AI; ``None`` = wołający trzyma blokadę zadania.

    Returns:
        Liczba zamkniętych wpisów.
    """
    marks = ", ".join(["%s"] * len(kinds))
    sql = f"SELECT id_run_log FROM run_log WHERE id_task=%s AND status='running' AND kind IN ({marks})"
    params: list[Any] = [id_task, *kinds]
    if operation_lock_prefix is not None:
        sql += " AND operation_uuid IS NOT NULL AND IS_FREE_LOCK(CONCAT(%s, operation_uuid)) = 1"
        params.append(operation_lock_prefix)
    ids = [int(row["id_run_log"]) for row in db.query(sql, tuple(params))]
    if ids:
        id_marks = ", ".join(["%s"] * len(ids))
        db.execute(
            f"UPDATE run_log SET status='error', message=%s WHERE status='running' AND id_run_log IN ({id_marks})",
            (ABANDONED_RUN_MESSAGE, *ids),
        )
        log.warning("zadanie %s: zamknięto porzucone wpisy run_log %s (proces runu nie żyje)", id_task, ids)
    db.commit()
    return len(ids)


def log_run_end(
    db: MySQL, id_run_log: int, status: str, stats: dict[str, Any], message: str | None = None
) -> None:
    """Zamyka wpis ``run_log``: status, czas trwania, liczniki (JSON) i komunikat."""
    db.rollback()
    db.execute(
        "UPDATE run_log SET status=%s, finished_at=NOW(3), duration_ms=TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3))/1000, "
        "stats=%s, message=%s WHERE id_run_log=%s",
        (status, json.dumps(stats, default=str, ensure_ascii=False), message, id_run_log),
    )
    db.commit()


def list_tasks_by_status(db: MySQL, statuses: tuple[str, ...]) -> list[int]:
    """Zwraca id zadań o podanych statusach, rosnąco."""
    marks = ", ".join(["%s"] * len(statuses))
    rows = db.query(f"SELECT id_task FROM task WHERE status IN ({marks}) ORDER BY id_task", statuses)
    return [int(r["id_task"]) for r in rows]


def tasks_for_cron(db: MySQL) -> list[int]:
    """Zadania do podjęcia przez tryb cron (``python sync.py`` bez id).

    Są to: statusy ``new`` i ``resync``; ``paused`` z powodu limitu czasu albo sygnału (nigdy
    ręczna pauza); osierocone ``queued``/``in_progress``/``verifying``, których blokada jest wolna
    (run, który je trzymał, nie żyje).

    Returns:
        Lista id zadań rosnąco.
    """
    rows = db.query(
        "SELECT id_task, status FROM task WHERE status IN ('new','resync') "
        "OR (status='paused' AND pause_reason IN ('time_limit','signal')) "
        "OR status IN ('queued','in_progress','verifying') ORDER BY id_task"
    )
    db.commit()
    picked = []
    for row in rows:
        if row["status"] in ("queued", "in_progress", "verifying") and is_task_locked(db, row["id_task"]):
            continue
        picked.append(int(row["id_task"]))
    return picked


def run_with_task_lock(
    settings: dict[str, Any],
    id_task: int,
    kind: str,
    run_id: str | None,
    body: Callable[[MySQL, dict, float], dict],
    skip_closed: bool = False,
) -> dict[str, Any]:
    """Wspólna rama runu synchronizacji i eksportu: blokada zadania, dziennik runu, błędy.

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
                if isinstance(exc, pymysql.err.InterfaceError) or error_code(exc) in _LOCAL_DROPPED:
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
            outcome = stats.get("outcome") or ("paused" if stats.get("stopped") else "completed")
            if stats.get("stopped") == "cancelled":
                outcome = "cancelled"
            known = ("completed", "paused", "cancelled", "resync", "error")
            log_run_end(db, id_log, outcome if outcome in known else "completed", stats)
            return stats
        finally:
            release_task_lock(db, id_task)
    finally:
        db.close()


def _record_error(settings: dict[str, Any], db: MySQL, id_task: int, id_log: int, message: str) -> None:
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


def _record_interrupt(settings: dict[str, Any], db: MySQL, id_task: int, id_log: int) -> None:
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
