"""Bazy źródłowe: połączenie, katalog, stronicowanie po kluczu i zapis z kontrolą zmian.

Cztery dialekty (mysql, pgsql, mssql, sqlite) opisuje tabela ``DIALECTS``: cytowanie
identyfikatorów, znak parametru, szablony SQL, zapytania katalogowe i funkcja połączenia.
Funkcje modułu tylko odczytują z niej wpisy - nie rozgałęziają się po ``db_type``.

Identyfikatory od użytkownika (tabela, kolumna, klucz) nigdy nie trafiają do SQL wprost:
najpierw są wyszukiwane w katalogu źródła parametrami, a do zapytań idą nazwy zwrócone
przez katalog, zacytowane według dialektu. Moduł nic nie wie o zadaniach ani o Dagsterze.
"""

import contextlib
import re
import sqlite3
import ssl
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import psycopg2
import pymysql

from lib.db_utils import get_logger, mask_secrets, register_secrets
from lib.errors import RemoteError

log = get_logger("db_remote")

# Typy całkowite, które nadają się na klucz stronicowania (po normalizacji nazwy typu).
INTEGER_TYPES = frozenset({"int", "integer", "bigint", "smallint", "tinyint", "mediumint", "big int"})

# Ile kluczy najwyżej w jednej liście IN (mssql ma limit 2100 parametrów na zapytanie).
KEYS_PER_QUERY = 500


class Target(NamedTuple):
    """Tabela, kolumna i klucz sprawdzone w katalogu źródła, z gotowymi identyfikatorami SQL."""

    db_type: str
    schema: str | None
    table: str
    column: str
    key: str
    quoted_table: str
    quoted_column: str
    quoted_key: str
    extra_columns: tuple[str, ...]
    quoted_extra: dict[str, str]


class RemoteConn(NamedTuple):
    """Otwarte połączenie ze źródłem; ``label`` opisuje je bez hasła (do komunikatów)."""

    db_type: str
    conn: Any
    dialect: dict
    label: str


class CasResult(NamedTuple):
    """Wynik ``compare_and_set``: zapisane klucze i konflikty ``(klucz, powód)``."""

    written: list[int]
    conflicts: list[tuple[int, str]]


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


def _to_text(value: Any) -> str | None:
    """Zamienia wartość kolumny tekstowej na ``str`` (bajty dekoduje jako UTF-8)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        # Kolumny BLOB/BINARY/bytea: tekst w UTF-8; błędny UTF-8 zgłasza UnicodeDecodeError.
        return bytes(value).decode("utf-8")
    return str(value)


def _normalize_type(type_name: str | None) -> str:
    """Sprowadza nazwę typu z katalogu do postaci porównywalnej z ``INTEGER_TYPES``."""
    text = re.sub(r"\(.*?\)", " ", (type_name or "").lower())
    words = [w for w in text.split() if w not in ("unsigned", "signed", "zerofill")]
    return " ".join(words)


def _pick_name(found: Sequence[Any], wanted: str, name_of: Callable[[Any], str]) -> Any | None:
    """Wybiera z wyników katalogu wpis o nazwie ``wanted``.

    Najpierw dokładna zgodność; gdy jej brak, jedyny wpis różniący się tylko wielkością liter
    (np. niecytowana nazwa w PostgreSQL). Porównanie odbywa się w Pythonie, więc sortowanie
    serwera (np. ``_ci`` i dopełnianie spacjami w MySQL) niczego tu nie rozluźnia.
    """
    exact = [row for row in found if name_of(row) == wanted]
    if exact:
        return exact[0]
    folded = [row for row in found if name_of(row).casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


# --- połączenia (po jednej funkcji na dialekt) --------------------------------------------


def _connect_mysql(row: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Łączy z MySQL/MariaDB przez PyMySQL (utf8mb4, bez autocommit)."""
    options: dict[str, Any] = {}
    if row.get("use_ssl"):
        # Szyfrowanie wymagane, certyfikat nieweryfikowany (jak sslmode=require w PostgreSQL).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    return pymysql.connect(
        host=_tcp_host(row.get("host")),
        port=int(row.get("port") or 3306),
        user=row.get("db_user") or "",
        password=row.get("db_password") or "",
        database=row.get("db_name"),
        charset="utf8mb4",
        autocommit=False,
        connect_timeout=settings["REMOTE_CONNECT_TIMEOUT"],
        **options,
    )


