"""Blokady ``GET_LOCK`` runów: nazwy blokad zadań i operacji oraz ich zakładanie i sprawdzanie.

Blokada żyje tyle, co sesja MySQL, która ją trzyma: proces, który zginął, zwalnia ją sam.
"""

import contextlib
import hashlib
from typing import Any

from lib.db_local import MySQL
from lib.errors import TaskBusyError

# Wspólny początek nazw blokad projektu i limit długości nazwy ``GET_LOCK`` w MariaDB/MySQL.
LOCK_NAMESPACE = "ailexia"
MAX_LOCK_NAME = 64


def lock_name(kind: str, key: str = "", database: str | None = None) -> str:
    """Jedyne miejsce, które buduje nazwę blokady ``GET_LOCK``: ``ailexia:<kind>:[<baza>:]<key>``.

    Nazwa z bazą lokalną (``database``) jest unikalna w obrębie serwera: dwie instalacje na jednym
    MySQL się nie blokują. Nazwa dłuższa niż 64 znaki (limit serwera) zamienia część po rodzaju
    na skrót SHA-1. ``lock_name(kind)`` (pusty klucz) to prefiks, do którego SQL dokleja UUID
    operacji (``CONCAT(prefiks, operation_uuid)``) - daje to samo, co ``lock_name(kind, uuid)``.

    Args:
        kind: Rodzaj blokady (``task``, ``export``, ``ai_op``, ``ai_live``, ``ai_slot``...).
        key: Klucz w obrębie rodzaju (zadanie, UUID operacji, numer miejsca).
        database: Nazwa bazy lokalnej albo ``None`` dla nazw unikalnych bez niej (UUID, serwer modelu).

    Returns:
        Nazwa blokady, najwyżej ``MAX_LOCK_NAME`` znaków.
    """
    prefix = f"{LOCK_NAMESPACE}:{kind}:"
    rest = f"{database}:{key}" if database is not None else key
    if len(prefix) + len(rest) <= MAX_LOCK_NAME:
        return prefix + rest
    return prefix + hashlib.sha1(rest.encode("utf-8")).hexdigest()


def task_lock_name(db: MySQL, id_task: int, kind: str = "task") -> str:
    """Nazwa blokady ``GET_LOCK`` zadania, unikalna w obrębie serwera (z nazwą bazy połączenia)."""
    return lock_name(kind, str(id_task), db.database)


def model_slot_names(model_row: dict[str, Any], cap: int) -> list[str]:
    """Nazwy ``cap`` blokad limitu ``AI_MODEL_CONCURRENCY`` serwera modelu (``lib/ai/model_cap.py``).

    Bez nazwy bazy: limit dotyczy serwera modelu (ten sam ``base_url`` i ``model``), więc liczą się
    runy wszystkich instalacji korzystających z tego samego MySQL.
    """
    raw = f"{model_row.get('base_url') or ''}\n{model_row['model']}"
    key = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]
    return [lock_name("ai_slot", f"{key}_{n}") for n in range(cap)]


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
    got = db.query_value("SELECT GET_LOCK(%s, %s)", (task_lock_name(db, id_task, kind), wait_s))
    if got != 1:
        raise TaskBusyError(f"zadanie {id_task} jest właśnie przetwarzane przez inny run; spróbuj później")
    db.session_locks += 1


def release_task_lock(db: MySQL, id_task: int, kind: str = "task") -> None:
    """Zwalnia blokadę zadania (bez błędu, gdy połączenie już nie istnieje)."""
    db.session_locks = max(0, db.session_locks - 1)
    with contextlib.suppress(Exception):  # połączenie mogło zginąć - blokada i tak zniknęła
        db.query_value("SELECT RELEASE_LOCK(%s)", (task_lock_name(db, id_task, kind),))


def is_task_locked(db: MySQL, id_task: int, kind: str = "task") -> bool:
    """Sprawdza, czy jakiś proces trzyma blokadę zadania (żywy run)."""
    return db.query_value("SELECT IS_USED_LOCK(%s)", (task_lock_name(db, id_task, kind),)) is not None


def locked_task_ids(db: MySQL, ids: list[int], chunk: int = 200) -> set[int]:
    """Zwraca zadania, których blokadę ``GET_LOCK`` ktoś trzyma (żywy run), porcjami po ``chunk``.

    Jedno ``SELECT IS_USED_LOCK(a), IS_USED_LOCK(b), ...`` na porcję zamiast zapytania na zadanie.
    """
    locked: set[int] = set()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        columns = ", ".join(f"IS_USED_LOCK(%s) AS l{i}" for i in range(len(part)))
        row = db.query_one(f"SELECT {columns}", tuple(task_lock_name(db, id_task) for id_task in part)) or {}
        locked.update(id_task for i, id_task in enumerate(part) if row.get(f"l{i}") is not None)
    if not db.autocommit:
        db.commit()
    return locked


def operation_lock_held(db: MySQL, lock_prefix: str, operation: str) -> bool:
    """Czy blokada operacji (``lock_prefix`` + uuid, prefiks z ``lock_name(kind)``) jest nadal trzymana.

    Run sprawdza tak (ze swojej innej sesji), czy nikt nie zabił sesji z jego blokadą operacji.
    """
    return db.query_value("SELECT IS_USED_LOCK(%s)", (lock_prefix + operation,)) is not None
