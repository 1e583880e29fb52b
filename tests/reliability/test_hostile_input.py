"""Wrogie dane wejściowe: identyfikatory spoza katalogu i teksty z trudnymi znakami.

Testy oparte na własnościach (hypothesis) na prawdziwych bazach PostgreSQL, MariaDB i SQLite:

* ``resolve_target`` dla dowolnych nazw tabeli/kolumny/klucza albo zwraca wyłącznie nazwy
  z katalogu źródła, albo zgłasza ``RemoteError`` - a żaden SQL zbudowany z nazwy spoza
  katalogu nie trafia do serwera (każde wykonane zapytanie jest nagrywane na połączeniu);
* dziwne, ale prawdziwe nazwy (cudzysłów, średnik, odwrócony apostrof, spacja) są poprawnie
  cytowane i stronicowanie zwraca ich wiersze;
* teksty (emoji 4-bajtowe, znaki łączące, RTL, znaki sterujące, CRLF, spacje i tabulatory na
  końcu, tekst tuż przy limicie 65 535 bajtów kolumny TEXT) przechodzą sync -> AI -> akceptacja
  -> eksport bajt w bajt.
"""

import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lib import db_remote
from lib.ai import run as ai_worker
from lib.errors import RemoteError
from lib.export.run import run_export
from lib.load_config import Settings
from lib.review.decisions import set_decision
from lib.sync import engine as sync
from tests.fake_openai import correct_text, fake_openai_fixture  # noqa: F401
from tests.helpers import (
    add_connection,
    add_model,
    add_task,
    sha256,
    simulate_ai,
    source_execute,
    source_query,
)

SOURCES = ["pg_source", "mysql_source", "sqlite_source"]

# Prawdziwe tabele o dziwnych nazwach: (tabela, kolumna tekstu, kolumna klucza).
WEIRD_TABLES = [
    ('odd "name', 'te"xt', 'i"d'),
    ("we;ird", "col;--", "k;ey"),
    ("back`tick", "b`ody", "i`d"),
    ("sp ace [x]", "bo dy]", "[id"),
    ("zażółć 表 ✓", "treść", "klucz"),
]

# Znaki, które łatwo psują składanie SQL albo porównania nazw.
# NUL też: żaden katalog go nie zna, a psycopg2 odrzuca go w parametrze własnym ValueError.
HOSTILE_CHARS = list("\"'`[];-- .\\/*%_\t\n\r\x00\x01\x1f") + ["ź", "表", "🙂", "\u0301", "\u05d0", "\u202e"]

name_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(HOSTILE_CHARS),
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
    ),
    min_size=0,
    max_size=40,
)

# Nazwy prawdziwe (także w innej wielkości liter), ataki klasyczne i dowolny tekst.
REAL_NAMES = ["articles", "ARTICLES", "body", "id", "sentinel", "public.articles"] + [
    name for row in WEIRD_TABLES for name in row
]
ATTACKS = [
    "articles; DROP TABLE sentinel",
    "articles`; DROP TABLE sentinel; --",
    'articles"; DROP TABLE sentinel; --',
    "articles]; DROP TABLE sentinel; --",
    "body FROM sentinel --",
    "id) OR 1=1 --",
    "sentinel WHERE 1=0; DELETE FROM sentinel; --",
    "articles ",
    " articles",
    "public.articles; DROP TABLE sentinel",
    "pg_catalog.pg_tables",
    "information_schema.tables",
    "sqlite_master",
]
identifier = st.one_of(name_text, st.sampled_from(REAL_NAMES), st.sampled_from(ATTACKS))


@st.composite
def near_real_triples(draw) -> tuple[str, str, str | None]:
    """Prawdziwa trójka (tabela, kolumna, klucz), każda nazwa bez zmian, w innej wielkości liter,
    z wrogim dopiskiem albo zastąpiona dowolnym tekstem - żeby część przykładów się rozwiązywała."""
    table, column, key = draw(st.sampled_from([("articles", "body", "id"), *WEIRD_TABLES]))

    def variant(name: str) -> str:
        if draw(st.integers(0, 3)):
            return name  # zwykle bez zmian, żeby cała trójka często była prawdziwa
        return draw(
            st.one_of(
                st.sampled_from([name.upper(), name.lower(), name.title()]),
                name_text.map(lambda extra: name + extra),
                name_text.map(lambda extra: extra + name),
                st.sampled_from(ATTACKS),
                identifier,
            )
        )

    return variant(table), variant(column), draw(st.one_of(st.none(), st.just(key).map(variant)))


