"""Wspólne części testów wdrożenia: instancja w PostgreSQL i trzy osobne procesy Dagstera.

``pg_instance``: świeża baza PostgreSQL jako magazyn instancji, ``DAGSTER_HOME/dagster.yaml`` to
``deploy/dagster.yaml`` z repozytorium (zmienne ``DAGSTER_PG_*``). ``start_separate``: uruchamia
``deploy/run_separate.sh`` (serwer kodu, demon, webserver) na wolnych portach i czeka, aż webserver
odpowie z załadowaną lokacją ``ailexia``.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER, PROJECT_ROOT, _pg_admin


def drop_pg_database(name: str) -> None:
    """Usuwa bazę PostgreSQL (najpierw kończy jej sesje)."""
    admin = _pg_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.close()


@pytest.fixture(name="pg_instance")
def pg_instance_fixture(local_env, monkeypatch):
    """Świeża baza PostgreSQL jako magazyn instancji; zwraca środowisko (``local_env`` + ``DAGSTER_PG_*``)."""
    name = f"ailexia_dg_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    admin.close()
    env = {
        "DAGSTER_PG_HOST": PG_SERVER["host"],
        "DAGSTER_PG_PORT": str(PG_SERVER["port"]),
        "DAGSTER_PG_USER": PG_SERVER["user"],
        "DAGSTER_PG_PASSWORD": PG_SERVER["password"],
        "DAGSTER_PG_DB": name,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", Path(local_env["DAGSTER_HOME"]) / "dagster.yaml")
    try:
        yield {**local_env, **env}
    finally:
        drop_pg_database(name)


def pg_query(db_name: str, sql: str, params=None) -> list[tuple]:
    """Zapytanie do bazy instancji wprost (bez Dagstera)."""
    conn = _pg_admin(db_name)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        conn.close()


def free_port() -> int:
    """Wolny port TCP na 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(url: str, query: str) -> dict:
    """Zapytanie GraphQL do webservera (to, co czyta UI)."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


LOCATIONS_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename } } } } }"
)


def start_separate(env: dict, log_path: Path, timeout_s: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Startuje ``deploy/run_separate.sh`` i czeka, aż webserver pokaże załadowaną lokację ``ailexia``.

    Returns:
        ``(proces skryptu, adres webservera)``.
    """
    web_port, code_port = free_port(), free_port()
    full_env = {
        **os.environ,
        **env,
        "DAGSTER_HOST": "127.0.0.1",
        "DAGSTER_PORT": str(web_port),
        "DAGSTER_CODE_PORT": str(code_port),
    }
    log_file = open(log_path, "w")  # noqa: SIM115 - plik żyje razem z procesem
    process = subprocess.Popen(
        ["bash", str(PROJECT_ROOT / "deploy" / "run_separate.sh")],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{web_port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"run_separate.sh zakończył się ({process.returncode}):\n{log_path.read_text()[-4000:]}"
            )
        try:
            entries = graphql(url, LOCATIONS_QUERY)["data"]["workspaceOrError"]["locationEntries"]
            if any(
                e["name"] == "ailexia" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                for e in entries
            ):
                return process, url
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    stop_separate(process)
    pytest.fail(f"webserver nie odpowiedział w {timeout_s} s:\n{log_path.read_text()[-4000:]}")


def stop_separate(process: subprocess.Popen, timeout_s: float = 20.0) -> float:
    """SIGTERM do skryptu (jak systemd/Ctrl-C); zwraca czas do zakończenia skryptu w sekundach."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return time.monotonic() - started
