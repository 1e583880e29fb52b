#!/usr/bin/env python
"""review.py - przegląd wyników AI: lista różnic, szczegóły pozycji, akceptacja/odrzucenie, zrzut.

Przykłady:
    python review.py list --id_task 7 [--status processed] [--limit 20] [--color]
    python review.py show 123
    python review.py accept --id_task 7 --item 123 124 --by anna
    python review.py accept --id_task 7 --all [--status processed] --by anna
    python review.py reject --id_task 7 --item 125 --by anna
    python review.py dump --id_task 7 --format csv [--status accepted] [--output plik.csv]
    python review.py edit 123 --by anna          # poprawka w $EDITOR, zapis = akceptacja
    python review.py serve [--host 127.0.0.1] [--port 8765]   # strona przeglądu w przeglądarce
    python review.py dump --id_task 7 --format eval --output moje.jsonl   # decyzje jako zestaw ewaluacyjny
    python review.py pilot --id_task 7 [--json]              # liczby pilota (faza nauki)
    python review.py pilot --id_task 7 --approve --by anna   # reszta zadania do AI
    python review.py pilot --id_task 7 --redo [--model inny] --by anna   # pilot od nowa

Kody wyjścia: 0 sukces, 1 błąd (także: część pozycji odmówiona przy accept/reject),
2 błąd użycia lub konfiguracji, nieznane zadanie lub pozycja.
"""

import argparse
import os
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pymysql

