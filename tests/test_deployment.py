"""Wdrożenie z osobnymi procesami: serwer kodu, demon i webserver (``deploy/run_separate.sh``).

Trzy procesy na jednej instancji w PostgreSQL (``deploy/dagster.yaml``: QueuedRunCoordinator
z limitem per połączenie). Test rejestruje zadanie na źródle SQLite i czeka, aż run zlecony przez
sensor w demonie (z lokacji serwera kodu, przez kolejkę) doprowadzi je do ``completed``; potem
zatrzymuje skrypt SIGTERM-em i sprawdza, że żaden z procesów nie został.
"""

import os
import time

import psutil
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ailexia_dagster.constants import SYNC_JOB, TAG_CONNECTION, TAG_ID_TASK
from tests.deployment import graphql, pg_instance_fixture, pg_query, start_separate, stop_separate  # noqa: F401
from tests.helpers import add_connection, add_task, create_text_table

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def process_tree(pid: int) -> list[psutil.Process]:
    """Proces i wszyscy jego potomkowie (żywi)."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_separate_processes_complete_a_task(pg_instance, settings, db, sqlite_source, tmp_path):
    env = {**pg_instance, "SENSOR_INTERVAL_S": "2", "SENSOR_STALE_QUEUED_S": "600"}
    started = time.monotonic()
    process, url = start_separate(env, tmp_path / "separate.log")
    up_s = time.monotonic() - started
    try:
        # Trzy osobne procesy Dagstera (plus potomek serwera kodu), żaden nie jest `dagster dev`.
        commands = [" ".join(p.cmdline()) for p in process_tree(process.pid)]
        assert any("code-server start" in c and "ailexia_dagster.definitions" in c for c in commands), (
            commands
        )
        assert any("dagster-daemon run" in c for c in commands), commands
        assert any("dagster-webserver" in c for c in commands), commands
        assert not any(" dev " in f"{c} " for c in commands), commands

        create_text_table(sqlite_source, rows=[(i, f"Tekst {i}: zażółć gęślą jaźń.") for i in range(1, 151)])
        id_connection = add_connection(db, sqlite_source)
        id_task = add_task(db, id_connection)
        instance = DagsterInstance.get()
        try:
            deadline = time.monotonic() + 90
            run = None
            while time.monotonic() < deadline:
                row = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
                assert row["status"] != "error", row["error_log"]
                runs = instance.get_runs(RunsFilter(tags={TAG_ID_TASK: str(id_task)}))
                if row["status"] == "completed" and runs and runs[0].status == DagsterRunStatus.SUCCESS:
                    run = runs[0]
                    break
                assert process.poll() is None, (tmp_path / "separate.log").read_text()[-4000:]
                time.sleep(1)
            assert run is not None, (tmp_path / "separate.log").read_text()[-4000:]
            done_s = time.monotonic() - started
            # Run zlecił sensor w demonie, z lokacji serwera kodu, przez kolejkę z tagiem połączenia.
            assert run.job_name == SYNC_JOB
            assert run.remote_job_origin.location_name == "ailexia"
            assert run.tags[TAG_CONNECTION] == str(id_connection)
            assert "dagster/sensor_name" in run.tags
            events = [
                e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event
            ]
            assert (
                events.index("PIPELINE_ENQUEUED")
                < events.index("PIPELINE_STARTING")
                < events.index("PIPELINE_START")
            )
        finally:
            instance.dispose()
        assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,)) == 150
        # Ten sam run w magazynie PostgreSQL i w GraphQL webservera (to, co pokazuje UI).
        assert pg_query(
            pg_instance["DAGSTER_PG_DB"], "SELECT status FROM runs WHERE run_id=%s", (run.run_id,)
        ) == [("SUCCESS",)]
        answer = graphql(url, f'{{ runOrError(runId: "{run.run_id}") {{ ... on Run {{ status }} }} }}')
        assert answer["data"]["runOrError"]["status"] == "SUCCESS"
    finally:
        pids = [p.pid for p in process_tree(process.pid)]
        stop_s = stop_separate(process)
    time.sleep(0.5)
    left = [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert not left, f"procesy po zatrzymaniu: {left}"
    assert stop_s < 15
    print(
        f"\nosobne procesy: gotowe po {up_s:.1f} s, zadanie completed po {done_s:.1f} s, stop {stop_s:.1f} s"
    )
    assert os.path.exists(pg_instance["DAGSTER_HOME"])
