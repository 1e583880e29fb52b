"""Testy dialektu mssql w ``lib.db_remote``.

Budowanie SQL i cytowanie sprawdzamy zawsze. Test integracyjny wymaga serwera SQL Server
wskazanego przez ``MSSQL_TEST_URL`` (``mssql://user:pass@host:port/db``) - tylko ten test
może być pominięty, gdy zmiennej nie ma.
"""

import os
import uuid
from urllib.parse import unquote, urlsplit

import pytest

from lib import db_remote
from lib.errors import RemoteError
from lib.load_config import load_config

MSSQL = db_remote.DIALECTS["mssql"]


@pytest.fixture
def remote_settings(tmp_path):
    """Ustawienia domyślne (bez .env i bez zmiennych procesu)."""
    return load_config(env_file=tmp_path / "none.env", environ={})


def mssql_target(
    schema: str = "dbo", table: str = "articles", extra: tuple[str, ...] = ()
) -> db_remote.Target:
    return db_remote.build_target("mssql", schema, table, "body", [("id", "int", "bigint")], extra)


def test_quote_identifier_brackets_and_doubles_closing_bracket():
    assert db_remote.quote_identifier("mssql", "articles") == "[articles]"
    assert db_remote.quote_identifier("mssql", "a]b") == "[a]]b]"
    assert db_remote.quote_identifier("mssql", "x]; DROP TABLE t; --") == "[x]]; DROP TABLE t; --]"
    assert db_remote.quote_identifier("mssql", "[a") == "[[a]"


def test_page_sql_uses_top_and_keyset():
    target = mssql_target()
    assert db_remote.page_sql("mssql", target, True, 500) == (
        "SELECT TOP (500) [id], [body] FROM [dbo].[articles] WHERE [id] IS NOT NULL ORDER BY [id]"
    )
    assert db_remote.page_sql("mssql", target, False, 250) == (
        "SELECT TOP (250) [id], [body] FROM [dbo].[articles] WHERE [id] > ? ORDER BY [id]"
    )
    for first in (True, False):
        sql = db_remote.page_sql("mssql", target, first, 10).upper()
        assert "LIMIT" not in sql and "OFFSET" not in sql and "FETCH" not in sql


def test_page_sql_with_odd_schema_and_table():
    target = mssql_target(schema="sh]op", table="it]ems")
    assert "FROM [sh]]op].[it]]ems]" in db_remote.page_sql("mssql", target, False, 5)


def test_catalog_queries_are_parametrized():
    for name in ("sql_tables", "sql_columns", "sql_primary_key"):
        sql = MSSQL[name]
        assert sql.count("?") == 2, name
        assert "%s" not in sql and "{" not in sql and "'dbo'" not in sql
        assert "INFORMATION_SCHEMA" in sql.upper()
    assert MSSQL["catalog_params"]("shop", "items") == ("shop", "items")
    assert MSSQL["default_schema"] == "dbo" and MSSQL["schemas"] is True
    assert MSSQL["placeholder"] == "?"
    assert MSSQL["count"] == "COUNT_BIG"


def test_lock_and_update_sql_use_hints_and_parameters():
    target = mssql_target(extra=("note",))
    lock = db_remote.lock_sql("mssql", target, 3)
    assert lock == "SELECT [id], [body] FROM [dbo].[articles] WITH (UPDLOCK, ROWLOCK) WHERE [id] IN (?, ?, ?)"
    assert "FOR UPDATE" not in lock
    assert db_remote.update_sql("mssql", target) == "UPDATE [dbo].[articles] SET [body] = ? WHERE [id] = ?"
    assert (
        db_remote.update_sql("mssql", target, "note")
        == "UPDATE [dbo].[articles] SET [note] = ? WHERE [id] = ?"
    )
    with pytest.raises(RemoteError, match="kolumna zapisu 'other'"):
        db_remote.update_sql("mssql", target, "other")


