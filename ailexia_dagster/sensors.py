"""Sensory: ``task_sensor`` (synchronizacja zadań z tabeli ``task``), ``ai_after_sync_sensor``
i ``ai_batch_sensor`` (batche OpenAI: odpytywanie i odbiór wyników).

Cienka warstwa: decyzje i rezerwacje w ``lib.runtime.scheduling``; tu tylko odczyt żywych runów
z instancji (jedno zapytanie na tick), partycje i ``RunRequest``-y.
"""

import logging

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ailexia_dagster.constants import (
    AI_AFTER_SYNC_SENSOR,
    AI_BATCH_SENSOR,
    PARTITION_NAME,
    TAG_AI_BATCH,
    TAG_ID_TASK,
    TAG_KIND,
    TAG_REQUEST,
    TASK_SENSOR,
)
from ailexia_dagster.dead_runs import close_dead_script_runs
from ailexia_dagster.jobs import ai_job, sync_job
from ailexia_dagster.resources import AilexiaResource
from ailexia_dagster.runner import run_tags
from lib.ai.batch import ingest as ai_batch_ingest
from lib.db_local import connect_local
from lib.load_config import load_config
from lib.runtime import scheduling

# Statusy runu, przy których run jeszcze żyje (czeka w kolejce albo pracuje).
LIVE_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
DEFAULT_INTERVAL_S = 30


def _interval_s() -> int:
    """Interwał sensora z ``SENSOR_INTERVAL_S``; błąd konfiguracji nie może zablokować ładowania definicji."""
    try:
        return max(1, load_config().sensor_interval_s)
    except Exception as exc:  # brak .env, zła wartość - definicje muszą się załadować
        logging.getLogger("ailexia.sensors").warning(
            "SENSOR_INTERVAL_S niedostępne (%s), używam %s s", exc, DEFAULT_INTERVAL_S
        )
        return DEFAULT_INTERVAL_S


def live_runs_by_task(
    instance: DagsterInstance, ids: list[int], chunk: int = 500
) -> dict[int, list[DagsterRun]]:
    """Zwraca żywe runy (dowolnego joba, też ze skryptu) zadań spośród ``ids``.

    Jedno zapytanie do magazynu runów na porcję ``chunk`` zadań (filtr po tagu ``ailexia/id_task``).
    """
    live: dict[int, list[DagsterRun]] = {}
    for start in range(0, len(ids), chunk):
        part = [str(i) for i in ids[start : start + chunk]]
        for run in instance.get_runs(RunsFilter(statuses=LIVE_RUN_STATUSES, tags={TAG_ID_TASK: part})):
            if run.tags.get(TAG_ID_TASK, "").isdigit():
                live.setdefault(int(run.tags[TAG_ID_TASK]), []).append(run)
    return live


def _only_started_sync(runs: list[DagsterRun]) -> bool:
    """Czy wszystkie żywe runy zadania to runy synchronizacji w statusie STARTED."""
    return all(run.status == DagsterRunStatus.STARTED and run.tags.get(TAG_KIND) == "sync" for run in runs)


@sensor(
    name=TASK_SENSOR,
    job=sync_job,
    minimum_interval_seconds=_interval_s(),
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Zadania new/resync, wstrzymane przez limit czasu lub sygnał, zgubione queued i osierocone "
        "in_progress/verifying: partycja + dokładnie jeden run sync_job (rezerwacja status='queued'). "
        "Partycje zadań archived są usuwane."
    ),
)
def task_sensor(context: SensorEvaluationContext, ailexia: AilexiaResource) -> SensorResult | SkipReason:
    """Zleca runy synchronizacji zadaniom z tabeli ``task`` i sprząta partycje zarchiwizowanych."""
    settings = ailexia.settings("sensor")
    stale_s = settings.sensor_stale_queued_s
    instance = context.instance
    for run_id in close_dead_script_runs(instance):
        context.log.warning(f"ailexia: run skryptu {run_id} zamknięty jako nieudany (proces nie żyje)")
    db = connect_local(settings)
    try:
        candidates = scheduling.sync_candidates(db, stale_s, min(stale_s, scheduling.ORPHAN_GRACE_S))
        live = live_runs_by_task(instance, [int(row["id_task"]) for row in candidates]) if candidates else {}
        suspects = {id_task for id_task, runs in live.items() if _only_started_sync(runs)}
        claims = scheduling.claim_sync_tasks(
            db, candidates, set(live), suspect_task_ids=suspects, dead_after_s=stale_s
        )
        archived = scheduling.archived_task_ids(db)
    finally:
        db.close()

    existing = set(instance.get_dynamic_partitions(PARTITION_NAME))
    to_add = sorted({str(c.id_task) for c in claims} - existing, key=int)
    to_delete = sorted((str(i) for i in archived if str(i) in existing), key=int)
    partition_requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest] = []
    if to_add:
        partition_requests.append(task_partitions_add(to_add))
    if to_delete:
        partition_requests.append(
            DeleteDynamicPartitionsRequest(partitions_def_name=PARTITION_NAME, partition_keys=to_delete)
        )

    for claim in claims:
        if claim.replaces_dead_run:
            # Domyślny run launcher nie wykrywa śmierci procesu runu: zamykamy run, żeby UI nie kłamał.
            for run in live.get(claim.id_task, []):
                message = (
                    f"ailexia: run uznany za martwy (blokada zadania {claim.id_task} wolna, brak postępu "
                    f"od {stale_s} s); zadanie wznowione runem {claim.run_key}"
                )
                instance.report_run_failed(run, message)
                context.log.warning(message)
    run_requests = []
    for claim in claims:
        tags = run_tags(claim.id_task, claim.id_connection, "sync")
        tags[TAG_REQUEST] = claim.reason
        run_requests.append(RunRequest(run_key=claim.run_key, partition_key=str(claim.id_task), tags=tags))
        context.log.info(
            "zadanie %s: run sync (%s, było %s), klucz %s",
            claim.id_task,
            claim.reason,
            claim.previous_status,
            claim.run_key,
        )
    if to_delete:
        context.log.info("usuwam partycje zadań archived: %s", ", ".join(to_delete))
    if not run_requests and not partition_requests:
        return SkipReason(f"brak zadań do zlecenia ({len(candidates)} kandydatów, {len(live)} z żywym runem)")
    return SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests)


