"""Testy ``lib.db_remote`` na prawdziwych źródłach: PostgreSQL, MariaDB i SQLite (bez mocków)."""

import random

import pymysql
import pytest

from lib import db_remote
from lib.errors import RemoteError
from lib.load_config import load_config
from tests.conftest import MYSQL_SERVER
from tests.helpers import create_text_table, source_execute, source_executemany, source_query

# Typ bazy -> fixture z conftest.py.
SOURCES = {"pgsql": "pg_source", "mysql": "mysql_source", "sqlite": "sqlite_source"}

POLISH_EMOJI = "Zażółć gęślą jaźń — ĄĆĘŁŃÓŚŹŻ 😀🚀 "


@pytest.fixture
def remote_settings(tmp_path):
    """Ustawienia domyślne (bez .env i bez zmiennych procesu)."""
    return load_config(env_file=tmp_path / "none.env", environ={})


@pytest.fixture(params=list(SOURCES))
def source(request):
    """Świeże źródło każdego z trzech typów."""
    return request.getfixturevalue(SOURCES[request.param])


def connection_row(source: dict, **overrides) -> dict:
    """Wiersz ``database_connection`` dla źródła testowego."""
    row = {
        "db_type": source["db_type"],
        "host": source["host"],
        "port": source["port"],
        "db_name": source["db_name"],
        "db_user": source["db_user"],
        "db_password": source["db_password"],
        "use_ssl": 0,
        "alias": f"test-{source['db_type']}",
    }
    row.update(overrides)
    return row


@pytest.fixture
def rconn(source, remote_settings):
    """Połączenie ``db_remote`` ze źródłem testu."""
    conn = db_remote.connect(connection_row(source), remote_settings)
    yield conn
    db_remote.close(conn)


def table_count(source: dict, table: str = "articles") -> int:
    return source_query(source, f"SELECT COUNT(*) FROM {table}")[0][0]


def table_exists(source: dict, table: str) -> bool:
    kind = source["db_type"]
    if kind == "sqlite":
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=%s"
    elif kind == "pgsql":
        sql = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='public' AND table_name=%s"
    else:
        sql = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=DATABASE() AND table_name=%s"
    return source_query(source, sql, (table,))[0][0] == 1


def long_text_type(source: dict) -> str:
    """Typ kolumny na długie teksty (TEXT w MySQL ma tylko 64 KiB)."""
    return "MEDIUMTEXT" if source["db_type"] == "mysql" else "TEXT"


# --- połączenie -------------------------------------------------------------------------


def test_connect_label_has_no_password_and_uses_tcp(source, remote_settings):
    rconn = db_remote.connect(connection_row(source, host="localhost"), remote_settings)
    try:
        assert rconn.db_type == source["db_type"]
        assert rconn.label.startswith(f"test-{source['db_type']}/{source['db_type']}")
        assert source["db_name"] in rconn.label
        if source["db_type"] != "sqlite":
            assert "127.0.0.1" in rconn.label
    finally:
        db_remote.close(rconn)
    db_remote.close(rconn)  # drugie zamknięcie nie zgłasza błędu


def test_mysql_wrong_password_gives_clear_error_without_password(mysql_source, remote_settings):
    admin = pymysql.connect(**MYSQL_SERVER, autocommit=True)
    right, wrong = "Right-Secret-7391", "Wrong-Secret-4402"
    try:
        with admin.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS 'ailexia_pw_test'@'%'")
            cursor.execute("CREATE USER 'ailexia_pw_test'@'%%' IDENTIFIED BY %s", (right,))
            cursor.execute(f"GRANT SELECT ON `{mysql_source['db_name']}`.* TO 'ailexia_pw_test'@'%'")
        ok = db_remote.connect(
            connection_row(mysql_source, db_user="ailexia_pw_test", db_password=right), remote_settings
        )
        db_remote.close(ok)
        with pytest.raises(RemoteError) as info:
            db_remote.connect(
                connection_row(mysql_source, db_user="ailexia_pw_test", db_password=wrong), remote_settings
            )
        message = str(info.value)
        assert "1045" in message and "Access denied" in message
        assert "test-mysql" in message and "127.0.0.1:3306" in message and mysql_source["db_name"] in message
        assert wrong not in message and right not in message
        assert "\n" not in message
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS 'ailexia_pw_test'@'%'")
        admin.close()


