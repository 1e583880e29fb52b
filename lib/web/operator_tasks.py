"""Strony operatora: nowe zadanie z wyborem tabeli i kolumny, postęp zadań na żywo, pauza i wznowienie.

To samo co ``ailexia task add|pause|resume|resync`` (``lib.admin.tasks``): tabela, kolumna
i klucz są sprawdzane w źródle przed wstawieniem, a zła nazwa jest odmawiana tym samym zdaniem.
Postęp to dane ``sync.py --status`` (``lib.runtime.status.collect_status``); strona odpytuje
``/api/progress`` co kilka sekund (``static/operator.js``) i podmienia wiersze tabeli.
"""

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from lib.admin import models, sources, tasks
from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.errors import AilexiaError, ConfigError
from lib.runtime.status import collect_status
from lib.web.auth import read_write
from lib.web.operator import Refusal, admin_call, done, failed, int_field, kept, page, refusal_of, text_field
from lib.web.state import review_state
from lib.web.views import refused, wants_json

log = get_logger("review_web")

# Zmiany statusu dostępne na stronie postępu (przyciski), w kolejności wyświetlania.
PAGE_ACTIONS = ("pause", "resume", "resync")
ACTION_LABELS = {"pause": "Wstrzymaj", "resume": "Wznów", "resync": "Resync"}
# Statusy zadania, przy których trwa (albo zaraz ruszy) run: strona wyróżnia je jako bieżące.
RUNNING_STATUSES = ("queued", "in_progress", "verifying", "resync")
TASK_FIELDS = ("source", "table", "column", "key", "model", "action", "from", "to", "export_column", "pilot")
# Co ile sekund strona postępu pyta o stan (sumy tokenów czytają wszystkie pozycje zadań).
POLL_INTERVAL_S = 5


def task_actions(status: str) -> list[tuple[str, str]]:
    """Przyciski ``(akcja, napis)`` zmian statusu, które mają sens przy ``status`` (``tasks.TRANSITIONS``)."""
    return [
        (action, ACTION_LABELS[action])
        for action in PAGE_ACTIONS
        if status in tasks.TRANSITIONS[action].allowed_from and status != tasks.TRANSITIONS[action].status
    ]


def progress_view(row: dict[str, Any]) -> dict[str, Any]:
    """Wiersz ``collect_status`` z polami do wyświetlenia (cel, status z powodem pauzy, przyciski)."""
    paused = row["status"] == "paused" and row.get("pause_reason")
    return {
        **row,
        "target": f"{row['table_name']}.{row['column_name']}",
        "status_text": row["status"] + (f" ({row['pause_reason']})" if paused else ""),
        "running": row["status"] in RUNNING_STATUSES,
        "actions": task_actions(row["status"]),
    }


# --- nowe zadanie ------------------------------------------------------------------------------


async def picker_context(request: Request, form: dict[str, Any]) -> dict[str, Any]:
    """Dane formularza zadania: źródła, modele i - gdy wybrano źródło - jego tabele z kolumnami i kluczem.

    Błąd źródła (nieosiągalne, zły klucz szyfrujący) nie zamyka formularza: trafia do ``picker_error``.
    """
    settings = review_state(request).settings

    def load(db: MySQL) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return sources.list_sources(db), models.list_models(db)

    source_rows, model_rows = await admin_call(request, load)
    alias = form.get("source") or None
    tables: list[dict[str, Any]] = []
    picker_error = None
    if alias:
        try:
            tables = await admin_call(request, lambda db: sources.source_tables(db, settings, alias))
        except Refusal as refusal:
            picker_error = refusal.message
    return {
        "sources": source_rows,
        "models": model_rows,
        "tables": tables,
        "chosen": chosen_table(tables, form.get("table")),
        "picker_error": picker_error,
        "form": form,
        "actions": tasks.AI_ACTIONS,
    }


