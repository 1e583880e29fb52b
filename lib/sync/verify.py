"""Etap verify synchronizacji: kopia lokalna wobec źródła (liczby, próbka hashy), potem ``done``.

Źródło zmienione w trakcie skanu kończy zadanie statusem ``resync`` z powodem w ``error_log``;
niezgodność przy niezmienionym źródle to ``error``. Dane asset checków (``verify_checks``)
też są tutaj.
"""

import time
from typing import Any

from lib import db_remote, faults, task_item
from lib.db_local import MySQL
from lib.db_utils import hash_text
from lib.errors import TaskError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.frames import run_with_task_lock
from lib.runtime.progress import Progress
from lib.source import exports_in_place, hasher, open_source, resolve_task_target
from lib.sync import markers
from lib.task import finish_sync, raise_progress, start_verify

# Próbka weryfikacji: tyle porcji po tyle pozycji, rozłożonych po zakresie kluczy.
_VERIFY_SAMPLES = 5
_VERIFY_SAMPLE_SIZE = 20


def _sample_mismatches(db: MySQL, rconn, target, task_row: dict[str, Any]) -> int:
    """Porównuje hashe próbki pozycji z aktualnym źródłem; zwraca liczbę niezgodności."""
    rows = task_item.verify_sample(db, task_row["id_task"], _VERIFY_SAMPLES, _VERIFY_SAMPLE_SIZE)
    db.commit()
    if not rows:
        return 0
    keys = {remote_key: db_remote.decode_key(remote_key) for remote_key in rows}
    current = db_remote.fetch_by_keys(rconn, target, list(keys.values()))
    hash_of = hasher(task_row)
    in_place = exports_in_place(task_row)
    mismatches = 0
    for remote_key, row in rows.items():
        key = keys[remote_key]
        if key not in current:
            mismatches += 1
            continue
        reference = task_item.reference_hash(row["status"], row["original_hash"], row["local_hash"], in_place)
        if hash_text(current[key][0], hash_of) != reference:
            mismatches += 1
    return mismatches


def _verify(
    db: MySQL, settings: Settings, task_row: dict[str, Any], run_id: str | None, started: float
) -> dict:
    id_task = task_row["id_task"]
    if markers.parse(task_row.get("resume_marker")).stage == "scan" or task_row["status"] == "paused":
        return {
            "outcome": "skipped",
            "reason": "skan źródła nie został dokończony (wstrzymany lub przerwany)",
        }
    start_verify(db, id_task, run_id)
    rconn, _ = open_source(db, task_row, settings)
    try:
        target = resolve_task_target(rconn, task_row)
        source_count = db_remote.count_rows(rconn, target)
        local_count, no_hash = task_item.active_counts(db, id_task)
        raise_progress(db, id_task, 94)
        mismatches = _sample_mismatches(db, rconn, target, task_row)
    finally:
        db_remote.close(rconn)
    raise_progress(db, id_task, 98)
    stats = {
        "source_count": source_count,
        "local_count": local_count,
        "missing_hash": no_hash,
        "sample_mismatches": mismatches,
    }
    work_ms = int((time.monotonic() - started) * 1000)
    moved = source_count != int(task_row["records_total"] or 0) or mismatches > 0
    if no_hash:
        raise TaskError(f"weryfikacja: {no_hash} pozycji bez hasha tekstu")
    faults.checkpoint("sync.verify")
    if local_count == source_count and mismatches == 0:
        finish_sync(db, id_task, work_ms)
        task_item.refresh_review_counters(db, id_task)
        stats["outcome"] = "completed"
        return stats
    if moved:
        reason = (
            f"źródło zmieniło się w trakcie synchronizacji (na starcie {task_row['records_total']} wierszy, "
            f"teraz {source_count}; lokalnie {local_count}; niezgodnych próbek {mismatches}); następny run nadrobi zmiany"
        )
        finish_sync(db, id_task, work_ms, resync_reason=reason)
        task_item.refresh_review_counters(db, id_task)
        stats["outcome"] = "resync"
        stats["reason"] = reason
        return stats
    raise TaskError(
        f"weryfikacja: kopia lokalna niezgodna ze źródłem przy niezmienionym źródle "
        f"(lokalnie {local_count} pozycji, w źródle {source_count} wierszy)"
    )


def run_verify(
    settings: Settings,
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Etap verify: liczby i próbka hashy kopii lokalnej wobec źródła, potem ``done``.

    Weryfikacja jest krótka (liczenie i próbka), więc nie zatrzymuje się w połowie:
    ``should_stop`` i ``progress`` są przyjmowane dla jednego kształtu wszystkich silników.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera.
        should_stop: Nieużywane (kształt silnika).
        progress: Nieużywane (kształt silnika).

    Returns:
        Statystyki: source_count, local_count, missing_hash, sample_mismatches, outcome
        (``completed``, ``resync`` albo ``skipped`` gdy skan nie został dokończony).
    """

    def body(db: MySQL, task_row: dict[str, Any], started: float) -> dict[str, Any]:
        return _verify(db, settings, task_row, run_id, started)

    return run_with_task_lock(settings, id_task, "sync", run_id, body, skip_closed=True)


def verify_checks(db: MySQL, id_task: int, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dane do asset checków: duplikaty kluczy, pozycje bez hasha, liczba aktywnych pozycji.

    Args:
        db: Połączenie.
        id_task: Zadanie.
        stats: Wynik ``run_verify`` tego runu: jego ``local_count`` i ``missing_hash`` (liczone
            przed chwilą) nie są liczone drugi raz.

    Returns:
        Słownik: duplicates, missing_hash, active_items, status.
    """
    stats = stats or {}
    counted = None
    if "local_count" in stats and "missing_hash" in stats:
        counted = (int(stats["local_count"]), int(stats["missing_hash"]))
    checks: dict[str, Any] = task_item.integrity_counts(db, id_task, counted)
    task_row = db.query_one("SELECT status FROM task WHERE id_task=%s", (id_task,))
    checks["status"] = task_row["status"] if task_row else None
    return checks
