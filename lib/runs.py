"""Runy silników: blokady ``GET_LOCK``, dziennik ``run_log`` i obie ramy runu.

Rama runu to wspólna obudowa pracy silnika: blokada, wpis w ``run_log``, zamknięcie wpisu
wynikiem albo błędem. Są dwie:

* ``run_with_task_lock`` - synchronizacja, weryfikacja i eksport: jeden run zadania naraz
  (blokada zadania); błąd runu zapisuje też ``task.status='error'`` i ``error_log``;
* ``run_with_operation_lock`` - AI: wiele runów jednego zadania może pracować naraz, każdy
  trzyma blokadę swojej operacji (``operation_uuid``); status zadania się nie zmienia.

Obie budują wynik ``run_log`` tą samą funkcją ``run_outcome``.
"""

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil

from lib.db_local import MySQL, connect_local, is_dropped
from lib.db_utils import get_logger
from lib.errors import AilexiaError, TaskBusyError, TaskError, UsageError
from lib.load_config import Settings
from lib.task import CLOSED_STATUSES, get_task, mark_error

log = get_logger("runs")

ABANDONED_RUN_MESSAGE = (
    "run nie został zamknięty: jego proces zakończył się nagle (np. kill -9, utrata maszyny); "
    "wykryto przy starcie kolejnego runu"
)
# Statusy wpisu run_log, które run może zapisać na końcu.
RUN_LOG_STATUSES = ("completed", "paused", "cancelled", "resync", "error")


# --- blokady GET_LOCK -------------------------------------------------------------------


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
    with contextlib.suppress(Exception):  # połączenie mogło zginąć - blokada i tak zniknęła
        db.query_value("SELECT RELEASE_LOCK(%s)", (lock_name(db, id_task, kind),))


def is_task_locked(db: MySQL, id_task: int, kind: str = "task") -> bool:
    """Sprawdza, czy jakiś proces trzyma blokadę zadania (żywy run)."""
    return db.query_value("SELECT IS_USED_LOCK(%s)", (lock_name(db, id_task, kind),)) is not None


def locked_task_ids(db: MySQL, ids: list[int], chunk: int = 200) -> set[int]:
    """Zwraca zadania, których blokadę ``GET_LOCK`` ktoś trzyma (żywy run), porcjami po ``chunk``.

    Jedno ``SELECT IS_USED_LOCK(a), IS_USED_LOCK(b), ...`` na porcję zamiast zapytania na zadanie.
    """
    locked: set[int] = set()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        columns = ", ".join(f"IS_USED_LOCK(%s) AS l{i}" for i in range(len(part)))
        row = db.query_one(f"SELECT {columns}", tuple(lock_name(db, id_task) for id_task in part)) or {}
        locked.update(id_task for i, id_task in enumerate(part) if row.get(f"l{i}") is not None)
    if not db.autocommit:
        db.commit()
    return locked


# --- dziennik runów ---------------------------------------------------------------------


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
    db: MySQL,
    id_task: int,
    kinds: tuple[str, ...],
    operation_lock_prefix: str | tuple[str, ...] | None = None,
) -> int:
    """Zamyka wpisy ``run_log`` w stanie ``running``, których proces już nie żyje.

    Run zabity bez sprzątania (SIGKILL, utrata maszyny) zostawia wpis ``running``. Wołający
    wie, kiedy taki wpis jest martwy: sync i eksport trzymają blokadę zadania, więc każdy inny
    ``running`` tych rodzajów dla zadania jest martwy; run AI trzyma blokadę swojej operacji
    (``operation_lock_prefix`` + ``operation_uuid``; krotka = kilka blokad na osobnych sesjach), więc
    martwy jest ten, którego wszystkie blokady są wolne.
    Wpis dostaje ``error`` i komunikat; ``finished_at`` zostaje puste (chwila śmierci jest nieznana).

    Args:
        db: Połączenie (transakcja zatwierdzana tutaj).
        id_task: Zadanie.
        kinds: Rodzaje runów do sprawdzenia (``sync``, ``export``, ``ai``).
        operation_lock_prefix: Prefiks(y) blokad operacji AI; ``None`` = wołający trzyma blokadę zadania.

    Returns:
        Liczba zamkniętych wpisów.
    """
    marks = ", ".join(["%s"] * len(kinds))
    sql = f"SELECT id_run_log FROM run_log WHERE id_task=%s AND status='running' AND kind IN ({marks})"
    params: list[Any] = [id_task, *kinds]
    if operation_lock_prefix is not None:
        prefixes = (
            (operation_lock_prefix,) if isinstance(operation_lock_prefix, str) else operation_lock_prefix
        )
        sql += " AND operation_uuid IS NOT NULL"
        for prefix in prefixes:
            sql += " AND IS_FREE_LOCK(CONCAT(%s, operation_uuid)) = 1"
            params.append(prefix)
    ids = [int(row["id_run_log"]) for row in db.query(sql, tuple(params))]
    if ids:
        id_marks = ", ".join(["%s"] * len(ids))
        db.execute(
            f"UPDATE run_log SET status='error', message=%s WHERE status='running' AND id_run_log IN ({id_marks})",
            (ABANDONED_RUN_MESSAGE, *ids),
        )
        log.warning(
            "zadanie %s: zamknięto porzucone wpisy run_log %s (proces runu nie żyje)",
            id_task,
            ", ".join(str(i) for i in ids),
        )
    db.commit()
    return len(ids)


