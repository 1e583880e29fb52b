"""Testy synchronizacji na prawdziwych bazach: pierwsza synchronizacja, resync, wznowienie, błędy."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from lib.db_local import connect_local
from lib.runtime.locks import task_lock_name
from lib.sync import engine as sync
from lib.sync import verify
from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, create_text_table, source_execute, source_query

SOURCES = ["pg_source", "mysql_source", "sqlite_source"]


def polish_text(i: int) -> str:
    """Deterministyczny tekst 50-600 znaków z polskimi znakami."""
    base = f"Wiersz {i}: zażółć gęślą jaźń, źdźbło trawy i ćma. "
    return (base * (1 + i % 11))[: 50 + (i * 37) % 550]


def sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_cli(env: dict, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "sync.py", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def items(db, id_task: int) -> dict[int, dict]:
    rows = db.query("SELECT * FROM task_item WHERE id_task=%s ORDER BY remote_id", (id_task,))
    return {r["remote_id"]: r for r in rows}


@pytest.fixture(params=SOURCES)
def source(request):
    return request.getfixturevalue(request.param)


def test_first_sync_2000_rows(settings, db, source):
    rows = [(i, polish_text(i)) for i in range(1, 2001)]
    rows[10] = (11, None)
    rows[11] = (12, "")
    create_text_table(source, rows=rows)
    id_task = add_task(db, add_connection(db, source))
    stats = sync.sync_task(settings, id_task)
    assert stats["fetched"] == 2000 and stats["new"] == 2000
    got = items(db, id_task)
    assert len(got) == 2000
    for key, text in rows:
        assert got[key]["text_original"] == text
        assert got[key]["original_hash"] == sha(text)
        assert got[key]["status"] == "pending" and got[key]["deleted_at"] is None
    assert got[11]["original_hash"] is None and got[12]["original_hash"] == sha("")
    task = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "completed" and task["sync_stage"] == "done"
    assert float(task["sync_progress"]) == 100.0
    assert (task["records_total"], task["records_fetched"], task["records_processed"]) == (2000, 2000, 2000)
    assert (task["records_new"], task["records_updated"], task["records_deleted"]) == (2000, 0, 0)
    assert task["started_at"] and task["finished_at"] and task["resume_marker"] is None
    assert db.query_value("SELECT status FROM database_connection") == "active"


def test_resync_detects_new_changed_deleted(settings, db, source):
    create_text_table(source, rows=[(i, polish_text(i)) for i in range(1, 301)])
    id_task = add_task(db, add_connection(db, source))
    sync.sync_task(settings, id_task)
    # Pozycja 5 po korekcie AI, 6 zaakceptowana, 7 pending: wszystkie zmienią się w źródle.
    db.execute(
        "UPDATE task_item SET status='processed', text_corrected='x' WHERE id_task=%s AND remote_id=5",
        (id_task,),
    )
    db.execute("UPDATE task_item SET status='accepted' WHERE id_task=%s AND remote_id=6", (id_task,))
    before = items(db, id_task)
    for key in (5, 6, 7):
        source_execute(source, "UPDATE articles SET body=%s WHERE id=%s", (f"zmieniony tekst {key}", key))
    source_execute(source, "DELETE FROM articles WHERE id IN (10, 300)")
    source_execute(
        source, "INSERT INTO articles (id, body) VALUES (%s, %s), (%s, %s)", (1000, "nowy", 150000, "nowy 2")
    )
    time.sleep(1.1)  # row_updated_at ma mikrosekundy, ale NOW() w verified_at ma sekundy
    sync.sync_task(settings, id_task)
    task = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    assert (task["records_new"], task["records_updated"], task["records_deleted"]) == (2, 3, 2)
    assert task["records_fetched"] == 300 and task["status"] == "completed"
    after = items(db, id_task)
    assert (
        after[5]["status"] == "outdated"
        and after[6]["status"] == "outdated"
        and after[7]["status"] == "pending"
    )
    for key in (5, 6, 7):
        assert after[key]["is_changed"] == 1 and after[key]["text_original"] == f"zmieniony tekst {key}"
        assert after[key]["original_hash"] == sha(f"zmieniony tekst {key}")
    assert after[10]["deleted_at"] is not None and after[300]["deleted_at"] is not None
    assert after[1000]["status"] == "pending" and after[150000]["text_original"] == "nowy 2"
    untouched = [k for k in before if k not in (5, 6, 7, 10, 300)]
    for key in untouched:
        assert after[key]["row_updated_at"] == before[key]["row_updated_at"], key
        assert after[key]["verified_at"] is None


def test_deleted_row_that_comes_back_keeps_its_item(settings, db, pg_source):
    create_text_table(pg_source, rows=[(i, f"tekst {i}") for i in range(1, 21)])
    id_task = add_task(db, add_connection(db, pg_source))
    sync.sync_task(settings, id_task)
    original_id = items(db, id_task)[7]["id_task_item"]
    source_execute(pg_source, "DELETE FROM articles WHERE id=7")
    sync.sync_task(settings, id_task)
    assert items(db, id_task)[7]["deleted_at"] is not None
    source_execute(pg_source, "INSERT INTO articles (id, body) VALUES (7, 'tekst 7')")
    sync.sync_task(settings, id_task)
    item = items(db, id_task)[7]
    assert item["deleted_at"] is None and item["id_task_item"] == original_id
    task = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    assert (task["records_new"], task["records_updated"], task["records_deleted"]) == (1, 0, 0)


def test_exported_item_compares_with_local_hash(settings, db, pg_source):
    create_text_table(pg_source, rows=[(1, "Ala ma kot."), (2, "Ola ma psa.")])
    id_task = add_task(db, add_connection(db, pg_source))
    sync.sync_task(settings, id_task)
    for key, corrected in ((1, "Ala ma kota."), (2, "Ola ma psa!")):
        db.execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, status='exported' WHERE id_task=%s AND remote_id=%s",
            (corrected, sha(corrected), id_task, key),
        )
    # Źródło po eksporcie trzyma tekst poprawiony (1); pozycja 2 - ktoś przywrócił oryginał.
    source_execute(pg_source, "UPDATE articles SET body='Ala ma kota.' WHERE id=1")
    sync.sync_task(settings, id_task)
    got = items(db, id_task)
    assert got[1]["status"] == "exported" and got[1]["is_changed"] == 0
    assert got[2]["status"] == "outdated" and got[2]["is_changed"] == 1


def test_sync_cli_runs_through_dagster(local_env, settings, db, sqlite_source):
    create_text_table(sqlite_source, rows=[(i, polish_text(i)) for i in range(1, 101)])
    id_task = add_task(db, add_connection(db, sqlite_source))
    result = run_cli(local_env, "--id_task", str(id_task))
    assert result.returncode == 0, result.stderr
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,)) == 100
    # Run jest w instancji Dagstera z DAGSTER_HOME (widoczny w UI obok runów sensora).
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = local_env["DAGSTER_HOME"]
    instance = DagsterInstance.get()
    assert instance.get_dynamic_partitions("id_task") == [str(id_task)]
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].tags.get("dagster/partition") == str(id_task)
    logs = open(os.path.join(local_env["LOG_DIR"], "sync.log"), encoding="utf-8").read()
    assert f"zadanie {id_task}" in logs


def test_cron_mode_syncs_new_and_resync_tasks(local_env, settings, db, sqlite_source):
    create_text_table(sqlite_source, rows=[(i, f"t{i}") for i in range(1, 11)])
    conn = add_connection(db, sqlite_source)
    first, second, done = add_task(db, conn), add_task(db, conn), add_task(db, conn, status="completed")
    db.execute("UPDATE task SET status='resync' WHERE id_task=%s", (second,))
    manual = add_task(db, conn, status="paused", pause_reason="manual")
    result = run_cli(local_env)
    assert result.returncode == 0, result.stderr
    statuses = {r["id_task"]: r["status"] for r in db.query("SELECT id_task, status FROM task")}
    assert statuses[first] == "completed" and statuses[second] == "completed"
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (done,)) == 0
    assert statuses[manual] == "paused"


@pytest.mark.parametrize("status", ["cancelled", "archived"])
def test_closed_task_refused_with_exit_2(local_env, settings, db, sqlite_source, status):
    create_text_table(sqlite_source, rows=[(1, "a")])
    id_task = add_task(db, add_connection(db, sqlite_source), status=status)
    result = run_cli(local_env, "--id_task", str(id_task))
    assert result.returncode == 2
    assert status in result.stderr
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == status


def test_unknown_task_exit_2(local_env, settings):
    result = run_cli(local_env, "--id_task", "424242")
    assert result.returncode == 2
    assert "424242" in result.stderr and "nie istnieje" in result.stderr
    assert "Traceback" not in result.stderr


def _source_snapshot(source):
    return source_query(source, "SELECT id, body FROM articles ORDER BY id")


@pytest.mark.parametrize(
    ("table", "column", "key_column", "setup", "fragment"),
    [
        ("missing_table", "body", None, None, "missing_table"),
        ("articles", "missing_col", None, None, "missing_col"),
        ("nokey", "body", None, "CREATE TABLE nokey (id INTEGER, body TEXT)", "klucz"),
        ("articles; DROP TABLE articles", "body", None, None, "nie istnieje"),
        ("articles", "body`; DROP TABLE articles; --", None, None, "nie istnieje"),
        ("articles", "body", "note", None, "note"),
    ],
)
def test_errors_mark_task_error_and_leave_source_alone(
    local_env, settings, db, sqlite_source, table, column, key_column, setup, fragment
):
    create_text_table(sqlite_source, rows=[(1, "a"), (2, "b")])
    if setup:
        source_execute(sqlite_source, setup)
    before = _source_snapshot(sqlite_source)
    id_task = add_task(
        db, add_connection(db, sqlite_source), table=table, column=column, key_column=key_column
    )
    result = run_cli(local_env, "--id_task", str(id_task))
    assert result.returncode == 1, result.stdout + result.stderr
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "error"
    assert fragment in task["error_log"]
    assert "Traceback" not in result.stderr and fragment in result.stderr
    assert _source_snapshot(sqlite_source) == before


def test_disabled_connection_refused(local_env, settings, db, sqlite_source):
    create_text_table(sqlite_source, rows=[(1, "a")])
    id_task = add_task(db, add_connection(db, sqlite_source, status="disabled"))
    result = run_cli(local_env, "--id_task", str(id_task))
    assert result.returncode == 1
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "error" and "wyłączone" in task["error_log"]
    assert db.query_value("SELECT status FROM database_connection") == "disabled"


def test_wrong_password_sets_connection_error(local_env, settings, db, mysql_source):
    create_text_table(mysql_source, rows=[(1, "a")])
    source_execute(mysql_source, "CREATE USER IF NOT EXISTS 'ax_sync_pw'@'%%' IDENTIFIED BY 'Good-Pass-1'")
    try:
        wrong = {**mysql_source, "db_user": "ax_sync_pw", "db_password": "Wrong-Pass-9"}
        id_task = add_task(db, add_connection(db, wrong))
        result = run_cli(local_env, "--id_task", str(id_task))
        assert result.returncode == 1
        task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
        assert task["status"] == "error" and "Wrong-Pass-9" not in task["error_log"]
        assert "Wrong-Pass-9" not in result.stderr + result.stdout
        conn = db.query_one("SELECT status, last_error FROM database_connection")
        assert conn["status"] == "error" and conn["last_error"]
    finally:
        source_execute(mysql_source, "DROP USER IF EXISTS 'ax_sync_pw'@'%%'")


def test_second_sync_of_same_task_exits_without_damage(local_env, settings, db, sqlite_source):
    create_text_table(sqlite_source, rows=[(1, "a")])
    id_task = add_task(db, add_connection(db, sqlite_source))
    holder = connect_local(settings, autocommit=True)
    try:
        assert holder.query_value("SELECT GET_LOCK(%s, 0)", (task_lock_name(holder, id_task),)) == 1
        result = run_cli(local_env, "--id_task", str(id_task))
        assert result.returncode == 1
        assert "przetwarzane przez inny run" in result.stderr
        assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "new"
        assert db.query_value("SELECT COUNT(*) FROM task_item") == 0
    finally:
        holder.close()


def test_source_changed_during_scan_ends_resync(settings, db, pg_source):
    create_text_table(pg_source, rows=[(i * 10, f"t{i}") for i in range(1, 51)])
    id_task = add_task(db, add_connection(db, pg_source))
    sync.run_scan(settings, id_task)
    # Wiersz wstawiony "za kursorem" - skan go nie widział.
    source_execute(pg_source, "INSERT INTO articles (id, body) VALUES (15, 'spóźniony')")
    result = verify.run_verify(settings, id_task)
    assert result["outcome"] == "resync"
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "resync" and "zmieniło się" in task["error_log"]
    sync.sync_task(settings, id_task)
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    assert items(db, id_task)[15]["text_original"] == "spóźniony"


def test_progress_moves_and_is_visible_from_another_connection(settings, db, pg_source):
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT, note TEXT)")
    source_execute(
        pg_source, "INSERT INTO articles SELECT g, repeat('słowo ', 20) || g FROM generate_series(1, 5000) g"
    )
    id_task = add_task(db, add_connection(db, pg_source))
    seen = []

    def observe():
        row = db.query_one(
            "SELECT sync_stage, sync_progress, records_fetched FROM task WHERE id_task=%s", (id_task,)
        )
        seen.append((row["sync_stage"], float(row["sync_progress"]), row["records_fetched"]))
        return None

    sync.sync_task(settings.updated(BATCH_SIZE=250, COMMIT_ROWS=500), id_task, should_stop=observe)
    assert len(seen) >= 9
    progress = [p for _s, p, _f in seen]
    assert progress == sorted(progress) and 5 < progress[0] < progress[-1] <= 90
    assert {s for s, _p, _f in seen} <= {"fetch", "compare", "update"} and len({s for s, _p, _f in seen}) == 3
    assert [f for _s, _p, f in seen] == sorted(f for _s, _p, f in seen)


def _state(db, id_task):
    rows = db.query(
        "SELECT remote_id, text_original, original_hash, status, is_changed, deleted_at IS NULL AS live "
        "FROM task_item WHERE id_task=%s ORDER BY remote_id",
        (id_task,),
    )
    task = db.query_one(
        "SELECT status, sync_stage, sync_progress, records_total, records_fetched, records_processed, records_new, "
        "records_updated, records_deleted FROM task WHERE id_task=%s",
        (id_task,),
    )
    return [tuple(r.values()) for r in rows], task


@pytest.mark.slow
def test_sigkill_mid_fetch_then_rerun_equals_uninterrupted(local_env, settings, db, pg_source):
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT, note TEXT)")
    source_execute(
        pg_source,
        "INSERT INTO articles SELECT g, repeat('zdanie próbne ', 30) || g FROM generate_series(1, 120000) g",
    )
    conn = add_connection(db, pg_source)
    killed, reference = add_task(db, conn), add_task(db, conn)
    env = {**local_env, "BATCH_SIZE": "500", "COMMIT_ROWS": "2000"}
    proc = subprocess.Popen(
        [sys.executable, "sync.py", "--id_task", str(killed)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        fetched = db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (killed,))
        if fetched and fetched >= 20000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = db.query_one(
        "SELECT status, records_fetched, last_processed_id FROM task WHERE id_task=%s", (killed,)
    )
    assert partial["status"] == "in_progress" and 0 < partial["records_fetched"] < 120000
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (killed,))
        == partial["records_fetched"]
    )
    rerun = run_cli(env, "--id_task", str(killed))
    assert rerun.returncode == 0, rerun.stderr
    sync.sync_task(settings, reference)
    assert _state(db, killed) == _state(db, reference)
    assert (
        db.query_value(
            "SELECT COUNT(*) FROM (SELECT remote_id FROM task_item WHERE id_task=%s GROUP BY remote_id HAVING COUNT(*)>1) d",
            (killed,),
        )
        == 0
    )


def test_verify_count_reads_only_the_narrow_result_index(settings, db, pg_source):
    """Liczenie weryfikacji: tylko wpisy ``idx_task_item_result`` (pokrywający), z pozycjami bez hasha i usuniętymi."""
    from lib import task_item

    create_text_table(pg_source, rows=[(i, f"tekst {i}") for i in range(1, 41)])
    id_task = add_task(db, add_connection(db, pg_source))
    sync.sync_task(settings, id_task)
    plan = db.query(
        "EXPLAIN SELECT COUNT(*), SUM(hash_missing) FROM task_item FORCE INDEX "
        f"({task_item.RESULT_INDEX}) WHERE id_task=%s AND deleted_at IS NULL",
        (id_task,),
    )
    assert plan[0]["key"] == "idx_task_item_result" and "Using index" in plan[0]["Extra"], plan
    db.execute("UPDATE task_item SET original_hash=NULL WHERE id_task=%s AND remote_id IN (3, 4)", (id_task,))
    db.execute(
        "UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND remote_id IN (4, 5, 6)", (id_task,)
    )
    db.commit()
    assert task_item.active_counts(db, id_task) == (37, 1)


def test_verify_checks_count_duplicates_only_without_the_unique_index(settings, db, pg_source):
    """Checki: duplikaty wyklucza unikalny indeks; bez niego są liczone (i widać je w checku)."""
    create_text_table(pg_source, rows=[(i, f"tekst {i}") for i in range(1, 31)])
    id_task = add_task(db, add_connection(db, pg_source))
    stats = sync.sync_task(settings, id_task)["verify"]
    expected = {"duplicates": 0, "missing_hash": 0, "active_items": 30, "status": "completed"}
    assert verify.verify_checks(db, id_task, stats) == expected
    assert verify.verify_checks(db, id_task) == expected
    db.execute("UPDATE task_item SET original_hash=NULL WHERE id_task=%s AND remote_id=3", (id_task,))
    assert verify.verify_checks(db, id_task)["missing_hash"] == 1
    db.execute(
        "ALTER TABLE task_item DROP INDEX idx_task_item_key, ADD KEY idx_task_item_key (id_task, remote_key)"
    )
    db.execute(
        "INSERT INTO task_item (id_task, remote_key, remote_id, source_ord, text_original, original_hash) "
        "SELECT id_task, remote_key, remote_id, source_ord, text_original, original_hash FROM task_item "
        "WHERE id_task=%s AND remote_id IN (5, 6)",
        (id_task,),
    )
    assert verify.verify_checks(db, id_task)["duplicates"] == 2
