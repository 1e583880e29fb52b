"""Strony operatora: źródła i modele (to samo co ``ailexia source|model``, bez SQL-a).

Handlery wołają te same funkcje co polecenie ``ailexia`` (``lib.admin.sources``,
``lib.admin.models``, ``lib.ai.probe``), więc walidacja i komunikaty są te same. Zasady dostępu
jak na stronie przeglądu (``lib.web.auth``): strony wymagają sesji tokenu, każdy zapis - także
tokenu CSRF i nagłówka ``Origin`` tego serwera. Test źródła i test modelu są zapisami (POST):
test źródła zapisuje stan połączenia, test modelu kosztuje jedno zapytanie do modelu.
Hasło źródła idzie z formularza prosto do ``add_source`` (szyfrowane jak ``--password-stdin``)
i nie wraca w żadnej odpowiedzi ani w logu.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import pymysql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from lib.admin import models, sources
from lib.db_local import MySQL, local_error_message
from lib.db_utils import get_logger
from lib.errors import AiError, AiItemError, AilexiaError, ConfigError, RemoteError
from lib.web.auth import read_write
from lib.web.state import call_db, review_state
from lib.web.views import refused, render, wants_json

log = get_logger("review_web")

_T = TypeVar("_T")

# Pola formularza źródła oddawane z powrotem po odmowie (nigdy hasło).
SOURCE_FIELDS = ("alias", "type", "host", "port", "db", "user", "password_env", "ssl")
MODEL_FIELDS = (
    "name",
    "model",
    "base_url",
    "api_key_env",
    "price_in",
    "price_out",
    "pack_items",
    "batch",
)


class Refusal(Exception):
    """Odmowa operacji operatora: kod HTTP i jedno zdanie (z wyjątku ``lib`` albo bazy)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- wspólne -----------------------------------------------------------------------------------


def refusal_of(exc: Exception) -> Refusal:
    """Kod HTTP i jedna linia komunikatu dla błędu z ``lib.admin``/``lib.ai`` albo z bazy lokalnej.

    Błąd walidacji (kod wyjścia 2 polecenia ``ailexia``) to 400, źródło albo model nieosiągalne
    - 502, reszta - 500. Tekst jak w ``ailexia``: jedna linia.
    """
    if isinstance(exc, pymysql.MySQLError):
        return Refusal(500, local_error_message(exc))
    message = " ".join(str(exc).split())
    if isinstance(exc, AilexiaError) and exc.exit_code == 2:
        return Refusal(400, message)
    if isinstance(exc, RemoteError | AiError | AiItemError):
        return Refusal(502, message)
    return Refusal(500, message)


async def admin_call(request: Request, function: Callable[[MySQL], _T]) -> _T:
    """``function`` na nowym połączeniu lokalnym w puli wątków; błędy ``lib`` i bazy jako ``Refusal``."""
    try:
        return await call_db(request, function)
    except (AilexiaError, pymysql.MySQLError) as exc:
        raise refusal_of(exc) from None


async def blocking_call(function: Callable[..., _T], *args: Any) -> _T:
    """Wywołanie blokujące (sieć: model AI) w puli wątków; błędy ``lib`` jako ``Refusal``."""
    try:
        return await run_in_threadpool(function, *args)
    except (AilexiaError, pymysql.MySQLError) as exc:
        raise refusal_of(exc) from None


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Strona operatora z komunikatem po przekierowaniu (``notice`` z sesji, pokazany raz)."""
    notice = request.session.pop("notice", None)
    return render(request, name, {"notice": notice, **context}, status_code)


def done(request: Request, target: str, message: str, data: dict[str, Any]) -> Response:
    """Odpowiedź udanego zapisu: JSON dla ``fetch`` albo przekierowanie z komunikatem (POST-redirect-GET)."""
    if wants_json(request):
        return JSONResponse({"ok": True, "message": message, **data})
    request.session["notice"] = {"ok": True, "message": message}
    return RedirectResponse(target, status_code=303)


def failed(request: Request, refusal: Refusal) -> Response:
    """Odmowa widoku do odczytu albo przycisku: JSON albo strona błędu z jednym zdaniem."""
    return refused(request, refusal.status, refusal.message)


def text_field(data: dict[str, Any], name: str) -> str | None:
    """Pole formularza jako tekst bez spacji na brzegach; ``None``, gdy puste lub brak."""
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def int_field(data: dict[str, Any], name: str, option: str) -> int | None:
    """Pole liczbowe formularza (``None``, gdy puste).

    Raises:
        ConfigError: Wartość nie jest liczbą całkowitą (komunikat jak błąd argumentu ``ailexia``).
    """
    text = text_field(data, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{option}: oczekiwano liczby całkowitej, jest {text!r}") from None


def flag_field(data: dict[str, Any], name: str) -> bool:
    """Pole wyboru formularza (``on``/``1``/``true``) albo wartość logiczna z JSON."""
    value = data.get(name)
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("on", "1", "true", "tak", "yes")


def kept(data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Wartości formularza do ponownego wyświetlenia po odmowie (tylko wymienione pola)."""
    return {name: data.get(name) for name in fields if data.get(name) is not None}


