"""Widoki zadań, pozycji i decyzji strony przeglądu (handlery Starlette na poziomie modułu).

Reguły decyzji są te same co w CLI (``lib.review``): ta sama funkcja odmowy, blokady wierszy,
dziennik ``review_log``; strona dodaje wersję pozycji, którą człowiek widział, więc decyzja
o tekście zmienionym w międzyczasie (drugi recenzent, nowa korekta AI) jest odmawiana z opisem
obecnego stanu. Każdy handler dostaje tylko żądanie; stan aplikacji czyta z ``app.state.review``.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pymysql
from itsdangerous import BadSignature
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.errors import AilexiaError, UsageError
from lib.review.decisions import Outcome, accept_hunks, edit_and_accept, set_decision, undo_last
from lib.review.items import FLAG_FILTERS, Page, get_item, page_items
from lib.review.rules import DECISIONS, ITEM_STATUSES, describe_state
from lib.runtime.status import collect_status
from lib.task import get_task
from lib.task_item import count_flagged
from lib.web.auth import read_write
from lib.web.pilot import pilot_panel
from lib.web.state import call_db, review_state
from lib.web.views import ask_name, card_html, error_response, item_view, refused, render

log = get_logger("review_web")

PAGE_DEFAULT = 20
# Lista pokazanych pozycji (akceptacja strony) jest ważna tyle sekund.
SHOWN_MAX_AGE_S = 12 * 3600

# Akcja zapisu jednej pozycji: (baza, id pozycji, dane żądania, imię, sesja) -> wynik.
ItemAction = Callable[[MySQL, int, dict[str, Any], str, str], Outcome]


# --- strony ---------------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    """``GET /``: lista zadań z licznikami pozycji (``/?id_task=N`` = pozycje zadania)."""
    if "id_task" in request.query_params:
        return await task_items(request)
    if not request.session.get("name"):
        return ask_name(request)
    try:
        tasks = await run_in_threadpool(collect_status, review_state(request).settings)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    return render(request, "tasks.html", {"tasks": tasks, "statuses": ITEM_STATUSES})


def _int_param(request: Request, name: str) -> int | None:
    """Nieujemny parametr liczbowy adresu albo ``None``; ``ValueError``, gdy niepoprawny."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    value = int(raw)
    if value < 0:
        raise ValueError(name)
    return value


async def task_items(request: Request) -> Response:
    """``GET /tasks/{id_task}``: strona pozycji zadania o danym statusie (keyset: after/before)."""
    try:
        id_task = int(request.path_params.get("id_task") or request.query_params["id_task"])
        after, before = _int_param(request, "after"), _int_param(request, "before")
        limit = _int_param(request, "limit") or PAGE_DEFAULT
    except (KeyError, ValueError):
        return refused(request, 400, "niepoprawny parametr adresu (id_task, after, before, limit)")
    status = request.query_params.get("status") or "processed"
    flags = request.query_params.get("flags") or None
    if flags not in FLAG_FILTERS and flags != "all":
        return refused(request, 400, "niepoprawny parametr adresu flags (flagged, unflagged, all)")
    if not request.session.get("name"):
        return ask_name(request)
    state = review_state(request)

    def load(db: MySQL) -> tuple[dict[str, Any], Page, int, str | None, dict[str, Any] | None]:
        task_row = get_task(db, id_task)
        db.commit()
        flagged = count_flagged(db, id_task, status)
        # Pozycje z flagami zabezpieczeń najpierw: dopóki czekają na decyzję (processed), domyślna
        # lista pokazuje tylko je; reszta i wszystkie - linkami (``flags=unflagged``, ``flags=all``).
        first = "flagged" if flagged and status == "processed" else None
        shown_flags = None if flags == "all" else (flags or first)
        page = page_items(db, id_task, status, after=after, before=before, limit=limit, flags=shown_flags)
        return task_row, page, flagged, shown_flags, pilot_panel(db, state.settings, task_row)

    try:
        task_row, result, flagged, shown_flags, panel = await call_db(request, load)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    items = [item_view(i) for i in result.items]
    # Lista do "Akceptuj pokazane": pozycje wyrenderowane tej sesji (z wersją), które można zaakceptować;
    # pozycje z flagami tylko pojedynczo (człowiek musi je obejrzeć).
    acceptable = [i for i in items if i["decidable"] and i["status"] != "accepted" and not i["flags"]]
    shown = review_state(request).shown_signer.dumps(
        {
            "sid": request.session["sid"],
            "task": id_task,
            "items": [[i["id_task_item"], i["version"]] for i in acceptable],
        }
    )

    def link(**params: Any) -> str:
        query = {
            "status": status,
            **({"flags": flags} if flags else {}),
            **({"limit": limit} if limit != PAGE_DEFAULT else {}),
            **params,
        }
        return f"/tasks/{id_task}?{urlencode(query)}"

    return render(
        request,
        "items.html",
        {
            "task": task_row,
            "items": items,
            "status": status,
            "statuses": ITEM_STATUSES,
            "shown": shown,
            "decidable_count": len(acceptable),
            "prev_url": link(before=items[0]["id_task_item"]) if items and result.has_prev else None,
            "next_url": link(after=items[-1]["id_task_item"]) if items and result.has_next else None,
            "first_url": link() if result.has_prev else None,
            "canonical": link(**({"after": after} if after is not None else {})),
            "export_enabled": state.export_runner is not None,
            "flagged": flagged,
            "flags": shown_flags,
            "flags_links": {
                name: f"/tasks/{id_task}?{urlencode({'status': status, 'flags': name})}"
                for name in ("flagged", "unflagged", "all")
            },
            "pilot": panel,
        },
    )


