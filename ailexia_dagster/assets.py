"""Assety partycjonowane po ``id_task``: cienka warstwa nad ``lib``.

Każde ciało: odczyt klucza partycji, jedno wywołanie funkcji z ``lib``, zamiana statystyk na
``MaterializeResult``. Dane zostają w MySQL; nic nie jest zapisywane przez IO managera.
"""

from collections.abc import Callable, Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    Config,
    DagsterRunStatus,
    Failure,
    MaterializeResult,
    asset,
    multi_asset,
)

from ailexia_dagster.constants import (
    AI_CORRECTIONS,
    REMOTE_SNAPSHOT,
    SOURCE_EXPORT,
    TAG_AI_BATCH,
    TAG_LIMIT,
    TAG_MAX_SECONDS,
    TAG_OUTCOME,
    TASK_ITEM_HASHES,
)
from ailexia_dagster.partitions import task_partitions
from ailexia_dagster.resources import AilexiaResource
from lib.db_local import connect_local
from lib.export import run as export
from lib.runtime import progress
from lib.runtime.control import graceful_signals
from lib.sync import engine as sync
from lib.sync import verify


class RunControlConfig(Config):
    """Konfiguracja runu: limit czasu w sekundach (okno crona); 0 = bez limitu."""

    max_seconds: float = 0.0


def _max_seconds(context: AssetExecutionContext, config: RunControlConfig) -> float | None:
    """Limit czasu z konfiguracji runu albo z tagu ``ailexia/max_seconds``."""
    value = config.max_seconds or float(context.run.tags.get(TAG_MAX_SECONDS, 0) or 0)
    return value or None


def _metadata(stats: dict[str, Any]) -> dict[str, Any]:
    """Zamienia statystyki z ``lib`` na metadane Dagstera (liczby i krótkie teksty, bez ``None``)."""
    result: dict[str, Any] = {}
    for key, value in stats.items():
        if value is None:
            continue
        if isinstance(value, bool):
            result[key] = "tak" if value else "nie"
        elif isinstance(value, int | float | str):
            result[key] = value
        elif isinstance(value, dict):
            for sub_key, sub_value in value.items():
                if isinstance(sub_value, int | float | str) and not isinstance(sub_value, bool):
                    result[f"{key}_{sub_key}"] = sub_value
    return result


def _outcome(stats: dict[str, Any], done: str) -> str:
    """Wynik runu silnika: ``done`` tylko wtedy, gdy partycja została dokończona."""
    stopped = stats.get("stopped")
    if stopped:
        return "cancelled" if stopped == "cancelled" else f"paused ({stopped})"
    if stats.get("budget_reached"):
        return "paused (budget)"
    if stats.get("outcome") == "in_learning":
        # Faza nauki: run niczego nie wysłał (pilot czeka na ocenę) - obserwacja, nie materializacja.
        return "in_learning"
    return done


def _plots(kind: str, stats: dict[str, Any]) -> dict[str, Any]:
    """Liczby, które UI rysuje w czasie (metadane materializacji): wiersze, tempo, tokeny, koszt."""
    if kind == "sync":
        return {"dagster/row_count": int(stats.get("records_total") or 0)}
    figs = progress.figures(kind, stats, float(stats.get("duration_s") or 0))
    plots: dict[str, Any] = {"items": int(figs["done"]), "dagster/row_count": int(figs["done"])}
    if kind == "ai":
        plots["tokens"] = int(figs["tokens"])
    return plots


def _record_outcome(context: AssetExecutionContext, outcome: str) -> None:
    """Wynik runu w tagu ``ailexia/outcome`` (widoczny na liście runów w UI)."""
    context.instance.add_run_tags(context.run.run_id, {TAG_OUTCOME: outcome})