# --- źródła ------------------------------------------------------------------------------------


async def sources_page(request: Request) -> Response:
    """``GET /sources``: lista źródeł (bez haseł) i formularz dodania; JSON = ``ailexia source list --json``."""
    try:
        rows = await admin_call(request, sources.list_sources)
    except Refusal as refusal:
        return failed(request, refusal)
    if wants_json(request):
        return JSONResponse(rows)
    return page(request, "sources.html", source_context(rows, {}, None))


def source_context(rows: list[dict[str, Any]], form: dict[str, Any], message: str | None) -> dict[str, Any]:
    """Dane szablonu ``sources.html``: źródła z opisem adresu i hasła, formularz, komunikat odmowy."""
    shown = [
        {
            **row,
            "address": sources.source_address(row),
            "password_text": sources.password_text(row["password"]),
        }
        for row in rows
    ]
    return {"sources": shown, "form": form, "message": message, "db_types": sources.DB_TYPES}


def source_add_args(data: dict[str, Any]) -> dict[str, Any]:
    """Argumenty ``sources.add_source`` z formularza (nazwy pól jak opcje ``ailexia source add``)."""
    return {
        "alias": text_field(data, "alias") or "",
        "db_type": text_field(data, "type") or "",
        "host": text_field(data, "host"),
        "port": int_field(data, "port", "--port"),
        # Ścieżka pliku SQLite albo nazwa bazy; spacje na brzegach nie należą do nazwy.
        "db_name": text_field(data, "db") or "",
        "user": text_field(data, "user"),
        # Hasło bez obcinania: spacja może być jego częścią; puste pole = brak hasła.
        "password": str(data.get("password") or "") or None,
        "password_env": text_field(data, "password_env"),
        "use_ssl": flag_field(data, "ssl"),
    }


async def source_add(request: Request) -> Response:
    """``POST /sources``: rejestruje źródło jak ``ailexia source add`` (hasło zaszyfrowane)."""
    data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    settings = review_state(request).settings
    try:
        arguments = source_add_args(data)
        id_connection = await admin_call(request, lambda db: sources.add_source(db, settings, **arguments))
    except ConfigError as exc:
        refusal = refusal_of(exc)
    except Refusal as caught:
        refusal = caught
    else:
        alias = arguments["alias"]
        log.info("strona operatora: dodano źródło %r (id %s)", alias, id_connection)
        message = f"dodano źródło {alias!r} (id {id_connection}); sprawdź je przyciskiem „Testuj”"
        return done(request, "/sources", message, {"id": id_connection, "alias": alias})
    if wants_json(request):
        return JSONResponse({"ok": False, "message": refusal.message}, status_code=refusal.status)
    try:
        rows = await admin_call(request, sources.list_sources)
    except Refusal:
        rows = []
    context = source_context(rows, kept(data, SOURCE_FIELDS), refusal.message)
    return page(request, "sources.html", context, refusal.status)


