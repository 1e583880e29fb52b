"""Testy schematu: --init-db idempotentne, podnoszenie starszego schematu bez utraty danych."""

import os
import subprocess
import sys

from lib.db_local import connect_local
from lib.schema import SCHEMA_FILE, init_db, parse_schema
from tests.conftest import PROJECT_ROOT

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


def test_init_db_twice_changes_nothing_second_time(local_env):
    first = _run_init(local_env)
    assert first.returncode == 0, first.stderr
    assert "created database" in first.stdout and "created table task_item" in first.stdout
    second = _run_init(local_env)
    assert second.returncode == 0, second.stderr
    assert "up to date, nothing changed" in second.stdout
    assert "created" not in second.stdout and "added" not in second.stdout


def test_schema_file_has_design_tables():
    names = {t.name for t in parse_schema(SCHEMA_FILE.read_text(encoding="utf-8"))}
    assert {"database_connection", "task", "task_item", "ai_model", "run_log", "schema_version"} <= names


def test_upgrade_from_spec_ddl_keeps_rows(local_env, settings):
    db = connect_local(settings, autocommit=True)
    try:
        db.execute("DROP TABLE task")
        db.execute(SPEC_TASK_DDL)
        db.execute(
            "INSERT INTO task (id_user, id_database_connectione, table_name, column_name, status) "
            "VALUES (1, 7, 'articles', 'body', 'completed')"
        )
        actions = init_db(settings)
        assert "renamed column task.id_database_connectione -> id_database_connection" in actions
        assert any("widened ENUM task.status" in a for a in actions)
        assert "added column task.pause_reason" in actions
        row = db.query_one("SELECT * FROM task")
        assert row["id_database_connection"] == 7 and row["status"] == "completed"
        assert row["table_name"] == "articles"
        db.execute("UPDATE task SET status='archived'")
        assert init_db(settings) == []
    finally:
        db.close()


def test_upgrade_adds_remembered_response_format(local_env, settings):
    """Baza sprzed ``ai_model.response_format``: ``--init-db`` dodaje kolumnę, wiersze zostają."""
    db = connect_local(settings, autocommit=True)
    try:
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
    """Zwykły indeks o kolumnach innych niż w schema.sql jest przebudowany (dane zostają); drugi raz nic."""
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    try:
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
        assert actions == ["rebuilt key task_item.idx_task_item_task_status (id_task,status,deleted_at)"]
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
    """Baza z indeksami starszego schematu (remote_id, status, is_changed): --init-db je usuwa, dane zostają."""
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    try:
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original) "
            "VALUES (1, 1, '[1]', 1, 'a')"
        )
        db.execute(
            "ALTER TABLE task_item ADD UNIQUE KEY idx_task_item_remote (id_task, remote_id), "
            "ADD KEY idx_task_item_status (status), ADD KEY idx_task_item_changed (is_changed)"
        )
        actions = init_db(settings)
        assert sorted(a.split(" (")[0] for a in actions) == [
            "dropped index task_item.idx_task_item_changed",
            "dropped index task_item.idx_task_item_remote",
            "dropped index task_item.idx_task_item_status",
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
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    try:
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
        assert (
            "backfilled 1 rows of task_item.claim_uuid (AI claims moved from operation_uuid to claim_uuid)"
            in (actions)
        )
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


def test_result_hash_column_uses_the_reusable_statuses():
    """Kolumna result_hash (indeks wyników AI do ponownego użycia) liczy hash dla REUSABLE_STATUSES."""
    from lib.schema import SCHEMA_FILE, parse_schema
    from lib.task_item import REUSABLE_STATUSES

    task_item = next(
        t for t in parse_schema(SCHEMA_FILE.read_text(encoding="utf-8")) if t.name == "task_item"
    )
    definition = dict(task_item.columns)["result_hash"]
    statuses = ",".join(f"'{s}'" for s in REUSABLE_STATUSES)
    assert f"IF(`status` IN ({statuses}), RTRIM(`original_hash`), NULL)" in definition


def test_hash_index_replaced_by_result_index(local_env, settings):
    """Starsza baza z idx_task_item_hash i bez result_hash: --init-db dodaje kolumnę i indeks, usuwa stary."""
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    try:
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
        assert actions == [
            "added column task_item.result_hash",
            "added key task_item.idx_task_item_result",
            "dropped index task_item.idx_task_item_hash (replaced by idx_task_item_result: only items with a "
            "reusable AI result are looked up by hash)",
        ]
        rows = db.query("SELECT remote_id, result_hash FROM task_item ORDER BY remote_id")
        assert [(r["remote_id"], r["result_hash"]) for r in rows] == [(1, "a" * 64), (2, None)]
        assert init_db(settings) == []
    finally:
        db.close()