def test_pgsql_missing_database_gives_clear_error(pg_source, remote_settings):
    row = connection_row(pg_source, db_name="ailexia_no_such_db", db_password="Some-Secret-99")
    with pytest.raises(RemoteError) as info:
        db_remote.connect(row, remote_settings)
    message = str(info.value)
    assert "ailexia_no_such_db" in message and "does not exist" in message
    assert "test-pgsql" in message and "127.0.0.1:5432" in message
    assert "Some-Secret-99" not in message
    assert "\n" not in message


@pytest.mark.parametrize("kind", ["mysql_source", "pg_source"])
def test_unreachable_host_gives_clear_error(kind, request, remote_settings):
    source = request.getfixturevalue(kind)
    row = connection_row(source, port=1, db_password="Unreachable-Secret-5")
    with pytest.raises(RemoteError) as info:
        db_remote.connect(row, remote_settings)
    message = str(info.value)
    assert message.startswith("nie można połączyć ze źródłem")
    assert "127.0.0.1:1" in message and "Unreachable-Secret-5" not in message


def test_sqlite_missing_file_is_not_created(tmp_path, remote_settings):
    path = tmp_path / "missing.sqlite"
    row = {"db_type": "sqlite", "db_name": str(path), "alias": "gone", "host": "", "port": 0}
    with pytest.raises(RemoteError, match="plik SQLite .* nie istnieje"):
        db_remote.connect(row, remote_settings)
    assert not path.exists()
    with pytest.raises(RemoteError, match="nie istnieje"):
        db_remote.connect({**row, "db_name": str(tmp_path)}, remote_settings)  # katalog to nie plik


def test_unknown_db_type(remote_settings):
    with pytest.raises(RemoteError, match="nieznany typ bazy 'oracle'"):
        db_remote.connect({"db_type": "oracle", "db_name": "x"}, remote_settings)


# --- katalog ----------------------------------------------------------------------------


def test_resolve_target_finds_table_column_and_primary_key(source, rconn):
    create_text_table(source, rows=[(1, "a")])
    target = db_remote.resolve_target(rconn, "articles", "body", extra_columns=["note"])
    assert (target.table, target.column, target.key) == ("articles", "body", "id")
    assert target.extra_columns == ("note",)
    quote = "`" if source["db_type"] == "mysql" else '"'
    assert target.quoted_column == f"{quote}body{quote}"
    assert target.quoted_key == f"{quote}id{quote}"
    assert target.quoted_extra == {"note": f"{quote}note{quote}"}
    if source["db_type"] == "pgsql":
        assert target.schema == "public"
        assert target.quoted_table == '"public"."articles"'
    else:
        assert target.schema is None
        assert target.quoted_table == f"{quote}articles{quote}"


def test_key_column_override(source, rconn):
    source_execute(
        source,
        "CREATE TABLE docs (code VARCHAR(20) PRIMARY KEY, seq INTEGER NOT NULL, maybe INTEGER, body TEXT)",
    )
    source_executemany(
        source, "INSERT INTO docs (code, seq, body) VALUES (%s, %s, %s)", [("b", 2, "dwa"), ("a", 1, "jeden")]
    )
    by_code = db_remote.resolve_target(rconn, "docs", "body")
    assert by_code.key == "code" and by_code.key_kinds == ("text",)
    assert db_remote.fetch_page(rconn, by_code, None, 10) == [("a", "jeden"), ("b", "dwa")]
    target = db_remote.resolve_target(rconn, "docs", "body", key_column="seq")
    assert target.key == "seq"
    assert db_remote.fetch_page(rconn, target, None, 10) == [(1, "jeden"), (2, "dwa")]
    both = db_remote.resolve_target(rconn, "docs", "body", key_column="seq, code")
    assert [c.name for c in both.key_columns] == ["seq", "code"]
    assert db_remote.fetch_page(rconn, both, None, 10) == [((1, "a"), "jeden"), ((2, "b"), "dwa")]
    with pytest.raises(RemoteError, match="'maybe'.*dopuszcza NULL.*task.key_column"):
        db_remote.resolve_target(rconn, "docs", "body", key_column="maybe")
    with pytest.raises(RemoteError, match="kolumna 'nope' nie istnieje.*task.key_column"):
        db_remote.resolve_target(rconn, "docs", "body", key_column="nope")


