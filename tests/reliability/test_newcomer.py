"""Nowicjusz: świeży klon repozytorium i polecenia z README, dosłownie.

Test klonuje zatwierdzony HEAD projektu do katalogu tymczasowego i uruchamia polecenie "uruchom"
z bloku ``bash`` pod nagłówkiem "## The two commands" (pierwsza linia) z nadpisaniami środowiska,
które izolują go od reszty maszyny: własna baza lokalna, wolny port UI, własny DAGSTER_HOME.
Czeka, aż UI odpowie, sprawdza, że ``task_sensor`` jest załadowany i włączony, że ``--init-db``
utworzył schemat, a demon ``dagster dev`` naprawdę podejmuje zadanie z tej (i tylko tej) bazy.

Polecenia "testy" (druga linia) nie uruchamiamy tutaj - CI robi to dosłownie w świeżym klonie,
a uruchomienie go z wnętrza testów byłoby rekurencją. Sprawdzamy statycznie, że ``.ci/run``
woła dokładnie to polecenie.

Test działa zawsze w CI (``CI=true``); lokalnie można go pominąć przez ``AILEXIA_SKIP_NEWCOMER=1``.
"""

import json
import os
import re
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pymysql
import pytest

from tests.conftest import MYSQL_SERVER, PROJECT_ROOT
from tests.helpers import stop_process_group

UI_TIMEOUT_S = 240
SENSOR_TIMEOUT_S = 120
TASK_TIMEOUT_S = 180
SCHEMA_TABLES = {"database_connection", "task", "task_item", "ai_model"}

_in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
skip_locally = pytest.mark.skipif(
    os.environ.get("AILEXIA_SKIP_NEWCOMER") == "1" and not _in_ci,
    reason="AILEXIA_SKIP_NEWCOMER=1 (lokalnie; w CI test działa zawsze)",
)


def readme_commands(readme: Path) -> tuple[str, str]:
    """Zwraca ``(polecenie uruchom, polecenie testy)`` z README.

    Pierwszy blok `````bash`` pod nagłówkiem "## The two commands"; z każdej linii odcinamy
    komentarz (`` # ...``). Pierwsza linia to polecenie uruchom, druga - polecenie testy.
    """
    text = readme.read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)
    assert len(section) == 2, "README nie ma sekcji '## The two commands'"
    body = section[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", body, re.S)
    assert match, "sekcja '## The two commands' nie ma bloku ```bash"
    lines = [re.split(r"\s+#", line, maxsplit=1)[0].strip() for line in match.group(1).splitlines()]
    lines = [line for line in lines if line]
    assert len(lines) == 2, f"blok poleceń powinien mieć dokładnie dwie linie: {lines}"
    return lines[0], lines[1]


def ci_commands(script: Path) -> list[str]:
    """Polecenia skryptu CI bez komentarzy, shebangu, ``set`` i przejścia do katalogu projektu."""
    commands = []
    for line in script.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("set ") or line == 'cd "$(dirname "$0")/.."':
            continue
        commands.append(line.removeprefix("exec ").strip())
    return commands


def test_ci_runs_readme_test_command():
    """``.ci/run`` (z katalogu projektu) woła dokładnie polecenie "testy" z README i nic więcej."""
    _run, test_command = readme_commands(PROJECT_ROOT / "README.md")
    script = PROJECT_ROOT / ".ci" / "run"
    assert 'cd "$(dirname "$0")/.."' in script.read_text(encoding="utf-8"), (
        ".ci/run musi działać z katalogu projektu"
    )
    assert ci_commands(script) == [test_command]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


SENSORS_QUERY = """
{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name
    sensors { name sensorState { status } } } } } }
"""


def sensors_by_name(port: int) -> dict[str, str]:
    """``{nazwa sensora: status}`` ze wszystkich repozytoriów serwera (GraphQL UI)."""
    try:
        data = graphql(port, SENSORS_QUERY)["data"]["repositoriesOrError"]
    except (OSError, KeyError, TypeError, ValueError):
        return {}
    return {s["name"]: s["sensorState"]["status"] for repo in data.get("nodes", []) for s in repo["sensors"]}


def mysql(database: str | None = None):
    return pymysql.connect(
        **MYSQL_SERVER,
        database=database,
        autocommit=True,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )


def isolated_env(db_name: str, port: int, home: Path, logs: Path) -> dict[str, str]:
    """Środowisko procesu: bez śladów venv-u tego projektu, z nadpisaniami izolującymi klon."""
    own_venv = str(PROJECT_ROOT / ".venv")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "ENV_FILE")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(own_venv)
    )
    env.update(
        {
            "DB_LOCAL_HOST": MYSQL_SERVER["host"],
            "DB_LOCAL_PORT": str(MYSQL_SERVER["port"]),
            "DB_LOCAL_USER": MYSQL_SERVER["user"],
            "DB_LOCAL_PASSWORD": MYSQL_SERVER["password"],
            "DB_LOCAL_NAME": db_name,
            "DAGSTER_HOST": "127.0.0.1",
            "DAGSTER_PORT": str(port),
            "DAGSTER_HOME": str(home),
            "LOG_DIR": str(logs),
            "SENSOR_INTERVAL_S": "5",
        }
    )
    return env


