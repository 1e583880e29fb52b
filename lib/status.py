"""Widok stanu zadań dla operatora (``python sync.py --status``): tabela w terminalu albo JSON."""

import json
from decimal import Decimal
from typing import Any

from lib.db_local import connect_local
from lib.db_utils import shorten
from lib.errors import UsageError

_COLUMNS = [
    ("id", "id_task", 5),
    ("source", "alias", 12),
    ("table.column", "target", 22),
    ("status", "status_text", 18),
    ("stage", "sync_stage", 7),
    ("prog%", "progress", 6),
    ("items", "items_total", 7),
    ("pend", "items_pending", 6),
    ("proc", "items_processed", 6),
    ("acc", "items_accepted", 5),
    ("exp", "items_exported", 5),
    ("confl", "items_conflict", 5),
    ("tokens", "tokens", 8),
    ("cost$", "cost_usd", 9),
    ("last error", "last_error", 0),
]


def collect_status(settings: dict[str, Any], id_task: int | None = None) -> list[dict[str, Any]]:
    """Zbiera stan zadań jednym zapytaniem (zadanie + połączenie + agregaty pozycji).

    Args:
        settings: Ustawienia.
        id_task: Jedno zadanie albo ``None`` dla wszystkich.

    Returns:
        Lista słowników (jeden na zadanie), gotowych do JSON.

    Raises:
        UsageError: Gdy podane zadanie nie istnieje.
    """
    where, params = ("WHERE t.id_task=%s", (id_task,)) if id_task is not None else ("", ())
    db = connect_local(settings, autocommit=True)
    try:
        rows = db.query(
            "SELECT t.id_task, c.alias, t.table_name, t.column_name, t.status, t.pause_reason, t.sync_stage, "
            "t.sync_progress, t.error_log, t.records_total, t.records_new, t.records_updated, t.records_deleted, "
            "t.started_at, t.finished_at, "
            "COUNT(i.id_task_item) AS items_total, "
            "COALESCE(SUM(i.status='pending'),0) AS items_pending, COALESCE(SUM(i.status='outdated'),0) AS items_outdated, "
            "COALESCE(SUM(i.status='processed'),0) AS items_processed, COALESCE(SUM(i.status='accepted'),0) AS items_accepted, "
            "COALESCE(SUM(i.status='rejected'),0) AS items_rejected, COALESCE(SUM(i.status='exported'),0) AS items_exported, "
            "COALESCE(SUM(i.status='conflict'),0) AS items_conflict, "
            "COALESCE(SUM(i.tokens_input),0) AS tokens_input, COALESCE(SUM(i.tokens_output),0) AS tokens_output, "
            "COALESCE(SUM(i.cost_usd),0) AS cost_usd "
            "FROM task t LEFT JOIN database_connection c ON c.id_database_connection=t.id_database_connection "
            "LEFT JOIN task_item i ON i.id_task=t.id_task AND i.deleted_at IS NULL "
            f"{where} GROUP BY t.id_task ORDER BY t.id_task",
            params,
        )
    finally:
        db.close()
    if id_task is not None and not rows:
        raise UsageError(f"zadanie {id_task} nie istnieje w tabeli task")
    result = []
    for row in rows:
        item = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in row.items()}
        for key in ("started_at", "finished_at"):
            item[key] = item[key].isoformat(sep=" ") if item[key] else None
        for key in list(item):
            if key.startswith("items_") or key.startswith("tokens_"):
                item[key] = int(item[key])
        item["last_error"] = shorten(item.pop("error_log"), 300) or None
        result.append(item)
    return result


def format_status(rows: list[dict[str, Any]]) -> str:
    """Formatuje stan zadań jako tabelę (jedna linia na zadanie)."""
    lines = ["  ".join(title.ljust(width) if width else title for title, _key, width in _COLUMNS)]
    for row in rows:
        values = {
            **row,
            "target": f"{row['table_name']}.{row['column_name']}",
            "status_text": row["status"]
            + (f"({row['pause_reason']})" if row["status"] == "paused" and row["pause_reason"] else ""),
            "progress": f"{row['sync_progress']:.1f}",
            "tokens": row["tokens_input"] + row["tokens_output"],
            "cost_usd": f"{row['cost_usd']:.4f}",
            "last_error": shorten(row["last_error"], 60),
            "alias": row["alias"] or "?",
        }
        cells = []
        for _title, key, width in _COLUMNS:
            text = str(values[key] if values[key] is not None else "")
            cells.append(text[:width].ljust(width) if width else text)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_status(settings: dict[str, Any], id_task: int | None = None, as_json: bool = False) -> int:
    """Wypisuje stan zadań na stdout i zwraca kod wyjścia 0."""
    rows = collect_status(settings, id_task)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif rows:
        print(format_status(rows))
    else:
        print("brak zadań")
    return 0