any_triple = st.one_of(
    near_real_triples(), st.tuples(identifier, identifier, st.one_of(st.none(), identifier))
)

SETTINGS = {"REMOTE_CONNECT_TIMEOUT": 10, "MSSQL_ODBC_DRIVER": "ODBC Driver 18 for SQL Server"}


@pytest.fixture(params=SOURCES)
def source(request):
    return request.getfixturevalue(request.param)


# --- nagrywanie zapytań (obserwacja prawdziwego połączenia, nie atrapa bazy) -----------------


class RecordingCursor:
    """Kursor przekazujący wszystko do prawdziwego kursora i zapisujący tekst każdego SQL."""

    def __init__(self, cursor, log: list[str]) -> None:
        self._cursor = cursor
        self._log = log

    def execute(self, sql, params=()):
        self._log.append(sql)
        return self._cursor.execute(sql, params)

    def executemany(self, sql, rows):
        self._log.append(sql)
        return self._cursor.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class RecordingConn:
    """Połączenie przekazujące wywołania do prawdziwego połączenia; kursory nagrywają SQL."""

    def __init__(self, conn, log: list[str]) -> None:
        self._conn = conn
        self._log = log

    def cursor(self, *args, **kwargs):
        return RecordingCursor(self._conn.cursor(*args, **kwargs), self._log)

    def execute(self, sql, params=()):  # sqlite3.Connection.execute
        self._log.append(sql)
        return self._conn.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def recording_connect(source: dict) -> tuple[db_remote.RemoteConn, list[str]]:
    """Łączy przez ``db_remote.connect`` i podmienia połączenie na nagrywające."""
    row = {k: v for k, v in source.items() if k != "conn"}
    rconn = db_remote.connect(row, SETTINGS)
    log: list[str] = []
    return rconn._replace(conn=RecordingConn(rconn.conn, log)), log


# --- przygotowanie źródła -----------------------------------------------------------------


def _q(source: dict, name: str) -> str:
    """Cytuje nazwę w teście (tylko nazwy, które test sam wybrał)."""
    if source["db_type"] == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def create_catalog(source: dict) -> None:
    """Tworzy ``articles``, ``sentinel`` i tabele o dziwnych nazwach, każdą z trzema wierszami."""
    kind = source["db_type"]
    key_type = "INTEGER" if kind == "sqlite" else "BIGINT"
    for table, column, key in [("articles", "body", "id"), ("sentinel", "body", "id"), *WEIRD_TABLES]:
        source_execute(
            source,
            f"CREATE TABLE {_q(source, table)} ({_q(source, key)} {key_type} PRIMARY KEY, {_q(source, column)} TEXT)",
        )
        for n in (1, 2, 3):
            source_execute(
                source,
                f"INSERT INTO {_q(source, table)} ({_q(source, key)}, {_q(source, column)}) VALUES (%s, %s)",
                (n, f"{table} {n}"),
            )


