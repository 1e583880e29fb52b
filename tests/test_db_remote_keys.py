"""Klucze źródła bez serwera: ``remote_key``, postać kanoniczna i SQL stron/dopasowań dla każdego dialektu.

MS SQL Server nie działa na tej maszynie: jego SQL (``TOP``, rozpisane porównanie kluczy złożonych,
``UPDLOCK``) sprawdzamy tutaj tekstowo, a semantykę rozpisanego warunku - na SQLite, który wykonuje
dokładnie ten sam warunek i porównanie wierszy ``(a, b) > (x, y)`` obok siebie.
"""

import json
import sqlite3
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import db_remote
from lib.db_remote.keys import (
    after_key_params,
    after_key_sql,
    canonical_key,
    match_keys_params,
    match_keys_sql,
)

KEYS = [("product_id", "int", "int"), ("lang", "text", "nvarchar")]


def target(db_type: str, keys=KEYS, extra=()) -> db_remote.Target:
    schema = {"mssql": "dbo", "pgsql": "public"}.get(db_type)
    return db_remote.build_target(db_type, schema, "items", "body", keys, extra)


texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(-(2**70), 2**70),
        texts,
        st.tuples(st.integers(), texts),
        st.tuples(texts, texts, st.integers()),
    )
)
def test_encode_key_is_compact_json_and_round_trips(key):
    values = list(key) if isinstance(key, tuple) else [key]
    encoded = db_remote.encode_key(key)
    assert encoded == json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    assert "\n" not in encoded and "\t" not in encoded  # separatory odcisku strony
    assert db_remote.decode_key(encoded) == key


def test_remote_key_examples_from_the_spec():
    assert db_remote.encode_key((17, "pl")) == '[17,"pl"]'
    assert db_remote.encode_key("Apple") == '["Apple"]'
    assert db_remote.encode_key("zażółć ") == '["zażółć "]'
    assert db_remote.encode_key("") == '[""]'


def test_uuid_is_canonical_lowercase_hyphenated():
    t = db_remote.build_target("mssql", "dbo", "items", "body", [("id", "uuid", "uniqueidentifier")])
    raw = "6F1C2D3E-4A5B-4C6D-8E7F-0123456789AB"
    assert canonical_key(t, [raw]) == "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"
    assert canonical_key(t, [uuid.UUID(raw)]) == "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"
    assert canonical_key(t, ["{" + raw + "}"]) == "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"
    composite = target("pgsql", [("a", "int", "integer"), ("b", "uuid", "uuid")])
    assert canonical_key(composite, (5, raw.lower())) == (5, raw.lower())


@pytest.mark.parametrize(
    "type_name, db_type, kind",
    [
        ("uniqueidentifier", "mssql", "uuid"),
        ("nvarchar", "mssql", "text"),
        ("bigint", "mssql", "int"),
        ("float", "mssql", None),
        ("varbinary", "mssql", None),
        ("uuid", "pgsql", "uuid"),
        ("character varying", "pgsql", "text"),
        ("citext", "pgsql", "text"),
        ("double precision", "pgsql", None),
        ("bytea", "pgsql", None),
        ("bigint(20) unsigned", "mysql", "int"),
        ("varchar(64)", "mysql", "text"),
        ("blob", "mysql", None),
        ("decimal(10,2)", "mysql", None),
        ("VARCHAR(10)", "sqlite", "text"),
        ("INTEGER", "sqlite", "int"),
        ("BLOB", "sqlite", None),
        ("REAL", "sqlite", None),
        ("", "sqlite", None),
    ],
)
def test_key_kinds(type_name, db_type, kind):
    assert db_remote.key_kind(db_type, type_name) == kind