# --- decyzje (fetch z JSON) -----------------------------------------------------------------------


async def reviewer_write(request: Request) -> tuple[dict[str, Any], str, Response | None]:
    """Początek każdej decyzji: treść żądania po sprawdzeniu CSRF i imię recenzenta z sesji.

    Returns:
        ``(dane, imię, None)`` albo ``(..., odpowiedź odmowy)``, gdy brak CSRF lub imienia.
    """
    data, problem = await read_write(request)
    if problem:
        return data, "", refused(request, 403, problem)
    name = request.session.get("name")
    if not name:
        refusal = JSONResponse({"ok": False, "message": "podaj najpierw swoje imię (odśwież stronę)"}, 400)
        return data, "", refusal
    return data, name, None


async def decision_call(request: Request, action: ItemAction) -> Response:
    """Wspólny przebieg zapisu jednej pozycji: CSRF, imię, akcja w lib, świeża karta pozycji."""
    data, name, refusal = await reviewer_write(request)
    if refusal is not None:
        return refusal
    sid = request.session["sid"]
    id_item = int(request.path_params["id_item"])

    def work(db: MySQL) -> tuple[Outcome, dict[str, Any]]:
        outcome = action(db, id_item, data, name, sid)
        return outcome, get_item(db, outcome.id_item or id_item)

    try:
        outcome, item = await call_db(request, work)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    if outcome.changed:
        log.info("pozycja %s: %s (%s)", item["id_task_item"], describe_state(item), name)
    return JSONResponse(
        {
            "ok": outcome.reason is None,
            "changed": outcome.changed,
            "message": outcome.reason or f"#{item['id_task_item']}: {describe_state(item)}",
            "id": item["id_task_item"],
            "status": item["status"],
            "html": card_html(request, item),
        }
    )


def _version(data: dict[str, Any]) -> str:
    """Wersja pozycji, którą człowiek widział (``item_version``), z treści żądania."""
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise UsageError("brak wersji pozycji w żądaniu - odśwież stronę")
    return version


def decide_item(db: MySQL, id_item: int, data: dict[str, Any], name: str, sid: str) -> Outcome:
    """Akceptacja (całości albo wybranych zmian ``hunks``) lub odrzucenie jednej pozycji."""
    decision = data.get("decision")
    version = _version(data)
    if decision == "accepted" and data.get("hunks") is not None:
        chosen = data["hunks"]
        if not isinstance(chosen, list) or not all(isinstance(i, int) for i in chosen):
            raise UsageError("hunks: oczekiwano listy numerów zmian")
        return accept_hunks(db, id_item, chosen, name, sid, version)
    if decision not in DECISIONS:
        raise UsageError(f"nieznana decyzja {decision!r}")
    item = get_item(db, id_item)
    changed, reasons = set_decision(
        db, int(item["id_task"]), [id_item], decision, name, None, session=sid, expected={id_item: version}
    )
    if reasons and get_item(db, id_item)["status"] == decision:
        # Drugie kliknięcie albo drugi recenzent z tą samą decyzją: już jest, jak chciano.
        return Outcome(False, None, id_item)
    return Outcome(bool(changed), reasons[0][1] if reasons else None, id_item)