def catalog_state(source: dict) -> dict[str, list[tuple]]:
    """Wszystkie tabele źródła z ich wierszami (do porównania przed i po)."""
    kind = source["db_type"]
    if kind == "pgsql":
        names = source_query(
            source,
            "SELECT table_name FROM information_schema.tables WHERE table_schema NOT IN "
            "('pg_catalog', 'information_schema')",
        )
    elif kind == "mysql":
        names = source_query(
            source, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
    else:
        names = source_query(source, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    state = {}
    for (name,) in names:
        state[name] = sorted(source_query(source, f"SELECT * FROM {_q(source, name)}"))
    return state


def real_columns() -> dict[str, set[str]]:
    """Prawdziwe nazwy kolumn każdej tabeli - tak, jak test je utworzył (bez kodu produkcyjnego)."""
    tables = {"articles": ("body", "id"), "sentinel": ("body", "id")}
    tables.update({table: (column, key) for table, column, key in WEIRD_TABLES})
    return {table: set(cols) for table, cols in tables.items()}


# --- identyfikatory -----------------------------------------------------------------------


def test_weird_but_real_names_resolve_and_page(source):
    """Prawdziwe nazwy z cudzysłowem, średnikiem, backtickiem, nawiasem i spacją działają."""
    create_catalog(source)
    rconn, _log = recording_connect(source)
    try:
        for table, column, key in WEIRD_TABLES:
            for key_arg in (key, None):
                target = db_remote.resolve_target(rconn, table, column, key_arg)
                assert (target.table, target.column, target.key) == (table, column, key)
                rows = [row for page in db_remote.iter_pages(rconn, target, None, 2) for row in page]
                assert rows == [(n, f"{table} {n}") for n in (1, 2, 3)]
                assert db_remote.count_rows(rconn, target) == 3
                assert db_remote.fetch_by_keys(rconn, target, [2, 3]) == {
                    2: (f"{table} 2",),
                    3: (f"{table} 3",),
                }
    finally:
        db_remote.close(rconn)


@pytest.mark.parametrize("kind", SOURCES)
def test_hostile_identifiers_never_reach_sql(request, kind):
    """Dowolna nazwa: wynik tylko z katalogu albo RemoteError; SQL tylko ze stałych i nazw katalogu."""
    source = request.getfixturevalue(kind)
    create_catalog(source)
    before = catalog_state(source)
    columns_of = real_columns()
    rconn, log = recording_connect(source)
    catalog_sql = {
        rconn.dialect[q] for q in ("sql_tables", "sql_columns", "sql_primary_key", "sql_unique_keys")
    }
    outcomes = {"resolved": 0, "refused": 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(triple=any_triple)
    @example(triple=("articles; DROP TABLE sentinel", "body", None))
    @example(triple=("articles", "body; DELETE FROM sentinel", None))
    @example(triple=("articles", "body", "id; DROP TABLE sentinel"))
    @example(triple=('odd "name', 'te"xt', 'i"d'))
    @example(triple=("we;ird", "col;--", None))
    @example(triple=("ARTICLES", "BODY", "ID"))
    @example(triple=("articles ", "body", None))
    @example(triple=("arti\x00cles", "body", None))
    @example(triple=("articles", "bo\x00dy", "id\x00"))
    def check(triple):
        table, column, key = triple
        log.clear()
        try:
            target = db_remote.resolve_target(rconn, table, column, key)
        except RemoteError:
            outcomes["refused"] += 1
            # Odmowa: do serwera poszły wyłącznie stałe zapytania katalogowe (nazwa jako parametr).
            assert set(log) <= catalog_sql, log
        else:
            outcomes["resolved"] += 1
            assert set(log) <= catalog_sql, log
            # Wynik to nazwy z katalogu, nigdy tekst podany przez użytkownika w innej postaci.
            assert target.table in columns_of
            key_names = [column.name for column in target.key_columns]
            assert {target.column, *key_names} <= columns_of[target.table]
            # ... i to te nazwy, o które pytano (najwyżej inna wielkość liter albo schemat z przodu).
            assert table.casefold() in (target.table.casefold(), f"{target.schema}.{target.table}".casefold())
            assert column.casefold() == target.column.casefold()
            # Pusty klucz = klucz główny; lista po przecinku = te kolumny w tej kolejności.
            wanted = [n.strip() for n in key.split(",") if n.strip()] if key and "," in key else [key]
            assert not key or [n.casefold() for n in wanted] == [n.casefold() for n in key_names]
            assert target.quoted_table.endswith(db_remote.quote_identifier(rconn.db_type, target.table))
            log.clear()
            page = db_remote.fetch_page(rconn, target, None, 10)
            assert [k for k, _text in page] == [1, 2, 3]
            if target.column not in key_names:
                assert [text for _k, text in page] == [f"{target.table} {n}" for n in (1, 2, 3)]
            assert all(db_remote.quote_identifier(rconn.db_type, target.table) in sql for sql in log)
        assert catalog_state(source) == before

    try:
        check()
    finally:
        db_remote.close(rconn)
    assert catalog_state(source) == before
    # Test, który nigdy nie rozwiązuje nazwy (albo nigdy nie odmawia), niczego by nie dowodził.
    assert outcomes["resolved"] > 0 and outcomes["refused"] > 0, outcomes


# --- teksty -------------------------------------------------------------------------------

# Limit kolumny TEXT w MariaDB (źródło) w bajtach.
MYSQL_TEXT_LIMIT = 65_535

FRAGMENTS = [
    "🙂",
    "👩‍👩‍👧",  # sekwencja ZWJ
    "\U0001f600",
    "e\u0301",  # e + akcent łączący
    "a\u0308\u0323",
    "\u05e9\u05dc\u05d5\u05dd",  # hebrajski
    "مرحبا بالعالم",  # arabski
    "\u200f\u202e\u2066",  # znaczniki kierunku
    "\r\n",
    "\n",
    "\r",
    "\t",
    " ",
    "  \t ",
    "\x01",
    "\x1b[31m",
    "\x1f",
    "\x7f",
    "\u2028",
    "\ufeff",
    "\\",
    "'",
    '"',
    "`",
    "%s",
    "{name}",
    "zażółć",
]

text_chars = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
hostile_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=text_chars, max_size=12)), max_size=8
).map("".join)

