"""Zrzut pozycji zadania do CSV albo JSON (dla osób, które przeglądają poza systemem).

Plik powstaje strumieniowo: pozycje są czytane stronami po każdym statusie i scalane po
``id_task_item``, więc pamięć nie rośnie z rozmiarem zadania.
"""

import csv
import datetime as dt
import decimal
import heapq
import json
from collections.abc import Iterator
from typing import Any, TextIO

from lib import task_item
from lib.db_local import MySQL
from lib.errors import UsageError
from lib.review.items import parse_summary
from lib.review.rules import ITEM_STATUSES, check_status
from lib.runtime.progress import Progress
from lib.task import get_task

DUMP_FORMATS = ("csv", "json", "eval")
# Format ``eval``: pozycje ocenione przez człowieka jako linie zestawu ewaluacyjnego (``ai.py --eval``).
EVAL_STATUSES = ("accepted", "exported", "conflict", "rejected")

# Kolumny zrzutu (kolejność kolumn CSV i kluczy JSON).
DUMP_COLUMNS = (
    "id_task_item",
    "id_task",
    "remote_id",
    "remote_key",
    "status",
    "text_original",
    "text_corrected",
    "change_summary",
    "is_changed",
    "processed_at",
    "approved_by",
    "approved_at",
    "exported_at",
    "export_error",
)

_DUMP_PAGE = 1000


def _iter_dump_rows(db: MySQL, id_task: int, statuses: list[str] | None) -> Iterator[dict[str, Any]]:
    """Czyta pozycje do zrzutu rosnąco po ``id_task_item`` (pamięć nie rośnie z rozmiarem zadania).

    Każdy status jest czytany osobno stronami (``task_item.status_page_query``), a strumienie są
    scalane po ``id_task_item``: koszt strony nie zależy od wcześniejszych zadań ani od tego,
    jak daleko jest zrzut. Bez ``statuses``: każda pozycja z korektą (``text_corrected``).
    """

    def stream(status: str) -> Iterator[dict[str, Any]]:
        last_id = None
        while True:
            rows = task_item.dump_page(
                db, id_task, DUMP_COLUMNS, status, last_id, _DUMP_PAGE, corrected_only=not statuses
            )
            yield from rows
            if len(rows) < _DUMP_PAGE:
                return
            last_id = int(rows[-1]["id_task_item"])

    wanted = [s for s in ITEM_STATUSES if s in statuses] if statuses else list(ITEM_STATUSES)
    yield from heapq.merge(*(stream(s) for s in wanted), key=lambda row: row["id_task_item"])


def _plain(value: Any) -> Any:
    """Zamienia wartości z bazy na typy JSON (daty ISO, Decimal jako liczba)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


# Co tyle pozycji zrzut zgłasza postęp.
_DUMP_PROGRESS_ROWS = 1000


def dump_items(
    db: MySQL,
    id_task: int,
    fmt: str,
    out: TextIO,
    statuses: list[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Zapisuje pozycje zadania do CSV albo JSON (dla osób, które przeglądają poza systemem).

    Bez ``statuses`` zrzut obejmuje każdą nieusuniętą pozycję z korektą (``text_corrected``).
    W JSON ``change_summary`` jest obiektem, w CSV - tekstem JSON. Plik powstaje strumieniowo.
    Format ``eval``: linie JSONL zestawu ewaluacyjnego z decyzji recenzentów (``_dump_eval``).

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        fmt: ``csv``, ``json`` albo ``eval``.
        out: Otwarty plik tekstowy (albo ``sys.stdout``).
        statuses: Statusy pozycji do zrzutu albo ``None``.
        progress: Wołana co ``_DUMP_PROGRESS_ROWS`` pozycji z ``{"done": zapisane}`` (pasek skryptu).

    Returns:
        Liczba zapisanych pozycji.

    Raises:
        UsageError: Nieznane zadanie, format albo status.
    """
    if fmt not in DUMP_FORMATS:
        raise UsageError(f"nieznany format {fmt!r} (dozwolone: {', '.join(DUMP_FORMATS)})")
    for status in statuses or []:
        check_status(status)
    task = get_task(db, id_task)
    db.commit()
    if fmt == "eval":
        return _dump_eval(db, task, out, statuses, progress)
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(DUMP_COLUMNS)
        for row in _iter_dump_rows(db, id_task, statuses):
            writer.writerow(["" if row[c] is None else _plain(row[c]) for c in DUMP_COLUMNS])
            count += 1
            if progress is not None and count % _DUMP_PROGRESS_ROWS == 0:
                progress({"done": count})
        return count
    out.write("[")
    for row in _iter_dump_rows(db, id_task, statuses):
        record = {c: _plain(row[c]) for c in DUMP_COLUMNS}
        if row["change_summary"]:
            record["change_summary"] = parse_summary(row["change_summary"])
        out.write(("\n" if count == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        count += 1
        if progress is not None and count % _DUMP_PROGRESS_ROWS == 0:
            progress({"done": count})
    out.write("\n]\n" if count else "]\n")
    return count


def _dump_eval(
    db: MySQL,
    task: dict[str, Any],
    out: TextIO,
    statuses: list[str] | None,
    progress: Progress | None,
) -> int:
    """Pozycje ocenione przez człowieka jako linie zestawu ewaluacyjnego (JSONL).

    Wzorzec (``reference``): przyjęta pozycja - tekst przyjęty (odpowiedź modelu albo tekst
    recenzenta po poprawce, ``text_corrected``); odrzucona - tekst oryginalny (w korekcie
    odrzucenie znaczy "nic nie zmieniać"; w tłumaczeniu nie wiadomo, co byłoby dobre, więc
    odrzucone pozycje tłumaczenia są pomijane). Identyfikator linii = ``id_task_item``.

    Returns:
        Liczba zapisanych linii.
    """
    translate = (task.get("ai_action") or "correct") == "translate"
    wanted = [s for s in statuses or EVAL_STATUSES if s in EVAL_STATUSES]
    count = 0
    for row in _iter_dump_rows(db, int(task["id_task"]), wanted):
        original = row["text_original"]
        if not original or not original.strip():
            continue
        if row["status"] == "rejected":
            if translate:
                continue
            reference = original
        else:
            reference = row["text_corrected"]
        if not reference:
            continue
        line: dict[str, Any] = {"id": str(row["id_task_item"]), "text": original, "reference": reference}
        if translate:
            line.update(action="translate", target_lang=task.get("target_lang"))
            if task.get("source_lang"):
                line["source_lang"] = task["source_lang"]
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
        if progress is not None and count % _DUMP_PROGRESS_ROWS == 0:
            progress({"done": count})
    return count
