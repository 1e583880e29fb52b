"""Pomocnicze funkcje testów: tabele źródłowe, wiersze połączeń i zadań."""

from typing import Any

from lib.db_local import MySQL


def source_execute(source: dict[str, Any], sql: str, params: Any = None) -> None:
    """Wykonuje SQL w bazie źródłowej (parametry w stylu ``%s``; dla sqlite zamieniane na ``?``)."""
    conn = source["conn"]
    if source["db_type"] == "sqlite":
        conn.execute(sql.replace("%s", "?"), params or ())
        return
    with conn.cursor() as cursor:
        cursor.execute(sql, params)


def source_executemany(source: dict[str, Any], sql: str, rows: list) -> None:
    """Wstawia wiele wierszy do bazy źródłowej."""
    conn = source["conn"]
    if source["db_type"] == "sqlite":
        conn.execute("BEGIN")
        conn.executemany(sql.replace("%s", "?"), rows)
        conn.execute("COMMIT")
        return
    with conn.cursor() as cursor:
        cursor.executemany(sql, rows)


def source_query(source: dict[str, Any], sql: str, params: Any = None) -> list[tuple]:
    """Zwraca wiersze zapytania w bazie źródłowej jako krotki."""
    conn = source["conn"]
    if source["db_type"] == "sqlite":
        return [tuple(r) for r in conn.execute(sql.replace("%s", "?"), params or ()).fetchall()]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()]


def create_text_table(
    source: dict[str, Any], table: str = "articles", rows: list[tuple[int, str | None]] = ()
) -> None:
    """Tworzy w źródle tabelę ``(id PK, body TEXT)`` i wstawia wiersze ``(id, body)``."""
    kind = source["db_type"]
    if kind == "pgsql":
        source_execute(source, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT, note TEXT)")
    elif kind == "mysql":
        source_execute(
            source,
            f"CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, body TEXT COLLATE utf8mb4_general_ci, note TEXT) "
            "CHARACTER SET utf8mb4",
        )
    else:
        source_execute(source, f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT, note TEXT)")
    if rows:
        source_executemany(source, f"INSERT INTO {table} (id, body) VALUES (%s, %s)", list(rows))


def add_connection(
    db: MySQL, source: dict[str, Any], alias: str | None = None, status: str = "active"
) -> int:
    """Dodaje wiersz ``database_connection`` dla źródła testowego i zwraca jego id."""
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, db_password, status) "
        "VALUES (1, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            alias or f"{source['db_type']}-{source['db_name'][-10:]}",
            source["db_type"],
            source["host"] or "",
            source["port"] or 0,
            source["db_name"],
            source["db_user"] or "",
            source["db_password"],
            status,
        ),
    )
    if not db.autocommit:
        db.commit()
    return int(db.query_value("SELECT LAST_INSERT_ID()"))


