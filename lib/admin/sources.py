"""Źródła (``database_connection``) bez SQL-a operatora: dodanie, test, tabele, lista, usunięcie.

Hasło trafia do bazy wyłącznie zaszyfrowane (``lib.passwords``) albo wcale (``password_env``).
Żadna funkcja tego modułu nie zwraca hasła ani szyfrogramu.
"""

import time
from pathlib import Path
from typing import Any

from lib import db_remote
from lib.db_local import MySQL
from lib.db_remote import discovery
from lib.errors import ConfigError, RemoteError
from lib.load_config import Settings
from lib.passwords import ENV_NAME_RE, PREFIX, encrypt, password_state
from lib.source import connect_source

DB_TYPES = ("mysql", "pgsql", "mssql", "sqlite")
DEFAULT_PORTS = {"mysql": 3306, "pgsql": 5432, "mssql": 1433, "sqlite": 0}
# Szerokość database_connection.db_password (szyfrogram z przedrostkiem).
PASSWORD_COLUMN_CHARS = 512
# Zadania w tych statusach nie blokują usunięcia źródła (operator je zamknął).
RETIRED_TASK_STATUSES = ("archived",)
# Kolumny listy źródeł: jawnie, bez db_password.
_LIST_COLUMNS = (
    "c.id_database_connection, c.alias, c.db_type, c.host, c.port, c.db_name, c.db_user, c.use_ssl, "
    "c.status, c.last_error, c.password_env, COALESCE(c.db_password, '') <> '' AS has_password, "
    "COALESCE(c.db_password LIKE %s, 0) AS encrypted"
)


def get_source(db: MySQL, alias: str) -> dict[str, Any]:
    """Wiersz ``database_connection`` o aliasie ``alias``.

    Raises:
        ConfigError: Brak takiego źródła (kod wyjścia 2).
    """
    row = db.query_one("SELECT * FROM database_connection WHERE alias=%s", (alias,))
    if row is None:
        raise ConfigError(f"źródło {alias!r} nie istnieje (lista: ailexia source list)")
    return row


def add_source(
    db: MySQL,
    settings: Settings,
    *,
    alias: str,
    db_type: str,
    host: str | None,
    port: int | None,
    db_name: str,
    user: str | None,
    password: str | None = None,
    password_env: str | None = None,
    use_ssl: bool = False,
    id_user: int = 1,
) -> int:
    """Rejestruje źródło; hasło zapisane zaszyfrowane albo tylko nazwa zmiennej środowiska.

    Args:
        db: Połączenie lokalne.
        settings: Ustawienia (klucz ``AILEXIA_SECRET_KEY``).
        alias: Unikalna nazwa źródła.
        db_type: mysql, pgsql, mssql albo sqlite.
        host: Host (sqlite: pomijany).
        port: Port; ``None`` = domyślny dialektu.
        db_name: Baza; dla sqlite ścieżka pliku.
        user: Użytkownik (sqlite: pomijany).
        password: Hasło jawne (ze standardowego wejścia) albo ``None``.
        password_env: Nazwa zmiennej środowiska z hasłem albo ``None``.
        use_ssl: Połączenie szyfrowane.
        id_user: Właściciel wpisu (``id_user``).

    Returns:
        ``id_database_connection`` nowego źródła.

    Raises:
        ConfigError: Zły typ, brak hosta/użytkownika, powtórzony alias, zła nazwa zmiennej,
            brak klucza do zaszyfrowania hasła.
    """
    if not alias or len(alias) > 64:
        raise ConfigError("--alias: podaj nazwę źródła (1-64 znaki)")
    if db_type not in DB_TYPES:
        raise ConfigError(f"--type: nieznany typ bazy {db_type!r} (dozwolone: {', '.join(DB_TYPES)})")
    if db_type != "sqlite" and (not host or not user):
        raise ConfigError(f"źródło typu {db_type} wymaga --host i --user")
    if password is not None and password_env:
        raise ConfigError("podaj hasło albo --password-stdin, albo --password-env, nie oba")
    if password_env and not ENV_NAME_RE.match(password_env):
        raise ConfigError(f"--password-env: {password_env!r} nie jest nazwą zmiennej środowiska")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"--port: oczekiwano 1-65535, jest {port}")
    if db_type == "sqlite":
        # Ścieżka bezwzględna: runy Dagstera pracują w innym katalogu niż to polecenie.
        path = Path(db_name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"--db: plik SQLite {str(path)!r} nie istnieje")
        db_name = str(path)
    if db.query_value("SELECT COUNT(*) FROM database_connection WHERE alias=%s", (alias,)):
        raise ConfigError(f"źródło o aliasie {alias!r} już istnieje; wybierz inny --alias")
    stored = encrypt(password, settings) if password else None
    if stored and len(stored) > PASSWORD_COLUMN_CHARS:
        raise ConfigError(
            "hasło za długie do zapisania zaszyfrowanego (najwyżej ~300 znaków); użyj --password-env"
        )
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, db_password, "
        "password_env, use_ssl, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'active')",
        (
            id_user,
            alias,
            db_type,
            "" if db_type == "sqlite" else host,
            DEFAULT_PORTS[db_type] if port is None else port,
            db_name,
            "" if db_type == "sqlite" else user,
            stored,
            password_env or None,
            1 if use_ssl else 0,
        ),
    )
    id_connection = int(db.query_value("SELECT LAST_INSERT_ID()"))
    db.commit()
    return id_connection