def test_mssql_composite_page_lock_update_sql():
    t = target("mssql")
    dialect = db_remote.DIALECTS["mssql"]
    assert db_remote.page_sql("mssql", t, True, 100) == (
        "SELECT TOP (100) [product_id], [lang], [body] FROM [dbo].[items] "
        "WHERE [product_id] IS NOT NULL AND [lang] IS NOT NULL ORDER BY [product_id], [lang]"
    )
    assert db_remote.page_sql("mssql", t, False, 100) == (
        "SELECT TOP (100) [product_id], [lang], [body] FROM [dbo].[items] "
        "WHERE [product_id] >= ? AND ([product_id] > ? OR ([lang] > ?)) ORDER BY [product_id], [lang]"
    )
    assert after_key_params(dialect, t, (17, "pl")) == (17, 17, "pl")
    assert db_remote.lock_sql("mssql", t, 2) == (
        "SELECT [product_id], [lang], [body] FROM [dbo].[items] WITH (UPDLOCK, ROWLOCK) "
        "WHERE ([product_id] = ? AND [lang] = ?) OR ([product_id] = ? AND [lang] = ?)"
    )
    assert match_keys_params([(1, "a"), (2, "b")]) == (1, "a", 2, "b")
    assert db_remote.update_sql("mssql", t) == (
        "UPDATE [dbo].[items] SET [body] = ? WHERE [product_id] = ? AND [lang] = ?"
    )
    assert dialect["savepoint"] == "SAVE TRANSACTION {name}" and dialect["release"] is None


def test_mssql_uniqueidentifier_single_key_sql():
    t = db_remote.build_target("mssql", "dbo", "docs", "body", [("id", "uuid", "uniqueidentifier")])
    assert db_remote.page_sql("mssql", t, False, 5) == (
        "SELECT TOP (5) [id], [body] FROM [dbo].[docs] WHERE [id] > ? ORDER BY [id]"
    )
    assert "sys.indexes" in db_remote.DIALECTS["mssql"]["sql_unique_keys"]
    assert "has_filter = 0" in db_remote.DIALECTS["mssql"]["sql_unique_keys"]


def test_three_column_key_expansion_and_chunking():
    keys = [("a", "text", "nvarchar"), ("b", "int", "int"), ("c", "text", "nvarchar")]
    t = target("mssql", keys)
    dialect = db_remote.DIALECTS["mssql"]
    assert after_key_sql(dialect, t) == "[a] >= ? AND ([a] > ? OR ([b] >= ? AND ([b] > ? OR ([c] > ?))))"
    assert after_key_params(dialect, t, ("x", 1, "y")) == ("x", "x", 1, 1, "y")
    # 5 kolumn: najwyżej 100 kluczy (500 parametrów) w jednym zapytaniu - limit 2100 parametrów MS SQL.
    wide = target("mssql", [(f"k{i}", "int", "int") for i in range(5)])
    assert db_remote.keys.keys_per_query(wide, 500) == 100
    assert (
        match_keys_sql(db_remote.DIALECTS["mysql"], target("mysql"), 1)
        == "(`product_id` = %s AND `lang` = %s)"
    )


@pytest.mark.parametrize(
    "db_type, row_values", [("pgsql", True), ("sqlite", True), ("mysql", False), ("mssql", False)]
)
def test_row_value_use_per_dialect(db_type, row_values):
    sql = after_key_sql(db_remote.DIALECTS[db_type], target(db_type))
    assert (") > (" in sql) is row_values
    assert (" >= " in sql) is not row_values


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(["", "a", "B", "b", "ł", "a "]), st.integers(0, 3)),
        max_size=25,
    ),
    after=st.tuples(st.integers(0, 4), st.sampled_from(["", "a", "B", "b", "ł", "a "]), st.integers(0, 3)),
)
def test_expanded_keyset_condition_equals_row_comparison(rows, after):
    """Rozpisany warunek (MySQL, MS SQL) wybiera dokładnie te wiersze, co ``(a, b, c) > (x, y, z)``."""
    keys = [("a", "int", "INTEGER"), ("b", "text", "TEXT"), ("c", "int", "INTEGER")]
    expanded = after_key_sql(db_remote.DIALECTS["mssql"], target("mssql", keys))
    expanded = expanded.replace("[", '"').replace("]", '"')
    conn = sqlite3.connect(":memory:")
    conn.execute('CREATE TABLE t ("a" INTEGER, "b" TEXT, "c" INTEGER)')
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    params = after_key_params(db_remote.DIALECTS["mssql"], target("mssql", keys), after)
    got = conn.execute(f"SELECT a, b, c FROM t WHERE {expanded} ORDER BY a, b, c", params).fetchall()
    want = conn.execute(
        "SELECT a, b, c FROM t WHERE (a, b, c) > (?, ?, ?) ORDER BY a, b, c", after
    ).fetchall()
    assert got == want == sorted(r for r in rows if r > after)
