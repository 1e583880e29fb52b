"""Strona przeglądu w przeglądarce (``python review.py serve``): zadania, pozycje, decyzje, eksport.

Starlette + Jinja2 (szablony w ``lib/templates``, pliki statyczne w ``lib/static``), serwowane
przez uvicorn ze skryptu ``review.py``. Moduł nie zna Dagstera: eksport dostaje jako funkcję
(``export_runner``) zbudowaną przez skrypt, który uruchamia ten sam eksport co
``sync.py --export`` (run widoczny w UI Dagstera).

Dostęp jak w Jupyterze: token (``REVIEW_TOKEN`` albo losowy, wypisany przy starcie) w adresie
``/?token=…`` zakłada sesję w podpisanym ciasteczku (HttpOnly, SameSite=Strict); każda strona
i każdy zapis bez ważnego tokenu lub sesji dostaje 401 i niczego nie zmienia. Zapisy wymagają
nagłówka ``Origin`` tego serwera i tokenu CSRF z sesji. Imię recenzenta (``approved_by``) jest
pytane raz i trzymane w sesji.

Reguły decyzji są te same co w CLI (``lib.review``): ta sama funkcja odmowy, blokady wierszy,
dziennik ``review_log``; strona dodaje wersję pozycji, którą człowiek widział, więc decyzja
o tekście zmienionym w międzyczasie (drugi recenzent, nowa korekta AI) jest odmawiana z opisem
obecnego stanu.
"""

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pymysql
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lib import review
from lib.db_local import MySQL, connect_local
from lib.db_utils import get_logger
from lib.errors import AilexiaError, UsageError
from lib.load_config import Settings
from lib.status import collect_status
from lib.task import get_task

log = get_logger("review_web")

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

SESSION_COOKIE = "ailexia_review"
SESSION_MAX_AGE_S = 7 * 24 * 3600
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
PAGE_DEFAULT = 20
# Lista pokazanych pozycji (akceptacja strony) jest ważna tyle sekund.
SHOWN_MAX_AGE_S = 12 * 3600
# Statusy, przy których strona pokazuje przyciski decyzji i wybór zmian.
DECIDABLE = ("processed", "rejected", "conflict", "accepted")

# Nagłówki każdej odpowiedzi: bez ramek obcych stron (clickjacking), tylko własne skrypty i style.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]

# Funkcja eksportu zadania: zwraca (sukces, komunikat jednej linii).
ExportRunner = Callable[[int], tuple[bool, str]]


# --- dostęp: token, sesja, CSRF, Origin ----------------------------------------------------------


def _fingerprint(token: str) -> str:
    """Odcisk tokenu trzymany w sesji (zmiana tokenu unieważnia stare sesje)."""
    return hmac.new(token.encode("utf-8"), b"ailexia-review-session", hashlib.sha256).hexdigest()[:32]


def _same_secret(a: str, b: str) -> bool:
    """Porównanie sekretów w stałym czasie."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _start_session(session: dict[str, Any], token: str) -> None:
    """Zapisuje w sesji zalogowanie tokenem; identyfikator sesji i token CSRF zostają, jeśli były."""
    session["auth"] = _fingerprint(token)
    session.setdefault("sid", secrets.token_hex(16))
    session.setdefault("csrf", secrets.token_urlsafe(32))


def _logged_in(session: dict[str, Any], token: str) -> bool:
    """Czy sesja jest zalogowana bieżącym tokenem."""
    return _same_secret(str(session.get("auth", "")), _fingerprint(token))


def _same_origin(request: Request) -> bool:
    """Czy zapis pochodzi z tej samej strony (nagłówek ``Origin`` = adres tego serwera).

    Przeglądarki wysyłają ``Origin`` przy każdym POST (formularz i ``fetch``); zapis bez niego
    albo z innego adresu jest odrzucany.
    """
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if not origin or not host:
        return False
    return origin.rstrip("/") == f"{request.url.scheme}://{host}"


def _wants_json(request: Request) -> bool:
    """Czy odpowiedź ma być JSON (wywołania ``fetch`` strony i API), a nie HTML."""
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _auth_middleware(app: ASGIApp, token: str, templates: Jinja2Templates) -> ASGIApp:
    """Warstwa dostępu: token albo sesja dla każdej strony, ``Origin`` dla każdego zapisu.

    Pliki statyczne (CSS, JS, bez danych) są dostępne bez tokenu. ``POST /login`` (formularz
    tokenu) jest jedynym zapisem bez sesji. Token CSRF sprawdzają same widoki zapisu
    (``_read_write``), bo leży w treści żądania.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await guarded(scope, receive, send_secured)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/static/"):
            await app(scope, receive, send)
            return
        request = Request(scope, receive)
        session = scope["session"]
        supplied = request.query_params.get("token")
        if supplied is not None:
            if not _same_secret(supplied, token):
                log.warning("odmowa dostępu: zły token w adresie (%s %s)", request.method, request.url.path)
                await _unauthorized(request, templates, "zły token")(scope, receive, send)
                return
            _start_session(session, token)
        elif not _logged_in(session, token) and not (
            request.url.path == "/login" and request.method == "POST"
        ):
            await _unauthorized(request, templates, None)(scope, receive, send)
            return
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            log.warning("odmowa zapisu: obcy lub brakujący nagłówek Origin (%s)", request.url.path)
            await _refused(
                request, templates, 403, "zapis odrzucony: żądanie nie pochodzi z tej strony (Origin)"
            )(scope, receive, send)
            return
        await app(scope, receive, send)

    return middleware


