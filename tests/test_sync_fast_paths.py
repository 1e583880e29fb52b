"""Szybkie ścieżki synchronizacji: pierwsza synchronizacja (strumień + pisarze równolegle) i hashe liczone przez źródło.

Każda szybka ścieżka musi dać dokładnie to, co ścieżka tekstowa: te same pozycje (bajt w bajt),
te same hashe i te same liczniki operacji - na prawdziwych PostgreSQL, MariaDB i SQLite.
Ścieżkę tekstową wymuszamy, wyłączając w ``lib.db_remote`` to, co włącza szybką
(``source_hash_sql`` -> ``None``, ``can_copy`` -> ``False``): bazy są prawdziwe, zmienia się tylko
wybór drogi odczytu.
"""

import time

import pytest

from lib import db_remote
from lib.db_remote import encode_key
from lib.db_utils import compute_hash
from lib.sync import engine as sync
from lib.sync import merge
from tests.helpers import (
    add_connection,
    add_task,
    create_text_table,
    source_execute,
    source_query,
    task_counters,
)

# Teksty, które łatwo zepsuć w TSV/COPY/hashu: ucieczki, NULL i '', znaki 4-bajtowe, spacje na końcu.
TRICKY = [
    None,
    "",
    "a\tb",
    "line1\nline2\r\nline3",
    "back\\slash \\t \\n \\\\",
    "\\N",
    "N",
    "\\",
    "tab at end\t",
    "emoji 😀 i nuta 𝄞, zażółć gęślą jaźń",
    "apple",
    "trailing  ",
    "form\ffeed\vvtab\bbs",
    "ctrl-z \x1a koniec",
    "   ",
]
# Teksty z NUL tylko tam, gdzie źródło je przechowuje (PostgreSQL odrzuca NUL w text).
WITH_NUL = ["nul\x00inside", "\x00"]


def _texts(source: dict) -> list[str | None]:
    return TRICKY + (WITH_NUL if source["db_type"] != "pgsql" else [])


def _rows(source: dict) -> list[tuple[int, str | None]]:
    texts = _texts(source)
    # Wiersze z trudnymi tekstami i zwykłe, w kilku stronach (BATCH_SIZE=7) i partiach (COMMIT_ROWS=20).
    return [(i + 1, text) for i, text in enumerate(texts)] + [
        (100 + i, f"zwykły wiersz {i} ż") for i in range(60)
    ]


def _items(db, id_task: int) -> list[tuple]:
    """Pozycje zadania bez identyfikatorów i czasów (do porównania dwóch zadań)."""
    return [
        tuple(r.values())
        for r in db.query(
            "SELECT remote_key, remote_id, source_ord, text_original, original_hash, status, is_changed, "
            "deleted_at IS NOT NULL AS deleted FROM task_item WHERE id_task=%s ORDER BY source_ord, remote_key",
            (id_task,),
        )
    ]


def _text_path(monkeypatch) -> None:
    """Wymusza ścieżkę tekstową (strony z tekstami, bez COPY i bez hashy źródła)."""
    monkeypatch.setattr(db_remote, "source_hash_sql", lambda *args: None)
    monkeypatch.setattr(db_remote, "can_copy", lambda *args: False)


def _change(source: dict) -> dict[str, int]:
    """Zmiany w źródle: tylko wielkość liter, tylko spacje na końcu, NULL <-> '', 4-bajtowe, usunięcia, nowe.

    Returns:
        Oczekiwane liczniki resync (updated, deleted, new).
    """
    updates = [
        (2, None),  # '' -> NULL
        (1, ""),  # NULL -> ''
        (11, "Apple"),  # tylko wielkość liter (kolumna _ci w MariaDB: 'apple' = 'Apple')
        (12, "trailing"),  # tylko spacje na końcu (PAD SPACE w _ci: równe)
        (15, "    "),  # jedna spacja więcej
        (10, "emoji 😃 i nuta 𝄞, zażółć gęślą jaźń"),  # inny znak 4-bajtowy
        (105, "zwykły wiersz 5 Ż"),
    ]
    for key, text in updates:
        source_execute(source, "UPDATE articles SET body=%s WHERE id=%s", (text, key))
    source_execute(source, "DELETE FROM articles WHERE id IN (3, 130, 159)")
    for key, text in [(50, "nowy 😀"), (99, None), (200, "")]:
        source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (key, text))
    return {"updated": len(updates), "deleted": 3, "new": 3}


