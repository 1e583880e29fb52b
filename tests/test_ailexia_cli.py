"""Polecenie ``ailexia`` z zewnątrz: ``.venv/bin/ailexia`` jako osobny proces na prawdziwych bazach.

Źródła PostgreSQL, MariaDB i SQLite; rola PostgreSQL i użytkownik MariaDB tylko z SELECT (sync
działa, eksport odmówiony przed zapisem, pozycje zostają ``accepted``); złe nazwy tabeli, kolumny
i klucza (kod 2, jedna linia, nic nie wstawione); powtórzony alias; źródło używane przez zadanie;
demo; stan i zmiany statusu zadania; test modelu na ``tests/fake_openai.py``.
"""

import json
import os
import subprocess
import sys
import uuid

import pytest

from lib.db_remote import discovery
from lib.passwords import new_key
from lib.review import decisions as review
from lib.sync import engine as sync
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import (
    add_connection,
    add_task,
    create_text_table,
    simulate_ai,
    source_execute,
    source_query,
)

AILEXIA = PROJECT_ROOT / ".venv" / "bin" / "ailexia"
TEXTS = [(1, "Pierwszy tekst z bląd."), (2, "Drugi tekst."), (3, "Trzeci tekst wogóle.")]


@pytest.fixture
def cli_env(local_env, settings):
    """Środowisko procesów ``ailexia`` (świeża lokalna baza ze schematem i klucz szyfrujący)."""
    return {**os.environ, "AILEXIA_SECRET_KEY": new_key()}


