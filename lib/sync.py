"""Silnik synchronizacji: skan źródła (pobranie, porównanie, zapis) i weryfikacja kopii lokalnej.

Skan czyta źródło stronami po kluczu (keyset, ``BATCH_SIZE``), porównuje każdą stronę z tym
samym zakresem kluczy w ``task_item`` (merge-join dwóch uporządkowanych strumieni) i zapisuje
tylko różnice. Co ``COMMIT_ROWS`` wierszy źródła (albo co ~2 s) jedna transakcja zapisuje
pozycje razem z ``task.last_processed_id`` i licznikami, więc przerwany run wznawia się
dokładnie od zatwierdzonego klucza, a liczniki opisują całą operację synchronizacji.
"""

import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from lib import db_remote, faults
from lib.db_local import MySQL, retry_on_deadlock
from lib.db_utils import get_logger, hash_function, register_secrets
from lib.errors import RemoteError, TaskError
from lib.task import (
    get_connection_row,
    get_task,
    lock_task_row,
    mark_paused,
    refresh_review_counters,
    run_with_task_lock,
    set_connection_status,
    stage_for_progress,
)

log = get_logger("sync")

# Statusy pozycji, dla których zmiana tekstu w źródle unieważnia wynik AI.
_COMMIT_EVERY_S = 2.0
_PREFETCH_PAGES = 4
_VERIFY_SAMPLES = 5
_VERIFY_SAMPLE_SIZE = 20


def open_source(
    db: MySQL, task_row: dict[str, Any], settings: dict[str, Any]
) -> tuple[db_remote.RemoteConn, dict]:
    """Otwiera połączenie ze źródłem zadania i zapisuje stan połączenia.

    Args:
        db: Połączenie lokalne.
        task_row: Wiersz zadania.
        settings: Ustawienia.

    Returns:
        Krotka ``(połączenie źródłowe, wiersz database_connection)``.

    Raises:
        TaskError: Gdy połączenie jest wyłączone (``disabled``).
        RemoteError: Gdy źródło jest nieosiągalne (połączenie dostaje status ``error``).
    """
    conn_row = get_connection_row(db, task_row["id_database_connection"])
    db.commit()
    if conn_row.get("db_password"):
        register_secrets([conn_row["db_password"]])
    if conn_row["status"] == "disabled":
        raise TaskError(
            f"połączenie '{conn_row['alias']}' (id {conn_row['id_database_connection']}) jest wyłączone "
            "(status disabled); ustaw status active, aby synchronizować"
        )
    try:
        rconn = db_remote.connect(conn_row, settings)
    except RemoteError as exc:
        set_connection_status(db, conn_row["id_database_connection"], "error", str(exc))
        raise
    set_connection_status(db, conn_row["id_database_connection"], "active", None)
    return rconn, conn_row


def exports_in_place(task_row: dict[str, Any]) -> bool:
    """Czy eksport zadania pisze do kolumny synchronizowanej (``export_column`` pusta lub ta sama)."""
    return (task_row.get("export_column") or task_row["column_name"]) == task_row["column_name"]


def resolve_task_target(rconn: db_remote.RemoteConn, task_row: dict[str, Any]) -> db_remote.Target:
    """Sprawdza w katalogu źródła tabelę, kolumnę, klucz i kolumnę eksportu zadania."""
    extra = [task_row["export_column"]] if task_row.get("export_column") else []
    return db_remote.resolve_target(
        rconn, task_row["table_name"], task_row["column_name"], task_row.get("key_column"), extra
    )


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


class _Batch:
    """Zmiany zebrane od ostatniego commitu (ograniczone przez ``COMMIT_ROWS``)."""

    def __init__(self) -> None:
        self.new: list[tuple] = []
        self.changed: list[tuple] = []
        self.revived: list[int] = []
        self.deleted: list[int] = []
        self.scanned = 0
        self.unchanged = 0

    def size(self) -> int:
        return self.scanned


