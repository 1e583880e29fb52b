"""Dialekty źródeł i połączenie: tabela ``DIALECTS``, łączenie, odczyt z obsługą błędów sterownika.

Cztery dialekty (mysql, pgsql, mssql, sqlite) opisuje tabela ``DIALECTS``: cytowanie
identyfikatorów, znak parametru, szablony SQL, zapytania katalogowe i funkcja połączenia.
Pozostałe moduły pakietu tylko odczytują z niej wpisy - nie rozgałęziają się po ``db_type``.
"""

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import psycopg2
import pymysql

from lib import mysql_connect
from lib.db_remote.encodings import SQL_ASCII_HINT
from lib.db_utils import get_logger, mask_secrets, register_secrets
from lib.errors import RemoteError
from lib.load_config import Settings
from lib.passwords import connection_password

log = get_logger("db_remote")


class RemoteConn(NamedTuple):
    """Otwarte połączenie ze źródłem; ``label`` opisuje je bez hasła (do komunikatów)."""

    db_type: str
    conn: Any
    dialect: dict
    label: str


# --- pomocnicze ---------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Skleja komunikat sterownika do jednej linii."""
    return " ".join(str(text).split())


def _describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """Zwraca krótki, jednoliniowy opis błędu sterownika bez haseł."""
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) >= 2:
        text = f"{exc.args[0]}: {exc.args[1]}"
    elif exc.__class__.__module__ == "pyodbc" and len(exc.args) >= 2:
        text = f"{exc.args[0]}: {exc.args[1]}"  # (SQLSTATE, komunikat)
    else:
        text = str(exc) or exc.__class__.__name__
    return mask_secrets(_one_line(text), [s for s in secrets if s])


def _tcp_host(host: str | None) -> str:
    """Wymusza TCP: ``localhost`` (i pusty host) zamienia na 127.0.0.1."""
    return "127.0.0.1" if host in (None, "", "localhost") else str(host)


# --- połączenia (po jednej funkcji na dialekt) --------------------------------------------


def _connect_mysql(row: dict[str, Any], settings: Settings) -> Any:
    """Łączy z MySQL/MariaDB przez PyMySQL (utf8mb4, bez autocommit)."""
    # use_ssl: szyfrowanie wymagane, certyfikat nieweryfikowany (jak sslmode=require w PostgreSQL).
    return mysql_connect.connect(
        tls="required" if row.get("use_ssl") else "preferred",
        host=_tcp_host(row.get("host")),
        port=int(row.get("port") or 3306),
        user=row.get("db_user") or "",
        password=row.get("db_password") or "",
        database=row.get("db_name"),
        charset="utf8mb4",
        autocommit=False,
        connect_timeout=settings.remote_connect_timeout,
    )


# PostgreSQL: napisy zgodne ze standardem (backslash w '...' to zwykły znak; psycopg2 i nasze E'...' zakładają
# to samo) i kodowanie klienta UTF8 (serwer przekoduje tekst z kodowania bazy; baza SQL_ASCII oddaje bajty
# bez zmian - patrz ``reads`` i ``encodings``).
PGSQL_SESSION_OPTIONS = "-c standard_conforming_strings=on -c client_encoding=UTF8"


def _connect_pgsql(row: dict[str, Any], settings: Settings) -> Any:
    """Łączy z PostgreSQL przez psycopg2 (UTF8, sslmode=require przy ``use_ssl``)."""
    extra: dict[str, Any] = {}
    if row.get("use_ssl"):
        extra["sslmode"] = "require"
    return psycopg2.connect(
        host=_tcp_host(row.get("host")),
        port=int(row.get("port") or 5432),
        dbname=row.get("db_name"),
        user=row.get("db_user") or "",
        password=row.get("db_password") or "",
        connect_timeout=settings.remote_connect_timeout,
        client_encoding="UTF8",
        application_name="ailexia",
        # Ustawienia sesji, na których polega SQL projektu, niezależnie od konfiguracji serwera i bazy.
        options=PGSQL_SESSION_OPTIONS,
        **extra,
    )