# Wszystkie nazwane przypadki w jednym przykładzie (jedna synchronizacja zamiast kilkunastu).
NAMED_CASES = [
    "",
    " ",
    "\t",
    "koniec ze spacją ",
    "koniec z tabulatorem\t",
    "spacje i tab na końcu \t \t",
    "CRLF\r\ndruga\r\n",
    "LF\ndruga\n",
    "mieszane\r\n\n\r",
    "emoji 🙂👩‍👩‍👧\U0001f600 4 bajty",
    "łączące: e\u0301 a\u0308\u0323 n\u0303",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "مرحبا بالعالم \u200f!",
    "sterujące " + "".join(chr(c) for c in range(1, 32)) + "\x7f",
    "cudzysłowy ' \" ` \\ %s {name} ; -- /* */",
]


def _near_limit_text() -> str:
    """Tekst o długości dokładnie 65 535 bajtów UTF-8 ze znakami 2-, 3- i 4-bajtowymi."""
    text = "zażółć gęślą jaźń 表 🙂 e\u0301\r\n" * 1500
    rest = MYSQL_TEXT_LIMIT - len(text.encode("utf-8"))
    text += "ą" * (rest // 2) + "x" * (rest % 2)
    assert len(text.encode("utf-8")) == MYSQL_TEXT_LIMIT
    return text


NEAR_LIMIT = _near_limit_text()
_counter = itertools.count(1)


def corrected_version(text: str) -> str:
    """Tekst "po korekcie" różny od oryginału i mieszczący się w kolumnie TEXT źródła."""
    candidate = text + " ✓"
    if len(candidate.encode("utf-8")) <= MYSQL_TEXT_LIMIT:
        return candidate
    # Przy limicie: ta sama długość w bajtach, inna kolejność znaków.
    return text[::-1]


def source_bytes(source: dict, table: str) -> dict[int, bytes | None]:
    """Czyta kolumnę źródła jako surowe bajty UTF-8 (bez dekodowania przez sterownik)."""
    kind = source["db_type"]
    expr = {
        "pgsql": "convert_to(body, 'UTF8')",
        "mysql": "CAST(body AS BINARY)",
        "sqlite": "CAST(body AS BLOB)",
    }
    rows = source_query(source, f"SELECT id, {expr[kind]} FROM {table} ORDER BY id")
    return {int(key): None if value is None else bytes(value) for key, value in rows}


def create_source_table(source: dict, table: str, texts: list[str]) -> None:
    """Tabela ``(id, body TEXT)`` w źródle; kolumna MariaDB to TEXT (limit 65 535 bajtów)."""
    kind = source["db_type"]
    if kind == "mysql":
        source_execute(
            source,
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT COLLATE utf8mb4_general_ci) CHARACTER SET utf8mb4",
        )
    else:
        source_execute(
            source,
            f"CREATE TABLE {table} (id {'INTEGER' if kind == 'sqlite' else 'BIGINT'} PRIMARY KEY, body TEXT)",
        )
    for key, text in enumerate(texts, start=1):
        source_execute(source, f"INSERT INTO {table} (id, body) VALUES (%s, %s)", (key, text))


