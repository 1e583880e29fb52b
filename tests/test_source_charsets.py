"""Kolumny źródła w innym zestawie znaków: MySQL latin1 / utf8mb3, PostgreSQL SQL_ASCII i LATIN2.

Teksty mają dojść do ``task_item`` jako właściwe znaki Unicode, hashe resyncu (liczone przez źródło)
mają się zgadzać z pierwszą synchronizacją, a eksport ma zapisać te same bajty - albo zostawić
źródło bez zmian z jednym zdaniem o zestawie znaków kolumny.
"""

import uuid

import psycopg2
import pytest

from lib import db_remote
from lib.db_remote import encodings
from lib.export.run import run_export
from lib.review.decisions import set_decision
from lib.sync import engine as sync
from tests.conftest import PG_SERVER, _pg_admin
from tests.helpers import add_connection, add_task, sha256, simulate_ai, source_execute, source_query

LATIN1_TEXTS = {
    1: "Café crème brûlée",
    2: "Größe ß über",
    3: "año ñ ¿qué?",
    4: "ó zwyczajne ó",
    5: None,
    6: "",
}


def _items(db, id_task: int) -> dict[int, dict]:
    return {r["remote_id"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}


def _accept(db, id_task: int, keys: list[int]) -> None:
    by_key = _items(db, id_task)
    changed, refused = set_decision(db, id_task, [by_key[k]["id_task_item"] for k in keys], "accepted", "ola")
    assert refused == [] and len(changed) == len(keys)


def _raw_bytes(source, key: int) -> bytes:
    return source_query(source, "SELECT HEX(body) FROM articles WHERE id=%s", (key,))[0][0]


def test_mysql_latin1_and_utf8mb3_columns_sync_resync_and_export(settings, db, mysql_source):
    source_execute(
        mysql_source,
        "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT CHARACTER SET latin1, "
        "note TEXT CHARACTER SET utf8mb3) CHARACTER SET latin1",
    )
    for key, text in LATIN1_TEXTS.items():
        source_execute(mysql_source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (key, text))
    id_task = add_task(db, add_connection(db, mysql_source))
    sync.sync_task(settings, id_task)
    got = _items(db, id_task)
    for key, text in LATIN1_TEXTS.items():
        assert got[key]["text_original"] == text and got[key]["original_hash"] == sha256(text)
    # Resync liczy hashe w źródle (SHA2 z CONVERT do utf8mb4): zgodne z pierwszą synchronizacją.
    stats = sync.sync_task(settings, id_task)
    assert (stats["new"], stats["updated"], stats["deleted"]) == (0, 0, 0)
    source_execute(mysql_source, "UPDATE articles SET body=%s WHERE id=1", ("Café au lait",))
    stats = sync.sync_task(settings, id_task)
    assert stats["updated"] == 1 and _items(db, id_task)[1]["text_original"] == "Café au lait"

    simulate_ai(db, id_task, {4: "Ó zwyczajne ó, café.", 2: "Größe ß über ą", 3: "Año ñ, ¿qué? 🙂"})
    _accept(db, id_task, [2, 3, 4])
    stats = run_export(settings, id_task)
    assert (stats["exported"], stats["conflicts"]) == (1, 2)
    # Zapisane bajty to latin1 (é = E9), a nie UTF-8 ani '?'.
    assert source_query(mysql_source, "SELECT body FROM articles WHERE id=4")[0][0] == "Ó zwyczajne ó, café."
    assert _raw_bytes(mysql_source, 4) == "Ó zwyczajne ó, café.".encode("latin1").hex().upper()
    after = _items(db, id_task)
    assert after[4]["status"] == "exported"
    for key, char in ((2, "'ą'"), (3, "'🙂'")):
        assert after[key]["status"] == "conflict"
        reason = after[key]["export_error"]
        assert "latin1" in reason and char in reason and "utf8mb4" in reason
        assert (
            source_query(mysql_source, "SELECT body FROM articles WHERE id=%s", (key,))[0][0]
            == LATIN1_TEXTS[key]
        )


def test_mysql_utf8mb3_export_column_refuses_4_byte_characters(settings, db, mysql_source):
    source_execute(
        mysql_source,
        "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT CHARACTER SET utf8mb4, "
        "body_en TEXT CHARACTER SET utf8mb3)",
    )
    source_execute(mysql_source, "INSERT INTO articles (id, body) VALUES (1, 'kot'), (2, 'pies')")
    id_task = add_task(db, add_connection(db, mysql_source), export_column="body_en")
    sync.sync_task(settings, id_task)
    simulate_ai(db, id_task, {1: "cat 𝔘", 2: "dog ł"})
    _accept(db, id_task, [1, 2])
    stats = run_export(settings, id_task)
    assert (stats["exported"], stats["conflicts"]) == (1, 1)
    assert source_query(mysql_source, "SELECT body_en FROM articles ORDER BY id") == [(None,), ("dog ł",)]
    reason = _items(db, id_task)[1]["export_error"]
    assert "'body_en'" in reason and "utf8mb3" in reason


@pytest.fixture
def pg_encoded_source(request):
    """Baza PostgreSQL w kodowaniu podanym parametrem (SQL_ASCII, LATIN2)."""
    encoding = request.param
    name = f"ailexia_src_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.cursor() as cursor:
        cursor.execute(
            f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    conn = psycopg2.connect(dbname=name, client_encoding="UTF8", **PG_SERVER)
    conn.autocommit = True
    source = {
        "db_type": "pgsql",
        "host": PG_SERVER["host"],
        "port": PG_SERVER["port"],
        "db_name": name,
        "db_user": PG_SERVER["user"],
        "db_password": "",
        "conn": conn,
        "encoding": encoding,
    }
    yield source
    conn.close()
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
            (name,),
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


POLISH = {1: "zażółć gęślą jaźń", 2: "Łódź — „cudzysłów” 🙂", 3: "ascii only", 4: None}


@pytest.mark.parametrize("pg_encoded_source", ["SQL_ASCII"], indirect=True)
def test_pg_sql_ascii_utf8_bytes_round_trip(settings, db, pg_encoded_source):
    source = pg_encoded_source
    source_execute(source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT)")
    for key, text in POLISH.items():
        source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (key, text))
    id_task = add_task(db, add_connection(db, source))
    sync.sync_task(settings, id_task)
    got = _items(db, id_task)
    for key, text in POLISH.items():
        assert got[key]["text_original"] == text and got[key]["original_hash"] == sha256(text)
    stats = sync.sync_task(settings, id_task)
    assert (stats["new"], stats["updated"], stats["deleted"]) == (0, 0, 0)
    simulate_ai(db, id_task, {1: "Zażółć gęślą jaźń.", 2: "Łódź — „cudzysłów” 🙂!"})
    _accept(db, id_task, [1, 2])
    stats = run_export(settings, id_task)
    assert stats["exported"] == 2
    raw = source_query(source, "SELECT encode(convert_to(body, 'SQL_ASCII'), 'hex') FROM articles WHERE id=2")
    assert bytes.fromhex(raw[0][0]) == "Łódź — „cudzysłów” 🙂!".encode()


@pytest.mark.parametrize("pg_encoded_source", ["SQL_ASCII"], indirect=True)
def test_pg_sql_ascii_with_non_utf8_bytes_ends_in_error_naming_the_encoding(settings, db, pg_encoded_source):
    source = pg_encoded_source
    source_execute(source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT)")
    source_execute(source, "INSERT INTO articles (id, body) VALUES (1, 'dobry tekst')")
    # Bajty cp1250 (ł = 0xB3), które w bazie SQL_ASCII leżą bez kontroli.
    source_execute(
        source, "INSERT INTO articles (id, body) VALUES (2, convert_from('\\x6bb36f'::bytea, 'SQL_ASCII'))"
    )
    id_task = add_task(db, add_connection(db, source))
    with pytest.raises(Exception):  # noqa: B017 - run kończy się błędem zadania; sprawdzamy zapis w task
        sync.sync_task(settings, id_task)
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "error"
    assert encodings.SQL_ASCII_HINT in task["error_log"]


@pytest.mark.parametrize("pg_encoded_source", ["LATIN2"], indirect=True)
def test_pg_latin2_database_reads_unicode_and_refuses_unstorable_export(settings, db, pg_encoded_source):
    source = pg_encoded_source
    texts = {1: "zażółć gęślą jaźń", 2: "Łódź"}
    source_execute(source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT)")
    for key, text in texts.items():
        source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (key, text))
    id_task = add_task(db, add_connection(db, source))
    sync.sync_task(settings, id_task)
    got = _items(db, id_task)
    assert {k: got[k]["text_original"] for k in texts} == texts
    assert sync.sync_task(settings, id_task)["updated"] == 0
    simulate_ai(db, id_task, {1: "Zażółć gęślą jaźń.", 2: "Łódź 🙂"})
    _accept(db, id_task, [1, 2])
    stats = run_export(settings, id_task)
    assert (stats["exported"], stats["conflicts"]) == (1, 1)
    assert source_query(source, "SELECT body FROM articles WHERE id=1")[0][0] == "Zażółć gęślą jaźń."
    assert "LATIN2" in _items(db, id_task)[2]["export_error"]


