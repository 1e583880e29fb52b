"""``sync.py --queue`` / ``ai.py --queue``: run wstawiony do kolejki Dagstera zamiast pracy w procesie skryptu.

Wdrożenie z osobnymi procesami (``deploy/run_separate.sh``: serwer kodu, demon, webserver) na
instancji w PostgreSQL z QueuedRunCoordinator. Sensory tykają raz na godzinę, a zadanie jest
wstrzymane ręcznie (``paused``/``manual``), więc żaden run nie przychodzi od sensora: każdy run
w instancji pochodzi ze skryptu, przeszedł przez kolejkę i wykonał go demon (z lokacji serwera kodu).
"""

import os
import re
import subprocess
import sys
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ailexia_dagster.constants import AI_JOB, SYNC_JOB, TAG_CONNECTION, TAG_ID_TASK, TAG_KIND
from tests.conftest import PROJECT_ROOT
from tests.deployment import pg_instance_fixture, start_separate, stop_separate  # noqa: F401
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_connection, add_model, add_task, create_text_table

RUN_ID = re.compile(r"run ([0-9a-f-]{36}) \((\w+)\) wstawiony do kolejki Dagstera")


def run_script(env: dict, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=150,
    )


def run_events(instance: DagsterInstance, run_id: str) -> list[str]:
    return [e.dagster_event.event_type_value for e in instance.all_logs(run_id) if e.dagster_event]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_queued_runs_go_through_the_daemon(pg_instance, settings, db, sqlite_source, fake_openai, tmp_path):
    env = {**pg_instance, "SENSOR_INTERVAL_S": "3600"}
    log_path = tmp_path / "separate.log"
    process, url = start_separate(env, log_path)
    env["DAGSTER_WEBSERVER_URL"] = url
    try:
        create_text_table(sqlite_source, rows=[(i, f"Zdanie {i}: to jest bląd.") for i in range(1, 121)])
        id_connection = add_connection(db, sqlite_source)
        id_model = add_model(db, name="fake", base_url=fake_openai["base_url"])
        id_task = add_task(db, id_connection, id_ai_model=id_model, status="paused", pause_reason="manual")

        # sync.py --queue: kończy się od razu, mówi, który run i że czeka w kolejce.
        queued = run_script(env, "sync.py", "--id_task", str(id_task), "--queue")
        assert queued.returncode == 0, queued.stdout + queued.stderr
        match = RUN_ID.search(queued.stdout)
        assert match and match.group(2) == SYNC_JOB, queued.stdout
        run_id = match.group(1)
        assert f"limit kolejki per połączenie {id_connection}" in queued.stdout
        # Drugi run tego samego zadania nie wchodzi do kolejki, dopóki pierwszy żyje.
        second = run_script(env, "sync.py", "--id_task", str(id_task), "--queue")
        assert second.returncode == 1 and "ma już żywy run" in second.stderr, second.stdout + second.stderr

        instance = DagsterInstance.get()
        try:
            deadline = time.monotonic() + 90
            while instance.get_run_by_id(run_id).status != DagsterRunStatus.SUCCESS:
                assert not instance.get_run_by_id(run_id).is_finished, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
            run = instance.get_run_by_id(run_id)
            # Przez kolejkę (demon), z lokacji serwera kodu, z tagiem limitu per połączenie.
            assert run.job_name == SYNC_JOB and run.remote_job_origin.location_name == "ailexia"
            assert run.tags[TAG_CONNECTION] == str(id_connection)
            assert run.tags["dagster/partition"] == str(id_task)
            events = run_events(instance, run_id)
            assert events.index("PIPELINE_ENQUEUED") < events.index("PIPELINE_STARTING")
            row = db.query_one("SELECT status, records_new FROM task WHERE id_task=%s", (id_task,))
            assert (row["status"], row["records_new"]) == ("completed", 120)

            # ai.py --queue --wait: czeka na koniec runu z kolejki i podaje jego wynik.
            ai = run_script(env, "ai.py", "--id_task", str(id_task), "--queue", "--wait")
            assert ai.returncode == 0, ai.stdout + ai.stderr
            match = RUN_ID.search(ai.stdout)
            assert match and match.group(2) == AI_JOB, ai.stdout
            assert f"run {match.group(1)} SUCCESS" in ai.stdout
            ai_run = instance.get_run_by_id(match.group(1))
            assert ai_run.status == DagsterRunStatus.SUCCESS and ai_run.tags[TAG_KIND] == "ai"
            assert "PIPELINE_ENQUEUED" in run_events(instance, ai_run.run_id)
            processed = db.query_value(
                "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
            )
            assert processed == 120 and sum(fake_openai["per_text"].values()) >= 120
            # Wszystkie runy zadania pochodzą ze skryptów (sensory nie zlecały niczego).
            runs = instance.get_runs(RunsFilter(tags={TAG_ID_TASK: str(id_task)}))
            assert sorted(r.run_id for r in runs) == sorted([run_id, ai_run.run_id])
        finally:
            instance.dispose()
    finally:
        stop_separate(process)


def test_queue_without_webserver_says_so(local_env, settings, db, sqlite_source):
    create_text_table(sqlite_source, rows=[(1, "tekst")])
    id_task = add_task(db, add_connection(db, sqlite_source))
    env = {**local_env, "DAGSTER_WEBSERVER_URL": "http://127.0.0.1:9"}
    result = run_script(env, "sync.py", "--id_task", str(id_task), "--queue")
    assert result.returncode == 1
    assert "http://127.0.0.1:9" in result.stderr and "DAGSTER_WEBSERVER_URL" in result.stderr
    assert "Traceback" not in result.stderr
    # Nic nie zostało uruchomione w procesie skryptu.
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "new"
    usage = run_script(env, "sync.py", "--id_task", str(id_task), "--wait")
    assert usage.returncode == 2 and "--wait" in usage.stderr
