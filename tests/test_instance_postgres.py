"""Instancja Dagstera w PostgreSQL (``deploy/dagster.yaml``): sensor, run ``sync.py`` i run ``ai.py``.

Test zakłada świeżą bazę PostgreSQL na lokalnym serwerze, kopiuje do ``DAGSTER_HOME`` plik
``deploy/dagster.yaml`` z repozytorium (ten sam, który opisuje README; zmienne ``DAGSTER_PG_*``),
liczy tick ``task_sensor`` na tej instancji, uruchamia ``sync.py`` i ``ai.py`` jako osobne procesy
i szuka ich runów w tabelach Dagstera w PostgreSQL - zapytaniem SQL i przez ``DagsterInstance``.
Na koniec baza instancji jest usuwana.
"""

import os
import subprocess
import sys

import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    build_sensor_context,
)
from dagster_postgres import PostgresRunStorage

from ailexia_dagster.constants import PARTITION_NAME, TAG_CONNECTION, TAG_ID_TASK, TAG_KIND
from ailexia_dagster.definitions import defs
from ailexia_dagster.resources import AilexiaResource
from ailexia_dagster.sensors import task_sensor
from tests.conftest import PROJECT_ROOT
from tests.deployment import pg_instance_fixture, pg_query  # noqa: F401
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_connection, add_model, add_task, create_text_table

pytestmark = pytest.mark.timeout(240)


def run_script(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_sensor_sync_and_ai_runs_live_in_postgres_instance(
    pg_instance, db, sqlite_source, fake_openai, tmp_path
):
    db_name = pg_instance["DAGSTER_PG_DB"]
    create_text_table(sqlite_source, rows=[(i, f"To jest bląd numer {i}.") for i in range(1, 21)])
    id_connection = add_connection(db, sqlite_source)
    id_model = add_model(db, name="fake", base_url=fake_openai["base_url"])
    id_task = add_task(db, id_connection, id_ai_model=id_model)

    instance = DagsterInstance.get()
    try:
        # Instancja naprawdę stoi na PostgreSQL (nie cichy powrót do SQLite).
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert not any(
            name.endswith(".db") for _, _, files in os.walk(pg_instance["DAGSTER_HOME"]) for name in files
        )

        # 1) Tick sensora na tej instancji: rezerwuje zadanie i prosi o partycję i run.
        context = build_sensor_context(
            instance=instance,
            definitions=defs,
            instance_ref=instance.get_ref(),
            resources={"ailexia": AilexiaResource()},
        )
        data = task_sensor.evaluate_tick(context)
        assert [r.partition_key for r in data.run_requests] == [str(id_task)]
        assert data.run_requests[0].tags[TAG_CONNECTION] == str(id_connection)
        assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "queued"
        # To, co demon robi z żądaniem partycji: zapis w magazynie instancji (PostgreSQL).
        for request in data.dynamic_partitions_requests:
            assert isinstance(request, AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(PARTITION_NAME, list(request.partition_keys))
    finally:
        instance.dispose()
    assert pg_query(
        db_name, "SELECT partition FROM dynamic_partitions WHERE partitions_def_name=%s", (PARTITION_NAME,)
    ) == [(str(id_task),)]

    # 2) sync.py i ai.py w osobnych procesach, na tej samej instancji.
    # sync.py jak z crona: zmienne DAGSTER_PG_* tylko w pliku .env, nie w środowisku procesu.
    env_file = tmp_path / "cron.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in pg_instance.items() if k.startswith("DAGSTER_PG_")))
    cron_env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_")}
    sync = run_script("sync.py", {**cron_env, "ENV_FILE": str(env_file)}, "--id_task", str(id_task))
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    ai = run_script("ai.py", {**os.environ, **pg_instance}, "--id_task", str(id_task))
    assert ai.returncode == 0, ai.stdout + ai.stderr
    assert sum(fake_openai["per_text"].values()) >= 20
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,))
        == 20
    )

    # 3) Runy obu skryptów w tabelach Dagstera w PostgreSQL (SQL) ...
    rows = pg_query(
        db_name,
        "SELECT r.run_id, r.status, k.value FROM runs r JOIN run_tags k ON k.run_id = r.run_id "
        "WHERE k.key = %s ORDER BY r.create_timestamp",
        (TAG_KIND,),
    )
    assert [(status, kind) for _, status, kind in rows] == [("SUCCESS", "sync"), ("SUCCESS", "ai")]
    # ... i przez DagsterInstance (to, co czyta UI), z tagami zadania i partycji.
    instance = DagsterInstance.get()
    try:
        runs = instance.get_runs()
        assert {r.run_id for r in runs} == {run_id for run_id, _, _ in rows}
        for run in runs:
            assert run.status == DagsterRunStatus.SUCCESS
            assert run.tags[TAG_ID_TASK] == str(id_task)
            assert run.tags["dagster/partition"] == str(id_task)
        for asset in ("remote_snapshot", "task_item_hashes", "ai_corrections"):
            assert instance.get_materialized_partitions(AssetKey(asset)) == {str(id_task)}
    finally:
        instance.dispose()
