"""Zakładanie i aktualizacja schematu lokalnej bazy (``python sync.py --init-db``).

Schemat jest deklaratywny (``lib/schema.sql``): brakujące tabele są tworzone, brakujące
kolumny i indeksy dodawane, listy ENUM poszerzane. Nic nie jest usuwane, więc ponowne
uruchomienie niczego nie zmienia, a starszy schemat (np. DDL ze specyfikacji) zostaje
podniesiony bez utraty wierszy.
"""

import re
from pathlib import Path
from typing import NamedTuple

from lib.db_local import MySQL, connect_local
from lib.errors import ConfigError, LocalDbError
from lib.load_config import Settings

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("schema.sql")

_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_CREATE_RE = re.compile(r"CREATE TABLE IF NOT EXISTS `(\w+)` \((.*?)\n\)([^;]*);", re.S)
_COLUMN_RE = re.compile(r"^\s*`(\w+)`\s+(.+?),?\s*$")
_KEY_RE = re.compile(r"^\s*((?:UNIQUE )?KEY)\s+`(\w+)`\s*\((.+)\),?\s*$")
_ENUM_RE = re.compile(r"(?i)^enum\((.*?)\)")

# Zmiany nazw kolumn względem starszych schematów: (tabela, stara nazwa, nowa nazwa).
RENAMES = [("task", "id_database_connectione", "id_database_connection")]

# Uzupełnienie danych nowych kolumn w istniejących wierszach (przed dodaniem indeksów):
# (tabela, kolumna, opis, SQL). SQL jest idempotentny - dotyka tylko wierszy jeszcze bez wartości.
BACKFILLS = [
    (
        "task_item",
        "remote_key",
        "remote_key and source_ord from remote_id",
        "UPDATE task_item SET remote_key=CONCAT('[', remote_id, ']'), source_ord=remote_id "
        "WHERE remote_key IS NULL AND remote_id IS NOT NULL",
    ),
    (
        "task",
        "last_processed_key",
        "last_processed_key from last_processed_id",
        "UPDATE task SET last_processed_key=CONCAT('[', last_processed_id, ']'), scan_ord=last_processed_id "
        "WHERE last_processed_key IS NULL AND last_processed_id IS NOT NULL",
    ),
    (
        # Starszy schemat trzymał rezerwację AI w operation_uuid (czyszczonym po zapisie wyniku):
        # rezerwacja (claimed_at ustawione) przechodzi do claim_uuid. Nowy kod ustawia claimed_at
        # zawsze razem z claim_uuid, więc ponowne --init-db niczego nie rusza.
        "task_item",
        "claim_uuid",
        "AI claims moved from operation_uuid to claim_uuid",
        "UPDATE task_item SET claim_uuid=operation_uuid, operation_uuid=NULL "
        "WHERE claim_uuid IS NULL AND claimed_at IS NOT NULL AND operation_uuid IS NOT NULL",
    ),
]

# Indeksy starszych schematów zastąpione innymi (usuwane po dodaniu nowych): (tabela, indeks, powód).
OBSOLETE_KEYS = [
    ("task_item", "idx_task_item_fingerprint", "replaced by idx_task_item_order (source order, any key)"),
    # Każdy indeks kosztuje przy pierwszej synchronizacji (wstawianie): zostają tylko te, których
    # używa jakieś zapytanie (README, "How sync works" -> indeksy task_item).
    (
        "task_item",
        "idx_task_item_remote",
        "no query reads by remote_id; idx_task_item_key keeps items unique",
    ),
    ("task_item", "idx_task_item_status", "every status query filters by id_task: idx_task_item_task_status"),
    ("task_item", "idx_task_item_changed", "no query filters by is_changed alone"),
    (
        "task_item",
        "idx_task_item_hash",
        "replaced by idx_task_item_result: only items with a reusable AI result are looked up by hash",
    ),
]

_VARCHAR_RE = re.compile(r"(?i)^varchar\((\d+)\)")
_CHARSET_RE = re.compile(r"(?i)CHARACTER SET (\w+)")


class TableSpec(NamedTuple):
    """Opis tabeli odczytany z ``schema.sql``."""

    name: str
    create_sql: str
    columns: list[tuple[str, str]]
    keys: list[tuple[str, str, str]]


