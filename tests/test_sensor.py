"""Testy sensorów na prawdziwej MariaDB i prawdziwej instancji Dagstera (``instance_for_test``).

Tick liczony jest przez ``sensor.evaluate_tick(build_sensor_context(...))``; to, co w produkcji
robi demon po ticku (partycje, runy w kolejce), odtwarza ``apply_tick``.
"""

import threading
import time

import pymysql
import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    DagsterRunStatus,
    DeleteDynamicPartitionsRequest,
    build_sensor_context,
    instance_for_test,
)

from ailexia_dagster.constants import (
    AI_JOB,
    PARTITION_NAME,
    SYNC_JOB,
    TAG_CONNECTION,
    TAG_ID_TASK,
    TAG_KIND,
    TAG_REQUEST,
)
from ailexia_dagster.definitions import defs
from ailexia_dagster.resources import AilexiaResource
from ailexia_dagster.sensors import ai_after_sync_sensor, task_sensor
from lib.runtime.locks import task_lock_name
from tests.conftest import MYSQL_SERVER
from tests.helpers import add_connection, add_model, add_task, record_run


@pytest.fixture
def instance(local_env):
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def conn_id(db, sqlite_source):
    return add_connection(db, sqlite_source)


def tick(sensor_def, instance, cursor: str | None = None):
    """Jeden tick sensora w świeżym kontekście (jak po restarcie demona: nowy kontekst, ta sama instancja)."""
    context = build_sensor_context(
        instance=instance,
        definitions=defs,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        resources={"ailexia": AilexiaResource()},
    )
    return sensor_def.evaluate_tick(context)


def apply_tick(
    instance, data, job_name: str = SYNC_JOB, status: DagsterRunStatus = DagsterRunStatus.NOT_STARTED
) -> list:
    """Robi to, co demon po ticku: stosuje żądania partycji i tworzy runy.

    Run w statusie QUEUED wymaga pochodzenia z code location (demon), więc test tworzy run
    NOT_STARTED - dla sensora to ten sam "żywy" run, który jeszcze nie pracuje.
    """
    for request in data.dynamic_partitions_requests or []:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(PARTITION_NAME, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(PARTITION_NAME, key)
    runs = []
    for request in data.run_requests or []:
        tags = {
            **request.tags,
            "dagster/partition": request.partition_key,
            "dagster/run_key": request.run_key,
        }
        runs.append(record_run(instance, job_name=job_name, status=status, tags=tags))
    return runs


def task_row(db, id_task: int) -> dict:
    return db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))


def added_keys(data) -> list[str]:
    return [
        k
        for r in data.dynamic_partitions_requests or []
        if isinstance(r, AddDynamicPartitionsRequest)
        for k in r.partition_keys
    ]


def deleted_keys(data) -> list[str]:
    return [
        k
        for r in data.dynamic_partitions_requests or []
        if isinstance(r, DeleteDynamicPartitionsRequest)
        for k in r.partition_keys
    ]


def test_new_task_gets_partition_and_exactly_one_run(db, instance, conn_id):
    id_task = add_task(db, conn_id)
    data = tick(task_sensor, instance)
    assert added_keys(data) == [str(id_task)]
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    assert request.partition_key == str(id_task)
    assert request.tags[TAG_ID_TASK] == str(id_task)
    assert request.tags[TAG_CONNECTION] == str(conn_id)
    assert request.tags[TAG_KIND] == "sync"
    assert request.tags[TAG_REQUEST] == "new"
    row = task_row(db, id_task)
    assert row["status"] == "queued" and row["queued_at"] is not None
    assert request.run_key == f"sync-{id_task}-{row['queued_at']:%Y%m%dT%H%M%S}"

    # Powtórzony tick, zanim demon cokolwiek zrobił: żadnego drugiego runu.
    assert not tick(task_sensor, instance).run_requests
    apply_tick(instance, data)
    assert instance.has_dynamic_partition(PARTITION_NAME, str(id_task))
    # "Restart" sensora: nowy kontekst, bez kursora, ta sama instancja - dalej bez duplikatu.
    for _ in range(3):
        again = tick(task_sensor, instance)
        assert not again.run_requests and not added_keys(again)
    assert task_row(db, id_task)["status"] == "queued"


def test_concurrent_ticks_claim_once(db, instance, conn_id):
    ids = [add_task(db, conn_id) for _ in range(20)]
    results: list = []
    errors: list = []

    def worker() -> None:
        try:
            results.append(tick(task_sensor, instance))
        except Exception as exc:  # pragma: no cover - błąd ma być widoczny w asercji
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    requested = [r.partition_key for data in results for r in data.run_requests]
    assert sorted(requested, key=int) == [str(i) for i in ids]


