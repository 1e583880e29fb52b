"""Sterowanie operatora: pauza, anulowanie, SIGTERM, okno czasowe, widok stanu."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lib.sync import engine as sync
from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, source_execute
from tests.test_sync_pipeline import _state

pytestmark = pytest.mark.slow

ROWS = 150000
# AILEXIA_DELAY (lib/faults.py): 10 ms na partię, by szybka pierwsza synchronizacja dała się złapać w trakcie.
SLOW_ENV = {"BATCH_SIZE": "200", "COMMIT_ROWS": "1000", "AILEXIA_DELAY": "sync.fetch:0.01"}


@pytest.fixture
def big_source(pg_source):
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT, note TEXT)")
    source_execute(
        pg_source,
        "INSERT INTO articles SELECT g, repeat('zdanie do korekty ', 25) || g FROM generate_series(1, %s) g",
        (ROWS,),
    )
    return pg_source


def start_sync(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "sync.py", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, **SLOW_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_fetched(db, id_task: int, at_least: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (id_task,)) or 0) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("synchronizacja nie ruszyła")


def run_sync(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "sync.py", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, **SLOW_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )


def reference_state(settings, db, connection: int):
    reference = add_task(db, connection)
    sync.sync_task(settings, reference)
    return _state(db, reference)


def test_pause_mid_fetch_then_resume_gives_identical_state(local_env, settings, db, big_source):
    connection = add_connection(db, big_source)
    id_task = add_task(db, connection)
    proc = start_sync(local_env, "--id_task", str(id_task))
    wait_fetched(db, id_task, 10000)
    paused_at = time.time()
    db.execute("UPDATE task SET status='paused' WHERE id_task=%s", (id_task,))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.time() - paused_at < 10
    task = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "paused" and task["pause_reason"] == "manual"
    assert 0 < task["records_fetched"] < ROWS and task["resume_marker"].startswith("scan:")
    assert "paused" in out
    # Tryb cron nie wznawia ręcznej pauzy.
    cron = run_sync(local_env)
    assert (
        cron.returncode == 0
        and db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "paused"
    )
    resumed = run_sync(local_env, "--id_task", str(id_task))
    assert resumed.returncode == 0, resumed.stderr
    assert _state(db, id_task) == reference_state(settings, db, connection)


def test_cancel_mid_sync_stops_and_is_never_picked_up(local_env, settings, db, big_source):
    id_task = add_task(db, add_connection(db, big_source))
    proc = start_sync(local_env, "--id_task", str(id_task))
    wait_fetched(db, id_task, 10000)
    db.execute("UPDATE task SET status='cancelled' WHERE id_task=%s", (id_task,))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    fetched = db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (id_task,))
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "cancelled"
    assert fetched < ROWS
    cron = run_sync(local_env)
    assert cron.returncode == 0
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "cancelled"
    assert db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (id_task,)) == fetched
    # Dane zostają.
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,)) == fetched


def test_sigterm_pauses_and_cron_resumes(local_env, settings, db, big_source):
    connection = add_connection(db, big_source)
    id_task = add_task(db, connection)
    proc = start_sync(local_env, "--id_task", str(id_task))
    wait_fetched(db, id_task, 10000)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    task = db.query_one("SELECT status, pause_reason, records_fetched FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "paused" and task["pause_reason"] == "signal" and task["records_fetched"] < ROWS
    # Pauza z sygnału jest wznawiana przez tryb cron.
    cron = run_sync(local_env)
    assert cron.returncode == 0, cron.stderr
    assert _state(db, id_task) == reference_state(settings, db, connection)


def test_max_seconds_pauses_then_resume_completes(local_env, settings, db, big_source):
    connection = add_connection(db, big_source)
    id_task = add_task(db, connection)
    started = time.time()
    result = run_sync(local_env, "--id_task", str(id_task), "--max-seconds", "2")
    elapsed = time.time() - started
    assert result.returncode == 0, result.stderr
    task = db.query_one(
        "SELECT status, pause_reason, records_fetched, total_time_ms FROM task WHERE id_task=%s", (id_task,)
    )
    assert task["status"] == "paused" and task["pause_reason"] == "time_limit"
    assert 0 < task["records_fetched"] < ROWS
    assert 2 <= elapsed < 20
    assert 1500 <= task["total_time_ms"] <= 6000
    resumed = run_sync(local_env, "--id_task", str(id_task))
    assert resumed.returncode == 0, resumed.stderr
    assert _state(db, id_task) == reference_state(settings, db, connection)


def test_status_view_text_and_json(local_env, settings, db, sqlite_source):
    from tests.helpers import create_text_table

    create_text_table(sqlite_source, rows=[(i, f"tekst {i}") for i in range(1, 6)])
    connection = add_connection(db, sqlite_source, alias="crm")
    done = add_task(db, connection)
    sync.sync_task(settings, done)
    db.execute(
        "UPDATE task_item SET status='processed', tokens_input=100, tokens_output=20, cost_usd=0.0015 "
        "WHERE id_task=%s AND remote_id IN (1,2)",
        (done,),
    )
    db.execute("UPDATE task_item SET status='exported' WHERE id_task=%s AND remote_id=3", (done,))
    paused = add_task(db, connection, status="paused", pause_reason="time_limit")
    failed = add_task(db, connection, table="missing")
    sync_result = run_sync(local_env, "--id_task", str(failed))
    assert sync_result.returncode == 1
    text = run_sync(local_env, "--status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["id", "source", "table.column", "status"]
    assert len(lines) == 4
    row_done = next(line for line in lines[1:] if line.split()[0] == str(done))
    assert row_done.split()[:8] == [str(done), "crm", "articles.body", "completed", "done", "100.0", "5", "2"]
    assert "240" in row_done and "0.0030" in row_done
    assert "paused(time_limit)" in next(line for line in lines if line.split()[0] == str(paused))
    assert "missing" in next(line for line in lines if line.split()[0] == str(failed))
    as_json = run_sync(local_env, "--status", "--json", "--id_task", str(done))
    data = json.loads(as_json.stdout)
    assert len(data) == 1
    assert data[0]["items_total"] == 5 and data[0]["items_exported"] == 1 and data[0]["items_processed"] == 2
    assert data[0]["tokens_input"] == 200 and abs(data[0]["cost_usd"] - 0.003) < 1e-9
    assert data[0]["status"] == "completed" and data[0]["alias"] == "crm"
    unknown = run_sync(local_env, "--status", "--id_task", "999")
    assert unknown.returncode == 2


@pytest.mark.parametrize("script", ["sync", "ai"])
def test_script_reports_a_lost_local_connection_without_a_traceback(script, settings, monkeypatch, capsys):
    """Zerwane połączenie skryptu z lokalną bazą (np. przy odczycie stanu po runie): komunikat, kod 1."""
    import importlib

    import pymysql

    module = importlib.import_module(script)

    def lost(*_args, **_kwargs):
        raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")

    monkeypatch.setattr(module, "run_one", lost)
    assert module.main(["--id_task", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{script}: utracono połączenie z lokalną bazą MySQL (2013: Lost connection" in err, err