def parse_schema(text: str) -> list[TableSpec]:
    """Czyta definicje tabel z pliku schematu.

    Args:
        text: Treść ``schema.sql``.

    Returns:
        Lista ``TableSpec`` w kolejności z pliku.
    """
    tables = []
    for match in _CREATE_RE.finditer(text):
        name, body = match.group(1), match.group(2)
        columns, keys = [], []
        for line in body.splitlines():
            key_match = _KEY_RE.match(line)
            if key_match:
                keys.append((key_match.group(1), key_match.group(2), key_match.group(3)))
                continue
            col_match = _COLUMN_RE.match(line)
            if col_match:
                columns.append((col_match.group(1), col_match.group(2)))
        tables.append(TableSpec(name, match.group(0), columns, keys))
    return tables


def _enum_values(definition: str) -> list[str] | None:
    match = _ENUM_RE.match(definition.strip())
    if not match:
        return None
    return re.findall(r"'((?:[^']|'')*)'", match.group(1))


def _existing_columns(db: MySQL, schema: str, table: str) -> dict[str, str]:
    rows = db.query(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
        (schema, table),
    )
    return {r["COLUMN_NAME"]: r["COLUMN_TYPE"] for r in rows}


def _existing_charsets(db: MySQL, schema: str, table: str) -> dict[str, str | None]:
    rows = db.query(
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
        (schema, table),
    )
    return {r["COLUMN_NAME"]: r["CHARACTER_SET_NAME"] for r in rows}


def _existing_keys(db: MySQL, schema: str, table: str) -> dict[str, str]:
    """Indeksy tabeli: nazwa -> kolumny w kolejności, w postaci ``_key_columns``."""
    rows = db.query(
        "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (schema, table),
    )
    keys: dict[str, list[str]] = {}
    for r in rows:
        part = f"({r['SUB_PART']})" if r["SUB_PART"] else ""
        keys.setdefault(r["INDEX_NAME"], []).append(f"{r['COLUMN_NAME']}{part}")
    return {name: ",".join(columns) for name, columns in keys.items()}


def _key_columns(definition: str) -> str:
    """Kolumny indeksu bez odwrotnych apostrofów i spacji (do porównania ze schematem)."""
    return definition.replace("`", "").replace(" ", "")