def test_missing_table_and_columns(source, rconn):
    create_text_table(source)
    with pytest.raises(RemoteError, match="tabela 'no_such_table' nie istnieje w źródle test-"):
        db_remote.resolve_target(rconn, "no_such_table", "body")
    with pytest.raises(RemoteError, match="kolumna 'no_such_col' nie istnieje w tabeli .*task.column_name"):
        db_remote.resolve_target(rconn, "articles", "no_such_col")
    with pytest.raises(RemoteError, match="kolumna 'no_export' nie istnieje.*task.export_column"):
        db_remote.resolve_target(rconn, "articles", "body", extra_columns=["no_export"])


@pytest.mark.parametrize(
    "ddl, reason",
    [
        ("CREATE TABLE t_nopk (id INTEGER, body TEXT)", "nie ma klucza głównego"),
        ("CREATE TABLE t_nopk (id INTEGER, body TEXT, UNIQUE (id))", "nie ma klucza głównego"),
        ("CREATE TABLE t_nopk (price REAL PRIMARY KEY, body TEXT)", "nie nadają się na klucz"),
    ],
    ids=["no_pk", "nullable_unique", "float_pk"],
)
def test_no_usable_key(source, rconn, ddl, reason):
    source_execute(source, ddl)
    with pytest.raises(RemoteError) as info:
        db_remote.resolve_target(rconn, "t_nopk", "body")
    message = str(info.value)
    assert "brak użytecznego klucza" in message and reason in message and "task.key_column" in message


INJECTIONS = [
    "x; DROP TABLE t",
    "articles; DROP TABLE articles",
    "articles`; DROP TABLE articles; --",
    'articles"; DROP TABLE articles; --',
    "articles]; DROP TABLE articles; --",
    "[articles]",
    "`articles`",
    '"articles"',
    "articles' OR '1'='1",
    "articles --",
    "articles ",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_identifier_injection_never_reaches_sql(source, rconn, name):
    create_text_table(source, rows=[(i, f"t{i}") for i in range(1, 6)])
    create_text_table(source, table="t", rows=[(1, "x")])
    with pytest.raises(RemoteError) as info:
        db_remote.resolve_target(rconn, name, "body")
    assert f"tabela {name!r} nie istnieje" in str(info.value)
    with pytest.raises(RemoteError, match="kolumna .* nie istnieje"):
        db_remote.resolve_target(rconn, "articles", name.replace("articles", "body"))
    with pytest.raises(RemoteError, match="kolumna .* nie istnieje"):
        db_remote.resolve_target(rconn, "articles", "body", key_column=name.replace("articles", "id"))
    assert table_exists(source, "articles") and table_exists(source, "t")
    assert table_count(source) == 5 and table_count(source, "t") == 1


def test_odd_but_real_table_name_is_quoted(source, rconn):
    name = 'odd"name`x]'
    quoted = db_remote.quote_identifier("mysql" if source["db_type"] == "mysql" else "pgsql", name)
    source_execute(source, f"CREATE TABLE {quoted} (id INTEGER PRIMARY KEY, body TEXT)")
    source_execute(source, f"INSERT INTO {quoted} (id, body) VALUES (1, 'ok')")
    target = db_remote.resolve_target(rconn, name, "body")
    assert target.table == name
    assert db_remote.fetch_page(rconn, target, None, 10) == [(1, "ok")]
    assert db_remote.count_rows(rconn, target) == 1


def test_pgsql_non_default_schema(pg_source, remote_settings):
    source_execute(pg_source, "CREATE SCHEMA shop")
    source_execute(pg_source, "CREATE TABLE shop.items (item_id INTEGER PRIMARY KEY, title TEXT)")
    source_execute(pg_source, "CREATE TABLE public.items (item_id INTEGER PRIMARY KEY, title TEXT)")
    source_execute(pg_source, "INSERT INTO shop.items VALUES (1, 'sklep'), (2, 'koszyk')")
    source_execute(pg_source, "INSERT INTO public.items VALUES (1, 'publiczny')")
    rconn = db_remote.connect(connection_row(pg_source), remote_settings)
    try:
        target = db_remote.resolve_target(rconn, "shop.items", "title")
        assert (target.schema, target.table, target.key) == ("shop", "items", "item_id")
        assert target.quoted_table == '"shop"."items"'
        assert db_remote.fetch_page(rconn, target, None, 10) == [(1, "sklep"), (2, "koszyk")]
        public = db_remote.resolve_target(rconn, "items", "title")
        assert public.schema == "public"
        assert db_remote.fetch_page(rconn, public, None, 10) == [(1, "publiczny")]
        with pytest.raises(RemoteError, match="tabela 'shop.missing' nie istnieje.*schemat.tabela"):
            db_remote.resolve_target(rconn, "shop.missing", "title")
        with pytest.raises(RemoteError, match="nie istnieje"):
            db_remote.resolve_target(rconn, "noschema.items", "title")
    finally:
        db_remote.close(rconn)


def test_dotted_name_is_not_a_schema_for_mysql(mysql_source, remote_settings):
    create_text_table(mysql_source, rows=[(1, "a")])
    rconn = db_remote.connect(connection_row(mysql_source), remote_settings)
    try:
        with pytest.raises(RemoteError, match="nie istnieje"):
            db_remote.resolve_target(rconn, f"{mysql_source['db_name']}.articles", "body")
        with pytest.raises(RemoteError, match="nie istnieje"):
            db_remote.resolve_target(rconn, "information_schema.tables", "table_name")
    finally:
        db_remote.close(rconn)


# --- odczyt -----------------------------------------------------------------------------


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "gaps"])
def test_keyset_paging_returns_every_row_once_in_key_order(source, rconn, contiguous):
    rng = random.Random(7)
    if contiguous:
        keys = list(range(1, 10_001))
    else:
        keys = sorted(rng.sample(range(1, 5_000_000), 10_000))
    rows = [(key, f"tekst {key} ż") for key in keys]
    shuffled = rows[:]
    rng.shuffle(shuffled)
    create_text_table(source, rows=shuffled)
    target = db_remote.resolve_target(rconn, "articles", "body")

    pages = list(db_remote.iter_pages(rconn, target, None, 500))
    assert len(pages) == 20 and all(len(page) == 500 for page in pages)
    assert [row for page in pages for row in page] == rows

    # Wznowienie od klucza w środku: tylko wiersze o większym kluczu.
    middle = keys[4_321]
    resumed = [row for page in db_remote.iter_pages(rconn, target, middle, 500) for row in page]
    assert resumed == rows[4_322:]
    assert db_remote.fetch_page(rconn, target, keys[-1], 500) == []
    assert db_remote.count_rows(rconn, target) == 10_000
    assert db_remote.max_key(rconn, target) == keys[-1]