def _connect_sqlite(row: dict[str, Any], settings: Settings) -> Any:
    """Otwiera istniejący plik SQLite (``db_name`` to ścieżka) bez możliwości utworzenia pliku."""
    path = Path(row.get("db_name") or "")
    if not row.get("db_name") or not path.is_file():
        raise RemoteError(
            f"plik SQLite {str(path)!r} nie istnieje (połączenie '{row.get('alias') or path}'); "
            "popraw database_connection.db_name"
        )
    # mode=rw: plik musi istnieć, sqlite3 go nie utworzy. Wątek czytający strony może być inny
    # niż wątek, który otworzył połączenie, stąd check_same_thread=False.
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw",
        uri=True,
        isolation_level=None,
        timeout=settings.remote_connect_timeout,
        check_same_thread=False,
    )
    for method in SQLITE_HASHES:
        conn.create_function(f"ailexia_{method}", 1, _sqlite_hash(method), deterministic=True)
    return conn


# Funkcje skrótu rejestrowane na połączeniu SQLite (``text_hash`` dialektu): SQLite ich nie ma, a
# z nimi resync porównuje hashe i odciski zakresów zamiast czytać teksty do Pythona.
SQLITE_HASHES = ("sha256", "md5", "sha1")


def _sqlite_hash(method: str) -> Callable[[Any], str | None]:
    """Funkcja SQL ``ailexia_<method>(tekst)``: hash bajtów UTF-8 tekstu jak ``db_utils.hash_text``.

    Wartość nietekstowa jest brana tak, jak ją odczytuje skan (``reads._to_text``): bajty wprost,
    liczby jako ``str``; NULL daje NULL.
    """
    constructor = getattr(hashlib, method)

    def digest(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bytes):
            return constructor(value).hexdigest()
        return constructor(str(value).encode("utf-8", "surrogatepass")).hexdigest()

    return digest


def _odbc_escape(value: str) -> str:
    """Cytuje wartość w łańcuchu połączenia ODBC (``{...}``, ``}`` podwojone)."""
    return "{" + value.replace("}", "}}") + "}"


def _import_pyodbc() -> Any:
    """Importuje pyodbc dopiero przy użyciu mssql (bez unixODBC import się nie udaje)."""
    try:
        import pyodbc
    except ImportError as exc:
        raise RemoteError(
            f"brak sterownika ODBC dla mssql: nie można załadować pyodbc ({_one_line(str(exc))}); "
            "zainstaluj unixODBC (libodbc2) i Microsoft ODBC Driver for SQL Server"
        ) from None
    return pyodbc


def mssql_connection_string(row: dict[str, Any], settings: Settings) -> str:
    """Buduje łańcuch połączenia ODBC dla SQL Server.

    Args:
        row: Wiersz ``database_connection``.
        settings: Ustawienia (``MSSQL_ODBC_DRIVER``, ``REMOTE_CONNECT_TIMEOUT``).

    Returns:
        Łańcuch ``DRIVER=...;SERVER=host,port;...`` (zawiera hasło - nie logować).
    """
    encrypt = "yes" if row.get("use_ssl") else "no"
    parts = [
        f"DRIVER={_odbc_escape(settings.mssql_odbc_driver)}",
        f"SERVER={_tcp_host(row.get('host'))},{int(row.get('port') or 1433)}",
        f"DATABASE={_odbc_escape(row.get('db_name') or '')}",
        f"UID={_odbc_escape(row.get('db_user') or '')}",
        f"PWD={_odbc_escape(row.get('db_password') or '')}",
        f"Encrypt={encrypt}",
        # Jak w pozostałych dialektach: kanał szyfrowany, certyfikat serwera nieweryfikowany.
        "TrustServerCertificate=yes",
        f"Connection Timeout={settings.remote_connect_timeout}",
        "APP=ailexia",
    ]
    return ";".join(parts)


