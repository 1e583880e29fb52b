"""Dziennik decyzji przeglądu (tabela ``review_log``): kto, kiedy, co zmienił i jak to cofnąć.

Osobny moduł, jak ``run_log`` w ``lib/runtime/run_log.py``: to własna tabela z własnym cyklem życia
(dopisywany dziennik i stos cofania sesji strony przeglądu), a nie wiersz pozycji. Każda decyzja
człowieka - z terminala i ze strony - dopisuje tu wpis w tej samej transakcji, która zmienia
pozycję (``lib/task_item.py``), więc dziennik i pozycje nie rozchodzą się.

Funkcje nie zatwierdzają transakcji: rządzi nią wołający (``lib/review/decisions.py``).
"""

import json
from typing import Any

from lib.db_local import MySQL

_COLUMNS = (
    "id_task",
    "id_task_item",
    "action",
    "reviewer",
    "session",
    "status_before",
    "status_after",
    "approved_by_before",
    "approved_at_before",
    "export_error_before",
    "hash_before",
    "hash_after",
    "text_before",
    "text_after",
    "hunks",
    "undoes",
)
_INSERT = f"INSERT INTO review_log ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"


def record_decisions(
    db: MySQL,
    entries: list[tuple[dict[str, Any], str, str, dict[str, Any] | None]],
    by: str,
    session: str | None,
) -> None:
    """Dopisuje decyzje do dziennika w bieżącej transakcji (jedno wielowierszowe INSERT).

    Args:
        db: Połączenie w transakcji, która zmienia pozycje.
        entries: ``(wiersz przed zmianą, akcja, status po, zmiana tekstu albo None)``; wiersz ma
            kolumny ``task_item.DECISION_COLUMNS``; zmiana tekstu to słownik ``text``, ``hash``
            i opcjonalnie ``hunks`` (numery przyjętych zmian).
        by: Kto decyduje.
        session: Sesja strony przeglądu albo ``None`` (terminal).
    """
    rows = []
    for row, action, status_after, text_change in entries:
        change = text_change or {}
        hunks = change.get("hunks")
        rows.append(
            (
                row["id_task"],
                row["id_task_item"],
                action,
                by,
                session,
                row["status"],
                status_after,
                row.get("approved_by"),
                row.get("approved_at"),
                row.get("export_error"),
                row.get("local_hash"),
                change.get("hash", row.get("local_hash")),
                row.get("text_corrected") if change else None,
                change.get("text"),
                json.dumps(hunks) if hunks is not None else None,
                None,
            )
        )
    if rows:
        db.executemany(_INSERT, rows)


def last_undoable(db: MySQL, id_task: int, session: str) -> dict[str, Any] | None:
    """Blokuje i zwraca ostatni niecofnięty wpis decyzji tej sesji w zadaniu (albo ``None``).

    Czyta indeks ``(session, id_task, undone_at)`` od końca.
    """
    return db.query_one(
        "SELECT * FROM review_log WHERE session=%s AND id_task=%s AND undone_at IS NULL AND action<>'undo' "
        "ORDER BY id_review_log DESC LIMIT 1 FOR UPDATE",
        (session, id_task),
    )


def record_undo(db: MySQL, entry: dict[str, Any], row: dict[str, Any], by: str, session: str) -> None:
    """Zapisuje cofnięcie wpisu ``entry`` (nowy wpis ``undo``) i oznacza wpis jako cofnięty.

    Args:
        db: Połączenie w transakcji, która przywraca pozycję.
        entry: Cofany wpis (z ``last_undoable``).
        row: Wiersz pozycji przed cofnięciem (kolumny ``task_item.DECISION_COLUMNS``).
        by: Kto cofa.
        session: Sesja strony przeglądu.
    """
    text_changed = entry["text_after"] is not None
    db.execute(
        _INSERT,
        (
            entry["id_task"],
            entry["id_task_item"],
            "undo",
            by,
            session,
            row["status"],
            entry["status_before"],
            row["approved_by"],
            row["approved_at"],
            row["export_error"],
            row["local_hash"],
            entry["hash_before"],
            row["text_corrected"] if text_changed else None,
            entry["text_before"] if text_changed else None,
            None,
            entry["id_review_log"],
        ),
    )
    db.execute("UPDATE review_log SET undone_at=NOW(3) WHERE id_review_log=%s", (entry["id_review_log"],))