async def source_test(request: Request) -> Response:
    """``POST /sources/{alias}/test``: wersja, użytkownik, odczyt, zapis, czas (``ailexia source test``)."""
    data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    alias = request.path_params["alias"]
    settings = review_state(request).settings
    table, schema = text_field(data, "table"), text_field(data, "schema")
    try:
        result = await admin_call(
            request, lambda db: sources.check_source(db, settings, alias, table=table, schema=schema)
        )
    except Refusal as refusal:
        if wants_json(request):
            return failed(request, refusal)
        context = {"alias": alias, "result": None, "message": refusal.message}
        return page(request, "source_test.html", context, refusal.status)
    if wants_json(request):
        return JSONResponse(result)
    return page(request, "source_test.html", {"alias": alias, "result": result, "message": None})


async def source_tables(request: Request) -> Response:
    """``GET /sources/{alias}/tables``: tabele, kolumny tekstowe, wiersze, klucz (``ailexia source tables``)."""
    alias = request.path_params["alias"]
    schema = request.query_params.get("schema") or None
    settings = review_state(request).settings
    try:
        rows = await admin_call(request, lambda db: sources.source_tables(db, settings, alias, schema))
    except Refusal as refusal:
        return failed(request, refusal)
    if wants_json(request):
        return JSONResponse(rows)
    return page(request, "source_tables.html", {"alias": alias, "schema": schema, "tables": rows})


# --- modele ------------------------------------------------------------------------------------


async def models_page(request: Request) -> Response:
    """``GET /models``: lista modeli i formularz dodania; JSON = ``ailexia model list --json``."""
    try:
        rows = await admin_call(request, models.list_models)
    except Refusal as refusal:
        return failed(request, refusal)
    if wants_json(request):
        return JSONResponse(rows)
    return page(request, "models.html", {"models": rows, "form": {}, "message": None})


def model_add_args(data: dict[str, Any]) -> dict[str, Any]:
    """Argumenty ``models.add_model`` z formularza (nazwy pól jak opcje ``ailexia model add``)."""
    return {
        "name": text_field(data, "name") or "",
        "model": text_field(data, "model") or "",
        "base_url": text_field(data, "base_url"),
        "api_key_env": text_field(data, "api_key_env") or "",
        "price_in": models.parse_price("--price-in", text_field(data, "price_in") or ""),
        "price_out": models.parse_price("--price-out", text_field(data, "price_out") or ""),
        "pack_items": int_field(data, "pack_items", "--pack-items"),
        "batch": flag_field(data, "batch"),
    }


async def model_add(request: Request) -> Response:
    """``POST /models``: rejestruje model jak ``ailexia model add``."""
    data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    try:
        arguments = model_add_args(data)
        id_model = await admin_call(request, lambda db: models.add_model(db, **arguments))
    except ConfigError as exc:
        refusal = refusal_of(exc)
    except Refusal as caught:
        refusal = caught
    else:
        name = arguments["name"]
        log.info("strona operatora: dodano model %r (id %s)", name, id_model)
        message = f"dodano model {name!r} (id {id_model}); sprawdź go przyciskiem „Testuj”"
        return done(request, "/models", message, {"id": id_model, "name": name})
    if wants_json(request):
        return JSONResponse({"ok": False, "message": refusal.message}, status_code=refusal.status)
    try:
        rows = await admin_call(request, models.list_models)
    except Refusal:
        rows = []
    context = {"models": rows, "form": kept(data, MODEL_FIELDS), "message": refusal.message}
    return page(request, "models.html", context, refusal.status)


async def model_test(request: Request) -> Response:
    """``POST /models/{name}/test``: jedna krótka korekta - odpowiedź, czas, tokeny, koszt."""
    # Klient AI (openai) dopiero tu, jak w ``ailexia model test``: reszta strony go nie potrzebuje.
    from lib.ai.probe import probe_model

    _data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    name = request.path_params["name"]
    settings = review_state(request).settings
    try:
        model_row = await admin_call(request, lambda db: models.get_model(db, name))
        result = await blocking_call(probe_model, settings, model_row)
    except Refusal as refusal:
        if wants_json(request):
            return failed(request, refusal)
        context = {"name": name, "result": None, "message": refusal.message}
        return page(request, "model_test.html", context, refusal.status)
    log.info("strona operatora: test modelu %r (%s ms)", name, result["latency_ms"])
    if wants_json(request):
        return JSONResponse(result)
    return page(request, "model_test.html", {"name": name, "result": result, "message": None})