@pytest.fixture(params=["pg_source", "mysql_source", "sqlite_source"])
def any_source(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def small_batches(monkeypatch, settings):
    return settings.updated(BATCH_SIZE=3, COMMIT_ROWS=20)


def test_first_sync_is_byte_for_byte_the_source(small_batches, db, any_source, monkeypatch):
    """Pierwsza synchronizacja (COPY z PostgreSQL, dwóch pisarzy) = wiersze źródła czytane kursorem, bajt w bajt."""
    settings = small_batches
    create_text_table(any_source, rows=_rows(any_source))
    connection = add_connection(db, any_source)
    fast, slow = add_task(db, connection), add_task(db, connection)
    stats = sync.sync_task(settings, fast)
    assert stats["read_mode"] == ("copy" if any_source["db_type"] == "pgsql" else "pages")
    with monkeypatch.context() as patch:
        _text_path(patch)
        slow_stats = sync.sync_task(settings, slow)
    assert slow_stats["read_mode"] == "pages"
    source = source_query(any_source, "SELECT id, body FROM articles ORDER BY id")
    expected = [
        (encode_key(key), key, key, text, compute_hash(text), "pending", 0, 0) for key, text in source
    ]
    assert _items(db, fast) == expected
    assert _items(db, slow) == expected
    assert (
        task_counters(db, fast)
        == task_counters(db, slow)
        == ("completed", len(source), len(source), len(source), 0, 0)
    )
    # Bajty UTF-8 w MariaDB (nie tylko napis po stronie Pythona): długość w bajtach jak w źródle.
    lengths = dict(
        (r["remote_id"], r["n"])
        for r in db.query(
            "SELECT remote_id, OCTET_LENGTH(text_original) AS n FROM task_item WHERE id_task=%s", (fast,)
        )
    )
    assert lengths == {key: None if text is None else len(text.encode()) for key, text in source}


def test_first_sync_text_key_loads_like_pages(small_batches, db, pg_source, monkeypatch):
    """Klucz tekstowy przez COPY (ucieczki w kluczu, pozycje nadawane) = klucz tekstowy stronami."""
    settings = small_batches
    source_execute(pg_source, "CREATE TABLE articles (code text PRIMARY KEY, body text)")
    codes = ["a\tb", "back\\slash", 'quote"s', "zażółć", "😀", "Z", "a", "line\nbreak"] + [
        f"k{i:03d}" for i in range(40)
    ]
    for i, code in enumerate(codes):
        source_execute(pg_source, "INSERT INTO articles VALUES (%s, %s)", (code, f"tekst {i}\\x"))
    connection = add_connection(db, pg_source)
    fast, slow = add_task(db, connection), add_task(db, connection)
    assert sync.sync_task(settings, fast)["read_mode"] == "copy"
    with monkeypatch.context() as patch:
        _text_path(patch)
        sync.sync_task(settings, slow)
    assert _items(db, fast) == _items(db, slow)
    assert {row[0] for row in _items(db, fast)} == {encode_key(code) for code in codes}
    assert task_counters(db, fast) == task_counters(db, slow)


@pytest.mark.parametrize("key_column", ["grp", "tag"])
def test_first_sync_duplicate_key_is_an_error(small_batches, db, pg_source, key_column):
    """Powtórzony klucz (task.key_column nieunikalne) w pierwszej synchronizacji: błąd zadania jak w skanie.

    ``grp``: klucz całkowity (szybka ścieżka COPY), ``tag``: tekstowy (klucz JSON). Powtórzenia
    przechodzą przez granice partii (COMMIT_ROWS=20, po 10 wierszy na klucz).
    """
    source_execute(
        pg_source,
        "CREATE TABLE articles (id int PRIMARY KEY, grp int NOT NULL, tag text NOT NULL, body text)",
    )
    for i in range(30):
        source_execute(
            pg_source, "INSERT INTO articles VALUES (%s, %s, %s, %s)", (i, i // 10, f"g{i // 10}", f"t{i}")
        )
    connection = add_connection(db, pg_source)
    id_task = add_task(db, connection, key_column=key_column)
    with pytest.raises(Exception, match="więcej niż raz"):
        sync.sync_task(small_batches, id_task)
    row = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert row["status"] == "error" and "więcej niż raz" in row["error_log"]
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,)) == 0