def _local_range(db: MySQL, id_task: int, low: int | None, high: int) -> dict[int, tuple]:
    """Zwraca pozycje zadania z kluczami w przedziale ``(low, high]``: remote_id -> stan."""
    if low is None:
        sql = "remote_id <= %s"
        params: tuple = (id_task, high)
    else:
        sql = "remote_id > %s AND remote_id <= %s"
        params = (id_task, low, high)
    rows = db.query(
        "SELECT remote_id, id_task_item, original_hash, local_hash, status, deleted_at IS NOT NULL AS deleted "
        f"FROM task_item WHERE id_task=%s AND {sql}",
        params,
    )
    return {r["remote_id"]: tuple(r.values()) for r in rows}


def _hash_page(page: list[tuple[int, str | None]], hash_of) -> list[tuple[int, str | None, str | None]]:
    """Liczy hash tekstu każdego wiersza strony: ``(klucz, tekst, hash)``."""
    return [
        (key, text, None if text is None else hash_of(text.encode("utf-8", "surrogatepass")).hexdigest())
        for key, text in page
    ]


def _page_fingerprint(hashed: list[tuple[int, str | None, str | None]]) -> str:
    """Odcisk strony: sha256 z ``klucz:hash`` kolejnych wierszy (ten sam format co ``_local_fingerprint``)."""
    joined = ",".join(f"{key}:{digest or ''}" for key, _text, digest in hashed)
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def _local_fingerprint(
    db: MySQL, id_task: int, low: int | None, high: int, in_place: bool
) -> tuple[int, str | None]:
    """Liczba i odcisk aktywnych pozycji z zakresu ``(low, high]`` policzone w MySQL.

    Zapytanie czyta tylko pokrywający indeks ``idx_task_item_fingerprint`` (bez tekstów), więc
    resync bez zmian nie przesyła szczegółów pozycji - jedno małe zapytanie na stronę. Zgodny
    odcisk oznacza, że w zakresie nic się nie zmieniło; inaczej strona idzie do ``_compare_page``.
    """
    bound, params = (
        ("remote_id <= %s", (in_place, id_task, high))
        if low is None
        else ("remote_id > %s AND remote_id <= %s", (in_place, id_task, low, high))
    )
    row = db.query_one(
        "SELECT COUNT(*) AS n, SHA2(GROUP_CONCAT(CONCAT(remote_id, ':', "
        "IFNULL(IF(status='exported' AND %s, local_hash, original_hash), '')) ORDER BY remote_id SEPARATOR ','), 256) "
        f"AS fp FROM task_item WHERE id_task=%s AND deleted_at IS NULL AND {bound}",
        params,
    )
    return int(row["n"]), row["fp"]


def _compare_page(
    hashed: list[tuple[int, str | None, str | None]],
    local: dict[int, tuple],
    batch: _Batch,
    export_in_place: bool,
) -> None:
    """Porównuje stronę źródła z lokalnym zakresem i dopisuje różnice do partii.

    ``export_in_place`` = eksport pisze do synchronizowanej kolumny (brak ``task.export_column``):
    wtedy źródło pozycji ``exported`` trzyma ``text_corrected`` i porównujemy z ``local_hash``.
    """
    for key, text, digest in hashed:
        item = local.pop(key, None)
        if item is None:
            batch.new.append((key, text, digest))
            continue
        _remote_id, id_item, original_hash, local_hash, status, deleted = item
        if deleted:
            batch.revived.append(id_item)
        # Po eksporcie źródło trzyma text_corrected: porównujemy z local_hash.
        reference = local_hash if status == "exported" and export_in_place else original_hash
        if digest != reference:
            batch.changed.append((id_item, text, digest))
        elif not deleted:
            batch.unchanged += 1
    # Klucze lokalne z zakresu strony, których nie ma w źródle, zostały usunięte.
    for item in local.values():
        if not item[5]:
            batch.deleted.append(item[1])
    batch.scanned += len(hashed)


