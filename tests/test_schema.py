"""Testy schematu: migracje stosowane raz, przejęcie bazy sprzed migracji, zmieniona migracja, dryf."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lib import schema
from lib.db_local import connect_local
from lib.errors import LocalDbError
from lib.schema import MIGRATIONS_DIR, init_db, load_migrations, run_sql, split_statements
from tests.conftest import PROJECT_ROOT, _mysql_admin

# Pierwszy wydany schemat: lib/schema.sql z najstarszego commitu, który go ma
# (``git log --diff-filter=A -- lib/schema.sql``), skopiowany bez zmian.
FIRST_RELEASE = Path(__file__).with_name("data") / "schema_first_release.sql"

# DDL ze specyfikacji (z poprawionym przecinkiem): starszy schemat do podniesienia.
SPEC_TASK_DDL = """
CREATE TABLE `task` (
  `id_task` INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  `id_user` INT NOT NULL,
  `id_database_connectione` INT UNSIGNED NOT NULL,
  `id_ai_model` INT UNSIGNED DEFAULT NULL,
  `table_name` VARCHAR(64) NOT NULL,
  `column_name` VARCHAR(64) NOT NULL,
  `status` ENUM('new','in_progress','paused','resync','completed','error','cancelled') DEFAULT 'new',
  `records_total` INT UNSIGNED DEFAULT 0,
  `sync_progress` DECIMAL(5,2) DEFAULT 0.00,
  `sync_stage` ENUM('init','fetch','compare','update','verify','done') DEFAULT 'init',
  `hash_method` VARCHAR(32) DEFAULT 'sha256',
  KEY `idx_task_status` (`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


def _run_init(env):
    return subprocess.run(
        [sys.executable, "sync.py", "--init-db"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make_legacy(db):
    """Baza jak założona przez ostatnią wersję sprzed migracji: schemat 0001, bez ``schema_migrations``."""
    name = db.query_value("SELECT DATABASE()")
    db.execute(f"DROP DATABASE `{name}`")
    db.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    db.execute(f"USE `{name}`")
    initial = MIGRATIONS_DIR / "0001_initial.sql"
    run_sql(db, initial.read_text(encoding="utf-8"), initial.name)


def _applied_names() -> list[str]:
    """Komunikaty ``init_db`` o zastosowaniu każdej migracji z ``lib/migrations`` (w kolejności)."""
    return [f"applied migration {m.name}.sql" for m in load_migrations()]


def _full_schema(name: str) -> dict:
    """Wszystko, co ``information_schema`` mówi o tabelach, kolumnach (z pozycją i opisem) i indeksach."""
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                (name,),
            )
            tables = sorted(cursor.fetchall())
            cursor.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, "
                "CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_KEY, EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s",
                (name,),
            )
            columns = sorted(cursor.fetchall())
            cursor.execute(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, INDEX_TYPE "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=%s",
                (name,),
            )
            indexes = sorted(cursor.fetchall(), key=str)
    finally:
        admin.close()
    return {"tables": tables, "columns": columns, "indexes": indexes}


@pytest.fixture
def fresh_name(settings):
    """Nazwa drugiej świeżej bazy (``init_db`` na pustym serwerze); usuwana po teście."""
    name = f"ailexia_t_{uuid.uuid4().hex[:10]}"
    init_db(settings.updated(DB_LOCAL_NAME=name))
    yield name
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


@pytest.fixture
def migrations_copy(tmp_path, monkeypatch):
    """Kopia ``lib/migrations`` w katalogu testu, z której czyta runner (do zmian plików)."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", directory)
    return directory


def test_init_db_twice_changes_nothing_second_time(local_env):
    first = _run_init(local_env)
    assert first.returncode == 0, first.stderr
    assert "created database" in first.stdout and "applied migration 0001_initial.sql" in first.stdout
    second = _run_init(local_env)
    assert second.returncode == 0, second.stderr
    assert "up to date, nothing changed" in second.stdout
    assert "created" not in second.stdout and "applied" not in second.stdout


def test_fresh_database_has_design_tables_and_records_migrations(settings, db):
    names = {
        r["TABLE_NAME"]
        for r in db.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
            (settings.db_local_name,),
        )
    }
    assert {"database_connection", "task", "task_item", "ai_model", "run_log", "schema_version"} <= names
    rows = db.query("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in load_migrations()
    ]
    assert rows[0]["name"] == "0001_initial" and all(r["applied_at"] for r in rows)
    assert init_db(settings) == []


def test_first_release_schema_upgrades_to_exactly_the_fresh_schema(local_env, settings, db, fresh_name):
    """Baza pierwszego wydania (z historii git) z wierszami: po ``init_db`` schemat jak świeży, dane zostają."""
    name = settings.db_local_name
    db.execute(f"DROP DATABASE `{name}`")
    db.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    db.execute(f"USE `{name}`")
    run_sql(db, FIRST_RELEASE.read_text(encoding="utf-8"), FIRST_RELEASE.name)
    db.execute("INSERT INTO schema_version (version, description) VALUES (1, 'schemat ailexia worker')")
    db.execute(
        "INSERT INTO task (id_user, id_database_connection, table_name, column_name, status, last_processed_id) "
        "VALUES (1, 7, 'articles', 'body', 'completed', 42)"
    )
    db.execute(
        "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, status, operation_uuid, claimed_at) "
        "VALUES (1, 5, 'a', %s, 'pending', '11111111-1111-1111-1111-111111111111', NOW()), "
        "(1, 6, 'b', %s, 'processed', NULL, NULL)",
        ("a" * 64, "b" * 64),
    )
    actions = init_db(settings)
    assert actions[0] == f"adopted database {name} created before migrations"
    assert "created table ai_batch" in actions and "added column task_item.remote_key" in actions
    assert "backfilled 2 rows of task_item.remote_key" in actions
    assert "backfilled 1 rows of task.last_processed_key" in actions
    assert "backfilled 1 rows of task_item.claim_uuid" in actions
    assert "recorded 0001_initial as applied" in actions
    assert not [a for a in actions if a.startswith("WARNING")], actions

    upgraded, fresh = _full_schema(name), _full_schema(fresh_name)
    assert upgraded["tables"] == fresh["tables"]
    assert upgraded["columns"] == fresh["columns"]
    assert upgraded["indexes"] == fresh["indexes"]

    items = db.query(
        "SELECT remote_id, remote_key, source_ord, claim_uuid, operation_uuid, result_hash FROM task_item "
        "ORDER BY remote_id"
    )
    assert [tuple(r.values()) for r in items] == [
        (5, "[5]", 5, "11111111-1111-1111-1111-111111111111", None, None),
        (6, "[6]", 6, None, None, "b" * 64),
    ]
    task = db.query_one("SELECT id_database_connection, last_processed_key, scan_ord, status FROM task")
    assert tuple(task.values()) == (7, "[42]", 42, "completed")
    assert db.query_value("SELECT COUNT(*) FROM schema_migrations") == len(load_migrations())
    assert init_db(settings) == []


def test_latest_pre_migration_database_is_adopted_without_changes(settings, db, fresh_name):
    """Baza z ostatniego schematu sprzed migracji: przejęcie tylko zapisuje 0001, potem dochodzą nowsze migracje."""
    _make_legacy(db)
    actions = init_db(settings)
    assert actions == [
        f"adopted database {settings.db_local_name} created before migrations",
        "recorded 0001_initial as applied",
        *_applied_names()[1:],
    ]
    after, fresh = _full_schema(settings.db_local_name), _full_schema(fresh_name)
    assert after["columns"] == fresh["columns"] and after["indexes"] == fresh["indexes"]
    assert init_db(settings) == []


def test_edited_applied_migration_is_refused(settings, db, migrations_copy):
    """Zmieniony plik zastosowanej migracji: odmowa z nazwą pliku, nic nie jest stosowane."""
    initial = migrations_copy / "0001_initial.sql"
    initial.write_text(initial.read_text(encoding="utf-8") + "\n-- poprawka po fakcie\n", encoding="utf-8")
    (migrations_copy / "9002_extra.sql").write_text(
        "ALTER TABLE task ADD COLUMN extra INT;\n", encoding="utf-8"
    )
    with pytest.raises(LocalDbError) as error:
        init_db(settings)
    message = str(error.value)
    assert "0001_initial.sql" in message and "zmieniła się po zastosowaniu" in message
    assert "\n" not in message
    assert db.query_value("SELECT COUNT(*) FROM schema_migrations") == len(load_migrations(MIGRATIONS_DIR))
    assert not db.query("SHOW COLUMNS FROM task LIKE 'extra'")


def test_edited_migration_is_one_line_from_the_cli(local_env, settings, db):
    db.execute("UPDATE schema_migrations SET checksum=%s WHERE version=1", ("0" * 64,))
    result = _run_init(local_env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "lib/migrations/0001_initial.sql" in lines[0], result.stderr


def test_new_migration_is_applied_once_in_order(settings, db, migrations_copy):
    real = [(m.version, m.name) for m in load_migrations()]
    (migrations_copy / "9003_third.sql").write_text(
        "-- trzecia; ze średnikiem w komentarzu\nALTER TABLE task ADD COLUMN third VARCHAR(8) DEFAULT 'a;b';\n"
        "UPDATE task SET third='c';\n",
        encoding="utf-8",
    )
    (migrations_copy / "9002_second.sql").write_text(
        "ALTER TABLE task ADD COLUMN second INT DEFAULT NULL;", encoding="utf-8"
    )
    assert init_db(settings) == ["applied migration 9002_second.sql", "applied migration 9003_third.sql"]
    columns = [r["Field"] for r in db.query("SHOW COLUMNS FROM task")]
    assert columns[-2:] == ["second", "third"]
    rows = db.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [*real, (9002, "9002_second"), (9003, "9003_third")]
    assert init_db(settings) == []


def test_unknown_applied_migration_is_refused(settings, db):
    db.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_future', %s)",
        ("f" * 64,),
    )
    with pytest.raises(LocalDbError, match="9999_future.*nowszą wersję"):
        init_db(settings)


def test_badly_named_migration_file_is_refused(settings, migrations_copy):
    (migrations_copy / "2_oops.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(Exception, match="2_oops.sql"):
        init_db(settings)


def test_column_type_drift_is_reported(settings, db):
    """Kolumna zmieniona ręcznie: ostrzeżenie z ``tabela.kolumna`` i oboma typami; zmiana zostaje."""
    db.execute("ALTER TABLE task MODIFY COLUMN table_name VARCHAR(64) NOT NULL")
    db.execute("ALTER TABLE run_log ADD COLUMN note TEXT")
    db.execute("ALTER TABLE task_item DROP INDEX idx_task_item_batch")
    actions = init_db(settings)
    assert (
        "WARNING: schema drift: column task.table_name: type varchar(64) in the database, varchar(128) in the "
        "migrations" in actions
    ), actions
    assert any(a.startswith("WARNING: schema drift: column run_log.note text") for a in actions), actions
    assert any("index task_item.idx_task_item_batch" in a and "missing in the database" in a for a in actions)
    assert len(actions) == 3
    assert db.query_one("SHOW COLUMNS FROM task LIKE 'table_name'")["Type"] == "varchar(64)"


def test_split_statements_keeps_semicolons_in_strings_and_drops_comments():
    sql = (
        "-- komentarz; z średnikiem\nCREATE TABLE t (a VARCHAR(8) COMMENT 'x; y', `b;c` INT);\n"
        "/* blok; */ INSERT INTO t VALUES ('it\\'s;', 1);\n# hash; komentarz\nSELECT \"q;\";"
    )
    assert split_statements(sql) == [
        "CREATE TABLE t (a VARCHAR(8) COMMENT 'x; y', `b;c` INT)",
        "INSERT INTO t VALUES ('it\\'s;', 1)",
        'SELECT "q;"',
    ]


def test_upgrade_from_spec_ddl_keeps_rows(local_env, settings):
    db = connect_local(settings, autocommit=True)
    try:
        _make_legacy(db)
        db.execute("DROP TABLE task")
        db.execute(SPEC_TASK_DDL)
        db.execute(
            "INSERT INTO task (id_user, id_database_connectione, table_name, column_name, status) "
            "VALUES (1, 7, 'articles', 'body', 'completed')"
        )
        actions = init_db(settings)
        assert "added column task.pause_reason" in actions
        assert "dropped column task.id_database_connectione" in actions  # przemianowana
        assert any(a.startswith("changed column task.status (enum(") for a in actions)
        row = db.query_one("SELECT * FROM task")
        assert row["id_database_connection"] == 7 and row["status"] == "completed"
        assert row["table_name"] == "articles"
        db.execute("UPDATE task SET status='archived'")
        # Nic do zrobienia; zostaje tylko prawdziwy dryf: DDL specyfikacji nie podał sortowania tabeli.
        again = init_db(settings)
        assert again and all(
            a.startswith("WARNING: schema drift: column task.")
            and "collation utf8mb4_general_ci in the database" in a
            for a in again
        ), again
    finally:
        db.close()


def test_upgrade_adds_remembered_response_format(local_env, settings):
    """Baza sprzed ``ai_model.response_format``: ``--init-db`` dodaje kolumnę, wiersze zostają."""
    db = connect_local(settings, autocommit=True)
    try:
        _make_legacy(db)
        db.execute("ALTER TABLE ai_model DROP COLUMN response_format")
        db.execute("INSERT INTO ai_model (name, model) VALUES ('stary', 'gpt-4o-mini')")
        actions = init_db(settings)
        assert "added column ai_model.response_format" in actions
        row = db.query_one("SELECT * FROM ai_model WHERE name='stary'")
        assert row["model"] == "gpt-4o-mini" and row["response_format"] is None
        assert init_db(settings) == []
    finally:
        db.close()


def test_init_db_reports_unreachable_server(local_env):
    result = _run_init({**local_env, "DB_LOCAL_PORT": "1"})
    assert result.returncode == 1
    assert "nie można połączyć" in result.stderr
    assert "Traceback" not in result.stderr


def test_index_with_changed_columns_is_rebuilt(local_env, settings):
    """Indeks starszego schematu o innych kolumnach jest przebudowany przy przejęciu (dane zostają); drugi raz nic."""
    db = connect_local(settings, autocommit=True)
    try:
        _make_legacy(db)
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original, status) "
            "VALUES (1, 1, '[1]', 1, 'a', 'processed')"
        )
        # Starszy schemat: (id_task, status) bez deleted_at.
        db.execute(
            "ALTER TABLE task_item DROP INDEX idx_task_item_task_status, "
            "ADD KEY idx_task_item_task_status (id_task, status)"
        )
        actions = init_db(settings)
        assert "rebuilt key task_item.idx_task_item_task_status (id_task,status,deleted_at)" in actions
        columns = [
            r["COLUMN_NAME"]
            for r in db.query(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=%s "
                "AND TABLE_NAME='task_item' AND INDEX_NAME='idx_task_item_task_status' ORDER BY SEQ_IN_INDEX",
                (settings.db_local_name,),
            )
        ]
        assert columns == ["id_task", "status", "deleted_at"]
        assert db.query_value("SELECT COUNT(*) FROM task_item") == 1
        assert init_db(settings) == []
    finally:
        db.close()


def test_unused_item_indexes_are_dropped_by_init_db(local_env, settings):
    """Baza z indeksami starszego schematu (remote_id, status, is_changed): przejęcie je usuwa, dane zostają."""
    db = connect_local(settings, autocommit=True)
    try:
        _make_legacy(db)
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original) "
            "VALUES (1, 1, '[1]', 1, 'a')"
        )
        db.execute(
            "ALTER TABLE task_item ADD UNIQUE KEY idx_task_item_remote (id_task, remote_id), "
            "ADD KEY idx_task_item_status (status), ADD KEY idx_task_item_changed (is_changed)"
        )
        actions = init_db(settings)
        assert sorted(a for a in actions if a.startswith("dropped")) == [
            "dropped key task_item.idx_task_item_changed",
            "dropped key task_item.idx_task_item_status",
            "dropped unique key task_item.idx_task_item_remote",
        ]
        names = {
            r["INDEX_NAME"]
            for r in db.query(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=%s "
                "AND TABLE_NAME='task_item'",
                (settings.db_local_name,),
            )
        }
        assert names == {
            "PRIMARY",
            "idx_task_item_key",
            "idx_task_item_order",
            "idx_task_item_task_status",
            "idx_task_item_result",
            "idx_task_item_batch",
        }
        assert db.query_value("SELECT COUNT(*) FROM task_item") == 1
        assert init_db(settings) == []
    finally:
        db.close()


def test_upgrade_moves_ai_claims_to_claim_uuid(local_env, settings):
    """Starszy schemat bez ``claim_uuid``: rezerwacja z ``operation_uuid`` przechodzi do ``claim_uuid``.

    Pozycja bez rezerwacji zachowuje swoje pola; drugie ``--init-db`` niczego nie zmienia, a wynik
    zapisany już nowym kodem (``operation_uuid`` producenta, bez rezerwacji) nie jest ruszany.
    """
    db = connect_local(settings, autocommit=True)
    try:
        _make_legacy(db)
        db.execute("ALTER TABLE task_item DROP COLUMN claim_uuid")
        claimed_op = "11111111-1111-1111-1111-111111111111"
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original, status, "
            "operation_uuid, claimed_at) VALUES (1, 1, '[1]', 1, 'a', 'pending', %s, NOW()), "
            "(1, 2, '[2]', 2, 'b', 'processed', NULL, NULL)",
            (claimed_op,),
        )
        actions = init_db(settings)
        assert "added column task_item.claim_uuid" in actions
        assert "backfilled 1 rows of task_item.claim_uuid" in actions
        rows = db.query(
            "SELECT remote_id, operation_uuid, claim_uuid, claimed_at FROM task_item ORDER BY remote_id"
        )
        assert rows[0]["claim_uuid"] == claimed_op and rows[0]["operation_uuid"] is None
        assert rows[0]["claimed_at"] is not None
        assert rows[1]["claim_uuid"] is None and rows[1]["operation_uuid"] is None
        # Wynik zapisany nowym kodem: operation_uuid producenta zostaje przy kolejnych --init-db.
        producer = "22222222-2222-2222-2222-222222222222"
        db.execute("UPDATE task_item SET operation_uuid=%s WHERE remote_id=2", (producer,))
        assert init_db(settings) == []
        assert db.query_value("SELECT operation_uuid FROM task_item WHERE remote_id=2") == producer
    finally:
        db.close()


def test_result_hash_column_uses_the_reusable_statuses(settings, db):
    """Kolumna result_hash (indeks wyników AI do ponownego użycia) liczy hash dla REUSABLE_STATUSES."""
    from lib.task_item import REUSABLE_STATUSES

    expression = db.query_value(
        "SELECT GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
        "AND TABLE_NAME='task_item' AND COLUMN_NAME='result_hash'",
        (settings.db_local_name,),
    )
    statuses = ",".join(f"'{s}'" for s in REUSABLE_STATUSES)
    assert f"if(`status`in({statuses}),rtrim(`original_hash`),null)" == expression.replace(" ", "").lower()


def test_hash_index_replaced_by_result_index(local_env, settings):
    """Starsza baza z idx_task_item_hash i bez result_hash: przejęcie dodaje kolumnę i indeks, usuwa stary."""
    db = connect_local(settings, autocommit=True)
    try:
        _make_legacy(db)
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original, original_hash, "
            "text_corrected, status) VALUES (1, 1, '[1]', 1, 'a', %s, 'b', 'processed'), "
            "(1, 2, '[2]', 2, 'c', %s, NULL, 'pending')",
            ("a" * 64, "c" * 64),
        )
        db.execute(
            "ALTER TABLE task_item DROP INDEX idx_task_item_result, DROP COLUMN result_hash, "
            "ADD KEY idx_task_item_hash (id_task, original_hash)"
        )
        actions = init_db(settings)
        assert [a for a in actions if a.startswith(("added", "dropped"))] == [
            "added column task_item.result_hash",
            "dropped key task_item.idx_task_item_hash",
            "added key task_item.idx_task_item_result",
        ]
        rows = db.query("SELECT remote_id, result_hash FROM task_item ORDER BY remote_id")
        assert [(r["remote_id"], r["result_hash"]) for r in rows] == [(1, "a" * 64), (2, None)]
        assert init_db(settings) == []
    finally:
        db.close()


def _historical_schemas() -> list[tuple[str, str]]:
    """Każda wersja ``lib/schema.sql`` z historii git (schematy sprzed migracji): ``(commit, treść)``."""
    commits = subprocess.run(
        ["git", "rev-list", "--first-parent", "HEAD", "--", "lib/schema.sql"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    versions = []
    for commit in commits:
        shown = subprocess.run(
            ["git", "show", f"{commit}:lib/schema.sql"], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:  # commit, który usunął plik, go nie ma
            versions.append((commit[:10], shown.stdout))
    return versions


def test_every_pre_migration_schema_in_git_history_upgrades_to_the_fresh_schema(settings, db, fresh_name):
    """Każdy schemat z historii (baza z wierszem zadania) po ``init_db`` równa się świeżemu; drugi raz nic."""
    versions = _historical_schemas()
    first = FIRST_RELEASE.read_text(encoding="utf-8")
    assert any(text == first for _, text in versions), "brak historii git lib/schema.sql (płytki klon?)"
    expected = _full_schema(fresh_name)
    name = settings.db_local_name
    for commit, text in versions:
        db.execute(f"DROP DATABASE IF EXISTS `{name}`")
        db.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        db.execute(f"USE `{name}`")
        run_sql(db, text, f"{commit}:lib/schema.sql")
        db.execute(
            "INSERT INTO task (id_user, id_database_connection, table_name, column_name) VALUES (1, 1, 't', 'c')"
        )
        actions = init_db(settings)
        assert not [a for a in actions if a.startswith("WARNING")], (commit, actions)
        assert _full_schema(name) == expected, commit
        assert init_db(settings) == [], commit


def test_longest_database_name_gets_a_lock_and_migrations(settings):
    """Nazwa bazy o 64 znakach (najdłuższa dozwolona): migracje i blokada działają (nazwa blokady skrócona dla MySQL)."""
    name = f"ailexia_t_{uuid.uuid4().hex}{uuid.uuid4().hex}"[:64]
    long_settings = settings.updated(DB_LOCAL_NAME=name)
    try:
        assert init_db(long_settings) == [f"created database {name}", *_applied_names()]
        assert init_db(long_settings) == []
    finally:
        admin = _mysql_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()