def test_failed_later_writer_does_not_leave_the_oldest_waiting_on_its_locks(settings, db):
    """Późniejsza partia pada (klucz powtórzony) i trzyma blokadę, na którą czeka najstarsza.

    Bez wycofania jej od razu wątek główny czekałby na najstarszą partię, a ta na blokadę -
    do ``innodb_lock_wait_timeout`` (tu 20 s), i run kończyłby się błędem 1205 zamiast 1062.
    """
    import pymysql

    from lib.db_local import connect_local
    from lib.sync.initial_load import Chunk, load_chunks

    db.execute("CREATE TABLE scratch (id INT PRIMARY KEY, body TEXT)")
    oldest = Chunk(
        [b"INSERT INTO scratch (id, body) SELECT 2, 'a' FROM (SELECT SLEEP(0.5)) AS s"], 1, 2, "[2]", 2, 2
    )
    later = Chunk(
        [
            b"INSERT INTO scratch (id, body) VALUES (2, 'b')",
            b"INSERT INTO scratch (id, body) VALUES (2, 'c')",
        ],
        2,
        3,
        "[3]",
        3,
        3,
    )
    writers = [connect_local(settings) for _ in range(2)]
    for writer in writers:
        writer.execute("SET SESSION innodb_lock_wait_timeout=20")
        writer.commit()

    def commit(writer, _chunk):
        writer.commit()
        return None

    started = time.monotonic()
    try:
        with pytest.raises(pymysql.err.IntegrityError) as info:
            load_chunks(iter([oldest, later]), writers, commit)
    finally:
        for writer in writers:
            writer.close()
    assert info.value.args[0] == 1062
    assert time.monotonic() - started < 10
    assert db.query_value("SELECT COUNT(*) FROM scratch") == 0


def test_resync_source_hashes_match_text_path(small_batches, db, any_source, monkeypatch):
    """Resync z hashami źródła = resync ze stronami tekstów: pozycje i liczniki, bez czytania tekstów bez zmian."""
    settings = small_batches
    create_text_table(any_source, rows=_rows(any_source))
    connection = add_connection(db, any_source)
    fast, slow = add_task(db, connection), add_task(db, connection)
    sync.sync_task(settings, fast)
    with monkeypatch.context() as patch:
        _text_path(patch)
        sync.sync_task(settings, slow)
    hashes = True  # SQLite też: funkcja ailexia_sha256 zarejestrowana na połączeniu
    # PostgreSQL z kluczem całkowitym: odciski stron keyset liczone przez źródło; MariaDB i SQLite:
    # odciski zakresów kluczy wyznaczonych z porządku kopii lokalnej.
    mode = {"pgsql": "fingerprints", "mysql": "ranges", "sqlite": "ranges"}[any_source["db_type"]]

    quiet = sync.sync_task(settings, fast)
    assert quiet["read_mode"] == mode
    assert quiet["unchanged"] == quiet["fetched"] and quiet["updated"] == 0
    if hashes:
        assert quiet["texts_read"] == 0

    expected = _change(any_source)
    stats = sync.sync_task(settings, fast)
    with monkeypatch.context() as patch:
        _text_path(patch)
        slow_stats = sync.sync_task(settings, slow)
    assert stats["read_mode"] == mode and slow_stats["read_mode"] == "pages"
    assert {k: stats[k] for k in expected} == {k: slow_stats[k] for k in expected} == expected
    if hashes:
        # Teksty tylko wierszy nowych i zmienionych (NULL znany bez czytania).
        assert stats["texts_read"] <= expected["updated"] + expected["new"]
    assert _items(db, fast) == _items(db, slow)
    assert task_counters(db, fast) == task_counters(db, slow)
    # Zmiana tylko wielkości liter i tylko spacji na końcu jest wykryta mimo sortowania _ci.
    changed = {
        r["remote_id"]: r["text_original"]
        for r in db.query(
            "SELECT remote_id, text_original FROM task_item WHERE id_task=%s AND is_changed=1", (fast,)
        )
    }
    assert changed[11] == "Apple" and changed[12] == "trailing" and changed[2] is None and changed[1] == ""


