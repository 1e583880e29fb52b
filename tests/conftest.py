"""Wspólne fixture'y testów: prawdziwe bazy MariaDB, PostgreSQL i SQLite (bez mocków).

Każdy test dostaje własną lokalną bazę (schemat z migracji ``lib/migrations/``) i własne bazy źródłowe,
usuwane po teście. Gdy serwer nie odpowiada, test kończy się błędem - nie jest pomijany.
"""

import os
import sqlite3
import uuid
from pathlib import Path

import psycopg2
import pymysql
import pytest

from lib.db_local import connect_local
from lib.load_config import load_config
from lib.mysql_connect import INIT_COMMAND
from lib.schema import init_db

MYSQL_SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
PG_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _mysql_admin():
    # Tryb SQL sesji przypięty jak w projekcie: testy zmieniające globalny sql_mode serwera
    # (test_sql_safety) nie zmieniają znaczenia SQL-a fixture'ów.
    return pymysql.connect(**MYSQL_SERVER, autocommit=True, charset="utf8mb4", init_command=INIT_COMMAND)


def _pg_admin(dbname: str = "postgres"):
    conn = psycopg2.connect(dbname=dbname, **PG_SERVER)
    conn.autocommit = True
    return conn


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """Zmienne środowiska dla świeżej lokalnej bazy testu (też dla podprocesów skryptów)."""
    name = f"ailexia_t_{uuid.uuid4().hex[:10]}"
    env = {
        "DB_LOCAL_HOST": MYSQL_SERVER["host"],
        "DB_LOCAL_PORT": str(MYSQL_SERVER["port"]),
        "DB_LOCAL_USER": MYSQL_SERVER["user"],
        "DB_LOCAL_PASSWORD": MYSQL_SERVER["password"],
        "DB_LOCAL_NAME": name,
        "LOG_DIR": str(tmp_path / "logs"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "ENV_FILE": str(tmp_path / "no.env"),
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


@pytest.fixture
def settings(local_env):
    """Ustawienia z ``load_config`` wskazujące na świeżą lokalną bazę ze schematem."""
    loaded = load_config()
    init_db(loaded)
    return loaded


@pytest.fixture
def db(settings):
    """Połączenie testu z lokalną bazą (autocommit: zawsze widzi najnowszy stan)."""
    conn = connect_local(settings, autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def pg_source():
    """Świeża baza PostgreSQL jako źródło; słownik z danymi połączenia i połączeniem ``conn``."""
    name = f"ailexia_src_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    conn = _pg_admin(name)
    source = {
        "db_type": "pgsql",
        "host": PG_SERVER["host"],
        "port": PG_SERVER["port"],
        "db_name": name,
        "db_user": PG_SERVER["user"],
        "db_password": "",
        "conn": conn,
    }
    yield source
    conn.close()
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
            (name,),
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def mysql_source():
    """Świeża baza MariaDB jako źródło; słownik z danymi połączenia i połączeniem ``conn``."""
    name = f"ailexia_src_{uuid.uuid4().hex[:10]}"
    admin = _mysql_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    conn = pymysql.connect(
        **MYSQL_SERVER, database=name, autocommit=True, charset="utf8mb4", init_command=INIT_COMMAND
    )
    source = {
        "db_type": "mysql",
        "host": MYSQL_SERVER["host"],
        "port": MYSQL_SERVER["port"],
        "db_name": name,
        "db_user": MYSQL_SERVER["user"],
        "db_password": MYSQL_SERVER["password"],
        "conn": conn,
    }
    yield source
    conn.close()
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def sqlite_source(tmp_path):
    """Plik SQLite jako źródło; ``db_name`` to ścieżka pliku."""
    path = tmp_path / "source.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    source = {
        "db_type": "sqlite",
        "host": "",
        "port": 0,
        "db_name": str(path),
        "db_user": "",
        "db_password": "",
        "conn": conn,
    }
    yield source
    conn.close()


@pytest.fixture(autouse=True)
def _reset_ailexia_logging():
    """Przywraca logger ``ailexia`` po teście (setup_logging wyłącza propagację do root)."""
    import logging

    yield
    logger = logging.getLogger("ailexia")
    for handler in list(logger.handlers):
        if getattr(handler, "_ailexia", False):
            logger.removeHandler(handler)
            handler.close()
    logger.propagate = True


def pytest_collection_modifyitems(config, items):
    """Testy ``slow`` na początek listy (sortowanie stabilne, reszta w kolejności zbierania).

    ``pytest -n N --dist worksteal`` rozdaje testy workerom w tej kolejności i podbiera
    niedokończone ogony: długie testy zaczęte najpierw nie zostają na sam koniec jednego workera.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def wdb(server):
    """Połączenie z lokalną bazą serwera strony (fikstura ``server`` modułu testów strony)."""
    conn = connect_local(server["settings"], autocommit=True)
    yield conn
    conn.close()
