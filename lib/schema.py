"""Schemat lokalnej bazy: numerowane migracje SQL stosowane przez ``python sync.py --init-db``.

Migracje to pliki ``lib/migrations/NNNN_nazwa.sql`` (``0001_initial.sql`` to pełny schemat z chwili
wprowadzenia migracji). ``init_db`` zakłada bazę, jeśli jej nie ma, stosuje brakujące migracje po
kolei - każdą raz - i zapisuje je w tabeli ``schema_migrations`` (version, name, checksum,
applied_at). Zmieniony plik już zastosowanej migracji jest błędem (suma kontrolna), a nie cichym
pominięciem. Bazę założoną przed migracjami (tabele projektu bez ``schema_migrations``) runner
przejmuje: podnosi ją do 0001 (``lib/migrations/legacy/to_0001.sql``), sprawdza, że zgadza się
z 0001, zapisuje 0001 jako zastosowaną i stosuje resztę. Na koniec porównuje schemat bazy z tym,
co opisują migracje (``lib.schema_check``), i zgłasza dryf jako ostrzeżenie.

Dlaczego własny prosty runner, a nie narzędzie: lokalna baza to wyłącznie MySQL/MariaDB, migracje
są jawnym SQL-em jak cały kod projektu, a Alembic wymaga SQLAlchemy, którego projekt nie używa
(yoyo-migrations go nie wymaga, ale nie przejąłby bazy sprzed migracji ani nie wykrył dryfu).
Runner to czytanie plików, suma kontrolna, jedna tabela i blokada ``GET_LOCK``.
"""

import contextlib
import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from lib import schema_check
from lib.db_local import MySQL, connect_local
from lib.errors import ConfigError, LocalDbError
from lib.load_config import Settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LEGACY_FILE = MIGRATIONS_DIR / "legacy" / "to_0001.sql"
MIGRATIONS_TABLE = "schema_migrations"
# Czekanie na inny --init-db na tej samej bazie (blokada ``GET_LOCK``), w sekundach.
LOCK_WAIT_S = 60

_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_UPDATE_RE = re.compile(r"^UPDATE\s+`?(\w+)`?\s+SET\s+`?(\w+)`?", re.I)

