"""Silnik synchronizacji: skan źródła (etapy init, fetch, compare, update).

Skan czyta źródło stronami po kluczu (keyset, ``BATCH_SIZE``), porównuje każdą stronę z tym
samym zakresem kluczy w ``task_item`` (merge-join dwóch uporządkowanych strumieni) i zapisuje
tylko różnice. Co ``COMMIT_ROWS`` wierszy źródła (albo co ~2 s) jedna transakcja zapisuje
pozycje razem z ``task.last_processed_id`` i licznikami, więc przerwany run wznawia się
dokładnie od zatwierdzonego klucza, a liczniki opisują całą operację synchronizacji.
Weryfikacja (etap verify) jest w ``lib/verify.py``.
"""

import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lib import db_remote, faults, task_item
from lib.control import StopCheck
from lib.db_local import MySQL, retry_on_deadlock
from lib.db_utils import get_logger, hash_text
from lib.runs import run_with_task_lock
from lib.source import exports_in_place, hasher, open_source, resolve_task_target
from lib.task import (
    get_task,
    lock_task_row,
    mark_paused,
    record_scan_batch,
    record_source_total,
    resume_sync_operation,
    set_resume_marker,
    stage_for_progress,
    start_sync_operation,
)
from lib.verify import run_verify

log = get_logger("sync")

# Partia jest zatwierdzana najpóźniej po tylu sekundach (postęp i wznowienie nie czekają na COMMIT_ROWS).
_COMMIT_EVERY_S = 2.0
# Ile stron źródła czyta naprzód wątek czytający (pamięć ograniczona).
_PREFETCH_PAGES = 4

Progress = Callable[[dict[str, Any]], None]