# SQL Server: opcje sesji, które zakłada generowany T-SQL (porównania z NULL przez IS NULL i ``=`` wg ANSI,
# konkatenacja z NULL daje NULL, pełne teksty bez limitu TEXTSIZE, błędy przy obcięciu zamiast ciszy).
# Sterownik ODBC zwykle ustawia je tak samo, ale serwer lub login mogą mieć inne domyślne.
MSSQL_SESSION_SQL = (
    "SET ANSI_NULLS ON; SET QUOTED_IDENTIFIER ON; SET CONCAT_NULL_YIELDS_NULL ON; SET ANSI_WARNINGS ON; "
    "SET ANSI_PADDING ON; SET ARITHABORT ON; SET NUMERIC_ROUNDABORT OFF; SET TEXTSIZE 2147483647"
)


def _connect_mssql(row: dict[str, Any], settings: Settings) -> Any:
    """Łączy z SQL Server przez pyodbc (TCP ``host,port``, bez autocommit)."""
    label = connection_label(row)
    try:
        pyodbc = _import_pyodbc()
    except RemoteError as exc:
        raise RemoteError(f"nie można połączyć ze źródłem {label}: {exc}") from None
    driver = settings.mssql_odbc_driver
    installed = pyodbc.drivers()
    if driver not in installed:
        raise RemoteError(
            f"nie można połączyć ze źródłem {label}: brak sterownika ODBC {driver!r} "
            f"(zainstalowane: {', '.join(installed) or 'żaden'}); zainstaluj go albo ustaw MSSQL_ODBC_DRIVER"
        )
    conn = pyodbc.connect(
        mssql_connection_string(row, settings), autocommit=False, timeout=settings.remote_connect_timeout
    )
    cursor = conn.cursor()
    cursor.execute(MSSQL_SESSION_SQL)
    cursor.close()
    conn.commit()
    return conn


def _mssql_errors() -> tuple[type[BaseException], ...]:
    """Klasy błędów pyodbc (import dopiero, gdy połączenie mssql istnieje)."""
    return (_import_pyodbc().Error,)


# --- tabela dialektów ---------------------------------------------------------------------

_INFO_SCHEMA_PK = (
    "SELECT kcu.column_name FROM information_schema.table_constraints tc "
    "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name "
    "AND kcu.constraint_schema = tc.constraint_schema AND kcu.table_name = tc.table_name "
    "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = {p} AND tc.table_name = {p} "
    "ORDER BY kcu.ordinal_position"
)

# Punkty zapisu w składni SQL (MySQL, PostgreSQL, SQLite); MS SQL ma własne (SAVE TRANSACTION).
_SQL_SAVEPOINTS = {
    "savepoint": "SAVEPOINT {name}",
    "rollback_to": "ROLLBACK TO SAVEPOINT {name}",
    "release": "RELEASE SAVEPOINT {name}",
}

