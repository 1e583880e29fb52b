"""Zadania (``task``) bez SQL-a operatora: dodanie ze sprawdzeniem w źródle, lista, stan, zmiany statusu.

Zmiany statusu to te same zapisy, które dokumentacja opisuje jako ``UPDATE task SET status=...``:
runy czytają status na granicy partii (``lib.runtime.control.make_stop_check``), a sensor podejmuje
``new``/``resync`` (``lib.runtime.scheduling``). Każda zmiana jest warunkowa (``WHERE status IN ...``),
więc nie nadpisuje statusu, który run albo sensor właśnie ustawił.
"""

from typing import Any, NamedTuple

from lib import db_remote
from lib.admin.models import get_model
from lib.admin.sources import open_source_by_alias
from lib.db_local import MySQL
from lib.errors import ConfigError, RemoteError, UsageError
from lib.load_config import Settings
from lib.runtime.status import collect_status
from lib.task import get_task

AI_ACTIONS = ("correct", "translate")


class Transition(NamedTuple):
    """Zmiana statusu zadania: status docelowy, powód pauzy i statusy, z których wolno ją zrobić."""

    status: str
    pause_reason: str | None
    allowed_from: tuple[str, ...]
    refusal: str


# pause: także zadanie completed/error - jego run AI czyta status i zatrzymuje się (pauza ręczna);
# resume/resync: status resync podejmuje sensor, a skan przerwany pauzą jest wznawiany od znacznika.
TRANSITIONS: dict[str, Transition] = {
    "pause": Transition(
        "paused",
        "manual",
        ("new", "queued", "in_progress", "verifying", "resync", "paused", "completed", "error"),
        "zadanie zamknięte nie może być wstrzymane",
    ),
    "resume": Transition("resync", None, ("paused",), "wznowić można tylko zadanie wstrzymane (paused)"),
    "resync": Transition(
        "resync",
        None,
        ("new", "paused", "completed", "error", "resync"),
        "resync możliwy dla zadania new, paused, completed albo error (trwający run: poczekaj albo wstrzymaj)",
    ),
    "cancel": Transition(
        "cancelled",
        None,
        ("new", "queued", "in_progress", "verifying", "resync", "paused", "completed", "error"),
        "zadanie jest już zamknięte",
    ),
    "archive": Transition(
        "archived",
        None,
        ("new", "resync", "paused", "completed", "error", "cancelled"),
        "trwa run zadania; najpierw ailexia task cancel albo poczekaj na koniec",
    ),
}


def _table_name(rconn: db_remote.RemoteConn, target: db_remote.Target) -> str:
    """Nazwa tabeli do ``task.table_name`` w pisowni katalogu (``schemat.tabela`` poza domyślnym schematem)."""
    if target.schema is None or target.schema == rconn.dialect["default_schema"]:
        return target.table
    return f"{target.schema}.{target.table}"