from lib.db_local import connect_local, local_error_message
from lib.db_utils import setup_logging
from lib.errors import AilexiaError, UsageError
from lib.load_config import PROJECT_ROOT, Settings, load_config
from lib.review.decisions import edit_and_accept, set_decision
from lib.review.diff import word_diff
from lib.review.dump import DUMP_FORMATS, dump_items
from lib.review.items import get_item, list_items, parse_summary
from lib.review.rules import check_reviewer, item_version, refusal_reason
from lib.runtime import progress


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsuje argumenty linii poleceń."""
    parser = argparse.ArgumentParser(description="ailexia: przegląd i akceptacja korekt AI")
    parser.add_argument("--env-file", default=None, help="ścieżka pliku .env (domyślnie .env projektu)")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="pozycje zadania z różnicą słów")
    listing.add_argument("--id_task", "--id-task", type=int, required=True)
    listing.add_argument(
        "--status", default="processed", help="status pozycji albo 'all' (domyślnie processed)"
    )
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--color", action="store_true", help="koloruj różnice także poza terminalem")

    show = commands.add_parser("show", help="jedna pozycja z listą poprawek")
    show.add_argument("id", type=int, help="id_task_item")
    show.add_argument("--color", action="store_true")

    for name, verb in (("accept", "zaakceptuj"), ("reject", "odrzuć")):
        sub = commands.add_parser(name, help=f"{verb} pozycje zadania")
        sub.add_argument("--id_task", "--id-task", type=int, required=True)
        which = sub.add_mutually_exclusive_group(required=True)
        which.add_argument("--item", type=int, nargs="+", help="id pozycji (id_task_item)")
        which.add_argument("--all", action="store_true", help="wszystkie pozycje o statusie --status")
        sub.add_argument(
            "--status", default="processed", help="z --all: status pozycji (domyślnie processed)"
        )
        sub.add_argument("--by", required=True, help="kto decyduje (approved_by)")

    dump = commands.add_parser("dump", help="zrzut pozycji zadania do CSV albo JSON")
    dump.add_argument("--id_task", "--id-task", type=int, required=True)
    dump.add_argument("--format", choices=DUMP_FORMATS, required=True)
    dump.add_argument(
        "--status", action="append", help="status pozycji (można powtórzyć lub podać po przecinku)"
    )
    dump.add_argument("--output", help="plik wynikowy (domyślnie standardowe wyjście)")

    pilot = commands.add_parser("pilot", help="faza nauki: liczby pilota, zatwierdzenie albo pilot od nowa")
    pilot.add_argument("--id_task", "--id-task", type=int, required=True)
    pilot.add_argument("--json", action="store_true", help="liczby jako JSON")
    action = pilot.add_mutually_exclusive_group()
    action.add_argument("--approve", action="store_true", help="zatwierdź pilota: reszta zadania idzie do AI")
    action.add_argument(
        "--redo", action="store_true", help="pilot od nowa (pozycje pilota wracają do pending)"
    )
    pilot.add_argument("--model", default=None, help="z --redo: inny model (ai_model.name)")
    pilot.add_argument("--by", default=None, help="kto decyduje (z --approve/--redo)")

    edit = commands.add_parser("edit", help="popraw tekst pozycji w $EDITOR i zaakceptuj")
    edit.add_argument("id", type=int, help="id_task_item")
    edit.add_argument("--by", required=True, help="kto decyduje (approved_by)")

    serve = commands.add_parser("serve", help="strona przeglądu w przeglądarce (token jak w Jupyterze)")
    serve.add_argument("--host", default="127.0.0.1", help="adres nasłuchu (domyślnie 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (domyślnie 8765; 0 = wolny port)")
    args = parser.parse_args(argv)
    if args.command == "pilot":
        if (args.approve or args.redo) and not args.by:
            parser.error("--approve i --redo wymagają --by")
        if args.model and not args.redo:
            parser.error("--model działa tylko z --redo")
    return args


def _print_item(item: dict[str, Any], color: bool) -> None:
    """Wypisuje blok jednej pozycji: nagłówek i różnicę słów."""
    head = f"#{item['id_task_item']}  key={item['remote_key']}  status={item['status']}"
    if item.get("approved_by"):
        head += f"  by={item['approved_by']}"
    print(head)
    if item.get("export_error"):
        print(f"  konflikt: {item['export_error']}")
    if item.get("text_corrected") is None:
        print("  (brak korekty)")
    else:
        print("  " + word_diff(item["text_original"], item["text_corrected"], color).replace("\n", "\n  "))
    print()


def cmd_list(db, args: argparse.Namespace, color: bool) -> int:
    status = None if args.status == "all" else args.status
    items = list_items(db, args.id_task, status, args.limit)
    for item in items:
        _print_item(item, color)
    print(f"{len(items)} pozycji (zadanie {args.id_task}, status {args.status})")
    return 0


def cmd_show(db, args: argparse.Namespace, color: bool) -> int:
    item = get_item(db, args.id)
    _print_item(item, color)
    print(f"oryginał:  {item['text_original']!r}")
    print(f"korekta:   {item['text_corrected']!r}")
    summary = parse_summary(item.get("change_summary"))
    if summary.get("invalid"):
        print(f"change_summary (niepoprawny JSON): {summary['invalid']}")
    edits = summary["edits"]
    print(f"poprawki ({len(edits)}):")
    for edit in edits:
        if not isinstance(edit, dict):
            print(f"  - {edit}")
            continue
        line = f"  - [{edit.get('category', 'other')}] {edit.get('original', '')!r} -> {edit.get('replacement', '')!r}"
        if edit.get("explanation"):
            line += f": {edit['explanation']}"
        print(line)
    counts = summary["counts"]
    print("liczniki: " + (", ".join(f"{k}={v}" for k, v in counts.items()) if counts else "brak"))
    return 0


def cmd_decide(db, args: argparse.Namespace) -> int:
    decision = "accepted" if args.command == "accept" else "rejected"
    status = None if args.status == "all" else args.status
    changed, refused = set_decision(
        db, args.id_task, None if args.all else args.item, decision, args.by, status
    )
    for id_item, reason in refused:
        print(f"#{id_item}: odmowa - {reason}")
    print(f"{decision}: {len(changed)} pozycji, odmówiono: {len(refused)}")
    return 1 if refused else 0


def _stderr_line(line: str, _figures: dict[str, float]) -> None:
    """Linia postępu dla crona / pliku logu."""
    print(line, file=sys.stderr, flush=True)


def cmd_dump(db, args: argparse.Namespace) -> int:
    statuses = [s.strip() for value in args.status or [] for s in value.split(",") if s.strip()] or None
    if args.output:
        # Zrzut do pliku: pasek na terminalu (progress.terminal), inaczej linie co kilka sekund na stderr.
        with (
            progress.terminal() as bar,
            progress.tracking("dump", args.id_task, None if bar else _stderr_line) as report,
            open(args.output, "w", encoding="utf-8", newline="") as out,
        ):
            count = dump_items(db, args.id_task, args.format, out, statuses, progress=report)
        print(f"dump: {count} pozycji zapisano do {args.output}", file=sys.stderr)
    else:
        dump_items(db, args.id_task, args.format, sys.stdout, statuses)
    return 0


def _strip_editor_newline(before: str, after: str) -> str:
    """Usuwa końcową nową linię dopisaną przez edytor, jeśli tekst przed edycją jej nie miał."""
    if not before.endswith(("\n", "\r")):
        for ending in ("\r\n", "\n"):
            if after.endswith(ending):
                return after[: -len(ending)]
    return after


def cmd_edit(db, args: argparse.Namespace) -> int:
    """Otwiera tekst poprawiony w ``$VISUAL``/``$EDITOR``; zapisany tekst = poprawka + akceptacja."""
    by = check_reviewer(args.by)
    item = get_item(db, args.id)
    reason = refusal_reason(item, "accepted", same_status_ok=True)
    if reason:
        print(f"#{args.id}: odmowa - {reason}")
        return 1
    before = item["text_corrected"]
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    handle, path = tempfile.mkstemp(prefix=f"ailexia-item{args.id}-", suffix=".txt")
    try:
        with open(handle, "w", encoding="utf-8", newline="") as out:
            out.write(before)
        try:
            code = subprocess.call([*shlex.split(editor), path])
        except OSError as exc:
            raise UsageError(
                f"nie można uruchomić edytora {editor!r} ({exc.strerror}); ustaw EDITOR"
            ) from None
        if code != 0:
            print(f"review: edytor zakończył się kodem {code} - nic nie zapisano", file=sys.stderr)
            return 1
        with open(path, encoding="utf-8", newline="") as edited_file:
            after = _strip_editor_newline(before, edited_file.read())
    finally:
        os.unlink(path)
    if after == before:
        print(f"#{args.id}: tekst bez zmian - nic nie zapisano (akceptacja bez poprawki: review.py accept)")
        return 0
    outcome = edit_and_accept(db, args.id, after, by, None, item_version(item))
    if outcome.reason:
        print(f"#{args.id}: odmowa - {outcome.reason}")
        return 1
    fresh = get_item(db, args.id)
    print(f"#{args.id}: poprawka zapisana, status {fresh['status']} (approved_by={fresh['approved_by']})")
    print("  " + word_diff(fresh["text_original"], fresh["text_corrected"]).replace("\n", "\n  "))
    return 0


# Kolejność i podpisy liczb pilota w wydruku ``review.py pilot``.
_PILOT_LINES = (
    ("status", "status"),
    ("model", "model"),
    ("prompt_version", "prompt_version"),
    ("items", "pozycje"),
    ("texts", "różne teksty"),
    ("processed", "przetworzone"),
    ("reviewed", "ocenione"),
    ("accepted", "przyjęte bez zmian"),
    ("rejected", "odrzucone"),
    ("edited", "poprawione przez recenzenta"),
    ("acceptance_rate", "akceptacja"),
    ("precision", "precyzja edycji"),
    ("flagged", "z flagami"),
    ("cost_usd", "koszt pilota USD"),
    ("cost_per_text_usd", "koszt na tekst USD"),
    ("remaining_texts", "pozostałe różne teksty"),
    ("projected_cost_usd", "koszt prognozowany USD"),
)


def print_pilot(figures: dict[str, Any]) -> None:
    """Wypisuje liczby pilota, jedna w linii."""
    print(f"pilot {figures['id_ai_pilot']} zadania {figures['id_task']}")
    for key, label in _PILOT_LINES:
        value = figures.get(key)
        if value is None:
            value = "-"
        elif key.endswith("_usd"):
            value = f"{value:.6f}"
        print(f"  {label + ':':<30} {value}")
    if figures.get("flags"):
        print("  flagi: " + ", ".join(f"{code}={n}" for code, n in figures["flags"].items()))


def cmd_pilot(db, settings: Settings, args: argparse.Namespace) -> int:
    """Liczby pilota zadania albo decyzja: zatwierdzenie lub pilot od nowa."""
    import json

    from lib.ai import learning

    if args.approve:
        figures = learning.approve_pilot(db, args.id_task, args.by, settings)
        print(
            f"pilot: zadanie {args.id_task}: pilot {figures['id_ai_pilot']} zatwierdzony przez {figures['approved_by']}"
            f" - reszta ({figures['remaining_texts']} różnych tekstów, prognoza {figures['projected_cost_usd']} USD) "
            "idzie do AI (sensor albo python ai.py --id_task N)"
        )
        return 0
    if args.redo:
        done = learning.redo_pilot(db, args.id_task, args.by, settings, args.model)
        print(
            f"pilot: zadanie {args.id_task}: pilot {done['previous']['id_ai_pilot']} w historii; nowy pilot "
            f"{done['id_ai_pilot']}: {done['items']} pozycji wraca do pending, model {done['model']} "
            "(sensor albo python ai.py --id_task N)"
        )
        return 0
    figures = learning.pilot_figures(db, args.id_task, settings)
    db.commit()
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    else:
        print_pilot(figures)
    return 0


def make_export_runner(env_file: str | None) -> Callable[[int], tuple[bool, str]]:
    """Buduje funkcję eksportu dla strony przeglądu: ``sync.py --export --id_task N`` w podprocesie.

    To ten sam eksport co z terminala: ta sama blokada zadania i kody wyjścia, run
    ``source_export`` materializowany na instancji z ``DAGSTER_HOME`` (widoczny w UI Dagstera).
    Osobny proces nie przestawia logowania ani sygnałów serwera strony.
    """

    def run(id_task: int) -> tuple[bool, str]:
        command = [sys.executable, str(PROJECT_ROOT / "sync.py"), "--export", "--id_task", str(id_task)]
        if env_file:
            command += ["--env-file", env_file]
        done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith("sync:")]
        message = lines[-1] if lines else f"sync.py --export zakończył się kodem {done.returncode}"
        return done.returncode == 0, message

    return run


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Uruchamia stronę przeglądu (uvicorn) i wypisuje jej adres z tokenem."""
    import uvicorn

    from lib.web.app import create_app

    # Baza musi odpowiadać od razu: lepiej jedna linia błędu teraz niż 500 na stronie.
    connect_local(settings, autocommit=True).close()
    token = settings.review_token.get_secret_value() or secrets.token_hex(24)
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Nasłuch od razu: połączenia czekają w kolejce, zanim uvicorn wystartuje (adres jest już wypisany).
        sock.listen(128)
    except OSError as exc:
        print(
            f"review: nie można nasłuchiwać na {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    port = sock.getsockname()[1]
    shown = args.host if args.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown
    app = create_app(settings, token, make_export_runner(args.env_file))
    print(f"review: strona przeglądu: http://{shown}:{port}/?token={token}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"review: uwaga - nasłuch na {args.host}: strona jest dostępna z sieci (chroni ją tylko token)",
            flush=True,
        )
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Punkt wejścia: zwraca kod wyjścia."""
    args = parse_args(argv)
    try:
        settings = load_config(args.env_file)
        setup_logging(settings, "review")
        color = bool(getattr(args, "color", False)) or sys.stdout.isatty()
        if args.command == "serve":
            return cmd_serve(settings, args)
        db = connect_local(settings, autocommit=False)
        try:
            if args.command == "edit":
                return cmd_edit(db, args)
            if args.command == "list":
                return cmd_list(db, args, color)
            if args.command == "show":
                return cmd_show(db, args, color)
            if args.command in ("accept", "reject"):
                return cmd_decide(db, args)
            if args.command == "pilot":
                return cmd_pilot(db, settings, args)
            return cmd_dump(db, args)
        finally:
            db.close()
    except AilexiaError as exc:
        print(f"review: {exc}", file=sys.stderr)
        return exc.exit_code
    except pymysql.MySQLError as exc:
        print(f"review: {local_error_message(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"review: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from lib.runtime.process import exit_process

    exit_process(main())