DIALECTS: dict[str, dict[str, Any]] = {
    "mysql": {
        "quote": ("`", "`"),
        "placeholder": "%s",
        "default_schema": None,
        "schemas": False,
        "count": "COUNT",
        "page": "SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT {limit}",
        "lock": "SELECT {key}, {column} FROM {table} WHERE {match} FOR UPDATE",
        "begin": "START TRANSACTION",
        # MariaDB nie zamienia porównania wierszy (a, b) > (x, y) na zakres indeksu: warunek rozpisany.
        "row_values": False,
        **_SQL_SAVEPOINTS,
        "text_nul": True,
        # Hash tekstu liczony przez źródło (te same bajty UTF-8 co ``db_utils.hash_text``); tylko dla
        # typów kolumn z ``hash_types`` (BLOB: CONVERT zamieniłby błędne bajty na '?').
        "text_hash": {
            "sha256": "SHA2(CONVERT({column} USING utf8mb4), 256)",
            "md5": "MD5(CONVERT({column} USING utf8mb4))",
            "sha1": "SHA1(CONVERT({column} USING utf8mb4))",
        },
        "hash_types": ("char", "varchar", "tinytext", "text", "mediumtext", "longtext"),
        # Odciski zakresów kluczy (``reads.range_fingerprints``): ten sam format co ``page_fingerprint``.
        "key_line": {"int": "JSON_ARRAY({key})", "other": "JSON_ARRAY({key})"},
        "range_fingerprints": (
            "SELECT b, COUNT(*), SHA2(GROUP_CONCAT(line ORDER BY k SEPARATOR 0x0a), 256) FROM ("
            "SELECT {key} AS k, CONCAT({line}, CHAR(9), COALESCE({hash}, '')) AS line, {bucket} AS b "
            "FROM {table} WHERE {where}) s GROUP BY b ORDER BY b"
        ),
        "page_fingerprint": None,
        "page_starts": None,
        "copy": None,
        "copy_types": (),
        # Schemat = bieżąca baza połączenia, więc zapytania katalogowe mają tylko parametr tabeli.
        "catalog_params": lambda schema, table: (table,),
        "sql_tables": (
            "SELECT NULL, table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s"
        ),
        "sql_columns": (
            "SELECT column_name, column_type, is_nullable, character_set_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position"
        ),
        "sql_primary_key": (
            "SELECT column_name FROM information_schema.key_column_usage "
            "WHERE table_schema = DATABASE() AND table_name = %s AND constraint_name = 'PRIMARY' "
            "ORDER BY ordinal_position"
        ),
        # Indeksy unikalne (bez klucza głównego): (nazwa indeksu, kolumna) w kolejności kolumn.
        "sql_unique_keys": (
            "SELECT index_name, column_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND table_name = %s AND non_unique = 0 AND index_name <> 'PRIMARY' "
            "ORDER BY index_name, seq_in_index"
        ),
        "connect": _connect_mysql,
        "errors": lambda: (pymysql.MySQLError,),
    },
    "pgsql": {
        "quote": ('"', '"'),
        "placeholder": "%s",
        "default_schema": "public",
        "schemas": True,
        "count": "COUNT",
        "page": "SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT {limit}",
        "lock": "SELECT {key}, {column} FROM {table} WHERE {match} FOR UPDATE",
        "begin": None,  # psycopg2 otwiera transakcję sam przy pierwszym zapytaniu
        "row_values": True,
        **_SQL_SAVEPOINTS,
        # PostgreSQL nie zapisuje znaku NUL w tekście (psycopg2 odrzuca go już przy parametrze).
        "text_nul": False,
        # char(n)/bpchar poza listą: rzutowanie na text obcina spacje, które sterownik zwraca.
        "text_hash": {
            "sha256": "encode(sha256(convert_to({column}, 'UTF8')), 'hex')",
            "md5": "md5(convert_to({column}, 'UTF8'))",
        },
        "hash_types": ("text", "character varying", "varchar", "citext", "name"),
        # Odcisk całej strony liczony przez źródło dla jednej kolumny całkowitej klucza: ten sam format
        # co ``task_item.next_fingerprint`` (sha256 z linii ``[klucz]<TAB>hash`` rozdzielonych ``\n``).
        # ``string_agg`` bez własnego ``ORDER BY``: wiersze przychodzą już w porządku klucza z podzapytania
        # (``ORDER BY ... LIMIT`` po indeksie klucza), a sortowanie w agregacie przy domyślnym
        # ``work_mem`` szło przez pliki tymczasowe (245 ms wobec 197 ms na stronę 100 000 wierszy). Inna
        # kolejność dałaby tylko inny odcisk - strona byłaby porównana wiersz po wierszu, nigdy uznana za równą.
        "key_line": {"int": "'[' || {key}::text || ']'", "other": "'[' || to_json({key})::text || ']'"},
        "range_fingerprints": (
            "SELECT b, COUNT(*), encode(sha256(convert_to(string_agg(line, E'\\n' ORDER BY k), 'UTF8')), 'hex') "
            "FROM (SELECT {key} AS k, {line} || E'\\t' || COALESCE({hash}, '') AS line, {bucket} AS b "
            "FROM {table} WHERE {where}) s GROUP BY b ORDER BY b"
        ),
        "page_fingerprint": (
            "SELECT COUNT(*), MAX(k), encode(sha256(convert_to(string_agg('[' || k::text || ']' || E'\\t' "
            "|| COALESCE(h, ''), E'\\n'), 'UTF8')), 'hex') FROM (SELECT {key} AS k, {hash} AS h "
            "FROM {table} WHERE {where} ORDER BY {key} LIMIT {limit}) page"
        ),
        # Ostatnie klucze kolejnych pełnych stron keyset (``{limit}`` wierszy) za kluczem, najwyżej
        # ``{count}``: każdy krok to odczyt samego indeksu klucza (OFFSET tylko tutaj, do podziału na
        # strony liczone równolegle; same strony czyta zawsze keyset). 10 stron po 100 000 wierszy: ~65 ms.
        "page_starts": (
            "WITH RECURSIVE s(n, k) AS (SELECT 1, (SELECT t.{key} FROM {table} t WHERE {where} ORDER BY t.{key} "
            "OFFSET {offset} LIMIT 1) UNION ALL SELECT s.n + 1, (SELECT t.{key} FROM {table} t WHERE t.{key} > s.k "
            "ORDER BY t.{key} OFFSET {offset} LIMIT 1) FROM s WHERE s.k IS NOT NULL AND s.n < {count}) "
            "SELECT k FROM s WHERE k IS NOT NULL ORDER BY n"
        ),
        # COPY (SELECT ...) TO STDOUT: strumień całej tabeli w porządku klucza (pierwsza synchronizacja);
        # format tekstowy COPY daje tekst tak jak kursor tylko dla typów z ``copy_types``.
        "copy": "COPY (SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key}) TO STDOUT",
        "copy_types": (
            "text",
            "character varying",
            "varchar",
            "character",
            "char",
            "bpchar",
            "citext",
            "name",
        ),
        "catalog_params": lambda schema, table: (schema, table),
        # Porównanie bez wielkości liter tylko zawęża wyniki; decyduje _pick_name.
        "sql_tables": (
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE lower(table_schema) = lower(%s) AND lower(table_name) = lower(%s)"
        ),
        # Typy użytkownika (np. citext) mają data_type USER-DEFINED: wtedy nazwa z udt_name.
        "sql_columns": (
            "SELECT column_name, CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END, "
            "is_nullable, current_setting('server_encoding') FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position"
        ),
        # Z pg_catalog, nie z information_schema: table_constraints pokazuje ograniczenia tylko właścicielowi
        # i rolom z prawem innym niż SELECT, więc rola tylko do odczytu nie widziałaby klucza głównego.
        "sql_primary_key": (
            "SELECT a.attname FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, pos) ON true "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE x.indisprimary AND n.nspname = %s AND c.relname = %s ORDER BY k.pos"
        ),
        # Indeksy unikalne bez warunku i bez wyrażeń (kolumny w kolejności indeksu).
        "sql_unique_keys": (
            "SELECT ic.relname, a.attname FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_class ic ON ic.oid = x.indexrelid "
            "JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, pos) ON true "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE x.indisunique AND NOT x.indisprimary AND x.indpred IS NULL AND x.indexprs IS NULL "
            "AND n.nspname = %s AND c.relname = %s ORDER BY ic.relname, k.pos"
        ),
        "connect": _connect_pgsql,
        "errors": lambda: (psycopg2.Error,),
    },
    "mssql": {
        "quote": ("[", "]"),
        "placeholder": "?",
        "default_schema": "dbo",
        "schemas": True,
        "count": "COUNT_BIG",  # COUNT zwraca INT i przepełnia się powyżej 2^31 wierszy
        "page": "SELECT TOP ({limit}) {key}, {column} FROM {table} WHERE {where} ORDER BY {key}",
        "lock": "SELECT {key}, {column} FROM {table} WITH (UPDLOCK, ROWLOCK) WHERE {match}",
        "begin": None,  # przy autocommit=False pyodbc zaczyna transakcję niejawnie
        "row_values": False,  # T-SQL nie ma porównania wierszy
        "savepoint": "SAVE TRANSACTION {name}",
        "rollback_to": "ROLLBACK TRANSACTION {name}",
        "release": None,  # punkt zapisu w T-SQL nie wymaga zwolnienia
        "text_nul": True,
        # UTF-16 (nvarchar) -> UTF-8 przez sortowanie _UTF8 (SQL Server 2019+); starszy serwer odrzuca
        # zapytanie albo daje inny hash - skan sprawdza to na pierwszej stronie i czyta wtedy teksty.
        "text_hash": {
            method: (
                f"LOWER(CONVERT(VARCHAR(64), HASHBYTES('{name}', CAST(CAST({{column}} AS NVARCHAR(MAX)) "
                "COLLATE Latin1_General_100_BIN2_UTF8 AS VARCHAR(MAX))), 2))"
            )
            for method, name in (("sha256", "SHA2_256"), ("md5", "MD5"), ("sha1", "SHA1"))
        },
        "hash_types": ("nvarchar", "varchar", "nchar", "char"),
        "key_line": None,
        "range_fingerprints": None,
        "page_fingerprint": None,
        "page_starts": None,
        "copy": None,
        "copy_types": (),
        "catalog_params": lambda schema, table: (schema, table),
        "sql_tables": (
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?"
        ),
        "sql_columns": (
            "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, CASE WHEN DATA_TYPE IN ('char', 'varchar', 'text') "
            "THEN 'cp' + CAST(COLLATIONPROPERTY(COLLATION_NAME, 'CodePage') AS VARCHAR(10)) END "
            "FROM INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION"
        ),
        "sql_primary_key": _INFO_SCHEMA_PK.format(p="?"),
        "sql_unique_keys": (
            "SELECT i.name, c.name FROM sys.indexes i "
            "JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id "
            "JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id "
            "JOIN sys.tables t ON t.object_id = i.object_id JOIN sys.schemas s ON s.schema_id = t.schema_id "
            "WHERE i.is_unique = 1 AND i.is_primary_key = 0 AND i.has_filter = 0 AND ic.is_included_column = 0 "
            "AND s.name = ? AND t.name = ? ORDER BY i.name, ic.key_ordinal"
        ),
        "connect": _connect_mssql,
        "errors": _mssql_errors,
    },
    "sqlite": {
        "quote": ('"', '"'),
        "placeholder": "?",
        "default_schema": None,
        "schemas": False,
        "count": "COUNT",
        "page": "SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT {limit}",
        "lock": "SELECT {key}, {column} FROM {table} WHERE {match}",
        "begin": "BEGIN IMMEDIATE",  # blokada zapisu całej bazy na czas porównania i UPDATE
        "row_values": True,
        **_SQL_SAVEPOINTS,
        "text_nul": True,
        # Funkcje ``ailexia_*`` rejestruje ``_connect_sqlite`` (SQLite nie ma własnych funkcji skrótu).
        "text_hash": {method: f"ailexia_{method}({{column}})" for method in SQLITE_HASHES},
        "hash_types": (
            "text",
            "varchar",
            "char",
            "clob",
            "nvarchar",
            "nchar",
            "character varying",
            "character",
            "",
        ),
        # Bez ORDER BY w agregacie (SQLite < 3.44): wiersze podzapytania idą w porządku klucza; inna
        # kolejność dałaby tylko inny odcisk (zakres czytany wierszami), nigdy fałszywą równość.
        "key_line": {"int": "json_array({key})", "other": "json_array({key})"},
        "range_fingerprints": (
            "SELECT b, COUNT(*), ailexia_sha256(group_concat(line, char(10))) FROM ("
            "SELECT {line} || char(9) || COALESCE({hash}, '') AS line, {bucket} AS b "
            "FROM {table} WHERE {where} ORDER BY {key}) s GROUP BY b ORDER BY b"
        ),
        "page_fingerprint": None,
        "page_starts": None,
        "copy": None,
        "copy_types": (),
        "catalog_params": lambda schema, table: (table,),
        "sql_tables": (
            "SELECT NULL, name FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE"
        ),
        # Kolumna klucza głównego jest traktowana jak NOT NULL (SQLite dopuszcza NULL w kluczu
        # tabel z rowid, ale takich wierszy nie da się adresować - nie są synchronizowane).
        "sql_columns": (
            "SELECT name, type, CASE WHEN \"notnull\" = 1 OR pk > 0 THEN 'NO' ELSE 'YES' END, NULL "
            "FROM pragma_table_info(?) ORDER BY cid"
        ),
        "sql_primary_key": "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
        "sql_unique_keys": (
            "SELECT il.name, ii.name FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii "
            "WHERE il.\"unique\" = 1 AND il.origin <> 'pk' AND il.partial = 0 ORDER BY il.name, ii.seqno"
        ),
        "connect": _connect_sqlite,
        "errors": lambda: (sqlite3.Error,),
    },
}