def _connect_pgsql(row: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Łączy z PostgreSQL przez psycopg2 (UTF8, sslmode=require przy ``use_ssl``)."""
    options: dict[str, Any] = {}
    if row.get("use_ssl"):
        options["sslmode"] = "require"
    return psycopg2.connect(
        host=_tcp_host(row.get("host")),
        port=int(row.get("port") or 5432),
        dbname=row.get("db_name"),
        user=row.get("db_user") or "",
        password=row.get("db_password") or "",
        connect_timeout=settings["REMOTE_CONNECT_TIMEOUT"],
        client_encoding="UTF8",
        application_name="ailexia",
        **options,
    )


def _connect_sqlite(row: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Otwiera istniejący plik SQLite (``db_name`` to ścieżka) bez możliwości utworzenia pliku."""
    path = Path(row.get("db_name") or "")
    if not row.get("db_name") or not path.is_file():
        raise RemoteError(
            f"plik SQLite {str(path)!r} nie istnieje (połączenie '{row.get('alias') or path}'); "
            "popraw database_connection.db_name"
        )
    # mode=rw: plik musi istnieć, sqlite3 go nie utworzy. Wątek czytający strony może być inny
    # niż wątek, który otworzył połączenie, stąd check_same_thread=False.
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw",
        uri=True,
        isolation_level=None,
        timeout=settings["REMOTE_CONNECT_TIMEOUT"],
        check_same_thread=False,
    )


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


def mssql_connection_string(row: dict[str, Any], settings: dict[str, Any]) -> str:
    """Buduje łańcuch połączenia ODBC dla SQL Server.

    Args:
        row: Wiersz ``database_connection``.
        settings: Ustawienia (``MSSQL_ODBC_DRIVER``, ``REMOTE_CONNECT_TIMEOUT``).

    Returns:
        Łańcuch ``DRIVER=...;SERVER=host,port;...`` (zawiera hasło - nie logować).
    """
    encrypt = "yes" if row.get("use_ssl") else "no"
    parts = [
        f"DRIVER={_odbc_escape(settings['MSSQL_ODBC_DRIVER'])}",
        f"SERVER={_tcp_host(row.get('host'))},{int(row.get('port') or 1433)}",
        f"DATABASE={_odbc_escape(row.get('db_name') or '')}",
        f"UID={_odbc_escape(row.get('db_user') or '')}",
        f"PWD={_odbc_escape(row.get('db_password') or '')}",
        f"Encrypt={encrypt}",
        # Jak w pozostałych dialektach: kanał szyfrowany, certyfikat serwera nieweryfikowany.
        "TrustServerCertificate=yes",
        f"Connection Timeout={int(settings['REMOTE_CONNECT_TIMEOUT'])}",
        "APP=ailexia",
    ]
    return ";".join(parts)