def test_source_hash_unusable_falls_back_to_texts(small_batches, db, pg_source):
    """Metoda hasha, której źródło nie ma (sha1 w PostgreSQL) i char(n): resync czyta teksty, wynik dokładny."""
    settings = small_batches
    source_execute(pg_source, "CREATE TABLE articles (id int PRIMARY KEY, body text, code char(6))")
    for i in range(20):
        source_execute(pg_source, "INSERT INTO articles VALUES (%s, %s, %s)", (i, f"tekst {i}", f"c{i}"))
    connection = add_connection(db, pg_source)
    sha1 = add_task(db, connection, hash_method="sha1")
    padded = add_task(db, connection, column="code")
    sync.sync_task(settings, sha1)
    sync.sync_task(settings, padded)
    source_execute(pg_source, "UPDATE articles SET body='inny', code='c5 x' WHERE id=5")
    stats = sync.sync_task(settings, sha1)
    assert stats["read_mode"] == "pages" and stats["updated"] == 1
    assert db.query_value(
        "SELECT original_hash FROM task_item WHERE id_task=%s AND remote_id=5", (sha1,)
    ) == compute_hash("inny", "sha1")
    stats = sync.sync_task(settings, padded)
    assert stats["read_mode"] == "pages" and stats["updated"] == 1
    assert (
        db.query_value("SELECT text_original FROM task_item WHERE id_task=%s AND remote_id=5", (padded,))
        == "c5 x  "
    )


def test_page_fingerprint_and_hash_range_on_postgres(settings, pg_source):
    """Odcisk strony z PostgreSQL = odcisk liczony w Pythonie; zakres (po, ostatni] czytany kilkoma stronami."""
    from lib.db_utils import hash_function
    from lib.sync.merge import _page_fingerprint, _prepare_page

    create_text_table(pg_source, rows=[(i, None if i == 4 else f"tekst {i} 😀") for i in range(1, 51)])
    rconn = db_remote.connect(pg_source, settings)
    try:
        target = db_remote.resolve_target(rconn, "articles", "body")
        hash_sql = db_remote.source_hash_sql(rconn, target, "sha256")
        assert db_remote.can_fingerprint(rconn, target)
        pages = list(db_remote.iter_page_fingerprints(rconn, target, None, 20, hash_sql))
        assert [(after, count, last) for after, count, last, _fp in pages] == [
            (None, 20, 20),
            (20, 20, 40),
            (40, 10, 50),
        ]
        texts = db_remote.fetch_page(rconn, target, 20, 20)
        rows = _prepare_page(texts, hash_function("sha256"), True)
        assert pages[1][3] == _page_fingerprint(rows)
        ranged = db_remote.fetch_hash_range(rconn, target, 3, 30, 7, hash_sql)
        assert [key for key, _digest in ranged] == list(range(4, 31))
        assert ranged[0][1] is None and ranged[1][1] == compute_hash("tekst 5 😀")
    finally:
        db_remote.close(rconn)


def _prefix_state(db, id_task: int) -> tuple[int, int, int]:
    """(pozycje, records_new zadania, największy source_ord) - zatwierdzone partie to początek źródła."""
    items = db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,))
    task = db.query_one("SELECT records_new, scan_ord FROM task WHERE id_task=%s", (id_task,))
    top = db.query_value("SELECT MAX(source_ord) FROM task_item WHERE id_task=%s", (id_task,))
    assert top == task["scan_ord"] or (items == 0 and task["scan_ord"] is None)
    return items, task["records_new"], top


