"""Rozpoznanie źródła: wersja serwera, bieżący użytkownik, tabele i uprawnienia (najmniejsze uprawnienia).

Tabela ``DISCOVERY`` trzyma SQL każdego dialektu. Uprawnienia sprawdzane są bez zapisu:

* PostgreSQL i MS SQL pytają funkcje katalogu (``has_column_privilege``, ``HAS_PERMS_BY_NAME``) -
  bez blokad i bez wyzwalaczy (MS SQL uruchamia wyzwalacze ``AFTER UPDATE`` także dla zera wierszy);
* MySQL/MariaDB i SQLite nie mają takiej funkcji: próba ``UPDATE t SET c = c WHERE 1 = 0`` w
  transakcji od razu wycofanej (wyzwalacze tych baz są tylko ``FOR EACH ROW``, więc żaden się nie
  uruchamia, a warunek niemożliwy nie blokuje wierszy).

Klucz tabeli wybiera ``catalog.resolve_target`` - ta sama reguła co w synchronizacji.
"""

from typing import Any, NamedTuple

from lib.db_remote.catalog import _catalog, _find_table, key_kind, resolve_target
from lib.db_remote.dialects import RemoteConn, _describe, _driver_errors, _query, _rollback, quote_identifier
from lib.errors import RemoteError

