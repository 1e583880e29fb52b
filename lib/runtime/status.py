"""Widok stanu zadań dla operatora (``python sync.py --status``): dane i tabela tekstowa.

Wypisywaniem zajmuje się skrypt; tu są tylko dane (``collect_status``) i ich format.
"""

from decimal import Decimal
from typing import Any

from lib import task_item
from lib.db_local import connect_local
from lib.db_utils import shorten
from lib.errors import UsageError
from lib.load_config import Settings

# Kolumny zadania (t) i połączenia (c) w widoku stanu.
_TASK_COLUMNS = (
    "t.id_task, c.alias, t.table_name, t.column_name, t.status, t.pause_reason, t.sync_stage, "
    "t.sync_progress, t.error_log, t.records_total, t.records_new, t.records_updated, t.records_deleted, "
    "t.started_at, t.finished_at"
)

_COLUMNS = [
    ("id", "id_task", 5),
    ("source", "alias", 12),
    ("table.column", "target", 22),
    ("status", "status_text", 18),
    ("stage", "sync_stage", 7),
    ("prog%", "progress", 6),
    ("items", "items_total", 7),
    ("pend", "items_pending", 6),
    ("batch", "items_in_batch", 6),
    ("proc", "items_processed", 6),
    ("acc", "items_accepted", 5),
    ("exp", "items_exported", 5),
    ("confl", "items_conflict", 5),
    ("tokens", "tokens", 8),
    ("cost$", "cost_usd", 9),
    ("last error", "last_error", 0),
]


def collect_status(settings: Settings, id_task: int | None = None) -> list[dict[str, Any]]:
    """Zbiera stan zadań jednym zapytaniem (zadanie + połączenie + agregaty pozycji).

    Args:
        settings: Ustawienia.
        id_task: Jedno zadanie albo ``None`` dla wszystkich.

    Returns:
        Lista słowników (jeden na zadanie), gotowych do JSON.

    Raises:
        UsageError: Gdy podane zadanie nie istnieje.
    """
    db = connect_local(settings, autocommit=True)
    try:
        rows = task_item.task_counts(db, _TASK_COLUMNS, id_task)
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