def _observe_unfinished(
    context: AssetExecutionContext, outcome: str, metadata: dict[str, Any], what: str
) -> None:
    """Zapisuje obserwację zamiast materializacji: partycja nie została dokończona w tym runie.

    Run zakończony z UI (Terminate) albo zadanie anulowane przez operatora kończą się w Dagsterze
    jako Canceled (krok zgłasza niepowodzenie po zapisaniu stanu); pauza i limit czasu - Success
    z tagiem ``ailexia/outcome`` i bez nowej materializacji.
    """
    context.log_event(
        AssetObservation(
            asset_key=context.asset_key,
            partition=context.partition_key,
            description=f"{what} niedokończony: {outcome} - partycja nie jest zmaterializowana w tym runie",
            metadata=metadata,
        )
    )
    _record_outcome(context, outcome)
    context.log.warning(
        f"zadanie {context.partition_key}: {what} niedokończony ({outcome}); stan zapisany, "
        "następny run wznowi pracę - brak nowej materializacji"
    )
    run = context.instance.get_run_by_id(context.run.run_id)
    terminating = run is not None and run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)
    if outcome == "cancelled" or terminating:
        if run is not None and not terminating:
            context.instance.report_run_canceling(run, message="ailexia: zadanie anulowane przez operatora")
        raise Failure(
            description=f"run zatrzymany ({outcome}); stan zadania {context.partition_key} zapisany",
            allow_retries=False,
        )


def _run_controlled(
    context: AssetExecutionContext,
    ailexia: AilexiaResource,
    config: RunControlConfig,
    log_name: str,
    kind: str,
    done: str,
    engine: Callable[..., dict[str, Any]],
    **opts: Any,
) -> Iterator[MaterializeResult]:
    """Wspólne ciało assetów pracujących partiami: ustawienia, sterowanie runem, postęp, wynik.

    Materializacja tylko wtedy, gdy partycja została dokończona; pauza, anulowanie i limit czasu
    dają obserwację i tag ``ailexia/outcome`` (``_observe_unfinished``).

    Args:
        context: Kontekst assetu (klucz partycji = id_task).
        ailexia: Zasób z ustawieniami.
        config: Konfiguracja runu (limit czasu).
        log_name: Plik logu (``sync`` albo ``ai``).
        kind: Rodzaj postępu (``sync``, ``ai``, ``export``; ``lib.runtime.progress``).
        done: Wynik zapisywany w metadanych, gdy run dokończył partycję.
        engine: Silnik z ``lib`` o kształcie
            ``engine(settings, id_task, *, run_id, should_stop, progress, **opts)``.
        **opts: Opcje silnika (np. ``limit`` AI).

    Yields:
        ``MaterializeResult``, gdy partycja została dokończona.
    """
    id_task = int(context.partition_key)
    settings = ailexia.settings(log_name)
    should_stop = ailexia.stop_check(settings, id_task, _max_seconds(context, config))

    def emit(line: str, _figures: dict[str, float]) -> None:
        context.log.info(line)

    with (
        graceful_signals(),
        progress.tracking(kind, id_task, emit, settings.progress_every_s) as report,
    ):
        stats = engine(
            settings, id_task, run_id=context.run.run_id, should_stop=should_stop, progress=report, **opts
        )
    outcome = _outcome(stats, done)
    stats["outcome"] = outcome
    metadata = {**_metadata(stats), **_plots(kind, stats)}
    if outcome != done:
        _observe_unfinished(context, outcome, metadata, context.asset_key.to_user_string())
        return
    _record_outcome(context, outcome)
    yield MaterializeResult(metadata=metadata)


@asset(
    name=REMOTE_SNAPSHOT,
    partitions_def=task_partitions,
    group_name="sync",
    kinds={"python", "mysql"},
    output_required=False,
    description=(
        "Skan źródła zadania: strony po kluczu (BATCH_SIZE) porównywane z task_item i zapisywane partiami "
        "(etapy init, fetch, compare, update; postęp 0-90%). Wznawialny od task.last_processed_id. "
        "Materializacja tylko po dokończonym skanie; pauza/anulowanie/limit czasu = obserwacja."
    ),
)
def remote_snapshot(
    context: AssetExecutionContext, ailexia: AilexiaResource, config: RunControlConfig
) -> Iterator[MaterializeResult]:
    """Skanuje źródło zadania i zapisuje różnice w ``task_item``."""
    yield from _run_controlled(context, ailexia, config, "sync", "sync", "scanned", sync.run_scan)


_CHECK_SPECS = [
    AssetCheckSpec(
        "no_duplicate_remote_id", asset=TASK_ITEM_HASHES, description="brak zdublowanych (id_task, remote_id)"
    ),
    AssetCheckSpec("every_item_hashed", asset=TASK_ITEM_HASHES, description="każdy niepusty tekst ma hash"),
    AssetCheckSpec(
        "matches_source", asset=TASK_ITEM_HASHES, description="liczba i próbka hashy zgodne ze źródłem"
    ),
]


