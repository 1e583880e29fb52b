"""Dostęp do strony przeglądu: token, sesja w podpisanym ciasteczku, CSRF, ``Origin``, imię recenzenta.

Dostęp jak w Jupyterze: token (``REVIEW_TOKEN`` albo losowy, wypisany przy starcie) w adresie
``/?token=…`` zakłada sesję w podpisanym ciasteczku (HttpOnly, SameSite=Strict); każda strona
i każdy zapis bez ważnego tokenu lub sesji dostaje 401 i niczego nie zmienia. Zapisy wymagają
nagłówka ``Origin`` tego serwera i tokenu CSRF z sesji. Imię recenzenta (``approved_by``) jest
pytane raz i trzymane w sesji.
"""

import hashlib
import hmac
import secrets
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lib.db_utils import get_logger
from lib.errors import UsageError
from lib.review.rules import check_reviewer
from lib.web.state import review_state
from lib.web.views import here_without_token, refused, render, safe_next, wants_json

log = get_logger("review_web")

SESSION_COOKIE = "ailexia_review"
SESSION_MAX_AGE_S = 7 * 24 * 3600
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"

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


def cookie_secret(token: str) -> str:
    """Sekret ciasteczka sesji wyprowadzony z tokenu.

    Po restarcie z tym samym ``REVIEW_TOKEN`` sesje zostają ważne; nowy token je unieważnia.
    """
    return hmac.new(token.encode("utf-8"), b"ailexia-review-cookie", hashlib.sha256).hexdigest()


def _fingerprint(token: str) -> str:
    """Odcisk tokenu trzymany w sesji (zmiana tokenu unieważnia stare sesje)."""
    return hmac.new(token.encode("utf-8"), b"ailexia-review-session", hashlib.sha256).hexdigest()[:32]


def same_secret(a: str, b: str) -> bool:
    """Porównanie sekretów w stałym czasie."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def start_session(session: dict[str, Any], token: str) -> None:
    """Zapisuje w sesji zalogowanie tokenem; identyfikator sesji i token CSRF zostają, jeśli były."""
    session["auth"] = _fingerprint(token)
    session.setdefault("sid", secrets.token_hex(16))
    session.setdefault("csrf", secrets.token_urlsafe(32))


def logged_in(session: dict[str, Any], token: str) -> bool:
    """Czy sesja jest zalogowana bieżącym tokenem."""
    return same_secret(str(session.get("auth", "")), _fingerprint(token))


def same_origin(request: Request) -> bool:
    """Czy zapis pochodzi z tej samej strony (nagłówek ``Origin`` = adres tego serwera).

    Przeglądarki wysyłają ``Origin`` przy każdym POST (formularz i ``fetch``); zapis bez niego
    albo z innego adresu jest odrzucany.
    """
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if not origin or not host:
        return False
    return origin.rstrip("/") == f"{request.url.scheme}://{host}"


# --- warstwa pośrednia ----------------------------------------------------------------------------


def auth_middleware(app: ASGIApp) -> ASGIApp:
    """Warstwa dostępu: token albo sesja dla każdej strony, ``Origin`` dla każdego zapisu.

    Pliki statyczne (CSS, JS, bez danych) są dostępne bez tokenu. ``POST /login`` (formularz
    tokenu) jest jedynym zapisem bez sesji. Token CSRF sprawdzają same widoki zapisu
    (``read_write``), bo leży w treści żądania. Każda odpowiedź dostaje ``SECURITY_HEADERS``.
    Warstwa musi stać za ``SessionMiddleware`` (czyta ``scope["session"]``).
    """
    return partial(_secured, app)


async def _secured(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Dokłada nagłówki bezpieczeństwa do odpowiedzi i przepuszcza żądanie przez ``_guarded``."""
    if scope["type"] != "http":
        await app(scope, receive, send)
        return

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    await _guarded(app, scope, receive, send_secured)


async def _guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Sprawdza token lub sesję i ``Origin``; bez nich odpowiada 401/403 i nie woła aplikacji."""
    if scope["path"].startswith("/static/"):
        await app(scope, receive, send)
        return
    request = Request(scope, receive)
    token = review_state(request).token
    session = scope["session"]
    supplied = request.query_params.get("token")
    if supplied is not None:
        if not same_secret(supplied, token):
            log.warning("odmowa dostępu: zły token w adresie (%s %s)", request.method, request.url.path)
            await unauthorized(request, "zły token")(scope, receive, send)
            return
        start_session(session, token)
    elif not logged_in(session, token) and not (request.url.path == "/login" and request.method == "POST"):
        await unauthorized(request, None)(scope, receive, send)
        return
    if request.method not in ("GET", "HEAD") and not same_origin(request):
        log.warning("odmowa zapisu: obcy lub brakujący nagłówek Origin (%s)", request.url.path)
        message = "zapis odrzucony: żądanie nie pochodzi z tej strony (Origin)"
        await refused(request, 403, message)(scope, receive, send)
        return
    await app(scope, receive, send)


def unauthorized(request: Request, problem: str | None) -> Response:
    """Odpowiedź 401: JSON dla wywołań strony, formularz tokenu dla przeglądarki."""
    message = "brak dostępu: " + (
        problem or "otwórz adres z tokenem wypisany przez review.py serve albo podaj token"
    )
    if wants_json(request) or request.method not in ("GET", "HEAD"):
        return JSONResponse({"ok": False, "message": message}, status_code=401)
    return review_state(request).templates.TemplateResponse(
        request,
        "login.html",
        {"message": message, "next": here_without_token(request), "csrf": ""},
        status_code=401,
    )


async def read_write(request: Request) -> tuple[dict[str, Any], str | None]:
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
    if not expected or not isinstance(supplied, str) or not same_secret(supplied, expected):
        return data, "zapis odrzucony: brak lub zły token CSRF - odśwież stronę"
    return data, None


# --- widoki logowania i imienia ---------------------------------------------------------------------


async def login(request: Request) -> Response:
    """``POST /login``: formularz tokenu (i opcjonalnie imienia); jedyny zapis bez sesji."""
    token = review_state(request).token
    form = await request.form()
    supplied = str(form.get("token") or "")
    next_url = safe_next(form.get("next"))
    if not same_secret(supplied, token):
        return render(request, "login.html", {"message": "brak dostępu: zły token", "next": next_url}, 401)
    start_session(request.session, token)
    name = str(form.get("name") or "").strip()
    if name:
        try:
            request.session["name"] = check_reviewer(name)
        except UsageError:
            pass
    return RedirectResponse(next_url, status_code=303)


async def set_name(request: Request) -> Response:
    """``POST /reviewer``: zapisuje w sesji imię recenzenta (``approved_by`` jego decyzji)."""
    data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    try:
        request.session["name"] = check_reviewer(str(data.get("name") or ""))
    except UsageError:
        return render(
            request,
            "name.html",
            {"next": safe_next(data.get("next")), "message": "podaj imię (1-64 znaki)"},
            400,
        )
    return RedirectResponse(safe_next(data.get("next")), status_code=303)


async def logout(request: Request) -> Response:
    """``POST /logout``: czyści sesję i pokazuje formularz tokenu."""
    _data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    request.session.clear()
    return render(request, "login.html", {"message": "wylogowano", "next": "/"})
