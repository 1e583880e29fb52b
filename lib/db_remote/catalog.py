"""Katalog źródła: tabela, kolumna, klucz i kolumny dodatkowe zadania sprawdzone w katalogu.

Identyfikatory od użytkownika (tabela, kolumna, klucz) nigdy nie trafiają do SQL wprost:
najpierw są wyszukiwane w katalogu źródła parametrami, a do zapytań idą nazwy zwrócone
przez katalog, zacytowane według dialektu (``Target``).
"""

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from lib.db_remote.dialects import RemoteConn, _read, quote_identifier
from lib.errors import RemoteError

# Typy całkowite, które nadają się na klucz stronicowania (po normalizacji nazwy typu).
INTEGER_TYPES = frozenset({"int", "integer", "bigint", "smallint", "tinyint", "mediumint", "big int"})


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