AI_FAST = {
    "AI_BACKOFF_S": 0.05,
    "AI_MAX_RETRIES": 1,
    "AI_TIMEOUT_S": 10.0,
    "AI_CONCURRENCY": 4,
    "AI_MAX_ATTEMPTS": 3,
}


def round_trip(settings_: Settings, db, source: dict, base_url: str, texts: list[str]) -> None:
    """Sync -> AI (serwer testowy) -> wynik "korekty" -> akceptacja -> eksport -> odczyt bajtów."""
    table = f"t_{next(_counter)}"
    create_source_table(source, table, texts)
    id_model = add_model(db, name=f"m_{table}_{source['db_type']}", base_url=base_url)
    id_task = add_task(
        db,
        add_connection(db, source, alias=f"{table}-{source['db_type']}"),
        table=table,
        id_ai_model=id_model,
    )
    sync.sync_task(settings_, id_task)
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    rows = {r["remote_id"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    assert sorted(rows) == list(range(1, len(texts) + 1))
    for key, text in enumerate(texts, start=1):
        # Kopia lokalna = źródło bajt w bajt, hash z bajtów UTF-8.
        assert rows[key]["text_original"].encode("utf-8") == text.encode("utf-8"), key
        assert rows[key]["original_hash"] == sha256(text)

    # Prawdziwe AI przez HTTP: serwer zwraca nieznany tekst bez zmian, znane błędy poprawia.
    ai_worker.run_ai(settings_.updated(**AI_FAST), id_task)
    rows = {r["remote_id"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    for key, text in enumerate(texts, start=1):
        row = rows[key]
        if row["status"] == "processed":
            expected = correct_text(text)[0]
            assert row["text_corrected"].encode("utf-8") == expected.encode("utf-8"), key
            assert row["local_hash"] == sha256(expected)
        else:
            # Nieprzetworzony może zostać tylko tekst bez treści: same białe znaki (model nie ma czego
            # poprawić) albo znaki, które sortowanie kolumny uznaje za puste (np. sterujące, łączące).
            empty_for_db = db.query_value(
                "SELECT text_original = '' FROM task_item WHERE id_task_item=%s", (row["id_task_item"],)
            )
            assert not text.strip() or empty_for_db, (key, text, row["status"], row["ai_error"])
            assert row["status"] == "pending" and row["text_corrected"] is None

    corrected = {key: corrected_version(text) for key, text in enumerate(texts, start=1)}
    simulate_ai(db, id_task, corrected)
    changed, refused = set_decision(db, id_task, None, "accepted", "test")
    assert refused == [] and sorted(changed) == sorted(r["id_task_item"] for r in rows.values())
    stats = run_export(settings_, id_task)
    assert stats["exported"] == len(texts) and stats["conflicts"] == 0, stats
    assert source_bytes(source, table) == {key: text.encode("utf-8") for key, text in corrected.items()}

    # Resync po eksporcie: źródło = text_corrected, więc nic się nie zmieniło (hash z tych samych bajtów).
    again = sync.sync_task(settings_, id_task)
    task = db.query_one(
        "SELECT status, records_new, records_updated, records_deleted FROM task WHERE id_task=%s", (id_task,)
    )
    assert task == {"status": "completed", "records_new": 0, "records_updated": 0, "records_deleted": 0}, (
        task,
        again,
    )
    assert db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='exported'", (id_task,)
    ) == len(texts)


@pytest.mark.parametrize("kind", SOURCES)
def test_texts_survive_sync_ai_export_byte_for_byte(request, kind, settings, db, fake_openai):
    """Trudne teksty przechodzą całą drogę bez zmiany ani jednego bajtu (każde źródło)."""
    source = request.getfixturevalue(kind)

    @settings_for_texts
    @given(texts=st.lists(hostile_text, min_size=1, max_size=5))
    @example(texts=NAMED_CASES)
    @example(texts=[NEAR_LIMIT, "krótki bląd"])
    def check(texts):
        round_trip(settings, db, source, fake_openai["base_url"], texts)

    check()


settings_for_texts = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
