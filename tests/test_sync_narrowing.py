"""Zawężanie różnic resyncu (``lib/sync/leaves.py``): każda droga daje to, co pełne porównanie tekstów.

Dwa zadania nad tym samym prawdziwym źródłem (PostgreSQL z kluczem BIGINT i UUID, MariaDB, SQLite):
jedno czyta szybką drogą (odciski stron / zakresów, podział do części, odczyt tylko części, które się
różnią), drugie - tekstami (``source_hash_sql`` wyłączone). Po każdej zmianie źródła pozycje (bajt
w bajt), hashe, statusy, znaczniki usunięcia i liczniki operacji muszą być równe. Podział jest
zmniejszony (``SPLIT``, ``LEAF_ROWS``, ``BATCH_SIZE``), żeby na kilkuset wierszach schodził na oba
poziomy.
"""

import uuid

import pytest

from lib import db_remote
from lib.sync import engine as sync
from lib.sync import leaves
from tests.helpers import (
    add_connection,
    add_task,
    source_execute,
    source_executemany,
    source_query,
    task_counters,
)
from tests.reliability.test_crash_matrix import KILLED, duplicates, run_script

ROWS = 400
# Teksty brzegowe w środku tabeli (klucze 10 * i): NULL, '', wielkość liter, spacje na końcu, 4-bajtowe.
SPECIAL = {30: None, 40: "", 50: "apple", 60: "trailing  ", 70: "emoji 😀 𝄞", 80: "a\tb\nc\\N"}


def _text(i: int) -> str | None:
    return SPECIAL.get(10 * i, f"wiersz {i}: zażółć gęślą jaźń")


@pytest.fixture
def narrow(monkeypatch, settings):
    """Strona 100 pozycji, podział na 4 części, części do 3 pozycji czytane wierszami."""
    monkeypatch.setattr(leaves, "SPLIT", 4)
    monkeypatch.setattr(leaves, "LEAF_ROWS", 3)
    settings = settings.updated(BATCH_SIZE=5)
    settings = settings.updated(COMMIT_ROWS=5)
    return settings


def _create(source: dict, key: str) -> list:
    """Tabela ``articles``: klucz ``int`` (10, 20, ... - miejsce na wstawienia) albo ``uuid``; zwraca klucze."""
    kind = source["db_type"]
    if key == "uuid":
        keys = sorted(str(uuid.UUID(int=(i * 7919) << 64 | i, version=4)) for i in range(1, ROWS + 1))
        source_execute(source, "CREATE TABLE articles (id uuid PRIMARY KEY, body TEXT)")
    else:
        keys = [10 * i for i in range(1, ROWS + 1)]
        collate = " COLLATE utf8mb4_general_ci" if kind == "mysql" else ""
        source_execute(source, f"CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT{collate})")
    source_executemany(
        source,
        "INSERT INTO articles (id, body) VALUES (%s, %s)",
        [(k, _text(i + 1)) for i, k in enumerate(keys)],
    )
    return keys


def _items(db, id_task: int) -> list[tuple]:
    rows = db.query(
        "SELECT remote_key, remote_id, text_original, original_hash, status, is_changed, "
        "deleted_at IS NOT NULL AS deleted FROM task_item WHERE id_task=%s ORDER BY remote_key",
        (id_task,),
    )
    return [tuple(r.values()) for r in rows]


def _in_source_order(db, source: dict, id_task: int) -> bool:
    """Aktywne pozycje po ``source_ord`` mają klucze w porządku źródła (numeracja zgodna ze źródłem)."""
    local = [
        r["remote_key"]
        for r in db.query(
            "SELECT remote_key FROM task_item WHERE id_task=%s AND deleted_at IS NULL ORDER BY source_ord",
            (id_task,),
        )
    ]
    return local == [
        db_remote.encode_key(str(k) if not isinstance(k, int) else k)
        for (k,) in source_query(source, "SELECT id FROM articles ORDER BY id")
    ]


def _sync_pair(settings, db, fast: int, slow: int, monkeypatch) -> tuple[dict, dict]:
    stats = sync.sync_task(settings, fast)
    with monkeypatch.context() as patch:
        patch.setattr(db_remote, "source_hash_sql", lambda *args: None)
        slow_stats = sync.sync_task(settings, slow)
    assert slow_stats["read_mode"] in ("pages", "copy")
    assert _items(db, fast) == _items(db, slow)
    assert task_counters(db, fast) == task_counters(db, slow)
    return stats, slow_stats


