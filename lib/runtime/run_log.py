"""Dziennik runów ``run_log``: początek, koniec, porzucone wpisy i ostatni run zadania."""

import json
from typing import Any

from lib.db_local import MySQL
from lib.db_utils import get_logger

log = get_logger("runs")

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