def test_unstorable_chars_table():
    assert encodings.unstorable_chars("mysql", "latin1", "Café ß") == []
    assert encodings.unstorable_chars("mysql", "latin1", "ąąłé") == ["ą", "ł"]
    assert encodings.unstorable_chars("mysql", "utf8mb3", "żółw 🙂𝔘🙂") == ["🙂", "𝔘"]
    assert encodings.unstorable_chars("mysql", "utf8mb4", "🙂") == []
    assert encodings.unstorable_chars("pgsql", "SQL_ASCII", "🙂") == []
    assert encodings.unstorable_chars("mssql", "cp1250", "zażółć") == []
    assert encodings.unstorable_chars("mssql", "cp1250", "ß€✓") == ["✓"]
    assert encodings.unstorable_chars("mysql", "cp1250", "ß€✓") == ["✓"]
    assert encodings.unstorable_chars("mssql", "cp65001", "🙂") == []
    assert encodings.unstorable_chars("mysql", "nieznany", "🙂") == []
    assert encodings.unstorable_chars("pgsql", "UTF8", "🙂") == [] and encodings.unstorable_chars(
        "mysql", "utf8", "🙂"
    )
    assert encodings.unstorable_chars("pgsql", "LATIN2", "łą€") == ["€"]
    assert db_remote.unstorable_reason("mysql", "body", "latin1", "tak") is None
