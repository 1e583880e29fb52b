"""Obciążenie: 50 zadań naraz przez prawdziwy ``dagster-daemon`` z limitem runów na połączenie.

25 zadań czyta tabele z jednego pliku SQLite, 25 z jednej bazy PostgreSQL - dwa połączenia, więc
dwie wartości tagu ``ailexia/connection``. Demon (``task_sensor`` + QueuedRunCoordinator z limitem 4
na wartość tagu + domyślny run launcher, czyli proces na run) ma doprowadzić wszystkie do
``completed`` z właściwą liczbą pozycji. Limit sprawdzamy z rekordów runów: dla każdego połączenia
liczymy największą liczbę runów nakładających się w czasie (start/koniec z instancji) - nie więcej
niż 4, ale więcej niż 1 (inaczej test nie mógłby wykryć przekroczenia). Test drukuje całkowity czas.
"""

import os
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ailexia_dagster.constants import SYNC_JOB, TAG_CONNECTION, TAG_ID_TASK
from tests.helpers import add_connection, source_execute, start_daemon, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TASKS_PER_SOURCE = 25
CONNECTION_LIMIT = 4
MAX_CONCURRENT_RUNS = 8
WAIT_S = 600
SENSOR_INTERVAL_S = "5"

DAGSTER_YAML = f"""
concurrency:
  runs:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
    tag_concurrency_limits:
      - key: "{TAG_CONNECTION}"
        value:
          applyLimitPerUniqueValue: true
        limit: {CONNECTION_LIMIT}
run_queue:
  dequeue_use_threads: true
  dequeue_num_workers: 4
python_logs:
  managed_python_loggers:
    - ailexia
  python_log_level: INFO
telemetry:
  enabled: false
"""


def row_count(index: int) -> int:
    """Liczba wierszy tabeli ``index`` (od kilkuset do ~2000; różne, żeby runy kończyły się w różnym czasie)."""
    return 300 + (index * 67) % 1700