def _prefetch(pages: Iterator[list], depth: int) -> Iterator[list]:
    """Czyta strony źródła w osobnym wątku (odczyt źródła nakłada się na zapis lokalny).

    Kolejka ma ograniczoną długość, więc pamięć nie rośnie z rozmiarem tabeli.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def reader() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        box.put(page, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(end)
        except BaseException as exc:  # błąd odczytu przekazujemy do wątku głównego
            box.put(exc)

    thread = threading.Thread(target=reader, name="source-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass
class _Batch:
    """Zmiany zebrane od ostatniego commitu (ograniczone przez ``COMMIT_ROWS``)."""

    new: list[tuple] = field(default_factory=list)
    changed: list[tuple] = field(default_factory=list)
    revived: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    scanned: int = 0
    unchanged: int = 0


@dataclass
class _Scan:
    """Stan jednego skanu: zadanie, pozycja w źródle, bieżąca partia i statystyki runu."""

    db: MySQL
    id_task: int
    total: int
    last_key: int | None
    scanned: int
    stats: dict[str, Any]
    batch: _Batch = field(default_factory=_Batch)
    mark: float = field(default_factory=time.monotonic)
    last_commit: float = field(default_factory=time.monotonic)


def _hash_page(page: list[tuple[int, str | None]], hash_of) -> list[tuple[int, str | None, str | None]]:
    """Liczy hash tekstu każdego wiersza strony: ``(klucz, tekst, hash)``."""
    return [(key, text, hash_text(text, hash_of)) for key, text in page]


def _page_fingerprint(hashed: list[tuple[int, str | None, str | None]]) -> str:
    """Odcisk strony: sha256 z ``klucz:hash`` kolejnych wierszy (format ``task_item.local_fingerprint``)."""
    joined = ",".join(f"{key}:{digest or ''}" for key, _text, digest in hashed)
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def _compare_page(
    hashed: list[tuple[int, str | None, str | None]], local: dict[int, tuple], batch: _Batch, in_place: bool
) -> None:
    """Porównuje stronę źródła z lokalnym zakresem i dopisuje różnice do partii.

    ``in_place`` = eksport pisze do synchronizowanej kolumny: wtedy źródło pozycji ``exported``
    trzyma ``text_corrected`` (reguła ``task_item.reference_hash``).
    """
    for key, text, digest in hashed:
        item = local.pop(key, None)
        if item is None:
            batch.new.append((key, text, digest))
            continue
        _remote_id, id_item, original_hash, local_hash, status, deleted = item
        if deleted:
            batch.revived.append(id_item)
        if digest != task_item.reference_hash(status, original_hash, local_hash, in_place):
            batch.changed.append((id_item, text, digest))
        elif not deleted:
            batch.unchanged += 1
    # Klucze lokalne z zakresu strony, których nie ma w źródle, zostały usunięte.
    for item in local.values():
        if not item[5]:
            batch.deleted.append(item[1])
    batch.scanned += len(hashed)


def _write_batch(
    db: MySQL, id_task: int, batch: _Batch, last_key: int | None, final: bool, progress: float, work_ms: int
) -> int:
    """Zapisuje partię w jednej transakcji razem z ``last_processed_id`` i licznikami.

    Returns:
        Liczba pozycji oznaczonych jako usunięte (z ogonem po ostatniej stronie).
    """

    def work() -> int:
        db.begin()
        lock_task_row(db, id_task)
        task_item.insert_items(db, id_task, batch.new)
        task_item.revive_items(db, batch.revived)
        task_item.update_changed_items(db, batch.changed)
        deleted = task_item.mark_items_deleted(db, batch.deleted)
        if final:
            # Ogon: pozycje z kluczami większymi niż ostatni klucz źródła zniknęły ze źródła.
            deleted += task_item.mark_tail_deleted(db, id_task, last_key)
        record_scan_batch(
            db,
            id_task,
            last_key,
            scanned=batch.scanned,
            new=len(batch.new) + len(batch.revived),
            updated=len(batch.changed),
            deleted=deleted,
            progress=progress,
            stage="update" if final else stage_for_progress(progress),
            work_ms=work_ms,
        )
        faults.checkpoint("sync.update")
        db.commit()
        return deleted

    return retry_on_deadlock(work, db=db)


def _flush(scan: _Scan, final: bool, progress: Progress | None) -> None:
    """Zatwierdza bieżącą partię skanu i dopisuje ją do statystyk runu."""
    batch = scan.batch
    if final:
        percent = 90.0
    else:
        percent = min(89.99, 5.0 + 85.0 * (scan.scanned / scan.total if scan.total else 1.0))
    now = time.monotonic()
    deleted = _write_batch(
        scan.db, scan.id_task, batch, scan.last_key, final, percent, int((now - scan.mark) * 1000)
    )
    faults.checkpoint("sync.fetch")
    stats = scan.stats
    stats["fetched"] += batch.scanned
    stats["new"] += len(batch.new) + len(batch.revived)
    stats["updated"] += len(batch.changed)
    stats["deleted"] += deleted
    stats["unchanged"] += batch.unchanged
    scan.batch = _Batch()
    scan.mark = scan.last_commit = now
    if progress is not None:
        progress({**stats, "scanned": scan.scanned, "records_total": scan.total, "sync_progress": percent})


def _start_operation(db: MySQL, task_row: dict[str, Any], run_id: str | None) -> tuple[bool, bool]:
    """Zaczyna nową operację synchronizacji albo wznawia przerwaną.

    Returns:
        Krotka ``(resuming, initial)``: czy to wznowienie i czy zadanie nie miało pozycji na starcie.
    """
    id_task = task_row["id_task"]
    marker = task_row.get("resume_marker") or ""
    if marker.startswith("scan:"):
        resume_sync_operation(db, id_task, run_id)
        return True, marker.split(":")[1] == "init"
    initial = not task_item.has_items(db, id_task)
    start_sync_operation(db, id_task, f"scan:{'init' if initial else 'diff'}:{uuid.uuid4()}", run_id)
    return False, initial


def _scan(
    db: MySQL,
    settings: dict[str, Any],
    task_row: dict[str, Any],
    run_id: str | None,
    should_stop: StopCheck | None,
    progress: Progress | None,
    started: float,
) -> dict[str, Any]:
    id_task = task_row["id_task"]
    if task_row["status"] == "verifying" and (task_row.get("resume_marker") or "").startswith("verify:"):
        # Run zginął w weryfikacji: skan tej operacji jest zatwierdzony, zostaje sama weryfikacja
        # (nowy skan wyzerowałby liczniki operacji).
        log.info("zadanie %s: skan zatwierdzony wcześniej - tylko weryfikacja", id_task)
        return {
            "fetched": 0,
            "new": 0,
            "updated": 0,
            "deleted": 0,
            "unchanged": 0,
            "stopped": None,
            "last_key": task_row["last_processed_id"],
            "records_total": task_row["records_total"],
            "resumed": True,
        }
    resuming, initial = _start_operation(db, task_row, run_id)
    faults.checkpoint("sync.init")
    rconn, _conn_row = open_source(db, task_row, settings)
    try:
        target = resolve_task_target(rconn, task_row)
        hash_of = hasher(task_row)
        state = get_task(db, id_task) if resuming else None
        db.commit()
        # sync_progress >= 5 = liczba wierszy źródła zapisana (ten sam commit co records_total);
        # run zabity przed tym momentem liczy je od nowa.
        if state is not None and float(state["sync_progress"] or 0) >= 5:
            total = int(state["records_total"] or 0)
            after = state["last_processed_id"]
            scanned_before = int(state["records_fetched"] or 0)
        else:
            total = db_remote.count_rows(rconn, target)
            after, scanned_before = None, 0
            record_source_total(db, id_task, total, int((time.monotonic() - started) * 1000))
        log.info(
            "zadanie %s: %s skanu %s.%s (%s wierszy w źródle, od klucza %s)",
            id_task,
            "wznowienie" if resuming else "start",
            target.table,
            target.column,
            total,
            after,
        )
        batch_size = settings["BATCH_SIZE"]
        commit_rows = max(settings["COMMIT_ROWS"], batch_size)
        scan = _Scan(
            db,
            id_task,
            total,
            after,
            scanned_before,
            {"fetched": 0, "new": 0, "updated": 0, "deleted": 0, "unchanged": 0},
        )
        stopped = None
        in_place = exports_in_place(task_row)
        # GROUP_CONCAT odcisku strony: BATCH_SIZE wierszy po ~90 znaków.
        db.execute("SET SESSION group_concat_max_len = %s", (max(1 << 20, batch_size * 200),))
        pages = _prefetch(db_remote.iter_pages(rconn, target, after, batch_size), _PREFETCH_PAGES)
        try:
            for page in pages:
                high = page[-1][0]
                hashed = _hash_page(page, hash_of)
                if initial:
                    _compare_page(hashed, {}, scan.batch, in_place)
                elif task_item.local_fingerprint(db, id_task, scan.last_key, high, in_place) == (
                    len(hashed),
                    _page_fingerprint(hashed),
                ):
                    scan.batch.unchanged += len(hashed)
                    scan.batch.scanned += len(hashed)
                else:
                    local = task_item.local_range(db, id_task, scan.last_key, high)
                    _compare_page(hashed, local, scan.batch, in_place)
                scan.last_key = high
                scan.scanned += len(page)
                if (
                    scan.batch.scanned >= commit_rows
                    or time.monotonic() - scan.last_commit >= _COMMIT_EVERY_S
                ):
                    _flush(scan, False, progress)
                    stopped = should_stop() if should_stop else None
                    if stopped:
                        break
        finally:
            pages.close()
        if stopped:
            mark_paused(db, id_task, stopped)
        else:
            _flush(scan, True, progress)
            set_resume_marker(db, id_task, f"verify:{uuid.uuid4()}")
        scan.stats.update(stopped=stopped, last_key=scan.last_key, records_total=total, resumed=resuming)
        return scan.stats
    finally:
        db_remote.close(rconn)


def run_scan(
    settings: dict[str, Any],
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Etapy init, fetch, compare i update: skan źródła i zapis różnic w ``task_item``.

    Wznawia przerwaną operację od ``task.last_processed_id``; inaczej zaczyna nową.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera (do ``task.run_id`` i ``run_log``).
        should_stop: Funkcja z ``lib.control``; powód != None kończy run po bieżącej partii.
        progress: Wołana po każdej zatwierdzonej partii ze statystykami do tej chwili
            (``scanned``, ``records_total``, ``sync_progress``, fetched, new, updated...).

    Returns:
        Statystyki runu: fetched, new, updated, deleted, unchanged, stopped, duration_s, rows_per_s...

    Raises:
        UsageError: Nieznane zadanie albo status cancelled/archived.
        TaskBusyError: Zadanie przetwarza inny run.
        TaskError, RemoteError: Błąd zadania (zadanie dostaje status ``error``).
    """

    def body(db: MySQL, task_row: dict[str, Any], started: float) -> dict[str, Any]:
        stats = _scan(db, settings, task_row, run_id, should_stop, progress, started)
        elapsed = max(time.monotonic() - started, 1e-6)
        stats["rows_per_s"] = round(stats["fetched"] / elapsed, 1)
        return stats

    return run_with_task_lock(settings, id_task, "sync", run_id, body)


def sync_task(
    settings: dict[str, Any],
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pełna synchronizacja bez Dagstera (skan + weryfikacja) - dla testów i benchmarków.

    Returns:
        Statystyki skanu uzupełnione o wynik weryfikacji (klucz ``verify``).
    """
    stats = run_scan(settings, id_task, run_id=run_id, should_stop=should_stop, progress=progress)
    if not stats.get("stopped"):
        stats["verify"] = run_verify(settings, id_task, run_id=run_id)
    return stats
