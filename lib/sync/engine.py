"""Silnik synchronizacji: skan źródła (etapy init, fetch, compare, update) i wybór drogi odczytu.

Skan czyta źródło jedną z dróg (``_read_path``): strony tekstów, strony ``(klucz, hash)``, odciski
stron keyset (PostgreSQL), zakresy kluczy z porządku kopii lokalnej albo tryb kursora
(``lib/sync/ranges.py``), porównuje je z pozycjami ``task_item`` (``lib/sync/merge.py``) i zapisuje
tylko różnice. Co ``COMMIT_ROWS`` porównanych wierszy (albo co ~2 s) jedna transakcja zapisuje
pozycje razem z pozycją skanu i licznikami, więc przerwany run wznawia się dokładnie od
zatwierdzonej pozycji, a liczniki opisują całą operację synchronizacji. Pierwsza synchronizacja:
``lib/sync_load.py``; weryfikacja (etap verify): ``lib/verify.py``.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lib import db_remote, faults, task_item
from lib.db_local import MySQL, connect_local
from lib.db_remote import decode_key, encode_key
from lib.db_utils import get_logger, hash_text
from lib.errors import RemoteError, TaskError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.frames import run_with_task_lock
from lib.source import exports_in_place, hasher, open_source, resolve_task_target
from lib.sync import cursor, leaves, markers
from lib.sync import initial_load as sync_load
from lib.sync.background import background_stream
from lib.sync.merge import (
    _HASH_PAGE_FACTOR,
    GAP,
    MAX_REMOTE_KEY,
    Progress,
    _advance,
    _duplicate_keys_are_task_errors,
    _flush,
    _prepare_page,
    _Restarted,
    _Row,
    _Scan,
    _scan_rows,
    _TextReader,
)
from lib.sync.ranges import _narrow, _read_cursor_rows, _scan_ranges
from lib.sync.verify import run_verify
from lib.task import (
    get_task,
    mark_paused,
    record_source_total,
    resume_sync_operation,
    set_cursor_value,
    set_resume_marker,
    start_sync_operation,
)

log = get_logger("sync")

# Ile stron źródła czyta naprzód wątek czytający (pamięć ograniczona).
_PREFETCH_PAGES = 4


def _prefetch(pages: Iterator[list], depth: int) -> Iterator[list]:
    """Czyta strony źródła w osobnym wątku (odczyt źródła nakłada się na zapis lokalny).

    Kolejka ma ograniczoną długość, więc pamięć nie rośnie z rozmiarem tabeli.
    """

    def produce(put: Callable[[Any], None]) -> None:
        try:
            for page in pages:
                put(page)
        finally:
            # Zamknięcie generatora stron w tym wątku: jego wątki i połączenia kończą pracę, zanim
            # wołający zamknie połączenia (``iter_page_fingerprints`` czeka na swoje zapytania).
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    return background_stream(produce, depth, "source-reader", 5)


def _source_hashes(
    rconn: db_remote.RemoteConn, target: db_remote.Target, task_row: dict[str, Any], after: Any, limit: int
) -> str | None:
    """Wyrażenie hasha liczonego przez źródło, jeśli daje te same hashe co ``hash_text``; inaczej ``None``.

    Sprawdzenie na prawdziwych danych: pierwsza strona skanu czytana raz z tekstami, raz z hashami
    źródła - muszą się zgadzać co do wiersza (stary MS SQL bez sortowań UTF-8, nietypowe kodowanie
    kolumny). Błąd zapytania albo różnica = skan czyta teksty, jak przy SQLite.
    """
    method = task_row.get("hash_method") or "sha256"
    expression = db_remote.source_hash_sql(rconn, target, method)
    if expression is None:
        return None
    hash_of = hasher(task_row)
    try:
        hashed = db_remote.fetch_hash_page(rconn, target, after, limit, expression)
    except RemoteError as exc:
        log.info("zadanie %s: źródło nie liczy hashy (%s) - skan czyta teksty", task_row["id_task"], exc)
        return None
    texts = db_remote.fetch_page(rconn, target, after, limit)
    if hashed != [(key, hash_text(text, hash_of)) for key, text in texts]:
        log.info(
            "zadanie %s: hash liczony przez źródło różni się od hasha tekstu - skan czyta teksty",
            task_row["id_task"],
        )
        return None
    return expression


def _start_operation(db: MySQL, task_row: dict[str, Any], run_id: str | None) -> tuple[bool, str]:
    """Zaczyna nową operację synchronizacji albo wznawia przerwaną.

    Znacznik operacji (``resume_marker``): ``scan:init:<uuid>`` (zadanie bez pozycji na starcie),
    ``scan:diff:<uuid>`` albo ``scan:rerank:<base>:<uuid>`` (nowa numeracja porządku źródła).

    Returns:
        Krotka ``(resuming, marker)``.
    """
    id_task = task_row["id_task"]
    marker = task_row.get("resume_marker") or ""
    if markers.parse(marker).stage == "scan":
        resume_sync_operation(db, id_task, run_id)
        return True, marker
    marker = markers.scan(not task_item.has_items(db, id_task))
    start_sync_operation(db, id_task, marker, run_id)
    return False, marker


def _order_mode(target: db_remote.Target) -> str:
    """``key`` dla jednej kolumny całkowitej mieszczącej się w BIGINT, inaczej ``assigned``."""
    if not target.single_integer_key:
        return "assigned"
    type_name = target.key_columns[0].type_name.lower()
    return "assigned" if "unsigned" in type_name and "bigint" in type_name else "key"


def _scan_pages(
    scan: _Scan,
    pages: Iterator[list[_Row]],
    target: db_remote.Target,
    batch_size: int,
    commit_rows: int,
    fill: "_TextReader | None",
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> tuple[str | None, bool]:
    """Strony źródła z tekstami albo z hashami (``fill``) po kolei przez ``_scan_rows``.

    Returns:
        ``(powód zatrzymania albo None, czy zacząć od nowa z nową numeracją)``.
    """
    scan.stats["read_mode"] = "pages" if fill is None else "hashes"
    for rows in pages:
        if scan.mode == "key" and any(row.remote_id is None for row in rows):
            raise TaskError(f"klucz tabeli {target.table!r} nie mieści się w BIGINT; wskaż inny klucz")
        if fill is None:
            scan.stats["texts_read"] += len(rows)
        result = _scan_rows(scan, rows, batch_size, commit_rows, fill, progress, should_stop)
        if result != (None, False):
            return result
    return None, False


def _scan_fingerprints(
    scan: _Scan,
    fingerprints: Iterator[tuple[Any, int, Any, str]],
    batch_size: int,
    commit_rows: int,
    fill: "_TextReader",
    hash_sql: str,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> tuple[str | None, bool]:
    """Resync po odciskach stron liczonych przez źródło (klucz całkowity, tryb ``key``).

    Strona, której liczba i odcisk równają się lokalnym (``range_fingerprint`` pozycji w zakresie
    ``(scan.anchor, ostatni klucz strony]``), jest bez zmian - ze źródła przyszedł jeden wiersz na
    całą stronę. Inna jest czytana jako wiersze ``(klucz, hash)`` z zakresu ``(klucz przed stroną, ostatni klucz]`` drugim połączeniem
    i porównywana jak strona hashy. W trybie ``key`` pozycja to sam klucz, więc nowej numeracji
    (``_OrderChanged``) tu nie ma.

    Returns:
        ``(powód zatrzymania albo None, False)``.
    """
    scan.stats["read_mode"] = "fingerprints"
    for after, count, last, fingerprint in fingerprints:
        local_count, local_fingerprint, last_ord = task_item.range_fingerprint(
            scan.db, scan.id_task, scan.anchor, last, scan.in_place
        )
        if local_count == count and local_fingerprint == fingerprint:
            scan.batch.unchanged += count
            scan.anchor = last_ord
            last_row = _Row(last, encode_key(last), last, None, fingerprint)
            stopped = _advance(scan, last_row, count, commit_rows, progress, should_stop, compared=False)
        else:
            # Strona się różni: zawężanie od pozycji lokalnych jej zakresu (pozycja = klucz).
            items = task_item.items_after(scan.db, scan.id_task, scan.anchor, 1 << 30, high=last)
            span = leaves.Span(after, last, [item for item in items if not item[6]])
            try:
                stopped = _narrow(
                    scan, span, items, fill, hash_sql, batch_size, commit_rows, progress, should_stop
                )
            except _Restarted:
                return None, True
        if stopped:
            return stopped, False
    return None, False


def _load_initial(
    scan: _Scan,
    settings: Settings,
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    hash_of,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Pierwsza synchronizacja: partie ``lib.sync.initial_load`` wstawiane przez ``SYNC_WRITERS`` połączeń.

    Każda partia jest zatwierdzana (po kolei) w transakcji pisarza razem z pozycją w źródle.

    Returns:
        Powód zatrzymania (pauza) albo ``None``, gdy źródło zostało przeczytane do końca.
    """
    scan.stats["read_mode"] = "copy" if db_remote.can_copy(rconn, target) else "pages"
    packet = int(scan.db.query_value("SELECT @@max_allowed_packet"))
    chunks = sync_load.stream_chunks(
        rconn,
        target,
        scan.id_task,
        scan.last_key,
        scan.mode,
        scan.anchor,
        hash_of,
        batch_size,
        commit_rows,
        GAP,
        MAX_REMOTE_KEY,
        min(sync_load.STATEMENT_BYTES, packet // 2),
    )

    def commit(db: MySQL, chunk: sync_load.Chunk) -> str | None:
        scan.batch.load = (chunk.statements, chunk.rows)
        scan.stats["texts_read"] += chunk.rows
        scan.batch.scanned += chunk.rows
        scan.last_key = chunk.last_key
        scan.last_row = _Row(chunk.last_key, chunk.remote_key, chunk.remote_id, None, None)
        scan.anchor = chunk.last_ord
        scan.scanned += chunk.rows
        _flush(scan, False, progress, db, inserted=True)
        return should_stop() if should_stop else None

    writers = [connect_local(settings) for _ in range(settings.sync_writers)]
    try:
        # Błąd wstawiania pisarza wychodzi tutaj (z jego wątku), poza ``_write_batch``.
        with _duplicate_keys_are_task_errors():
            return sync_load.load_chunks(chunks, writers, commit)
    finally:
        chunks.close()
        for db in writers:
            db.close()


@dataclass
class _Reading:
    """Odczyt źródła jednego skanu: połączenia, cel, hash liczony przez źródło i ustawienia stron.

    Attributes:
        hashes: Wyrażenie hasha liczonego przez źródło (``_source_hashes``) albo ``None``: skan czyta teksty.
        fill: Drugie połączenie (teksty po kluczach, zakresy) - tylko z ``hashes``.
        ranges: Czy wolno czytać zakresami z porządku kopii (``_scan_ranges``); ``False`` po gęstych zmianach.
    """

    settings: Settings
    rconn: db_remote.RemoteConn
    conn_row: dict[str, Any]
    target: db_remote.Target
    hash_of: Any
    batch_size: int
    commit_rows: int
    progress: Progress | None
    should_stop: StopCheck | None
    hashes: str | None = None
    fill: "_TextReader | None" = None
    ranges: bool = True
    # Tryb kursora: dolna granica odczytu (``cursor.since``); ``cursor`` gaśnie po fazie wierszy z kursorem.
    cursor: bool = False
    cursor_since: Any = None
    spare: list[db_remote.RemoteConn] = field(default_factory=list)


def _verify_only(task_row: dict[str, Any]) -> dict[str, Any]:
    """Statystyki runu, który zastał zatwierdzony skan (run zginął w weryfikacji): została sama weryfikacja."""
    return {
        "fetched": 0,
        "new": 0,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "stopped": None,
        "last_key": task_row["last_processed_key"],
        "records_total": task_row["records_total"],
        "resumed": True,
    }


def _open_scan(
    db: MySQL, reading: _Reading, task_row: dict[str, Any], resuming: bool, marker: str, started: float
) -> _Scan:
    """Stan skanu: nowa operacja (liczba wierszy źródła) albo wznowienie od zatwierdzonej pozycji."""
    id_task = task_row["id_task"]
    state = get_task(db, id_task) if resuming else None
    db.commit()
    # sync_progress >= 5 = liczba wierszy źródła zapisana (ten sam commit co records_total);
    # run zabity przed tym momentem liczy je od nowa.
    if state is not None and float(state["sync_progress"] or 0) >= 5:
        total = int(state["records_total"] or 0)
        after = decode_key(state["last_processed_key"]) if state["last_processed_key"] else None
        anchor, scanned_before = state["scan_ord"], int(state["records_fetched"] or 0)
    else:
        total = db_remote.count_rows(reading.rconn, reading.target)
        after, anchor, scanned_before = None, None, 0
        record_source_total(db, id_task, total, int((time.monotonic() - started) * 1000))
    parsed = markers.parse(marker)
    mode = "rerank" if parsed.kind == "rerank" else _order_mode(reading.target)
    target = reading.target
    log.info(
        "zadanie %s: %s skanu %s.%s po kluczu (%s): %s wierszy w źródle%s",
        id_task,
        "wznowienie" if resuming else "start",
        target.table,
        target.column,
        target.key,
        total,
        "" if after is None else f", od klucza {encode_key(after)}",
    )
    # texts_read: teksty przeczytane ze źródła; read_mode: copy, pages (strony z tekstami), hashes
    # (hashe liczone przez źródło), fingerprints / ranges (odciski stron i zakresów kluczy).
    # ranges_compared / rows_compared: odciski części i pozycje części czytanych wierszami (zawężanie).
    stats = dict.fromkeys(("fetched", "new", "updated", "deleted", "unchanged", "texts_read"), 0)
    stats.update(read_mode="", ranges_compared=0, rows_compared=0)
    # Pozycja wznowienia jako ostatni wiersz: partia zapisana przed pierwszą stroną jej nie cofa.
    last_row = None
    if after is not None:
        remote_id = after if target.single_integer_key and isinstance(after, int) else None
        last_row = _Row(after, encode_key(after), remote_id, None, None)
    return _Scan(
        db=db,
        id_task=id_task,
        total=total,
        last_key=after,
        last_row=last_row,
        scanned=scanned_before,
        stats=stats,
        in_place=exports_in_place(task_row),
        mode=mode,
        initial=parsed.kind == "init",
        anchor=anchor,
        base=parsed.base,
    )


def _read_path(scan: _Scan, reading: _Reading) -> str:
    """Którą drogą czytać źródło w tym skanie.

    ``cursor``: tryb kursora (wiersze z kursorem, potem odciski samych kluczy; klucz całkowity);
    ``fingerprints``: odciski stron keyset liczone przez źródło (PostgreSQL, klucz całkowity);
    ``ranges``: odciski zakresów kluczy z porządku kopii (każdy klucz jednokolumnowy, źródła z
    ``range_fingerprints``); ``hashes``: strony ``(klucz, hash)``; ``texts``: strony z tekstami.
    """
    if reading.hashes is None:
        return "texts"
    ranges = db_remote.can_fingerprint_ranges(reading.rconn, reading.target)
    if reading.cursor and reading.ranges and scan.mode == "key" and ranges:
        return "cursor"
    if scan.mode == "key" and db_remote.can_fingerprint(reading.rconn, reading.target):
        return "fingerprints"
    if (
        reading.ranges
        and scan.mode != "rerank"
        and db_remote.can_fingerprint_ranges(reading.rconn, reading.target)
    ):
        return "ranges"
    return "hashes"


def _pages(scan: _Scan, reading: _Reading, path: str) -> Iterator:
    """Strumień stron źródła dla drogi ``path`` (wątek czyta naprzód, ``_PREFETCH_PAGES`` stron)."""
    rconn, target, size = reading.rconn, reading.target, reading.batch_size * _HASH_PAGE_FACTOR
    single_int = target.single_integer_key
    if path == "fingerprints":
        # Odciski stron liczy źródło (na SYNC_FINGERPRINT_READERS połączeniach naraz).
        while len(reading.spare) < reading.settings["SYNC_FINGERPRINT_READERS"] - 1:
            reading.spare.append(db_remote.connect(reading.conn_row, reading.settings))
        source = db_remote.iter_page_fingerprints(
            rconn, target, scan.last_key, size, reading.hashes, reading.spare
        )
    elif path == "hashes":
        source = (
            _prepare_page(page, None, single_int, hashed=True)
            for page in db_remote.iter_pages(rconn, target, scan.last_key, size, hash_sql=reading.hashes)
        )
    else:
        source = (
            _prepare_page(page, reading.hash_of, single_int)
            for page in db_remote.iter_pages(rconn, target, scan.last_key, reading.batch_size)
        )
    return _prefetch(source, _PREFETCH_PAGES)


def _scan_source(scan: _Scan, reading: _Reading) -> str | None:
    """Porównanie źródła z pozycjami drogą z ``_read_path``, od nowa po zmianie numeracji lub drogi.

    Returns:
        Powód zatrzymania albo ``None``, gdy źródło zostało przeczytane do końca.
    """
    args = (reading.batch_size, reading.commit_rows)
    callbacks = (reading.progress, reading.should_stop)
    while True:
        path = _read_path(scan, reading)
        if path in ("ranges", "cursor"):
            assert reading.fill is not None and reading.hashes is not None
            keys_only = path == "cursor"
            if keys_only:
                _read_cursor_rows(
                    scan,
                    reading.rconn,
                    reading.target,
                    reading.cursor_since,
                    reading.batch_size,
                    reading.hash_of,
                    reading.progress,
                )
            stopped, restart = _scan_ranges(scan, reading.fill, reading.hashes, *args, *callbacks, keys_only)
            reading.cursor = False
            if restart == "dense":
                reading.ranges = False
        else:
            pages = _pages(scan, reading, path)
            try:
                if path == "fingerprints":
                    assert reading.fill is not None and reading.hashes is not None
                    stopped, restart = _scan_fingerprints(
                        scan, pages, *args, reading.fill, reading.hashes, *callbacks
                    )
                else:
                    stopped, restart = _scan_pages(
                        scan, pages, reading.target, *args, reading.fill, *callbacks
                    )
            finally:
                pages.close()
        if not restart:
            return stopped


def _scan(
    db: MySQL,
    settings: Settings,
    task_row: dict[str, Any],
    run_id: str | None,
    should_stop: StopCheck | None,
    progress: Progress | None,
    started: float,
) -> dict[str, Any]:
    """Jedna operacja skanu (albo jej wznowienie): odczyt źródła, porównanie, zapis różnic."""
    id_task = task_row["id_task"]
    if task_row["status"] == "verifying" and markers.parse(task_row.get("resume_marker")).stage == "verify":
        # Run zginął w weryfikacji: skan tej operacji jest zatwierdzony, zostaje sama weryfikacja
        # (nowy skan wyzerowałby liczniki operacji).
        log.info("zadanie %s: skan zatwierdzony wcześniej - tylko weryfikacja", id_task)
        return _verify_only(task_row)
    resuming, marker = _start_operation(db, task_row, run_id)
    faults.checkpoint("sync.init")
    rconn, conn_row = open_source(db, task_row, settings)
    try:
        batch_size = settings.batch_size
        reading = _Reading(
            settings=settings,
            rconn=rconn,
            conn_row=conn_row,
            target=resolve_task_target(rconn, task_row),
            hash_of=hasher(task_row),
            batch_size=batch_size,
            commit_rows=max(settings.commit_rows, batch_size),
            progress=progress,
            should_stop=should_stop,
        )
        scan = _open_scan(db, reading, task_row, resuming, marker, started)
        # Kursor: największa wartość na starcie (zapamiętana po skanie); odczyt od poprzedniej minus opóźnienie.
        cursor_top = db_remote.max_cursor(rconn, reading.target) if reading.target.quoted_cursor else None
        reading.cursor = bool(reading.target.quoted_cursor) and task_row.get("cursor_value") is not None
        reading.cursor_since = cursor.since(task_row.get("cursor_value"), settings.sync_cursor_lag_s)
        # GROUP_CONCAT odcisku strony: do BATCH_SIZE * _HASH_PAGE_FACTOR wierszy z kluczem do 700 znaków.
        db.execute(
            "SET SESSION group_concat_max_len = %s", (max(1 << 20, batch_size * _HASH_PAGE_FACTOR * 3200),)
        )
        stopped = None
        if scan.initial and scan.mode != "rerank":
            stopped = _load_initial(
                scan,
                settings,
                rconn,
                reading.target,
                reading.hash_of,
                batch_size,
                reading.commit_rows,
                progress,
                should_stop,
            )
        else:
            reading.hashes = _source_hashes(rconn, reading.target, task_row, scan.last_key, batch_size)
            if reading.hashes:
                reading.fill = _TextReader(conn_row, settings, reading.target, reading.hash_of)
            try:
                stopped = _scan_source(scan, reading)
            finally:
                if reading.fill is not None:
                    reading.fill.close()
                for extra in reading.spare:
                    db_remote.close(extra)
        if stopped:
            mark_paused(db, id_task, stopped)
        else:
            _flush(scan, True, progress)
            if reading.target.quoted_cursor:
                set_cursor_value(db, id_task, cursor.encode(cursor_top))
            set_resume_marker(db, id_task, markers.verify())
        scan.stats.update(
            stopped=stopped,
            last_key=None if scan.last_row is None else scan.last_row.remote_key,
            records_total=scan.total,
            resumed=resuming,
        )
        return scan.stats
    finally:
        db_remote.close(rconn)


def run_scan(
    settings: Settings,
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
        should_stop: Funkcja z ``lib.runtime.control``; powód != None kończy run po bieżącej partii.
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
    settings: Settings,
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
