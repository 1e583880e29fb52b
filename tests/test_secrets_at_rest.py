"""Hasła źródeł w spoczynku: szyfrogram w bazie, zaszyfrowanie starych wierszy, rotacja, brak klucza, zmienna.

``ailexia`` i ``sync.py`` działają jako osobne procesy; po każdym kroku test przeszukuje bazę
lokalną (wszystkie kolumny wszystkich tabel, także ``db_password``), wyjście procesów, pliki logów,
``DAGSTER_HOME`` i dziennik zdarzeń Dagstera: hasła jawnego nie ma nigdzie.
"""

import json
import os
import uuid

import pytest
from cryptography.fernet import Fernet

from lib import passwords
from lib.errors import ConfigError
from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, create_text_table, source_execute
from tests.reliability.test_secrets import dagster_events_dump, files_dump
from tests.test_ailexia_cli import add_source_args, ailexia, ok, refused, run_script

PASSWORD = "Haslo-Zrodla-7Qm2xKp9"
OTHER_PASSWORD = "Inne-Haslo-3Wz8vLn4"


@pytest.fixture
def key_env(local_env, settings):
    """Środowisko procesów z kluczem szyfrującym i najbardziej gadatliwym logowaniem."""
    return {**os.environ, "AILEXIA_SECRET_KEY": new_key(), "LOG_LEVEL": "DEBUG", "LOG_SQL_QUERIES": "true"}


def new_key() -> str:
    return passwords.new_key()