def add_task(
    db: MySQL, id_connection: int, table: str = "articles", column: str = "body", **extra: Any
) -> int:
    """Dodaje wiersz ``task`` (status ``new``) i zwraca jego id; ``extra`` = dodatkowe kolumny."""
    columns = {
        "id_user": 1,
        "id_database_connection": id_connection,
        "table_name": table,
        "column_name": column,
    }
    columns.update(extra)
    names = ", ".join(f"`{k}`" for k in columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO task ({names}) VALUES ({marks})", tuple(columns.values()))
    if not db.autocommit:
        db.commit()
    return int(db.query_value("SELECT LAST_INSERT_ID()"))


def add_model(
    db: MySQL, name: str = "fake", model: str = "fake-model", base_url: str | None = None, **extra: Any
) -> int:
    """Dodaje wiersz ``ai_model`` i zwraca jego id."""
    columns = {"name": name, "model": model, "base_url": base_url}
    columns.update(extra)
    names = ", ".join(f"`{k}`" for k in columns)
    marks = ", ".join(["%s"] * len(columns))
    db.execute(f"INSERT INTO ai_model ({names}) VALUES ({marks})", tuple(columns.values()))
    return int(db.query_value("SELECT LAST_INSERT_ID()"))


def sha256(text: str | None) -> str | None:
    """Hash sha256 tekstu (jak ``task_item.original_hash`` / ``local_hash``)."""
    import hashlib

    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def add_task_item(
    db: MySQL,
    id_task: int,
    remote_id: int,
    original: str | None,
    corrected: str | None,
    status: str = "processed",
    summary: str | None = None,
    is_changed: int = 0,
    deleted: bool = False,
) -> int:
    """Dodaje pozycję ``task_item`` wprost (bez synchronizacji i AI) i zwraca jej id."""
    db.execute(
        "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original, original_hash, "
        "text_corrected, local_hash, change_summary, status, is_changed, processed_at, deleted_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, IF(%s IS NULL, NULL, NOW()), IF(%s, NOW(), NULL))",
        (
            id_task,
            remote_id,
            f"[{remote_id}]",
            remote_id,
            original,
            sha256(original),
            corrected,
            sha256(corrected),
            summary,
            status,
            is_changed,
            corrected,
            deleted,
        ),
    )
    if not db.autocommit:
        db.commit()
    return int(db.query_value("SELECT LAST_INSERT_ID()"))


def simulate_ai(db: MySQL, id_task: int, corrections: dict[int, str]) -> None:
    """Udaje wynik AI: ``text_corrected``, ``local_hash``, status ``processed`` dla ``remote_id -> tekst``."""
    for remote_id, text in corrections.items():
        db.execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, status='processed', processed_at=NOW() "
            "WHERE id_task=%s AND remote_id=%s",
            (text, sha256(text), id_task, remote_id),
        )
    if not db.autocommit:
        db.commit()