_CREATE_MIGRATIONS_SQL = f"""CREATE TABLE IF NOT EXISTS `{MIGRATIONS_TABLE}` (
  `version` INT UNSIGNED NOT NULL PRIMARY KEY COMMENT 'Numer NNNN z nazwy pliku',
  `name` VARCHAR(255) NOT NULL COMMENT 'Nazwa pliku bez .sql',
  `checksum` CHAR(64) CHARACTER SET ascii NOT NULL COMMENT 'sha256 treści pliku',
  `applied_at` DATETIME DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""


@dataclass(frozen=True)
class Migration:
    """Jeden plik migracji."""

    version: int
    name: str
    path: Path
    sql: str
    checksum: str


def file_checksum(text: str) -> str:
    """sha256 treści pliku (końce linii ujednolicone, by checkout z CRLF nie był "zmianą")."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Czyta pliki ``NNNN_nazwa.sql`` z katalogu (domyślnie ``MIGRATIONS_DIR``), rosnąco według numeru.

    Raises:
        ConfigError: Gdy plik ``.sql`` ma złą nazwę albo dwa pliki mają ten sam numer.
    """
    migrations: dict[int, Migration] = {}
    for path in sorted((directory or MIGRATIONS_DIR).glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise ConfigError(f"migracja {path}: nazwa musi mieć postać NNNN_nazwa.sql (np. 0002_add_x.sql)")
        version = int(match.group(1))
        if version in migrations:
            raise ConfigError(f"migracje {migrations[version].path.name} i {path.name} mają ten sam numer")
        text = path.read_text(encoding="utf-8")
        migrations[version] = Migration(version, path.stem, path, text, file_checksum(text))
    return [migrations[v] for v in sorted(migrations)]


def split_statements(sql: str) -> list[str]:
    """Dzieli plik SQL na instrukcje po ``;`` poza napisami, identyfikatorami i komentarzami.

    Komentarze ``-- ...`` i ``/* ... */`` są pomijane; backslash w napisie jest znakiem ucieczki
    (sesje projektu nie mają NO_BACKSLASH_ESCAPES).
    """
    statements, current, i, quote = [], [], 0, ""
    while i < len(sql):
        char = sql[i]
        if quote:
            current.append(char)
            if char == "\\" and quote != "`" and i + 1 < len(sql):
                current.append(sql[i + 1])
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif sql.startswith("--", i) or char == "#":
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
            continue
        elif char == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def run_sql(db: MySQL, sql: str, label: str) -> list[tuple[str, int]]:
    """Wykonuje instrukcje pliku SQL po kolei.

    Args:
        db: Połączenie z wybraną bazą (autocommit).
        sql: Treść pliku.
        label: Nazwa pliku do komunikatu błędu.

    Returns:
        Lista ``(instrukcja, liczba zmienionych wierszy)``.

    Raises:
        LocalDbError: Gdy instrukcja się nie powiedzie (z nazwą pliku i numerem instrukcji).
    """
    done = []
    for number, statement in enumerate(split_statements(sql), start=1):
        try:
            done.append((statement, db.execute(statement)))
        except pymysql.MySQLError as exc:
            first_line = statement.splitlines()[0][:80]
            raise LocalDbError(
                f"migracja {label}: instrukcja {number} ({first_line}...) nie powiodła się: {exc.args[-1]}"
            ) from None
    return done


def _ensure_database(settings: Settings, name: str) -> bool:
    """Zakłada bazę ``name``, jeśli jej nie ma; zwraca ``True``, gdy ją założył."""
    server = connect_local(settings, with_database=False, autocommit=True)
    try:
        exists = server.query_one(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (name,)
        )
        if exists:
            return False
        server.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return True
    finally:
        server.close()


def reference_schema(settings: Settings, migrations: list[Migration]) -> dict[str, schema_check.Table] | None:
    """Schemat, który opisują ``migrations``: stosuje je w tymczasowej bazie i czyta ``information_schema``.

    Returns:
        Schemat wzorcowy albo ``None``, gdy użytkownik nie może założyć bazy tymczasowej.
    """
    scratch = f"ailexia_schema_ref_{uuid.uuid4().hex[:12]}"
    server = connect_local(settings, with_database=False, autocommit=True)
    try:
        try:
            server.execute(f"CREATE DATABASE `{scratch}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        except pymysql.MySQLError:
            return None
        try:
            server.execute(f"USE `{scratch}`")
            for migration in migrations:
                run_sql(server, migration.sql, migration.path.name)
            return schema_check.read_schema(server, scratch)
        finally:
            server.execute(f"DROP DATABASE IF EXISTS `{scratch}`")
    finally:
        server.close()


def _record(db: MySQL, migration: Migration) -> None:
    db.execute(
        f"INSERT INTO `{MIGRATIONS_TABLE}` (version, name, checksum) VALUES (%s, %s, %s)",
        (migration.version, migration.name, migration.checksum),
    )


def _has_table(db: MySQL, name: str, table: str) -> bool:
    return bool(
        db.query_one(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
            (name, table),
        )
    )


def _adopt(db: MySQL, settings: Settings, name: str, initial: Migration) -> list[str]:
    """Przejmuje bazę sprzed migracji: podnosi ją do ``initial`` (0001) i zapisuje 0001 jako zastosowaną.

    Raises:
        LocalDbError: Gdy po podniesieniu bazie wciąż brakuje tabel, kolumn albo indeksów 0001.
    """
    actions = [f"adopted database {name} created before migrations"]
    expected = reference_schema(settings, [initial])
    before = schema_check.read_schema(db, name)
    if expected is None or schema_check.compare(before, expected):
        run_sql(db, initial.sql, initial.path.name)
        for statement, changed in run_sql(db, LEGACY_FILE.read_text(encoding="utf-8"), LEGACY_FILE.name):
            match = _UPDATE_RE.match(statement)
            if match and changed:
                actions.append(f"backfilled {changed} rows of {match.group(1)}.{match.group(2)}")
        after = schema_check.read_schema(db, name)
        actions[1:1] = [schema_check.describe_change(d) for d in schema_check.compare(before, after)]
    if expected is not None:
        missing = [
            d for d in schema_check.compare(schema_check.read_schema(db, name), expected) if d.live is None
        ]
        if missing:
            shown = ", ".join(f"{d.kind} {d.table}.{d.name}".rstrip(".") for d in missing[:5])
            raise LocalDbError(
                f"nie można przejąć bazy {name}: po podniesieniu do {initial.name} brakuje: {shown}"
            )
    db.execute(_CREATE_MIGRATIONS_SQL)
    _record(db, initial)
    actions.append(f"recorded {initial.name} as applied")
    return actions


def _check_applied(applied: dict[int, dict[str, Any]], migrations: list[Migration]) -> None:
    """Odmawia pracy, gdy zastosowana migracja zmieniła się na dysku albo jest nieznana temu kodowi."""
    by_version = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise LocalDbError(
                f"baza ma zastosowaną migrację {row['name']} (nr {version}), której nie ma w lib/migrations: "
                "uruchom nowszą wersję projektu"
            )
        if row["checksum"] != migration.checksum:
            raise LocalDbError(
                f"migracja lib/migrations/{migration.path.name} zmieniła się po zastosowaniu "
                f"(suma kontrolna {row['checksum'][:12]} w {MIGRATIONS_TABLE}, {migration.checksum[:12]} na dysku): "
                "przywróć plik i wpisz zmianę w nowej migracji"
            )


def _migrate(db: MySQL, settings: Settings, name: str, migrations: list[Migration]) -> list[str]:
    """Przejmuje bazę sprzed migracji (gdy trzeba), sprawdza zastosowane i stosuje brakujące migracje."""
    actions: list[str] = []
    if not _has_table(db, name, MIGRATIONS_TABLE):
        tables = db.query_value(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (name,)
        )
        if tables and migrations and migrations[0].version == 1:
            actions.extend(_adopt(db, settings, name, migrations[0]))
        else:
            db.execute(_CREATE_MIGRATIONS_SQL)
    applied = {r["version"]: r for r in db.query(f"SELECT version, name, checksum FROM `{MIGRATIONS_TABLE}`")}
    _check_applied(applied, migrations)
    for migration in migrations:
        if migration.version in applied:
            continue
        run_sql(db, migration.sql, migration.path.name)
        _record(db, migration)
        actions.append(f"applied migration {migration.path.name}")
    return actions


def init_db(settings: Settings) -> list[str]:
    """Zakłada bazę (jeśli brak) i stosuje brakujące migracje; zgłasza dryf schematu.

    Args:
        settings: Ustawienia z ``load_config``.

    Returns:
        Opisy wykonanych zmian i ostrzeżenia (``WARNING: schema drift: ...``); pusta lista, gdy
        schemat był aktualny i zgodny z migracjami.

    Raises:
        ConfigError: Gdy nazwa bazy jest niedozwolona albo plik migracji ma złą nazwę.
        LocalDbError: Gdy baza jest nieosiągalna, zastosowana migracja zmieniła się na dysku albo
            migracja się nie powiedzie.
    """
    name = settings.db_local_name
    if not _NAME_RE.match(name):
        raise ConfigError(f"DB_LOCAL_NAME: niedozwolona nazwa bazy {name!r} (litery, cyfry, _)")
    migrations = load_migrations()
    created = _ensure_database(settings, name)
    actions = [f"created database {name}"] if created else []
    db = connect_local(settings, autocommit=True)
    # Jedna nazwa na bazę, w schemacie nazw blokad projektu (``ax:<baza>:<rodzaj>``, długie skracane
    # hashem jak w ``runs.lock_name``: serwer przyjmuje najwyżej 64 znaki).
    lock = f"ax:{name}:schema"
    if len(lock) > 64:
        lock = "ax:" + hashlib.sha1(f"{name}:schema".encode()).hexdigest()
    try:
        if db.query_value("SELECT GET_LOCK(%s, %s)", (lock, LOCK_WAIT_S)) != 1:
            raise LocalDbError(f"inny --init-db pracuje na bazie {name}; spróbuj później")
        db.session_locks += 1
        try:
            actions.extend(_migrate(db, settings, name, migrations))
            if not created:
                actions.extend(_drift(db, settings, name, migrations))
        finally:
            db.session_locks -= 1
            with contextlib.suppress(Exception):
                db.query_value("SELECT RELEASE_LOCK(%s)", (lock,))
    finally:
        db.close()
    return actions


def _drift(db: MySQL, settings: Settings, name: str, migrations: list[Migration]) -> list[str]:
    """Ostrzeżenia o różnicach między schematem bazy a schematem z migracji."""
    expected = reference_schema(settings, migrations)
    if expected is None:
        return ["WARNING: schema drift not checked: cannot create a scratch database (CREATE privilege)"]
    live = schema_check.read_schema(db, name, ignore=(MIGRATIONS_TABLE,))
    return [schema_check.describe_drift(d) for d in schema_check.compare(live, expected)]
