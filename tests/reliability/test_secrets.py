"""Sekrety nie wyciekają: hasła źródeł i klucze API nie trafiają nigdzie, gdzie ktoś je zobaczy.

Skrypty (``sync.py``, ``ai.py``, ``sync.py --export``) działają jako osobne procesy z
``LOG_LEVEL=DEBUG`` i ``LOG_SQL_QUERIES=true`` - najbardziej gadatliwa konfiguracja. Przechodzą
ścieżki udane i ścieżki błędów (złe hasło źródła, klucz API odrzucony z 401 przez serwer, który
w komunikacie błędu powtarza otrzymany klucz). Potem test przeszukuje wszystko, co widzi
człowiek albo inny system: wyjście procesów, pliki logów, każdy plik w ``DAGSTER_HOME``,
dziennik zdarzeń Dagstera (przez API instancji), wszystkie kolumny wszystkich tabel lokalnej
bazy (poza samym ``database_connection.db_password``).
"""

import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lib.review.decisions import set_decision
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_connection, add_model, add_task, create_text_table, source_execute

SOURCE_PASSWORD = "Zr0dlo-Sekret-9q7Xv2Lm"
WRONG_PASSWORD = "Bledne-Haslo-4k8Zp1Wd"
API_KEY = "sk-ailexia-TEST-7c1e5b9d3f2a"
REJECTED_KEY = "sk-ailexia-ODRZUCONY-2a6f8e4c"
SECRETS = [SOURCE_PASSWORD, WRONG_PASSWORD, API_KEY, REJECTED_KEY]


