"""UI mówi prawdę: co widzi dagster-webserver (GraphQL, jak UI) po pauzie, wznowieniu i SIGKILL-u skryptu.

Prawdziwy ``dagster-webserver`` na instancji testu (SQLite w ``DAGSTER_HOME``) i prawdziwe
``sync.py`` w podprocesach. Sprawdzamy to, co czyta UI: statusy partycji assetów,
materializacje i obserwacje partycji, wykonania asset checków i listę runów z tagami.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, source_execute, stop_process_group

pytestmark = pytest.mark.slow

ROWS = 60000
# Pierwsza synchronizacja (COPY -> LOAD DATA) jest za szybka, by złapać ją w trakcie: każda partia
# czeka 50 ms w punkcie sync.fetch (lib/faults.py), więc 60 partii trwa >= 3 s.
SLOW_ENV = {
    "BATCH_SIZE": "200",
    "COMMIT_ROWS": "1000",
    "PROGRESS_EVERY_S": "1",
    "AILEXIA_DELAY": "sync.fetch:0.05",
}

QUERY = """
query Truth($partition: String!, $tag: String!) {
  assetNodes(assetKeys: [{path: ["remote_snapshot"]}, {path: ["task_item_hashes"]}]) {
    assetKey { path }
    assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions } }
    assetMaterializations(partitions: [$partition]) { runId partition }
    assetObservations(partitions: [$partition]) {
      runId
      metadataEntries { label ... on TextMetadataEntry { text } }
    }
  }
  check: assetCheckExecutions(assetKey: {path: ["task_item_hashes"]}, checkName: "matches_source", limit: 10) {
    runId
    status
  }
  runsOrError(filter: {tags: [{key: "ailexia/id_task", value: $tag}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(local_env, settings, tmp_path):
    """``dagster-webserver`` projektu na instancji testu; zwraca adres GraphQL."""
    from dagster import DagsterInstance

    DagsterInstance.get().get_runs(limit=1)  # magazyn SQLite założony przed startem procesów
    port = free_port()
    log_path = tmp_path / "webserver.log"
    binary = Path(sys.executable).with_name("dagster-webserver")
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [str(binary), "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path,
            env={**os.environ, **local_env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        stop_process_group(process)


def ui_state(url: str, id_task: int) -> dict:
    """Stan zadania tak, jak widzi go UI (jedno zapytanie GraphQL)."""
    payload = json.dumps({"query": QUERY, "variables": {"partition": str(id_task), "tag": str(id_task)}})
    request = urllib.request.Request(
        url, data=payload.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    data = body["data"]
    nodes = {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    runs = {
        run["runId"]: {"status": run["status"], "tags": {t["key"]: t["value"] for t in run["tags"]}}
        for run in data["runsOrError"]["results"]
    }
    return {"nodes": nodes, "checks": data["check"], "runs": runs}


def materialized(state: dict, asset: str) -> list[str]:
    return state["nodes"][asset]["assetPartitionStatuses"]["materializedPartitions"]


def sync_cmd(local_env: dict, id_task: int, *extra: str) -> list:
    return [sys.executable, "sync.py", "--id_task", str(id_task), *extra]


def script_env(local_env: dict) -> dict:
    return {**os.environ, **local_env, **SLOW_ENV}


def test_ui_shows_paused_killed_and_resumed_runs_truthfully(local_env, db, pg_source, webserver):
    source_execute(pg_source, "CREATE TABLE articles (id BIGINT PRIMARY KEY, body TEXT)")
    source_execute(
        pg_source,
        "INSERT INTO articles SELECT g, repeat('zdanie do korekty ', 25) || g FROM generate_series(1, %s) g",
        (ROWS,),
    )
    id_task = add_task(db, add_connection(db, pg_source))
    partition = str(id_task)

    # 1. Pauza na limicie czasu: brak nowej materializacji, obserwacja + tag wyniku, bez checków.
    paused = subprocess.run(
        sync_cmd(local_env, id_task, "--max-seconds", "1"),
        cwd=PROJECT_ROOT,
        env=script_env(local_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert paused.returncode == 0, paused.stderr
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "paused"
    # Linie postępu w logu runu (konsola Dagstera): liczby, procent, tempo; bez None.
    progress_lines = [line for line in paused.stderr.splitlines() if f"sync zadania {id_task}:" in line]
    assert progress_lines and "wierszy/s" in progress_lines[-1] and "%" in progress_lines[-1], paused.stderr
    assert "None" not in paused.stdout + paused.stderr

    state = ui_state(webserver, id_task)
    assert partition not in materialized(state, "remote_snapshot")
    assert partition not in materialized(state, "task_item_hashes")
    assert state["nodes"]["remote_snapshot"]["assetMaterializations"] == []
    (run_id,) = state["runs"]
    # Check zaplanowany w runie, który nie weryfikował: pominięty, nie zaliczony.
    assert [(c["runId"], c["status"]) for c in state["checks"]] == [(run_id, "SKIPPED")]
    assert state["runs"][run_id]["tags"]["ailexia/outcome"] == "paused (time_limit)"
    observations = state["nodes"]["remote_snapshot"]["assetObservations"]
    assert [o["runId"] for o in observations] == [run_id]
    outcome = {e["label"]: e.get("text") for e in observations[0]["metadataEntries"]}
    assert outcome["outcome"] == "paused (time_limit)"

    # 2. Run skryptu zabity SIGKILL-em: po następnym runie skryptu nie wisi jako STARTED.
    killed = subprocess.Popen(
        sync_cmd(local_env, id_task),
        cwd=PROJECT_ROOT,
        env=script_env(local_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    before = db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (id_task,))
    deadline = time.monotonic() + 120
    while db.query_value("SELECT records_fetched FROM task WHERE id_task=%s", (id_task,)) <= before:
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    state = ui_state(webserver, id_task)
    dead = [rid for rid, run in state["runs"].items() if run["status"] == "STARTED"]
    assert len(dead) == 1, state["runs"]  # tak wyglądało zgłoszenie: STARTED na zawsze
    assert partition not in materialized(state, "remote_snapshot")

    # 3. Wznowienie do końca: partycje zmaterializowane przez ten run, checki zaliczone w nim.
    resumed = subprocess.run(
        sync_cmd(local_env, id_task),
        cwd=PROJECT_ROOT,
        env=script_env(local_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    state = ui_state(webserver, id_task)
    assert state["runs"][dead[0]]["status"] == "FAILURE"
    (final_id,) = [rid for rid, run in state["runs"].items() if rid not in (run_id, dead[0])]
    assert state["runs"][final_id]["status"] == "SUCCESS"
    assert state["runs"][final_id]["tags"]["ailexia/outcome"] == "completed"
    assert partition in materialized(state, "remote_snapshot")
    assert partition in materialized(state, "task_item_hashes")
    for asset in ("remote_snapshot", "task_item_hashes"):
        assert [m["runId"] for m in state["nodes"][asset]["assetMaterializations"]] == [final_id]
    checks = {c["runId"]: c["status"] for c in state["checks"]}
    assert checks == {run_id: "SKIPPED", dead[0]: "EXECUTION_FAILED", final_id: "SUCCEEDED"}