@pytest.fixture
def clone(tmp_path):
    """Klon zatwierdzonego HEAD projektu w katalogu tymczasowym."""
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(PROJECT_ROOT), str(target)], check=True)
    return target


@pytest.fixture
def fresh_db_name():
    """Nazwa świeżej lokalnej bazy; baza (utworzona przez ``--init-db``) jest usuwana po teście."""
    name = f"ailexia_new_{uuid.uuid4().hex[:10]}"
    yield name
    conn = mysql()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


@skip_locally
@pytest.mark.slow
@pytest.mark.timeout(UI_TIMEOUT_S + SENSOR_TIMEOUT_S + TASK_TIMEOUT_S + 120)
def test_readme_run_command_on_fresh_clone(clone, fresh_db_name, tmp_path):
    run_command, _test_command = readme_commands(clone / "README.md")
    port = free_port()
    home, log_path = tmp_path / "dagster_home", tmp_path / "run.log"
    env = isolated_env(fresh_db_name, port, home, tmp_path / "logs")
    started = time.monotonic()
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            ["bash", "-c", run_command],
            cwd=clone,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def fail(message: str):
        tail = log_path.read_text(errors="replace")[-5000:]
        pytest.fail(f"{message} (polecenie: {run_command!r})\n--- wyjście ---\n{tail}")

    def wait_for(predicate, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if process.poll() is not None:
                fail(f"polecenie zakończyło się kodem {process.returncode}, zanim: {what}")
            time.sleep(1)
        fail(f"nie doczekano się w {timeout_s} s: {what}")

    try:
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/server_info")[0] == 200,
            UI_TIMEOUT_S,
            f"UI odpowiada na porcie {port}",
        )
        ui_s = time.monotonic() - started
        assert http_get(f"http://127.0.0.1:{port}/")[0] == 200
        assert (clone / ".venv" / "bin" / "dagster").exists(), "polecenie nie utworzyło .venv w klonie"

        # --init-db utworzył schemat w świeżej bazie (a nie w bazie z .env).
        conn = mysql(fresh_db_name)
        with conn.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            tables = {next(iter(row.values())) for row in cursor.fetchall()}
        assert SCHEMA_TABLES <= tables, f"brak tabel: {SCHEMA_TABLES - tables}"

        sensors = wait_for(
            lambda: (s := sensors_by_name(port)) and "task_sensor" in s and s,
            SENSOR_TIMEOUT_S,
            "task_sensor widoczny w UI",
        )
        assert sensors["task_sensor"] == "RUNNING", sensors
        sensor_s = time.monotonic() - started

        # Demon z polecenia "uruchom" podejmuje zadanie z bazy wskazanej środowiskiem.
        source = tmp_path / "source.sqlite"
        with sqlite3.connect(source) as src:
            src.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, body TEXT)")
            src.executemany(
                "INSERT INTO articles VALUES (?, ?)",
                [(i, f"Tekst {i}: zażółć gęślą jaźń.") for i in range(1, 51)],
            )
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, "
                "db_password, status) VALUES (1, 'newcomer', 'sqlite', '', 0, %s, '', '', 'active')",
                (str(source),),
            )
            id_connection = cursor.lastrowid
            cursor.execute(
                "INSERT INTO task (id_user, id_database_connection, table_name, column_name) "
                "VALUES (1, %s, 'articles', 'body')",
                (id_connection,),
            )
            id_task = cursor.lastrowid

        def task_done():
            with conn.cursor() as cursor:
                cursor.execute("SELECT status, records_new, error_log FROM task WHERE id_task=%s", (id_task,))
                row = cursor.fetchone()
            if row["status"] == "error":
                fail(f"zadanie zakończone błędem: {row['error_log']}")
            return row if row["status"] == "completed" else None

        row = wait_for(task_done, TASK_TIMEOUT_S, "zadanie completed przez task_sensor z polecenia uruchom")
        assert row["records_new"] == 50
        conn.close()
        print(
            f"\nnowicjusz: UI po {ui_s:.1f} s, task_sensor po {sensor_s:.1f} s, "
            f"zadanie completed po {time.monotonic() - started:.1f} s (od startu polecenia {run_command!r})",
            flush=True,
        )
    finally:
        stop_process_group(process)