class EchoKeyHandler(BaseHTTPRequestHandler):
    """Serwer "OpenAI", który odrzuca każde zapytanie i powtarza otrzymany klucz w komunikacie błędu.

    Ścieżka ``/v500/...`` odpowiada 500 (błąd pozycji, tekst trafia do ``ai_error`` i logów),
    każda inna 401 (klucz odrzucony, run przerwany).
    """

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, *args) -> None:  # serwer testowy milczy
        return

    def do_POST(self) -> None:  # noqa: N802 - API http.server
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        self.seen.append(token)
        code = 500 if self.path.startswith("/v500/") else 401
        body = json.dumps(
            {"error": {"message": f"Incorrect API key provided: {token}", "type": "invalid_request_error"}}
        ).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo_server():
    """Serwer błędów powtarzający klucz; zwraca (adres bazowy bez /v1, lista otrzymanych kluczy)."""
    handler = type("Handler", (EchoKeyHandler,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret_user(mysql_source):
    """Użytkownik MariaDB z charakterystycznym hasłem i prawami do bazy źródłowej."""
    user = f"ax_sec_{uuid.uuid4().hex[:8]}"
    source_execute(mysql_source, f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (SOURCE_PASSWORD,))
    source_execute(mysql_source, f"GRANT ALL ON `{mysql_source['db_name']}`.* TO '{user}'@'%'")
    yield user
    source_execute(mysql_source, f"DROP USER IF EXISTS '{user}'@'%'")


def run_script(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Uruchamia skrypt projektu jako osobny proces (bez przekazywania sekretów w argumentach)."""
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def local_tables_dump(db) -> str:
    """Wszystkie wartości wszystkich tabel lokalnej bazy (poza kolumną z hasłem połączenia)."""
    parts = []
    for row in db.query("SHOW TABLES"):
        table = next(iter(row.values()))
        for record in db.query(f"SELECT * FROM `{table}`"):
            if table == "database_connection":
                record.pop("db_password")
            parts.append(f"{table}: {record!r}")
    return "\n".join(parts)


def dagster_events_dump(dagster_home: str) -> tuple[str, int, int]:
    """Serializuje każdy run i każde zdarzenie dziennika instancji Dagstera.

    Returns:
        Krotka ``(tekst, liczba runów, liczba zdarzeń STEP_FAILURE)``.
    """
    from dagster import DagsterInstance, serialize_value

    os.environ["DAGSTER_HOME"] = dagster_home
    parts = []
    failures = 0
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        for run in runs:
            parts.append(serialize_value(run))
            for event in instance.all_logs(run.run_id):
                parts.append(serialize_value(event))
                # Komunikaty błędów kroków i metadane materializacji jeszcze raz wprost (bez escapowania JSON).
                parts.append(event.message or "")
                dagster_event = event.dagster_event
                if dagster_event is not None and dagster_event.is_step_failure:
                    failures += 1
                    parts.append(str(dagster_event.step_failure_data.error))
                if dagster_event is not None and dagster_event.is_step_materialization:
                    parts.append(repr(dagster_event.step_materialization_data.materialization.metadata))
    return "\n".join(parts), len(runs), failures


def files_dump(*roots: str) -> dict[str, bytes]:
    """Zawartość każdego pliku pod wskazanymi katalogami (logi, bazy SQLite Dagstera, logi kroków)."""
    found = {}
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def assert_no_secret(where: str, text: str | bytes) -> None:
    """Żaden sekret (także jako bajty UTF-8) nie występuje w tekście."""
    for secret in SECRETS:
        needle = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"sekret {secret[:6]}... widoczny w: {where}"


def test_no_secret_anywhere_with_debug_and_sql_logging(
    local_env, settings, db, mysql_source, secret_user, fake_openai, echo_server
):
    echo_url, echo_seen = echo_server
    create_text_table(mysql_source, rows=[(1, "To jest bląd"), (2, "napewno dobrze"), (3, "bez zmian")])
    good = {**mysql_source, "db_user": secret_user, "db_password": SOURCE_PASSWORD}
    wrong = {**mysql_source, "db_user": secret_user, "db_password": WRONG_PASSWORD}
    id_good_conn = add_connection(db, good, alias="dobre-haslo")
    id_wrong_conn = add_connection(db, wrong, alias="zle-haslo")
    model_ok = add_model(db, name="ok", base_url=fake_openai["base_url"], api_key_env="OPENAI_API_KEY")
    model_500 = add_model(db, name="blad-500", base_url=f"{echo_url}/v500", api_key_env="AILEXIA_SECOND_KEY")
    model_401 = add_model(db, name="odrzucony", base_url=f"{echo_url}/v1", api_key_env="AILEXIA_SECOND_KEY")
    task_ok = add_task(db, id_good_conn, id_ai_model=model_ok)
    task_wrong = add_task(db, id_wrong_conn)
    task_echo = add_task(db, id_good_conn, id_ai_model=model_500)

    env = {
        **os.environ,
        **local_env,
        "LOG_LEVEL": "DEBUG",
        "LOG_SQL_QUERIES": "true",
        "OPENAI_API_KEY": API_KEY,
        "AILEXIA_SECOND_KEY": REJECTED_KEY,
        "AI_MAX_RETRIES": "1",
        "AI_BACKOFF_S": "0.05",
    }
    results = {}
    results["sync ok"] = run_script(env, "sync.py", "--id_task", str(task_ok))
    assert results["sync ok"].returncode == 0, results["sync ok"].stderr
    results["ai ok"] = run_script(env, "ai.py", "--id_task", str(task_ok))
    assert results["ai ok"].returncode == 0, results["ai ok"].stderr
    changed, _refused = set_decision(db, task_ok, None, "accepted", "test")
    assert len(changed) == 3
    results["export ok"] = run_script(env, "sync.py", "--export", "--id_task", str(task_ok))
    assert results["export ok"].returncode == 0, results["export ok"].stderr
    results["sync wrong password"] = run_script(env, "sync.py", "--id_task", str(task_wrong))
    assert results["sync wrong password"].returncode == 1
    results["sync echo"] = run_script(env, "sync.py", "--id_task", str(task_echo))
    assert results["sync echo"].returncode == 0, results["sync echo"].stderr
    # Najpierw 500 z kluczem w treści (błędy pozycji, ponowienie), potem 401 (run przerwany).
    results["ai 500"] = run_script(env, "ai.py", "--id_task", str(task_echo))
    errors = [
        r["ai_error"] for r in db.query("SELECT ai_error FROM task_item WHERE id_task=%s", (task_echo,))
    ]
    # Serwer powtórzył klucz, a zapisany błąd ma go zamaskowanego.
    assert len(errors) == 3 and all("Incorrect API key provided: ***" in e for e in errors), errors
    db.execute("UPDATE task SET id_ai_model=%s WHERE id_task=%s", (model_401, task_echo))
    results["ai 401"] = run_script(env, "ai.py", "--id_task", str(task_echo))
    assert results["ai 401"].returncode != 0

    # Ścieżki naprawdę przeszły: klucze dotarły do serwerów, źródło dostało poprawki, błędy zapisane.
    assert {r["headers"]["authorization"] for r in fake_openai["requests"]} == {f"Bearer {API_KEY}"}
    assert len(echo_seen) > 3 and set(echo_seen) == {REJECTED_KEY}
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='exported'", (task_ok,))
        == 3
    )
    wrong_task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (task_wrong,))
    assert wrong_task["status"] == "error" and "Access denied" in wrong_task["error_log"]
    wrong_conn = db.query_one(
        "SELECT status, last_error FROM database_connection WHERE id_database_connection=%s", (id_wrong_conn,)
    )
    assert wrong_conn["status"] == "error" and "Access denied" in wrong_conn["last_error"]
    ai_fail = db.query_one(
        "SELECT status, message FROM run_log WHERE id_task=%s AND kind='ai' ORDER BY id_run_log DESC LIMIT 1",
        (task_echo,),
    )
    assert ai_fail["status"] == "error" and "401" in ai_fail["message"], ai_fail

    # 1. Wyjście procesów.
    for name, result in results.items():
        assert_no_secret(f"{name}: stdout", result.stdout)
        assert_no_secret(f"{name}: stderr", result.stderr)
    assert "401" in results["ai 401"].stdout + results["ai 401"].stderr

    # 2. Pliki logów i wszystko w DAGSTER_HOME (bazy SQLite dziennika, logi kroków).
    files = files_dump(local_env["LOG_DIR"], local_env["DAGSTER_HOME"])
    for path, content in files.items():
        assert_no_secret(path, content)
    sync_log = files[os.path.join(local_env["LOG_DIR"], "sync.log")].decode("utf-8")
    ai_log = files[os.path.join(local_env["LOG_DIR"], "ai.log")].decode("utf-8")
    # Logowanie SQL naprawdę działało (inaczej brak sekretów niczego by nie dowodził).
    assert sync_log.count("SQL (") > 20 and "database_connection" in sync_log
    assert ai_log.count("SQL (") > 5 and "DEBUG" in ai_log
    assert "Access denied" in sync_log and "401" in ai_log

    # 3. Lokalna baza: task.error_log, database_connection.last_error, run_log.message/stats, pozycje...
    assert_no_secret("lokalna baza", local_tables_dump(db))

    # 4. Dziennik zdarzeń Dagstera przez API instancji (błędy kroków, metadane materializacji).
    events, run_count, failures = dagster_events_dump(local_env["DAGSTER_HOME"])
    assert run_count == 7 and failures >= 2
    assert "Access denied" in events and "401" in events
    assert_no_secret("dziennik Dagstera", events)
