"""Resync zakresami kluczy z porządku kopii lokalnej: zawężanie stron, które się różnią, i tryb kursora.

Strona to kolejne pozycje lokalne (granica = klucz ostatniej), źródło i MySQL liczą odciski tego
samego zakresu; strona, która się różni, jest dzielona (``lib.sync.leaves.plan``) i czytana tylko
tam, gdzie się różni. Tryb kursora (``task.cursor_column``): najpierw wiersze z kursorem, potem
odciski samych kluczy (usunięte wiersze).
"""

from typing import Any

from lib import db_remote, task_item
from lib.db_remote import decode_key, encode_key
from lib.runtime.control import StopCheck
from lib.sync import leaves
from lib.sync.merge import (
    _HASH_PAGE_FACTOR,
    _UNREAD,
    Progress,
    _advance,
    _compare,
    _flush,
    _OrderChanged,
    _prepare_page,
    _Restarted,
    _Row,
    _Scan,
    _scan_parts,
    _start_rerank,
    _TextReader,
    _Window,
)


def _moved(scan: _Scan, ordinal: int) -> int:
    """Pozycja ``ordinal`` przeczytana wcześniej, poprawiona o przesunięcia z tego skanu (``scan.shifts``)."""
    for start, amount in scan.shifts:
        if ordinal >= start:
            ordinal += amount
    return ordinal


def _item_row(scan: _Scan, item: tuple) -> _Row:
    """Wiersz pozycji skanu dla pozycji lokalnej (pozycja w źródle po części bez zmian)."""
    key = decode_key(item[0])
    single_int = isinstance(key, int) and scan.mode == "key"
    return _Row(key, item[0], key if single_int else None, None, None)


def _skip_span(
    scan: _Scan, span: leaves.Span, commit_rows: int, progress: Progress | None, should_stop: StopCheck | None
) -> str | None:
    """Część zakresu równa po odcisku: jej pozycje są bez zmian, pozycja skanu przechodzi na ostatnią."""
    if not span.items:
        return None
    last = span.items[-1]
    scan.batch.unchanged += len(span.items)
    scan.anchor = _moved(scan, last[2])
    return _advance(
        scan, _item_row(scan, last), len(span.items), commit_rows, progress, should_stop, compared=False
    )


def _close_span(scan: _Scan, span: leaves.Span) -> None:
    """Po scaleniu wierszy części: jej pozycje za ostatnim scalonym wierszem zniknęły ze źródła."""
    gone = [item for item in span.items if scan.anchor is None or _moved(scan, item[2]) > scan.anchor]
    if gone:
        scan.batch.deleted.extend(item[1] for item in gone)
        scan.anchor = _moved(scan, gone[-1][2])