def test_connection_string(remote_settings):
    row = {
        "db_type": "mssql",
        "host": "localhost",
        "port": 14330,
        "db_name": "shop",
        "db_user": "sa",
        "db_password": "p}a;ss",
        "use_ssl": 1,
        "alias": "erp",
    }
    text = db_remote.mssql_connection_string(row, remote_settings)
    assert text.startswith("DRIVER={ODBC Driver 18 for SQL Server};SERVER=127.0.0.1,14330;")
    assert "PWD={p}}a;ss}" in text and "DATABASE={shop}" in text
    assert "Encrypt=yes" in text and "TrustServerCertificate=yes" in text
    plain = db_remote.mssql_connection_string({**row, "use_ssl": 0, "port": None}, remote_settings)
    assert "SERVER=127.0.0.1,1433" in plain and "Encrypt=no" in plain
    assert db_remote.connection_label(row) == "erp/mssql 127.0.0.1:14330/shop"


def test_connect_failure_is_a_remote_error_without_password(remote_settings):
    """Bez unixODBC/sterownika (albo bez serwera na porcie 1) - zawsze jeden czytelny RemoteError."""
    row = {
        "db_type": "mssql",
        "host": "127.0.0.1",
        "port": 1,
        "db_name": "shop",
        "db_user": "sa",
        "db_password": "Mssql-Secret-314",
        "use_ssl": 0,
        "alias": "erp",
    }
    with pytest.raises(RemoteError) as info:
        db_remote.connect(row, remote_settings.updated(REMOTE_CONNECT_TIMEOUT=2))
    message = str(info.value)
    assert "Mssql-Secret-314" not in message and "\n" not in message
    assert message.startswith("nie można połączyć ze źródłem erp/mssql 127.0.0.1:1/shop")


# --- integracja (tylko z MSSQL_TEST_URL) --------------------------------------------------


def parse_mssql_url(url: str) -> dict:
    """Zamienia ``mssql://user:pass@host:port/db`` na wiersz ``database_connection``."""
    parts = urlsplit(url)
    if parts.scheme != "mssql":
        raise ValueError(f"MSSQL_TEST_URL musi zaczynać się od mssql:// (jest {parts.scheme!r})")
    return {
        "db_type": "mssql",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 1433,
        "db_name": unquote(parts.path.lstrip("/")) or "master",
        "db_user": unquote(parts.username or ""),
        "db_password": unquote(parts.password or ""),
        "use_ssl": 0,
        "alias": "mssql-test",
    }


def test_parse_mssql_url():
    row = parse_mssql_url("mssql://sa:S%40cret@db.example:1434/shop")
    assert (row["host"], row["port"], row["db_name"], row["db_user"], row["db_password"]) == (
        "db.example",
        1434,
        "shop",
        "sa",
        "S@cret",
    )