def start_daemon(env: dict, cwd, log_path):
    """Startuje ``dagster-daemon run`` projektu we własnej grupie procesów (log do ``log_path``).

    Magazyn instancji z ``DAGSTER_HOME`` zakładamy przed startem: równoległa inicjalizacja SQLite
    przez kilka procesów (demon, serwer kodu, test) potrafi zostawić dwie głowice alembic. Katalog
    bieżący leży poza projektem, bo CLI Dagstera wczytuje ``.env`` z cwd i nadpisuje nim środowisko.
    """
    import subprocess
    import sys
    from pathlib import Path

    from dagster import DagsterInstance

    from tests.conftest import PROJECT_ROOT

    DagsterInstance.get().get_runs(limit=1)
    daemon_bin = Path(sys.executable).with_name("dagster-daemon")
    with open(log_path, "w") as log_file:
        return subprocess.Popen(
            [str(daemon_bin), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process) -> None:
    """Kończy proces i całą jego grupę (demon/dagster dev mają podprocesy: serwer kodu, runy)."""
    import os
    import signal
    import subprocess

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def start_review_server(env: dict, log_path, timeout_s: float = 30.0):
    """Startuje ``review.py serve --port 0`` (wolny port) i zwraca ``(proces, adres bazowy)``.

    Wyjście serwera idzie do pliku ``log_path`` (potok mógłby się zapełnić i zatrzymać serwer);
    adres czytany jest z pierwszej linii, którą serwer wypisuje przy starcie.
    """
    import os
    import re
    import subprocess
    import sys
    import time

    from tests.conftest import PROJECT_ROOT

    log_file = open(log_path, "w")  # noqa: SIM115 - plik żyje razem z procesem serwera
    process = subprocess.Popen(
        [sys.executable, "review.py", "serve", "--port", "0"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = open(log_path, encoding="utf-8").read()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=", text)
        if match:
            return process, f"http://127.0.0.1:{match.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_process_group(process)
    raise AssertionError(f"review.py serve nie wystartował: {open(log_path, encoding='utf-8').read()}")


def module_local_env(tmp_dir, extra: dict | None = None) -> dict:
    """Środowisko świeżej lokalnej bazy dla fixture'ów o zasięgu modułu (bez monkeypatch).

    Baza dostaje schemat; usuwa ją ``drop_local_database``.
    """
    import uuid

    from lib.load_config import load_config
    from lib.schema import init_db
    from tests.conftest import MYSQL_SERVER

    env = {
        "DB_LOCAL_HOST": MYSQL_SERVER["host"],
        "DB_LOCAL_PORT": str(MYSQL_SERVER["port"]),
        "DB_LOCAL_USER": MYSQL_SERVER["user"],
        "DB_LOCAL_PASSWORD": MYSQL_SERVER["password"],
        "DB_LOCAL_NAME": f"ailexia_t_{uuid.uuid4().hex[:10]}",
        "LOG_DIR": str(tmp_dir / "logs"),
        "DAGSTER_HOME": str(tmp_dir / "dagster_home"),
        "ENV_FILE": str(tmp_dir / "no.env"),
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        **(extra or {}),
    }
    (tmp_dir / "dagster_home").mkdir(parents=True, exist_ok=True)
    init_db(load_config(environ=env))
    return env


def drop_local_database(env: dict) -> None:
    """Usuwa bazę z ``module_local_env``."""
    import pymysql

    from tests.conftest import MYSQL_SERVER

    admin = pymysql.connect(**MYSQL_SERVER, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{env['DB_LOCAL_NAME']}`")
    finally:
        admin.close()


# Wiersz database_connection, którego strona przeglądu nie otwiera (pozycje wstawiane wprost).
UNUSED_SOURCE = {
    "db_type": "sqlite",
    "host": "",
    "port": 0,
    "db_name": "/nonexistent.sqlite",
    "db_user": "",
    "db_password": "",
}


def running_review_server(tmp_dir, token: str, extra: dict | None = None):
    """Kontekst: świeża lokalna baza + ``review.py serve`` z tokenem; na końcu serwer stop, baza usunięta.

    ``extra``: dodatkowe zmienne środowiska serwera (np. ``AILEXIA_SECRET_KEY``).

    Zwraca (w ``with``) słownik: ``env``, ``base`` (adres), ``settings``, ``tmp``.
    """
    import contextlib

    from lib.load_config import load_config

    @contextlib.contextmanager
    def context():
        env = module_local_env(tmp_dir, {"REVIEW_TOKEN": token, **(extra or {})})
        try:
            process, base = start_review_server(env, tmp_dir / "serve.log")
            try:
                yield {"env": env, "base": base, "settings": load_config(environ=env), "tmp": tmp_dir}
            finally:
                stop_process_group(process)
        finally:
            drop_local_database(env)

    return context()


def record_run(instance, job_name: str, status, tags: dict):
    """Zapisuje w instancji Dagstera run o danym statusie i tagach, bez wykonywania (jak run demona).

    Publiczne API Dagstera: ``DagsterRun`` i ``DagsterInstance.add_run``.
    """
    from dagster import DagsterRun

    return instance.add_run(DagsterRun(job_name=job_name, status=status, tags=tags))


def as_pre_migration_database(db: MySQL) -> None:
    """Zamienia bazę testu w bazę z ostatniej wersji sprzed migracji: schemat 0001, bez ``schema_migrations``.

    Tak wyglądała baza założona przed wprowadzeniem numerowanych migracji; ``--init-db`` ją przejmuje
    (zapisuje 0001) i stosuje nowsze migracje. Test może potem cofnąć starsze zmiany (DROP COLUMN).
    """
    from lib.schema import MIGRATIONS_DIR, run_sql

    name = db.query_value("SELECT DATABASE()")
    db.execute(f"DROP DATABASE `{name}`")
    db.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    db.execute(f"USE `{name}`")
    initial = MIGRATIONS_DIR / "0001_initial.sql"
    run_sql(db, initial.read_text(encoding="utf-8"), initial.name)


def task_counters(db: MySQL, id_task: int) -> tuple:
    """Status i liczniki synchronizacji zadania (do porównania dwóch zadań na tych samych danych)."""
    row = db.query_one(
        "SELECT status, records_total, records_fetched, records_new, records_updated, records_deleted "
        "FROM task WHERE id_task=%s",
        (id_task,),
    )
    return tuple(row.values())
