#!/usr/bin/env python
"""sync.py - synchronizacja zadań (źródło -> task_item), schemat bazy, eksport i podgląd stanu.

Przykłady:
    python sync.py --init-db                 # załóż bazę i zastosuj brakujące migracje schematu
    python sync.py --id_task 7               # synchronizuj zadanie 7 teraz
    python sync.py                           # tryb cron: wszystkie zadania new/resync (i wznowienia)
    python sync.py --export --id_task 7      # zapisz zaakceptowane pozycje do źródła
    python sync.py --status [--id_task 7] [--json]
    python sync.py --id_task 7 --queue [--wait]   # wstaw run do kolejki Dagstera (limity per połączenie)

Kody wyjścia: 0 sukces (też pauza/anulowanie na żądanie), 1 zadanie skończyło się błędem,
2 błąd użycia lub konfiguracji, nieznane zadanie, zadanie cancelled/archived.
"""

import argparse
import json
import sys
import time

import pymysql

from lib.db_local import connect_local, local_error_message
from lib.db_utils import get_logger, setup_logging
from lib.errors import AilexiaError, UsageError
from lib.load_config import Settings, load_config
from lib.runtime.control import install_signal_handlers
from lib.runtime.locks import is_task_locked
from lib.runtime.scheduling import tasks_for_cron
from lib.schema import init_db
from lib.task import get_task


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsuje argumenty linii poleceń."""
    parser = argparse.ArgumentParser(description="ailexia: synchronizacja tekstów ze źródeł do lokalnej bazy")
    parser.add_argument("--id_task", "--id-task", type=int, help="zadanie do przetworzenia (bez: tryb cron)")
    parser.add_argument(
        "--init-db",
        action="store_true",
        help="załóż lokalną bazę, zastosuj brakujące migracje (lib/migrations) i zakończ",
    )
    parser.add_argument(
        "--export", action="store_true", help="zapisz zaakceptowane pozycje zadania do źródła"
    )
    parser.add_argument("--status", action="store_true", help="pokaż stan zadań (jedna linia na zadanie)")
    parser.add_argument("--json", action="store_true", help="z --status: wynik jako JSON")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="limit czasu runu; potem pauza (okno crona)"
    )
    parser.add_argument(
        "--queue",
        action="store_true",
        help="nie uruchamiaj w tym procesie: wstaw run do kolejki Dagstera przez webserver (DAGSTER_WEBSERVER_URL)",
    )
    parser.add_argument("--wait", action="store_true", help="z --queue: czekaj na koniec runu")
    parser.add_argument("--env-file", default=None, help="ścieżka pliku .env (domyślnie .env projektu)")
    args = parser.parse_args(argv)
    if args.wait and not args.queue:
        parser.error("--wait działa tylko z --queue")
    if args.export and args.id_task is None:
        parser.error("--export wymaga --id_task")
    if args.max_seconds is not None and args.max_seconds <= 0:
        parser.error("--max-seconds musi być większe od zera")
    return args


def run_one(
    settings: Settings, instance, id_task: int, export: bool, max_seconds: float | None, env_file: str | None
) -> int:
    """Materializuje assety jednego zadania i zwraca kod wyjścia."""
    from ailexia_dagster.assets import SYNC_ASSETS, source_export
    from ailexia_dagster.runner import materialize_task, task_run_tags

    log = get_logger("sync")
    db = connect_local(settings, autocommit=True)
    try:
        _task_row, tags = task_run_tags(db, id_task, "export" if export else "sync", max_seconds)
        if is_task_locked(db, id_task):
            print(
                f"sync: zadanie {id_task} jest właśnie przetwarzane przez inny run - pomijam", file=sys.stderr
            )
            return 1
        assets = [source_export] if export else SYNC_ASSETS
        ok, message = materialize_task(instance, assets, id_task, tags, env_file)
        after = get_task(db, id_task)
    finally:
        db.close()
    if after["status"] == "error":
        print(f"sync: zadanie {id_task} zakończone błędem: {after['error_log']}", file=sys.stderr)
        return 1
    if not ok and after["status"] not in ("paused", "cancelled"):
        print(f"sync: zadanie {id_task}: {message}", file=sys.stderr)
        return 1
    log.info(
        "zadanie %s: status %s, etap %s, postęp %s%%",
        id_task,
        after["status"],
        after["sync_stage"],
        after["sync_progress"],
    )
    reason = f" ({after['pause_reason']})" if after["status"] == "paused" and after["pause_reason"] else ""
    counters = (
        (
            f"; nowe {after['records_new']}, zmienione {after['records_updated']}, usunięte {after['records_deleted']}, "
            f"pobrane {after['records_fetched']}/{after['records_total']}"
        )
        if not export
        else ""
    )
    print(f"sync: zadanie {id_task}: status {after['status']}{reason}{counters}")
    return 0


def queue_one(
    settings: Settings, instance, id_task: int, export: bool, max_seconds: float | None, wait: bool
) -> int:
    """Wstawia run zadania do kolejki Dagstera (przez webserver) i zwraca kod wyjścia."""
    from ailexia_dagster.constants import EXPORT_JOB, SYNC_JOB
    from ailexia_dagster.runner import task_run_tags
    from ailexia_dagster.submit import describe_queued, submit_task_run, wait_for_run

    db = connect_local(settings, autocommit=True)
    try:
        kind, job_name = ("export", EXPORT_JOB) if export else ("sync", SYNC_JOB)
        _task_row, tags = task_run_tags(db, id_task, kind, max_seconds)
        url = settings.dagster_webserver_url
        run_id = submit_task_run(instance, url, job_name, id_task, tags)
        print(describe_queued("sync", id_task, run_id, job_name, tags), flush=True)
        if not wait:
            return 0
        status = wait_for_run(url, run_id)
        after = get_task(db, id_task)
    finally:
        db.close()
    reason = f" ({after['pause_reason']})" if after["status"] == "paused" and after["pause_reason"] else ""
    print(f"sync: zadanie {id_task}: run {run_id} {status.value}, status zadania {after['status']}{reason}")
    if after["status"] == "error":
        print(f"sync: zadanie {id_task} zakończone błędem: {after['error_log']}", file=sys.stderr)
        return 1
    return 0 if status.value == "SUCCESS" or after["status"] in ("paused", "cancelled") else 1


def queue_cron(settings: Settings, instance, ids: list[int], max_seconds: float | None, wait: bool) -> int:
    """Tryb cron z ``--queue``: run w kolejce dla każdego zadania; zadanie z żywym runem jest pomijane."""
    from ailexia_dagster.submit import LiveRunError

    worst = 0
    for id_task in ids:
        try:
            worst = max(worst, queue_one(settings, instance, id_task, False, max_seconds, wait))
        except UsageError as exc:
            print(f"sync: {exc}", file=sys.stderr)
        except LiveRunError as exc:
            print(f"sync: {exc}")
    return worst


def print_status(settings: Settings, id_task: int | None, as_json: bool) -> int:
    """Wypisuje stan zadań (tabela albo JSON) i zwraca kod wyjścia 0."""
    from lib.runtime.status import collect_status, format_status

    rows = collect_status(settings, id_task)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print(format_status(rows) if rows else "brak zadań")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Punkt wejścia: zwraca kod wyjścia."""
    args = parse_args(argv)
    try:
        settings = load_config(args.env_file)
        setup_logging(settings, "sync")
        if args.init_db:
            actions = init_db(settings)
            for action in actions:
                print(f"init-db: {action}")
            if not actions:
                print(f"init-db: schema of {settings.db_local_name} is up to date, nothing changed")
            return 0
        if args.status:
            return print_status(settings, args.id_task, args.json)
        from ailexia_dagster.runner import get_instance

        install_signal_handlers()
        instance = get_instance(settings)
        if args.id_task is not None and args.queue:
            return queue_one(settings, instance, args.id_task, args.export, args.max_seconds, args.wait)
        if args.id_task is not None:
            return run_one(settings, instance, args.id_task, args.export, args.max_seconds, args.env_file)
        db = connect_local(settings, autocommit=True)
        try:
            ids = tasks_for_cron(db)
        finally:
            db.close()
        if not ids:
            print("sync: brak zadań do synchronizacji")
        if args.queue:
            return queue_cron(settings, instance, ids, args.max_seconds, args.wait)
        worst = 0
        # W trybie cron limit czasu dotyczy całego wywołania, nie każdego zadania osobno.
        deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
        for id_task in ids:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                print("sync: limit czasu wyczerpany - pozostałe zadania w następnym oknie")
                break
            try:
                worst = max(worst, run_one(settings, instance, id_task, False, remaining, args.env_file))
            except UsageError as exc:
                print(f"sync: {exc}", file=sys.stderr)
        return worst
    except AilexiaError as exc:
        print(f"sync: {exc}", file=sys.stderr)
        return exc.exit_code
    except pymysql.MySQLError as exc:
        print(f"sync: {local_error_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from lib.runtime.process import exit_process
    from lib.runtime.progress import terminal

    # Na terminalu pasek postępu; w cronie linie postępu co PROGRESS_EVERY_S z logu runu.
    with terminal():
        code = main()
    exit_process(code)
