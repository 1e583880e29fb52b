"""Źródła benchmarku synchronizacji: jedna tabela ``texts`` na rodzaj źródła i klucza.

Rodzaje (``KINDS``): PostgreSQL z kluczem BIGINT, PostgreSQL z kluczem UUID, MariaDB z kluczem INT
i plik SQLite. Każda tabela ma kolumny ``id`` (klucz), ``n`` (numer wiersza 1..N - po nim zmiany są
rozłożone po całej tabeli także przy kluczu UUID, którego porządek jest losowy), ``body`` (tekst)
i ``updated_at`` (kolumna kursora). Tu są: założenie tabeli, zmiany (``change``), suma kontrolna
par klucz-tekst (``fingerprint``), polecenie ``raw copy`` i wiersz ``database_connection``.
"""

import hashlib
import io
import os
import random
import shutil
import sqlite3
import uuid
from typing import Any

import psycopg2
import pymysql

PG_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}
MY_SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
TABLE = "texts"
# Znacznik czasu wierszy przed zmianami (kursor: wiersze starsze o wiele więcej niż SYNC_CURSOR_LAG_S).
OLD_STAMP = "2026-01-01 00:00:00"

# Rodzaj -> silnik źródła, typ klucza w ``raw copy`` i wyrażenie klucza pozycji w lokalnej bazie.
KINDS: dict[str, dict[str, Any]] = {
    "pg_bigint": {"engine": "pgsql", "label": "PostgreSQL BIGINT key", "plain_key": "BIGINT"},
    "pg_uuid": {"engine": "pgsql", "label": "PostgreSQL UUID key", "plain_key": "CHAR(36)"},
    "mariadb_int": {"engine": "mysql", "label": "MariaDB INT key", "plain_key": "INT"},
    "sqlite": {"engine": "sqlite", "label": "SQLite INTEGER key", "plain_key": "BIGINT"},
}

# Słownik generatora: polskie słowa z diakrytykami, trochę znaków 4-bajtowych i rzadka nowa linia.
WORDS = (
    "zażółć gęślą jaźń źdźbło łódź żółw chrząszcz brzmi w trzcinie szczebrzeszyn się ślimak "
    "pójdź kińże tę chmurność w głąb flaszy książka miasto ulica rzeka dzień noc człowiek "
    "urząd wniosek decyzja termin opłata faktura zamówienie dostawa reklamacja klient umowa "
    "aneks pełnomocnictwo oświadczenie zaświadczenie wyjaśnienie odpowiedź pytanie prośba "
    "że bo ale oraz lub więc jednak także również już jeszcze bardzo tylko który która które "
    "był była było będzie można trzeba należy proszę dziękuję uprzejmie serdecznie pozdrawiam "
    "Kraków Gdańsk Wrocław Łódź Poznań Szczecin Białystok Rzeszów Zielona Góra Częstochowa "
    "napewno wogóle niewiem poprostu conajmniej narazie wziąść poszłem "
    "😀 🙂 👍 𝄞 𠜎 ✓ № § – „ ” … ,"
).split()
WORDS += ["\n"] * 2
SUFFIX = " — poprawka 🙂"


def make_corpus(rng: random.Random, chars: int = 1 << 20) -> str:
    """Buduje ciąg słów ze słownika, z którego tnie się teksty wierszy."""
    parts, size = [], 0
    while size < chars:
        word = rng.choice(WORDS)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts).replace(" \n ", "\n")


def generate_rows(rng: random.Random, corpus: str, first_id: int, count: int) -> list[tuple[int, str]]:
    """Zwraca ``count`` wierszy ``(n, tekst)`` o długości 50-600 znaków, kolejne n od ``first_id``."""
    rows = []
    span = len(corpus) - 601
    for row_id in range(first_id, first_id + count):
        length = rng.randint(50, 600)
        start = rng.randrange(span)
        text = corpus[start : start + length]
        # Bez spacji na brzegach: to nie jest test przypadków brzegowych porównań z PAD SPACE.
        if text[0].isspace():
            text = "A" + text[1:]
        if text[-1].isspace():
            text = text[:-1] + "."
        rows.append((row_id, text))
    return rows