@pytest.fixture
def mysql_user(mysql_source):
    """Użytkownik MariaDB z hasłem ``PASSWORD`` i pełnymi prawami do bazy źródłowej z tabelą."""
    create_text_table(mysql_source, rows=[(1, "Pierwszy bląd."), (2, "Drugi tekst.")])
    user = f"ax_pw_{uuid.uuid4().hex[:8]}"
    source_execute(mysql_source, f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
    source_execute(mysql_source, f"GRANT ALL ON `{mysql_source['db_name']}`.* TO '{user}'@'%'")
    yield user
    source_execute(mysql_source, f"DROP USER IF EXISTS '{user}'@'%'")


def whole_database(db) -> str:
    """Wszystkie wartości wszystkich tabel lokalnej bazy, także ``db_password``."""
    parts = []
    for row in db.query("SHOW TABLES"):
        table = next(iter(row.values()))
        parts.extend(f"{table}: {record!r}" for record in db.query(f"SELECT * FROM `{table}`"))
    return "\n".join(parts)


def assert_nowhere(password: str, *texts: str | bytes) -> None:
    for text in texts:
        needle = password.encode() if isinstance(text, bytes) else password
        assert needle not in text


def stored(db, alias: str) -> dict:
    return db.query_one("SELECT db_password, password_env FROM database_connection WHERE alias=%s", (alias,))


def test_source_add_stores_only_ciphertext_and_password_never_shows(
    key_env, local_env, db, mysql_source, mysql_user
):
    added = ailexia(key_env, *add_source_args(mysql_source, "kadry", mysql_user), stdin=PASSWORD + "\n")
    ok(added)
    row = stored(db, "kadry")
    assert row["db_password"].startswith("fernet:") and row["password_env"] is None
    assert_nowhere(PASSWORD, whole_database(db))
    assert Fernet(key_env["AILEXIA_SECRET_KEY"]).decrypt(row["db_password"][7:].encode()).decode() == PASSWORD

    listed = ailexia(key_env, "source", "list")
    listed_json = ailexia(key_env, "source", "list", "--json")
    assert json.loads(ok(listed_json))[0]["password"] == "encrypted"
    assert "zaszyfrowane" in ok(listed)
    tested = ailexia(key_env, "source", "test", "kadry")
    assert "zapis (UPDATE):  tak" in ok(tested)

    id_task = add_task(db, int(db.query_value("SELECT id_database_connection FROM database_connection")))
    synced = run_script(key_env, "sync.py", "--id_task", str(id_task))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s", (id_task,)) == 2
    # Błędne hasło: błąd połączenia trafia do error_log, last_error, logów i Dagstera - bez hasła.
    db.execute(
        "UPDATE database_connection SET db_password=%s WHERE alias='kadry'",
        (passwords.encrypt(OTHER_PASSWORD, {"AILEXIA_SECRET_KEY": key_env["AILEXIA_SECRET_KEY"]}),),
    )
    failed = run_script(key_env, "sync.py", "--id_task", str(id_task))
    assert failed.returncode != 0
    assert "Access denied" in db.query_value("SELECT error_log FROM task WHERE id_task=%s", (id_task,))
    failed_test = ailexia(key_env, "source", "test", "kadry")
    assert failed_test.returncode == 1 and "Access denied" in failed_test.stderr

    outputs = [r.stdout + r.stderr for r in (added, listed, listed_json, tested, synced, failed, failed_test)]
    files = files_dump(local_env["LOG_DIR"], local_env["DAGSTER_HOME"])
    assert any(b"SQL (" in content for content in files.values())  # logowanie SQL naprawdę działało
    events, runs, _failures = dagster_events_dump(local_env["DAGSTER_HOME"])
    assert runs == 2
    for password in (PASSWORD, OTHER_PASSWORD):
        assert_nowhere(password, whole_database(db), events, *outputs, *files.values())


def test_secrets_encrypt_converts_plain_rows_in_one_go(key_env, db, mysql_source, mysql_user, sqlite_source):
    # Wiersze zapisane jawnie przez starszą wersję (INSERT operatora) nadal działają bez klucza.
    plain_source = {**mysql_source, "db_user": mysql_user, "db_password": PASSWORD}
    id_plain = add_connection(db, plain_source, alias="stare")
    add_connection(db, sqlite_source, alias="plik")
    no_key = {k: v for k, v in key_env.items() if k != "AILEXIA_SECRET_KEY"}
    assert "tak" in ok(ailexia(no_key, "source", "test", "stare"))
    assert "jawne" in ok(ailexia(no_key, "source", "list"))
    refused(ailexia(no_key, "secrets", "encrypt"), "AILEXIA_SECRET_KEY")
    assert stored(db, "stare")["db_password"] == PASSWORD

    result = json.loads(ok(ailexia(key_env, "secrets", "encrypt", "--json")))
    assert result == {"encrypted": 1, "already": 0}
    assert stored(db, "stare")["db_password"].startswith("fernet:")
    assert stored(db, "plik")["db_password"] in (None, "")
    assert_nowhere(PASSWORD, whole_database(db))
    assert "tak" in ok(ailexia(key_env, "source", "test", "stare"))
    assert json.loads(ok(ailexia(key_env, "secrets", "encrypt", "--json"))) == {"encrypted": 0, "already": 1}
    # Teraz bez klucza: jedna linia z nazwą klucza, kod 2; run zadania kończy się error z tym samym zdaniem.
    refused(ailexia(no_key, "source", "test", "stare"), "AILEXIA_SECRET_KEY")
    id_task = add_task(db, id_plain)
    failed = run_script(no_key, "sync.py", "--id_task", str(id_task))
    assert failed.returncode != 0 and "AILEXIA_SECRET_KEY" in failed.stdout + failed.stderr
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task["status"] == "error" and "AILEXIA_SECRET_KEY" in task["error_log"]


def test_rotate_reencrypts_everything_or_nothing(key_env, db, mysql_source, mysql_user):
    old_key = key_env["AILEXIA_SECRET_KEY"]
    ok(ailexia(key_env, *add_source_args(mysql_source, "a", mysql_user), stdin=PASSWORD + "\n"))
    ok(ailexia(key_env, *add_source_args(mysql_source, "b", mysql_user), stdin=PASSWORD + "\n"))
    before = {alias: stored(db, alias)["db_password"] for alias in ("a", "b")}
    fresh = new_key()
    rotated_env = {**key_env, "AILEXIA_SECRET_KEY": fresh, "AILEXIA_SECRET_KEY_OLD": old_key}
    refused(ailexia({**key_env, "AILEXIA_SECRET_KEY": fresh}, "secrets", "rotate"), "AILEXIA_SECRET_KEY_OLD")

    # Szyfrogram spod nieznanego klucza: rotacja odmawia i nie zmienia żadnego wiersza (jedna transakcja).
    stranger = "fernet:" + Fernet(new_key()).encrypt(b"x").decode()
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, db_name, db_user, db_password) "
        "VALUES (1, 'obcy', 'mysql', '127.0.0.1', 'x', 'x', %s)",
        (stranger,),
    )
    refused(ailexia(rotated_env, "secrets", "rotate"), "AILEXIA_SECRET_KEY_OLD")
    assert {alias: stored(db, alias)["db_password"] for alias in ("a", "b")} == before
    db.execute("DELETE FROM database_connection WHERE alias='obcy'")

    assert json.loads(ok(ailexia(rotated_env, "secrets", "rotate", "--json"))) == {"rotated": 2}
    after = {alias: stored(db, alias)["db_password"] for alias in ("a", "b")}
    for alias in ("a", "b"):
        assert after[alias] != before[alias] and after[alias].startswith("fernet:")
        assert Fernet(fresh).decrypt(after[alias][7:].encode()).decode() == PASSWORD
    only_new = {**key_env, "AILEXIA_SECRET_KEY": fresh}
    assert "tak" in ok(ailexia(only_new, "source", "test", "a"))
    refused(ailexia(key_env, "source", "test", "a"), "AILEXIA_SECRET_KEY")
    # Ponowna rotacja (stary klucz jeszcze w środowisku) jest bezpieczna.
    assert json.loads(ok(ailexia(rotated_env, "secrets", "rotate", "--json"))) == {"rotated": 2}
    assert "tak" in ok(ailexia(only_new, "source", "test", "b"))