def test_resync_runs_existing_partition_with_new_key(db, instance, conn_id):
    id_task = add_task(db, conn_id)
    first = tick(task_sensor, instance)
    runs = apply_tick(instance, first)
    # Run się zakończył, zadanie completed; operator zleca resync.
    instance.delete_run(runs[0].run_id)
    record_run(
        instance,
        job_name=SYNC_JOB,
        status=DagsterRunStatus.SUCCESS,
        tags={TAG_ID_TASK: str(id_task), "dagster/partition": str(id_task)},
    )
    db.execute("UPDATE task SET status='completed', finished_at=NOW() WHERE id_task=%s", (id_task,))
    db.execute("UPDATE task SET status='resync' WHERE id_task=%s", (id_task,))
    data = tick(task_sensor, instance)
    assert not added_keys(data)
    assert [r.partition_key for r in data.run_requests] == [str(id_task)]
    assert data.run_requests[0].tags[TAG_REQUEST] == "resync"
    assert data.run_requests[0].run_key != first.run_requests[0].run_key
    assert task_row(db, id_task)["status"] == "queued"
    assert not tick(task_sensor, instance).run_requests


def test_cancelled_and_archived_ignored_archived_partition_removed(db, instance, conn_id):
    cancelled = add_task(db, conn_id, status="cancelled")
    archived = add_task(db, conn_id, status="archived")
    completed = add_task(db, conn_id, status="completed")
    instance.add_dynamic_partitions(PARTITION_NAME, [str(cancelled), str(archived), str(completed)])
    data = tick(task_sensor, instance)
    assert not data.run_requests
    assert deleted_keys(data) == [str(archived)]
    apply_tick(instance, data)
    assert set(instance.get_dynamic_partitions(PARTITION_NAME)) == {str(cancelled), str(completed)}
    assert task_row(db, cancelled)["status"] == "cancelled"
    assert task_row(db, archived)["status"] == "archived"
    # Dane zarchiwizowanego zadania zostają w MySQL; następny tick nie ma już czego usuwać.
    again = tick(task_sensor, instance)
    assert not again.run_requests and not again.dynamic_partitions_requests


def test_stale_queued_task_recovered(db, instance, conn_id, monkeypatch):
    monkeypatch.setenv("SENSOR_STALE_QUEUED_S", "2")
    id_task = add_task(db, conn_id)
    first = tick(task_sensor, instance)
    runs = apply_tick(instance, first)
    # Run wisi w kolejce Dagstera dłużej niż próg: żywy run, więc bez nowego zlecenia.
    time.sleep(3)
    assert not tick(task_sensor, instance).run_requests
    # Run zginął przed startem (np. anulowany w kolejce): po progu zadanie wraca.
    instance.report_run_canceled(runs[0])
    # Blokada zadania zajęta (run ze skryptu pracuje): nadal nic.
    holder = pymysql.connect(**MYSQL_SERVER, database=db.database)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (task_lock_name(db, id_task),))
        assert not tick(task_sensor, instance).run_requests
    finally:
        holder.close()
    data = tick(task_sensor, instance)
    assert [r.partition_key for r in data.run_requests] == [str(id_task)]
    assert data.run_requests[0].tags[TAG_REQUEST] == "stale"
    assert data.run_requests[0].run_key != first.run_requests[0].run_key
    # Świeża rezerwacja (młodsza niż próg) nie jest podejmowana drugi raz.
    assert not tick(task_sensor, instance).run_requests


def test_stale_threshold_is_configurable(db, instance, conn_id, monkeypatch):
    monkeypatch.setenv("SENSOR_STALE_QUEUED_S", "600")
    id_task = add_task(db, conn_id, status="queued")
    db.execute("UPDATE task SET queued_at=NOW() - INTERVAL 30 SECOND WHERE id_task=%s", (id_task,))
    assert not tick(task_sensor, instance).run_requests
    monkeypatch.setenv("SENSOR_STALE_QUEUED_S", "10")
    data = tick(task_sensor, instance)
    assert [r.partition_key for r in data.run_requests] == [str(id_task)]
    # Partycja mogła nie istnieć (zadanie ustawione ręcznie na queued) - sensor ją dodaje.
    assert added_keys(data) == [str(id_task)]


def test_pause_manual_not_resumed_time_limit_and_signal_resumed(db, instance, conn_id):
    manual = add_task(db, conn_id, status="paused", pause_reason="manual")
    time_limit = add_task(db, conn_id, status="paused", pause_reason="time_limit")
    signal_ = add_task(db, conn_id, status="paused", pause_reason="signal")
    data = tick(task_sensor, instance)
    assert sorted(r.partition_key for r in data.run_requests) == sorted([str(time_limit), str(signal_)])
    assert {r.tags[TAG_REQUEST] for r in data.run_requests} == {"resume"}
    assert task_row(db, manual)["status"] == "paused"
    assert task_row(db, time_limit)["status"] == "queued"
    for _ in range(2):
        assert not tick(task_sensor, instance).run_requests


