"""Assety partycjonowane po ``id_task``: cienka warstwa nad ``lib``.

Każde ciało: odczyt klucza partycji, jedno wywołanie funkcji z ``lib``, zamiana statystyk na
``MaterializeResult``. Dane zostają w MySQL; nic nie jest zapisywane przez IO managera.
"""

from collections.abc import Callable
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    asset,
)

from ailexia_dagster.constants import (
    AI_CORRECTIONS,
    REMOTE_SNAPSHOT,
    SOURCE_EXPORT,
    TAG_AI_BATCH,
    TAG_LIMIT,
    TAG_MAX_SECONDS,
    TASK_ITEM_HASHES,
)
from ailexia_dagster.partitions import task_partitions
from ailexia_dagster.resources import AilexiaResource
from lib import ai_worker, export, sync, verify
from lib.control import graceful_signals
from lib.db_local import connect_local


class RunControlConfig(Config):
    """Konfiguracja runu: limit czasu w sekundach (okno crona); 0 = bez limitu."""

    max_seconds: float = 0.0


def _max_seconds(context: AssetExecutionContext, config: RunControlConfig) -> float | None:
    """Limit czasu z konfiguracji runu albo z tagu ``ailexia/max_seconds``."""
    value = config.max_seconds or float(context.run.tags.get(TAG_MAX_SECONDS, 0) or 0)
    return value or None


def _metadata(stats: dict[str, Any]) -> dict[str, Any]:
    """Zamienia statystyki z ``lib`` na metadane Dagstera (liczby i krótkie teksty)."""
    result: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, bool) or value is None:
            result[key] = str(value)
        elif isinstance(value, int | float | str):
            result[key] = value
        elif isinstance(value, dict):
            for sub_key, sub_value in value.items():
                if isinstance(sub_value, int | float | str):
                    result[f"{key}_{sub_key}"] = sub_value
    return result


def _run_controlled(
    context: AssetExecutionContext,
    ailexia: AilexiaResource,
    config: RunControlConfig,
    log_name: str,
    done: str,
    engine: Callable[..., dict[str, Any]],
    **opts: Any,
) -> MaterializeResult:
    """Wspólne ciało assetów pracujących partiami: ustawienia, sterowanie runem, metadane.

    Args:
        context: Kontekst assetu (klucz partycji = id_task).
        ailexia: Zasób z ustawieniami.
        config: Konfiguracja runu (limit czasu).
        log_name: Plik logu (``sync`` albo ``ai``).
        done: Wynik zapisywany w metadanych, gdy run nie został wstrzymany.
        engine: Silnik z ``lib`` o kształcie ``engine(settings, id_task, *, run_id, should_stop, **opts)``.
        **opts: Opcje silnika (np. ``limit`` AI).
    """
    id_task = int(context.partition_key)
    settings = ailexia.settings(log_name)
    should_stop = ailexia.stop_check(settings, id_task, _max_seconds(context, config))
    with graceful_signals():
        stats = engine(settings, id_task, run_id=context.run_id, should_stop=should_stop, **opts)
    stats["outcome"] = f"paused ({stats['stopped']})" if stats.get("stopped") else done
    return MaterializeResult(metadata=_metadata(stats))


@asset(
    name=REMOTE_SNAPSHOT,
    partitions_def=task_partitions,
    group_name="sync",
    kinds={"python", "mysql"},
    description=(
        "Skan źródła zadania: strony po kluczu (BATCH_SIZE) porównywane z task_item i zapisywane partiami "
        "(etapy init, fetch, compare, update; postęp 0-90%). Wznawialny od task.last_processed_id."
    ),
)
def remote_snapshot(
    context: AssetExecutionContext, ailexia: AilexiaResource, config: RunControlConfig
) -> MaterializeResult:
    """Skanuje źródło zadania i zapisuje różnice w ``task_item``."""
    return _run_controlled(context, ailexia, config, "sync", "scanned", sync.run_scan)