def _unauthorized(request: Request, templates: Jinja2Templates, problem: str | None) -> Response:
    """Odpowiedź 401: JSON dla wywołań strony, formularz tokenu dla przeglądarki."""
    message = "brak dostępu: " + (
        problem or "otwórz adres z tokenem wypisany przez review.py serve albo podaj token"
    )
    if _wants_json(request) or request.method not in ("GET", "HEAD"):
        return JSONResponse({"ok": False, "message": message}, status_code=401)
    return templates.TemplateResponse(
        request,
        "login.html",
        {"message": message, "next": _here_without_token(request), "csrf": ""},
        status_code=401,
    )


def _refused(request: Request, templates: Jinja2Templates, status: int, message: str) -> Response:
    """Odpowiedź błędu (JSON albo prosta strona) z jednym zdaniem po polsku."""
    if _wants_json(request) or request.method not in ("GET", "HEAD"):
        return JSONResponse({"ok": False, "message": message}, status_code=status)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"message": message, "csrf": request.session.get("csrf", "")},
        status_code=status,
    )


async def _read_write(request: Request) -> tuple[dict[str, Any], str | None]:
    """Czyta treść zapisu (JSON albo formularz) i sprawdza token CSRF z sesji.

    Returns:
        Krotka ``(dane, komunikat błędu albo None)``.
    """
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            return {}, "niepoprawny JSON w żądaniu"
        if not isinstance(data, dict):
            return {}, "niepoprawny JSON w żądaniu"
    else:
        form = await request.form()
        data = {key: form.get(key) for key in form}
    supplied = request.headers.get(CSRF_HEADER) or data.get(CSRF_FIELD) or ""
    expected = request.session.get("csrf", "")
    if not expected or not isinstance(supplied, str) or not _same_secret(supplied, expected):
        return data, "zapis odrzucony: brak lub zły token CSRF - odśwież stronę"
    return data, None