# multi_asset zamiast asset: tylko tak asset checki mogą nie mieć wyniku (can_subset), gdy
# weryfikacja się nie odbyła - wtedy nie ma ani materializacji, ani zaliczonych checków.
@multi_asset(
    name=TASK_ITEM_HASHES,
    partitions_def=task_partitions,
    specs=[
        AssetSpec(
            TASK_ITEM_HASHES,
            deps=[REMOTE_SNAPSHOT],
            group_name="sync",
            kinds={"python", "mysql"},
            skippable=True,
            description=(
                "Weryfikacja kopii lokalnej (etap verify 90-98%) i zamknięcie synchronizacji (done 100%). "
                "Bez materializacji i bez checków, gdy skan nie był dokończony."
            ),
        )
    ],
    check_specs=_CHECK_SPECS,
    can_subset=True,
)
def task_item_hashes(context: AssetExecutionContext, ailexia: AilexiaResource) -> Iterator[MaterializeResult]:
    """Weryfikuje kopię lokalną zadania i raportuje asset checki."""
    id_task = int(context.partition_key)
    settings = ailexia.settings("sync")
    with progress.tracking(
        "verify", id_task, lambda line, _figures: context.log.info(line), settings.progress_every_s
    ):
        stats = verify.run_verify(settings, id_task, run_id=context.run.run_id)
    outcome = str(stats.get("outcome") or "completed")
    if outcome == "skipped":
        _observe_unfinished(context, "skipped (scan not finished)", _metadata(stats), "verify")
        return
    db = connect_local(settings, autocommit=True)
    try:
        checks = verify.verify_checks(db, id_task, stats)
    finally:
        db.close()
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
            passed=outcome == "completed",
            severity=AssetCheckSeverity.WARN,
            metadata={"outcome": outcome, "reason": str(stats.get("reason") or "")},
        ),
    ]
    selected = {key.name for key in context.selected_asset_check_keys}
    metadata = _metadata(stats)
    metadata["active_items"] = checks["active_items"]
    metadata["dagster/row_count"] = int(checks["active_items"])
    _record_outcome(context, outcome)
    yield MaterializeResult(
        asset_key=TASK_ITEM_HASHES,
        metadata=metadata,
        check_results=[result for result in check_results if result.check_name in selected],
    )


@asset(
    name=AI_CORRECTIONS,
    partitions_def=task_partitions,
    group_name="ai",
    output_required=False,
    deps=[TASK_ITEM_HASHES],
    kinds={"python", "openai"},
    description=(
        "Korekta lub tłumaczenie pozycji pending/outdated modelem z ai_model (API zgodne z OpenAI). "
        "Tryb batch: wysyłka batchy OpenAI; run z tagiem ailexia/ai_batch odbiera wyniki batcha."
    ),
)
def ai_corrections(
    context: AssetExecutionContext, ailexia: AilexiaResource, config: RunControlConfig
) -> Iterator[MaterializeResult]:
    """Przetwarza pozycje zadania modelem AI (albo wysyła / odbiera batch OpenAI)."""
    # Import tutaj: lib.ai.run ładuje SDK openai (~0,7 s), a sync.py nie potrzebuje go wcale.
    from lib.ai import run as ai_worker

    limit = int(context.run.tags.get(TAG_LIMIT, 0) or 0) or None
    id_ai_batch = int(context.run.tags.get(TAG_AI_BATCH, 0) or 0) or None
    yield from _run_controlled(
        context,
        ailexia,
        config,
        "ai",
        "ai",
        "processed",
        ai_worker.run_ai,
        limit=limit,
        id_ai_batch=id_ai_batch,
    )


@asset(
    name=SOURCE_EXPORT,
    partitions_def=task_partitions,
    group_name="export",
    output_required=False,
    deps=[AI_CORRECTIONS],
    kinds={"python"},
    description="Zapis zaakceptowanych pozycji do źródła (compare-and-set; konflikt zamiast nadpisania).",
)
def source_export(
    context: AssetExecutionContext, ailexia: AilexiaResource, config: RunControlConfig
) -> Iterator[MaterializeResult]:
    """Eksportuje zaakceptowane pozycje zadania do źródła."""
    yield from _run_controlled(context, ailexia, config, "sync", "export", "exported", export.run_export)


SYNC_ASSETS = [remote_snapshot, task_item_hashes]
ALL_ASSETS = [remote_snapshot, task_item_hashes, ai_corrections, source_export]