def _merge_span(
    scan: _Scan,
    span: leaves.Span,
    rows: list[_Row],
    fill: "_TextReader",
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Scala wiersze części, która się różni (po ``batch_size``), i zamyka ją (usunięcia na jej końcu)."""
    if rows:
        parts = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        stopped, restart = _scan_parts(scan, parts, False, commit_rows, fill, progress, should_stop)
        if restart:
            raise _Restarted
        if stopped:
            return stopped
    _close_span(scan, span)
    return None


def _read_tail(
    scan: _Scan,
    span: leaves.Span,
    fill: "_TextReader",
    hash_sql: str,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Część do końca źródła (``span.high is None``): wiersze czytane stronami (dopisanych może być dużo)."""
    low, limit = span.low, batch_size * _HASH_PAGE_FACTOR
    # Wierszy ogona nie było w ``_preload``: pozycje spoza okna i teksty - z bazy i ze źródła.
    scan.known = scan.texts = None
    while True:
        page = db_remote.fetch_hash_between(fill.conn(), fill.target, low, None, limit, hash_sql)
        rows = _prepare_page(page, None, scan.mode == "key", hashed=True)
        last = len(page) < limit
        stopped = _merge_span(
            scan,
            span if last else leaves.Span(None, None, []),
            rows,
            fill,
            batch_size,
            commit_rows,
            progress,
            should_stop,
        )
        if stopped or last:
            return stopped
        low = page[-1][0]


def _preload(scan: _Scan, window: list[tuple], complete: bool, rows: list[_Row], fill: "_TextReader") -> None:
    """Dane lokalne i teksty dla wszystkich wierszy zawężanej strony, kilkoma zapytaniami zamiast kilku na część.

    Okno pozycji strony (``scan.window``), pozycje spoza okna dla kluczy źródła (``scan.known``:
    powrót usuniętego, zmiana porządku) i teksty wierszy nowych i zmienionych (``scan.texts``).
    """
    scan.window = _Window(window, scan.anchor, complete)
    by_key = scan.window.by_key
    scan.known = task_item.items_by_keys(
        scan.db, scan.id_task, [r.remote_key for r in rows if r.remote_key not in by_key]
    )
    wanted = []
    for row in rows:
        item = by_key.get(row.remote_key) or scan.known.get(row.remote_key)
        if row.text is _UNREAD and (
            item is None or row.digest != task_item.reference_hash(item[4], item[2], item[3], scan.in_place)
        ):
            wanted.append(row.key)
    scan.texts = fill.read(wanted) if wanted else {}
    scan.stats["texts_read"] += len(scan.texts)


def _check_order(
    scan: _Scan, segments: list[leaves.Span], rows: list[list[_Row]], fill: "_TextReader"
) -> None:
    """Klucz nienumeryczny: pozycje części bez wiersza w jej zakresie źródła muszą zniknąć ze źródła.

    Klucz, który w źródle jest, leży w innym zakresie - źródło porządkuje klucze inaczej niż przy
    poprzednim skanie (``_OrderChanged``), zanim jakakolwiek pozycja zostanie oznaczona jako usunięta.
    """
    if scan.mode == "key":
        return
    seen = {row.remote_key for part in rows for row in part}
    gone = [decode_key(item[0]) for span in segments for item in span.items if item[0] not in seen]
    if gone and fill.read(gone):
        raise _OrderChanged


def _narrow(
    scan: _Scan,
    span: leaves.Span,
    window: list[tuple],
    fill: "_TextReader",
    hash_sql: str,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
    keys_only: bool = False,
) -> str | None:
    """Strona, która się różni, zawężona do części, które się różnią (``lib.sync.leaves.plan``).

    Wiersze ``(klucz, hash)`` wszystkich części do przeczytania idą jednym zapytaniem
    (``db_remote.fetch_hash_ranges``), dane lokalne i teksty - ``_preload``; części bez zmian
    przesuwają tylko pozycję skanu.

    Args:
        window: Wszystkie pozycje (także usunięte) z zakresu strony, rosnąco po ``source_ord``.
        keys_only: Części porównywane odciskami samych kluczy (tryb kursora); wiersze części, które
            się różnią, i tak idą z hashami (scalenie jak zawsze).

    Returns:
        Powód zatrzymania po zatwierdzonej partii albo ``None``.

    Raises:
        _OrderChanged: Źródło porządkuje klucze inaczej niż przy poprzednim skanie.
        _Restarted: Scalanie przełączyło skan na nową numeracją (``_start_rerank``).
    """
    plan_hash = leaves.KEYS_ONLY if keys_only else hash_sql
    segments = leaves.plan(fill.conn(), fill.target, plan_hash, span, scan.in_place, scan.stats, scan.dense)
    bounded = [seg for seg, differs in segments if differs and seg.high is not None]
    fetched = db_remote.fetch_hash_ranges(
        fill.conn(), fill.target, [(s.low, s.high) for s in bounded], hash_sql
    )
    rows = {
        id(seg): _prepare_page(page, None, scan.mode == "key", hashed=True)
        for seg, page in zip(bounded, fetched, strict=True)
    }
    _check_order(scan, bounded, list(rows.values()), fill)
    _preload(scan, window, span.high is None, [row for part in rows.values() for row in part], fill)
    seen = sum(len(part) for part in rows.values())
    read = sum(len(seg.items) for seg in bounded)
    # Zmiany strony (nowe i zmienione wiersze, pozycje bez wiersza) decydują o podziale następnej.
    scan.dense = len(scan.texts or ()) + max(0, read - seen) > leaves.DENSE
    try:
        for seg, differs in segments:
            if not differs:
                stopped = _skip_span(scan, seg, commit_rows, progress, should_stop)
            elif seg.high is None:
                stopped = _read_tail(
                    scan, seg, fill, hash_sql, batch_size, commit_rows, progress, should_stop
                )
            else:
                scan.stats["rows_compared"] += len(rows[id(seg)])
                stopped = _merge_span(
                    scan, seg, rows[id(seg)], fill, batch_size, commit_rows, progress, should_stop
                )
            if stopped:
                return stopped
    finally:
        scan.window = scan.texts = scan.known = None
    return None


def _scan_ranges(
    scan: _Scan,
    fill: "_TextReader",
    hash_sql: str,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
    keys_only: bool = False,
) -> tuple[str | None, bool | str]:
    """Resync zakresami kluczy wyznaczonymi z porządku kopii lokalnej (każdy rodzaj klucza, każde źródło z odciskami).

    Strona to ``batch_size * _HASH_PAGE_FACTOR`` kolejnych aktywnych pozycji za ``scan.anchor``;
    jej granica to klucz ostatniej z nich (ostatnia strona sięga do końca źródła). Odcisk pozycji
    liczy MySQL (``task_item.range_fingerprint``), odcisk tego samego zakresu kluczy - źródło; strona
    równa przechodzi jednym wierszem z każdej strony, inna jest zawężana (``_narrow``).

    Po stronie z gęstymi zmianami (``scan.dense``) kończy z ``"dense"``: dalej taniej czytać strony
    ``(klucz, hash)`` po kolei (``_scan_source`` przełącza drogę) niż liczyć odciski części.

    Returns:
        ``(powód zatrzymania albo None, True: od nowa z nową numeracją / "dense" / False)``.
    """
    scan.stats["read_mode"] = "cursor" if keys_only else "ranges"
    db, id_task, page = scan.db, scan.id_task, batch_size * _HASH_PAGE_FACTOR
    while True:
        scan.shifts = []
        bound = task_item.nth_active_after(db, id_task, scan.anchor, page)
        high_ord = None if bound is None else bound[1]
        high = None if bound is None else decode_key(bound[0])
        count, fingerprint, last_ord = task_item.range_fingerprint(
            db, id_task, scan.anchor, high_ord, scan.in_place, keys_only
        )
        plan_hash = leaves.KEYS_ONLY if keys_only else hash_sql
        (theirs,) = db_remote.range_fingerprints(fill.conn(), fill.target, plan_hash, scan.last_key, [high])
        try:
            if count and theirs == (count, fingerprint):
                last_key = bound[0] if bound is not None else task_item.key_at_ord(db, id_task, last_ord)
                scan.batch.unchanged += count
                scan.anchor = last_ord
                row = _item_row(scan, (last_key,))
                stopped = _advance(scan, row, count, commit_rows, progress, should_stop, compared=False)
            elif keys_only:
                items = task_item.items_after(db, id_task, scan.anchor, 1 << 30, high=high_ord)
                span = leaves.Span(scan.last_key, high, [item for item in items if not item[6]])
                stopped = _reconcile_keys(scan, span, fill, commit_rows, progress, should_stop)
            else:
                items = task_item.items_after(db, id_task, scan.anchor, 1 << 30, high=high_ord)
                span = leaves.Span(scan.last_key, high, [item for item in items if not item[6]])
                stopped = _narrow(
                    scan,
                    span,
                    items,
                    fill,
                    hash_sql,
                    batch_size,
                    commit_rows,
                    progress,
                    should_stop,
                    keys_only,
                )
        except _OrderChanged:
            _start_rerank(scan)
            return None, True
        except _Restarted:
            return None, True
        if stopped:
            return stopped, False
        if bound is None:
            return None, False
        if scan.dense:
            return None, "dense"


def _reconcile_keys(
    scan: _Scan,
    span: leaves.Span,
    fill: _TextReader,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Tryb kursora, faza 2: strona, której klucze się różnią, porównana samymi kluczami (klucz całkowity).

    Ze źródła idą same klucze zakresu (kilka bajtów na wiersz, bez hashowania tekstów): pozycje bez
    klucza w źródle są usunięte, klucze bez aktywnej pozycji (wstawione bez ruszenia kursora albo
    powrót usuniętego) są czytane z tekstem i dopisywane (pozycja = klucz).
    """
    conn = fill.conn()
    keys = [
        key
        for key, _none in db_remote.fetch_hash_between(
            conn, fill.target, span.low, span.high, 1 << 30, "NULL"
        )
    ]
    source = {encode_key(key): key for key in keys}
    gone = [item for item in span.items if item[0] not in source]
    scan.batch.deleted.extend(item[1] for item in gone)
    active = {item[0] for item in span.items}
    missing = [remote_key for remote_key in source if remote_key not in active]
    if missing:
        known = task_item.items_by_keys(scan.db, scan.id_task, missing)
        texts = fill.read([source[remote_key] for remote_key in missing])
        scan.stats["texts_read"] += len(texts)
        for remote_key in missing:
            key = source[remote_key]
            if key not in texts:
                continue  # wiersz zniknął między odczytami
            row = _Row(key, remote_key, key, *texts[key])
            item = known.get(remote_key)
            if item is None:
                scan.batch.new.append((remote_key, key, key, row.text, row.digest))
            else:
                _compare(scan.batch, row, item, scan.in_place)
    scan.batch.unchanged += len(span.items) - len(gone)
    ords = [*keys, *(item[2] for item in span.items)]
    if not ords:
        return None
    scan.anchor = max(ords)
    last = max(keys) if keys else decode_key(span.items[-1][0])
    row = _Row(last, encode_key(last), last, None, None)
    changes = bool(gone or missing)
    return _advance(scan, row, len(keys), commit_rows, progress, should_stop, compared=changes)


def _read_cursor_rows(
    scan: _Scan,
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    since: Any,
    batch_size: int,
    hash_of: Any,
    progress: Progress | None,
) -> None:
    """Tryb kursora, faza 1: wiersze z kursorem ``>= since`` porównane z pozycjami po kluczu.

    Nowe, zmienione i przywrócone są zapisywane partiami (pozycja = klucz, tryb ``key``); pozycja
    skanu się nie zmienia, więc wznowienie powtarza tę fazę (bez skutków: zapisane są już równe)
    i ciągnie dalej fazę 2 (odciski samych kluczy, ``_scan_ranges``) od zatwierdzonej pozycji.
    """
    scan.stats["read_mode"] = "cursor"
    after = None
    while True:
        page = db_remote.fetch_cursor_page(rconn, target, since, after, batch_size)
        rows = _prepare_page(page, hash_of, True)
        local = task_item.items_by_keys(scan.db, scan.id_task, [row.remote_key for row in rows])
        for row in rows:
            item = local.get(row.remote_key)
            if item is None:
                scan.batch.new.append((row.remote_key, row.remote_id, row.key, row.text, row.digest))
            else:
                _compare(scan.batch, row, item, scan.in_place)
        scan.stats["texts_read"] += len(rows)
        # Bez zmian policzy faza 2 (każdy wiersz tabeli raz).
        scan.batch.unchanged = 0
        if scan.batch.new or scan.batch.changed or scan.batch.revived:
            _flush(scan, False, progress)
        if len(page) < batch_size:
            return
        after = page[-1][0]
