"""Blokady ``GET_LOCK`` runów: nazwy blokad zadań i operacji oraz ich zakładanie i sprawdzanie.

Blokada żyje tyle, co sesja MySQL, która ją trzyma: proces, który zginął, zwalnia ją sam.
"""

import contextlib
import hashlib

from lib.db_local import MySQL
from lib.errors import TaskBusyError


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


def operation_lock_held(db: MySQL, lock_prefix: str, operation: str) -> bool:
    """Czy blokada operacji (``lock_prefix`` + uuid) jest nadal trzymana przez jakąś sesję.

    Run sprawdza tak (ze swojej innej sesji), czy nikt nie zabił sesji z jego blokadą operacji.
    """
    return db.query_value("SELECT IS_USED_LOCK(%s)", (lock_prefix + operation,)) is not None