def edit_item(db: MySQL, id_item: int, data: dict[str, Any], name: str, sid: str) -> Outcome:
    """Poprawka tekstu pozycji przez człowieka i jej akceptacja."""
    text = data.get("text")
    if not isinstance(text, str):
        raise UsageError("brak tekstu poprawki")
    return edit_and_accept(db, id_item, text, name, sid, _version(data))


async def decide(request: Request) -> Response:
    """``POST /api/items/{id_item}/decide``: ``{"decision", "version", "hunks"?}``."""
    return await decision_call(request, decide_item)


async def edit(request: Request) -> Response:
    """``POST /api/items/{id_item}/edit``: ``{"text", "version"}``."""
    return await decision_call(request, edit_item)


async def undo(request: Request) -> Response:
    """``POST /api/tasks/{id_task}/undo``: cofa ostatnią decyzję tej sesji w zadaniu."""
    _data, name, refusal = await reviewer_write(request)
    if refusal is not None:
        return refusal
    id_task = int(request.path_params["id_task"])
    sid = request.session["sid"]

    def work(db: MySQL) -> tuple[Outcome, dict[str, Any] | None]:
        get_task(db, id_task)
        db.commit()
        outcome = undo_last(db, id_task, sid, name)
        return outcome, get_item(db, outcome.id_item) if outcome.id_item else None

    try:
        outcome, item = await call_db(request, work)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    message = outcome.reason or f"cofnięto: #{item['id_task_item']} ma znowu status {item['status']}"
    return JSONResponse(
        {
            "ok": outcome.changed,
            "message": message,
            "id": item["id_task_item"] if item else None,
            "status": item["status"] if item else None,
            "html": card_html(request, item) if item else None,
        }
    )


def _shown_items(request: Request, raw: Any, id_task: int) -> dict[int, str] | str:
    """Odczytuje podpisaną listę pozycji pokazanych w tej sesji: ``{id: wersja}`` albo powód odmowy."""
    try:
        shown = review_state(request).shown_signer.loads(str(raw or ""), max_age=SHOWN_MAX_AGE_S)
    except BadSignature:
        return "lista pokazanych pozycji jest nieważna lub przeterminowana - odśwież stronę"
    if shown.get("sid") != request.session["sid"] or shown.get("task") != id_task:
        return "lista pokazanych pozycji pochodzi z innej sesji lub zadania"
    return {int(i): str(v) for i, v in shown.get("items", [])}


async def accept_shown(request: Request) -> Response:
    """``POST /api/tasks/{id_task}/accept-shown``: akceptuje pozycje pokazane w tej sesji."""
    data, name, refusal = await reviewer_write(request)
    if refusal is not None:
        return refusal
    id_task = int(request.path_params["id_task"])
    expected = _shown_items(request, data.get("shown"), id_task)
    if isinstance(expected, str):
        return JSONResponse({"ok": False, "message": expected}, status_code=400)
    sid = request.session["sid"]

    def work(db: MySQL) -> tuple[list[int], list[tuple[int, str]]]:
        if not expected:
            return [], []
        return set_decision(
            db, id_task, list(expected), "accepted", name, None, session=sid, expected=expected
        )

    try:
        changed, reasons = await call_db(request, work)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    log.info(
        "zadanie %s: akceptacja strony - %s pozycji, odmówiono %s (%s)",
        id_task,
        len(changed),
        len(reasons),
        name,
    )
    return JSONResponse(
        {
            "ok": True,
            "message": f"zaakceptowano {len(changed)} pozycji, odmówiono {len(reasons)}",
            "accepted": changed,
            "refused": [{"id": i, "reason": r} for i, r in reasons],
        }
    )
