#!/usr/bin/env python
"""ai.py - korekta lub tłumaczenie pozycji zadań modelem AI (API zgodne z OpenAI).

Przykłady:
    python ai.py --id_task 7 [--limit 100]   # przetwórz pozycje pending/outdated zadania 7
    python ai.py                             # wszystkie zadania z aktywnym modelem i pozycjami do zrobienia
    python ai.py --id_task 7 --dry-run       # ile pozycji, znaków, tokenów i kosztu - bez wysyłania
    python ai.py --id_task 7 --queue [--wait]  # wstaw run do kolejki Dagstera zamiast pracy w tym procesie
    python ai.py --collect [--id_task 7]     # tryb batch: odpytaj batche OpenAI i odbierz zakończone
    python ai.py --cancel-batch 12           # tryb batch: anuluj batch 12 (pozycje wrócą do kolejki)
    python ai.py --eval evals/pl_correction.jsonl --model mini --model big [--json out.json] [--limit 50]

Kody wyjścia jak w sync.py: 0 sukces (też pauza na żądanie), 1 błąd runu, 2 błąd użycia/konfiguracji.
"""

import argparse
import sys

import pymysql

from lib.db_local import connect_local, local_error_message
from lib.db_utils import setup_logging
from lib.errors import AilexiaError
from lib.load_config import Settings, load_config
from lib.runtime.control import install_signal_handlers
from lib.task import get_task


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsuje argumenty linii poleceń."""
    parser = argparse.ArgumentParser(description="ailexia: korekta i tłumaczenie tekstów modelem AI")
    parser.add_argument(
        "--id_task", "--id-task", type=int, help="zadanie (bez: wszystkie z pozycjami do zrobienia)"
    )
    parser.add_argument("--limit", type=int, default=None, help="najwyżej tyle pozycji w tym runie")
    parser.add_argument("--dry-run", action="store_true", help="tylko policz pozycje, znaki, tokeny i koszt")
    parser.add_argument("--max-seconds", type=float, default=None, help="limit czasu runu; potem pauza")
    parser.add_argument(
        "--queue",
        action="store_true",
        help="nie uruchamiaj w tym procesie: wstaw run do kolejki Dagstera przez webserver (DAGSTER_WEBSERVER_URL)",
    )
    parser.add_argument("--wait", action="store_true", help="z --queue: czekaj na koniec runu")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="tryb batch: odpytaj wysłane batche i odbierz wyniki zakończonych (dla crona, bez sensora)",
    )
    parser.add_argument(
        "--cancel-batch", type=int, default=None, metavar="ID", help="tryb batch: anuluj batch (ai_batch.id)"
    )
    parser.add_argument(
        "--eval", default=None, metavar="FILE.jsonl", help="ewaluacja zestawu (bez zapisu w task/task_item)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="z --eval: model (ai_model.name), można powtórzyć",
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="z --eval: plik wyników JSON")
    parser.add_argument("--env-file", default=None, help="ścieżka pliku .env")
    args = parser.parse_args(argv)
    if args.eval and not args.model:
        parser.error("--eval wymaga co najmniej jednego --model")
    if (args.model or args.json) and not args.eval:
        parser.error("--model i --json działają tylko z --eval")
    if args.wait and not args.queue:
        parser.error("--wait działa tylko z --queue")
    if args.queue and args.dry_run:
        parser.error("--queue i --dry-run wykluczają się")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit musi być dodatnie")
    if args.dry_run and args.id_task is None:
        parser.error("--dry-run wymaga --id_task")
    return args


def run_one(
    settings: Settings,
    instance,
    id_task: int,
    limit: int | None,
    max_seconds: float | None,
    env_file: str | None,
    id_ai_batch: int | None = None,
) -> int:
    """Materializuje ``ai_corrections`` dla zadania (``id_ai_batch``: odbiór batcha) i zwraca kod wyjścia."""
    from ailexia_dagster.assets import ai_corrections
    from ailexia_dagster.constants import TAG_AI_BATCH
    from ailexia_dagster.runner import materialize_task

    tags = _tags(settings, id_task, limit, max_seconds)
    if id_ai_batch is not None:
        tags[TAG_AI_BATCH] = str(id_ai_batch)
    ok, message = materialize_task(instance, [ai_corrections], id_task, tags, env_file)
    if not ok and _task_status(settings, id_task) == "cancelled":
        # Operator anulował zadanie w trakcie: run zatrzymany na żądanie (w Dagsterze: Canceled).
        print(f"ai: zadanie {id_task}: anulowane - run zatrzymany")
        return 0
    if not ok:
        print(f"ai: zadanie {id_task}: {message}", file=sys.stderr)
        return 1
    print(f"ai: zadanie {id_task}: gotowe" + (f" (batch {id_ai_batch} odebrany)" if id_ai_batch else ""))
    return 0


def _tags(settings: Settings, id_task: int, limit: int | None, max_seconds: float | None) -> dict[str, str]:
    """Tagi runu AI zadania (zadanie zamknięte -> UsageError), z limitem pozycji, gdy podany."""
    from ailexia_dagster.constants import TAG_LIMIT
    from ailexia_dagster.runner import task_run_tags

    db = connect_local(settings, autocommit=True)
    try:
        _task_row, tags = task_run_tags(db, id_task, "ai", max_seconds)
    finally:
        db.close()
    if limit:
        tags[TAG_LIMIT] = str(limit)
    return tags


def _task_status(settings: Settings, id_task: int) -> str | None:
    """Bieżący status zadania (po runie)."""
    db = connect_local(settings, autocommit=True)
    try:
        return get_task(db, id_task)["status"]
    finally:
        db.close()


def queue_one(
    settings: Settings, instance, id_task: int, limit: int | None, max_seconds: float | None, wait: bool
) -> int:
    """Wstawia run ``ai_job`` zadania do kolejki Dagstera (przez webserver) i zwraca kod wyjścia."""
    from ailexia_dagster.constants import AI_JOB
    from ailexia_dagster.submit import describe_queued, submit_task_run, wait_for_run

    tags = _tags(settings, id_task, limit, max_seconds)
    url = settings.dagster_webserver_url
    run_id = submit_task_run(instance, url, AI_JOB, id_task, tags)
    print(describe_queued("ai", id_task, run_id, AI_JOB, tags), flush=True)
    if not wait:
        return 0
    status = wait_for_run(url, run_id)
    print(f"ai: zadanie {id_task}: run {run_id} {status.value}")
    return 0 if status.value == "SUCCESS" else 1


def collect(settings: Settings, instance, id_task: int | None, env_file: str | None) -> int:
    """Odpytuje batche i zleca (w tym procesie) odbiór zakończonych i dokończenie porzuconych wysyłek."""
    from lib.ai.batch import ingest as ai_batch_ingest

    work = ai_batch_ingest.poll_batches(settings, id_task)
    if not work:
        print("ai: brak zakończonych batchy do odebrania")
    worst = 0
    for item in work:
        batch = item["id_ai_batch"] if item["action"] == "ingest" else None
        worst = max(worst, run_one(settings, instance, item["id_task"], None, None, env_file, batch))
    return worst


def in_learning(settings: Settings, id_task: int) -> bool:
    """Czy zadanie jest w fazie nauki; wtedy wypisuje jedną linię (nic nie jest wysyłane)."""
    db = connect_local(settings, autocommit=True)
    try:
        # Nieznane zadanie: zwykła ścieżka runu zgłosi je swoim komunikatem.
        status = db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,))
    finally:
        db.close()
    if status != "in_learning":
        return False
    print(
        f"ai: zadanie {id_task}: faza nauki (in_learning) - pilot czeka na ocenę, nic nie wysłano; "
        f"python review.py pilot --id_task {id_task}"
    )
    return True


def run_eval(settings: Settings, args: argparse.Namespace) -> int:
    """``--eval``: tabela wyników na standardowe wyjście, plik ``--json``, obserwacje ``ai_quality``."""
    import json

    from lib.ai import evaluate

    def show(model: str, done: int, total: int) -> None:
        print(f"ai: eval {model}: {done}/{total}", file=sys.stderr, flush=True)

    report = evaluate.run_eval(settings, args.eval, args.model, args.limit, show)
    print(evaluate.format_table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"set": report["set"], "results": [
                {k: v for k, v in r.items() if k != "id_ai_eval"} for r in report["results"]
            ]}, out, ensure_ascii=False, indent=2)  # fmt: skip
        print(f"ai: wyniki zapisane w {args.json}")
    try:
        from ailexia_dagster.quality import observe_eval
        from ailexia_dagster.runner import get_instance

        observe_eval(get_instance(settings), report)
    except Exception as exc:  # wynik jest już w ai_eval; brak instancji Dagstera nie psuje ewaluacji
        print(f"ai: obserwacja ai_quality w Dagsterze nie zapisana: {exc}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Punkt wejścia: zwraca kod wyjścia."""
    args = parse_args(argv)
    try:
        settings = load_config(args.env_file)
        setup_logging(settings, "ai")
        from lib.ai import run as ai_worker

        if args.dry_run:
            estimate = ai_worker.dry_run(settings, args.id_task)
            for key, value in estimate.items():
                print(f"{key}: {value}")
            return 0
        if args.eval:
            return run_eval(settings, args)
        if args.id_task is not None and not args.collect and in_learning(settings, args.id_task):
            return 0
        if args.cancel_batch is not None:
            from lib.ai.batch import submit as ai_batch

            print(f"ai: {ai_batch.cancel_batch(settings, args.cancel_batch)}")
            return 0
        from ailexia_dagster.runner import get_instance

        install_signal_handlers()
        instance = get_instance(settings)
        if args.id_task is not None and args.queue:
            return queue_one(settings, instance, args.id_task, args.limit, args.max_seconds, args.wait)
        if args.collect:
            return collect(settings, instance, args.id_task, args.env_file)
        if args.id_task is not None:
            return run_one(settings, instance, args.id_task, args.limit, args.max_seconds, args.env_file)
        from lib.runtime.scheduling import tasks_with_pending_ai

        db = connect_local(settings, autocommit=True)
        try:
            ids = tasks_with_pending_ai(db, settings.ai_max_attempts)
        finally:
            db.close()
        if not ids:
            print("ai: brak zadań z pozycjami do przetworzenia")
        worst = 0
        for id_task in ids:
            if args.queue:
                from ailexia_dagster.submit import LiveRunError

                try:
                    code = queue_one(settings, instance, id_task, args.limit, args.max_seconds, args.wait)
                except LiveRunError as exc:
                    print(f"ai: {exc}")
                    code = 0
            else:
                code = run_one(settings, instance, id_task, args.limit, args.max_seconds, args.env_file)
            worst = max(worst, code)
        return worst
    except AilexiaError as exc:
        print(f"ai: {exc}", file=sys.stderr)
        return exc.exit_code
    except pymysql.MySQLError as exc:
        print(f"ai: {local_error_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from lib.runtime.process import exit_process
    from lib.runtime.progress import terminal

    # Na terminalu pasek postępu; w cronie linie postępu co PROGRESS_EVERY_S z logu runu.
    with terminal():
        code = main()
    exit_process(code)