def test_parallel_writers_commit_a_prefix_on_error(small_batches, db, pg_source):
    """Dwóch pisarzy: błąd w późniejszej partii (powtórzony klucz) zostawia zatwierdzony początek źródła."""
    settings = small_batches.updated(SYNC_WRITERS=2)
    source_execute(pg_source, "CREATE TABLE items (id int PRIMARY KEY, body text)")
    rows = [(i, f"tekst {i}") for i in range(1, 131)]
    source_execute(pg_source, "INSERT INTO items SELECT i, 'tekst ' || i FROM generate_series(1, 130) i")
    # Klucz z duplikatem w 6. partii (COMMIT_ROWS=20): wiersze 111 i 112 dostają ten sam kod.
    source_execute(pg_source, "ALTER TABLE items ADD COLUMN code text")
    source_execute(
        pg_source, "UPDATE items SET code = lpad(CASE WHEN id = 112 THEN 111 ELSE id END::text, 4, '0')"
    )
    source_execute(pg_source, "ALTER TABLE items ALTER COLUMN code SET NOT NULL")
    connection = add_connection(db, pg_source)
    id_task = add_task(db, connection, "items", "body", key_column="code")
    with pytest.raises(Exception):  # noqa: B017 - treść sprawdza asercja na wierszu zadania
        sync.sync_task(settings, id_task)
    row = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert row["status"] == "error" and "task.key_column" in row["error_log"]
    items, new, _top = _prefix_state(db, id_task)
    assert items == new and items % 20 == 0 and 0 < items <= 100
    stored = [
        r["text_original"]
        for r in db.query(
            "SELECT text_original FROM task_item WHERE id_task=%s ORDER BY source_ord", (id_task,)
        )
    ]
    assert stored == [text for _id, text in rows[:items]]


def test_parallel_writers_pause_and_resume_to_the_same_state(small_batches, db, pg_source, monkeypatch):
    """Pauza po pierwszej zatwierdzonej partii: partia drugiego pisarza wycofana, wznowienie = czysta synchronizacja."""
    settings = small_batches.updated(SYNC_WRITERS=2)
    create_text_table(pg_source, rows=[(i, f"wiersz {i} ż 😀") for i in range(1, 201)])
    connection = add_connection(db, pg_source)
    paused, clean = add_task(db, connection), add_task(db, connection)
    calls = []

    def stop_after_first() -> str | None:
        calls.append(1)
        return "manual"

    stats = sync.sync_task(settings, paused, should_stop=stop_after_first)
    assert stats["stopped"] == "manual" and len(calls) == 1
    assert _prefix_state(db, paused) == (20, 20, 20)
    sync.sync_task(settings, paused)
    sync.sync_task(settings, clean)
    assert _items(db, paused) == _items(db, clean)
    assert task_counters(db, paused) == task_counters(db, clean) == ("completed", 200, 200, 200, 0, 0)


def test_range_fingerprint_equals_the_source_page_and_next_fingerprint(settings, db, pg_source):
    """Odcisk zakresu pozycji = odcisk strony PostgreSQL = ``next_fingerprint``; usunięta pozycja go zmienia."""
    from lib import task_item

    create_text_table(pg_source, rows=[(i, None if i == 24 else f"tekst {i} 😀") for i in range(1, 51)])
    id_task = add_task(db, add_connection(db, pg_source))
    sync.sync_task(settings, id_task)
    rconn = db_remote.connect(pg_source, settings)
    try:
        target = db_remote.resolve_target(rconn, "articles", "body")
        hash_sql = db_remote.source_hash_sql(rconn, target, "sha256")
        pages = list(db_remote.iter_page_fingerprints(rconn, target, None, 20, hash_sql))
    finally:
        db_remote.close(rconn)
    after, count, last, source_fp = pages[1]
    assert task_item.range_fingerprint(db, id_task, after, last, False) == (count, source_fp, last)
    assert task_item.next_fingerprint(db, id_task, after, count, False) == (count, source_fp, last)
    # Klucz główny w odwrotnej kolejności niż źródło: odcisk zakresu (bez ORDER BY w GROUP_CONCAT)
    # nadal idzie w porządku pozycji, nie w porządku wstawienia.
    db.execute("UPDATE task_item SET id_task_item=1000000000-id_task_item WHERE id_task=%s", (id_task,))
    db.commit()
    assert task_item.range_fingerprint(db, id_task, None, 10**9, False) == task_item.next_fingerprint(
        db, id_task, None, 50, False
    )
    assert task_item.range_fingerprint(db, id_task, after, last, False) == (count, source_fp, last)
    db.execute("UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND remote_id=30", (id_task,))
    assert task_item.range_fingerprint(db, id_task, after, last, False)[:2] != (count, source_fp)