def _write_batch(
    db: MySQL,
    id_task: int,
    batch: _Batch,
    last_key: int | None,
    final: bool,
    progress: float,
    work_ms: int,
) -> int:
    """Zapisuje partię w jednej transakcji razem z ``last_processed_id`` i licznikami.

    Returns:
        Liczba pozycji oznaczonych jako usunięte (z ogonem po ostatniej stronie).
    """

    def work() -> int:
        db.begin()
        lock_task_row(db, id_task)
        if batch.new:
            db.executemany(
                "INSERT INTO task_item (id_task, remote_id, text_original, original_hash) VALUES (%s, %s, %s, %s)",
                [(id_task, key, text, digest) for key, text, digest in batch.new],
            )
        if batch.revived:
            marks = ", ".join(["%s"] * len(batch.revived))
            db.execute(f"UPDATE task_item SET deleted_at=NULL WHERE id_task_item IN ({marks})", batch.revived)
        for id_item, text, digest in batch.changed:
            # Status liczony w SQL: wynik AI zapisany w międzyczasie też staje się nieaktualny.
            db.execute(
                "UPDATE task_item SET text_original=%s, original_hash=%s, is_changed=1, verified_at=NOW(), "
                "ai_attempts=0, ai_error=NULL, export_error=NULL, "
                "status=IF(status='pending','pending','outdated') WHERE id_task_item=%s",
                (text, digest, id_item),
            )
        deleted = 0
        if batch.deleted:
            marks = ", ".join(["%s"] * len(batch.deleted))
            deleted += db.execute(
                f"UPDATE task_item SET deleted_at=NOW() WHERE deleted_at IS NULL AND id_task_item IN ({marks})",
                batch.deleted,
            )
        if final:
            # Ogon: pozycje z kluczami większymi niż ostatni klucz źródła zniknęły ze źródła.
            if last_key is None:
                deleted += db.execute(
                    "UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND deleted_at IS NULL",
                    (id_task,),
                )
            else:
                deleted += db.execute(
                    "UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND deleted_at IS NULL AND remote_id > %s",
                    (id_task, last_key),
                )
        db.execute(
            "UPDATE task SET last_processed_id=%s, records_fetched=records_fetched+%s, "
            "records_processed=records_processed+%s, records_new=records_new+%s, "
            "records_updated=records_updated+%s, records_deleted=records_deleted+%s, "
            "sync_progress=GREATEST(sync_progress, %s), sync_stage=%s, total_time_ms=total_time_ms+%s "
            "WHERE id_task=%s",
            (
                last_key,
                batch.scanned,
                batch.scanned,
                len(batch.new) + len(batch.revived),
                len(batch.changed),
                deleted,
                progress,
                "update" if final else stage_for_progress(progress),
                work_ms,
                id_task,
            ),
        )
        faults.checkpoint("sync.update")
        db.commit()
        return deleted

    return retry_on_deadlock(work, db=db)


def _start_operation(db: MySQL, task_row: dict[str, Any], run_id: str | None) -> tuple[bool, bool]:
    """Zaczyna nową operację synchronizacji albo wznawia przerwaną.

    Returns:
        Krotka ``(resuming, initial)``: czy to wznowienie i czy zadanie nie miało pozycji na starcie.
    """
    id_task = task_row["id_task"]
    marker = task_row.get("resume_marker") or ""
    if marker.startswith("scan:"):
        initial = marker.split(":")[1] == "init"
        db.execute(
            "UPDATE task SET status='in_progress', pause_reason=NULL, error_log=NULL, finished_at=NULL, run_id=%s "
            "WHERE id_task=%s",
            (run_id, id_task),
        )
        db.commit()
        return True, initial
    has_items = db.query_value("SELECT 1 FROM task_item WHERE id_task=%s LIMIT 1", (id_task,)) is not None
    initial = not has_items
    marker = f"scan:{'init' if initial else 'diff'}:{uuid.uuid4()}"
    db.execute(
        "UPDATE task SET status='in_progress', pause_reason=NULL, error_log=NULL, sync_stage='init', sync_progress=0, "
        "resume_marker=%s, last_processed_id=NULL, records_total=0, records_fetched=0, records_processed=0, "
        "records_new=0, records_updated=0, records_deleted=0, started_at=NOW(), finished_at=NULL, total_time_ms=0, "
        "run_id=%s WHERE id_task=%s",
        (marker, run_id, id_task),
    )
    db.commit()
    return False, initial


