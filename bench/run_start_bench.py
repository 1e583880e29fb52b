#!/usr/bin/env python
"""Benchmark startu runu z kolejki: ile trwa run ``sync_job`` małego zadania poza samą pracą.

Uruchamia ``deploy/run_separate.sh`` (serwer kodu, demon, webserver; instancja SQLite jak
z ``dagster.yaml.example``) na świeżej bazie MariaDB i pliku SQLite (``--rows`` wierszy), potem
``--runs`` razy wstawia run ``sync_job`` przez webserver (jak ``sync.py --queue --wait``) i z dziennika
zdarzeń runu liczy:

* ``kolejka->start``  - od PIPELINE_ENQUEUED do PIPELINE_START (demon + proces runu),
* ``start->1. krok``  - od PIPELINE_START do pierwszego STEP_START (executor: procesy kroków),
* ``kroki``           - suma czasów kroków (STEP_START -> STEP_SUCCESS), czyli praca,
* ``run``             - od PIPELINE_STARTING do PIPELINE_SUCCESS,
* ``narzut``          - run minus kroki.

Mierzy kod w bieżącym katalogu (executor z ``ailexia_dagster/definitions.py``); porównanie dwóch
executorów = dwa uruchomienia na dwóch wersjach kodu.

Użycie: python bench/run_start_bench.py [--runs 5] [--rows 200]
"""

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    """Wolny port TCP na 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    """Czeka, aż webserver odpowie na /server_info."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"run_separate.sh zakończył się ({process.returncode})")
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("webserver nie odpowiedział")


def phases(instance, run_id: str) -> dict[str, float]:
    """Czasy faz runu z dziennika zdarzeń (sekundy)."""
    first: dict[str, float] = {}
    steps: dict[str, float] = {}
    work = 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        first.setdefault(kind, entry.timestamp)
        if kind == "STEP_START":
            steps[event.step_key] = entry.timestamp
        elif kind == "STEP_SUCCESS":
            work += entry.timestamp - steps[event.step_key]
    total = first["PIPELINE_SUCCESS"] - first["PIPELINE_STARTING"]
    return {
        "kolejka->start": first["PIPELINE_START"] - first["PIPELINE_ENQUEUED"],
        "start->1. krok": first["STEP_START"] - first["PIPELINE_START"],
        "kroki": work,
        "run": total,
        "narzut": total - work,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ailexia_runstart_"))
    db_name = f"ailexia_runstart_{uuid.uuid4().hex[:8]}"
    web_port, code_port = free_port(), free_port()
    env = {
        "DB_LOCAL_NAME": db_name,
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "LOG_DIR": str(tmp / "logs"),
        "ENV_FILE": str(tmp / "no.env"),
        "SENSOR_INTERVAL_S": "3600",
        "DAGSTER_PORT": str(web_port),
        "DAGSTER_CODE_PORT": str(code_port),
    }
    os.environ.update(env)
    from dagster import DagsterInstance

    from ailexia_dagster.constants import SYNC_JOB
    from ailexia_dagster.runner import get_instance, run_tags
    from ailexia_dagster.submit import submit_task_run, wait_for_run
    from lib.db_local import connect_local
    from lib.load_config import load_config
    from lib.schema import init_db

    settings = load_config()
    init_db(settings)
    source = tmp / "source.sqlite"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO articles VALUES (?, ?)",
        [(i, f"Tekst {i}: zażółć gęślą jaźń.") for i in range(1, args.rows + 1)],
    )
    conn.commit()
    conn.close()
    db = connect_local(settings, autocommit=True)
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, status) "
        "VALUES (1, 'bench', 'sqlite', '', 0, %s, '', 'active')",
        (str(source),),
    )
    id_connection = int(db.query_value("SELECT LAST_INSERT_ID()"))
    # Wstrzymane ręcznie: sensor go nie podejmie, runy idą tylko z benchmarku.
    db.execute(
        "INSERT INTO task (id_user, id_database_connection, table_name, column_name, status, pause_reason) "
        "VALUES (1, %s, 'articles', 'body', 'paused', 'manual')",
        (id_connection,),
    )
    id_task = int(db.query_value("SELECT LAST_INSERT_ID()"))
    instance = get_instance(settings)
    instance.get_runs(limit=1)  # magazyn SQLite założony przed startem procesów

    log = open(tmp / "separate.log", "w")  # noqa: SIM115 - żyje razem z procesem
    process = subprocess.Popen(
        ["bash", str(ROOT / "deploy" / "run_separate.sh")],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{web_port}"
    rows = []
    try:
        wait_http(url, process)
        for number in range(args.runs):
            tags = run_tags(id_task, id_connection, "sync")
            for attempt in range(60):  # lokacja kodu mogła jeszcze nie dojść do webservera
                try:
                    run_id = submit_task_run(instance, url, SYNC_JOB, id_task, tags)
                    break
                except Exception:
                    if attempt == 59:
                        raise
                    time.sleep(1)
            status = wait_for_run(url, run_id, poll_s=0.5)
            if status.value != "SUCCESS":
                raise SystemExit(f"run {run_id}: {status.value}")
            rows.append(phases(DagsterInstance.get(), run_id))
            print(
                f"run {number + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in rows[-1].items()), flush=True
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        db.execute(f"DROP DATABASE IF EXISTS `{db_name}`")
        db.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmediana z {len(rows)} runów sync_job ({args.rows} wierszy, SQLite -> MariaDB):")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(
            f"  {key:16s} {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})"
        )
    print(f"obciążenie: {os.getloadavg()}")


if __name__ == "__main__":
    main()