def test_pages_equal_by_fingerprint_share_one_commit(small_batches, db, pg_source, monkeypatch):
    """Strony równe po odcisku nic nie zapisują: resync bez zmian nie zatwierdza partii co stronę.

    Strona odcisku to 60 wierszy (``BATCH_SIZE`` 3 x 20), ``COMMIT_ROWS`` 20: dawniej każda z 10
    stron dawała commit. Zmiana w środku tabeli nadal zapisuje się w partiach po ``COMMIT_ROWS``
    porównanych wierszy, a stan końcowy jest ten sam co po czystej synchronizacji.
    """
    settings = small_batches
    create_text_table(pg_source, rows=[(i, f"tekst {i}") for i in range(1, 601)])
    connection = add_connection(db, pg_source)
    id_task = add_task(db, connection)
    sync.sync_task(settings, id_task)
    writes = []
    real = merge._write_batch

    def counted(scan, final, *args, **kwargs):
        writes.append(final)
        return real(scan, final, *args, **kwargs)

    monkeypatch.setattr(merge, "_write_batch", counted)
    quiet = sync.sync_task(settings, id_task)
    assert quiet["read_mode"] == "fingerprints" and quiet["unchanged"] == 600
    assert writes == [True], writes  # tylko końcowy zapis pozycji i liczników

    writes.clear()
    source_execute(pg_source, "UPDATE articles SET body = body || ' zmiana' WHERE id BETWEEN 250 AND 320")
    stats = sync.sync_task(settings, id_task)
    assert stats["updated"] == 71 and stats["read_mode"] == "fingerprints"
    assert len(writes) >= 2 and writes[-1] is True  # strony różne: partie po COMMIT_ROWS porównanych wierszy
    clean = add_task(db, connection)
    monkeypatch.undo()
    sync.sync_task(settings, clean)
    # Te same pozycje co po czystej synchronizacji (bez is_changed: zmienione są oznaczone).
    assert [row[:5] + row[7:] for row in _items(db, id_task)] == [
        row[:5] + row[7:] for row in _items(db, clean)
    ]


def _fingerprints(pg_source, settings, after, limit, spare_count, monkeypatch=None, hook=None):
    """Odciski stron tabeli ``articles`` z ``spare_count`` dodatkowymi połączeniami."""
    rconns = [db_remote.connect(pg_source, settings) for _ in range(1 + spare_count)]
    try:
        target = db_remote.resolve_target(rconns[0], "articles", "body")
        hash_sql = db_remote.source_hash_sql(rconns[0], target, "sha256")
        if hook is not None:
            real = db_remote.reads.fetch_page_starts

            def planned(*args):
                starts = real(*args)
                hook(starts)
                return starts

            monkeypatch.setattr(db_remote.reads, "fetch_page_starts", planned)
        return list(db_remote.iter_page_fingerprints(rconns[0], target, after, limit, hash_sql, rconns[1:]))
    finally:
        for rconn in rconns:
            db_remote.close(rconn)


