"""Polecenie ``ailexia``: źródła, modele i zadania bez SQL-a, test połączeń i modeli, sekrety.

Drzwi, nie pokój: argparse, ustawienia, logowanie, wywołanie ``ailexia_cli.commands``, kod wyjścia.
Kody wyjścia jak w skryptach projektu: 0 sukces, 1 błąd (źródło, model, baza lokalna),
2 błąd użycia albo walidacji (jedna linia na standardowym wyjściu błędów).
"""

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import pymysql

from ailexia_cli import commands
from lib.db_local import connect_local, local_error_message
from lib.db_utils import setup_logging
from lib.errors import AilexiaError
from lib.load_config import load_config

PROG = "ailexia"


class _Parser(argparse.ArgumentParser):
    """Parser z błędem użycia w jednej linii (kod 2) i polskimi nagłówkami pomocy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", False)
        super().__init__(*args, **kwargs)
        self._positionals.title = "argumenty"
        self._optionals.title = "opcje"
        self.add_argument("-h", "--help", action="help", help="pokaż tę pomoc i zakończ")

    def format_usage(self) -> str:
        return super().format_usage().replace("usage:", "użycie:", 1)

    def format_help(self) -> str:
        return super().format_help().replace("usage:", "użycie:", 1)

    def error(self, message: str) -> NoReturn:
        """Jedna linia: ``ailexia <polecenie>: błąd: ...`` i kod 2."""
        for english, polish in (
            ("the following arguments are required", "brak wymaganych argumentów"),
            ("invalid choice", "niedozwolona wartość"),
            ("unrecognized arguments", "nieznane argumenty"),
            ("expected one argument", "oczekiwano wartości"),
            ("invalid int value", "oczekiwano liczby całkowitej, jest"),
            ("not allowed with argument", "nie razem z"),
            ("choose from", "dozwolone"),
        ):
            message = message.replace(english, polish)
        self.exit(2, f"{self.prog}: błąd: {' '.join(message.split())}\n")


def _leaf(sub: Any, name: str, help_text: str, handler: Callable[..., int], json_output: bool = True) -> Any:
    """Podpolecenie z funkcją obsługi i opcją ``--json``."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    if json_output:
        parser.add_argument("--json", action="store_true", help="wynik jako JSON")
    return parser


def _source_parsers(root: Any) -> None:
    source = root.add_parser(
        "source", help="źródła (bazy z tekstami)", description="Źródła: bazy z tekstami."
    )
    sub = source.add_subparsers(dest="source_command", metavar="polecenie", required=True)
    add = _leaf(sub, "add", "zarejestruj źródło (hasło zapisane zaszyfrowane)", commands.cmd_source_add)
    add.add_argument("--alias", required=True, help="unikalna nazwa źródła, np. crm")
    add.add_argument("--type", required=True, choices=("mysql", "pgsql", "mssql", "sqlite"), help="typ bazy")
    add.add_argument("--host", help="host (TCP; nie dla sqlite)")
    add.add_argument("--port", type=int, help="port (domyślnie 3306 / 5432 / 1433)")
    add.add_argument("--db", required=True, help="nazwa bazy; dla sqlite ścieżka pliku")
    add.add_argument("--user", help="użytkownik (nie dla sqlite)")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help="hasło z pierwszej linii wejścia")
    secret.add_argument(
        "--password-env", metavar="ZMIENNA", help="hasło w zmiennej środowiska (w bazie tylko nazwa)"
    )
    add.add_argument("--ssl", action="store_true", help="połączenie szyfrowane")
    add.add_argument("--id-user", type=int, default=1, help="właściciel wpisu (id_user, domyślnie 1)")
    test = _leaf(
        sub,
        "test",
        "połącz i pokaż wersję, użytkownika, prawo odczytu i zapisu, czas",
        commands.cmd_source_test,
    )
    test.add_argument("alias", help="alias źródła")
    test.add_argument("--table", help="sprawdź prawa tylko do tej tabeli")
    test.add_argument("--schema", help="schemat (pgsql/mssql; domyślnie public/dbo)")
    tables = _leaf(
        sub, "tables", "tabele z kolumnami tekstowymi, wierszami i kluczem", commands.cmd_source_tables
    )
    tables.add_argument("alias", help="alias źródła")
    tables.add_argument("--schema", help="schemat (pgsql/mssql; domyślnie public/dbo)")
    _leaf(sub, "list", "lista źródeł (bez haseł)", commands.cmd_source_list)
    remove = _leaf(sub, "remove", "usuń źródło (nie, gdy używa go zadanie)", commands.cmd_source_remove)
    remove.add_argument("alias", help="alias źródła")