def test_pages_see_rows_added_while_iterating(source, rconn):
    """Każda strona to osobna transakcja: nowe wiersze za bieżącą stroną są widoczne."""
    create_text_table(source, rows=[(i, str(i)) for i in range(1, 11)])
    target = db_remote.resolve_target(rconn, "articles", "body")
    pages = db_remote.iter_pages(rconn, target, None, 5)
    first = next(pages)
    assert [key for key, _ in first] == [1, 2, 3, 4, 5]
    source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (11, "nowy"))
    rest = [row for page in pages for row in page]
    assert [key for key, _ in rest] == [6, 7, 8, 9, 10, 11]
    assert db_remote.count_rows(rconn, target) == 11


def test_null_and_empty_text_stay_distinct(source, rconn):
    create_text_table(source, rows=[(1, None), (2, ""), (3, " "), (4, "null")])
    target = db_remote.resolve_target(rconn, "articles", "body")
    assert db_remote.fetch_page(rconn, target, None, 10) == [(1, None), (2, ""), (3, " "), (4, "null")]
    assert db_remote.fetch_by_keys(rconn, target, [1, 2]) == {1: (None,), 2: ("",)}


def test_long_unicode_text_round_trips_exactly(source, rconn):
    text = (POLISH_EMOJI * 2000)[:59_992] + "\r\n\t\\'\"`]"
    assert len(text) == 60_000
    source_execute(source, f"CREATE TABLE long_texts (id INTEGER PRIMARY KEY, body {long_text_type(source)})")
    source_execute(source, "INSERT INTO long_texts (id, body) VALUES (%s, %s)", (1, text))
    target = db_remote.resolve_target(rconn, "long_texts", "body")
    [(key, value)] = db_remote.fetch_page(rconn, target, None, 10)
    assert key == 1 and isinstance(value, str) and value == text
    assert db_remote.fetch_by_keys(rconn, target, [1])[1][0] == text
    changed = text.replace("😀", "🙂")
    result = db_remote.compare_and_set(rconn, target, [(1, text, changed)])
    assert result == db_remote.CasResult(written=[1], conflicts=[])
    assert source_query(source, "SELECT body FROM long_texts WHERE id = 1")[0][0] == changed