def _escape(text: str) -> str:
    """Tekst w formacie tekstowym COPY / LOAD DATA (ukośnik, tabulator, nowa linia)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_into_pg(conn, rows: list[tuple[int, str]]) -> None:
    """Ładuje wiersze ``(id, tekst)`` do tabeli ``texts (id BIGINT PRIMARY KEY, body TEXT)`` przez COPY."""
    buffer = io.StringIO("".join(f"{row_id}\t{_escape(text)}\n" for row_id, text in rows))
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {TABLE} (id, body) FROM STDIN", buffer)


def pg_connect(dbname: str):
    """Połączenie bezpośrednio z PostgreSQL (z pominięciem proxy; nie wlicza się do bajtów)."""
    conn = psycopg2.connect(dbname=dbname, **PG_SERVER)
    conn.autocommit = True
    return conn


def my_connect(database: str | None = None):
    """Połączenie z MariaDB (autocommit, utf8mb4)."""
    return pymysql.connect(database=database, autocommit=True, charset="utf8mb4", **MY_SERVER)


def my_value(database: str | None, sql: str, params: tuple = ()) -> Any:
    """Pierwsza kolumna pierwszego wiersza zapytania do MariaDB."""
    conn = my_connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def _key_value(kind: str, rng: random.Random, n: int) -> Any:
    """Klucz wiersza numer ``n``: sam numer albo UUID z generatora (porządek kluczy losowy)."""
    if kind == "pg_uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return n


def _connect(src: dict[str, Any]):
    if src["engine"] == "pgsql":
        return pg_connect(src["db"])
    if src["engine"] == "mysql":
        return my_connect(src["db"])
    return sqlite3.connect(src["db"], isolation_level=None)


def _execute(src: dict[str, Any], statements: list[str]) -> int:
    """Wykonuje polecenia (bez parametrów) na źródle; zwraca liczbę wierszy ostatniego."""
    conn = _connect(src)
    try:
        cur = conn.cursor()
        count = 0
        for sql in statements:
            cur.execute(sql)
            count = cur.rowcount
        cur.close()
        return count
    finally:
        conn.close()


def _insert(src: dict[str, Any], rows: list[tuple[Any, int, str, str]]) -> None:
    """Wstawia wiersze ``(id, n, tekst, updated_at)`` (PostgreSQL przez COPY, reszta paczkami)."""
    if src["engine"] == "pgsql":
        buffer = io.StringIO("".join(f"{k}\t{n}\t{_escape(t)}\t{s}\n" for k, n, t, s in rows))
        conn = pg_connect(src["db"])
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY {TABLE} (id, n, body, updated_at) FROM STDIN", buffer)
        conn.close()
        return
    mark = "%s" if src["engine"] == "mysql" else "?"
    conn = _connect(src)
    try:
        cur = conn.cursor()
        if src["engine"] == "sqlite":
            cur.execute("BEGIN")
        for start in range(0, len(rows), 5000):
            cur.executemany(
                f"INSERT INTO {TABLE} (id, n, body, updated_at) VALUES ({mark}, {mark}, {mark}, {mark})",
                rows[start : start + 5000],
            )
        if src["engine"] == "sqlite":
            cur.execute("COMMIT")
        cur.close()
    finally:
        conn.close()


def create(kind: str, tag: str, workdir: str, rows: int, seed: int) -> dict[str, Any]:
    """Zakłada źródło rodzaju ``kind`` z N wierszami; zwraca jego opis (z generatorem do dalszych wstawień)."""
    engine = KINDS[kind]["engine"]
    src: dict[str, Any] = {"kind": kind, "engine": engine, "rows": rows, "next_n": rows + 1}
    if engine == "pgsql":
        src["db"] = f"ailexia_bench_src_{kind}_{tag}"
        admin = pg_connect("postgres")
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE \"{src['db']}\" ENCODING 'UTF8' TEMPLATE template0")
        admin.close()
        key = "uuid" if kind == "pg_uuid" else "BIGINT"
        ddl = (
            f"CREATE TABLE {TABLE} (id {key} PRIMARY KEY, n BIGINT NOT NULL, body TEXT, updated_at TIMESTAMP)"
        )
    elif engine == "mysql":
        src["db"] = f"ailexia_bench_src_{kind}_{tag}"
        my_value(None, f"CREATE DATABASE `{src['db']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        ddl = (
            f"CREATE TABLE {TABLE} (id INT PRIMARY KEY, n BIGINT NOT NULL, body TEXT, updated_at DATETIME(6)) "
            "CHARACTER SET utf8mb4"
        )
    else:
        src["db"] = os.path.join(workdir, f"source_{kind}.sqlite")
        ddl = f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, body TEXT, updated_at TEXT)"
    _execute(src, [ddl])
    rng = random.Random(seed)
    src["rng"], src["corpus"] = rng, make_corpus(rng)
    for first in range(1, rows + 1, 100_000):
        part = generate_rows(rng, src["corpus"], first, min(100_000, rows + 1 - first))
        _insert(src, [(_key_value(kind, rng, n), n, text, OLD_STAMP) for n, text in part])
    if engine == "pgsql":
        _execute(src, [f"VACUUM ANALYZE {TABLE}"])
    elif engine == "mysql":
        _execute(src, [f"ANALYZE TABLE {TABLE}"])
    return src


def drop(src: dict[str, Any]) -> None:
    """Usuwa źródło (bazę PostgreSQL / MariaDB; plik SQLite znika z katalogiem roboczym)."""
    if src["engine"] == "pgsql":
        admin = pg_connect("postgres")
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
                (src["db"],),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{src["db"]}"')
        admin.close()
    elif src["engine"] == "mysql":
        my_value(None, f"DROP DATABASE IF EXISTS `{src['db']}`")


def _now_sql(engine: str) -> str:
    return {"pgsql": "now()", "mysql": "NOW(6)", "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now')"}[engine]


def change(
    src: dict[str, Any], updated: str, deleted: str | None = None, inserted: int = 0
) -> dict[str, int]:
    """Zmienia wiersze z warunkiem ``updated`` na ``n``, usuwa ``deleted``, dopisuje ``inserted`` nowych.

    Returns:
        Oczekiwane liczniki resyncu (``records_new``, ``records_updated``, ``records_deleted``).
    """
    engine = src["engine"]
    body = f"CONCAT(body, '{SUFFIX}')" if engine == "mysql" else f"body || '{SUFFIX}'"
    count = _execute(
        src, [f"UPDATE {TABLE} SET body = {body}, updated_at = {_now_sql(engine)} WHERE {updated}"]
    )
    gone = _execute(src, [f"DELETE FROM {TABLE} WHERE {deleted}"]) if deleted else 0
    if inserted:
        first = src["next_n"]
        part = generate_rows(src["rng"], src["corpus"], first, inserted)
        stamp = _execute_value(src, f"SELECT {_now_sql(engine)}")
        _insert(src, [(_key_value(src["kind"], src["rng"], n), n, text, stamp) for n, text in part])
        src["next_n"] += inserted
    if engine == "pgsql":
        _execute(src, [f"VACUUM ANALYZE {TABLE}"])
    return {"records_new": inserted, "records_updated": count, "records_deleted": gone}


def _execute_value(src: dict[str, Any], sql: str) -> Any:
    conn = _connect(src)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        value = cur.fetchone()[0]
        cur.close()
        return value
    finally:
        conn.close()


def fingerprint(src: dict[str, Any]) -> dict[str, int]:
    """Liczba wierszy, bajty tekstów (UTF-8) i suma MD5 par ``klucz:tekst`` źródła."""
    if src["engine"] == "pgsql":
        return source_fingerprint(src["db"])
    if src["engine"] == "mysql":
        return mariadb_fingerprint(src["db"], TABLE, "id", "body")
    conn = sqlite3.connect(src["db"])
    try:
        count = text_bytes = digest = 0
        for key, body in conn.execute(f"SELECT id, body FROM {TABLE}"):
            count += 1
            text_bytes += len(body.encode("utf-8"))
            digest += int(hashlib.md5(f"{key}:{body}".encode()).hexdigest()[:12], 16)
    finally:
        conn.close()
    return {"rows": count, "text_bytes": text_bytes, "digest": digest}


def source_fingerprint(pg_db: str) -> dict[str, int]:
    """``fingerprint`` tabeli ``texts`` w PostgreSQL (klucz jako tekst: liczba albo UUID z myślnikami)."""
    conn = pg_connect(pg_db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM(octet_length(body)), 0), "
                f"COALESCE(SUM(('x' || substr(md5(id::text || ':' || body), 1, 12))::bit(48)::bigint), 0) "
                f"FROM {TABLE}"
            )
            count, text_bytes, digest = cur.fetchone()
    finally:
        conn.close()
    return {"rows": int(count), "text_bytes": int(text_bytes), "digest": int(digest)}


def mariadb_fingerprint(database: str, sql_from: str, key: str, text: str) -> dict[str, int]:
    """To samo co ``source_fingerprint`` dla tabeli w MariaDB (``sql_from`` z ewentualnym WHERE)."""
    conn = my_connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM(OCTET_LENGTH({text})), 0), "
                f"COALESCE(SUM(CAST(CONV(SUBSTR(MD5(CONCAT({key}, ':', {text})), 1, 12), 16, 10) AS UNSIGNED)), 0) "
                f"FROM {sql_from}"
            )
            count, text_bytes, digest = cur.fetchone()
    finally:
        conn.close()
    return {"rows": int(count), "text_bytes": int(text_bytes), "digest": int(digest)}


def local_key_sql(kind: str) -> str:
    """Klucz pozycji w ``task_item`` w postaci, w jakiej ``fingerprint`` łączy go z tekstem."""
    return "JSON_UNQUOTE(JSON_EXTRACT(remote_key, '$[0]'))" if kind == "pg_uuid" else "remote_id"


def raw_copy_script(src: dict[str, Any], port: int, path: str, peers_db: str) -> str:
    """Polecenie powłoki ``raw copy``: klient źródła do pliku TSV + ``LOAD DATA LOCAL INFILE`` do ``plain``."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if src["engine"] == "pgsql":
        dump = (
            f"psql -q -X -h 127.0.0.1 -p {port} -U postgres -d {src['db']} "
            f"-c \"\\copy (SELECT id, body FROM {TABLE}) TO '{path}'\""
        )
    elif src["engine"] == "mysql":
        dump = (
            f"{client} -h 127.0.0.1 -P {port} -u root --batch --skip-column-names "
            f"--default-character-set=utf8mb4 {src['db']} -e 'SELECT id, body FROM {TABLE}' > '{path}'"
        )
    else:
        # Zapytanie w pliku (bez cytowania w powłoce): tekst w formacie LOAD DATA, pola po tabulatorze.
        with open(path + ".sql", "w", encoding="utf-8") as script:
            script.write(
                '.mode list\n.separator "\\t"\n'
                "SELECT id, replace(replace(replace(body, '\\', '\\\\'), char(9), '\\t'), char(10), '\\n') "
                f"FROM {TABLE};\n"
            )
        dump = f"sqlite3 -batch '{src['db']}' < '{path}.sql' > '{path}'"
    return (
        f"{dump} && {client} -h 127.0.0.1 -P 3306 -u root --local-infile=1 --default-character-set=utf8mb4 "
        f"{peers_db} -e \"LOAD DATA LOCAL INFILE '{path}' INTO TABLE plain CHARACTER SET utf8mb4\""
    )


def connection_row(src: dict[str, Any], port: int) -> tuple[str, str, int, str]:
    """``(db_type, host, port, db_name)`` wiersza ``database_connection`` (porty przez proxy bajtów)."""
    if src["engine"] == "sqlite":
        return "sqlite", "", 0, src["db"]
    return src["engine"], "127.0.0.1", port, src["db"]
