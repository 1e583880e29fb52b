"""Porównanie schematu bazy z innym schematem (dryf po migracjach, zmiany przy przejęciu bazy).

Schemat czytany jest z ``information_schema`` (kolumny i indeksy tabel), więc porównanie nie
parsuje SQL-a: runner (``lib/schema.py``) buduje schemat wzorcowy, stosując migracje w bazie
tymczasowej, i porównuje go z bazą operatora. Kolejność kolumn i komentarze nie są porównywane
(kod nie zależy od nich); typ, NULL, wartość domyślna, EXTRA, zestaw znaków, sortowanie i wyrażenie
kolumny wyliczanej - tak.
"""

from typing import NamedTuple

from lib.db_local import MySQL


class Column(NamedTuple):
    """Kształt kolumny z ``information_schema.COLUMNS``."""

    type: str
    nullable: bool
    default: str | None
    extra: str
    charset: str | None
    collation: str | None
    generation: str | None


class Index(NamedTuple):
    """Indeks: unikalny czy nie i kolumny w kolejności (z długością prefiksu, np. ``body(20)``)."""

    unique: bool
    columns: tuple[str, ...]


class Table(NamedTuple):
    """Kolumny i indeksy jednej tabeli."""

    columns: dict[str, Column]
    indexes: dict[str, Index]


class Difference(NamedTuple):
    """Jedna różnica między schematem ``live`` a ``expected``.

    ``kind``: ``table``, ``column`` albo ``index``; ``live``/``expected`` to kształt po danej stronie
    (``None``, gdy obiektu po tej stronie nie ma); ``name`` jest puste dla tabeli.
    """

    kind: str
    table: str
    name: str
    live: Table | Column | Index | None
    expected: Table | Column | Index | None


def read_schema(db: MySQL, schema: str, ignore: tuple[str, ...] = ()) -> dict[str, Table]:
    """Czyta tabele bazy ``schema`` (kolumny i indeksy) z ``information_schema``.

    Args:
        db: Połączenie z serwerem.
        schema: Nazwa bazy.
        ignore: Tabele pomijane (np. ``schema_migrations`` samego runnera).

    Returns:
        Słownik ``nazwa tabeli -> Table``.
    """
    tables: dict[str, Table] = {}
    for row in db.query(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME, "
        "COLLATION_NAME, GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (schema,),
    ):
        if row["TABLE_NAME"] in ignore:
            continue
        table = tables.setdefault(row["TABLE_NAME"], Table({}, {}))
        table.columns[row["COLUMN_NAME"]] = Column(
            type=row["COLUMN_TYPE"],
            nullable=row["IS_NULLABLE"] == "YES",
            default=row["COLUMN_DEFAULT"],
            extra=row["EXTRA"] or "",
            charset=row["CHARACTER_SET_NAME"],
            collation=row["COLLATION_NAME"],
            generation=row["GENERATION_EXPRESSION"],
        )
    parts: dict[tuple[str, str], list[str]] = {}
    unique: dict[tuple[str, str], bool] = {}
    for row in db.query(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (schema,),
    ):
        if row["TABLE_NAME"] in ignore:
            continue
        key = (row["TABLE_NAME"], row["INDEX_NAME"])
        part = f"({row['SUB_PART']})" if row["SUB_PART"] else ""
        parts.setdefault(key, []).append(f"{row['COLUMN_NAME']}{part}")
        unique[key] = not int(row["NON_UNIQUE"])
    for (table_name, index_name), columns in parts.items():
        if table_name in tables:
            tables[table_name].indexes[index_name] = Index(unique[(table_name, index_name)], tuple(columns))
    return tables


def compare(live: dict[str, Table], expected: dict[str, Table]) -> list[Difference]:
    """Różnice między schematem ``live`` a ``expected`` (tabele, kolumny, indeksy) w stałej kolejności."""
    differences: list[Difference] = []
    for name in sorted(set(live) | set(expected)):
        have, want = live.get(name), expected.get(name)
        if have is None or want is None:
            differences.append(Difference("table", name, "", have, want))
            continue
        for kind, have_items, want_items in (
            ("column", have.columns, want.columns),
            ("index", have.indexes, want.indexes),
        ):
            for item in sorted(set(have_items) | set(want_items)):
                if have_items.get(item) != want_items.get(item):
                    differences.append(
                        Difference(kind, name, item, have_items.get(item), want_items.get(item))
                    )
    return differences


def describe_column(column: Column) -> str:
    """Definicja kolumny w skrócie, np. ``varchar(64) NOT NULL``."""
    text = column.type
    if column.charset:
        text += f" CHARACTER SET {column.charset} COLLATE {column.collation}"
    if column.generation:
        text += f" AS ({column.generation})"
    if not column.nullable:
        text += " NOT NULL"
    if column.default is not None:
        text += f" DEFAULT {column.default}"
    if column.extra:
        text += f" {column.extra}"
    return text


def _describe_index(index: Index) -> str:
    return ("UNIQUE " if index.unique else "") + "(" + ",".join(index.columns) + ")"


def _changed_fields(live: Column, expected: Column) -> str:
    """Pola kolumny, które się różnią: ``type varchar(64) in the database, varchar(128) in the migrations``."""
    fields = []
    for field in Column._fields:
        have, want = getattr(live, field), getattr(expected, field)
        if have != want:
            fields.append(f"{field} {have!s} in the database, {want!s} in the migrations")
    return "; ".join(fields)


def describe_drift(difference: Difference) -> str:
    """Ostrzeżenie o dryfie dla operatora: nazwa ``tabela.kolumna`` i obie strony."""
    kind, table, name, live, expected = difference
    where = f"{table}.{name}" if name else table
    if live is None:
        shown = describe_column(expected) if isinstance(expected, Column) else ""
        if isinstance(expected, Index):
            shown = _describe_index(expected)
        return f"WARNING: schema drift: {kind} {where} {shown} is in the migrations, missing in the database"
    if expected is None:
        shown = describe_column(live) if isinstance(live, Column) else ""
        if isinstance(live, Index):
            shown = _describe_index(live)
        return f"WARNING: schema drift: {kind} {where} {shown} is in the database, not in the migrations"
    if isinstance(live, Column) and isinstance(expected, Column):
        return f"WARNING: schema drift: column {where}: {_changed_fields(live, expected)}"
    assert isinstance(live, Index) and isinstance(expected, Index)
    return (
        f"WARNING: schema drift: index {where} is {_describe_index(live)} in the database, "
        f"{_describe_index(expected)} in the migrations"
    )


def describe_change(difference: Difference) -> str:
    """Opis zmiany, która zaszła między stanem ``live`` (przed) a ``expected`` (po), np. ``added column t.c``."""
    kind, table, name, before, after = difference
    where = f"{table}.{name}" if name else table
    noun = kind
    if kind == "index":
        index = after if after is not None else before
        noun = "unique key" if isinstance(index, Index) and index.unique else "key"
    if before is None:
        return f"created table {table}" if kind == "table" else f"added {noun} {where}"
    if after is None:
        return f"dropped {noun} {where}"
    if isinstance(before, Index) and isinstance(after, Index):
        return f"rebuilt {noun} {where} ({','.join(after.columns)})"
    assert isinstance(before, Column) and isinstance(after, Column)
    return f"changed column {where} ({describe_column(before)} -> {describe_column(after)})"