@pytest.mark.mssql
@pytest.mark.skipif(not os.environ.get("MSSQL_TEST_URL"), reason="MSSQL_TEST_URL nie jest ustawiony")
def test_mssql_end_to_end(remote_settings):
    row = parse_mssql_url(os.environ["MSSQL_TEST_URL"])
    rconn = db_remote.connect(row, remote_settings)
    schema = f"ailexia_{uuid.uuid4().hex[:8]}"
    cursor = rconn.conn.cursor()
    try:
        cursor.execute(f"CREATE SCHEMA [{schema}]")
        cursor.execute(
            f"CREATE TABLE [{schema}].[articles] (id BIGINT PRIMARY KEY, body NVARCHAR(MAX), note NVARCHAR(MAX))"
        )
        cursor.execute(f"CREATE TABLE [{schema}].[nopk] (id INT, body NVARCHAR(100))")
        rows = [(key, f"Zażółć {key} 😀") for key in range(3, 3003, 3)]
        cursor.fast_executemany = False
        cursor.executemany(f"INSERT INTO [{schema}].[articles] (id, body) VALUES (?, ?)", rows)
        cursor.execute(
            f"INSERT INTO [{schema}].[articles] (id, body) VALUES (?, ?), (?, ?)", (5000, None, 5001, "")
        )
        rconn.conn.commit()

        target = db_remote.resolve_target(rconn, f"{schema}.articles", "body", extra_columns=["note"])
        assert (target.schema, target.table, target.key) == (schema, "articles", "id")
        with pytest.raises(RemoteError, match="brak użytecznego klucza"):
            db_remote.resolve_target(rconn, f"{schema}.nopk", "body")
        with pytest.raises(RemoteError, match="nie istnieje"):
            db_remote.resolve_target(rconn, f"{schema}.articles]; DROP TABLE x; --", "body")

        pages = list(db_remote.iter_pages(rconn, target, None, 100))
        got = [item for page in pages for item in page]
        assert got == [*rows, (5000, None), (5001, "")]
        assert db_remote.count_rows(rconn, target) == len(rows) + 2
        assert db_remote.max_key(rconn, target) == 5001
        assert db_remote.fetch_by_keys(rconn, target, [3, 5000, 7]) == {3: ("Zażółć 3 😀",), 5000: (None,)}

        cursor.execute(f"UPDATE [{schema}].[articles] SET body = ? WHERE id = 6", ("ZAŻÓŁĆ 6 😀",))
        rconn.conn.commit()
        result = db_remote.compare_and_set(
            rconn,
            target,
            [(3, "Zażółć 3 😀", "nowy"), (6, "Zażółć 6 😀", "x"), (7, "", "x")],
            write_column="note",
        )
        assert result.written == [3] and sorted(key for key, _ in result.conflicts) == [6, 7]
        assert db_remote.fetch_by_keys(rconn, target, [3, 6], ["body", "note"]) == {
            3: ("Zażółć 3 😀", "nowy"),
            6: ("ZAŻÓŁĆ 6 😀", None),
        }

        # Klucz uniqueidentifier: strony w porządku serwera (grupy bajtów), klucze małymi literami.
        cursor.execute(
            f"CREATE TABLE [{schema}].[docs] (id UNIQUEIDENTIFIER PRIMARY KEY, body NVARCHAR(100))"
        )
        ids = [str(uuid.uuid4()).upper() for _ in range(30)]
        cursor.executemany(f"INSERT INTO [{schema}].[docs] (id, body) VALUES (?, ?)", [(i, i) for i in ids])
        rconn.conn.commit()
        docs = db_remote.resolve_target(rconn, f"{schema}.docs", "body")
        assert docs.key_kinds == ("uuid",)
        paged = [key for page in db_remote.iter_pages(rconn, docs, None, 7) for key, _ in page]
        cursor.execute(f"SELECT id FROM [{schema}].[docs] ORDER BY id")
        server_order = [str(r[0]).lower() for r in cursor.fetchall()]
        rconn.conn.commit()
        assert paged == server_order and sorted(paged) == sorted(i.lower() for i in ids)
        assert db_remote.fetch_by_keys(rconn, docs, [ids[0].lower()]) == {ids[0].lower(): (ids[0],)}

        # Klucz złożony (int, nvarchar): rozpisany warunek strony, zapis po wszystkich kolumnach klucza.
        cursor.execute(
            f"CREATE TABLE [{schema}].[tr] (pid INT NOT NULL, lang NVARCHAR(8) NOT NULL, body NVARCHAR(100), "
            "PRIMARY KEY (pid, lang))"
        )
        pairs = [(p, lang) for p in range(1, 8) for lang in ("de", "pl")]
        cursor.executemany(
            f"INSERT INTO [{schema}].[tr] VALUES (?, ?, ?)", [(p, lang, f"{p}{lang}") for p, lang in pairs]
        )
        rconn.conn.commit()
        tr = db_remote.resolve_target(rconn, f"{schema}.tr", "body")
        assert [key for page in db_remote.iter_pages(rconn, tr, None, 3) for key, _ in page] == pairs
        cas = db_remote.compare_and_set(rconn, tr, [((3, "pl"), "3pl", "nowy"), ((3, "en"), "x", "y")])
        assert cas.written == [(3, "pl")] and cas.conflicts == [((3, "en"), "wiersz nie istnieje w źródle")]
        assert db_remote.fetch_by_keys(rconn, tr, [(3, "pl"), (3, "de")]) == {
            (3, "pl"): ("nowy",),
            (3, "de"): ("3de",),
        }
    finally:
        for sql in (
            f"DROP TABLE IF EXISTS [{schema}].[docs]",
            f"DROP TABLE IF EXISTS [{schema}].[tr]",
            f"DROP TABLE IF EXISTS [{schema}].[articles]",
            f"DROP TABLE IF EXISTS [{schema}].[nopk]",
            f"DROP SCHEMA IF EXISTS [{schema}]",
        ):
            try:
                cursor.execute(sql)
                rconn.conn.commit()
            except Exception:  # sprzątanie nie może zasłonić błędu testu
                rconn.conn.rollback()
        db_remote.close(rconn)