def _reconcile_table(db: MySQL, schema: str, spec: TableSpec) -> list[str]:
    """Podnosi istniejącą tabelę do definicji ze schematu; zwraca opisy wykonanych zmian."""
    actions: list[str] = []
    existing = _existing_columns(db, schema, spec.name)
    for table, old, new in RENAMES:
        if table == spec.name and old in existing and new not in existing:
            definition = dict(spec.columns)[new]
            db.execute(f"ALTER TABLE `{table}` CHANGE COLUMN `{old}` `{new}` {definition}")
            actions.append(f"renamed column {table}.{old} -> {new}")
            existing = _existing_columns(db, schema, spec.name)
    charsets = _existing_charsets(db, schema, spec.name)
    for column, definition in spec.columns:
        clean = definition.replace("PRIMARY KEY", "").replace("AUTO_INCREMENT", "").strip()
        if column not in existing:
            db.execute(f"ALTER TABLE `{spec.name}` ADD COLUMN `{column}` {clean}")
            actions.append(f"added column {spec.name}.{column}")
            continue
        wanted_charset = _charset(definition)
        if wanted_charset and charsets.get(column) and charsets[column] != wanted_charset:
            db.execute(f"ALTER TABLE `{spec.name}` MODIFY COLUMN `{column}` {clean}")
            actions.append(f"converted {spec.name}.{column} to CHARACTER SET {wanted_charset}")
            continue
        if _varchar_length(definition) > _varchar_length(existing[column]) > 0:
            db.execute(f"ALTER TABLE `{spec.name}` MODIFY COLUMN `{column}` {clean}")
            actions.append(f"widened {spec.name}.{column} to {definition.split()[0]}")
            continue
        wanted = _enum_values(definition)
        have = _enum_values(existing[column])
        if wanted is not None and have is not None and wanted != have:
            missing = [v for v in have if v not in wanted]
            if missing:
                actions.append(
                    f"WARNING: {spec.name}.{column} has ENUM values {missing} not in the schema; left as is"
                )
                continue
            db.execute(f"ALTER TABLE `{spec.name}` MODIFY COLUMN `{column}` {clean}")
            actions.append(f"widened ENUM {spec.name}.{column} to {wanted}")
    for table, column, description, sql in BACKFILLS:
        if table == spec.name:
            changed = db.execute(sql)
            if changed:
                actions.append(f"backfilled {changed} rows of {table}.{column} ({description})")
    keys = _existing_keys(db, schema, spec.name)
    for kind, key_name, key_columns in spec.keys:
        if key_name in keys:
            if keys[key_name] == _key_columns(key_columns):
                continue
            if kind != "KEY":
                actions.append(
                    f"WARNING: {spec.name}.{key_name} has columns ({keys[key_name]}), the schema says "
                    f"({_key_columns(key_columns)}); unique key left as is"
                )
                continue
            # Zwykły indeks o zmienionych kolumnach: przebudowa jednym ALTER (dane bez zmian).
            db.execute(
                f"ALTER TABLE `{spec.name}` DROP INDEX `{key_name}`, ADD {kind} `{key_name}` ({key_columns})"
            )
            actions.append(f"rebuilt {kind.lower()} {spec.name}.{key_name} ({_key_columns(key_columns)})")
            continue
        try:
            db.execute(f"ALTER TABLE `{spec.name}` ADD {kind} `{key_name}` ({key_columns})")
        except Exception as exc:  # np. duplikaty przy UNIQUE - tego nie naprawiamy automatycznie
            raise LocalDbError(
                f"nie można dodać indeksu {spec.name}.{key_name} ({key_columns}): {exc}; "
                "usuń duplikaty ręcznie i uruchom --init-db ponownie"
            ) from None
        actions.append(f"added {kind.lower()} {spec.name}.{key_name}")
    for table, key_name, reason in OBSOLETE_KEYS:
        if table == spec.name and key_name in keys:
            db.execute(f"ALTER TABLE `{table}` DROP INDEX `{key_name}`")
            actions.append(f"dropped index {table}.{key_name} ({reason})")
    return actions


def _charset(definition: str) -> str | None:
    """Zestaw znaków z ``CHARACTER SET x`` w definicji kolumny albo ``None``."""
    match = _CHARSET_RE.search(definition)
    return match.group(1).lower() if match else None


def _varchar_length(definition: str) -> int:
    """Długość z ``VARCHAR(n)`` na początku definicji kolumny; 0, gdy to inny typ."""
    match = _VARCHAR_RE.match(definition.strip())
    return int(match.group(1)) if match else 0


def init_db(settings: Settings) -> list[str]:
    """Tworzy bazę (jeśli brak) i doprowadza schemat do wersji z ``schema.sql``.

    Args:
        settings: Ustawienia z ``load_config``.

    Returns:
        Lista opisów wykonanych zmian; pusta, gdy schemat był aktualny.

    Raises:
        ConfigError: Gdy nazwa bazy jest niedozwolona.
        LocalDbError: Gdy baza jest nieosiągalna albo zmiana się nie powiedzie.
    """
    name = settings.db_local_name
    if not _NAME_RE.match(name):
        raise ConfigError(f"DB_LOCAL_NAME: niedozwolona nazwa bazy {name!r} (litery, cyfry, _)")
    actions: list[str] = []
    server = connect_local(settings, with_database=False, autocommit=True)
    try:
        exists = server.query_one(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (name,)
        )
        if not exists:
            server.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            actions.append(f"created database {name}")
    finally:
        server.close()
    db = connect_local(settings, autocommit=True)
    try:
        for spec in parse_schema(SCHEMA_FILE.read_text(encoding="utf-8")):
            present = db.query_one(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                (name, spec.name),
            )
            if not present:
                db.execute(spec.create_sql)
                actions.append(f"created table {spec.name}")
            else:
                actions.extend(_reconcile_table(db, name, spec))
        recorded = db.query_one("SELECT version FROM schema_version WHERE version=%s", (SCHEMA_VERSION,))
        if not recorded:
            db.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (SCHEMA_VERSION, "schemat ailexia worker"),
            )
            actions.append(f"recorded schema version {SCHEMA_VERSION}")
    finally:
        db.close()
    return actions