def list_sources(db: MySQL) -> list[dict[str, Any]]:
    """Źródła z liczbą zadań, bez hasła; ``password`` mówi tylko, jak hasło jest przechowywane.

    Returns:
        Lista słowników (alias, typ, adres, baza, użytkownik, ssl, status, password, tasks, last_error).
    """
    rows = db.query(
        f"SELECT {_LIST_COLUMNS}, (SELECT COUNT(*) FROM task t WHERE t.id_database_connection="
        "c.id_database_connection) AS tasks FROM database_connection c ORDER BY c.alias",
        (PREFIX + "%",),
    )
    db.commit()
    result = []
    for row in rows:
        result.append(
            {
                "id": int(row["id_database_connection"]),
                "alias": row["alias"],
                "type": row["db_type"],
                "host": row["host"] or None,
                "port": int(row["port"]) if row["port"] else None,
                "database": row["db_name"],
                "user": row["db_user"] or None,
                "ssl": bool(row["use_ssl"]),
                "status": row["status"],
                # Szyfrogram nie opuszcza bazy: SQL mówi tylko, czy hasło jest i czy zaszyfrowane.
                "password": password_state(
                    row["password_env"], bool(row["has_password"]), bool(row["encrypted"])
                ),
                "tasks": int(row["tasks"]),
                "last_error": row["last_error"],
            }
        )
    return result


def remove_source(db: MySQL, alias: str) -> int:
    """Usuwa źródło, którego nie używa żadne zadanie (poza zarchiwizowanymi).

    Returns:
        Id usuniętego źródła.

    Raises:
        ConfigError: Brak źródła albo źródło używane przez zadania (wymienione w komunikacie).
    """
    row = get_source(db, alias)
    marks = ", ".join(["%s"] * len(RETIRED_TASK_STATUSES))
    users = db.query(
        f"SELECT id_task FROM task WHERE id_database_connection=%s AND status NOT IN ({marks}) ORDER BY id_task",
        (row["id_database_connection"], *RETIRED_TASK_STATUSES),
    )
    if users:
        ids = ", ".join(str(r["id_task"]) for r in users)
        raise ConfigError(
            f"źródło {alias!r} jest używane przez zadania {ids}; najpierw ailexia task archive <id> "
            "(albo zostaw źródło)"
        )
    db.execute(
        "DELETE FROM database_connection WHERE id_database_connection=%s", (row["id_database_connection"],)
    )
    db.commit()
    return int(row["id_database_connection"])