def _dialect(db_type: str) -> dict[str, Any]:
    """Zwraca wpis dialektu albo zgłasza czytelny błąd dla nieznanego typu bazy."""
    try:
        return DIALECTS[db_type]
    except KeyError:
        raise RemoteError(f"nieznany typ bazy {db_type!r} (dozwolone: {', '.join(DIALECTS)})") from None


# --- połączenie ---------------------------------------------------------------------------


def connection_label(row: dict[str, Any]) -> str:
    """Opis połączenia do komunikatów i logów: ``alias/db_type host:port/db`` (bez hasła).

    Args:
        row: Wiersz ``database_connection``.

    Returns:
        Opis połączenia; dla sqlite ``alias/sqlite ścieżka``.
    """
    db_type = row.get("db_type") or "?"
    alias = row.get("alias") or row.get("db_name") or "?"
    if db_type == "sqlite":
        return f"{alias}/sqlite {row.get('db_name')}"
    return f"{alias}/{db_type} {_tcp_host(row.get('host'))}:{row.get('port') or ''}/{row.get('db_name')}"


def connect(connection_row: dict, settings: Settings) -> RemoteConn:
    """Otwiera połączenie z bazą źródłową opisaną wierszem ``database_connection``.

    Zawsze po TCP (``localhost`` zamieniany na 127.0.0.1); dla sqlite ``db_name`` to ścieżka
    istniejącego pliku, który nigdy nie jest tworzony. Hasło trafia do filtra maskującego logi.

    Args:
        connection_row: Wiersz ``database_connection`` jako słownik (db_type, host, port,
            db_name, db_user, db_password albo password_env, use_ssl, alias).
        settings: Ustawienia (``REMOTE_CONNECT_TIMEOUT``, ``MSSQL_ODBC_DRIVER``).

    Returns:
        ``RemoteConn`` z otwartym połączeniem (bez autocommit; sqlite w trybie autocommit
        z jawnym ``BEGIN`` przy zapisie).

    Raises:
        RemoteError: Złe hasło, nieosiągalny host, brak bazy lub pliku, brak sterownika;
            komunikat wskazuje alias, host i bazę, nigdy hasło.
        ConfigError: Hasło zaszyfrowane bez klucza ``AILEXIA_SECRET_KEY`` albo brak zmiennej
            ``password_env`` (``lib.passwords.connection_password``).
    """
    db_type = connection_row.get("db_type") or ""
    dialect = _dialect(db_type)
    label = connection_label(connection_row)
    # Jedyne miejsce, w którym powstaje hasło jawne (szyfrogram, zmienna środowiska albo stary wiersz jawny).
    password = connection_password(connection_row, settings)
    if password:
        register_secrets([password])
    try:
        conn = dialect["connect"]({**connection_row, "db_password": password}, settings)
    except RemoteError:
        raise
    except dialect["errors"]() as exc:
        raise RemoteError(f"nie można połączyć ze źródłem {label}: {_describe(exc, [password])}") from None
    log.debug("połączono ze źródłem %s", label)
    return RemoteConn(db_type=db_type, conn=conn, dialect=dialect, label=label)