@asset(
    name=TASK_ITEM_HASHES,
    partitions_def=task_partitions,
    group_name="sync",
    deps=[REMOTE_SNAPSHOT],
    kinds={"python", "mysql"},
    description="Weryfikacja kopii lokalnej (etap verify 90-98%) i zamknięcie synchronizacji (done 100%).",
    check_specs=[
        AssetCheckSpec(
            "no_duplicate_remote_id",
            asset=TASK_ITEM_HASHES,
            description="brak zdublowanych (id_task, remote_id)",
        ),
        AssetCheckSpec(
            "every_item_hashed", asset=TASK_ITEM_HASHES, description="każdy niepusty tekst ma hash"
        ),
        AssetCheckSpec(
            "matches_source", asset=TASK_ITEM_HASHES, description="liczba i próbka hashy zgodne ze źródłem"
        ),
    ],
)
def task_item_hashes(context: AssetExecutionContext, ailexia: AilexiaResource) -> MaterializeResult:
    """Weryfikuje kopię lokalną zadania i raportuje asset checki."""
    id_task = int(context.partition_key)
    settings = ailexia.settings("sync")
    stats = verify.run_verify(settings, id_task, run_id=context.run_id)
    db = connect_local(settings, autocommit=True)
    try:
        checks = verify.verify_checks(db, id_task)
    finally:
        db.close()
    skipped = stats.get("outcome") == "skipped"
    matches = stats.get("outcome") == "completed"
    check_results = [
        AssetCheckResult(
            check_name="no_duplicate_remote_id",
            passed=checks["duplicates"] == 0,
            metadata={"duplicates": checks["duplicates"]},
        ),
        AssetCheckResult(
            check_name="every_item_hashed",
            passed=checks["missing_hash"] == 0,
            metadata={"missing_hash": checks["missing_hash"]},
        ),
        AssetCheckResult(
            check_name="matches_source",
            passed=matches or skipped,
            severity=AssetCheckSeverity.WARN,
            metadata={"outcome": str(stats.get("outcome")), "reason": str(stats.get("reason", ""))},
        ),
    ]
    metadata = _metadata(stats)
    metadata["active_items"] = checks["active_items"]
    return MaterializeResult(metadata=metadata, check_results=check_results)


@asset(
    name=AI_CORRECTIONS,
    partitions_def=task_partitions,
    group_name="ai",
    deps=[TASK_ITEM_HASHES],
    kinds={"python", "openai"},
    description=(
        "Korekta lub tłumaczenie pozycji pending/outdated modelem z ai_model (API zgodne z OpenAI). "
        "Tryb batch: wysyłka batchy OpenAI; run z tagiem ailexia/ai_batch odbiera wyniki batcha."
    ),
)
def ai_corrections(
    context: AssetExecutionContext, ailexia: AilexiaResource, config: RunControlConfig
) -> MaterializeResult:
    """Przetwarza pozycje zadania modelem AI (albo wysyła / odbiera batch OpenAI)."""
    limit = int(context.run.tags.get(TAG_LIMIT, 0) or 0) or None
    id_ai_batch = int(context.run.tags.get(TAG_AI_BATCH, 0) or 0) or None
    return _run_controlled(
        context, ailexia, config, "ai", "processed", ai_worker.run_ai, limit=limit, id_ai_batch=id_ai_batch
    )


@asset(
    name=SOURCE_EXPORT,
    partitions_def=task_partitions,
    group_name="export",
    deps=[AI_CORRECTIONS],
    kinds={"python"},
    description="Zapis zaakceptowanych pozycji do źródła (compare-and-set; konflikt zamiast nadpisania).",
)
def source_export(
    context: AssetExecutionContext, ailexia: AilexiaResource, config: RunControlConfig
) -> MaterializeResult:
    """Eksportuje zaakceptowane pozycje zadania do źródła."""
    return _run_controlled(context, ailexia, config, "sync", "exported", export.run_export)


SYNC_ASSETS = [remote_snapshot, task_item_hashes]
ALL_ASSETS = [remote_snapshot, task_item_hashes, ai_corrections, source_export]