def test_binary_text_column_comes_back_as_str(source, rconn):
    blob = {"mysql": "LONGBLOB", "pgsql": "BYTEA", "sqlite": "BLOB"}[source["db_type"]]
    source_execute(source, f"CREATE TABLE blobs (id INTEGER PRIMARY KEY, body {blob})")
    source_execute(source, "INSERT INTO blobs (id, body) VALUES (%s, %s)", (1, "gęś 😀".encode()))
    target = db_remote.resolve_target(rconn, "blobs", "body")
    assert db_remote.fetch_page(rconn, target, None, 10) == [(1, "gęś 😀")]


def test_count_and_max_key_on_empty_table(source, rconn):
    create_text_table(source)
    target = db_remote.resolve_target(rconn, "articles", "body")
    assert db_remote.count_rows(rconn, target) == 0
    assert db_remote.max_key(rconn, target) is None
    assert list(db_remote.iter_pages(rconn, target, None, 500)) == []
    source_executemany(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", [(7, "a"), (3, "b")])
    assert db_remote.count_rows(rconn, target) == 2
    assert db_remote.max_key(rconn, target) == 7


def test_fetch_by_keys(source, rconn):
    create_text_table(source, rows=[(i, f"body {i}") for i in range(1, 1301)])
    source_execute(source, "UPDATE articles SET note = body WHERE id > 1200")
    target = db_remote.resolve_target(rconn, "articles", "body", extra_columns=["note"])
    keys = list(range(1, 1301, 1)) + [5, 5, 99_999]
    result = db_remote.fetch_by_keys(rconn, target, keys)
    assert len(result) == 1300 and 99_999 not in result
    assert result[1234] == ("body 1234",)
    both = db_remote.fetch_by_keys(rconn, target, [3, 1250], ["body", "note"])
    assert both == {3: ("body 3", None), 1250: ("body 1250", "body 1250")}
    assert db_remote.fetch_by_keys(rconn, target, []) == {}
    with pytest.raises(RemoteError, match="nie zostały sprawdzone w katalogu"):
        db_remote.fetch_by_keys(rconn, target, [1], ["secret_column"])


# --- zapis z kontrolą zmian ---------------------------------------------------------------


def test_compare_and_set_writes_matching_rows_and_reports_conflicts(source, rconn):
    create_text_table(
        source,
        rows=[(1, "Ala ma kota"), (2, "Ala ma kota"), (3, "Ala ma kota"), (4, None), (5, "bez zmian")],
    )
    target = db_remote.resolve_target(rconn, "articles", "body")
    # Po synchronizacji ktoś zmienił w źródle tylko wielkość liter (2) i dodał spację na końcu (3).
    source_execute(source, "UPDATE articles SET body = %s WHERE id = 2", ("ALA MA KOTA",))
    source_execute(source, "UPDATE articles SET body = %s WHERE id = 3", ("Ala ma kota ",))
    result = db_remote.compare_and_set(
        rconn,
        target,
        [
            (1, "Ala ma kota", "Ala ma kota."),
            (2, "Ala ma kota", "Ala ma kota."),
            (3, "Ala ma kota", "Ala ma kota."),
            (4, None, "nowy"),
            (404, "cokolwiek", "x"),
            (5, "bez zmian", None),
        ],
    )
    assert result.written == [1, 4, 5]
    assert dict(result.conflicts) == {
        2: "tekst w źródle zmienił się od synchronizacji",
        3: "tekst w źródle zmienił się od synchronizacji",
        404: "wiersz nie istnieje w źródle",
    }
    assert source_query(source, "SELECT id, body FROM articles ORDER BY id") == [
        (1, "Ala ma kota."),
        (2, "ALA MA KOTA"),
        (3, "Ala ma kota "),
        (4, "nowy"),
        (5, None),
    ]
    # Transakcja zakończona: inne połączenie może od razu pisać.
    source_execute(source, "UPDATE articles SET body = 'po' WHERE id = 1")


def test_compare_and_set_null_vs_empty_is_a_conflict(source, rconn):
    create_text_table(source, rows=[(1, ""), (2, None)])
    target = db_remote.resolve_target(rconn, "articles", "body")
    result = db_remote.compare_and_set(rconn, target, [(1, None, "x"), (2, "", "y")])
    assert result.written == [] and [key for key, _ in result.conflicts] == [1, 2]
    assert source_query(source, "SELECT id, body FROM articles ORDER BY id") == [(1, ""), (2, None)]


def test_compare_and_set_into_export_column(source, rconn):
    create_text_table(source, rows=[(1, "oryginał"), (2, "oryginał")])
    target = db_remote.resolve_target(rconn, "articles", "body", extra_columns=["note"])
    source_execute(source, "UPDATE articles SET body = 'Oryginał' WHERE id = 2")
    result = db_remote.compare_and_set(
        rconn, target, [(1, "oryginał", "poprawiony"), (2, "oryginał", "poprawiony")], write_column="note"
    )
    assert result.written == [1] and [key for key, _ in result.conflicts] == [2]
    assert source_query(source, "SELECT id, body, note FROM articles ORDER BY id") == [
        (1, "oryginał", "poprawiony"),
        (2, "Oryginał", None),
    ]
    with pytest.raises(RemoteError, match="kolumna zapisu 'id'"):
        db_remote.compare_and_set(rconn, target, [(1, "oryginał", "x")], write_column="id")


def test_compare_and_set_isolates_a_rejected_row(source, rconn):
    """Wiersz odrzucony przez źródło (CHECK) jest konfliktem z powodem; pozostałe są zapisane."""
    source_execute(
        source,
        "CREATE TABLE guarded (id INTEGER PRIMARY KEY, body TEXT, CHECK (body IS NULL OR body <> 'zakazane'))",
    )
    source_executemany(
        source, "INSERT INTO guarded (id, body) VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")]
    )
    target = db_remote.resolve_target(rconn, "guarded", "body")
    result = db_remote.compare_and_set(
        rconn, target, [(1, "a", "dozwolone"), (2, "b", "zakazane"), (3, "c", "C")]
    )
    assert result.written == [1, 3]
    [(key, reason)] = result.conflicts
    assert key == 2 and reason.startswith("źródło odrzuciło zapis wiersza")
    assert source_query(source, "SELECT id, body FROM guarded ORDER BY id") == [
        (1, "dozwolone"),
        (2, "b"),
        (3, "C"),
    ]
    # Połączenie nadal działa po wycofaniu punktu zapisu.
    assert db_remote.compare_and_set(rconn, target, [(1, "dozwolone", "x")]).written == [1]
    assert source_query(source, "SELECT body FROM guarded WHERE id = 1") == [("x",)]