def close(rconn: RemoteConn) -> None:
    """Zamyka połączenie ze źródłem (bez błędu, gdy już jest zamknięte).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
    """
    with contextlib.suppress(Exception):
        rconn.conn.close()


@contextlib.contextmanager
def _driver_errors(rconn: RemoteConn, action: str) -> Iterator[None]:
    """Zamienia błędy sterownika na ``RemoteError`` i wycofuje otwartą transakcję."""
    try:
        yield
    except RemoteError:
        _rollback(rconn)
        raise
    except rconn.dialect["errors"]() as exc:
        _rollback(rconn)
        # 22021 character_not_in_repertoire: serwer nie przekoduje bajtów kolumny do UTF8 klienta.
        if getattr(exc, "pgcode", None) == "22021" and _server_encoding(rconn) == "SQL_ASCII":
            raise RemoteError(f"{action} w źródle {rconn.label}: {SQL_ASCII_HINT}") from None
        raise RemoteError(f"{action} w źródle {rconn.label} nie powiodło się: {_describe(exc)}") from None
    except UnicodeDecodeError as exc:
        _rollback(rconn)
        if _server_encoding(rconn) == "SQL_ASCII":
            raise RemoteError(f"{action} w źródle {rconn.label}: {SQL_ASCII_HINT}") from None
        raise RemoteError(
            f"{action} w źródle {rconn.label}: tekst nie jest poprawnym UTF-8 ({exc.reason})"
        ) from None