def _model_parsers(root: Any) -> None:
    model = root.add_parser("model", help="modele AI", description="Modele AI (serwery zgodne z OpenAI).")
    sub = model.add_subparsers(dest="model_command", metavar="polecenie", required=True)
    add = _leaf(sub, "add", "zarejestruj model", commands.cmd_model_add)
    add.add_argument("--name", required=True, help="unikalna nazwa modelu w projekcie")
    add.add_argument("--model", required=True, help="model u dostawcy, np. gpt-4o-mini")
    add.add_argument(
        "--base-url", help="serwer zgodny z OpenAI (domyślnie OPENAI_BASE_URL albo api.openai.com)"
    )
    add.add_argument(
        "--api-key-env", required=True, metavar="ZMIENNA", help="zmienna środowiska z kluczem API"
    )
    add.add_argument("--price-in", required=True, metavar="USD", help="USD za milion tokenów wejściowych")
    add.add_argument("--price-out", required=True, metavar="USD", help="USD za milion tokenów wyjściowych")
    add.add_argument(
        "--pack-items", type=int, metavar="K", help="najwięcej tekstów w zapytaniu (1 = bez paczek)"
    )
    add.add_argument("--batch", action="store_true", help="tryb OpenAI Batch API (taniej, do 24 h)")
    test = _leaf(
        sub, "test", "wyślij jedną krótką korektę: odpowiedź, czas, tokeny, koszt", commands.cmd_model_test
    )
    test.add_argument("name", help="nazwa modelu")
    _leaf(sub, "list", "lista modeli", commands.cmd_model_list)


def _task_parsers(root: Any) -> None:
    task = root.add_parser(
        "task", help="zadania", description="Zadania: kolumna źródła do korekty lub tłumaczenia."
    )
    sub = task.add_subparsers(dest="task_command", metavar="polecenie", required=True)
    add = _leaf(
        sub, "add", "dodaj zadanie (tabela, kolumna i klucz sprawdzone w źródle)", commands.cmd_task_add
    )
    add.add_argument("--source", required=True, help="alias źródła")
    add.add_argument("--table", required=True, help="tabela (schemat.tabela poza domyślnym schematem)")
    add.add_argument("--column", required=True, help="kolumna tekstowa")
    add.add_argument(
        "--key", metavar="K1,K2", help="kolumny klucza (domyślnie klucz główny albo indeks unikalny)"
    )
    add.add_argument("--model", help="nazwa modelu AI (bez: tylko synchronizacja)")
    add.add_argument(
        "--action", choices=("correct", "translate"), default="correct", help="korekta albo tłumaczenie"
    )
    add.add_argument("--from", dest="source_lang", metavar="JĘZYK", help="język źródłowy (np. pl)")
    add.add_argument("--to", dest="target_lang", metavar="JĘZYK", help="język docelowy tłumaczenia (np. en)")
    add.add_argument("--export-column", metavar="KOLUMNA", help="kolumna zapisu eksportu (domyślnie ta sama)")
    add.add_argument("--pilot", type=int, metavar="N", help="najpierw N pozycji pilotażu do oceny")
    add.add_argument(
        "--cursor-column",
        metavar="KOLUMNA",
        help="kolumna kursora resyncu (np. updated_at): resync czyta tylko wiersze o nowszym kursorze",
    )
    add.add_argument("--id-user", type=int, default=1, help="właściciel zadania (id_user, domyślnie 1)")
    _leaf(sub, "list", "stan wszystkich zadań", commands.cmd_task_list)
    show = _leaf(
        sub, "show", "stan zadania: status, etap, postęp, pozycje, tokeny, koszt", commands.cmd_task_show
    )
    show.add_argument("id_task", type=int, help="id zadania")
    for name, help_text in (
        ("pause", "wstrzymaj (run kończy bieżącą partię)"),
        ("resume", "wznów wstrzymane zadanie"),
        ("resync", "zleć ponowną synchronizację"),
        ("cancel", "anuluj (sensor i cron pomijają zadanie)"),
        ("archive", "zarchiwizuj (dane zostają, partycja znika)"),
    ):
        change = _leaf(sub, name, help_text, commands.cmd_task_change)
        change.add_argument("id_task", type=int, help="id zadania")