def _connect_mssql(row: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Łączy z SQL Server przez pyodbc (TCP ``host,port``, bez autocommit)."""
    label = connection_label(row)
    try:
        pyodbc = _import_pyodbc()
    except RemoteError as exc:
        raise RemoteError(f"nie można połączyć ze źródłem {label}: {exc}") from None
    driver = settings["MSSQL_ODBC_DRIVER"]
    installed = pyodbc.drivers()
    if driver not in installed:
        raise RemoteError(
            f"nie można połączyć ze źródłem {label}: brak sterownika ODBC {driver!r} "
            f"(zainstalowane: {', '.join(installed) or 'żaden'}); zainstaluj go albo ustaw MSSQL_ODBC_DRIVER"
        )
    return pyodbc.connect(
        mssql_connection_string(row, settings), autocommit=False, timeout=settings["REMOTE_CONNECT_TIMEOUT"]
    )


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

DIALECTS: dict[str, dict[str, Any]] = {
    "mysql": {
        "quote": ("`", "`"),
        "placeholder": "%s",
        "default_schema": None,
        "schemas": False,
        "count": "COUNT",
        "page": "SELECT {key}, {column} FROM {table} WHERE {where} ORDER BY {key} LIMIT {limit}",
        "lock": "SELECT {key}, {column} FROM {table} WHERE {key} IN ({marks}) FOR UPDATE",
        "begin": "START TRANSACTION",
        # Schemat = bieżąca baza połączenia, więc zapytania katalogowe mają tylko parametr tabeli.
        "catalog_params": lambda schema, table: (table,),
        "sql_tables": (
            "SELECT NULL, table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s"
        ),
        "sql_columns": (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position"
        ),
        "sql_primary_key": (
            "SELECT column_name FROM information_schema.key_column_usage "
            "WHERE table_schema = DATABASE() AND table_name = %s AND constraint_name = 'PRIMARY' "
            "ORDER BY ordinal_position"
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
        "lock": "SELECT {key}, {column} FROM {table} WHERE {key} IN ({marks}) FOR UPDATE",
        "begin": None,  # psycopg2 otwiera transakcję sam przy pierwszym zapytaniu
        "catalog_params": lambda schema, table: (schema, table),
        # Porównanie bez wielkości liter tylko zawęża wyniki; decyduje _pick_name.
        "sql_tables": (
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE lower(table_schema) = lower(%s) AND lower(table_name) = lower(%s)"
        ),
        "sql_columns": (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position"
        ),
        "sql_primary_key": _INFO_SCHEMA_PK.format(p="%s"),
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
        "lock": "SELECT {key}, {column} FROM {table} WITH (UPDLOCK, ROWLOCK) WHERE {key} IN ({marks})",
        "begin": None,  # przy autocommit=False pyodbc zaczyna transakcję niejawnie
        "catalog_params": lambda schema, table: (schema, table),
        "sql_tables": (
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?"
        ),
        "sql_columns": (
            "SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION"
        ),
        "sql_primary_key": _INFO_SCHEMA_PK.format(p="?"),
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
        "lock": "SELECT {key}, {column} FROM {table} WHERE {key} IN ({marks})",
        "begin": "BEGIN IMMEDIATE",  # blokada zapisu całej bazy na czas porównania i UPDATE
        "catalog_params": lambda schema, table: (table,),
        "sql_tables": (
            "SELECT NULL, name FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE"
        ),
        "sql_columns": "SELECT name, type FROM pragma_table_info(?) ORDER BY cid",
        "sql_primary_key": "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
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


def connect(connection_row: dict, settings: dict) -> RemoteConn:
    """Otwiera połączenie z bazą źródłową opisaną wierszem ``database_connection``.

    Zawsze po TCP (``localhost`` zamieniany na 127.0.0.1); dla sqlite ``db_name`` to ścieżka
    istniejącego pliku, który nigdy nie jest tworzony. Hasło trafia do filtra maskującego logi.

    Args:
        connection_row: Wiersz ``database_connection`` jako słownik (db_type, host, port,
            db_name, db_user, db_password, use_ssl, alias).
        settings: Ustawienia (``REMOTE_CONNECT_TIMEOUT``, ``MSSQL_ODBC_DRIVER``).

    Returns:
        ``RemoteConn`` z otwartym połączeniem (bez autocommit; sqlite w trybie autocommit
        z jawnym ``BEGIN`` przy zapisie).

    Raises:
        RemoteError: Złe hasło, nieosiągalny host, brak bazy lub pliku, brak sterownika;
            komunikat wskazuje alias, host i bazę, nigdy hasło.
    """
    db_type = connection_row.get("db_type") or ""
    dialect = _dialect(db_type)
    label = connection_label(connection_row)
    password = connection_row.get("db_password") or ""
    if password:
        register_secrets([password])
    try:
        conn = dialect["connect"](connection_row, settings)
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
        raise RemoteError(f"{action} w źródle {rconn.label} nie powiodło się: {_describe(exc)}") from None
    except UnicodeDecodeError as exc:
        _rollback(rconn)
        raise RemoteError(
            f"{action} w źródle {rconn.label}: tekst nie jest poprawnym UTF-8 ({exc.reason})"
        ) from None


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


# --- identyfikatory i katalog -------------------------------------------------------------


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


def _catalog(rconn: RemoteConn, query: str, schema: str | None, table: str) -> list[tuple]:
    """Wykonuje zapytanie katalogowe z parametrami (schemat, tabela)."""
    params = rconn.dialect["catalog_params"](schema, table)
    return _read(rconn, "odczyt katalogu", rconn.dialect[query], params)


def _table_candidates(dialect: dict[str, Any], table_name: str) -> list[tuple[str | None, str]]:
    """Możliwe pary (schemat, tabela) dla nazwy podanej przez użytkownika."""
    default = dialect["default_schema"]
    candidates: list[tuple[str | None, str]] = []
    if dialect["schemas"] and "." in table_name:
        schema, _, table = table_name.partition(".")
        candidates.append((schema, table))
    # Nazwa z kropką może też być dosłowną nazwą tabeli (w mysql/sqlite tylko tak).
    candidates.append((default, table_name))
    return candidates


def _find_table(rconn: RemoteConn, table_name: str) -> tuple[str | None, str]:
    """Odnajduje tabelę w katalogu i zwraca jej (schemat, nazwę) w pisowni katalogu."""
    for schema, table in _table_candidates(rconn.dialect, table_name):
        if not table:
            continue
        found = _catalog(rconn, "sql_tables", schema, table)
        if schema is not None:
            found = [row for row in found if row[0] == schema] or [
                row for row in found if str(row[0]).casefold() == schema.casefold()
            ]
        row = _pick_name(found, table, lambda r: str(r[1]))
        if row is not None:
            return (row[0] if schema is not None else None), str(row[1])
    raise RemoteError(
        f"tabela {table_name!r} nie istnieje w źródle {rconn.label}; popraw task.table_name"
        + (" (dla innego schematu podaj 'schemat.tabela')" if rconn.dialect["schemas"] else "")
    )


def _find_column(
    columns: Sequence[tuple], wanted: str, table: str, label: str, field: str
) -> tuple[str, str]:
    """Odnajduje kolumnę wśród kolumn tabeli; zwraca (nazwa z katalogu, typ)."""
    row = _pick_name(columns, wanted, lambda r: str(r[0]))
    if row is None:
        raise RemoteError(
            f"kolumna {wanted!r} nie istnieje w tabeli {table!r} w źródle {label}; popraw task.{field}"
        )
    return str(row[0]), str(row[1] or "")


def resolve_target(
    rconn: RemoteConn,
    table_name: str,
    column_name: str,
    key_column: str | None = None,
    extra_columns: Sequence[str] = (),
) -> Target:
    """Sprawdza w katalogu źródła tabelę, kolumnę, klucz i kolumny dodatkowe.

    Wszystkie wyszukiwania idą parametrami; do wyniku trafiają nazwy z katalogu, zacytowane
    według dialektu. Nazwa, której nie ma w katalogu (np. ``x; DROP TABLE t``), kończy się
    błędem i nigdy nie staje się częścią SQL.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        table_name: Tabela; dla pgsql i mssql także ``schemat.tabela`` (domyślnie public / dbo).
        column_name: Kolumna tekstowa.
        key_column: Kolumna klucza (``task.key_column``) albo ``None`` = klucz główny.
        extra_columns: Kolumny dodatkowe, np. kolumna eksportu.

    Returns:
        ``Target`` z nazwami z katalogu i identyfikatorami gotowymi do SQL.

    Raises:
        RemoteError: Brak tabeli lub kolumny, brak użytecznego klucza (złożony, nieliczbowy,
            żaden) albo błąd źródła.
    """
    db_type = rconn.db_type
    if not table_name or not column_name:
        raise RemoteError(f"nie podano tabeli lub kolumny dla źródła {rconn.label}")
    # Żaden katalog nie ma nazw ze znakiem NUL, a psycopg2 odrzuca go w parametrze błędem ValueError
    # (nie psycopg2.Error) - bez tej kontroli zamiast RemoteError leciałby surowy wyjątek.
    for field, name in (
        ("table_name", table_name),
        ("column_name", column_name),
        ("key_column", key_column),
        *(("export_column", extra) for extra in extra_columns),
    ):
        if name and "\x00" in name:
            raise RemoteError(
                f"nazwa {name!r} zawiera znak NUL i nie istnieje w źródle {rconn.label}; popraw task.{field}"
            )
    schema, table = _find_table(rconn, table_name)
    columns = _catalog(rconn, "sql_columns", schema, table)
    shown = table if schema is None else f"{schema}.{table}"
    column, _ = _find_column(columns, column_name, shown, rconn.label, "column_name")
    extra: list[str] = []
    for name in extra_columns:
        found, _ = _find_column(columns, name, shown, rconn.label, "export_column")
        if found not in extra:
            extra.append(found)
    if key_column:
        key, key_type = _find_column(columns, key_column, shown, rconn.label, "key_column")
        if _normalize_type(key_type) not in INTEGER_TYPES:
            raise RemoteError(
                f"kolumna klucza {key!r} w tabeli {shown!r} ({rconn.label}) ma typ {key_type!r}, "
                "a klucz musi być liczbą całkowitą; wskaż inną kolumnę w task.key_column"
            )
    else:
        primary = [str(row[0]) for row in _catalog(rconn, "sql_primary_key", schema, table)]
        types = {str(row[0]): str(row[1] or "") for row in columns}
        if len(primary) != 1 or _normalize_type(types.get(primary[0])) not in INTEGER_TYPES:
            if not primary:
                why = "nie ma klucza głównego"
            elif len(primary) > 1:
                why = f"ma złożony klucz główny ({', '.join(primary)})"
            else:
                why = f"ma klucz główny {primary[0]!r} typu {types.get(primary[0])!r} (nie liczba całkowita)"
            raise RemoteError(
                f"brak użytecznego klucza: tabela {shown!r} w źródle {rconn.label} {why}; "
                "wskaż jednokolumnowy klucz całkowity w task.key_column"
            )
        key = primary[0]
    quoted_table = quote_identifier(db_type, table)
    if schema is not None:
        quoted_table = f"{quote_identifier(db_type, schema)}.{quoted_table}"
    return Target(
        db_type=db_type,
        schema=schema,
        table=table,
        column=column,
        key=key,
        quoted_table=quoted_table,
        quoted_column=quote_identifier(db_type, column),
        quoted_key=quote_identifier(db_type, key),
        extra_columns=tuple(extra),
        quoted_extra={name: quote_identifier(db_type, name) for name in extra},
    )


# --- odczyt -------------------------------------------------------------------------------


def count_rows(rconn: RemoteConn, target: Target) -> int:
    """Liczy wiersze tabeli źródłowej (z niepustym kluczem).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.

    Returns:
        Liczba wierszy.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    sql = f"SELECT {rconn.dialect['count']}({target.quoted_key}) FROM {target.quoted_table}"
    return int(_read(rconn, "liczenie wierszy", sql)[0][0])


def max_key(rconn: RemoteConn, target: Target) -> int | None:
    """Zwraca największy klucz w tabeli źródłowej albo ``None`` dla pustej tabeli.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.

    Returns:
        Największy klucz albo ``None``.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    sql = f"SELECT MAX({target.quoted_key}) FROM {target.quoted_table}"
    value = _read(rconn, "odczyt największego klucza", sql)[0][0]
    return None if value is None else int(value)


def page_sql(db_type: str, target: Target, first_page: bool, limit: int) -> str:
    """Buduje zapytanie jednej strony (klucz, tekst) stronicowanej po kluczu.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        first_page: ``True`` = bez warunku na klucz (bez parametru).
        limit: Maksymalna liczba wierszy strony.

    Returns:
        SQL z jednym parametrem klucza (``%s`` albo ``?``), chyba że ``first_page``.
    """
    dialect = _dialect(db_type)
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"limit strony musi być dodatni (jest {limit})")
    key = target.quoted_key
    where = f"{key} IS NOT NULL" if first_page else f"{key} > {dialect['placeholder']}"
    return dialect["page"].format(
        key=key, column=target.quoted_column, table=target.quoted_table, where=where, limit=limit
    )


def fetch_page(
    rconn: RemoteConn, target: Target, after_key: int | None, limit: int
) -> list[tuple[int, str | None]]:
    """Pobiera jedną stronę wierszy (klucz, tekst) z tabeli źródłowej.

    Stronicowanie po kluczu (keyset): tylko wiersze z kluczem większym niż ``after_key``,
    rosnąco, co najwyżej ``limit`` wierszy.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        after_key: Ostatni przetworzony klucz albo ``None`` dla pierwszej strony.
        limit: Maksymalna liczba wierszy (``BATCH_SIZE``).

    Returns:
        Lista krotek ``(remote_id, text)``; pusta, gdy nie ma więcej wierszy.

    Raises:
        RemoteError: Gdy źródło zwróci błąd połączenia lub zapytania.
    """
    first = after_key is None
    sql = page_sql(rconn.db_type, target, first, limit)
    params = () if first else (int(after_key),)
    with _driver_errors(rconn, "odczyt strony"):
        rows = _read(rconn, "odczyt strony", sql, params)
        return [(int(key), _to_text(text)) for key, text in rows]


def iter_pages(
    rconn: RemoteConn, target: Target, after_key: int | None, limit: int
) -> Iterator[list[tuple[int, str | None]]]:
    """Iteruje po stronach tabeli źródłowej (keyset, nigdy OFFSET).

    Każda strona to osobne zapytanie, więc pamięć nie rośnie z rozmiarem tabeli. Kończy po
    stronie pustej albo krótszej niż ``limit`` (pusta strona nie jest zwracana).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        after_key: Klucz, od którego (wyłącznie) zacząć, albo ``None`` od początku.
        limit: Rozmiar strony.

    Yields:
        Listy krotek ``(remote_id, text)`` rosnąco po kluczu.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    while True:
        page = fetch_page(rconn, target, after_key, limit)
        if page:
            yield page
        if len(page) < limit:
            return
        after_key = page[-1][0]


def _column_map(target: Target) -> dict[str, str]:
    """Kolumny sprawdzone w katalogu: nazwa -> identyfikator zacytowany."""
    mapping = {target.key: target.quoted_key, target.column: target.quoted_column}
    mapping.update(target.quoted_extra)
    return mapping


def _quoted_columns(target: Target, columns: Sequence[str]) -> list[str]:
    """Zamienia nazwy kolumn na identyfikatory; tylko kolumny z ``Target``."""
    mapping = _column_map(target)
    unknown = [name for name in columns if name not in mapping]
    if unknown:
        raise RemoteError(
            f"kolumny {', '.join(map(repr, unknown))} nie zostały sprawdzone w katalogu tabeli "
            f"{target.table!r}; podaj je w extra_columns przy resolve_target"
        )
    return [mapping[name] for name in columns]


def _unique_keys(keys: Sequence[int]) -> list[int]:
    """Klucze jako int, bez powtórzeń, rosnąco."""
    return sorted({int(key) for key in keys})


def fetch_by_keys(
    rconn: RemoteConn, target: Target, keys: Sequence[int], columns: Sequence[str] | None = None
) -> dict[int, tuple]:
    """Pobiera wskazane wiersze po kluczach (porcjami po ``KEYS_PER_QUERY``).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        keys: Klucze wierszy.
        columns: Kolumny z ``target`` (kolumna, klucz lub ``extra_columns``); domyślnie
            ``(target.column,)``.

    Returns:
        Słownik ``klucz -> krotka wartości kolumn``; wierszy, których nie ma, brak w słowniku.
        Wartości tekstowe (także BLOB/bytea) jako ``str``.

    Raises:
        RemoteError: Nieznana kolumna albo błąd źródła.
    """
    names = list(columns) if columns is not None else [target.column]
    selected = ", ".join(_quoted_columns(target, names))
    mark = rconn.dialect["placeholder"]
    result: dict[int, tuple] = {}
    wanted = _unique_keys(keys)
    with _driver_errors(rconn, "odczyt wierszy po kluczach"):
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            chunk = wanted[start : start + KEYS_PER_QUERY]
            sql = (
                f"SELECT {target.quoted_key}, {selected} FROM {target.quoted_table} "
                f"WHERE {target.quoted_key} IN ({', '.join([mark] * len(chunk))})"
            )
            for row in _read(rconn, "odczyt wierszy po kluczach", sql, chunk):
                result[int(row[0])] = tuple(_to_text(value) for value in row[1:])
    return result


# --- zapis z kontrolą zmian ---------------------------------------------------------------


def lock_sql(db_type: str, target: Target, count: int) -> str:
    """Buduje SELECT blokujący ``count`` wierszy po kluczach (klucz, kolumna źródłowa).

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        count: Liczba parametrów listy IN.

    Returns:
        SQL z ``FOR UPDATE`` (mysql, pgsql), ``WITH (UPDLOCK, ROWLOCK)`` (mssql) albo bez
        blokady wierszy (sqlite: blokadę daje ``BEGIN IMMEDIATE``).
    """
    dialect = _dialect(db_type)
    marks = ", ".join([dialect["placeholder"]] * count)
    return dialect["lock"].format(
        key=target.quoted_key, column=target.quoted_column, table=target.quoted_table, marks=marks
    )


def update_sql(db_type: str, target: Target, write_column: str | None = None) -> str:
    """Buduje UPDATE jednego wiersza: ``SET kolumna = ? WHERE klucz = ?``.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        write_column: Kolumna zapisu (``target.column`` albo jedna z ``extra_columns``).

    Returns:
        SQL z dwoma parametrami: nowy tekst, klucz.

    Raises:
        RemoteError: Gdy kolumna zapisu nie została sprawdzona w katalogu.
    """
    mark = _dialect(db_type)["placeholder"]
    name = write_column or target.column
    if name != target.column and name not in target.extra_columns:
        raise RemoteError(
            f"kolumna zapisu {name!r} nie została sprawdzona w katalogu tabeli {target.table!r}; "
            "podaj ją w extra_columns przy resolve_target"
        )
    quoted = target.quoted_column if name == target.column else target.quoted_extra[name]
    return f"UPDATE {target.quoted_table} SET {quoted} = {mark} WHERE {target.quoted_key} = {mark}"


def compare_and_set(
    rconn: RemoteConn,
    target: Target,
    updates: Sequence[tuple[int, str | None, str | None]],
    write_column: str | None = None,
) -> CasResult:
    """Zapisuje nowe teksty tylko do wierszy, których tekst źródłowy się nie zmienił.

    W jednej transakcji źródła: blokuje wiersze, porównuje bieżący tekst z oczekiwanym bajt po
    bajcie w Pythonie (więc zmiana samej wielkości liter albo spacji na końcu pod sortowaniem
    ``_ci`` też jest konfliktem), aktualizuje tylko zgodne wiersze i zatwierdza.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        updates: Krotki ``(klucz, oczekiwany tekst target.column, nowy tekst)``.
        write_column: Kolumna zapisu (``target.column`` albo jedna z ``extra_columns``);
            domyślnie ``target.column``. Porównanie zawsze dotyczy ``target.column``.

    Returns:
        ``CasResult``: zapisane klucze i konflikty ``(klucz, powód)``.

    Raises:
        RemoteError: Błąd źródła (transakcja wycofana, nic nie zapisano) albo kolumna zapisu
            spoza ``target``.
    """
    update = update_sql(rconn.db_type, target, write_column)
    conflicts: list[tuple[int, str]] = []
    wanted: dict[int, tuple[str | None, str | None]] = {}
    for key, expected, new_text in updates:
        key = int(key)
        if key in wanted:
            conflicts.append((key, "klucz powtórzony w jednej operacji zapisu"))
            continue
        wanted[key] = (expected, new_text)
    if not wanted:
        return CasResult(written=[], conflicts=conflicts)
    keys = sorted(wanted)
    written: list[int] = []
    with _driver_errors(rconn, "zapis z kontrolą zmian"):
        cursor = rconn.conn.cursor()
        try:
            if rconn.dialect["begin"]:
                cursor.execute(rconn.dialect["begin"])
            current: dict[int, str | None] = {}
            for start in range(0, len(keys), KEYS_PER_QUERY):
                chunk = keys[start : start + KEYS_PER_QUERY]
                cursor.execute(lock_sql(rconn.db_type, target, len(chunk)), tuple(chunk))
                for key, text in cursor.fetchall():
                    current[int(key)] = _to_text(text)
            to_write: list[tuple[str | None, int]] = []
            for key in keys:
                expected, new_text = wanted[key]
                if key not in current:
                    conflicts.append((key, "wiersz nie istnieje w źródle"))
                elif current[key] != expected:
                    conflicts.append((key, "tekst w źródle zmienił się od synchronizacji"))
                else:
                    to_write.append((new_text, key))
                    written.append(key)
            for params in to_write:
                cursor.execute(update, params)
            rconn.conn.commit()
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
    return CasResult(written=written, conflicts=conflicts)