def test_parallel_page_fingerprints_equal_the_sequential_ones(settings, pg_source, monkeypatch):
    """Dwa i trzy połączenia dają te same strony co jedno (luki w kluczach, NULL, pełna ostatnia strona)."""
    monkeypatch.setattr(db_remote.reads, "PLANNED_PAGES", 3)  # kilka podziałów na jednej tabeli
    keys = [k for k in range(1, 400) if k % 7 and k % 11]
    create_text_table(pg_source, rows=[(k, None if k % 13 == 0 else f"tekst {k} ż😀") for k in keys])
    for limit in (10, 17, len(keys), len(keys) + 5):
        sequential = _fingerprints(pg_source, settings, None, limit, 0)
        assert sum(count for _after, count, _last, _fp in sequential) == len(keys)
        for spare in (1, 2):
            assert _fingerprints(pg_source, settings, None, limit, spare) == sequential
        middle = sequential[len(sequential) // 2][0]
        assert _fingerprints(pg_source, settings, middle, limit, 1) == _fingerprints(
            pg_source, settings, middle, limit, 0
        )
    # Pełne strony do samego końca (liczba wierszy podzielna przez limit): pusta strona za nimi nie jest oddawana.
    source_execute(
        pg_source,
        "DELETE FROM articles WHERE id IN (SELECT id FROM articles ORDER BY id LIMIT %s)",
        (len(keys) % 10,),
    )
    pages = _fingerprints(pg_source, settings, None, 10, 1)
    assert pages == _fingerprints(pg_source, settings, None, 10, 0)
    assert [count for _after, count, _last, _fp in pages] == [10] * (len(keys) // 10)


def test_parallel_page_fingerprints_replan_when_the_source_changes(settings, pg_source, monkeypatch):
    """Wiersze dopisane i usunięte między podziałem na strony a odciskami: strony dalej się stykają.

    Po każdym podziale źródło zmienia się naprawdę (inne połączenie), więc zaplanowane granice
    stron są nieaktualne; oddany ciąg musi być ciągiem stron keyset bieżącej tabeli.
    """
    monkeypatch.setattr(db_remote.reads, "PLANNED_PAGES", 4)
    create_text_table(pg_source, rows=[(k, f"tekst {k}") for k in range(10, 1000, 10)])
    plans = []

    def change_source(starts: list) -> None:
        # Nowy wiersz w drugiej zaplanowanej stronie: jej ostatni klucz nie jest już początkiem trzeciej.
        plans.append(starts)
        if len(starts) >= 2:
            source_execute(pg_source, "INSERT INTO articles (id, body) VALUES (%s, 'nowy')", (starts[0] + 5,))

    pages = _fingerprints(pg_source, settings, None, 8, 1, monkeypatch, change_source)
    after = None
    for page_after, count, last, _fp in pages:
        assert page_after == after and 0 < count <= 8
        after = last
    # Każdy podział został unieważniony po drugiej stronie, więc planów jest więcej niż bez zmian (13 stron / 4).
    assert len(plans) > 6
    # Odciski bez zmian w tle: takie same jak po kolei na tej samej (już zmienionej) tabeli.
    monkeypatch.undo()
    assert _fingerprints(pg_source, settings, None, 8, 1) == _fingerprints(pg_source, settings, None, 8, 0)


def test_parallel_writers_deadlock_at_the_task_lock_rewrites_the_part(
    small_batches, db, pg_source, monkeypatch
):
    """Zakleszczenie na blokadzie zadania przy zatwierdzaniu partii pisarza: ponowienie wstawia ją od nowa.

    Baza jest prawdziwa; zmyślony jest tylko jeden błąd 1213 (zakleszczenie wymaga dwóch transakcji
    w złym momencie), a ``retry_on_deadlock`` wycofuje transakcję pisarza jak po prawdziwym.
    """
    import pymysql

    settings = small_batches.updated(SYNC_WRITERS=2)
    create_text_table(pg_source, rows=[(i, f"wiersz {i}") for i in range(1, 101)])
    id_task = add_task(db, add_connection(db, pg_source))
    real_lock = merge.lock_task_row
    calls = []

    def deadlock_once(conn, task):
        calls.append(task)
        if len(calls) == 1:  # zatwierdzanie pierwszej partii pierwszego pisarza
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
        return real_lock(conn, task)

    monkeypatch.setattr(merge, "lock_task_row", deadlock_once)
    stats = sync.sync_task(settings, id_task)
    assert len(calls) > 1 and stats["verify"]["outcome"] == "completed"
    assert _prefix_state(db, id_task) == (100, 100, 100)