def build_parser() -> argparse.ArgumentParser:
    """Parser polecenia ``ailexia`` ze wszystkimi podpoleceniami."""
    parser = _Parser(
        prog=PROG,
        description="ailexia: źródła, modele i zadania bez SQL-a (kody wyjścia: 0 sukces, 1 błąd, 2 błąd użycia).",
    )
    parser.add_argument("--env-file", default=None, help="plik .env (domyślnie .env projektu)")
    root = parser.add_subparsers(dest="command", metavar="polecenie", required=True, parser_class=_Parser)
    _source_parsers(root)
    _model_parsers(root)
    _task_parsers(root)
    demo = _leaf(root, "demo", "źródło SQLite z polskimi tekstami demo i zadanie na nim", commands.cmd_demo)
    demo.add_argument("--alias", default="demo", help="alias źródła (domyślnie demo)")
    demo.add_argument("--path", help="plik SQLite (domyślnie data/demo.sqlite w projekcie)")
    demo.add_argument("--model", help="model AI zadania (nazwa z ailexia model list)")
    secrets = root.add_parser(
        "secrets", help="hasła źródeł w bazie", description="Hasła źródeł w bazie (Fernet)."
    )
    sub = secrets.add_subparsers(dest="secrets_command", metavar="polecenie", required=True)
    _leaf(
        sub, "encrypt", "zaszyfruj hasła zapisane jawnie (AILEXIA_SECRET_KEY)", commands.cmd_secrets_encrypt
    )
    _leaf(
        sub,
        "rotate",
        "przeszyfruj hasła nowym kluczem (stary w AILEXIA_SECRET_KEY_OLD)",
        commands.cmd_secrets_rotate,
    )
    return parser


def _quiet_console(logger: logging.Logger) -> None:
    """Na konsolę tylko ostrzeżenia i błędy (wynik polecenia jest na stdout; pełny log w pliku)."""
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(max(logging.WARNING, logger.level))


def main(argv: Sequence[str] | None = None) -> int:
    """Punkt wejścia: zwraca kod wyjścia."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_config(args.env_file)
        _quiet_console(setup_logging(settings, "ailexia"))
        db = connect_local(settings, autocommit=False)
        try:
            return args.handler(db, settings, args)
        finally:
            db.close()
    except AilexiaError as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except pymysql.MySQLError as exc:
        # 1054 Unknown column: baza lokalna sprzed migracji (np. bez database_connection.password_env).
        hint = (
            "; schemat lokalnej bazy jest starszy - uruchom: python sync.py --init-db"
            if exc.args[:1] == (1054,)
            else ""
        )
        print(f"{PROG}: {local_error_message(exc)}{hint}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def run() -> NoReturn:
    """Skrypt konsoli ``ailexia`` (``[project.scripts]``)."""
    from lib.runtime.process import exit_process

    exit_process(main())


if __name__ == "__main__":
    run()
