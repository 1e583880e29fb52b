"""Joby: synchronizacja, AI i eksport - każdy na partycjach ``id_task``."""

from dagster import AssetSelection, define_asset_job

from ailexia_dagster.constants import (
    AI_CORRECTIONS,
    AI_JOB,
    EXPORT_JOB,
    REMOTE_SNAPSHOT,
    SOURCE_EXPORT,
    SYNC_JOB,
    TASK_ITEM_HASHES,
)

sync_job = define_asset_job(
    SYNC_JOB,
    selection=AssetSelection.assets(REMOTE_SNAPSHOT, TASK_ITEM_HASHES),
    description="Synchronizacja zadania: skan źródła + weryfikacja (sync.py robi to samo).",
)
ai_job = define_asset_job(
    AI_JOB,
    selection=AssetSelection.assets(AI_CORRECTIONS),
    description="Korekta / tłumaczenie AI pozycji zadania (ai.py robi to samo).",
)
export_job = define_asset_job(
    EXPORT_JOB,
    selection=AssetSelection.assets(SOURCE_EXPORT),
    description="Zapis zaakceptowanych pozycji do źródła (sync.py --export robi to samo).",
)

ALL_JOBS = [sync_job, ai_job, export_job]