def test_orphan_in_progress_resumed_only_when_dead(db, instance, conn_id):
    orphan = add_task(db, conn_id, status="in_progress")
    alive_run = add_task(db, conn_id, status="verifying")
    alive_lock = add_task(db, conn_id, status="in_progress")
    fresh = add_task(db, conn_id, status="in_progress")
    db.execute(
        "UPDATE task SET updated_at=NOW() - INTERVAL 1 HOUR WHERE id_task IN (%s,%s)", (orphan, alive_lock)
    )
    # Run STARTED, wiersz bez zmian od 2 min (mniej niż SENSOR_STALE_QUEUED_S): run uznajemy za żywy.
    db.execute("UPDATE task SET updated_at=NOW() - INTERVAL 2 MINUTE WHERE id_task=%s", (alive_run,))
    db.execute("UPDATE task SET updated_at=NOW() WHERE id_task=%s", (fresh,))
    record_run(
        instance,
        job_name=SYNC_JOB,
        status=DagsterRunStatus.STARTED,
        tags={TAG_ID_TASK: str(alive_run), "dagster/partition": str(alive_run)},
    )
    holder = pymysql.connect(**MYSQL_SERVER, database=db.database)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (task_lock_name(db, alive_lock),))
        data = tick(task_sensor, instance)
    finally:
        holder.close()
    assert [r.partition_key for r in data.run_requests] == [str(orphan)]
    assert data.run_requests[0].tags[TAG_REQUEST] == "orphan"
    assert task_row(db, alive_run)["status"] == "verifying"
    assert task_row(db, alive_lock)["status"] == "in_progress"


def _completed_task_with_items(db, conn_id: int, id_model: int, statuses: list[str]) -> int:
    id_task = add_task(db, conn_id, status="completed", id_ai_model=id_model)
    db.execute("UPDATE task SET finished_at=NOW() - INTERVAL 1 MINUTE WHERE id_task=%s", (id_task,))
    for i, status in enumerate(statuses, start=1):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, status) VALUES (%s,%s,%s,%s,%s)",
            (id_task, i, f"tekst {i}", f"{i:064d}", status),
        )
    return id_task


def test_ai_requested_once_after_completed_sync(db, instance, conn_id):
    id_model = add_model(db)
    disabled = add_model(db, name="off", status="disabled")
    with_ai = _completed_task_with_items(db, conn_id, id_model, ["pending", "processed"])
    nothing_pending = _completed_task_with_items(db, conn_id, id_model, ["processed", "accepted"])
    model_off = _completed_task_with_items(db, conn_id, disabled, ["pending"])
    no_model = add_task(db, conn_id, status="completed")
    instance.add_dynamic_partitions(
        PARTITION_NAME, [str(with_ai), str(nothing_pending), str(model_off), str(no_model)]
    )
    first = tick(ai_after_sync_sensor, instance)
    assert [r.partition_key for r in first.run_requests] == [str(with_ai)]
    request = first.run_requests[0]
    finished = task_row(db, with_ai)["finished_at"]
    assert request.run_key == f"ai-{with_ai}-{finished:%Y%m%dT%H%M%S}"
    assert request.tags[TAG_KIND] == "ai" and request.tags[TAG_ID_TASK] == str(with_ai)
    assert first.cursor
    # Następny tick z kursorem: ta sama operacja synchronizacji nie daje drugiego runu.
    assert not tick(ai_after_sync_sensor, instance, cursor=first.cursor).run_requests
    apply_tick(instance, first, job_name=AI_JOB, status=DagsterRunStatus.STARTED)

    # Kolejna synchronizacja kończy się: nowy finished_at -> nowy run AI z nowym kluczem.
    db.execute("UPDATE task_item SET status='outdated' WHERE id_task=%s AND remote_id=2", (with_ai,))
    db.execute("UPDATE task SET finished_at=NOW() - INTERVAL 10 SECOND WHERE id_task=%s", (with_ai,))
    # AI tego zadania wciąż pracuje (run STARTED): bez drugiego runu; kursor idzie dalej.
    busy = tick(ai_after_sync_sensor, instance, cursor=first.cursor)
    assert not busy.run_requests
    for run in instance.get_runs():
        instance.report_run_failed(run)
    db.execute("UPDATE task SET finished_at=NOW() - INTERVAL 8 SECOND WHERE id_task=%s", (with_ai,))
    second = tick(ai_after_sync_sensor, instance, cursor=busy.cursor)
    assert [r.partition_key for r in second.run_requests] == [str(with_ai)]
    assert second.run_requests[0].run_key != request.run_key