def add_task(
    db: MySQL,
    settings: Settings,
    *,
    source: str,
    table: str,
    column: str,
    key: str | None = None,
    model: str | None = None,
    action: str = "correct",
    source_lang: str | None = None,
    target_lang: str | None = None,
    export_column: str | None = None,
    pilot: int | None = None,
    cursor_column: str | None = None,
    id_user: int = 1,
) -> int:
    """Dodaje zadanie po sprawdzeniu tabeli, kolumny, klucza i kolumny eksportu w źródle.

    Sprawdzenie to ta sama reguła, którą stosuje synchronizacja (``db_remote.resolve_target``):
    zła nazwa albo tabela bez użytecznego klucza kończy się ``ConfigError`` (kod 2) z jednym
    zdaniem, a do bazy nic nie trafia.

    Args:
        db: Połączenie lokalne.
        settings: Ustawienia.
        source: Alias źródła.
        table: Tabela (``schemat.tabela`` dla pgsql/mssql poza domyślnym schematem).
        column: Kolumna tekstowa.
        key: Kolumny klucza po przecinku albo ``None`` (klucz główny / indeks unikalny).
        model: Nazwa modelu AI albo ``None`` (zadanie tylko synchronizuje).
        action: ``correct`` albo ``translate``.
        source_lang: Język źródłowy (``None`` = wykrywany).
        target_lang: Język docelowy (wymagany przy tłumaczeniu).
        export_column: Kolumna zapisu eksportu (``None`` = ta sama kolumna).
        pilot: Liczba pozycji pilotażu (``task.ai_pilot_items``) albo ``None``.
        cursor_column: Kolumna kursora resyncu (``task.cursor_column``, np. ``updated_at``) albo
            ``None`` (resync porównuje odciski zakresów kluczy).
        id_user: Właściciel zadania.

    Returns:
        ``id_task`` nowego zadania (status ``new``: sensor podejmie synchronizację).

    Raises:
        ConfigError: Zły argument, nieznane źródło lub model, zła nazwa w źródle.
        RemoteError: Źródło nieosiągalne.
    """
    if action not in AI_ACTIONS:
        raise ConfigError(f"--action: {action!r} (dozwolone: {', '.join(AI_ACTIONS)})")
    if action == "translate" and not target_lang:
        raise ConfigError("--action translate wymaga --to (język docelowy, np. en)")
    if action == "correct" and target_lang:
        raise ConfigError("--to ma sens tylko z --action translate")
    for option, lang in (("--from", source_lang), ("--to", target_lang)):
        if lang and len(lang) > 16:
            raise ConfigError(f"{option}: kod języka najwyżej 16 znaków (jest {lang!r})")
    extra: dict[str, Any] = {}
    if pilot is not None:
        if pilot < 0:
            raise ConfigError(f"--pilot: liczba pozycji nie może być ujemna (jest {pilot})")
        extra["ai_pilot_items"] = pilot
    id_model = int(get_model(db, model)["id_ai_model"]) if model else None
    rconn, conn_row = open_source_by_alias(db, settings, source)
    try:
        extra_columns = [export_column] if export_column else []
        try:
            target = db_remote.resolve_target(rconn, table, column, key, extra_columns, cursor_column)
        except RemoteError as exc:
            raise ConfigError(str(exc)) from None
        table_name = _table_name(rconn, target)
    finally:
        db_remote.close(rconn)
    columns = {
        "id_user": id_user,
        "id_database_connection": int(conn_row["id_database_connection"]),
        "id_ai_model": id_model,
        "table_name": table_name,
        "column_name": target.column,
        "key_column": ",".join(c.name for c in target.key_columns) if key else None,
        "export_column": target.extra_columns[0] if export_column else None,
        "ai_action": action,
        "source_lang": source_lang,
        "target_lang": target_lang,
        "cursor_column": cursor_column,
        **extra,
    }
    names = ", ".join(f"`{name}`" for name in columns)
    db.execute(
        f"INSERT INTO task ({names}, status) VALUES ({', '.join(['%s'] * len(columns))}, 'new')",
        tuple(columns.values()),
    )
    id_task = int(db.query_value("SELECT LAST_INSERT_ID()"))
    db.commit()
    return id_task


def list_tasks(settings: Settings) -> list[dict[str, Any]]:
    """Stan wszystkich zadań (ten sam widok co ``python sync.py --status``)."""
    return collect_status(settings)


def show_task(db: MySQL, settings: Settings, id_task: int) -> dict[str, Any]:
    """Stan jednego zadania: status, etap, postęp, pozycje po statusie, tokeny, koszt i ustawienia.

    Raises:
        UsageError: Nieznane zadanie (kod 2).
    """
    state = collect_status(settings, id_task)[0]
    config = db.query_one(
        "SELECT t.key_column, t.export_column, t.ai_action, t.source_lang, t.target_lang, t.run_id, "
        "t.created_at, t.error_log, m.name AS model FROM task t "
        "LEFT JOIN ai_model m ON m.id_ai_model=t.id_ai_model WHERE t.id_task=%s",
        (id_task,),
    )
    db.commit()
    assert config is not None  # collect_status już sprawdził, że zadanie istnieje
    created = config.pop("created_at")
    state["last_error"] = config.pop("error_log") or None
    return {**state, **config, "created_at": created.isoformat(sep=" ") if created else None}


def change_status(db: MySQL, id_task: int, action: str) -> dict[str, Any]:
    """Zmienia status zadania (pause, resume, resync, cancel, archive) warunkowo.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        action: Klucz ``TRANSITIONS``.

    Returns:
        ``{"id_task", "before", "after", "changed"}``; ``changed`` fałszywe, gdy status już był docelowy.

    Raises:
        UsageError: Nieznane zadanie albo zmiana niedozwolona z bieżącego statusu (kod 2).
    """
    transition = TRANSITIONS[action]
    before = get_task(db, id_task)["status"]
    db.commit()
    marks = ", ".join(["%s"] * len(transition.allowed_from))
    changed = db.execute(
        f"UPDATE task SET status=%s, pause_reason=%s WHERE id_task=%s AND status IN ({marks})",
        (transition.status, transition.pause_reason, id_task, *transition.allowed_from),
    )
    db.commit()
    if not changed:
        now = get_task(db, id_task)["status"]
        db.commit()
        if now == transition.status:
            return {"id_task": id_task, "before": before, "after": now, "changed": False}
        raise UsageError(f"zadanie {id_task} ma status {now}: {transition.refusal}")
    return {"id_task": id_task, "before": before, "after": transition.status, "changed": True}
