"""Wynik ostatniego eksportu zadania pokazany człowiekowi (strona eksportu w przeglądzie).

Liczniki pochodzą z ``run_log.stats`` ostatniego runu eksportu, pozycje z powodem
(``export_error``) z ``lib/task_item.py``. Sam eksport jest w ``lib/export``.
"""

import json
from typing import Any, NamedTuple

from lib import task_item
from lib.db_local import MySQL
from lib.runtime.run_log import last_run

# Ile pozycji z powodem eksportu (każdego statusu) pokazuje strona eksportu.
EXPORT_PROBLEMS_SHOWN = 100


class ExportReport(NamedTuple):
    """Wynik ostatniego eksportu zadania: wpis ``run_log``, jego liczniki i pozycje z powodem."""

    run: dict[str, Any] | None
    stats: dict[str, Any]
    problems: list[dict[str, Any]]


def export_report(db: MySQL, id_task: int, limit: int = EXPORT_PROBLEMS_SHOWN) -> ExportReport:
    """Zbiera wynik ostatniego eksportu zadania do pokazania człowiekowi.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        limit: Najwięcej pozycji z powodem na status (konflikty, pominięte zaakceptowane).

    Returns:
        ``ExportReport``: ostatni run eksportu (``None``, gdy nie było), jego liczniki (JSON
        z ``run_log.stats``: zapisane, już w źródle, konflikty, pominięte) i pozycje z ``export_error``.
    """
    run = last_run(db, id_task, "export")
    stats: dict[str, Any] = {}
    if run and run.get("stats"):
        try:
            stats = json.loads(run["stats"])
        except ValueError:
            stats = {}
    return ExportReport(run, stats, task_item.export_problems(db, id_task, limit))