def _scan(
    db: MySQL,
    settings: dict[str, Any],
    task_row: dict[str, Any],
    run_id: str | None,
    should_stop,
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
        hash_of = hash_function(task_row["hash_method"] or "sha256")
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
            db.execute(
                "UPDATE task SET records_total=%s, sync_progress=5, sync_stage='fetch', total_time_ms=total_time_ms+%s "
                "WHERE id_task=%s",
                (total, int((time.monotonic() - started) * 1000), id_task),
            )
            db.commit()
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
        stats = {"fetched": 0, "new": 0, "updated": 0, "deleted": 0, "unchanged": 0}
        batch = _Batch()
        last_key = after
        scanned = scanned_before
        mark = time.monotonic()
        last_commit = mark
        stopped = None

        def flush(final: bool) -> None:
            nonlocal batch, mark, last_commit
            progress = 90.0 if final else min(89.99, 5.0 + 85.0 * (scanned / total if total else 1.0))
            now = time.monotonic()
            deleted = _write_batch(db, id_task, batch, last_key, final, progress, int((now - mark) * 1000))
            faults.checkpoint("sync.fetch")
            stats["fetched"] += batch.scanned
            stats["new"] += len(batch.new) + len(batch.revived)
            stats["updated"] += len(batch.changed)
            stats["deleted"] += deleted
            stats["unchanged"] += batch.unchanged
            batch = _Batch()
            mark = last_commit = now

        in_place = exports_in_place(task_row)
        # GROUP_CONCAT odcisku strony: BATCH_SIZE wierszy po ~90 znaków.
        db.execute("SET SESSION group_concat_max_len = %s", (max(1 << 20, batch_size * 200),))
        pages = _prefetch(db_remote.iter_pages(rconn, target, after, batch_size), _PREFETCH_PAGES)
        try:
            for page in pages:
                high = page[-1][0]
                hashed = _hash_page(page, hash_of)
                if initial:
                    _compare_page(hashed, {}, batch, in_place)
                elif _local_fingerprint(db, id_task, last_key, high, in_place) == (
                    len(hashed),
                    _page_fingerprint(hashed),
                ):
                    batch.unchanged += len(hashed)
                    batch.scanned += len(hashed)
                else:
                    _compare_page(hashed, _local_range(db, id_task, last_key, high), batch, in_place)
                last_key = high
                scanned += len(page)
                if batch.size() >= commit_rows or time.monotonic() - last_commit >= _COMMIT_EVERY_S:
                    flush(final=False)
                    stopped = should_stop() if should_stop else None
                    if stopped:
                        break
        finally:
            pages.close()
        if stopped:
            mark_paused(db, id_task, stopped)
        else:
            flush(final=True)
            db.execute(
                "UPDATE task SET resume_marker=%s WHERE id_task=%s", (f"verify:{uuid.uuid4()}", id_task)
            )
            db.commit()
        stats.update(stopped=stopped, last_key=last_key, records_total=total, resumed=resuming)
        return stats
    finally:
        db_remote.close(rconn)


def run_scan(
    settings: dict[str, Any], id_task: int, run_id: str | None = None, should_stop=None
) -> dict[str, Any]:
    """Etapy init, fetch, compare i update: skan źródła i zapis różnic w ``task_item``.

    Wznawia przerwaną operację od ``task.last_processed_id``; inaczej zaczyna nową.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera (do ``task.run_id`` i ``run_log``).
        should_stop: Funkcja z ``lib.control``; powód != None kończy run po bieżącej partii.

    Returns:
        Statystyki runu: fetched, new, updated, deleted, unchanged, stopped, duration_s, rows_per_s...

    Raises:
        UsageError: Nieznane zadanie albo status cancelled/archived.
        TaskBusyError: Zadanie przetwarza inny run.
        TaskError, RemoteError: Błąd zadania (zadanie dostaje status ``error``).
    """

    def body(db: MySQL, task_row: dict[str, Any], started: float) -> dict[str, Any]:
        stats = _scan(db, settings, task_row, run_id, should_stop, started)
        elapsed = max(time.monotonic() - started, 1e-6)
        stats["rows_per_s"] = round(stats["fetched"] / elapsed, 1)
        return stats

    return run_with_task_lock(settings, id_task, "sync", run_id, body)


def _sample_mismatches(
    db: MySQL, rconn, target, id_task: int, hash_method: str, export_in_place: bool
) -> int:
    """Porównuje hashe próbki pozycji z aktualnym źródłem; zwraca liczbę niezgodności."""
    bounds = db.query_one(
        "SELECT MIN(remote_id) AS lo, MAX(remote_id) AS hi FROM task_item WHERE id_task=%s AND deleted_at IS NULL",
        (id_task,),
    )
    db.commit()
    if not bounds or bounds["lo"] is None:
        return 0
    lo, hi = int(bounds["lo"]), int(bounds["hi"])
    rows: dict[int, dict] = {}
    for i in range(_VERIFY_SAMPLES):
        start = lo + (hi - lo) * i // _VERIFY_SAMPLES
        for row in db.query(
            "SELECT remote_id, original_hash, local_hash, status FROM task_item "
            "WHERE id_task=%s AND deleted_at IS NULL AND remote_id >= %s ORDER BY remote_id LIMIT %s",
            (id_task, start, _VERIFY_SAMPLE_SIZE),
        ):
            rows[int(row["remote_id"])] = row
    db.commit()
    current = db_remote.fetch_by_keys(rconn, target, list(rows))
    hash_of = hash_function(hash_method)
    mismatches = 0
    for key, row in rows.items():
        if key not in current:
            mismatches += 1
            continue
        text = current[key][0]
        digest = None if text is None else hash_of(text.encode("utf-8", "surrogatepass")).hexdigest()
        reference = (
            row["local_hash"] if row["status"] == "exported" and export_in_place else row["original_hash"]
        )
        if digest != reference:
            mismatches += 1
    return mismatches


def _verify(
    db: MySQL, settings: dict[str, Any], task_row: dict[str, Any], run_id: str | None, started: float
) -> dict:
    id_task = task_row["id_task"]
    marker = task_row.get("resume_marker") or ""
    if marker.startswith("scan:") or task_row["status"] == "paused":
        return {
            "outcome": "skipped",
            "reason": "skan źródła nie został dokończony (wstrzymany lub przerwany)",
        }
    db.execute(
        "UPDATE task SET status='verifying', sync_stage='verify', sync_progress=GREATEST(sync_progress, 90), run_id=%s "
        "WHERE id_task=%s",
        (run_id, id_task),
    )
    db.commit()
    rconn, _ = open_source(db, task_row, settings)
    try:
        target = resolve_task_target(rconn, task_row)
        source_count = db_remote.count_rows(rconn, target)
        # Tylko indeks pokrywający (deleted_at, hash_missing): bez czytania tekstów.
        counts = db.query_one(
            "SELECT COUNT(*) AS active, COALESCE(SUM(hash_missing),0) AS no_hash "
            "FROM task_item WHERE id_task=%s AND deleted_at IS NULL",
            (id_task,),
        )
        db.execute("UPDATE task SET sync_progress=GREATEST(sync_progress, 94) WHERE id_task=%s", (id_task,))
        db.commit()
        local_count, no_hash = int(counts["active"]), int(counts["no_hash"])
        mismatches = _sample_mismatches(
            db, rconn, target, id_task, task_row["hash_method"] or "sha256", exports_in_place(task_row)
        )
    finally:
        db_remote.close(rconn)
    db.execute("UPDATE task SET sync_progress=GREATEST(sync_progress, 98) WHERE id_task=%s", (id_task,))
    db.commit()
    stats = {
        "source_count": source_count,
        "local_count": local_count,
        "missing_hash": no_hash,
        "sample_mismatches": mismatches,
    }
    work_ms = int((time.monotonic() - started) * 1000)
    moved = source_count != int(task_row["records_total"] or 0) or mismatches > 0
    if no_hash:
        message = f"weryfikacja: {no_hash} pozycji bez hasha tekstu"
        raise TaskError(message)
    faults.checkpoint("sync.verify")
    if local_count == source_count and mismatches == 0:
        db.execute(
            "UPDATE task SET status=IF(status='verifying','completed',status), sync_stage='done', sync_progress=100, "
            "resume_marker=NULL, finished_at=NOW(), total_time_ms=total_time_ms+%s, error_log=NULL WHERE id_task=%s",
            (work_ms, id_task),
        )
        db.commit()
        refresh_review_counters(db, id_task)
        stats["outcome"] = "completed"
        return stats
    if moved:
        reason = (
            f"źródło zmieniło się w trakcie synchronizacji (na starcie {task_row['records_total']} wierszy, "
            f"teraz {source_count}; lokalnie {local_count}; niezgodnych próbek {mismatches}); następny run nadrobi zmiany"
        )
        db.execute(
            "UPDATE task SET status='resync', sync_stage='done', sync_progress=100, resume_marker=NULL, "
            "finished_at=NOW(), total_time_ms=total_time_ms+%s, error_log=%s WHERE id_task=%s",
            (work_ms, reason, id_task),
        )
        db.commit()
        refresh_review_counters(db, id_task)
        stats["outcome"] = "resync"
        stats["reason"] = reason
        return stats
    raise TaskError(
        f"weryfikacja: kopia lokalna niezgodna ze źródłem przy niezmienionym źródle "
        f"(lokalnie {local_count} pozycji, w źródle {source_count} wierszy)"
    )


def run_verify(settings: dict[str, Any], id_task: int, run_id: str | None = None) -> dict[str, Any]:
    """Etap verify: liczby i próbka hashy kopii lokalnej wobec źródła, potem ``done``.

    Źródło zmienione w trakcie skanu kończy zadanie statusem ``resync`` z powodem w
    ``error_log``; niezgodność przy niezmienionym źródle to ``error``.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera.

    Returns:
        Statystyki: source_count, local_count, missing_hash, sample_mismatches, outcome
        (``completed``, ``resync`` albo ``skipped`` gdy skan nie został dokończony).
    """

    def body(db: MySQL, task_row: dict[str, Any], started: float) -> dict[str, Any]:
        return _verify(db, settings, task_row, run_id, started)

    return run_with_task_lock(settings, id_task, "sync", run_id, body, skip_closed=True)


def sync_task(
    settings: dict[str, Any], id_task: int, run_id: str | None = None, should_stop=None
) -> dict[str, Any]:
    """Pełna synchronizacja bez Dagstera (skan + weryfikacja) - dla testów i benchmarków.

    Returns:
        Statystyki skanu uzupełnione o wynik weryfikacji (klucz ``verify``).
    """
    stats = run_scan(settings, id_task, run_id, should_stop)
    if not stats.get("stopped"):
        stats["verify"] = run_verify(settings, id_task, run_id)
    return stats


def verify_checks(db: MySQL, id_task: int) -> dict[str, Any]:
    """Dane do asset checków: duplikaty kluczy, pozycje bez hasha, liczba aktywnych pozycji.

    Returns:
        Słownik: duplicates, missing_hash, active_items, records_total, status.
    """
    duplicates = db.query_value(
        "SELECT COUNT(*) FROM (SELECT remote_id FROM task_item WHERE id_task=%s GROUP BY remote_id HAVING COUNT(*)>1) d",
        (id_task,),
    )
    row = db.query_one(
        "SELECT COALESCE(SUM(deleted_at IS NULL),0) AS active, "
        "COALESCE(SUM(hash_missing),0) AS no_hash FROM task_item WHERE id_task=%s",
        (id_task,),
    )
    task_row = db.query_one("SELECT status, records_total FROM task WHERE id_task=%s", (id_task,))
    return {
        "duplicates": int(duplicates or 0),
        "missing_hash": int(row["no_hash"]),
        "active_items": int(row["active"]),
        "status": task_row["status"] if task_row else None,
    }