def text(index: int, key: int) -> str:
    """Tekst wiersza źródła (polskie znaki, różny dla każdej tabeli i klucza)."""
    return f"Tabela {index}, wiersz {key}: zażółć gęślą jaźń, źdźbło trawy {key * 7919 % 1000}."


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Największa liczba przedziałów ``(start, koniec)`` otwartych jednocześnie.

    Zamiatanie po zdarzeniach; przy równym czasie koniec liczy się przed startem
    (run, który się skończył, zwolnił miejsce dla tego, który właśnie wystartował).
    """
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda e: (e[0], e[1]),
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def daemon_log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""


@pytest.fixture
def daemon(local_env, settings, tmp_path):
    """Prawdziwy ``dagster-daemon run`` na tymczasowej instancji z limitem runów na połączenie."""
    home = Path(local_env["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    log_path = tmp_path / "daemon.log"
    env = {**os.environ, **local_env, "SENSOR_INTERVAL_S": SENSOR_INTERVAL_S, "SENSOR_STALE_QUEUED_S": "900"}
    process = start_daemon(env, tmp_path, log_path)
    try:
        yield process, log_path
    finally:
        stop_process_group(process)


def fill_sqlite(path: Path) -> dict[str, int]:
    """Tworzy w pliku SQLite tabele ``articles_NN`` i zwraca ``{tabela: liczba wierszy}``."""
    tables = {}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for index in range(TASKS_PER_SOURCE):
            table, rows = f"articles_{index:02d}", row_count(index)
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT)")
            conn.execute("BEGIN")
            conn.executemany(
                f"INSERT INTO {table} (id, body) VALUES (?, ?)",
                [(key, text(index, key)) for key in range(1, rows + 1)],
            )
            conn.execute("COMMIT")
            tables[table] = rows
    finally:
        conn.close()
    return tables


def fill_pg(source: dict) -> dict[str, int]:
    """Tworzy w bazie PostgreSQL tabele ``articles_NN`` i zwraca ``{tabela: liczba wierszy}``."""
    tables = {}
    for index in range(TASKS_PER_SOURCE):
        # Inne rozmiary niż w SQLite, żeby oba połączenia nie szły krok w krok.
        table, rows = f"articles_{index:02d}", row_count(index + 11)
        source_execute(source, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT)")
        source_execute(
            source,
            f"INSERT INTO {table} SELECT g, 'Tabela {index}, wiersz ' || g || ': zażółć gęślą jaźń.' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        tables[table] = rows
    return tables


def test_fifty_tasks_respect_connection_limit(db, pg_source, sqlite_source, daemon, tmp_path):
    process, log_path = daemon
    sqlite_source["conn"].close()
    sqlite_path = Path(sqlite_source["db_name"])
    expected: dict[int, tuple[int, int]] = {}  # id_task -> (id_connection, liczba wierszy)

    conn_sqlite = add_connection(db, sqlite_source, alias="load-sqlite")
    conn_pg = add_connection(db, pg_source, alias="load-pg")
    sources = [(conn_sqlite, fill_sqlite(sqlite_path)), (conn_pg, fill_pg(pg_source))]

    # Wszystkie 50 zadań jednym INSERT-em: sensor zobaczy je naraz w jednym ticku.
    rows = [(1, id_connection, table, "body") for id_connection, tables in sources for table in tables]
    started = time.monotonic()
    db.executemany(
        "INSERT INTO task (id_user, id_database_connection, table_name, column_name) VALUES (%s, %s, %s, %s)",
        rows,
    )
    for id_connection, tables in sources:
        for table, count in tables.items():
            id_task = db.query_value(
                "SELECT id_task FROM task WHERE id_database_connection=%s AND table_name=%s",
                (id_connection, table),
            )
            expected[int(id_task)] = (id_connection, count)
    assert len(expected) == 2 * TASKS_PER_SOURCE

    instance = DagsterInstance.get()
    ids = ",".join(str(i) for i in expected)

    def check_daemon():
        if process.poll() is not None:
            pytest.fail(f"dagster-daemon zakończył się ({process.returncode}):\n{daemon_log_tail(log_path)}")

    # 1) Wszystkie zadania completed (albo błąd - wtedy od razu z komunikatem).
    deadline = started + WAIT_S
    last_report = 0.0
    while True:
        check_daemon()
        states = db.query(f"SELECT id_task, status, error_log FROM task WHERE id_task IN ({ids})")
        errors = [r for r in states if r["status"] == "error"]
        if errors:
            pytest.fail(f"zadania z błędem: {[(r['id_task'], r['error_log']) for r in errors[:5]]}")
        done = sum(r["status"] == "completed" for r in states)
        if done == len(expected):
            break
        if time.monotonic() > deadline:
            by_status = defaultdict(int)
            for r in states:
                by_status[r["status"]] += 1
            pytest.fail(
                f"po {WAIT_S} s completed {done}/{len(expected)}: {dict(by_status)}\n{daemon_log_tail(log_path)}"
            )
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            print(f"  [{time.monotonic() - started:6.1f} s] completed {done}/{len(expected)}", flush=True)
        time.sleep(1)
    tasks_done_s = time.monotonic() - started

    # 2) Runy zamknięte w instancji (task completed wyprzedza koniec runu: asset checki, zdarzenia).
    def sync_records():
        return instance.get_run_records(RunsFilter(job_name=SYNC_JOB))

    while True:
        check_daemon()
        records = sync_records()
        if len(records) >= len(expected) and all(r.dagster_run.is_finished for r in records):
            break
        if time.monotonic() > deadline + 60:
            pytest.fail(
                f"runy niezamknięte: {[(r.dagster_run.run_id, r.dagster_run.status) for r in records]}"
            )
        time.sleep(1)
    total_s = time.monotonic() - started

    # Dokładnie jeden udany run na zadanie, otagowany połączeniem zadania.
    by_task = defaultdict(list)
    for record in records:
        by_task[int(record.dagster_run.tags[TAG_ID_TASK])].append(record)
    assert set(by_task) == set(expected)
    assert all(len(v) == 1 for v in by_task.values()), {k: len(v) for k, v in by_task.items() if len(v) != 1}
    assert {r.dagster_run.status for r in records} == {DagsterRunStatus.SUCCESS}
    for id_task, (id_connection, _count) in expected.items():
        assert by_task[id_task][0].dagster_run.tags[TAG_CONNECTION] == str(id_connection)

    # Właściwe liczby pozycji w każdym zadaniu.
    counts = {
        int(r["id_task"]): int(r["n"])
        for r in db.query(
            f"SELECT id_task, COUNT(*) AS n FROM task_item WHERE id_task IN ({ids}) AND deleted_at IS NULL "
            "GROUP BY id_task"
        )
    }
    news = {
        int(r["id_task"]): int(r["records_new"])
        for r in db.query(f"SELECT id_task, records_new FROM task WHERE id_task IN ({ids})")
    }
    assert counts == {i: c for i, (_, c) in expected.items()}
    assert news == {i: c for i, (_, c) in expected.items()}

    # 3) Limit współbieżności z rekordów runów: start/koniec z magazynu runów.
    intervals = defaultdict(list)
    for record in records:
        assert record.start_time and record.end_time and record.end_time >= record.start_time
        intervals[record.dagster_run.tags[TAG_CONNECTION]].append((record.start_time, record.end_time))
    overlap = {conn: max_overlap(spans) for conn, spans in intervals.items()}
    overall = max_overlap([span for spans in intervals.values() for span in spans])
    total_rows = sum(c for _, c in expected.values())
    print(
        f"\nobciążenie: {len(expected)} zadań, {total_rows} wierszy, 2 połączenia; "
        f"wszystkie completed po {tasks_done_s:.1f} s, wszystkie runy zamknięte po {total_s:.1f} s; "
        f"największa współbieżność na połączenie {overlap} (limit {CONNECTION_LIMIT}), łącznie {overall}",
        flush=True,
    )
    assert set(overlap) == {str(conn_sqlite), str(conn_pg)}
    for conn, peak in overlap.items():
        assert peak <= CONNECTION_LIMIT, f"połączenie {conn}: {peak} runów naraz (limit {CONNECTION_LIMIT})"
        assert peak > 1, f"połączenie {conn}: runy nigdy nie szły równolegle - test nie sprawdziłby limitu"
    assert overall <= MAX_CONCURRENT_RUNS