def test_compare_and_set_many_rows_in_chunks(source, rconn):
    create_text_table(source, rows=[(i, f"t{i}") for i in range(1, 1201)])
    target = db_remote.resolve_target(rconn, "articles", "body")
    result = db_remote.compare_and_set(rconn, target, [(i, f"t{i}", f"T{i}") for i in range(1, 1202)])
    assert len(result.written) == 1200 and result.conflicts == [(1201, "wiersz nie istnieje w źródle")]
    assert source_query(source, "SELECT COUNT(*) FROM articles WHERE body LIKE 'T%%'")[0][0] == 1200


# --- czyste funkcje -----------------------------------------------------------------------


def _target(db_type: str) -> db_remote.Target:
    return db_remote.build_target(db_type, None, "articles", "body", [("id", "int", "bigint")])


@pytest.mark.parametrize(
    "db_type, first, nth",
    [
        (
            "mysql",
            "SELECT `id`, `body` FROM `articles` WHERE `id` IS NOT NULL ORDER BY `id` LIMIT 500",
            "SELECT `id`, `body` FROM `articles` WHERE `id` > %s ORDER BY `id` LIMIT 500",
        ),
        (
            "pgsql",
            'SELECT "id", "body" FROM "articles" WHERE "id" IS NOT NULL ORDER BY "id" LIMIT 500',
            'SELECT "id", "body" FROM "articles" WHERE "id" > %s ORDER BY "id" LIMIT 500',
        ),
        (
            "sqlite",
            'SELECT "id", "body" FROM "articles" WHERE "id" IS NOT NULL ORDER BY "id" LIMIT 500',
            'SELECT "id", "body" FROM "articles" WHERE "id" > ? ORDER BY "id" LIMIT 500',
        ),
    ],
)
def test_page_sql(db_type, first, nth):
    target = _target(db_type)
    assert db_remote.page_sql(db_type, target, True, 500) == first
    assert db_remote.page_sql(db_type, target, False, 500) == nth
    assert "OFFSET" not in nth.upper()
    with pytest.raises(ValueError):
        db_remote.page_sql(db_type, target, False, 0)


