"""Widoki strony przeglądu: szablony, odpowiedzi HTML/JSON, różnica słów w HTML, karta pozycji.

Szablony leżą w ``lib/web/templates``, pliki statyczne w ``lib/web/static``.
Odpowiedzi błędów są jednym zdaniem po polsku: JSON dla wywołań ``fetch`` i API, prosta
strona dla przeglądarki.
"""

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from lib.ai.quality.guardrails import flag_reasons
from lib.errors import AilexiaError, UsageError
from lib.review.diff import Segment, diff_segments, show_whitespace
from lib.review.items import parse_summary
from lib.review.rules import item_version
from lib.web.state import review_state

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

# Statusy, przy których strona pokazuje przyciski decyzji i wybór zmian.
DECIDABLE = ("processed", "rejected", "conflict", "accepted")


def make_templates() -> Jinja2Templates:
    """Szablony strony z filtrem ``ws`` (białe znaki zmiany jako widoczne symbole)."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters["ws"] = ws_markup
    return templates


# --- różnica i karta pozycji -------------------------------------------------------------------------


def ws_markup(text: Any) -> Markup:
    """Tekst zmiany z białymi znakami zamienionymi na widoczne symbole (``show_whitespace``)."""
    parts = []
    for chunk, is_mark in show_whitespace("" if text is None else str(text)):
        parts.append(f'<span class="ws">{escape(chunk)}</span>' if is_mark else str(escape(chunk)))
    return Markup("".join(parts))


def diff_markup(segments: list[Segment], pickable: bool) -> Markup:
    """HTML różnicy słów: ``<del>``/``<ins>`` w zmianach, które (gdy ``pickable``) można odznaczyć.

    Args:
        segments: Wynik ``diff_segments``.
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
            inner += f"<del>{ws_markup(hunk.old)}</del>"
        if hunk.new:
            inner += f"<ins>{ws_markup(hunk.new)}</ins>"
        if pickable:
            parts.append(
                f'<span class="hunk" data-hunk="{hunk.index}" role="checkbox" aria-checked="true" tabindex="0" '
                f'title="kliknij, aby pominąć tę zmianę">{inner}</span>'
            )
        else:
            parts.append(f'<span class="hunk">{inner}</span>')
    return Markup("".join(parts))


def item_view(item: dict[str, Any]) -> dict[str, Any]:
    """Dane jednej pozycji do szablonu: różnica, zmiany modelu, flagi z powodami słowami, wersja, decyzja."""
    decidable = (
        item["status"] in DECIDABLE
        and item.get("deleted_at") is None
        and item.get("text_corrected") is not None
    )
    segments = diff_segments(item.get("text_original"), item.get("text_corrected"))
    hunks = sum(1 for s in segments if s.hunk is not None)
    summary = parse_summary(item.get("change_summary"))
    edits = [e for e in summary["edits"] if isinstance(e, dict)]
    flags = _flag_codes(item.get("ai_flags"))
    return {
        **item,
        "diff": diff_markup(segments, pickable=decidable and hunks > 1)
        if item.get("text_corrected") is not None
        else None,
        "hunk_count": hunks,
        "edits": edits,
        "counts": summary["counts"],
        "summary_invalid": summary.get("invalid"),
        "version": item_version(item),
        "decidable": decidable,
        "flags": flags,
        "flag_reasons": flag_reasons(flags),
    }


def _flag_codes(raw: Any) -> list[str]:
    """Kody flag z ``task_item.ai_flags`` (tablica JSON); zły JSON pokazany jako jeden kod."""
    if not raw:
        return []
    try:
        codes = json.loads(raw)
    except ValueError:
        return [str(raw)]
    return [str(code) for code in codes] if isinstance(codes, list) else [str(codes)]


def card_html(request: Request, item: dict[str, Any]) -> str:
    """HTML karty jednej pozycji (odpowiedź na decyzję podmienia nim kartę na stronie)."""
    template = review_state(request).templates.get_template("_item.html")
    return template.render({"item": item_view(item), "csrf": request.session["csrf"]})


# --- odpowiedzi -------------------------------------------------------------------------------------


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Strona z szablonu ``name`` z tokenem CSRF i imieniem recenzenta z sesji (bez cache)."""
    context = {
        "csrf": request.session.get("csrf", ""),
        "reviewer": request.session.get("name"),
        **context,
    }
    templates = review_state(request).templates
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def ask_name(request: Request) -> Response:
    """Formularz imienia recenzenta (pytane raz, potem trzymane w sesji)."""
    return render(request, "name.html", {"next": here_without_token(request)})


def wants_json(request: Request) -> bool:
    """Czy odpowiedź ma być JSON (wywołania ``fetch`` strony i API), a nie HTML."""
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def refused(request: Request, status: int, message: str) -> Response:
    """Odpowiedź błędu (JSON albo prosta strona) z jednym zdaniem po polsku."""
    if wants_json(request) or request.method not in ("GET", "HEAD"):
        return JSONResponse({"ok": False, "message": message}, status_code=status)
    return review_state(request).templates.TemplateResponse(
        request,
        "error.html",
        {"message": message, "csrf": request.session.get("csrf", "")},
        status_code=status,
    )


def error_response(request: Request, exc: Exception) -> Response:
    """Odpowiedź na błąd z ``lib`` albo z bazy: 404 dla nieistniejących, 400 użycie, 500 reszta."""
    if isinstance(exc, UsageError):
        status = 404 if "nie istnieje" in str(exc) else 400
        return refused(request, status, str(exc))
    if isinstance(exc, AilexiaError):
        return refused(request, 500, str(exc))
    return refused(request, 500, f"błąd lokalnej bazy: {exc}")


def here_without_token(request: Request) -> str:
    """Bieżąca ścieżka z parametrami, bez tokenu (adres powrotu po formularzu)."""
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
    return request.url.path + (f"?{query}" if query else "")


def safe_next(value: Any) -> str:
    """Adres powrotu po formularzu: tylko ścieżka tego serwera (bez przekierowań na zewnątrz)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