def open_source_by_alias(
    db: MySQL, settings: Settings, alias: str
) -> tuple[db_remote.RemoteConn, dict[str, Any]]:
    """Łączy ze źródłem o aliasie (także wyłączonym - test ma powiedzieć prawdę) i zapisuje stan połączenia."""
    row = get_source(db, alias)
    db.commit()
    return connect_source(db, row, settings), row


def check_source(
    db: MySQL, settings: Settings, alias: str, table: str | None = None, schema: str | None = None
) -> dict[str, Any]:
    """Łączy ze źródłem i sprawdza wersję, użytkownika, prawo odczytu i zapisu, czas.

    Bez ``table`` prawa sprawdzane są dla każdej tabeli schematu (z kolumną tekstową): odczyt
    i zapis "tak", gdy dotyczy wszystkich, inaczej liczba tabel. Z ``table`` - dla tej tabeli
    (kolumna tekstowa pierwsza w tabeli).

    Returns:
        Słownik alias, version, user, can_read, can_update (``True``/``False``), tables_checked,
        tables_readable, tables_updatable, export_refusal (zdanie jak przy eksporcie albo ``None``),
        elapsed_ms.

    Raises:
        RemoteError: Źródło nieosiągalne, złe hasło (stan połączenia ``error``).
        ConfigError: Brak klucza ``AILEXIA_SECRET_KEY`` albo tabeli.
    """
    started = time.monotonic()
    rconn, row = open_source_by_alias(db, settings, alias)
    try:
        info = discovery.server_info(rconn)
        if table:
            try:
                found = [discovery.find_table(rconn, table)]
            except RemoteError as exc:
                raise ConfigError(str(exc)) from None
        else:
            found = [(t_schema, t_name) for t_schema, t_name, _rows in discovery.list_tables(rconn, schema)]
        tables = []
        for t_schema, t_name in found:
            texts = discovery.text_columns(rconn, t_schema, t_name)
            if texts:
                tables.append((discovery.quoted_table(rconn, t_schema, t_name), t_name, texts[0]))
            elif texts is None:
                # Tabela bez żadnego prawa: katalog ukrywa kolumny, więc liczy się jako nieczytelna.
                tables.append(("", t_name, ""))
            elif table:
                raise ConfigError(f"tabela {table!r} w źródle {rconn.label} nie ma kolumn tekstowych")
        readable = updatable = 0
        refusal = None
        for quoted, name, column in tables:
            granted = (
                discovery.privileges(rconn, quoted, column) if quoted else discovery.Privileges(False, False)
            )
            readable += granted.read
            updatable += granted.update
            if not granted.update and refusal is None and column:
                refusal = discovery.refusal_sentence(rconn, name, column, row["db_user"])
    finally:
        db_remote.close(rconn)
    return {
        "alias": alias,
        "type": row["db_type"],
        "version": info["version"],
        "user": info["user"] or row["db_user"] or None,
        "tables_checked": len(tables),
        "tables_readable": readable,
        "tables_updatable": updatable,
        "can_read": bool(tables) and readable == len(tables),
        "can_update": bool(tables) and updatable == len(tables),
        "export_refusal": refusal,
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }


def source_tables(
    db: MySQL, settings: Settings, alias: str, schema: str | None = None
) -> list[dict[str, Any]]:
    """Tabele źródła z kolumnami tekstowymi, szacunkiem wierszy, kluczem (albo powodem braku) i prawami.

    Raises:
        RemoteError: Źródło nieosiągalne.
    """
    rconn, _row = open_source_by_alias(db, settings, alias)
    try:
        return [
            discovery.describe_table(rconn, t_schema, t_name, estimate)
            for t_schema, t_name, estimate in discovery.list_tables(rconn, schema)
        ]
    finally:
        db_remote.close(rconn)