def test_integer_type_normalization_covers_mssql_types():
    for name in ("int", "bigint", "smallint", "tinyint"):
        assert db_remote.catalog._normalize_type(name) in db_remote.INTEGER_TYPES
    for name in ("nvarchar", "decimal", "uniqueidentifier", "numeric(18, 0)"):
        assert db_remote.catalog._normalize_type(name) not in db_remote.INTEGER_TYPES
    assert db_remote.catalog._normalize_type("INT(11) UNSIGNED") == "int"
    assert db_remote.catalog._normalize_type("UNSIGNED BIG INT") == "big int"


def _hash_target(column_type: str) -> db_remote.Target:
    return db_remote.build_target(
        "mssql",
        "dbo",
        "articles",
        "body",
        [("id", "int", "bigint"), ("lang", "text", "nvarchar")],
        (),
        column_type,
    )


def test_source_hash_sql_hashes_utf8_bytes_of_the_column():
    """Hash liczony przez SQL Server: SHA2_256 z bajtów UTF-8 (nie UTF-16 nvarchar), szesnastkowo małymi literami."""
    rconn = db_remote.RemoteConn("mssql", None, MSSQL, "test")
    expression = db_remote.source_hash_sql(rconn, _hash_target("nvarchar"), "sha256")
    assert expression == (
        "LOWER(CONVERT(VARCHAR(64), HASHBYTES('SHA2_256', CAST(CAST([body] AS NVARCHAR(MAX)) "
        "COLLATE Latin1_General_100_BIN2_UTF8 AS VARCHAR(MAX))), 2))"
    )
    assert "HASHBYTES('MD5'" in db_remote.source_hash_sql(rconn, _hash_target("varchar"), "md5")
    assert "HASHBYTES('SHA1'" in db_remote.source_hash_sql(rconn, _hash_target("nchar"), "sha1")
    # Typy, których bajty nie są tekstem (varbinary) albo nie dają się rzutować (ntext): skan czyta teksty.
    for column_type in ("varbinary", "ntext", "xml", ""):
        assert db_remote.source_hash_sql(rconn, _hash_target(column_type), "sha256") is None
    assert db_remote.source_hash_sql(rconn, _hash_target("nvarchar"), "sha512") is None


def test_hash_page_sql_is_the_keyset_page_with_the_hash_column():
    """Strona hashy: ta sama strona keyset (TOP, rozpisany warunek klucza złożonego), hash zamiast tekstu."""
    rconn = db_remote.RemoteConn("mssql", None, MSSQL, "test")
    target = _hash_target("nvarchar")
    expression = db_remote.source_hash_sql(rconn, target, "sha256")
    assert db_remote.page_sql("mssql", target, False, 10000, column_sql=expression) == (
        f"SELECT TOP (10000) [id], [lang], {expression} FROM [dbo].[articles] "
        "WHERE [id] >= ? AND ([id] > ? OR ([lang] > ?)) ORDER BY [id], [lang]"
    )
    assert not db_remote.can_copy(rconn, target)


def test_session_settings_and_column_code_page():
    """Opcje sesji, które zakłada generowany T-SQL, i strona kodowa kolumn varchar w katalogu."""
    from lib.db_remote import dialects

    session = dialects.MSSQL_SESSION_SQL
    for option in (
        "ANSI_NULLS ON",
        "QUOTED_IDENTIFIER ON",
        "CONCAT_NULL_YIELDS_NULL ON",
        "TEXTSIZE 2147483647",
    ):
        assert f"SET {option}" in session
    assert "COLLATIONPROPERTY(COLLATION_NAME, 'CodePage')" in MSSQL["sql_columns"]
    target = db_remote.build_target(
        "mssql",
        "dbo",
        "articles",
        "body",
        [("id", "int", "bigint")],
        ("note",),
        "varchar",
        {"body": "cp1250"},
    )
    assert target.charset_of("body") == "cp1250" and target.charset_of("note") == ""
    reason = db_remote.unstorable_reason("mssql", "body", target.charset_of("body"), "zażółć ✓")
    assert reason is not None and "cp1250" in reason and "'✓'" in reason
    assert db_remote.unstorable_reason("mssql", "note", target.charset_of("note"), "✓ 🙂") is None