def test_quote_identifier_doubles_quote_char():
    assert db_remote.quote_identifier("mysql", "a`b") == "`a``b`"
    assert db_remote.quote_identifier("pgsql", 'a"b') == '"a""b"'
    assert db_remote.quote_identifier("sqlite", 'a"b') == '"a""b"'
    assert db_remote.quote_identifier("mssql", "a]b") == "[a]]b]"
    with pytest.raises(RemoteError, match="nieznany typ bazy"):
        db_remote.quote_identifier("oracle", "x")


def test_every_dialect_has_the_same_entries():
    keys = set(db_remote.DIALECTS["mysql"])
    assert all(set(d) == keys for d in db_remote.DIALECTS.values())
    assert set(db_remote.DIALECTS) == {"mysql", "pgsql", "mssql", "sqlite"}


@pytest.mark.parametrize("kind", ["pg_source", "sqlite_source"])
def test_table_name_case_differs_only_in_letters(kind, request, remote_settings):
    """W pgsql i sqlite niecytowana nazwa nie rozróżnia wielkości liter; nazwa z katalogu idzie do SQL."""
    source = request.getfixturevalue(kind)
    create_text_table(source, rows=[(1, "a")])
    rconn = db_remote.connect(connection_row(source), remote_settings)
    try:
        target = db_remote.resolve_target(rconn, "ARTICLES", "Body")
        assert (target.table, target.column) == ("articles", "body")
        assert db_remote.fetch_page(rconn, target, None, 5) == [(1, "a")]
    finally:
        db_remote.close(rconn)


def test_copy_field_bytes_reverses_every_copy_escape():
    """Pole COPY -> bajty tekstu: odwrotność ucieczek PostgreSQL (CopyAttributeOutText) dla losowych bajtów."""
    from lib.db_remote import copy_field_bytes, copy_unescape

    escapes = {b"\b": b"\\b", b"\f": b"\\f", b"\n": b"\\n", b"\r": b"\\r", b"\t": b"\\t", b"\v": b"\\v"}
    escapes[b"\\"] = b"\\\\"
    alphabet = list(escapes) + [b"a", b"N", b"'", b"\x1a", b"\x07", "ż".encode(), "😀".encode()]
    rng = random.Random(7)
    for _ in range(20000):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        field = b"".join(escapes.get(bytes([c]), bytes([c])) for c in raw)
        assert copy_field_bytes(field) == raw, (raw, field)
        assert copy_unescape(field) == raw.decode("utf-8")
    assert copy_unescape(b"\\N") is None


def test_mysql_source_with_use_ssl_requires_tls(remote_settings):
    # use_ssl = TLS wymagany (jeden kontekst na proces): serwer bez TLS to błąd połączenia, nie
    # cichy powrót do połączenia bez szyfrowania.
    have_ssl = pymysql.connect(**MYSQL_SERVER)
    try:
        with have_ssl.cursor() as cursor:
            cursor.execute("SHOW VARIABLES LIKE 'have_ssl'")
            row = cursor.fetchone()
    finally:
        have_ssl.close()
    if row and row[1] == "YES":
        pytest.skip("ten serwer MariaDB ma TLS")
    row = {
        "db_type": "mysql",
        "host": MYSQL_SERVER["host"],
        "port": MYSQL_SERVER["port"],
        "db_name": "mysql",
        "db_user": MYSQL_SERVER["user"],
        "db_password": MYSQL_SERVER["password"],
        "use_ssl": 1,
        "alias": "tls-required",
    }
    with pytest.raises(RemoteError):
        db_remote.connect(row, remote_settings)
    plain = db_remote.connect({**row, "use_ssl": 0}, remote_settings)
    db_remote.close(plain)