def test_ai_not_requested_for_too_fresh_or_not_completed(db, instance, conn_id):
    id_model = add_model(db)
    fresh = _completed_task_with_items(db, conn_id, id_model, ["pending"])
    db.execute("UPDATE task SET finished_at=NOW() WHERE id_task=%s", (fresh,))
    resync = _completed_task_with_items(db, conn_id, id_model, ["pending"])
    db.execute("UPDATE task SET status='resync' WHERE id_task=%s", (resync,))
    data = tick(ai_after_sync_sensor, instance)
    assert not data.run_requests
    # Świeże zakończenie nie zostało przeskoczone przez kursor.
    db.execute("UPDATE task SET finished_at=NOW() - INTERVAL 1 MINUTE WHERE id_task=%s", (fresh,))
    later = tick(ai_after_sync_sensor, instance, cursor=data.cursor)
    assert [r.partition_key for r in later.run_requests] == [str(fresh)]


def test_backfill_spread_over_ticks(db, instance, conn_id):
    from lib.runtime.scheduling import MAX_REQUESTS_PER_TICK

    count = MAX_REQUESTS_PER_TICK + 50
    db.executemany(
        "INSERT INTO task (id_user, id_database_connection, table_name, column_name) VALUES (%s, %s, %s, %s)",
        [(1, conn_id, "articles", "body")] * count,
    )
    first = tick(task_sensor, instance)
    assert len(first.run_requests) == MAX_REQUESTS_PER_TICK
    assert len(added_keys(first)) == MAX_REQUESTS_PER_TICK
    apply_tick(instance, first)
    second = tick(task_sensor, instance)
    assert len(second.run_requests) == 50
    keys = [r.partition_key for r in first.run_requests + second.run_requests]
    assert len(set(keys)) == count
    assert db.query_value("SELECT COUNT(*) FROM task WHERE status='queued'") == count


def test_dead_started_run_replaced(db, instance, conn_id, monkeypatch):
    """Proces runu zginął (kill -9): Dagster z domyślnym launcherem trzyma run jako STARTED na zawsze."""
    monkeypatch.setenv("SENSOR_STALE_QUEUED_S", "300")
    id_task = add_task(db, conn_id, status="in_progress")
    ai_busy = add_task(db, conn_id, status="in_progress")
    db.execute(
        "UPDATE task SET updated_at=NOW() - INTERVAL 10 MINUTE WHERE id_task IN (%s,%s)", (id_task, ai_busy)
    )
    zombie = record_run(
        instance,
        job_name=SYNC_JOB,
        status=DagsterRunStatus.STARTED,
        tags={TAG_ID_TASK: str(id_task), TAG_KIND: "sync", "dagster/partition": str(id_task)},
    )
    # Żywy run innego rodzaju (AI) nie jest uznawany za martwy na podstawie postępu synchronizacji.
    record_run(
        instance,
        job_name=AI_JOB,
        status=DagsterRunStatus.STARTED,
        tags={TAG_ID_TASK: str(ai_busy), TAG_KIND: "ai", "dagster/partition": str(ai_busy)},
    )
    holder = pymysql.connect(**MYSQL_SERVER, database=db.database)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (task_lock_name(db, id_task),))
        # Blokada trzymana: run żyje, choć nie zapisuje postępu.
        assert not tick(task_sensor, instance).run_requests
    finally:
        holder.close()
    data = tick(task_sensor, instance)
    assert [r.partition_key for r in data.run_requests] == [str(id_task)]
    assert instance.get_run_by_id(zombie.run_id).status == DagsterRunStatus.FAILURE
    assert task_row(db, ai_busy)["status"] == "in_progress"


def test_sensor_closes_started_runs_of_dead_scripts(db, instance, conn_id):
    """Issue 15: run ``ai.py`` zabity SIGKILL-em nie wisi jako STARTED; żywy skrypt nie jest ruszany."""
    import subprocess

    from ailexia_dagster.constants import TAG_PROCESS
    from lib.runtime.process import process_token

    id_task = add_task(db, conn_id, status="completed")
    finished = subprocess.Popen(["sleep", "0"])
    dead_token = process_token(finished.pid)
    finished.wait()
    tags = {TAG_ID_TASK: str(id_task), TAG_KIND: "ai", "dagster/partition": str(id_task)}
    dead = record_run(
        instance, job_name=AI_JOB, status=DagsterRunStatus.STARTED, tags={**tags, TAG_PROCESS: dead_token}
    )
    alive = record_run(
        instance,
        job_name=AI_JOB,
        status=DagsterRunStatus.STARTED,
        tags={**tags, TAG_PROCESS: process_token()},
    )
    elsewhere = record_run(
        instance,
        job_name=AI_JOB,
        status=DagsterRunStatus.STARTED,
        tags={**tags, TAG_PROCESS: "other-host:1:1.00"},
    )
    tick(task_sensor, instance)
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(elsewhere.run_id).status == DagsterRunStatus.STARTED