def chosen_table(tables: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    """Tabela wybrana w formularzu albo pierwsza, na której zadanie ma sens (kolumna tekstowa i klucz)."""
    for table in tables:
        if table["table"] == name:
            return table
    return next((t for t in tables if t["text_columns"] and t["key"]), None)


async def task_new_page(request: Request) -> Response:
    """``GET /tasks/new[?source=A&table=T]``: formularz zadania z wyborem tabeli i kolumny źródła."""
    form = {name: request.query_params[name] for name in TASK_FIELDS if request.query_params.get(name)}
    try:
        context = await picker_context(request, form)
    except Refusal as refusal:
        return failed(request, refusal)
    return page(request, "task_new.html", {**context, "message": None})


def task_add_args(data: dict[str, Any]) -> dict[str, Any]:
    """Argumenty ``tasks.add_task`` z formularza (nazwy pól jak opcje ``ailexia task add``)."""
    return {
        "source": text_field(data, "source") or "",
        "table": text_field(data, "table") or "",
        "column": text_field(data, "column") or "",
        "key": text_field(data, "key"),
        "model": text_field(data, "model"),
        "action": text_field(data, "action") or "correct",
        "source_lang": text_field(data, "from"),
        "target_lang": text_field(data, "to"),
        "export_column": text_field(data, "export_column"),
        "pilot": int_field(data, "pilot", "--pilot"),
    }


async def task_add(request: Request) -> Response:
    """``POST /tasks/new``: zadanie po sprawdzeniu tabeli, kolumny i klucza w źródle (``ailexia task add``)."""
    data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    settings = review_state(request).settings
    try:
        arguments = task_add_args(data)
        for option, name in (("--source", "source"), ("--table", "table"), ("--column", "column")):
            if not arguments[name]:
                raise ConfigError(f"{option}: wybierz wartość (pole jest wymagane)")
        id_task = await admin_call(request, lambda db: tasks.add_task(db, settings, **arguments))
    except ConfigError as exc:
        refusal = refusal_of(exc)
    except Refusal as caught:
        refusal = caught
    else:
        log.info(
            "strona operatora: dodano zadanie %s (%s %s.%s)",
            id_task,
            arguments["source"],
            arguments["table"],
            arguments["column"],
        )
        message = f"dodano zadanie {id_task} (status new: sensor podejmie synchronizację)"
        return done(request, "/progress", message, {"id_task": id_task})
    if wants_json(request):
        return JSONResponse({"ok": False, "message": refusal.message}, status_code=refusal.status)
    form = {name: str(value) for name, value in kept(data, TASK_FIELDS).items()}
    try:
        context = await picker_context(request, form)
    except Refusal:
        context = {
            "sources": [],
            "models": [],
            "tables": [],
            "chosen": None,
            "picker_error": None,
            "form": form,
        }
    return page(request, "task_new.html", {**context, "message": refusal.message}, refusal.status)


# --- postęp i zmiany statusu -------------------------------------------------------------------


async def load_progress(request: Request) -> list[dict[str, Any]]:
    """Stan wszystkich zadań (``collect_status``) z polami do wyświetlenia."""
    try:
        rows = await run_in_threadpool(collect_status, review_state(request).settings)
    except AilexiaError as exc:
        raise refusal_of(exc) from None
    return [progress_view(row) for row in rows]


async def progress_page(request: Request) -> Response:
    """``GET /progress``: zadania z etapem, postępem i pozycjami po statusie; przyciski pauzy i wznowienia."""
    try:
        rows = await load_progress(request)
    except Refusal as refusal:
        return failed(request, refusal)
    return page(request, "progress.html", {"tasks": rows, "poll_s": POLL_INTERVAL_S})


async def progress_api(request: Request) -> Response:
    """``GET /api/progress``: stan zadań jako JSON z gotowym HTML wierszy tabeli strony postępu."""
    try:
        rows = await load_progress(request)
    except Refusal as refusal:
        return failed(request, refusal)
    template = review_state(request).templates.get_template("_progress_rows.html")
    html = template.render({"tasks": rows, "csrf": request.session.get("csrf", "")})
    return JSONResponse({"ok": True, "tasks": rows, "html": html})


async def task_change(request: Request) -> Response:
    """``POST /tasks/{id_task}/pause|resume|resync``: ta sama zmiana co ``ailexia task pause|resume|resync``."""
    _data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    id_task = int(request.path_params["id_task"])
    action = request.url.path.rsplit("/", 1)[-1]
    try:
        result = await admin_call(request, lambda db: tasks.change_status(db, id_task, action))
    except Refusal as refusal:
        if wants_json(request):
            return failed(request, refusal)
        request.session["notice"] = {"ok": False, "message": refusal.message}
        return RedirectResponse("/progress", status_code=303)
    if result["changed"]:
        log.info("strona operatora: zadanie %s: %s -> %s", id_task, result["before"], result["after"])
        message = f"zadanie {id_task}: {result['before']} -> {result['after']}"
    else:
        message = f"zadanie {id_task}: już {result['after']} (bez zmian)"
    return done(request, "/progress", message, result)
