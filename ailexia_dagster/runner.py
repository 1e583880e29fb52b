"""Uruchamianie assetów z poziomu skryptów (``dagster.materialize`` na instancji z DAGSTER_HOME).

Runy ze skryptów trafiają do tej samej instancji co runy sensora, więc widać je obok siebie w UI.
"""

import gc
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, materialize

from ailexia_dagster.constants import (
    PARTITION_NAME,
    TAG_CONNECTION,
    TAG_ID_TASK,
    TAG_KIND,
    TAG_MAX_SECONDS,
    TAG_PROCESS,
)
from ailexia_dagster.dead_runs import close_dead_script_runs
from ailexia_dagster.resources import AilexiaResource
from lib.db_local import MySQL
from lib.errors import UsageError
from lib.load_config import PROJECT_ROOT, Settings
from lib.runtime import progress
from lib.runtime.process import process_token
from lib.task import CLOSED_STATUSES, get_task

# Zmienne magazynu PostgreSQL z deploy/dagster.yaml: Dagster czyta je tylko ze środowiska procesu.
DAGSTER_PG_VARS = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


def _sqlite_storage_without_fsync() -> None:
    """Magazyn SQLite instancji w procesie skryptu zapisuje zdarzenia runu bez ``fsync``.

    Dagster otwiera osobne połączenie SQLite na każde zdarzenie runu i zatwierdza je z ``fsync``
    (profil ``sync.py``: ~0,7 s z ~4 s resyncu bez zmian). ``PRAGMA synchronous=OFF`` tylko na
    połączeniach tego procesu: zatwierdzony zapis przeżywa śmierć procesu (dane są w pamięci
    podręcznej systemu), może zginąć tylko przy awarii całego systemu - a stan zadania i tak
    trzyma MySQL. UI widzi te same runy i zdarzenia. Magazyn PostgreSQL/MySQL bez zmian.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _no_fsync):
        event.listen(Engine, "connect", _no_fsync)


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    """Nowe połączenie SQLAlchemy: SQLite bez ``fsync`` (``_sqlite_storage_without_fsync``)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


def get_instance(settings: Settings) -> DagsterInstance:
    """Zwraca instancję Dagstera z ``DAGSTER_HOME`` (tworzy katalog i ``dagster.yaml``, gdy brak).

    Zmienne ``DAGSTER_PG_*`` zapisane w ``.env`` trafiają do środowiska procesu (środowisko
    wygrywa), bo ``dagster.yaml`` z magazynem PostgreSQL czyta je przez ``env:``.
    """
    home = Path(settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    example = PROJECT_ROOT / "dagster.yaml.example"
    if not config.exists() and example.exists():
        shutil.copy(example, config)
    os.environ["DAGSTER_HOME"] = str(home)
    for name in DAGSTER_PG_VARS:
        value = settings.file_value(name)
        if name not in os.environ and value is not None:
            os.environ[name] = value
    _sqlite_storage_without_fsync()
    return DagsterInstance.get()


def run_tags(
    id_task: int, id_connection: int | None, kind: str, max_seconds: float | None = None
) -> dict[str, str]:
    """Tagi runu: zadanie, połączenie źródłowe (limit współbieżności), rodzaj runu."""
    tags = {TAG_ID_TASK: str(id_task), TAG_KIND: kind}
    if id_connection is not None:
        tags[TAG_CONNECTION] = str(id_connection)
    if max_seconds:
        tags[TAG_MAX_SECONDS] = str(max_seconds)
    return tags


def task_run_tags(
    db: MySQL, id_task: int, kind: str, max_seconds: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Wiersz zadania i tagi jego runu ze skryptu; zadanie zamknięte (cancelled/archived) odrzuca.

    Raises:
        UsageError: Zadanie ma status zamknięty - skrypt go pomija.
    """
    task_row = get_task(db, id_task)
    if task_row["status"] in CLOSED_STATUSES:
        raise UsageError(f"zadanie {id_task} ma status {task_row['status']} - pomijam")
    return task_row, run_tags(id_task, task_row["id_database_connection"], kind, max_seconds)


def materialize_task(
    instance: DagsterInstance,
    assets: list,
    id_task: int,
    tags: dict[str, str],
    env_file: str | None = None,
) -> tuple[bool, str | None]:
    """Dodaje partycję zadania (jeśli brak) i materializuje assety w tym procesie.

    Args:
        instance: Instancja Dagstera.
        assets: Definicje assetów do uruchomienia.
        id_task: Zadanie (klucz partycji).
        tags: Tagi runu (limit czasu w tagu ``ailexia/max_seconds``).
        env_file: Plik .env dla zasobu.

    Returns:
        Krotka ``(sukces, komunikat pierwszego błędu kroku albo None)``.
    """
    key = str(id_task)
    close_dead_script_runs(instance)
    instance.add_dynamic_partitions(PARTITION_NAME, [key])
    tags = {**tags, TAG_PROCESS: process_token()}
    # Pasek postępu na terminalu: konsola Dagstera tylko z ostrzeżeniami (linie postępu są w runie).
    run_config = (
        {"loggers": {"console": {"config": {"log_level": "WARNING"}}}} if progress.bar_active() else None
    )
    # Obiekty po imporcie Dagstera (setki tysięcy) poza odśmiecaczem: każde pełne przejście GC
    # przeglądało je wszystkie przy każdej stronie skanu (profil resyncu 1 %: ~0,5-0,9 s z ~4 s).
    gc.freeze()
    result = materialize(
        assets,
        instance=instance,
        partition_key=key,
        resources={"ailexia": AilexiaResource(env_file=env_file)},
        tags=tags,
        raise_on_error=False,
        run_config=run_config,
    )
    if result.success:
        return True, None
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            # Łańcuch przyczyn: komunikat z lib jest w najgłębszym wyjątku użytkownika.
            while error.cause is not None and "dagster" in (error.cls_name or "").lower():
                error = error.cause
            return False, error.message.strip().splitlines()[-1] if error.message else "run nie powiódł się"
    return False, "run nie powiódł się"
