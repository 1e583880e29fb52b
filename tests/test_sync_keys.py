"""Dowolny klucz źródła (UUID, tekst, złożony, ``key_column`` bez klucza głównego) na prawdziwych bazach.

Każdy przypadek: pierwsza synchronizacja, potem resync po zmianach, usunięciach i wstawieniach
kluczy, które w porządku źródła wypadają przed, między i za istniejącymi; dokładne liczniki,
pozycje po ``remote_key`` bajt po bajcie równe źródłu, usunięte pozycje z ``deleted_at``; na końcu
akceptacja części pozycji i eksport: zmieniają się dokładnie te wiersze, a wiersz zmieniony
w międzyczasie jest konfliktem. Oczekiwany ``remote_key`` liczy test sam (bez kodu produkcyjnego).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest

from lib.export import run as export
from lib.review.decisions import set_decision
from lib.sync import engine as sync
from lib.sync import merge
from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, source_execute, source_executemany, source_query

FAST = {"BATCH_SIZE": 3, "COMMIT_ROWS": 3}


def sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def expected_key(values: tuple, kinds: tuple[str, ...]) -> str:
    """``remote_key`` według specyfikacji: zwarty JSON, UUID małymi literami z myślnikami."""
    out: list[Any] = []
    for value, kind in zip(values, kinds, strict=True):
        if kind == "uuid":
            out.append(str(uuid.UUID(str(value))))
        elif kind == "int":
            out.append(int(value))
        else:
            out.append(value)
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def u(n: int) -> str:
    """UUID o zadanym numerze (kolejność bajtów = kolejność numerów), wielkimi literami jak z aplikacji."""
    return str(uuid.UUID(int=n)).upper()


# Przypadki: źródło, DDL, kolumny klucza i ich rodzaje, klucze początkowe, wstawiane (przed / między /
# za istniejącymi w porządku źródła), usuwane i zmieniane; ``key_column`` dla tabeli bez klucza.
CASES: dict[str, dict[str, Any]] = {
    "pg_uuid": {
        "source": "pg_source",
        "ddl": "CREATE TABLE items (id uuid PRIMARY KEY, body text)",
        "cols": ("id",),
        "kinds": ("uuid",),
        "initial": [(u(n << 96),) for n in range(10, 40, 2)],
        "inserted": [(u(1),), (u(21 << 96),), (u((1 << 128) - 1),)],
    },
    "pg_int_varchar": {
        "source": "pg_source",
        "ddl": "CREATE TABLE items (product_id int, lang varchar(8), body text, PRIMARY KEY (product_id, lang))",
        "cols": ("product_id", "lang"),
        "kinds": ("int", "text"),
        "initial": [(p, lang) for p in range(2, 20, 3) for lang in ("de", "pl")],
        "inserted": [(1, "pl"), (8, "en"), (8, "zz"), (99, "de")],
    },
    "pg_icu_text": {
        "source": "pg_source",
        "ddl": 'CREATE TABLE items (code text COLLATE "pl-x-icu" PRIMARY KEY, body text)',
        "cols": ("code",),
        "kinds": ("text",),
        "initial": [
            ("Apple",),
            ("banana",),
            ("Cherry",),
            ("ćma",),
            ("cma",),
            ("Łódź",),
            ("lody",),
            ("zebra",),
            ("źdźbło",),
            ("żaba",),
            ("e\u0301tude",),
            ("étude",),
            ("trail ",),
            ("trail",),
            ("Mąka",),
        ],
        "inserted": [("",), ("A",), ("czapla",), ("żółw",)],
    },
    "mysql_ci_varchar": {
        "source": "mysql_source",
        "ddl": (
            "CREATE TABLE items (code VARCHAR(64) COLLATE utf8mb4_general_ci PRIMARY KEY, body TEXT) "
            "CHARACTER SET utf8mb4"
        ),
        "cols": ("code",),
        "kinds": ("text",),
        "initial": [
            ("Apple",),
            ("banana",),
            ("Cherry",),
            ("delta",),
            ("Echo",),
            ("foxtrot",),
            ("Golf",),
            ("hotel",),
            ("India",),
            ("juliett",),
            ("Kilo",),
            ("trail ",),
            ("Zulu",),
            ("12",),
            ("9",),
        ],
        "inserted": [("",), ("apricot",), ("Charlie",), ("zzz",)],
    },
    "mysql_int_varchar": {
        "source": "mysql_source",
        "ddl": (
            "CREATE TABLE items (product_id INT, lang VARCHAR(8), body TEXT, PRIMARY KEY (product_id, lang)) "
            "CHARACTER SET utf8mb4"
        ),
        "cols": ("product_id", "lang"),
        "kinds": ("int", "text"),
        "initial": [(p, lang) for p in range(2, 20, 3) for lang in ("de", "PL")],
        "inserted": [(1, "pl-x"), (8, "en"), (8, "zz"), (99, "de")],
    },
    "sqlite_text_case": {
        "source": "sqlite_source",
        "ddl": "CREATE TABLE items (code TEXT PRIMARY KEY, body TEXT)",
        "cols": ("code",),
        "kinds": ("text",),
        "initial": [
            ("A",),
            ("a",),
            ("B",),
            ("b",),
            ("Apple",),
            ("apple",),
            ("C",),
            ("c",),
            ("zebra",),
            ("Łódź",),
            ("trail ",),
        ],
        "inserted": [("",), ("Ab",), ("ab",), ("żółw",)],
    },
    "sqlite_composite_without_rowid": {
        "source": "sqlite_source",
        "ddl": "CREATE TABLE items (a TEXT NOT NULL, b INTEGER NOT NULL, body TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID",
        "cols": ("a", "b"),
        "kinds": ("text", "int"),
        "initial": [(a, b) for a in ("x", "X", "y", "Y") for b in (1, 5, 9)],
        "inserted": [("W", 0), ("x", 3), ("X", 7), ("z", 1)],
    },
    "pg_no_pk_key_column": {
        "source": "pg_source",
        "ddl": "CREATE TABLE items (sku varchar(32) NOT NULL, body text)",
        "cols": ("sku",),
        "kinds": ("text",),
        "key_column": "sku",
        "initial": [(f"SKU-{n:03d}",) for n in range(10, 40, 2)],
        "inserted": [("SKU-000",), ("SKU-021",), ("SKU-999",)],
    },
}


def norm(case: dict, key: tuple) -> tuple:
    """Klucz tak, jak zwraca go źródło (UUID małymi literami)."""
    return tuple(
        str(uuid.UUID(v)) if kind == "uuid" else v for v, kind in zip(key, case["kinds"], strict=True)
    )


def body_for(key: tuple, version: int = 0) -> str:
    """Tekst wiersza: zależy od klucza (i wersji po zmianie w źródle)."""
    return f"Tekst {'/'.join(map(str, key))}: zażółć gęślą jaźń" + (f" (wersja {version})" if version else "")


def insert_rows(source: dict, case: dict, keys: list[tuple], version: int = 0) -> None:
    names = ", ".join(case["cols"])
    marks = ", ".join(["%s"] * (len(case["cols"]) + 1))
    source_executemany(
        source,
        f"INSERT INTO items ({names}, body) VALUES ({marks})",
        [(*k, body_for(k, version)) for k in keys],
    )


def where_key(case: dict) -> str:
    return " AND ".join(f"{c} = %s" for c in case["cols"])


def source_rows(source: dict, case: dict) -> list[tuple[tuple, str | None]]:
    """Wiersze źródła ``(klucz, tekst)`` w porządku źródła."""
    cols = ", ".join(case["cols"])
    rows = source_query(source, f"SELECT {cols}, body FROM items ORDER BY {cols}")
    width = len(case["cols"])
    return [(tuple(r[:width]), r[width]) for r in rows]


def local_items(db, id_task: int) -> dict[str, dict]:
    rows = db.query(
        "SELECT remote_key, remote_id, text_original, original_hash, deleted_at IS NULL AS live, id_task_item, "
        "source_ord, status FROM task_item WHERE id_task=%s",
        (id_task,),
    )
    return {r["remote_key"]: r for r in rows}


def counters(db, id_task: int) -> tuple:
    row = db.query_one(
        "SELECT status, records_new, records_updated, records_deleted FROM task WHERE id_task=%s", (id_task,)
    )
    return row["status"], row["records_new"], row["records_updated"], row["records_deleted"]


def assert_matches_source(db, id_task: int, source: dict, case: dict, gone: list[tuple]) -> None:
    """Pozycje = źródło bajt po bajcie (po ``remote_key``); usunięte zostają z ``deleted_at``;
    porządek pozycji (``source_ord``) zgodny z porządkiem źródła."""
    got = local_items(db, id_task)
    rows = source_rows(source, case)
    expected = {expected_key(k, case["kinds"]): text for k, text in rows}
    live = {key: r for key, r in got.items() if r["live"]}
    assert set(live) == set(expected)
    for key, text in expected.items():
        assert live[key]["text_original"] == text and live[key]["original_hash"] == sha(text), key
        assert live[key]["remote_id"] is None
    for key in gone:
        assert not got[expected_key(key, case["kinds"])]["live"]
    ordered = [expected_key(k, case["kinds"]) for k, _text in rows]
    assert sorted(ordered, key=lambda k: live[k]["source_ord"]) == ordered


@pytest.mark.parametrize("name", list(CASES))
def test_any_key_sync_resync_export(request, settings, db, name):
    case = CASES[name]
    source = request.getfixturevalue(case["source"])
    source_execute(source, case["ddl"])
    insert_rows(source, case, case["initial"])
    cfg = settings.updated(**FAST)
    id_task = add_task(db, add_connection(db, source), "items", "body", key_column=case.get("key_column"))

    sync.sync_task(cfg, id_task)
    assert counters(db, id_task) == ("completed", len(case["initial"]), 0, 0)
    assert_matches_source(db, id_task, source, case, [])

    # Zmiany: usunięte pierwszy, środkowy i ostatni wiersz (w porządku źródła), trzy zmienione teksty,
    # wstawione klucze przed, między i za istniejącymi.
    order = [k for k, _ in source_rows(source, case)]
    gone = [order[0], order[len(order) // 2], order[-1]]
    changed = [order[1], order[len(order) // 2 + 1], order[-2]]
    for key in gone:
        source_execute(source, f"DELETE FROM items WHERE {where_key(case)}", key)
    for key in changed:
        source_execute(
            source, f"UPDATE items SET body = %s WHERE {where_key(case)}", (body_for(key, 2), *key)
        )
    insert_rows(source, case, case["inserted"])
    after = [k for k, _ in source_rows(source, case)]
    positions = [after.index(norm(case, k)) for k in case["inserted"]]
    assert min(positions) == 0 and max(positions) == len(after) - 1
    assert any(0 < p < len(after) - 1 for p in positions)

    source_execute(source, "UPDATE items SET body = body")  # bez zmian treści
    sync.sync_task(cfg, id_task)
    assert counters(db, id_task) == ("completed", len(case["inserted"]), len(changed), len(gone))
    assert_matches_source(db, id_task, source, case, gone)

    # Resync bez zmian: nic nowego, nic zmienionego.
    sync.sync_task(cfg, id_task)
    assert counters(db, id_task) == ("completed", 0, 0, 0)

    # Eksport: trzy pozycje zaakceptowane, jedna z nich zmieniona w źródle w międzyczasie.
    got = local_items(db, id_task)
    untouched = [k for k in after if k not in changed and k not in [norm(case, i) for i in case["inserted"]]]
    picks = list(dict.fromkeys([0, len(untouched) // 2, len(untouched) - 1, 1, 2]))[:4]
    chosen = [untouched[i] for i in picks]
    for key in chosen:
        item = got[expected_key(key, case["kinds"])]
        corrected = item["text_original"] + " [poprawione]"
        db.execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, status='processed', processed_at=NOW() "
            "WHERE id_task_item=%s",
            (corrected, sha(corrected), item["id_task_item"]),
        )
    ids = [got[expected_key(k, case["kinds"])]["id_task_item"] for k in chosen]
    accepted, refused = set_decision(db, id_task, ids, "accepted", "test")
    assert sorted(accepted) == sorted(ids) and not refused
    edited, vanished = chosen[1], chosen[3]
    source_execute(source, f"UPDATE items SET body = %s WHERE {where_key(case)}", ("ktoś zmienił", *edited))
    source_execute(source, f"DELETE FROM items WHERE {where_key(case)}", vanished)
    before = dict(source_rows(source, case))
    stats = export.run_export(cfg, id_task)
    assert (stats["exported"], stats["conflicts"]) == (2, 2)
    now = dict(source_rows(source, case))
    for key, text in before.items():
        if key in (chosen[0], chosen[2]):
            assert now[key] == text + " [poprawione]"
        else:
            assert now[key] == text, key
    statuses = {k: local_items(db, id_task)[expected_key(k, case["kinds"])]["status"] for k in chosen}
    assert statuses == {
        chosen[0]: "exported",
        edited: "conflict",
        chosen[2]: "exported",
        vanished: "conflict",
    }
    reason = db.query_value(
        "SELECT export_error FROM task_item WHERE id_task=%s AND remote_key=%s",
        (id_task, expected_key(vanished, case["kinds"])),
    )
    assert "nie istnieje" in reason


def test_remote_key_compares_byte_for_byte(settings, db, sqlite_source):
    """``["A"]`` i ``["a"]`` to dwie pozycje; zapytanie po jednym nigdy nie trafia w drugą."""
    source_execute(sqlite_source, "CREATE TABLE items (code TEXT PRIMARY KEY, body TEXT)")
    source_executemany(sqlite_source, "INSERT INTO items VALUES (%s, %s)", [("A", "duże"), ("a", "małe")])
    id_task = add_task(db, add_connection(db, sqlite_source), "items", "body")
    sync.sync_task(settings, id_task)
    for key, text in (('["A"]', "duże"), ('["a"]', "małe")):
        rows = db.query(
            "SELECT text_original FROM task_item WHERE id_task=%s AND remote_key=%s", (id_task, key)
        )
        assert rows == [{"text_original": text}]


def test_ci_source_renaming_case_is_delete_plus_insert(settings, db, mysql_source):
    """Pod ``_ci`` zmiana wielkości liter klucza to inny klucz bajtowo: stary usunięty, nowy dodany."""
    source_execute(
        mysql_source,
        "CREATE TABLE items (code VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, body TEXT)",
    )
    source_executemany(mysql_source, "INSERT INTO items VALUES (%s, %s)", [("apple", "x"), ("Banana", "y")])
    id_task = add_task(db, add_connection(db, mysql_source), "items", "body")
    sync.sync_task(settings.updated(**FAST), id_task)
    source_execute(mysql_source, "UPDATE items SET code='Apple' WHERE code='apple'")
    sync.sync_task(settings.updated(**FAST), id_task)
    assert counters(db, id_task) == ("completed", 1, 0, 1)
    live = {k for k, r in local_items(db, id_task).items() if r["live"]}
    assert live == {'["Apple"]', '["Banana"]'}


def test_many_inserts_between_two_keys_shift_positions(settings, db, pg_source, monkeypatch):
    """Gdy między sąsiadami brakuje liczb na pozycje, dalsze pozycje są przesuwane - wynik bez zmian."""
    monkeypatch.setattr(sync, "GAP", 4)  # pierwsza synchronizacja
    monkeypatch.setattr(merge, "GAP", 4)  # pozycje nowych wierszy przy resyncu
    source_execute(pg_source, 'CREATE TABLE items (code text COLLATE "C" PRIMARY KEY, body text)')
    case = {"cols": ("code",), "kinds": ("text",)}
    insert_rows(pg_source, case, [("a",), ("b",), ("c",)])
    id_task = add_task(db, add_connection(db, pg_source), "items", "body")
    cfg = settings.updated(**FAST)
    sync.sync_task(cfg, id_task)
    between = [(f"b{n:03d}",) for n in range(40)]
    insert_rows(pg_source, case, between)
    sync.sync_task(cfg, id_task)
    assert counters(db, id_task) == ("completed", 40, 0, 0)
    assert_matches_source(db, id_task, pg_source, case, [])
    insert_rows(pg_source, case, [(f"b{n:03d}x",) for n in range(20)])
    source_execute(pg_source, "DELETE FROM items WHERE code IN ('b005', 'c')")
    sync.sync_task(cfg, id_task)
    assert counters(db, id_task) == ("completed", 20, 0, 2)
    assert_matches_source(db, id_task, pg_source, case, [("b005",), ("c",)])


def test_source_order_change_renumbers_and_stays_exact(settings, db, pg_source, caplog):
    """Zmiana sortowania kolumny klucza w źródle (inna kolejność znanych kluczy): skan zaczyna od
    nowa z nową numeracją, a stan końcowy jest dokładnie taki, jak po synchronizacji od zera."""
    source_execute(pg_source, 'CREATE TABLE items (code text COLLATE "C" PRIMARY KEY, body text)')
    case = {"cols": ("code",), "kinds": ("text",)}
    keys = [(k,) for k in ("B", "a", "C", "b", "A", "c", "Z", "z", "Ł", "ł")]
    insert_rows(pg_source, case, keys)
    id_task = add_task(db, add_connection(db, pg_source), "items", "body")
    cfg = settings.updated(**FAST)
    sync.sync_task(cfg, id_task)
    source_execute(pg_source, 'ALTER TABLE items ALTER COLUMN code TYPE text COLLATE "pl-x-icu"')
    source_execute(pg_source, "DELETE FROM items WHERE code = 'C'")
    insert_rows(pg_source, case, [("bb",)])
    sync.sync_task(cfg, id_task)
    assert counters(db, id_task)[0] == "completed"
    assert_matches_source(db, id_task, pg_source, case, [("C",)])
    assert "nową numeracją" in caplog.text or "nowa numeracja" in caplog.text.lower()
    sync.sync_task(cfg, id_task)
    assert counters(db, id_task) == ("completed", 0, 0, 0)


def test_duplicate_keys_with_key_column_fail_clearly(settings, db, pg_source):
    """``key_column`` wskazujące niejednoznaczną kolumnę: zadanie ``error`` z jednym zdaniem."""
    source_execute(pg_source, "CREATE TABLE items (sku text NOT NULL, body text)")
    source_executemany(pg_source, "INSERT INTO items VALUES (%s, %s)", [("x", "1"), ("x", "2"), ("y", "3")])
    id_task = add_task(db, add_connection(db, pg_source), "items", "body", key_column="sku")
    with pytest.raises(Exception):  # noqa: B017 - treść sprawdza asercja na wierszu zadania
        sync.sync_task(settings, id_task)
    row = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert row["status"] == "error"
    assert "task.key_column" in row["error_log"] or "niezgodna" in row["error_log"]


@pytest.mark.parametrize(
    "ddl, key_column, words",
    [
        ("CREATE TABLE items (id float8 PRIMARY KEY, body text)", None, ["items", "task.key_column"]),
        ("CREATE TABLE items (id bytea PRIMARY KEY, body text)", None, ["items", "task.key_column"]),
        ("CREATE TABLE items (id int, body text)", None, ["items", "task.key_column"]),
        ("CREATE TABLE items (id int, body text)", "id", ["items", "NULL", "task.key_column"]),
    ],
    ids=["float_pk", "bytea_pk", "no_key", "nullable_key_column"],
)
def test_unusable_keys_end_in_error_naming_the_table(settings, db, pg_source, ddl, key_column, words):
    source_execute(pg_source, ddl)
    id_task = add_task(db, add_connection(db, pg_source), "items", "body", key_column=key_column)
    with pytest.raises(Exception):  # noqa: B017 - treść sprawdza asercja na wierszu zadania
        sync.sync_task(settings, id_task)
    row = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert row["status"] == "error" and all(word in row["error_log"] for word in words), row["error_log"]
    assert "\n" not in row["error_log"]


def test_unique_index_not_null_is_used_without_primary_key(settings, db, mysql_source):
    source_execute(
        mysql_source,
        "CREATE TABLE items (code VARCHAR(20) NOT NULL, lang CHAR(2) NOT NULL, body TEXT, UNIQUE KEY u (code, lang))",
    )
    source_executemany(
        mysql_source,
        "INSERT INTO items VALUES (%s, %s, %s)",
        [("b", "pl", "1"), ("a", "en", "2"), ("a", "pl", "3")],
    )
    id_task = add_task(db, add_connection(db, mysql_source), "items", "body")
    sync.sync_task(settings, id_task)
    keys = sorted(
        r["remote_key"] for r in db.query("SELECT remote_key FROM task_item WHERE id_task=%s", (id_task,))
    )
    assert keys == ['["a","en"]', '["a","pl"]', '["b","pl"]']


def test_export_skips_nul_text_as_item_conflict_on_postgresql(settings, db, pg_source):
    """Odpowiedź modelu ze znakiem NUL: konflikt tej pozycji, reszta eksportu idzie dalej."""
    source_execute(pg_source, "CREATE TABLE items (id uuid PRIMARY KEY, body text)")
    keys = [u(n) for n in (1, 2, 3)]
    source_executemany(pg_source, "INSERT INTO items VALUES (%s, %s)", [(k, f"tekst {k}") for k in keys])
    id_task = add_task(db, add_connection(db, pg_source), "items", "body")
    sync.sync_task(settings, id_task)
    items = db.query(
        "SELECT id_task_item, text_original FROM task_item WHERE id_task=%s ORDER BY source_ord", (id_task,)
    )
    for n, item in enumerate(items):
        corrected = item["text_original"] + (" zły\x00znak" if n == 1 else " ok")
        db.execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, status='processed', processed_at=NOW() "
            "WHERE id_task_item=%s",
            (corrected, sha(corrected), item["id_task_item"]),
        )
    set_decision(db, id_task, None, "accepted", "test")
    stats = export.run_export(settings, id_task)
    assert (stats["exported"], stats["conflicts"]) == (2, 1)
    bad = db.query_one(
        "SELECT status, export_error FROM task_item WHERE id_task_item=%s", (items[1]["id_task_item"],)
    )
    assert bad["status"] == "conflict" and "NUL" in bad["export_error"]
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    assert sorted(r[0] for r in source_query(pg_source, "SELECT body FROM items")) == sorted(
        [f"tekst {keys[0]} ok", f"tekst {keys[1]}", f"tekst {keys[2]} ok"]
    )


def test_init_db_backfills_remote_key_for_existing_items(settings, db):
    """Baza sprzed kluczy dowolnych: ``--init-db`` uzupełnia ``remote_key`` i pozycję z ``remote_id``."""
    from lib.schema import init_db

    db.execute("DROP TABLE schema_migrations")  # baza sprzed migracji: --init-db ją przejmuje
    db.execute("ALTER TABLE task_item DROP INDEX idx_task_item_key, DROP INDEX idx_task_item_order")
    db.execute("ALTER TABLE task_item DROP COLUMN remote_key, DROP COLUMN source_ord")
    db.execute(
        "INSERT INTO task (id_user, id_database_connection, table_name, column_name) VALUES (1, 1, 't', 'c')"
    )
    id_task = int(db.query_value("SELECT LAST_INSERT_ID()"))
    db.execute(
        "INSERT INTO task_item (id_task, remote_id, text_original) VALUES (%s, 7, 'x'), (%s, -3, 'y')",
        (id_task, id_task),
    )
    actions = init_db(settings)
    assert any("backfilled 2 rows of task_item.remote_key" in a for a in actions), actions
    rows = db.query("SELECT remote_id, remote_key, source_ord FROM task_item ORDER BY remote_id")
    assert [tuple(r.values()) for r in rows] == [(-3, "[-3]", -3), (7, "[7]", 7)]
    assert init_db(settings) == []


@pytest.mark.slow
def test_sigkill_mid_scan_composite_key_equals_uninterrupted(local_env, settings, db, pg_source):
    """150 000 wierszy z kluczem (product_id, lang): SIGKILL w trakcie skanu (pierwszy sync i resync),
    ponowny run - stan identyczny z runem nieprzerwanym na bliźniaczym zadaniu."""
    source_execute(
        pg_source,
        "CREATE TABLE items (product_id int, lang varchar(8), body text, PRIMARY KEY (product_id, lang))",
    )
    source_execute(
        pg_source,
        "INSERT INTO items SELECT p, l, 'Produkt ' || p || ' ' || l || repeat(' zażółć', 1 + p % 7) "
        "FROM generate_series(1, 50000) p, unnest(ARRAY['de','en','pl']) l",
    )
    conn = add_connection(db, pg_source)
    killed, twin = add_task(db, conn, "items", "body"), add_task(db, conn, "items", "body")
    env = {**local_env, "BATCH_SIZE": "1000", "COMMIT_ROWS": "5000"}
    cfg = settings.updated(BATCH_SIZE=1000, COMMIT_ROWS=5000)

    def run(fault: str | None) -> int:
        full = {**os.environ, **env}
        full.pop("AILEXIA_FAULT", None)
        if fault:
            full["AILEXIA_FAULT"] = fault
        return subprocess.run(
            [sys.executable, "sync.py", "--id_task", str(killed)], cwd=PROJECT_ROOT, env=full, timeout=600
        ).returncode

    def state(id_task: int) -> tuple:
        rows = db.query(
            "SELECT remote_key, original_hash, status, is_changed, deleted_at IS NULL AS live FROM task_item "
            "WHERE id_task=%s ORDER BY remote_key",
            (id_task,),
        )
        task = db.query_one(
            "SELECT status, records_total, records_fetched, records_new, records_updated, records_deleted "
            "FROM task WHERE id_task=%s",
            (id_task,),
        )
        order = [
            r["remote_key"]
            for r in db.query(
                "SELECT remote_key FROM task_item WHERE id_task=%s AND deleted_at IS NULL ORDER BY source_ord",
                (id_task,),
            )
        ]
        return [tuple(r.values()) for r in rows], task, order

    sync.sync_task(cfg, twin)
    assert run("sync.fetch:7") == -signal.SIGKILL
    assert 0 < db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (killed,)) < 150000
    assert run(None) == 0
    assert state(killed) == state(twin)

    # Resync po zmianach rozłożonych po całym zakresie (także wstawienia między istniejącymi kluczami).
    source_execute(pg_source, "DELETE FROM items WHERE product_id % 97 = 0 AND lang = 'en'")
    source_execute(pg_source, "UPDATE items SET body = body || ' (zmiana)' WHERE product_id % 89 = 0")
    source_execute(
        pg_source, "INSERT INTO items SELECT p, 'fr', 'nowy ' || p FROM generate_series(1, 50000, 101) p"
    )
    sync.sync_task(cfg, twin)
    assert run("sync.fetch:5") == -signal.SIGKILL
    assert run(None) == 0
    assert state(killed) == state(twin)
    assert (
        db.query_value(
            "SELECT COUNT(*) FROM (SELECT remote_key FROM task_item WHERE id_task=%s GROUP BY remote_key HAVING COUNT(*)>1) d",
            (killed,),
        )
        == 0
    )
