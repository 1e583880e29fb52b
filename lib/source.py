"""Źródło zadania: otwarcie połączenia, tabela i kolumny z katalogu, metoda hasha tekstu źródła.

Wspólne dla skanu (``lib/sync/engine.py``), weryfikacji (``lib/sync/verify.py``) i eksportu
(``lib/export/run.py``): żaden silnik nie pożycza tego od innego.
"""

from collections.abc import Callable
from typing import Any

from lib import db_remote
from lib.db_local import MySQL
from lib.db_utils import hash_function
from lib.errors import RemoteError, TaskError
from lib.load_config import Settings
from lib.task import get_connection_row, set_connection_status


def open_source(db: MySQL, task_row: dict[str, Any], settings: Settings) -> tuple[db_remote.RemoteConn, dict]:
    """Otwiera połączenie ze źródłem zadania i zapisuje stan połączenia.

    Args:
        db: Połączenie lokalne.
        task_row: Wiersz zadania.
        settings: Ustawienia.

    Returns:
        Krotka ``(połączenie źródłowe, wiersz database_connection)``.

    Raises:
        TaskError: Gdy połączenie jest wyłączone (``disabled``).
        RemoteError: Gdy źródło jest nieosiągalne (połączenie dostaje status ``error``).
    """
    conn_row = get_connection_row(db, task_row["id_database_connection"])
    db.commit()
    if conn_row["status"] == "disabled":
        raise TaskError(
            f"połączenie '{conn_row['alias']}' (id {conn_row['id_database_connection']}) jest wyłączone "
            "(status disabled); ustaw status active, aby synchronizować"
        )
    return connect_source(db, conn_row, settings), conn_row


def connect_source(db: MySQL, conn_row: dict[str, Any], settings: Settings) -> db_remote.RemoteConn:
    """Łączy ze źródłem opisanym wierszem ``database_connection`` i zapisuje stan połączenia.

    Udane połączenie ustawia ``active`` (wyłączonego nie włącza), nieudane ``error`` z powodem
    w ``last_error`` (bez hasła).

    Args:
        db: Połączenie lokalne.
        conn_row: Wiersz ``database_connection``.
        settings: Ustawienia.

    Returns:
        Otwarte połączenie ze źródłem.

    Raises:
        RemoteError: Źródło nieosiągalne, złe hasło.
        ConfigError: Brak klucza ``AILEXIA_SECRET_KEY`` albo zmiennej ``password_env``.
    """
    try:
        rconn = db_remote.connect(conn_row, settings)
    except RemoteError as exc:
        set_connection_status(db, conn_row["id_database_connection"], "error", str(exc))
        raise
    set_connection_status(db, conn_row["id_database_connection"], "active", None)
    return rconn


def exports_in_place(task_row: dict[str, Any]) -> bool:
    """Czy eksport zadania pisze do kolumny synchronizowanej (``export_column`` pusta lub ta sama)."""
    return (task_row.get("export_column") or task_row["column_name"]) == task_row["column_name"]


def resolve_task_target(rconn: db_remote.RemoteConn, task_row: dict[str, Any]) -> db_remote.Target:
    """Sprawdza w katalogu źródła tabelę, kolumnę, klucz, kolumnę eksportu i kolumnę kursora zadania."""
    extra = [task_row["export_column"]] if task_row.get("export_column") else []
    return db_remote.resolve_target(
        rconn,
        task_row["table_name"],
        task_row["column_name"],
        task_row.get("key_column"),
        extra,
        task_row.get("cursor_column"),
    )


def hasher(task_row: dict[str, Any]) -> Callable[[bytes], Any]:
    """Konstruktor hashlib metody zadania (``task.hash_method``, domyślnie sha256) dla ``db_utils.hash_text``."""
    return hash_function(task_row.get("hash_method") or "sha256")
