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

# Typy kolumn klucza (po normalizacji nazwy typu): liczby całkowite, teksty i UUID.
INTEGER_TYPES = frozenset(
    {"int", "integer", "bigint", "smallint", "tinyint", "mediumint", "big int", "int2", "int4", "int8"}
)
TEXT_TYPES = frozenset(
    {
        "char",
        "varchar",
        "text",
        "tinytext",
        "mediumtext",
        "longtext",
        "nchar",
        "nvarchar",
        "character",
        "character varying",
        "bpchar",
        "citext",
        "name",
    }
)
UUID_TYPES = frozenset({"uuid", "uniqueidentifier"})
KEY_KINDS = ("int", "text", "uuid")


class KeyColumn(NamedTuple):
    """Kolumna klucza: nazwa z katalogu, identyfikator SQL, rodzaj (``int``, ``text``, ``uuid``), typ z katalogu."""

    name: str
    quoted: str
    kind: str
    type_name: str


class Target(NamedTuple):
    """Tabela, kolumna i klucz sprawdzone w katalogu źródła, z gotowymi identyfikatorami SQL.

    Klucz może mieć kilka kolumn (``key_columns``, w kolejności klucza). Wartość klucza w całym
    pakiecie to skalar dla klucza jednokolumnowego albo krotka dla złożonego.
    """

    db_type: str
    schema: str | None
    table: str
    column: str
    quoted_table: str
    quoted_column: str
    key_columns: tuple[KeyColumn, ...]
    extra_columns: tuple[str, ...]
    quoted_extra: dict[str, str]
    # Typ kolumny tekstowej z katalogu (szybkie ścieżki odczytu zależą od typu); pusty = nieznany.
    column_type: str = ""
    # Zestaw znaków kolumny tekstowej i kolumn dodatkowych (nazwa -> zestaw z katalogu; brak = Unicode).
    charsets: dict[str, str] = {}
    # Zacytowana kolumna kursora resyncu (``task.cursor_column``) albo pusty napis.
    quoted_cursor: str = ""

    def charset_of(self, column: str) -> str:
        """Zestaw znaków kolumny z katalogu (pusty, gdy kolumna przechowuje pełny Unicode albo nieznany)."""
        return self.charsets.get(column, "")

    @property
    def key(self) -> str:
        """Nazwy kolumn klucza rozdzielone przecinkami (do komunikatów)."""
        return ", ".join(column.name for column in self.key_columns)

    @property
    def quoted_key(self) -> str:
        """Lista zacytowanych kolumn klucza (``SELECT``, ``ORDER BY``)."""
        return ", ".join(column.quoted for column in self.key_columns)

    @property
    def key_kinds(self) -> tuple[str, ...]:
        """Rodzaje kolumn klucza w kolejności klucza."""
        return tuple(column.kind for column in self.key_columns)

    @property
    def single_integer_key(self) -> bool:
        """Czy klucz to jedna kolumna całkowita (wtedy ``task_item.remote_id`` jest wypełniane)."""
        return self.key_kinds == ("int",)


def build_target(
    db_type: str,
    schema: str | None,
    table: str,
    column: str,
    keys: Sequence[tuple[str, str, str]],
    extra_columns: Sequence[str] = (),
    column_type: str = "",
    charsets: dict[str, str] | None = None,
) -> Target:
    """Składa ``Target`` z nazw z katalogu, cytując je według dialektu.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        schema: Schemat (pgsql, mssql) albo ``None``.
        table: Tabela.
        column: Kolumna tekstowa.
        keys: Kolumny klucza ``(nazwa, rodzaj, typ z katalogu)`` w kolejności klucza.
        extra_columns: Kolumny dodatkowe (np. kolumna eksportu).
        column_type: Typ kolumny tekstowej z katalogu.
        charsets: Zestawy znaków kolumny tekstowej i dodatkowych (nazwa -> zestaw).

    Returns:
        ``Target``.
    """
    quoted_table = quote_identifier(db_type, table)
    if schema is not None:
        quoted_table = f"{quote_identifier(db_type, schema)}.{quoted_table}"
    return Target(
        db_type=db_type,
        schema=schema,
        table=table,
        column=column,
        quoted_table=quoted_table,
        quoted_column=quote_identifier(db_type, column),
        key_columns=tuple(
            KeyColumn(name, quote_identifier(db_type, name), kind, type_name)
            for name, kind, type_name in keys
        ),
        extra_columns=tuple(extra_columns),
        quoted_extra={name: quote_identifier(db_type, name) for name in extra_columns},
        column_type=column_type,
        charsets=dict(charsets or {}),
    )