def _sparse_change(source: dict, keys: list) -> dict[str, int]:
    """Zmiany rzadkie: brzegowe teksty, usunięcia na obu końcach tabeli i zakresu, nowe na końcach i w środku."""
    updates = [
        (keys[2], ""),
        (keys[3], None),
        (keys[4], "Apple"),
        (keys[5], "trailing"),
        (keys[6], "emoji 😃 𝄞"),
    ]
    updates += [(keys[150], "zmieniony 150")]
    for key, text in updates:
        source_execute(source, "UPDATE articles SET body=%s WHERE id=%s", (text, key))
    gone = [keys[0], keys[-1], keys[99], keys[100], keys[250]]
    for key in gone:
        source_execute(source, "DELETE FROM articles WHERE id=%s", (key,))
    if isinstance(keys[0], int):
        new = [(5, "przed pierwszym"), (keys[-1] + 5, "za ostatnim"), (keys[200] + 5, None)]
    else:
        new = [
            ("00000000-0000-4000-8000-000000000000", "przed pierwszym"),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", "za ostatnim"),
            (keys[200][:-1] + ("0" if keys[200][-1] != "0" else "1"), None),
        ]
    for key, text in new:
        source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (key, text))
    return {"updated": len(updates), "deleted": len(gone), "new": len(new)}


CASES = [("pg_source", "int"), ("pg_source", "uuid"), ("mysql_source", "int"), ("sqlite_source", "int")]


@pytest.mark.parametrize(("source_name", "key"), CASES, ids=[f"{s.split('_')[0]}-{k}" for s, k in CASES])
def test_narrowed_resync_equals_text_compare(narrow, db, monkeypatch, request, source_name, key):
    """Bez zmian, rzadkie zmiany (oba poziomy podziału) i gęste zmiany: pozycje i liczniki jak przy tekstach."""
    source = request.getfixturevalue(source_name)
    keys = _create(source, key)
    connection = add_connection(db, source)
    fast, slow = add_task(db, connection), add_task(db, connection)
    _sync_pair(narrow, db, fast, slow, monkeypatch)
    expected_mode = "fingerprints" if source["db_type"] == "pgsql" and key == "int" else "ranges"

    quiet, _ = _sync_pair(narrow, db, fast, slow, monkeypatch)
    assert quiet["read_mode"] == expected_mode
    assert quiet["unchanged"] == quiet["fetched"] == ROWS
    assert quiet["rows_compared"] == 0 and quiet["texts_read"] == 0

    expected = _sparse_change(source, keys)
    stats, _ = _sync_pair(narrow, db, fast, slow, monkeypatch)
    assert {k: stats[k] for k in expected} == expected
    assert stats["read_mode"] == expected_mode
    # Porównane wiersze i teksty rosną ze zmianami, nie z tabelą.
    assert 0 < stats["rows_compared"] < ROWS // 2
    assert stats["texts_read"] <= expected["updated"] + expected["new"]
    assert _in_source_order(db, source, fast)
    changed = {
        r["text_original"]
        for r in db.query("SELECT text_original FROM task_item WHERE id_task=%s AND is_changed=1", (fast,))
    }
    assert {"Apple", "trailing", "", None} <= changed

    # Gęste zmiany (co trzeci wiersz): strony czytane wierszami (klucz, hash), wynik ten sam.
    source_executemany(
        source, "UPDATE articles SET body=%s WHERE id=%s", [(f"gęsto {k}", k) for k in keys[1::3]]
    )
    dense, _ = _sync_pair(narrow, db, fast, slow, monkeypatch)
    assert dense["updated"] > 100
    assert _in_source_order(db, source, fast)


def test_crash_in_split_resync_resumes_to_identical_state(local_env, settings, db, mysql_source):
    """SIGKILL w transakcji partii w środku zawężanego resyncu (MariaDB, zakresy); ponowny run = run bez przerwy."""
    keys = _create(mysql_source, "int")
    connection = add_connection(db, mysql_source)
    victim, twin = add_task(db, connection), add_task(db, connection)
    cfg = settings.updated(BATCH_SIZE=5, COMMIT_ROWS=5)
    env = {**local_env, "BATCH_SIZE": "5", "COMMIT_ROWS": "5"}
    for id_task in (victim, twin):
        sync.sync_task(cfg, id_task)
    for i in range(3, ROWS, 37):
        source_execute(mysql_source, "UPDATE articles SET body=CONCAT(body, ' v2') WHERE id=%s", (keys[i],))
    for i in range(10, ROWS, 53):
        source_execute(mysql_source, "DELETE FROM articles WHERE id=%s", (keys[i],))
    source_execute(
        mysql_source, "INSERT INTO articles (id, body) VALUES (15, 'nowy'), (2005, NULL), (9999, 'koniec')"
    )

    killed = run_script(env, "sync.py", "--id_task", str(victim), fault="sync.update:3")
    assert killed.returncode == KILLED, killed.stdout + killed.stderr
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (victim,)) == "in_progress"
    assert duplicates(db, victim) == 0
    rerun = run_script(env, "sync.py", "--id_task", str(victim))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    sync.sync_task(cfg, twin)
    assert _items(db, victim) == _items(db, twin)
    assert task_counters(db, victim) == task_counters(db, twin)
    updated, deleted = set(range(3, ROWS, 37)), set(range(10, ROWS, 53))
    assert task_counters(db, victim)[3:] == (3, len(updated - deleted), len(deleted))
