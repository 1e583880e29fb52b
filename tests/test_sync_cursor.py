"""Tryb kursora resyncu (``task.cursor_column``, ``lib/sync/cursor.py``) na prawdziwych źródłach.

Resync czyta tylko wiersze z kursorem ``>=`` ostatnia wartość minus ``SYNC_CURSOR_LAG_S``; usunięte
znajduje odciskami samych kluczy. Wynik ma być taki jak pełne porównanie tekstów, gdy każdy piszący
ustawia kursor - i (udokumentowane) nie widzi zmiany tekstu, która kursora nie ruszyła.
"""

import pytest

from lib import db_remote, sync
from tests.helpers import add_connection, add_task, source_execute, source_executemany

ROWS = 300
STAMP = {
    "pgsql": ("TIMESTAMP", "now()", "now() - interval '30 seconds'"),
    "mysql": ("DATETIME(6)", "NOW(6)", "NOW(6) - INTERVAL 30 SECOND"),
    "sqlite": (
        "TEXT",
        "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        "strftime('%Y-%m-%d %H:%M:%f', 'now', '-30 seconds')",
    ),
}


@pytest.fixture(params=["pg_source", "mysql_source", "sqlite_source"])
def cursor_source(request, settings):
    settings = settings.updated(BATCH_SIZE=5)
    settings = settings.updated(COMMIT_ROWS=5)
    source = request.getfixturevalue(request.param)
    kind, _now, _late = STAMP[source["db_type"]]
    source_execute(source, f"CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT, updated_at {kind})")
    # Znaczniki czasu rozłożone (co godzinę): po synchronizacji kursor to znacznik ostatniego wiersza.
    source_executemany(
        source,
        "INSERT INTO articles (id, body, updated_at) VALUES (%s, %s, %s)",
        [
            (10 * i, f"wiersz {i}", f"2025-01-{1 + i // 24:02d} {i % 24:02d}:00:00")
            for i in range(1, ROWS + 1)
        ],
    )
    return source


def _items(db, id_task: int) -> list[tuple]:
    rows = db.query(
        "SELECT remote_key, text_original, original_hash, status, is_changed, deleted_at IS NOT NULL AS d "
        "FROM task_item WHERE id_task=%s ORDER BY remote_id",
        (id_task,),
    )
    return [tuple(r.values()) for r in rows]


def _counters(db, id_task: int) -> tuple:
    row = db.query_one(
        "SELECT status, records_fetched, records_new, records_updated, records_deleted FROM task WHERE id_task=%s",
        (id_task,),
    )
    return tuple(row.values())


def test_cursor_resync_reads_changed_rows_and_finds_deletes(settings, db, cursor_source):
    """Zmiany z kursorem (też spóźniona o 30 s < SYNC_CURSOR_LAG_S), usunięcia na końcach i w środku, nowe."""
    source = cursor_source
    _kind, now, late = STAMP[source["db_type"]]
    connection = add_connection(db, source)
    fast = add_task(db, connection, cursor_column="updated_at")
    slow = add_task(db, connection)
    for id_task in (fast, slow):
        sync.sync_task(settings, id_task)
    assert db.query_value("SELECT cursor_value FROM task WHERE id_task=%s", (fast,)).startswith("2025-01-13")

    for key, text in ((20, "Wiersz 2"), (30, None), (40, "")):
        source_execute(source, f"UPDATE articles SET body=%s, updated_at={now} WHERE id=%s", (text, key))
    source_execute(source, f"UPDATE articles SET body='spóźniony', updated_at={late} WHERE id=1500")
    source_execute(source, "DELETE FROM articles WHERE id IN (10, 1000, 3000)")
    source_execute(source, f"INSERT INTO articles VALUES (5, 'nowy', {now}), (1005, 'nowy 2', {now})")

    stats = sync.sync_task(settings, fast)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db_remote, "source_hash_sql", lambda *args: None)
        sync.sync_task(settings, slow)
    assert stats["read_mode"] == "cursor"
    assert (stats["updated"], stats["deleted"], stats["new"]) == (4, 3, 2)
    # Teksty tylko wierszy z kursorem (zmienione i nowe), nie całej tabeli.
    assert stats["texts_read"] == 6
    assert _items(db, fast) == _items(db, slow)
    assert _counters(db, fast) == _counters(db, slow)

    quiet = sync.sync_task(settings, fast)
    assert quiet["read_mode"] == "cursor" and quiet["updated"] == quiet["new"] == quiet["deleted"] == 0


def test_cursor_mode_misses_a_change_that_did_not_move_the_cursor(settings, db, cursor_source):
    """Granica dokładności (docs/sync-resync.md): zmiana tekstu bez zmiany kursora zostaje niewidoczna."""
    source = cursor_source
    connection = add_connection(db, source)
    fast = add_task(db, connection, cursor_column="updated_at")
    sync.sync_task(settings, fast)
    source_execute(source, "UPDATE articles SET body='po cichu' WHERE id=50")
    stats = sync.sync_task(settings, fast)
    assert stats["updated"] == 0
    assert (
        db.query_value("SELECT text_original FROM task_item WHERE id_task=%s AND remote_id=50", (fast,))
        == "wiersz 5"
    )
    # Zdjęcie kursora wraca do pełnego porównania, które zmianę widzi.
    db.execute("UPDATE task SET cursor_column=NULL WHERE id_task=%s", (fast,))
    db.commit()
    assert sync.sync_task(settings, fast)["updated"] == 1


def test_unknown_cursor_column_is_a_task_error(settings, db, pg_source):
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT)")
    connection = add_connection(db, pg_source)
    id_task = add_task(db, connection, cursor_column="nie_ma")
    with pytest.raises(Exception, match="cursor_column"):
        sync.sync_task(settings, id_task)
