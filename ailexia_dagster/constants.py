"""Nazwy używane w całym kodzie Dagstera (jedno miejsce)."""

PARTITION_NAME = "id_task"

REMOTE_SNAPSHOT = "remote_snapshot"
TASK_ITEM_HASHES = "task_item_hashes"
AI_CORRECTIONS = "ai_corrections"
SOURCE_EXPORT = "source_export"

SYNC_JOB = "sync_job"
AI_JOB = "ai_job"
EXPORT_JOB = "export_job"

# Tagi runów.
TAG_ID_TASK = "ailexia/id_task"
TAG_CONNECTION = "ailexia/connection"
TAG_KIND = "ailexia/kind"
TAG_MAX_SECONDS = "ailexia/max_seconds"
TAG_LIMIT = "ailexia/limit"
TAG_REQUEST = "ailexia/request"
# Wynik runu dla ludzi (scanned, completed, processed, exported, paused (...), cancelled).
TAG_OUTCOME = "ailexia/outcome"
# Proces runu skryptu (host:pid:start) - do zamykania runów zabitych skryptów.
TAG_PROCESS = "ailexia/process"
# Run odbioru wyników batcha OpenAI (id_ai_batch); bez tagu run AI wysyła nowe batche.
TAG_AI_BATCH = "ailexia/ai_batch"

# Sensory.
TASK_SENSOR = "task_sensor"
AI_AFTER_SYNC_SENSOR = "ai_after_sync_sensor"
AI_BATCH_SENSOR = "ai_batch_sensor"

# Jakość modeli: obserwacje przebiegów ``ai.py --eval`` (partycja = ai_model.name).
AI_QUALITY = "ai_quality"
MODEL_PARTITION_NAME = "ai_model"