def log_run_end(
    db: MySQL, id_run_log: int, status: str, stats: dict[str, Any], message: str | None = None
) -> None:
    """Zamyka wpis ``run_log``: status, czas trwania, liczniki (JSON) i komunikat."""
    db.rollback()
    db.execute(
        "UPDATE run_log SET status=%s, finished_at=NOW(3), "
        "duration_ms=TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3))/1000, stats=%s, message=%s "
        "WHERE id_run_log=%s",
        (status, json.dumps(stats, default=str, ensure_ascii=False), message, id_run_log),
    )
    db.commit()


def last_run(db: MySQL, id_task: int, kind: str) -> dict[str, Any] | None:
    """Ostatni wpis ``run_log`` zadania danego rodzaju (status, czasy, statystyki JSON) albo ``None``.

    Czyta indeks ``(id_task, started_at)``; zatwierdza odczyt.
    """
    row = db.query_one(
        "SELECT id_run_log, run_id, status, started_at, finished_at, duration_ms, stats, message FROM run_log "
        "WHERE id_task=%s AND kind=%s ORDER BY started_at DESC, id_run_log DESC LIMIT 1",
        (id_task, kind),
    )
    db.commit()
    return row


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


# --- ramy runów -------------------------------------------------------------------------


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


def operation_lock_held(db: MySQL, lock_prefix: str, operation: str) -> bool:
    """Czy blokada operacji (``lock_prefix`` + uuid) jest nadal trzymana przez jakąś sesję.

    Run sprawdza tak (ze swojej innej sesji), czy nikt nie zabił sesji z jego blokadą operacji.
    """
    return db.query_value("SELECT IS_USED_LOCK(%s)", (lock_prefix + operation,)) is not None


def run_with_operation_lock(
    settings: Settings,
    id_task: int,
    kind: str,
    run_id: str | None,
    lock_prefix: str,
    stats: dict[str, Any],
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
    ``stats``; przy wyjątku wpis dostaje ``error`` ze statystykami zebranymi do tej chwili.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        kind: Rodzaj wpisu ``run_log`` (``ai``).
        run_id: Identyfikator runu Dagstera.
        lock_prefix: Prefiks nazwy blokady operacji (też w rezerwacjach pozycji).
        stats: Słownik statystyk, który ``body`` wypełnia w trakcie pracy.
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
                log_run_end(control, id_log, "error", stats, str(exc)[:2000])
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


# --- tożsamość procesu runu (runy skryptów w instancji Dagstera) ------------------------


def _process_started(pid: int) -> str | None:
    """Chwila startu procesu (psutil) jako tekst albo ``None``, gdy procesu nie ma."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:
        return ""  # istnieje, ale nie da się go odczytać


def process_token(pid: int | None = None) -> str:
    """Tożsamość procesu ``host:pid:start`` do tagu runu; start odróżnia proces od późniejszego z tym pid."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_started(pid) or ''}"


def process_alive(token: str) -> bool | None:
    """Czy proces z ``process_token`` jeszcze żyje.

    Returns:
        ``True``/``False`` na tej samej maszynie; ``None``, gdy token jest z innej maszyny albo
        nieczytelny (tego nie da się sprawdzić stąd).
    """
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid_text, start = parts
    if host != socket.gethostname():
        return None
    current = _process_started(int(pid_text))
    if current is None:
        return False
    # Ten sam pid, inna chwila startu = inny (późniejszy) proces: nasz nie żyje.
    return not (start and current and current != start)