def _here_without_token(request: Request) -> str:
    """Bieżąca ścieżka z parametrami, bez tokenu (adres powrotu po formularzu)."""
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(value: Any) -> str:
    """Adres powrotu po formularzu: tylko ścieżka tego serwera (bez przekierowań na zewnątrz)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


# --- widok pozycji ---------------------------------------------------------------------------------


def _ws_markup(text: Any) -> Markup:
    """Tekst zmiany z białymi znakami zamienionymi na widoczne symbole (``review.show_whitespace``)."""
    parts = []
    for chunk, is_mark in review.show_whitespace("" if text is None else str(text)):
        parts.append(f'<span class="ws">{escape(chunk)}</span>' if is_mark else str(escape(chunk)))
    return Markup("".join(parts))


def diff_markup(segments: list[review.Segment], pickable: bool) -> Markup:
    """HTML różnicy słów: ``<del>``/``<ins>`` w zmianach, które (gdy ``pickable``) można odznaczyć.

    Args:
        segments: Wynik ``review.diff_segments``.
        pickable: ``True`` = każda zmiana jest przełącznikiem (akceptacja części zmian).

    Returns:
        Bezpieczny HTML (tekst jest escapowany).
    """
    parts = []
    for segment in segments:
        hunk = segment.hunk
        if hunk is None:
            parts.append(str(escape(segment.text)))
            continue
        inner = ""
        if hunk.old:
            inner += f"<del>{_ws_markup(hunk.old)}</del>"
        if hunk.new:
            inner += f"<ins>{_ws_markup(hunk.new)}</ins>"
        if pickable:
            parts.append(
                f'<span class="hunk" data-hunk="{hunk.index}" role="checkbox" aria-checked="true" tabindex="0" '
                f'title="kliknij, aby pominąć tę zmianę">{inner}</span>'
            )
        else:
            parts.append(f'<span class="hunk">{inner}</span>')
    return Markup("".join(parts))


def item_view(item: dict[str, Any]) -> dict[str, Any]:
    """Dane jednej pozycji do szablonu: różnica, zmiany modelu, wersja, czy można decydować."""
    decidable = (
        item["status"] in DECIDABLE
        and item.get("deleted_at") is None
        and item.get("text_corrected") is not None
    )
    segments = review.diff_segments(item.get("text_original"), item.get("text_corrected"))
    hunks = sum(1 for s in segments if s.hunk is not None)
    summary = review.parse_summary(item.get("change_summary"))
    edits = [e for e in summary["edits"] if isinstance(e, dict)]
    return {
        **item,
        "diff": diff_markup(segments, pickable=decidable and hunks > 1)
        if item.get("text_corrected") is not None
        else None,
        "hunk_count": hunks,
        "edits": edits,
        "counts": summary["counts"],
        "summary_invalid": summary.get("invalid"),
        "version": review.item_version(item),
        "decidable": decidable,
    }


# --- aplikacja ---------------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    token: str,
    export_runner: ExportRunner | None = None,
) -> Starlette:
    """Buduje aplikację ASGI strony przeglądu.

    Args:
        settings: Ustawienia z ``load_config`` (połączenie lokalne).
        token: Token dostępu (``REVIEW_TOKEN`` albo wylosowany przez skrypt).
        export_runner: Funkcja ``(id_task) -> (sukces, komunikat)`` uruchamiająca eksport
            zadania (ten sam co ``sync.py --export``); ``None`` = przycisk eksportu niedostępny.

    Returns:
        Aplikacja Starlette gotowa dla uvicorn.
    """
    if not token:
        raise UsageError("strona przeglądu wymaga niepustego tokenu")
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters["ws"] = _ws_markup
    # Sekret ciasteczka wyprowadzony z tokenu: po restarcie z tym samym REVIEW_TOKEN sesje zostają ważne.
    secret = hmac.new(token.encode("utf-8"), b"ailexia-review-cookie", hashlib.sha256).hexdigest()
    shown_signer = URLSafeTimedSerializer(secret, salt="ailexia-review-shown")
    exports: dict[int, dict[str, Any]] = {}
    exports_lock = threading.Lock()

    def with_db(function: Callable[[MySQL], Any]) -> Any:
        db = connect_local(settings, autocommit=False)
        try:
            return function(db)
        finally:
            db.close()

    async def call_db(function: Callable[[MySQL], Any]) -> Any:
        return await run_in_threadpool(with_db, function)

    def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
        context = {
            "csrf": request.session.get("csrf", ""),
            "reviewer": request.session.get("name"),
            **context,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        return response

    def error_response(request: Request, exc: Exception) -> Response:
        if isinstance(exc, UsageError):
            status = 404 if "nie istnieje" in str(exc) else 400
            return _refused(request, templates, status, str(exc))
        if isinstance(exc, AilexiaError):
            return _refused(request, templates, 500, str(exc))
        return _refused(request, templates, 500, f"błąd lokalnej bazy: {exc}")

    def ask_name(request: Request) -> Response:
        return page(request, "name.html", {"next": _here_without_token(request)})

    # --- strony ---

    async def index(request: Request) -> Response:
        if "id_task" in request.query_params:
            return await task_items(request)
        if not request.session.get("name"):
            return ask_name(request)
        try:
            tasks = await run_in_threadpool(collect_status, settings)
        except (AilexiaError, pymysql.MySQLError) as exc:
            return error_response(request, exc)
        return page(request, "tasks.html", {"tasks": tasks, "statuses": review.ITEM_STATUSES})

    def _int_param(request: Request, name: str) -> int | None:
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return None
        value = int(raw)
        if value < 0:
            raise ValueError(name)
        return value

    async def task_items(request: Request) -> Response:
        try:
            id_task = int(request.path_params.get("id_task") or request.query_params["id_task"])
            after, before = _int_param(request, "after"), _int_param(request, "before")
            limit = _int_param(request, "limit") or PAGE_DEFAULT
        except (KeyError, ValueError):
            return _refused(
                request, templates, 400, "niepoprawny parametr adresu (id_task, after, before, limit)"
            )
        status = request.query_params.get("status") or "processed"
        if not request.session.get("name"):
            return ask_name(request)

        def load(db: MySQL) -> tuple[dict[str, Any], review.Page]:
            task_row = get_task(db, id_task)
            db.commit()
            return task_row, review.page_items(db, id_task, status, after=after, before=before, limit=limit)

        try:
            task_row, result = await call_db(load)
        except (AilexiaError, pymysql.MySQLError) as exc:
            return error_response(request, exc)
        items = [item_view(i) for i in result.items]
        # Lista do "Akceptuj pokazane": pozycje wyrenderowane tej sesji (z wersją), które można zaakceptować.
        acceptable = [i for i in items if i["decidable"] and i["status"] != "accepted"]
        shown = shown_signer.dumps(
            {
                "sid": request.session["sid"],
                "task": id_task,
                "items": [[i["id_task_item"], i["version"]] for i in acceptable],
            }
        )

        def link(**params: Any) -> str:
            query = {"status": status, **({"limit": limit} if limit != PAGE_DEFAULT else {}), **params}
            return f"/tasks/{id_task}?{urlencode(query)}"

        return page(
            request,
            "items.html",
            {
                "task": task_row,
                "items": items,
                "status": status,
                "statuses": review.ITEM_STATUSES,
                "shown": shown,
                "decidable_count": len(acceptable),
                "prev_url": link(before=items[0]["id_task_item"]) if items and result.has_prev else None,
                "next_url": link(after=items[-1]["id_task_item"]) if items and result.has_next else None,
                "first_url": link() if result.has_prev else None,
                "canonical": link(**({"after": after} if after is not None else {})),
                "export_enabled": export_runner is not None,
            },
        )

    # --- logowanie i imię ---

    async def login(request: Request) -> Response:
        form = await request.form()
        supplied = str(form.get("token") or "")
        next_url = _safe_next(form.get("next"))
        if not _same_secret(supplied, token):
            return page(request, "login.html", {"message": "brak dostępu: zły token", "next": next_url}, 401)
        _start_session(request.session, token)
        name = str(form.get("name") or "").strip()
        if name:
            try:
                request.session["name"] = review.check_reviewer(name)
            except UsageError:
                pass
        return RedirectResponse(next_url, status_code=303)

    async def set_name(request: Request) -> Response:
        data, problem = await _read_write(request)
        if problem:
            return _refused(request, templates, 403, problem)
        try:
            request.session["name"] = review.check_reviewer(str(data.get("name") or ""))
        except UsageError:
            return page(
                request,
                "name.html",
                {"next": _safe_next(data.get("next")), "message": "podaj imię (1-64 znaki)"},
                400,
            )
        return RedirectResponse(_safe_next(data.get("next")), status_code=303)

    async def logout(request: Request) -> Response:
        _data, problem = await _read_write(request)
        if problem:
            return _refused(request, templates, 403, problem)
        request.session.clear()
        return page(request, "login.html", {"message": "wylogowano", "next": "/"})

    # --- decyzje (fetch z JSON) ---

    def card_html(request: Request, item: dict[str, Any]) -> str:
        return templates.get_template("_item.html").render(
            {"item": item_view(item), "csrf": request.session["csrf"]}
        )

    async def reviewer_write(request: Request) -> tuple[dict[str, Any], str, Response | None]:
        """Początek każdej decyzji: treść żądania po sprawdzeniu CSRF i imię recenzenta z sesji.

        Returns:
            ``(dane, imię, None)`` albo ``(..., odpowiedź odmowy)``, gdy brak CSRF lub imienia.
        """
        data, problem = await _read_write(request)
        if problem:
            return data, "", _refused(request, templates, 403, problem)
        name = request.session.get("name")
        if not name:
            refusal = JSONResponse(
                {"ok": False, "message": "podaj najpierw swoje imię (odśwież stronę)"}, 400
            )
            return data, "", refusal
        return data, name, None

    async def decision_call(
        request: Request, action: Callable[[MySQL, dict[str, Any], str, str], review.Outcome]
    ) -> Response:
        """Wspólny przebieg zapisu jednej pozycji: CSRF, imię, akcja w lib, świeża karta pozycji."""
        data, name, refusal = await reviewer_write(request)
        if refusal is not None:
            return refusal
        sid = request.session["sid"]
        id_item = int(request.path_params["id_item"])

        def work(db: MySQL) -> tuple[review.Outcome, dict[str, Any]]:
            outcome = action(db, data, name, sid)
            return outcome, review.get_item(db, outcome.id_item or id_item)

        try:
            outcome, item = await call_db(work)
        except (AilexiaError, pymysql.MySQLError) as exc:
            return error_response(request, exc)
        if outcome.changed:
            log.info("pozycja %s: %s (%s)", item["id_task_item"], review.describe_state(item), name)
        return JSONResponse(
            {
                "ok": outcome.reason is None,
                "changed": outcome.changed,
                "message": outcome.reason or f"#{item['id_task_item']}: {review.describe_state(item)}",
                "id": item["id_task_item"],
                "status": item["status"],
                "html": card_html(request, item),
            }
        )

    def _version(data: dict[str, Any]) -> str:
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise UsageError("brak wersji pozycji w żądaniu - odśwież stronę")
        return version

    async def decide(request: Request) -> Response:
        id_item = int(request.path_params["id_item"])

        def action(db: MySQL, data: dict[str, Any], name: str, sid: str) -> review.Outcome:
            decision = data.get("decision")
            version = _version(data)
            if decision == "accepted" and data.get("hunks") is not None:
                chosen = data["hunks"]
                if not isinstance(chosen, list) or not all(isinstance(i, int) for i in chosen):
                    raise UsageError("hunks: oczekiwano listy numerów zmian")
                return review.accept_hunks(db, id_item, chosen, name, sid, version)
            if decision not in review.DECISIONS:
                raise UsageError(f"nieznana decyzja {decision!r}")
            item = review.get_item(db, id_item)
            changed, refused = review.set_decision(
                db,
                int(item["id_task"]),
                [id_item],
                decision,
                name,
                None,
                session=sid,
                expected={id_item: version},
            )
            if refused and review.get_item(db, id_item)["status"] == decision:
                # Drugie kliknięcie albo drugi recenzent z tą samą decyzją: już jest, jak chciano.
                return review.Outcome(False, None, id_item)
            return review.Outcome(bool(changed), refused[0][1] if refused else None, id_item)

        return await decision_call(request, action)

    async def edit(request: Request) -> Response:
        id_item = int(request.path_params["id_item"])

        def action(db: MySQL, data: dict[str, Any], name: str, sid: str) -> review.Outcome:
            text = data.get("text")
            if not isinstance(text, str):
                raise UsageError("brak tekstu poprawki")
            return review.edit_and_accept(db, id_item, text, name, sid, _version(data))

        return await decision_call(request, action)

    async def undo(request: Request) -> Response:
        data, name, refusal = await reviewer_write(request)
        if refusal is not None:
            return refusal
        id_task = int(request.path_params["id_task"])
        sid = request.session["sid"]

        def work(db: MySQL) -> tuple[review.Outcome, dict[str, Any] | None]:
            get_task(db, id_task)
            db.commit()
            outcome = review.undo_last(db, id_task, sid, name)
            return outcome, review.get_item(db, outcome.id_item) if outcome.id_item else None

        try:
            outcome, item = await call_db(work)
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

    async def accept_shown(request: Request) -> Response:
        data, name, refusal = await reviewer_write(request)
        if refusal is not None:
            return refusal
        id_task = int(request.path_params["id_task"])
        try:
            shown = shown_signer.loads(str(data.get("shown") or ""), max_age=SHOWN_MAX_AGE_S)
        except BadSignature:
            return JSONResponse(
                {
                    "ok": False,
                    "message": "lista pokazanych pozycji jest nieważna lub przeterminowana - odśwież stronę",
                },
                status_code=400,
            )
        if shown.get("sid") != request.session["sid"] or shown.get("task") != id_task:
            return JSONResponse(
                {"ok": False, "message": "lista pokazanych pozycji pochodzi z innej sesji lub zadania"},
                status_code=400,
            )
        expected = {int(i): str(v) for i, v in shown.get("items", [])}
        sid = request.session["sid"]

        def work(db: MySQL) -> tuple[list[int], list[tuple[int, str]]]:
            if not expected:
                return [], []
            return review.set_decision(
                db, id_task, list(expected), "accepted", name, None, session=sid, expected=expected
            )

        try:
            changed, refused = await call_db(work)
        except (AilexiaError, pymysql.MySQLError) as exc:
            return error_response(request, exc)
        log.info(
            "zadanie %s: akceptacja strony - %s pozycji, odmówiono %s (%s)",
            id_task,
            len(changed),
            len(refused),
            name,
        )
        return JSONResponse(
            {
                "ok": True,
                "message": f"zaakceptowano {len(changed)} pozycji, odmówiono {len(refused)}",
                "accepted": changed,
                "refused": [{"id": i, "reason": r} for i, r in refused],
            }
        )

    # --- eksport ---

    async def export_start(request: Request) -> Response:
        _data, problem = await _read_write(request)
        if problem:
            return _refused(request, templates, 403, problem)
        id_task = int(request.path_params["id_task"])
        if export_runner is None:
            return _refused(
                request, templates, 503, "eksport z tej strony jest niedostępny (serwer bez Dagstera)"
            )
        try:
            await call_db(lambda db: get_task(db, id_task))
        except (AilexiaError, pymysql.MySQLError) as exc:
            return error_response(request, exc)
        with exports_lock:
            running = exports.get(id_task, {}).get("state") == "running"
            if not running:
                exports[id_task] = {"state": "running", "started": time.time(), "ok": None, "message": None}
        if not running:
            log.info(
                "zadanie %s: eksport uruchomiony ze strony przeglądu (%s)",
                id_task,
                request.session.get("name") or "bez nazwy",
            )
            threading.Thread(
                target=_run_export, args=(id_task,), name=f"export-{id_task}", daemon=True
            ).start()
        return RedirectResponse(f"/tasks/{id_task}/export", status_code=303)

    def _run_export(id_task: int) -> None:
        try:
            ok, message = export_runner(id_task)  # type: ignore[misc]
        except Exception as exc:  # wątek tła: błąd musi trafić na stronę, nie zniknąć
            ok, message = False, f"eksport nie wystartował: {exc}"
        with exports_lock:
            exports[id_task].update(state="done", ok=ok, message=message, finished=time.time())

    async def export_page(request: Request) -> Response:
        id_task = int(request.path_params["id_task"])
        with exports_lock:
            state = dict(exports.get(id_task, {}))

        def load(db: MySQL) -> tuple[dict[str, Any], review.ExportReport]:
            task_row = get_task(db, id_task)
            db.commit()
            return task_row, review.export_report(db, id_task)

        try:
            task_row, report = await call_db(load)
        except (AilexiaError, pymysql.MySQLError) as exc:
            return error_response(request, exc)
        return page(
            request,
            "export.html",
            {
                "task": task_row,
                "run": report.run,
                "stats": report.stats,
                "problems": report.problems,
                "problems_limit": review.EXPORT_PROBLEMS_SHOWN,
                "state": state,
                "export_enabled": export_runner is not None,
            },
        )

    routes = [
        Route("/", index),
        Route("/tasks/{id_task:int}", task_items),
        Route("/tasks/{id_task:int}/export", export_page),
        Route("/tasks/{id_task:int}/export", export_start, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/reviewer", set_name, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/items/{id_item:int}/decide", decide, methods=["POST"]),
        Route("/api/items/{id_item:int}/edit", edit, methods=["POST"]),
        Route("/api/tasks/{id_task:int}/undo", undo, methods=["POST"]),
        Route("/api/tasks/{id_task:int}/accept-shown", accept_shown, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE_S,
            same_site="strict",
        ),
        Middleware(_auth_middleware, token=token, templates=templates),
    ]
    return Starlette(routes=routes, middleware=middleware)