DISCOVERY: dict[str, dict[str, Any]] = {
    "mysql": {
        "server": "SELECT VERSION(), CURRENT_USER()",
        # table_rows to szacunek InnoDB (statystyki), bez liczenia wierszy.
        "tables": (
            "SELECT NULL, table_name, table_rows FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"
        ),
        "tables_params": lambda schema: (),
        "count_rows": False,
        "privileges": None,
        "probe_begin": "START TRANSACTION",
    },
    "pgsql": {
        "server": "SELECT current_setting('server_version'), current_user",
        # pg_class, nie information_schema: widać też tabele bez uprawnień (z odpowiedzią "brak odczytu").
        "tables": (
            "SELECT n.nspname, c.relname, CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = %s ORDER BY c.relname"
        ),
        "tables_params": lambda schema: (schema,),
        "count_rows": False,
        "privileges": (
            "SELECT has_column_privilege(%s::regclass, %s, 'SELECT'), "
            "has_column_privilege(%s::regclass, %s, 'UPDATE')"
        ),
        "probe_begin": None,
    },
    "mssql": {
        "server": "SELECT CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(128)), SUSER_SNAME()",
        "tables": (
            "SELECT s.name, t.name, SUM(p.rows) FROM sys.tables t "
            "JOIN sys.schemas s ON s.schema_id = t.schema_id "
            "JOIN sys.partitions p ON p.object_id = t.object_id AND p.index_id IN (0, 1) "
            "WHERE s.name = ? GROUP BY s.name, t.name ORDER BY t.name"
        ),
        "tables_params": lambda schema: (schema,),
        "count_rows": False,
        "privileges": (
            "SELECT HAS_PERMS_BY_NAME(?, 'OBJECT', 'SELECT', ?, 'COLUMN'), "
            "HAS_PERMS_BY_NAME(?, 'OBJECT', 'UPDATE', ?, 'COLUMN')"
        ),
        "probe_begin": None,
    },
    "sqlite": {
        "server": "SELECT sqlite_version(), NULL",
        "tables": (
            "SELECT NULL, name, NULL FROM sqlite_master "
            "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ),
        "tables_params": lambda schema: (),
        # SQLite nie ma statystyk bez ANALYZE; plik lokalny liczy się szybko.
        "count_rows": True,
        "privileges": None,
        "probe_begin": "BEGIN",
    },
}

PROBE_READ = "SELECT {column} FROM {table} WHERE 1 = 0"
PROBE_UPDATE = "UPDATE {table} SET {column} = {column} WHERE 1 = 0"


class Privileges(NamedTuple):
    """Uprawnienia bieżącego użytkownika do kolumny tabeli; ``detail`` = odpowiedź serwera przy odmowie."""

    read: bool
    update: bool
    detail: str | None = None


def server_info(rconn: RemoteConn) -> dict[str, str]:
    """Wersja serwera i bieżący użytkownik (dla SQLite wersja biblioteki, użytkownik pusty).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.

    Returns:
        ``{"version": ..., "user": ...}``.
    """
    with _driver_errors(rconn, "odczyt wersji serwera"):
        rows = _query(rconn, DISCOVERY[rconn.db_type]["server"])
        _rollback(rconn)
    version, user = rows[0]
    return {"version": str(version or ""), "user": str(user or "")}


def list_tables(rconn: RemoteConn, schema: str | None = None) -> list[tuple[str | None, str, int | None]]:
    """Tabele schematu (dla pgsql/mssql domyślnie public/dbo) z szacunkiem liczby wierszy.

    Args:
        rconn: Połączenie.
        schema: Schemat; ``None`` = domyślny dialektu (mysql i sqlite: bieżąca baza).

    Returns:
        Lista ``(schemat albo None, tabela, szacowana liczba wierszy albo None)`` po nazwie.
    """
    spec = DISCOVERY[rconn.db_type]
    schema = schema or rconn.dialect["default_schema"]
    with _driver_errors(rconn, "lista tabel"):
        rows = _query(rconn, spec["tables"], spec["tables_params"](schema))
        result = []
        for row_schema, table, estimate in rows:
            if spec["count_rows"]:
                quoted = quote_identifier(rconn.db_type, str(table))
                estimate = _query(rconn, f"SELECT COUNT(*) FROM {quoted}")[0][0]
            result.append(
                (
                    None if row_schema is None else str(row_schema),
                    str(table),
                    None if estimate is None else int(estimate),
                )
            )
        _rollback(rconn)
    return result


def _probe(rconn: RemoteConn, sql: str) -> str | None:
    """Wykonuje próbę w transakcji od razu wycofanej; zwraca odpowiedź serwera przy odmowie albo ``None``."""
    begin = DISCOVERY[rconn.db_type]["probe_begin"]
    cursor = rconn.conn.cursor()
    try:
        if begin:
            cursor.execute(begin)
        cursor.execute(sql)
        return None
    except rconn.dialect["errors"]() as exc:
        return _describe(exc)
    finally:
        _rollback(rconn)
        try:
            cursor.close()
        except Exception:  # kursor zamknięty razem z przerwaną transakcją
            pass


def privileges(rconn: RemoteConn, quoted_table: str, column: str) -> Privileges:
    """Czy bieżący użytkownik może czytać i zmieniać kolumnę tabeli - bez zapisu czegokolwiek.

    Args:
        rconn: Połączenie.
        quoted_table: Tabela zacytowana według dialektu (``Target.quoted_table``), np. ``"public"."t"``.
        column: Nazwa kolumny z katalogu (niecytowana).

    Returns:
        ``Privileges``; przy odmowie ``detail`` niesie odpowiedź serwera.
    """
    spec = DISCOVERY[rconn.db_type]
    if spec["privileges"]:
        with _driver_errors(rconn, "sprawdzenie uprawnień"):
            row = _query(rconn, spec["privileges"], (quoted_table, column, quoted_table, column))[0]
            _rollback(rconn)
        return Privileges(bool(row[0]), bool(row[1]))
    quoted_column = quote_identifier(rconn.db_type, column)
    read_error = _probe(rconn, PROBE_READ.format(table=quoted_table, column=quoted_column))
    update_error = _probe(rconn, PROBE_UPDATE.format(table=quoted_table, column=quoted_column))
    return Privileges(read_error is None, update_error is None, update_error or read_error)


def find_table(rconn: RemoteConn, table_name: str) -> tuple[str | None, str]:
    """Tabela z katalogu: ``(schemat albo None, nazwa w pisowni katalogu)``.

    Raises:
        RemoteError: Tabeli nie ma w źródle (jedno zdanie z nazwą).
    """
    return _find_table(rconn, table_name)


def quoted_table(rconn: RemoteConn, schema: str | None, table: str) -> str:
    """Tabela zacytowana według dialektu, ze schematem, gdy jest (jak ``Target.quoted_table``)."""
    quoted = quote_identifier(rconn.db_type, table)
    return quoted if schema is None else f"{quote_identifier(rconn.db_type, schema)}.{quoted}"


def text_columns(rconn: RemoteConn, schema: str | None, table: str) -> list[str] | None:
    """Kolumny tekstowe tabeli w kolejności tabeli; ``None``, gdy katalog nie pokazuje żadnej kolumny.

    Katalog (``information_schema``) ukrywa kolumny tabel, do których użytkownik nie ma żadnego
    prawa - wtedy wynik ``None`` znaczy "brak dostępu", a pusta lista "brak kolumn tekstowych".
    """
    columns = _catalog(rconn, "sql_columns", schema, table)
    if not columns:
        return None
    return [str(row[0]) for row in columns if key_kind(rconn.db_type, str(row[1] or "")) == "text"]


def describe_table(
    rconn: RemoteConn, schema: str | None, table: str, rows_estimate: int | None
) -> dict[str, Any]:
    """Opis tabeli dla operatora: kolumny tekstowe, szacunek wierszy, klucz (albo dlaczego brak), uprawnienia.

    Args:
        rconn: Połączenie.
        schema: Schemat z ``list_tables``.
        table: Tabela z ``list_tables``.
        rows_estimate: Szacunek wierszy z ``list_tables``.

    Returns:
        Słownik ``table``, ``text_columns``, ``rows_estimate``, ``key`` (albo ``None``),
        ``key_problem`` (powód braku klucza), ``can_read``, ``can_update``.
    """
    shown = table if schema is None or schema == rconn.dialect["default_schema"] else f"{schema}.{table}"
    name = table if schema is None else f"{schema}.{table}"
    result: dict[str, Any] = {
        "table": shown,
        "rows_estimate": rows_estimate,
        "key": None,
        "key_problem": None,
    }
    try:
        found = text_columns(rconn, schema, table)
    except RemoteError as exc:
        found = []
        result["key_problem"] = str(exc)
    texts = found or []
    result["text_columns"] = texts
    if found is None:
        result["key_problem"] = "użytkownik nie widzi kolumn tabeli (brak uprawnień)"
    elif not texts and not result["key_problem"]:
        result["key_problem"] = "brak kolumn tekstowych"
    if texts:
        try:
            target = resolve_target(rconn, name, texts[0])
            result["key"] = target.key
        except RemoteError as exc:
            result["key_problem"] = str(exc)
    if texts:
        granted = privileges(rconn, quoted_table(rconn, schema, table), texts[0])
        result["can_read"], result["can_update"] = granted.read, granted.update
    elif found is None:
        result["can_read"] = result["can_update"] = False
    else:
        result["can_read"] = result["can_update"] = None
    return result


def refusal_sentence(rconn: RemoteConn, shown_table: str, column: str, user: str) -> str:
    """Zdanie odmowy eksportu: użytkownik, tabela, kolumna i brakujące uprawnienie ``UPDATE``."""
    who = user or "(użytkownik pliku)"
    return (
        f"użytkownik {who!r} nie ma uprawnienia UPDATE do tabeli {shown_table!r} (kolumna {column!r}) "
        f"w źródle {rconn.label}, więc eksport odmówił przed zapisem czegokolwiek; nadaj GRANT UPDATE "
        "albo eksportuj przez połączenie z prawem zapisu"
    )


def update_refusal(
    rconn: RemoteConn, quoted_table: str, shown_table: str, column: str, user: str
) -> str | None:
    """Zdanie odmowy eksportu, gdy użytkownik nie może zmieniać kolumny; ``None``, gdy może.

    Args:
        rconn: Połączenie.
        quoted_table: Tabela zacytowana (``Target.quoted_table``).
        shown_table: Nazwa tabeli do komunikatu.
        column: Kolumna zapisu (nazwa z katalogu).
        user: Użytkownik źródła (``database_connection.db_user``).

    Returns:
        ``refusal_sentence`` albo ``None``.
    """
    if privileges(rconn, quoted_table, column).update:
        return None
    return refusal_sentence(rconn, shown_table, column, user)