def ailexia(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Uruchamia ``.venv/bin/ailexia`` jako osobny proces."""
    return subprocess.run(
        [str(AILEXIA), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, cwd="/"
    )


def ok(result: subprocess.CompletedProcess) -> str:
    """Wyjście udanego polecenia (z treścią błędu w komunikacie asercji)."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Błąd użycia: kod 2 i dokładnie jedna linia na stderr zawierająca ``fragments``."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_script(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Skrypt projektu (``sync.py``) jako osobny proces."""
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def add_source_args(source: dict, alias: str, user: str | None = None) -> list[str]:
    """Argumenty ``source add`` dla źródła z fixture'a."""
    if source["db_type"] == "sqlite":
        return ["source", "add", "--alias", alias, "--type", "sqlite", "--db", source["db_name"]]
    return [
        "source",
        "add",
        "--alias",
        alias,
        "--type",
        source["db_type"],
        "--host",
        source["host"],
        "--port",
        str(source["port"]),
        "--db",
        source["db_name"],
        "--user",
        user or source["db_user"],
        # Serwery testowe: root MariaDB bez hasła, PostgreSQL trust; hasło tylko dla ról testu.
        *(["--password-stdin"] if user else []),
    ]


@pytest.fixture
def pg_readonly(pg_source):
    """Rola PostgreSQL, która może tylko czytać tabelę ``articles`` (SELECT, bez UPDATE)."""
    create_text_table(pg_source, rows=TEXTS)
    role = f"ax_ro_{uuid.uuid4().hex[:8]}"
    source_execute(pg_source, f"CREATE ROLE {role} LOGIN PASSWORD 'ro-haslo-1'")
    source_execute(pg_source, f"GRANT SELECT ON articles TO {role}")
    # Tabela bez żadnego prawa roli: widoczna w pg_class, kolumny ukryte przez information_schema.
    source_execute(pg_source, "CREATE TABLE hidden (id INT PRIMARY KEY, body TEXT)")
    yield role
    source_execute(pg_source, f"DROP OWNED BY {role}")
    source_execute(pg_source, f"DROP ROLE {role}")


@pytest.fixture
def mysql_readonly(mysql_source):
    """Użytkownik MariaDB tylko z SELECT na bazie źródłowej."""
    create_text_table(mysql_source, rows=TEXTS)
    user = f"ax_ro_{uuid.uuid4().hex[:8]}"
    source_execute(mysql_source, f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", ("ro-haslo-1",))
    source_execute(mysql_source, f"GRANT SELECT ON `{mysql_source['db_name']}`.* TO '{user}'@'%'")
    yield user
    source_execute(mysql_source, f"DROP USER IF EXISTS '{user}'@'%'")


def accept_all(db, id_task: int) -> list[int]:
    """Wynik "AI" dla wszystkich pozycji i akceptacja; zwraca id pozycji."""
    simulate_ai(db, id_task, {remote_id: f"{text} (poprawione)" for remote_id, text in TEXTS})
    ids = [
        r["id_task_item"] for r in db.query("SELECT id_task_item FROM task_item WHERE id_task=%s", (id_task,))
    ]
    changed, refused_ids = review.set_decision(db, id_task, ids, "accepted", "anna")
    assert refused_ids == [] and len(changed) == len(TEXTS)
    return ids


def test_pgsql_select_only_role_syncs_and_export_is_refused_before_writing(
    cli_env, db, pg_source, pg_readonly
):
    ok(ailexia(cli_env, *add_source_args(pg_source, "crm", pg_readonly), stdin="ro-haslo-1\n"))

    tested = ok(ailexia(cli_env, "source", "test", "crm"))
    assert "odczyt (SELECT): nie (1 z 2 tabel)" in tested
    assert "zapis (UPDATE):  nie (0 z 2 tabel)" in tested
    assert f"użytkownik:      {pg_readonly}" in tested
    assert "UPDATE" in tested and "'articles'" in tested
    as_json = json.loads(ok(ailexia(cli_env, "source", "test", "crm", "--table", "articles", "--json")))
    assert as_json["can_read"] is True and as_json["can_update"] is False
    assert as_json["version"].split(".")[0].isdigit() and as_json["elapsed_ms"] >= 0

    # Klucz główny widoczny dla roli bez praw innych niż SELECT (pg_catalog, nie information_schema).
    tables = json.loads(ok(ailexia(cli_env, "source", "tables", "crm", "--json")))
    assert tables[1] == {
        "table": "hidden",
        "rows_estimate": tables[1]["rows_estimate"],
        "key": None,
        "key_problem": "użytkownik nie widzi kolumn tabeli (brak uprawnień)",
        "text_columns": [],
        "can_read": False,
        "can_update": False,
    }
    assert tables[:1] == [
        {
            "table": "articles",
            "rows_estimate": tables[0]["rows_estimate"],
            "key": "id",
            "key_problem": None,
            "text_columns": ["body", "note"],
            "can_read": True,
            "can_update": False,
        }
    ]

    id_task = int(
        ok(ailexia(cli_env, "task", "add", "--source", "crm", "--table", "articles", "--column", "body"))
    )
    synced = run_script(cli_env, "sync.py", "--id_task", str(id_task))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    shown = json.loads(ok(ailexia(cli_env, "task", "show", str(id_task), "--json")))
    assert shown["status"] == "completed" and shown["items_total"] == 3 and shown["items_pending"] == 3

    accept_all(db, id_task)
    exported = run_script(cli_env, "sync.py", "--id_task", str(id_task), "--export")
    assert exported.returncode != 0
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "error"
    assert (
        pg_readonly in task["error_log"]
        and "UPDATE" in task["error_log"]
        and "'articles'" in task["error_log"]
    )
    assert "\n" not in task["error_log"]
    statuses = db.query("SELECT DISTINCT status FROM task_item WHERE id_task=%s", (id_task,))
    assert [r["status"] for r in statuses] == ["accepted"]
    assert source_query(pg_source, "SELECT id, body FROM articles ORDER BY id") == TEXTS


def test_mariadb_select_only_user_syncs_and_export_is_refused(
    cli_env, settings, db, mysql_source, mysql_readonly
):
    ok(ailexia(cli_env, *add_source_args(mysql_source, "hr", mysql_readonly), stdin="ro-haslo-1\n"))
    tested = json.loads(ok(ailexia(cli_env, "source", "test", "hr", "--json")))
    assert tested["can_read"] is True and tested["can_update"] is False
    assert mysql_readonly in tested["user"] and "UPDATE" in tested["export_refusal"]

    id_task = int(
        ok(ailexia(cli_env, "task", "add", "--source", "hr", "--table", "articles", "--column", "body"))
    )
    stats = sync.sync_task(settings.updated(AILEXIA_SECRET_KEY=cli_env["AILEXIA_SECRET_KEY"]), id_task)
    assert stats["new"] == 3
    accept_all(db, id_task)
    exported = run_script(cli_env, "sync.py", "--id_task", str(id_task), "--export")
    assert exported.returncode != 0
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "error" and mysql_readonly in task["error_log"] and "UPDATE" in task["error_log"]
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='accepted'", (id_task,))
        == 3
    )
    assert source_query(mysql_source, "SELECT id, body FROM articles ORDER BY id") == TEXTS


@pytest.mark.parametrize("source_name", ["pg_source", "mysql_source", "sqlite_source"])
def test_wrong_names_exit_2_naming_them_and_insert_nothing(request, cli_env, db, source_name):
    source = request.getfixturevalue(source_name)
    create_text_table(source, rows=TEXTS)
    source_execute(source, "CREATE TABLE nokey (body TEXT)")
    ok(ailexia(cli_env, *add_source_args(source, "src")))
    base = ["task", "add", "--source", "src"]
    refused(ailexia(cli_env, *base, "--table", "artykuly", "--column", "body"), "'artykuly'")
    refused(ailexia(cli_env, *base, "--table", "articles", "--column", "tresc"), "'tresc'")
    refused(ailexia(cli_env, *base, "--table", "articles", "--column", "body", "--key", "numer"), "'numer'")
    refused(
        ailexia(cli_env, *base, "--table", "articles", "--column", "body", "--key", "note"), "'note'", "NULL"
    )
    refused(
        ailexia(cli_env, *base, "--table", "articles", "--column", "body", "--export-column", "body_en"),
        "'body_en'",
    )
    refused(
        ailexia(cli_env, *base, "--table", "articles", "--column", "body", "--cursor-column", "zmieniono"),
        "'zmieniono'",
    )
    refused(ailexia(cli_env, *base, "--table", "nokey", "--column", "body"), "nokey'", "klucza")
    refused(ailexia(cli_env, *base, "--table", "articles", "--column", "body", "--model", "brak"), "'brak'")
    refused(
        ailexia(cli_env, "task", "add", "--source", "nieznane", "--table", "articles", "--column", "body")
    )
    assert db.query_value("SELECT COUNT(*) FROM task") == 0
    # Poprawne nazwy (także klucz podany wprost i kolumna eksportu) przechodzą.
    id_task = ok(
        ailexia(
            cli_env,
            *base,
            "--table",
            "articles",
            "--column",
            "body",
            "--key",
            "id",
            "--export-column",
            "note",
            "--cursor-column",
            "id",
        )
    )
    row = db.query_one("SELECT * FROM task WHERE id_task=%s", (int(id_task),))
    assert (
        row["table_name"],
        row["column_name"],
        row["key_column"],
        row["export_column"],
        row["cursor_column"],
        row["status"],
    ) == (
        "articles",
        "body",
        "id",
        "note",
        "id",
        "new",
    )


def test_duplicate_alias_and_source_in_use(cli_env, db, sqlite_source):
    create_text_table(sqlite_source, rows=TEXTS)
    ok(ailexia(cli_env, *add_source_args(sqlite_source, "pliki")))
    refused(ailexia(cli_env, *add_source_args(sqlite_source, "pliki")), "'pliki'", "już istnieje")
    assert db.query_value("SELECT COUNT(*) FROM database_connection") == 1
    refused(ailexia(cli_env, "source", "add", "--alias", "x", "--type", "oracle", "--db", "d"), "--type")
    refused(ailexia(cli_env, "source", "add", "--alias", "x", "--type", "mysql", "--db", "d"), "--host")
    refused(
        ailexia(cli_env, "source", "add", "--alias", "x", "--type", "sqlite", "--db", "/nie/ma.sqlite"),
        "--db",
    )
    refused(
        ailexia(
            cli_env,
            "source",
            "add",
            "--alias",
            "x",
            "--type",
            "pgsql",
            "--host",
            "h",
            "--user",
            "u",
            "--db",
            "d",
            "--port",
            "70000",
        ),
        "--port",
    )

    id_task = ok(
        ailexia(cli_env, "task", "add", "--source", "pliki", "--table", "articles", "--column", "body")
    ).strip()
    refused(ailexia(cli_env, "source", "remove", "pliki"), "'pliki'", id_task)
    ok(ailexia(cli_env, "task", "archive", id_task))
    assert "usunięto" in ok(ailexia(cli_env, "source", "remove", "pliki"))
    assert db.query_value("SELECT COUNT(*) FROM database_connection") == 0
    refused(ailexia(cli_env, "source", "remove", "pliki"), "'pliki'")


def test_task_show_pause_resume_resync_cancel(cli_env, db, sqlite_source):
    create_text_table(sqlite_source, rows=TEXTS)
    id_connection = add_connection(db, sqlite_source, alias="plik")
    id_task = str(add_task(db, id_connection))
    ok(ailexia(cli_env, "task", "pause", id_task))
    assert db.query_one("SELECT status, pause_reason FROM task WHERE id_task=%s", (id_task,)) == {
        "status": "paused",
        "pause_reason": "manual",
    }
    assert "bez zmian" in ok(ailexia(cli_env, "task", "pause", id_task))
    shown = ok(ailexia(cli_env, "task", "show", id_task))
    assert "status:             paused (manual)" in shown and "pozycje wg statusu: pending 0" in shown
    assert "paused -> resync" in ok(ailexia(cli_env, "task", "resume", id_task))
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "resync"
    refused(ailexia(cli_env, "task", "resume", "999"), "999")
    db.execute("UPDATE task SET status='in_progress' WHERE id_task=%s", (id_task,))
    refused(ailexia(cli_env, "task", "resync", id_task), "in_progress")
    refused(ailexia(cli_env, "task", "archive", id_task), "in_progress")
    result = json.loads(ok(ailexia(cli_env, "task", "cancel", id_task, "--json")))
    assert result == {"id_task": int(id_task), "before": "in_progress", "after": "cancelled", "changed": True}
    refused(ailexia(cli_env, "task", "pause", id_task), "cancelled")
    listed = json.loads(ok(ailexia(cli_env, "task", "list", "--json")))
    assert [(t["id_task"], t["status"]) for t in listed] == [(int(id_task), "cancelled")]
    assert "plik" in ok(ailexia(cli_env, "task", "list"))


def test_demo_registers_sqlite_source_and_task(cli_env, settings, db, tmp_path):
    path = tmp_path / "demo" / "demo.sqlite"
    result = json.loads(ok(ailexia(cli_env, "demo", "--path", str(path), "--json")))
    assert result["rows"] == 30 and result["alias"] == "demo" and path.is_file()
    refused(ailexia(cli_env, "demo", "--path", str(path)), "'demo'")
    stats = sync.sync_task(settings, result["id_task"])
    assert stats["new"] == 30
    shown = json.loads(ok(ailexia(cli_env, "task", "show", str(result["id_task"]), "--json")))
    assert shown["status"] == "completed" and shown["items_pending"] == 30 and shown["alias"] == "demo"
    texts = [r["text_original"] for r in db.query("SELECT text_original FROM task_item ORDER BY remote_id")]
    assert len(texts) == 30 and any("ą" in t or "ę" in t or "ł" in t for t in texts)


def test_model_add_list_and_test_against_fake_server(cli_env, db, fake_openai):
    env = {**cli_env, "FAKE_KEY": "sk-fake-1234"}
    args = [
        "model",
        "add",
        "--name",
        "lokalny",
        "--model",
        "fake-model",
        "--base-url",
        fake_openai["base_url"],
    ]
    prices = ["--api-key-env", "FAKE_KEY", "--price-in", "0.15", "--price-out", "0,60"]
    ok(ailexia(env, *args, *prices, "--pack-items", "10"))
    refused(ailexia(env, *args, *prices), "'lokalny'", "już istnieje")
    refused(
        ailexia(
            env,
            "model",
            "add",
            "--name",
            "m2",
            "--model",
            "x",
            "--api-key-env",
            "zła nazwa",
            "--price-in",
            "1",
            "--price-out",
            "1",
        ),
        "--api-key-env",
    )
    refused(
        ailexia(
            env,
            "model",
            "add",
            "--name",
            "m3",
            "--model",
            "x",
            "--api-key-env",
            "K",
            "--price-in",
            "-1",
            "--price-out",
            "1",
        ),
        "--price-in",
    )
    row = db.query_one("SELECT * FROM ai_model WHERE name='lokalny'")
    assert (float(row["price_input_per_mtok"]), float(row["price_output_per_mtok"]), row["pack_items"]) == (
        0.15,
        0.6,
        10,
    )

    tested = json.loads(ok(ailexia(env, "model", "test", "lokalny", "--json")))
    assert tested["answer"] == "To jest błąd, którego w ogóle nie widać."
    assert tested["tokens_input"] > 0 and tested["tokens_output"] > 0 and tested["latency_ms"] >= 0
    expected = (tested["tokens_input"] * 0.15 + tested["tokens_output"] * 0.60) / 1_000_000
    assert tested["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert {r["headers"]["authorization"] for r in fake_openai["requests"]} == {"Bearer sk-fake-1234"}
    text = ok(ailexia(env, "model", "test", "lokalny"))
    assert "odpowiedź: To jest błąd" in text and "USD" in text
    listed = json.loads(ok(ailexia(env, "model", "list", "--json")))
    assert [(m["name"], m["api_key_env"], m["tasks"]) for m in listed] == [("lokalny", "FAKE_KEY", 0)]
    refused(ailexia(env, "model", "test", "nieznany"), "'nieznany'")


def test_usage_errors_are_one_line_with_exit_2(cli_env):
    refused(ailexia(cli_env, "task", "add", "--source", "x"), "--table")
    refused(ailexia(cli_env, "task", "show", "abc"), "abc")
    refused(ailexia(cli_env, "nieznane"), "nieznane")
    assert "użycie: ailexia" in ok(ailexia(cli_env, "--help"))


def test_mssql_discovery_sql_uses_catalog_functions_and_matches_parameters():
    spec = discovery.DISCOVERY["mssql"]
    assert spec["privileges"].count("?") == 4 and "HAS_PERMS_BY_NAME" in spec["privileges"]
    assert "'UPDATE'" in spec["privileges"] and "'SELECT'" in spec["privileges"]
    assert spec["tables"].count("?") == len(spec["tables_params"]("dbo")) == 1
    assert "SERVERPROPERTY('ProductVersion')" in spec["server"]
    for db_type, entry in discovery.DISCOVERY.items():
        mark = "?" if db_type in ("mssql", "sqlite") else "%s"
        assert entry["tables"].count(mark) == len(entry["tables_params"]("s")), db_type
        if entry["privileges"]:
            assert entry["privileges"].count(mark) == 4, db_type
        else:
            assert entry["probe_begin"], db_type
    probe = discovery.PROBE_UPDATE.format(table="[dbo].[t]", column="[c]")
    assert probe == "UPDATE [dbo].[t] SET [c] = [c] WHERE 1 = 0"