def _server_encoding(rconn: RemoteConn) -> str:
    """Kodowanie bazy PostgreSQL (zgłaszane przez serwer przy połączeniu); pusty napis dla innych źródeł."""
    if rconn.db_type != "pgsql":
        return ""
    with contextlib.suppress(Exception):
        return str(rconn.conn.info.parameter_status("server_encoding") or "")
    return ""


def _rollback(rconn: RemoteConn) -> None:
    """Kończy transakcję bez zmian (sqlite: tylko gdy jest otwarta)."""
    # sqlite3 w trybie isolation_level=None też obsługuje rollback() po jawnym BEGIN.
    with contextlib.suppress(Exception):
        rconn.conn.rollback()


def _query(rconn: RemoteConn, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Wykonuje SELECT i zwraca wiersze jako krotki (bez kończenia transakcji)."""
    cursor = rconn.conn.cursor()
    try:
        cursor.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


def _read(rconn: RemoteConn, action: str, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Odczyt w osobnej, od razu zakończonej transakcji.

    Zamknięcie transakcji po każdym odczycie sprawia, że kolejna strona widzi bieżące dane
    (REPEATABLE READ w MySQL trzymałby migawkę z pierwszej strony) i że źródło nie ma
    długo otwartej transakcji od naszego procesu.
    """
    with _driver_errors(rconn, action):
        rows = _query(rconn, sql, params)
        _rollback(rconn)
        return rows


def quote_identifier(db_type: str, name: str) -> str:
    """Cytuje identyfikator według dialektu, podwajając znak cytowania.

    Wywoływana wyłącznie na nazwach zwróconych przez katalog źródła.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        name: Nazwa tabeli, schematu lub kolumny.

    Returns:
        Np. ``\\`x\\``` (mysql), ``"x"`` (pgsql, sqlite), ``[x]`` (mssql).
    """
    opening, closing = _dialect(db_type)["quote"]
    return f"{opening}{name.replace(closing, closing * 2)}{closing}"