def test_password_env_stores_only_the_variable_name(key_env, db, mysql_source, mysql_user):
    args = [a for a in add_source_args(mysql_source, "env", mysql_user) if a != "--password-stdin"]
    ok(ailexia(key_env, *args, "--password-env", "KADRY_DB_PASSWORD"))
    assert stored(db, "env") == {"db_password": None, "password_env": "KADRY_DB_PASSWORD"}
    assert (
        json.loads(ok(ailexia(key_env, "source", "list", "--json")))[0]["password"] == "env:KADRY_DB_PASSWORD"
    )
    refused(ailexia(key_env, "source", "test", "env"), "KADRY_DB_PASSWORD")
    with_var = {**key_env, "KADRY_DB_PASSWORD": PASSWORD}
    del with_var["AILEXIA_SECRET_KEY"]  # hasło ze zmiennej nie potrzebuje klucza
    assert "tak" in ok(ailexia(with_var, "source", "test", "env"))
    refused(ailexia(key_env, *args, "--alias", "e2", "--password-env", "1ZLA-NAZWA"), "--password-env")
    refused(ailexia(key_env, *args[:3], "e3", *args[4:], "--password-env", "X", "--password-stdin"))
    assert_nowhere(PASSWORD, whole_database(db))


def test_connection_password_rules(tmp_path):
    key = new_key()
    settings = {"AILEXIA_SECRET_KEY": key, "_env_file_values": {}}
    encrypted = passwords.encrypt("tajne-1", settings)
    assert encrypted.startswith("fernet:") and "tajne-1" not in encrypted
    assert passwords.connection_password({"db_password": encrypted}, settings) == "tajne-1"
    assert (
        passwords.connection_password({"db_password": "stare-jawne"}, {"AILEXIA_SECRET_KEY": ""})
        == "stare-jawne"
    )
    assert passwords.connection_password({"db_password": None}, {}) == ""
    with pytest.raises(ConfigError, match="AILEXIA_SECRET_KEY"):
        passwords.connection_password({"db_password": encrypted}, {"AILEXIA_SECRET_KEY": ""})
    with pytest.raises(ConfigError, match="AILEXIA_SECRET_KEY"):
        passwords.connection_password({"db_password": encrypted}, {"AILEXIA_SECRET_KEY": new_key()})
    with pytest.raises(ConfigError, match="AILEXIA_SECRET_KEY"):
        passwords.encrypt("x", {"AILEXIA_SECRET_KEY": "za-krotki"})


def test_run_command_writes_a_key_into_env_once(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((PROJECT_ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    assert passwords.ensure_secret_key(env_file, environ={}) is True
    text = env_file.read_text(encoding="utf-8")
    keys = [line for line in text.splitlines() if line.startswith("AILEXIA_SECRET_KEY=")]
    assert len(keys) == 1 and len(keys[0]) == len("AILEXIA_SECRET_KEY=") + 44
    Fernet(keys[0].split("=", 1)[1])  # poprawny klucz
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert passwords.ensure_secret_key(env_file, environ={}) is False
    assert env_file.read_text(encoding="utf-8") == text
    other = tmp_path / "other.env"
    assert passwords.ensure_secret_key(other, environ={"AILEXIA_SECRET_KEY": new_key()}) is False
    assert not other.exists()
    assert passwords.ensure_secret_key(other, environ={}) is True
    assert other.read_text(encoding="utf-8").startswith("AILEXIA_SECRET_KEY=")
    assert "ensure_secret_key" in (PROJECT_ROOT / "scripts" / "run.sh").read_text(encoding="utf-8")


def test_init_db_upgrades_an_older_connection_table(local_env, settings, db):
    from lib.schema import init_db

    # Baza sprzed migracji 0003: hasło CHAR(128) jawne, bez password_env.
    db.execute(
        "ALTER TABLE database_connection DROP COLUMN password_env, MODIFY db_password CHAR(128) DEFAULT NULL"
    )
    db.execute("DELETE FROM schema_migrations WHERE name='0003_operator_cli'")
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, db_name, db_user, db_password) "
        "VALUES (1, 'stare', 'mysql', '127.0.0.1', 'd', 'u', %s)",
        (PASSWORD,),
    )
    actions = init_db(settings)
    assert "applied migration 0003_operator_cli.sql" in actions
    columns = {
        r["COLUMN_NAME"]: r["COLUMN_TYPE"]
        for r in db.query(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.columns WHERE table_schema=DATABASE() "
            "AND table_name='database_connection' AND COLUMN_NAME IN ('db_password', 'password_env')"
        )
    }
    assert columns == {"db_password": "varchar(512)", "password_env": "varchar(64)"}
    assert stored(db, "stare") == {"db_password": PASSWORD, "password_env": None}
    # Najdłuższe hasło, jakie mieści stara kolumna (128 znaków), po zaszyfrowaniu mieści się w nowej.
    long_cipher = passwords.encrypt("x" * 128, {"AILEXIA_SECRET_KEY": new_key()})
    assert len(long_cipher) <= 512
    assert init_db(settings) == []
