"""Pełna orkiestracja: prawdziwy ``dagster-daemon`` podejmuje zadanie z tabeli ``task`` i je synchronizuje.

Bez wołania skryptów: test wstawia wiersz ``task`` (status ``new``), a demon (sensor
``task_sensor`` + QueuedRunCoordinator + run launcher) ma doprowadzić zadanie do ``completed``.
Potem operator ustawia ``resync`` i zadanie przechodzi drugą synchronizację - jeden run na zlecenie.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from ailexia_dagster.constants import TAG_CONNECTION, TAG_ID_TASK, TAG_KIND
from tests.helpers import (
    add_connection,
    add_task,
    create_text_table,
    source_execute,
    start_daemon,
    stop_process_group,
)

pytestmark = pytest.mark.slow

DAGSTER_YAML = """
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: "ailexia/connection"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
python_logs:
  managed_python_loggers:
    - ailexia
  python_log_level: INFO
telemetry:
  enabled: false
"""


def wait_for(predicate, timeout_s: float, what: str, daemon: subprocess.Popen, log_path: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if daemon.poll() is not None:
            pytest.fail(
                f"dagster-daemon zakończył się ({daemon.returncode}):\n{log_path.read_text()[-4000:]}"
            )
        time.sleep(1)
    pytest.fail(f"nie doczekano się: {what}\n--- log demona ---\n{log_path.read_text()[-4000:]}")


@pytest.fixture
def daemon(local_env, settings, tmp_path):
    home = Path(local_env["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    log_path = tmp_path / "daemon.log"
    env = {**os.environ, **local_env, "SENSOR_INTERVAL_S": "2", "SENSOR_STALE_QUEUED_S": "600"}
    process = start_daemon(env, tmp_path, log_path)
    try:
        yield process, log_path
    finally:
        stop_process_group(process)


def test_daemon_syncs_new_task_and_resync(db, sqlite_source, daemon):
    process, log_path = daemon
    create_text_table(
        sqlite_source, rows=[(i, f"Tekst numer {i}: zażółć gęślą jaźń.") for i in range(1, 201)]
    )
    id_connection = add_connection(db, sqlite_source)
    id_task = add_task(db, id_connection)

    def task_state():
        return db.query_one(
            "SELECT status, sync_progress, records_new, records_updated, finished_at, error_log "
            "FROM task WHERE id_task=%s",
            (id_task,),
        )

    def completed():
        row = task_state()
        if row["status"] == "error":
            pytest.fail(f"zadanie zakończone błędem: {row['error_log']}")
        return row if row["status"] == "completed" else None

    row = wait_for(completed, 120, "zadanie completed po pierwszej synchronizacji", process, log_path)
    assert float(row["sync_progress"]) == 100.0 and row["records_new"] == 200
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND deleted_at IS NULL", (id_task,))
        == 200
    )

    instance = DagsterInstance.get()

    def runs_finished(count: int):
        runs = instance.get_runs(RunsFilter(tags={TAG_ID_TASK: str(id_task)}))
        return runs if len(runs) >= count and all(r.is_finished for r in runs) else None

    # Zadanie jest completed, zanim run zamknie się w Dagsterze (asset checki, zdarzenia).
    runs = wait_for(lambda: runs_finished(1), 60, "run zakończony w instancji", process, log_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.job_name == "sync_job" and run.status == DagsterRunStatus.SUCCESS
    assert run.tags[TAG_CONNECTION] == str(id_connection) and run.tags[TAG_KIND] == "sync"
    assert run.tags["dagster/partition"] == str(id_task)
    assert instance.has_dynamic_partition("id_task", str(id_task))

    # Operator zmienia źródło i zleca resync zwykłym UPDATE.
    source_execute(sqlite_source, "UPDATE articles SET body='zmieniony tekst' WHERE id=7")
    source_execute(sqlite_source, "INSERT INTO articles (id, body) VALUES (201, 'nowy wiersz')")
    db.execute("UPDATE task SET status='resync' WHERE id_task=%s", (id_task,))

    def resynced():
        row = completed()
        return row if row and row["finished_at"] and row["records_updated"] == 1 else None

    row = wait_for(resynced, 120, "zadanie completed po resync", process, log_path)
    assert row["records_new"] == 1
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND deleted_at IS NULL", (id_task,))
        == 201
    )
    runs = wait_for(lambda: runs_finished(2), 60, "drugi run zakończony w instancji", process, log_path)
    assert len(runs) == 2 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
    assert len({r.tags["dagster/run_key"] for r in runs}) == 2
    # Kilka kolejnych ticków: zadanie completed nie dostaje kolejnych runów.
    time.sleep(6)
    assert len(instance.get_runs(RunsFilter(tags={TAG_ID_TASK: str(id_task)}))) == 2


def test_terminating_run_in_ui_pauses_task(db, pg_source, daemon):
    """Zakończenie runu z UI (run_launcher.terminate, jak przycisk Terminate) = pauza ``signal``, nie awaria."""
    process, log_path = daemon
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT, note TEXT)")
    source_execute(
        pg_source,
        "INSERT INTO articles SELECT g, repeat('zdanie do korekty ', 25) || g FROM generate_series(1, 400000) g",
    )
    id_task = add_task(db, add_connection(db, pg_source))
    instance = DagsterInstance.get()

    def scanning():
        row = db.query_one("SELECT status, records_fetched FROM task WHERE id_task=%s", (id_task,))
        return row["status"] == "in_progress" and (row["records_fetched"] or 0) >= 10000

    wait_for(scanning, 120, "skan w toku", process, log_path)
    run = instance.get_runs(RunsFilter(tags={TAG_ID_TASK: str(id_task)}))[0]
    assert instance.run_launcher.terminate(run.run_id)

    def paused():
        # Wpis runu, nie status zadania: ``paused`` zadania trwa tylko do najbliższego ticku sensora,
        # który je wznawia (``queued``) - sprawdzanie raz na sekundę mogło go przegapić.
        row = db.query_one(
            "SELECT status, message FROM run_log WHERE run_id=%s AND kind='sync'", (run.run_id,)
        )
        return row if row is not None and row["status"] != "running" else None

    row = wait_for(paused, 60, "wpis runu zamknięty po zakończeniu runu z UI", process, log_path)
    assert row["status"] == "paused" and ("signal" in row["message"] or "sygnał" in row["message"]), row
    # Zadanie jest w pauzie albo już wznowione przez sensor - nigdy w błędzie.
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) != "error"
    finished = wait_for(
        lambda: (r := instance.get_run_by_id(run.run_id)) and r.is_finished and r,
        60,
        "run zamknięty",
        process,
        log_path,
    )
    # Issue 15: zakończony z UI run jest Canceled (nie Success) i nie materializuje partycji.
    assert finished.status == DagsterRunStatus.CANCELED
    assert finished.tags.get("ailexia/outcome") == "paused (signal)"
    assert str(id_task) not in instance.get_materialized_partitions(AssetKey("remote_snapshot"))
    # Pauza z sygnału: sensor wznawia zadanie i kończy synchronizację od zapisanego klucza.
    row = wait_for(
        lambda: (
            (r := db.query_one("SELECT status, records_new FROM task WHERE id_task=%s", (id_task,)))["status"]
            == "completed"
            and r
        ),
        180,
        "wznowienie przez sensor",
        process,
        log_path,
    )
    assert row["records_new"] == 400000
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,)) == 400000
    wait_for(
        lambda: str(id_task) in instance.get_materialized_partitions(AssetKey("remote_snapshot")),
        60,
        "partycja zmaterializowana przez run wznawiający",
        process,
        log_path,
    )
