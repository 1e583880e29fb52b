"""Eksport zadania ze strony przeglądu: uruchomienie w wątku tła i strona wyniku.

Moduł nie zna Dagstera: eksport dostaje jako funkcję (``ReviewState.export_runner``) zbudowaną
przez skrypt ``review.py``, który uruchamia ten sam eksport co ``sync.py --export`` (run widoczny
w UI Dagstera). Stan eksportów uruchomionych ze strony (``ReviewState.exports``) jest w pamięci
serwera: jeden eksport zadania naraz z tej strony.
"""

import threading
import time
from typing import Any

import pymysql
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.errors import AilexiaError
from lib.review.report import EXPORT_PROBLEMS_SHOWN, ExportReport, export_report
from lib.task import get_task
from lib.web.auth import read_write
from lib.web.state import ReviewState, call_db, review_state
from lib.web.views import error_response, refused, render

log = get_logger("review_web")


async def export_start(request: Request) -> Response:
    """``POST /tasks/{id_task}/export``: uruchamia eksport w tle (gdy nie trwa) i przekierowuje."""
    _data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    id_task = int(request.path_params["id_task"])
    state = review_state(request)
    if state.export_runner is None:
        return refused(request, 503, "eksport z tej strony jest niedostępny (serwer bez Dagstera)")
    try:
        await call_db(request, lambda db: get_task(db, id_task))
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    if claim_export(state, id_task):
        log.info(
            "zadanie %s: eksport uruchomiony ze strony przeglądu (%s)",
            id_task,
            request.session.get("name") or "bez nazwy",
        )
        threading.Thread(
            target=run_export, args=(state, id_task), name=f"export-{id_task}", daemon=True
        ).start()
    return RedirectResponse(f"/tasks/{id_task}/export", status_code=303)


def claim_export(state: ReviewState, id_task: int) -> bool:
    """Oznacza eksport zadania jako trwający; ``False``, gdy już trwa (nie uruchamiać drugiego)."""
    with state.exports_lock:
        if state.exports.get(id_task, {}).get("state") == "running":
            return False
        state.exports[id_task] = {"state": "running", "started": time.time(), "ok": None, "message": None}
        return True


def run_export(state: ReviewState, id_task: int) -> None:
    """Ciało wątku eksportu: woła ``export_runner`` i zapisuje wynik w ``state.exports``."""
    try:
        ok, message = state.export_runner(id_task)  # type: ignore[misc]
    except Exception as exc:  # wątek tła: błąd musi trafić na stronę, nie zniknąć
        ok, message = False, f"eksport nie wystartował: {exc}"
    with state.exports_lock:
        state.exports[id_task].update(state="done", ok=ok, message=message, finished=time.time())


async def export_page(request: Request) -> Response:
    """``GET /tasks/{id_task}/export``: stan eksportu ze strony i wynik ostatniego eksportu zadania."""
    id_task = int(request.path_params["id_task"])
    state = review_state(request)
    with state.exports_lock:
        running: dict[str, Any] = dict(state.exports.get(id_task, {}))

    def load(db: MySQL) -> tuple[dict[str, Any], ExportReport]:
        task_row = get_task(db, id_task)
        db.commit()
        return task_row, export_report(db, id_task)

    try:
        task_row, report = await call_db(request, load)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    return render(
        request,
        "export.html",
        {
            "task": task_row,
            "run": report.run,
            "stats": report.stats,
            "problems": report.problems,
            "problems_limit": EXPORT_PROBLEMS_SHOWN,
            "state": running,
            "export_enabled": state.export_runner is not None,
        },
    )
