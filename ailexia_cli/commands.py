"""Obsługa podpoleceń ``ailexia``: wywołanie funkcji z ``lib.admin`` i wypisanie wyniku.

Każda funkcja ``cmd_*`` dostaje połączenie lokalne, ustawienia i argumenty, zwraca kod wyjścia.
Cała logika (walidacja, SQL) jest w ``lib.admin``; tu tylko wejście i wyjście.
"""

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from ailexia_cli.output import print_fields, print_json, print_table
from lib.admin import demo, models, secrets, sources, tasks
from lib.db_local import MySQL
from lib.errors import ConfigError
from lib.load_config import Settings


def _emit(args: argparse.Namespace, data: Any, text: str) -> int:
    """Wypisuje JSON (``--json``) albo jedną linię tekstu; zwraca 0."""
    if args.json:
        print_json(data)
    else:
        print(text)
    return 0


def _read_password() -> str:
    """Hasło ze standardowego wejścia (pierwsza linia, bez końca linii); na terminalu bez echa."""
    if sys.stdin.isatty():
        password = getpass.getpass("hasło źródła: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError("--password-stdin: standardowe wejście nie zawiera hasła (pusta pierwsza linia)")
    return password


# --- źródła ------------------------------------------------------------------------------


def cmd_source_add(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia source add``."""
    password = _read_password() if args.password_stdin else None
    id_connection = sources.add_source(
        db,
        settings,
        alias=args.alias,
        db_type=args.type,
        host=args.host,
        port=args.port,
        db_name=args.db,
        user=args.user,
        password=password,
        password_env=args.password_env,
        use_ssl=args.ssl,
        id_user=args.id_user,
    )
    data = {"id": id_connection, "alias": args.alias}
    return _emit(
        args,
        data,
        f"dodano źródło {args.alias!r} (id {id_connection}); sprawdź: ailexia source test {args.alias}",
    )


def cmd_source_test(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia source test``."""
    result = sources.check_source(db, settings, args.alias, table=args.table, schema=args.schema)
    if args.json:
        print_json(result)
        return 0
    result = dict(result)
    checked = result["tables_checked"]
    result["read_text"] = (
        f"{'tak' if result['can_read'] else 'nie'} ({result['tables_readable']} z {checked} tabel)"
    )
    result["update_text"] = (
        f"{'tak' if result['can_update'] else 'nie'} ({result['tables_updatable']} z {checked} tabel)"
    )
    result["elapsed_text"] = f"{result['elapsed_ms']} ms"
    print_fields(
        result,
        [
            ("źródło", "alias"),
            ("typ", "type"),
            ("wersja serwera", "version"),
            ("użytkownik", "user"),
            ("odczyt (SELECT)", "read_text"),
            ("zapis (UPDATE)", "update_text"),
            ("czas", "elapsed_text"),
        ],
    )
    if result["export_refusal"]:
        print(f"eksport: {result['export_refusal']}")
    return 0


def cmd_source_tables(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia source tables``."""
    rows = sources.source_tables(db, settings, args.alias, args.schema)
    if args.json:
        print_json(rows)
        return 0
    shown = [{**row, "key_text": row["key"] or f"brak: {row['key_problem']}"} for row in rows]
    print_table(
        shown,
        [
            ("tabela", "table"),
            ("wiersze~", "rows_estimate"),
            ("odczyt", "can_read"),
            ("zapis", "can_update"),
            ("kolumny tekstowe", "text_columns"),
            ("klucz", "key_text"),
        ],
        "brak tabel",
    )
    return 0


def cmd_source_list(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia source list`` (nigdy hasła)."""
    rows = sources.list_sources(db)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["password_text"] = sources.password_text(row["password"])
        row["address"] = sources.source_address(row)
    print_table(
        rows,
        [
            ("id", "id"),
            ("alias", "alias"),
            ("typ", "type"),
            ("adres", "address"),
            ("użytkownik", "user"),
            ("ssl", "ssl"),
            ("hasło", "password_text"),
            ("status", "status"),
            ("zadania", "tasks"),
            ("ostatni błąd", "last_error"),
        ],
        "brak źródeł (dodaj: ailexia source add)",
    )
    return 0


def cmd_source_remove(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia source remove``."""
    id_connection = sources.remove_source(db, args.alias)
    return _emit(args, {"id": id_connection, "alias": args.alias}, f"usunięto źródło {args.alias!r}")


# --- modele ------------------------------------------------------------------------------


def cmd_model_add(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia model add``."""
    id_model = models.add_model(
        db,
        name=args.name,
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        price_in=models.parse_price("--price-in", args.price_in),
        price_out=models.parse_price("--price-out", args.price_out),
        pack_items=args.pack_items,
        batch=args.batch,
    )
    data = {"id": id_model, "name": args.name}
    return _emit(
        args, data, f"dodano model {args.name!r} (id {id_model}); sprawdź: ailexia model test {args.name}"
    )


def cmd_model_test(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia model test``."""
    # Klient AI (openai, ~0,6 s importu) tylko tu: pozostałe polecenia ailexia go nie potrzebują.
    from lib.ai.probe import probe_model

    model_row = models.get_model(db, args.name)
    db.commit()
    result = probe_model(settings, model_row)
    if args.json:
        print_json(result)
        return 0
    shown = {
        **result,
        "latency_text": f"{result['latency_ms']} ms",
        "tokens_text": f"{result['tokens_input']} wejściowych, {result['tokens_output']} wyjściowych",
        "cost_text": f"{result['cost_usd']:.6f} USD",
    }
    print_fields(
        shown,
        [
            ("model", "model"),
            ("tekst", "text"),
            ("odpowiedź", "answer"),
            ("poprawki", "edits"),
            ("czas", "latency_text"),
            ("tokeny", "tokens_text"),
            ("koszt", "cost_text"),
            ("format", "response_format"),
        ],
    )
    return 0


def cmd_model_list(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia model list``."""
    rows = models.list_models(db)
    if args.json:
        print_json(rows)
        return 0
    print_table(
        rows,
        [
            ("id", "id"),
            ("nazwa", "name"),
            ("model", "model"),
            ("serwer", "base_url"),
            ("klucz w", "api_key_env"),
            ("$/Mtok we", "price_in"),
            ("$/Mtok wy", "price_out"),
            ("paczka", "pack_items"),
            ("batch", "batch"),
            ("status", "status"),
            ("zadania", "tasks"),
        ],
        "brak modeli (dodaj: ailexia model add)",
    )
    return 0


# --- zadania -----------------------------------------------------------------------------


def cmd_task_add(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia task add``."""
    id_task = tasks.add_task(
        db,
        settings,
        source=args.source,
        table=args.table,
        column=args.column,
        key=args.key,
        model=args.model,
        action=args.action,
        source_lang=args.source_lang,
        target_lang=args.target_lang,
        export_column=args.export_column,
        pilot=args.pilot,
        cursor_column=args.cursor_column,
        id_user=args.id_user,
    )
    if args.json:
        print_json({"id_task": id_task})
    else:
        print(id_task)
    return 0


_TASK_COLUMNS = [
    ("id", "id_task"),
    ("źródło", "alias"),
    ("tabela.kolumna", "target"),
    ("status", "status_text"),
    ("etap", "sync_stage"),
    ("postęp%", "progress"),
    ("pozycje", "items_total"),
    ("oczekuje", "items_pending"),
    ("przetw.", "items_processed"),
    ("zaakc.", "items_accepted"),
    ("eksp.", "items_exported"),
    ("tokeny", "tokens"),
    ("koszt $", "cost"),
]


def _task_view(row: dict[str, Any]) -> dict[str, Any]:
    """Pola wyliczane do tabeli i widoku zadania."""
    paused = row["status"] == "paused" and row.get("pause_reason")
    return {
        **row,
        "target": f"{row['table_name']}.{row['column_name']}",
        "status_text": row["status"] + (f" ({row['pause_reason']})" if paused else ""),
        "progress": f"{row['sync_progress']:.1f}",
        "tokens": row["tokens_input"] + row["tokens_output"],
        "cost": f"{row['cost_usd']:.4f}",
    }


def cmd_task_list(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia task list``."""
    rows = tasks.list_tasks(settings)
    if args.json:
        print_json(rows)
        return 0
    print_table([_task_view(row) for row in rows], _TASK_COLUMNS, "brak zadań (dodaj: ailexia task add)")
    return 0


def cmd_task_show(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia task show``."""
    data = tasks.show_task(db, settings, args.id_task)
    if args.json:
        print_json(data)
        return 0
    view = _task_view(data)
    statuses = ("pending", "processed", "accepted", "rejected", "exported", "conflict", "outdated")
    view["items_text"] = ", ".join(f"{s} {data.get('items_' + s, 0)}" for s in statuses)
    view["tokens_text"] = f"{data['tokens_input']} wejściowych, {data['tokens_output']} wyjściowych"
    view["progress_text"] = f"{view['progress']}% ({data['sync_stage']})"
    view["action_text"] = data["ai_action"] + (
        f" {data['source_lang'] or '?'} -> {data['target_lang']}" if data["ai_action"] == "translate" else ""
    )
    print_fields(
        view,
        [
            ("zadanie", "id_task"),
            ("źródło", "alias"),
            ("tabela.kolumna", "target"),
            ("klucz", "key_column"),
            ("kolumna eksportu", "export_column"),
            ("model", "model"),
            ("akcja", "action_text"),
            ("status", "status_text"),
            ("postęp", "progress_text"),
            ("wiersze źródła", "records_total"),
            ("pozycje", "items_total"),
            ("pozycje wg statusu", "items_text"),
            ("tokeny", "tokens_text"),
            ("koszt", "cost"),
            ("ostatni błąd", "last_error"),
        ],
    )
    return 0


def cmd_task_change(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia task pause|resume|resync|cancel|archive``."""
    result = tasks.change_status(db, args.id_task, args.task_command)
    if result["changed"]:
        text = f"zadanie {args.id_task}: {result['before']} -> {result['after']}"
    else:
        text = f"zadanie {args.id_task}: już {result['after']} (bez zmian)"
    return _emit(args, result, text)


# --- demo i sekrety ----------------------------------------------------------------------


def cmd_demo(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia demo``."""
    result = demo.install_demo(
        db, settings, alias=args.alias, path=Path(args.path) if args.path else None, model=args.model
    )
    text = (
        f"demo: źródło {result['alias']!r} (SQLite {result['path']}, {result['rows']} tekstów), "
        f"zadanie {result['id_task']}; postęp: ailexia task show {result['id_task']}"
    )
    return _emit(args, result, text)


def cmd_secrets_encrypt(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia secrets encrypt``."""
    result = secrets.encrypt_plain(db, settings)
    text = f"hasła zaszyfrowane teraz: {result['encrypted']}, już wcześniej: {result['already']}"
    return _emit(args, result, text)


def cmd_secrets_rotate(db: MySQL, settings: Settings, args: argparse.Namespace) -> int:
    """``ailexia secrets rotate``."""
    result = secrets.rotate(db, settings)
    text = (
        f"hasła przeszyfrowane nowym kluczem AILEXIA_SECRET_KEY: {result['rotated']}; "
        "teraz usuń AILEXIA_SECRET_KEY_OLD z .env"
    )
    return _emit(args, result, text)
