"""Awarie serwerów w trakcie synchronizacji: zerwane połączenie ze źródłem i z lokalną MariaDB.

Prawdziwy ``sync.py`` czyta duże źródło PostgreSQL małymi partiami; w połowie skanu inne
połączenie zabija sesję runu po stronie serwera (``pg_terminate_backend`` w źródle albo
``KILL`` w MariaDB). Operator ma zobaczyć zadanie ``error`` z przyczyną w ``error_log`` i kod
wyjścia 1 - nie zadanie wiszące w ``in_progress`` - a następny run ma dokończyć pracę ze stanem
identycznym jak run bez awarii.
"""

import os
import subprocess
import sys
import time

import psycopg2
import pymysql
import pytest

from lib.sync import engine as sync
from tests.conftest import MYSQL_SERVER, PG_SERVER, PROJECT_ROOT
from tests.helpers import add_connection, add_task, source_execute
from tests.test_sync_pipeline import _state

pytestmark = pytest.mark.slow

ROWS = 150000
# AILEXIA_DELAY (lib/faults.py): 10 ms na partię, by szybka pierwsza synchronizacja dała się złapać w trakcie.
SLOW_ENV = {"BATCH_SIZE": "200", "COMMIT_ROWS": "1000", "AILEXIA_DELAY": "sync.fetch:0.01"}
LOST_SOURCE = ("terminating connection", "server closed the connection", "connection already closed")


@pytest.fixture
def big_source(pg_source):
    """Źródło PostgreSQL z ``ROWS`` wierszami."""
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT, note TEXT)")
    source_execute(
        pg_source,
        "INSERT INTO articles SELECT g, repeat('zdanie do korekty ', 10) || g FROM generate_series(1, %s) g",
        (ROWS,),
    )
    return pg_source


def start_sync(env: dict, id_task: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "sync.py", "--id_task", str(id_task)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, **SLOW_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_sync(env: dict, id_task: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "sync.py", "--id_task", str(id_task)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, **SLOW_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_fetched(db, id_task: int, at_least: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (id_task,)) or 0) >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError("synchronizacja nie ruszyła")


def assert_consistent_partial(db, id_task: int) -> None:
    """Stan po awarii: nie ``completed``, pozycje dokładnie do zatwierdzonego klucza, bez duplikatów."""
    task = db.query_one(
        "SELECT status, records_fetched, last_processed_id, resume_marker FROM task WHERE id_task=%s",
        (id_task,),
    )
    assert task["status"] == "error" and task["resume_marker"].startswith("scan:")
    assert 0 < task["records_fetched"] < ROWS
    counts = db.query_one(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT remote_id) AS keys_, MAX(remote_id) AS hi FROM task_item WHERE id_task=%s",
        (id_task,),
    )
    # Klucze źródła to 1..ROWS, więc zatwierdzony klucz = liczba pozycji = liczba pobranych wierszy.
    assert (
        counts["n"] == counts["keys_"] == task["records_fetched"] == task["last_processed_id"] == counts["hi"]
    )


def test_source_connection_terminated_mid_sync(local_env, settings, db, big_source):
    connection = add_connection(db, big_source)
    victim, twin = add_task(db, connection), add_task(db, connection)
    proc = start_sync(local_env, victim)
    wait_fetched(db, victim, 20000)
    admin = psycopg2.connect(dbname="postgres", **PG_SERVER)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>%s",
                (big_source["db_name"], big_source["conn"].get_backend_pid()),
            )
            assert [row[0] for row in cursor.fetchall()] == [True]
    finally:
        admin.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err

    error_log = db.query_value("SELECT error_log FROM task WHERE id_task=%s", (victim,))
    # Przyczyna: zerwane połączenie ze źródłem. Tekst sterownika zależy od chwili zerwania
    # ("terminating connection ...", "server closed the connection ...", "connection already closed").
    assert "źródle" in error_log and any(word in error_log for word in LOST_SOURCE), error_log
    assert error_log in err and "Traceback" not in err
    assert_consistent_partial(db, victim)
    assert db.query_value("SELECT status FROM run_log WHERE id_task=%s", (victim,)) == "error"

    rerun = run_sync(local_env, victim)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    sync.sync_task(settings.updated(BATCH_SIZE=2000, COMMIT_ROWS=20000), twin)
    assert _state(db, victim) == _state(db, twin)
    assert _state(db, victim)[1]["status"] == "completed"


def kill_local_sessions(database: str, spare: int) -> int:
    """Zabija w MariaDB sesje na bazie ``database`` poza sesją ``spare`` (test); zwraca ich liczbę."""
    admin = pymysql.connect(**MYSQL_SERVER, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB=%s AND ID NOT IN (CONNECTION_ID(), %s)",
                (database, spare),
            )
            ids = [row[0] for row in cursor.fetchall()]
            for session in ids:
                try:
                    cursor.execute(f"KILL CONNECTION {int(session)}")
                except pymysql.MySQLError:  # sesja zniknęła w międzyczasie
                    pass
        return len(ids)
    finally:
        admin.close()


def test_local_connection_killed_mid_sync(local_env, settings, db, big_source):
    """KILL sesji runu w MariaDB w trakcie transakcji partii.

    Zabijamy kilka razy w krótkich odstępach, żeby trafić także w otwartą transakcję (sama
    bezczynna sesja zostałaby po cichu otwarta na nowo przez ``MySQL.begin``). Oczekiwane:
    ``error`` z przyczyną (utracone połączenie) albo - jeśli run się połączył ponownie -
    ``completed``; nigdy ``in_progress`` po zakończeniu procesu.
    """
    connection = add_connection(db, big_source)
    victim, twin = add_task(db, connection), add_task(db, connection)
    proc = start_sync(local_env, victim)
    wait_fetched(db, victim, 20000)
    own = db.query_value("SELECT CONNECTION_ID()")
    killed = 0
    for _ in range(40):
        if proc.poll() is not None:
            break
        killed += kill_local_sessions(local_env["DB_LOCAL_NAME"], own)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert killed > 0
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (victim,))
    assert task["status"] in ("error", "completed"), (task, out, err)
    if task["status"] == "error":
        assert proc.returncode == 1, out + err
        assert "utracono połączenie z lokalną bazą" in task["error_log"], task
        assert any(word in task["error_log"] for word in ("Lost connection", "gone away", "2013", "2006")), (
            task
        )
        assert task["error_log"] in err and "Traceback" not in err
        assert_consistent_partial(db, victim)
    else:
        assert proc.returncode == 0, out + err

    rerun = run_sync(local_env, victim)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    sync.sync_task(settings.updated(BATCH_SIZE=2000, COMMIT_ROWS=20000), twin)
    assert _state(db, victim) == _state(db, twin)
    assert _state(db, victim)[1]["status"] == "completed"