def _normalize_type(type_name: str | None) -> str:
    """Sprowadza nazwę typu z katalogu do postaci porównywalnej z ``INTEGER_TYPES``."""
    text = re.sub(r"\(.*?\)", " ", (type_name or "").lower())
    words = [w for w in text.split() if w not in ("unsigned", "signed", "zerofill")]
    return " ".join(words)


def key_kind(db_type: str, type_name: str | None) -> str | None:
    """Rodzaj kolumny jako klucza: ``int``, ``text``, ``uuid`` albo ``None`` (nie nadaje się).

    SQLite nie ma typów, tylko powinowactwo z nazwy typu (reguły SQLite): ``INT`` w nazwie -
    liczba całkowita; ``CHAR``, ``CLOB``, ``TEXT`` - tekst; inaczej (``BLOB``, ``REAL``, brak
    typu) kolumna nie nadaje się na klucz.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        type_name: Typ z katalogu.

    Returns:
        Rodzaj klucza albo ``None``.
    """
    normalized = _normalize_type(type_name)
    if db_type == "sqlite":
        upper = (type_name or "").upper()
        if "INT" in upper:
            return "int"
        if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
            return "text"
        return None
    if normalized in INTEGER_TYPES:
        return "int"
    if normalized in TEXT_TYPES:
        return "text"
    if normalized in UUID_TYPES:
        return "uuid"
    return None


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
    cursor_column: str | None = None,
) -> Target:
    """Sprawdza w katalogu źródła tabelę, kolumnę, klucz, kolumny dodatkowe i kolumnę kursora.

    Wszystkie wyszukiwania idą parametrami; do wyniku trafiają nazwy z katalogu, zacytowane
    według dialektu. Nazwa, której nie ma w katalogu (np. ``x; DROP TABLE t``), kończy się
    błędem i nigdy nie staje się częścią SQL.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        table_name: Tabela; dla pgsql i mssql także ``schemat.tabela`` (domyślnie public / dbo).
        column_name: Kolumna tekstowa.
        key_column: Kolumny klucza (``task.key_column``, po przecinku, w kolejności klucza) albo
            ``None`` = klucz główny, a bez niego indeks unikalny na kolumnach NOT NULL.
        extra_columns: Kolumny dodatkowe, np. kolumna eksportu.
        cursor_column: Kolumna kursora resyncu (``task.cursor_column``) albo ``None``.

    Returns:
        ``Target`` z nazwami z katalogu i identyfikatorami gotowymi do SQL.

    Raises:
        RemoteError: Brak tabeli lub kolumny, brak użytecznego klucza (brak klucza, kolumna
            dopuszczająca NULL, typ, który nie nadaje się na klucz) albo błąd źródła.
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
        ("cursor_column", cursor_column),
        *(("export_column", extra) for extra in extra_columns),
    ):
        if name and "\x00" in name:
            raise RemoteError(
                f"nazwa {name!r} zawiera znak NUL i nie istnieje w źródle {rconn.label}; popraw task.{field}"
            )
    schema, table = _find_table(rconn, table_name)
    columns = _catalog(rconn, "sql_columns", schema, table)
    shown = table if schema is None else f"{schema}.{table}"
    column, column_type = _find_column(columns, column_name, shown, rconn.label, "column_name")
    extra: list[str] = []
    for name in extra_columns:
        found, _ = _find_column(columns, name, shown, rconn.label, "export_column")
        if found not in extra:
            extra.append(found)
    keys = _resolve_key(rconn, columns, schema, table, shown, key_column)
    charsets = {str(row[0]): str(row[3]) for row in columns if row[3] and str(row[0]) in (column, *extra)}
    target = build_target(db_type, schema, table, column, keys, extra, column_type, charsets)
    if cursor_column:
        cursor, _ = _find_column(columns, cursor_column, shown, rconn.label, "cursor_column")
        target = target._replace(quoted_cursor=quote_identifier(db_type, cursor))
    return target


def _split_key_names(key_column: str) -> list[str]:
    """Nazwy kolumn z ``task.key_column`` (po przecinku, w kolejności klucza).

    Jedna nazwa musi być dokładna (jak każdy identyfikator); w liście po przecinku spacje wokół
    przecinków są pomijane (``product_id, lang``).
    """
    if "," not in key_column:
        return [key_column]
    return [name.strip() for name in key_column.split(",") if name.strip()]


def _resolve_key(
    rconn: RemoteConn,
    columns: Sequence[tuple],
    schema: str | None,
    table: str,
    shown: str,
    key_column: str | None,
) -> list[tuple[str, str, str]]:
    """Wybiera kolumny klucza: ``task.key_column``, klucz główny albo indeks unikalny NOT NULL.

    Returns:
        Lista ``(nazwa z katalogu, rodzaj, typ z katalogu)`` w kolejności klucza.

    Raises:
        RemoteError: Jedno zdanie z nazwą tabeli i tym, co ustawić w ``task.key_column``.
    """
    db_type = rconn.db_type
    info = {str(row[0]): (str(row[1] or ""), str(row[2] or "").upper() != "NO") for row in columns}
    fix = "wskaż kolumny klucza (liczby całkowite, tekst lub UUID, NOT NULL) w task.key_column, po przecinku"
    if key_column:
        names = _split_key_names(key_column)
        if not names:
            raise RemoteError(f"task.key_column jest puste dla tabeli {shown!r} ({rconn.label}); {fix}")
        keys = []
        for name in names:
            found, type_name = _find_column(columns, name, shown, rconn.label, "key_column")
            kind = key_kind(db_type, type_name)
            if kind is None:
                raise RemoteError(
                    f"kolumna klucza {found!r} w tabeli {shown!r} ({rconn.label}) ma typ {type_name!r}, "
                    f"który nie nadaje się na klucz; {fix}"
                )
            if info[found][1]:
                raise RemoteError(
                    f"kolumna klucza {found!r} w tabeli {shown!r} ({rconn.label}) dopuszcza NULL; {fix}"
                )
            if any(found == key[0] for key in keys):
                raise RemoteError(f"kolumna {found!r} powtórzona w task.key_column tabeli {shown!r}; {fix}")
            keys.append((found, kind, type_name))
        return keys
    primary = [str(row[0]) for row in _catalog(rconn, "sql_primary_key", schema, table)]
    if primary:
        keys = [(name, key_kind(db_type, info[name][0]), info[name][0]) for name in primary]
        bad = [(name, type_name) for name, kind, type_name in keys if kind is None]
        if bad:
            described = ", ".join(f"{name!r} typu {type_name!r}" for name, type_name in bad)
            raise RemoteError(
                f"brak użytecznego klucza: klucz główny tabeli {shown!r} w źródle {rconn.label} ma kolumny "
                f"{described}, które nie nadają się na klucz; {fix}"
            )
        return [(name, str(kind), type_name) for name, kind, type_name in keys]
    indexes: dict[str, list[str | None]] = {}
    for index_name, column_name in _catalog(rconn, "sql_unique_keys", schema, table):
        indexes.setdefault(str(index_name), []).append(None if column_name is None else str(column_name))
    usable = []
    for index_name, names in indexes.items():
        if any(name is None or name not in info or info[name][1] for name in names):
            continue
        kinds = [key_kind(db_type, info[str(name)][0]) for name in names]
        if all(kind is not None for kind in kinds):
            usable.append(
                (
                    len(names),
                    index_name,
                    [(str(n), str(k), info[str(n)][0]) for n, k in zip(names, kinds, strict=True)],
                )
            )
    if usable:
        return min(usable)[2]
    raise RemoteError(
        f"brak użytecznego klucza: tabela {shown!r} w źródle {rconn.label} nie ma klucza głównego ani "
        f"indeksu unikalnego na kolumnach NOT NULL o typie liczbowym, tekstowym lub UUID; {fix}"
    )