def task_partitions_add(keys: list[str]) -> AddDynamicPartitionsRequest:
    """Żądanie dodania partycji zadań (klucz = ``str(id_task)``)."""
    return AddDynamicPartitionsRequest(partitions_def_name=PARTITION_NAME, partition_keys=keys)


@sensor(
    name=AI_AFTER_SYNC_SENSOR,
    job=ai_job,
    minimum_interval_seconds=_interval_s(),
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Po udanej synchronizacji (task completed, finished_at) zadania z aktywnym modelem i pozycjami "
        "do AI: jeden run ai_job na operację synchronizacji (kursor + klucz runu ai-<id>-<finished_at>)."
    ),
)
def ai_after_sync_sensor(
    context: SensorEvaluationContext, ailexia: AilexiaResource
) -> SensorResult | SkipReason:
    """Zleca run AI po każdej zakończonej synchronizacji zadania z modelem AI."""
    settings = ailexia.settings("sensor")
    after = scheduling.parse_ai_cursor(context.cursor)
    db = connect_local(settings)
    try:
        rows = scheduling.completed_since(db, after, settings.ai_max_attempts)
    finally:
        db.close()
    eligible = [int(row["id_task"]) for row in rows if row["eligible"]]
    live = set(live_runs_by_task(context.instance, eligible)) if eligible else set()
    requests, position = scheduling.plan_ai_requests(rows, live, after)
    cursor = scheduling.format_ai_cursor(position)

    existing = set(context.instance.get_dynamic_partitions(PARTITION_NAME)) if requests else set()
    to_add = sorted({str(r.id_task) for r in requests} - existing, key=int)
    run_requests = []
    for request in requests:
        tags = run_tags(request.id_task, None, "ai")
        tags[TAG_REQUEST] = "after_sync"
        run_requests.append(
            RunRequest(run_key=request.run_key, partition_key=str(request.id_task), tags=tags)
        )
        context.log.info("zadanie %s: run AI po synchronizacji z %s", request.id_task, request.finished_at)
    if not run_requests:
        return SensorResult(skip_reason=f"brak zadań do AI ({len(rows)} obejrzanych)", cursor=cursor)
    return SensorResult(
        run_requests=run_requests,
        cursor=cursor,
        dynamic_partitions_requests=[task_partitions_add(to_add)] if to_add else None,
    )


@sensor(
    name=AI_BATCH_SENSOR,
    job=ai_job,
    minimum_interval_seconds=_interval_s(),
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Batche OpenAI (tryb batch): batches.retrieve każdego wysłanego batcha; zakończony (completed, "
        "failed, expired, cancelled) dostaje run ai_job z tagiem ailexia/ai_batch, który zapisuje wyniki; "
        "porzucona wysyłka (run zginął) dostaje run AI zadania, który ją dokończy."
    ),
)
def ai_batch_sensor(context: SensorEvaluationContext, ailexia: AilexiaResource) -> SensorResult | SkipReason:
    """Odpytuje batche OpenAI i zleca runy odbioru wyników (klucz runu: batch + status + przejęcia)."""
    settings = ailexia.settings("sensor")
    work = ai_batch_ingest.poll_batches(settings)
    if not work:
        return SkipReason("brak batchy do odebrania ani wysyłek do dokończenia")
    live = live_runs_by_task(context.instance, sorted({w["id_task"] for w in work}))
    busy_batches = {run.tags.get(TAG_AI_BATCH) for runs in live.values() for run in runs}
    existing = set(context.instance.get_dynamic_partitions(PARTITION_NAME))
    run_requests = []
    for item in work:
        if item["action"] == "ingest" and str(item["id_ai_batch"]) in busy_batches:
            continue
        if item["action"] == "recover" and item["id_task"] in live:
            continue
        tags = run_tags(item["id_task"], None, "ai")
        tags[TAG_REQUEST] = f"batch_{item['action']}"
        if item["action"] == "ingest":
            tags[TAG_AI_BATCH] = str(item["id_ai_batch"])
        run_requests.append(
            RunRequest(run_key=item["run_key"], partition_key=str(item["id_task"]), tags=tags)
        )
        context.log.info(
            "zadanie %s: batch %s - run %s", item["id_task"], item["id_ai_batch"], item["action"]
        )
    to_add = sorted({r.partition_key for r in run_requests} - existing, key=int)
    if not run_requests:
        return SkipReason(f"{len(work)} batchy czeka na żywe runy")
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[task_partitions_add(to_add)] if to_add else None,
    )


ALL_SENSORS = [task_sensor, ai_after_sync_sensor, ai_batch_sensor]
