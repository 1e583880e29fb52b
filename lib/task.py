"""Cykl życia wiersza ``task``: odczyt, etapy i postęp, przejścia statusów, stan połączenia źródła.

Blokady runów są w ``lib/runtime/locks.py``, dziennik ``run_log`` w ``lib/runtime/run_log.py``; wiersze pozycji (i liczniki
przeliczane z pozycji) w ``lib/task_item.py``; wybór zadań do uruchomienia w ``lib/runtime/scheduling.py``.
"""

from typing import Any

from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.errors import UsageError

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

# Statusy, których skrypty nie ruszają (operator zamknął zadanie).
CLOSED_STATUSES = ("cancelled", "archived")


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


# --- operacja synchronizacji (skan i weryfikacja) ----------------------------------------


def start_sync_operation(db: MySQL, id_task: int, marker: str, run_id: str | None) -> None:
    """Zaczyna nową operację synchronizacji: zeruje liczniki i postęp, zapisuje znacznik operacji."""
    db.execute(
        "UPDATE task SET status='in_progress', pause_reason=NULL, error_log=NULL, sync_stage='init', sync_progress=0, "
        "resume_marker=%s, last_processed_id=NULL, last_processed_key=NULL, scan_ord=NULL, records_total=0, records_fetched=0, records_processed=0, "
        "records_new=0, records_updated=0, records_deleted=0, started_at=NOW(), finished_at=NULL, total_time_ms=0, "
        "run_id=%s WHERE id_task=%s",
        (marker, run_id, id_task),
    )
    db.commit()


def resume_sync_operation(db: MySQL, id_task: int, run_id: str | None) -> None:
    """Wznawia przerwaną operację synchronizacji (liczniki i pozycja w źródle zostają)."""
    db.execute(
        "UPDATE task SET status='in_progress', pause_reason=NULL, error_log=NULL, finished_at=NULL, run_id=%s "
        "WHERE id_task=%s",
        (run_id, id_task),
    )
    db.commit()


def record_source_total(db: MySQL, id_task: int, total: int, work_ms: int) -> None:
    """Zapisuje liczbę wierszy źródła; postęp 5% oznacza, że ta liczba jest zapisana (wznowienie jej nie liczy)."""
    db.execute(
        "UPDATE task SET records_total=%s, sync_progress=5, sync_stage='fetch', total_time_ms=total_time_ms+%s "
        "WHERE id_task=%s",
        (total, work_ms, id_task),
    )
    db.commit()


def record_scan_batch(
    db: MySQL,
    id_task: int,
    position: tuple[str | None, int | None, int | None],
    scanned: int,
    new: int,
    updated: int,
    deleted: int,
    progress: float,
    stage: str,
    work_ms: int,
) -> None:
    """Dopisuje wynik partii skanu do zadania (w transakcji partii, razem z pozycjami).

    Pozycja w źródle (``last_processed_key``, ``last_processed_id``, ``scan_ord``) zapisana w tej
    samej transakcji co pozycje partii: wznowienie zaczyna dokładnie za zatwierdzonym kluczem,
    a liczniki opisują całą operację.

    Args:
        db: Połączenie (transakcja partii).
        id_task: Zadanie.
        position: ``(remote_key ostatniego wiersza, jego remote_id albo None, jego source_ord)``.
        scanned: Wiersze źródła w partii.
        new: Nowe (i przywrócone) pozycje.
        updated: Pozycje ze zmienionym tekstem.
        deleted: Pozycje oznaczone jako usunięte.
        progress: Postęp (nigdy w dół).
        stage: Etap odpowiadający postępowi.
        work_ms: Czas pracy partii.
    """
    last_key, last_id, last_ord = position
    db.execute(
        "UPDATE task SET last_processed_key=%s, last_processed_id=%s, scan_ord=%s, "
        "records_fetched=records_fetched+%s, records_processed=records_processed+%s, records_new=records_new+%s, "
        "records_updated=records_updated+%s, records_deleted=records_deleted+%s, "
        "sync_progress=GREATEST(sync_progress, %s), sync_stage=%s, total_time_ms=total_time_ms+%s "
        "WHERE id_task=%s",
        (
            last_key,
            last_id,
            last_ord,
            scanned,
            scanned,
            new,
            updated,
            deleted,
            progress,
            stage,
            work_ms,
            id_task,
        ),
    )


def restart_scan_position(db: MySQL, id_task: int, marker: str) -> None:
    """Skan zaczyna się od początku źródła w tej samej operacji (nowa numeracja porządku źródła)."""
    db.execute(
        "UPDATE task SET resume_marker=%s, last_processed_key=NULL, last_processed_id=NULL, scan_ord=NULL "
        "WHERE id_task=%s",
        (marker, id_task),
    )
    db.commit()


def set_cursor_value(db: MySQL, id_task: int, value: str | None) -> None:
    """Zapamiętuje wartość kursora resyncu (największy kursor źródła na starcie zakończonego skanu)."""
    db.execute("UPDATE task SET cursor_value=%s WHERE id_task=%s", (value, id_task))
    db.commit()


def set_resume_marker(db: MySQL, id_task: int, marker: str) -> None:
    """Zapisuje znacznik operacji (``scan:…`` w trakcie skanu, ``verify:…`` po zatwierdzonym skanie)."""
    db.execute("UPDATE task SET resume_marker=%s WHERE id_task=%s", (marker, id_task))
    db.commit()


def start_verify(db: MySQL, id_task: int, run_id: str | None) -> None:
    """Status ``verifying``, etap verify, postęp co najmniej 90%."""
    db.execute(
        "UPDATE task SET status='verifying', sync_stage='verify', sync_progress=GREATEST(sync_progress, 90), run_id=%s "
        "WHERE id_task=%s",
        (run_id, id_task),
    )
    db.commit()


def raise_progress(db: MySQL, id_task: int, progress: float) -> None:
    """Podnosi ``sync_progress`` (nigdy w dół)."""
    db.execute(
        "UPDATE task SET sync_progress=GREATEST(sync_progress, %s) WHERE id_task=%s", (progress, id_task)
    )
    db.commit()


def finish_sync(db: MySQL, id_task: int, work_ms: int, resync_reason: str | None = None) -> None:
    """Kończy operację synchronizacji: ``completed`` (albo ``resync`` z powodem), etap done, 100%.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        work_ms: Czas pracy weryfikacji do dopisania do ``total_time_ms``.
        resync_reason: ``None`` = zgodna kopia (``completed``, o ile operator nie zmienił statusu
            w trakcie; ``in_learning``, gdy pilot zadania czeka na ocenę); inaczej źródło zmieniło się w trakcie i zadanie czeka na kolejny run.
    """
    if resync_reason is None:
        db.execute(
            "UPDATE task SET status=IF(status='verifying',IF(EXISTS(SELECT 1 FROM ai_pilot p WHERE p.id_task=task.id_task "
            "AND p.status='in_learning'),'in_learning','completed'),status), sync_stage='done', sync_progress=100, "
            "resume_marker=NULL, finished_at=NOW(), total_time_ms=total_time_ms+%s, error_log=NULL WHERE id_task=%s",
            (work_ms, id_task),
        )
    else:
        db.execute(
            "UPDATE task SET status='resync', sync_stage='done', sync_progress=100, resume_marker=NULL, "
            "finished_at=NOW(), total_time_ms=total_time_ms+%s, error_log=%s WHERE id_task=%s",
            (work_ms, resync_reason, id_task),
        )
    db.commit()
