#!/usr/bin/env python
"""Benchmark ticku sensorów ``task_sensor`` i ``ai_after_sync_sensor`` (cel: tick <= 1 s na 2 rdzeniach).

Dla każdego rozmiaru N: świeża baza MariaDB z N zadaniami o mieszanych statusach (większość
``completed``), N partycjami w tymczasowej instancji Dagstera (SQLite) i żywymi runami dla
zadań ``queued``. Mierzone ``evaluate_tick`` (tak jak w demonie, bez zapisu runów):

* ``steady``   - tick bez pracy (typowy stan: nic nowego),
* ``claim``    - tick, w którym przybyło 100 zadań ``new`` (rezerwacja + 100 RunRequest),
* ``ai_first`` - tick sensora AI od pustego kursora (ogląda zakończone zadania z modelem; zleca
  najwyżej 100 runów), ``ai_drain_max`` - najdłuższy z kolejnych ticków schodzących zaległości,
* ``ai_steady_med`` - tick sensora AI z kursorem, gdy nic nowego się nie zakończyło.

Użycie: python bench/sensor_bench.py [--sizes 1000 10000 50000] [--ticks 5]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dagster import DagsterRunStatus, build_sensor_context, instance_for_test  # noqa: E402

from ailexia_dagster.constants import PARTITION_NAME, SYNC_JOB, TAG_ID_TASK  # noqa: E402
from tests.helpers import record_run  # noqa: E402

MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

# Udział statusów (reszta: completed).
MIX = [("archived", 0.03), ("error", 0.02), ("queued", 0.02), ("paused", 0.01), ("cancelled", 0.01)]


def setup_db(name: str, size: int) -> None:
    """Tworzy bazę ze schematem i ``size`` zadaniami (jeden INSERT wielowierszowy na porcję)."""
    from lib.db_local import connect_local
    from lib.load_config import load_config
    from lib.schema import init_db

    settings = load_config()
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    try:
        db.execute(
            "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, status) "
            "VALUES (1, 'bench', 'sqlite', '', 0, '/tmp/none.sqlite', '', 'active')"
        )
        db.execute("INSERT INTO ai_model (name, model) VALUES ('bench', 'bench-model')")
        rows = []
        bounds, start = [], 0.0
        for status, share in MIX:
            bounds.append((start, start + share, status))
            start += share
        for i in range(1, size + 1):
            fraction = (i * 7919 % size) / size
            status = next((s for low, high, s in bounds if low <= fraction < high), "completed")
            pause = "manual" if status == "paused" else None
            model = 1 if i % 10 == 0 else None
            rows.append((i, status, pause, model))
        db.executemany(
            "INSERT INTO task (id_task, id_user, id_database_connection, table_name, column_name, status, pause_reason, "
            "id_ai_model, finished_at, queued_at, updated_at) "
            "VALUES (%s, 1, 1, 'articles', 'body', %s, %s, %s, NOW() - INTERVAL 1 HOUR, NOW() - INTERVAL 1 HOUR, "
            "NOW() - INTERVAL 1 HOUR)",
            rows,
        )
        # Zadania z modelem: jedna pozycja, co druga oczekuje na AI.
        items = [
            (i, 1, f"tekst {i}", "pending" if i % 20 == 0 else "processed") for i in range(10, size + 1, 10)
        ]
        db.executemany(
            "INSERT INTO task_item (id_task, remote_id, text_original, status) VALUES (%s, %s, %s, %s)", items
        )
    finally:
        db.close()


def add_new_tasks(name: str, size: int, count: int) -> None:
    """Dopisuje ``count`` zadań ``new`` (rezerwowanych w mierzonym ticku)."""
    conn = pymysql.connect(database=name, autocommit=True, **MY)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO task (id_task, id_user, id_database_connection, table_name, column_name) "
            "VALUES (%s, 1, 1, 'articles', 'body')",
            [(size + i,) for i in range(1, count + 1)],
        )
    conn.close()


def timed_tick(sensor_def, instance, defs, cursor: str | None = None):
    from ailexia_dagster.resources import AilexiaResource

    context = build_sensor_context(
        instance=instance,
        definitions=defs,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        resources={"ailexia": AilexiaResource()},
    )
    started = time.perf_counter()
    data = sensor_def.evaluate_tick(context)
    return time.perf_counter() - started, data


def bench(size: int, ticks: int) -> dict:
    name = f"ailexia_bench_{uuid.uuid4().hex[:8]}"
    os.environ["DB_LOCAL_NAME"] = name
    os.environ["SENSOR_STALE_QUEUED_S"] = "600"
    from ailexia_dagster.definitions import defs
    from ailexia_dagster.sensors import ai_after_sync_sensor, task_sensor

    try:
        t0 = time.perf_counter()
        setup_db(name, size)
        with instance_for_test() as instance:
            instance.add_dynamic_partitions(PARTITION_NAME, [str(i) for i in range(1, size + 1)])
            # Zadania queued (zarezerwowane godzinę temu) mają żywe runy w kolejce: sensor musi to sprawdzić.
            conn = pymysql.connect(database=name, autocommit=True, **MY)
            with conn.cursor() as cursor:
                cursor.execute("SELECT id_task FROM task WHERE status='queued'")
                queued = [r[0] for r in cursor.fetchall()]
            conn.close()
            for id_task in queued:
                record_run(
                    instance,
                    job_name=SYNC_JOB,
                    status=DagsterRunStatus.NOT_STARTED,
                    tags={TAG_ID_TASK: str(id_task), "dagster/partition": str(id_task)},
                )
            setup_s = time.perf_counter() - t0

            steady = []
            for _ in range(ticks):
                elapsed, data = timed_tick(task_sensor, instance, defs)
                assert not data.run_requests, "stan ustalony nie powinien zlecać runów"
                steady.append(elapsed)
            add_new_tasks(name, size, 100)
            claim_s, data = timed_tick(task_sensor, instance, defs)
            assert len(data.run_requests) == 100, len(data.run_requests)
            ai_s, ai_data = timed_tick(ai_after_sync_sensor, instance, defs)
            ai_requests, cursor, drain = len(ai_data.run_requests), ai_data.cursor, []
            # Zaległe zlecenia AI (po 100 na tick) schodzą w kolejnych tickach; potem stan ustalony.
            while True:
                elapsed, more = timed_tick(ai_after_sync_sensor, instance, defs, cursor)
                cursor = more.cursor
                if not more.run_requests:
                    break
                ai_requests += len(more.run_requests)
                drain.append(elapsed)
            ai_steady = [timed_tick(ai_after_sync_sensor, instance, defs, cursor)[0] for _ in range(ticks)]
            return {
                "tasks": size,
                "queued_live": len(queued),
                "setup_s": setup_s,
                "steady_med": statistics.median(steady),
                "steady_max": max(steady),
                "claim100": claim_s,
                "ai_first": ai_s,
                "ai_requests": ai_requests,
                "ai_drain_max": max(drain, default=0.0),
                "ai_steady_med": statistics.median(ai_steady),
            }
    finally:
        conn = pymysql.connect(**MY, autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LOG_DIR", os.path.join(tmp, "logs"))
        os.environ["ENV_FILE"] = os.path.join(tmp, "none.env")
        for key, value in MY.items():
            os.environ[f"DB_LOCAL_{key.upper()}"] = str(value)
        results = [bench(size, args.ticks) for size in args.sizes]
    print(f"cores: {os.cpu_count()}")
    header = (
        "tasks",
        "queued_live",
        "setup_s",
        "steady_med",
        "steady_max",
        "claim100",
        "ai_first",
        "ai_requests",
        "ai_drain_max",
        "ai_steady_med",
    )
    print(" | ".join(f"{h:>13}" for h in header))
    for row in results:
        print(
            " | ".join(f"{row[h]:>13.3f}" if isinstance(row[h], float) else f"{row[h]:>13}" for h in header)
        )


if __name__ == "__main__":
    main()
