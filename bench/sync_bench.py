#!/usr/bin/env python
"""Benchmark synchronizacji: PostgreSQL (N wierszy polskich tekstów 50-600 znaków) -> MariaDB.

Mierzy w jednym uruchomieniu:
  (a) baseline - te same wiersze PG -> zwykła tabela MariaDB najszybszą prostą drogą
      (kursor serwerowy psycopg2 + plik TSV + LOAD DATA LOCAL INFILE),
  (b) pierwszą synchronizację ``sync.py --id_task N``,
  (c) resync po zmianie 1% wierszy, usunięciu 0.5% i wstawieniu 0.5%,
  (d) resync bez zmian,
oraz szczytowe RSS każdego procesu. Każda faza to osobny proces (czysty pomiar pamięci).

Użycie: python bench/sync_bench.py --rows 100000 [1000000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import psycopg2
import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.db_local import connect_local, tsv_escape  # noqa: E402
from lib.load_config import load_config  # noqa: E402
from lib.schema import init_db  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def run_measured(cmd: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """Uruchamia proces, mierzy czas ścienny i szczytowe RSS (próbkowanie psutil co 20 ms)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return elapsed, peak / 2**20, result


def baseline_phase(pg_db: str, my_db: str) -> None:
    """Faza (a) w osobnym procesie: kopia PG -> MariaDB najprostszą szybką drogą."""
    src = psycopg2.connect(dbname=pg_db, **PG)
    dst = pymysql.connect(database=my_db, local_infile=True, charset="utf8mb4", **MY)
    with dst.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS baseline")
        cur.execute("CREATE TABLE baseline (id BIGINT PRIMARY KEY, body TEXT) CHARACTER SET utf8mb4")
    cursor = src.cursor(name="bench")
    cursor.itersize = 20000
    cursor.execute("SELECT id, body FROM texts ORDER BY id")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            rows = cursor.fetchmany(50000)
            if not rows:
                break
            path = os.path.join(tmp, "chunk.tsv")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("".join(f"{k}\t{tsv_escape(t)}\n" for k, t in rows))
            with dst.cursor() as cur:
                cur.execute(
                    "LOAD DATA LOCAL INFILE %s INTO TABLE baseline CHARACTER SET utf8mb4 "
                    "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (id, body)",
                    (path,),
                )
            dst.commit()
    print(json.dumps({"seconds": time.perf_counter() - started}))


def setup(rows: int) -> tuple[str, str, dict]:
    """Tworzy bazę PG z danymi i lokalną bazę MariaDB ze schematem; zwraca nazwy i env."""
    tag = uuid.uuid4().hex[:8]
    pg_db, my_db = f"ailexia_bench_src_{tag}", f"ailexia_bench_{tag}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE \"{pg_db}\" ENCODING 'UTF8' TEMPLATE template0")
    admin.close()
    src = psycopg2.connect(dbname=pg_db, **PG)
    src.autocommit = True
    with src.cursor() as cur:
        cur.execute("CREATE TABLE texts (id BIGINT PRIMARY KEY, body TEXT)")
        cur.execute(
            "INSERT INTO texts SELECT g, substr(repeat(md5(g::text) || ' zażółć gęślą jaźń, źdźbło; ', 20), 1, "
            "50 + (g * 37) %% 551) FROM generate_series(1, %s) g",
            (rows,),
        )
        cur.execute("VACUUM ANALYZE texts")
    src.close()
    env = {
        **os.environ,
        "DB_LOCAL_NAME": my_db,
        "ENV_FILE": "/nonexistent",
        "LOG_LEVEL": "WARNING",
        "DAGSTER_HOME": tempfile.mkdtemp(prefix="ailexia_bench_dh_"),
        "LOG_DIR": tempfile.mkdtemp(prefix="ailexia_bench_log_"),
    }
    settings = load_config(environ=env)
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, db_password, status) "
        "VALUES (1, 'bench', 'pgsql', '127.0.0.1', 5432, %s, 'postgres', '', 'active')",
        (pg_db,),
    )
    db.execute(
        "INSERT INTO task (id_user, id_database_connection, table_name, column_name) VALUES (1, LAST_INSERT_ID(), 'texts', 'body')"
    )
    db.close()
    return pg_db, my_db, env


def teardown(pg_db: str, my_db: str, env: dict) -> None:
    """Usuwa bazy benchmarku i jego katalogi tymczasowe."""
    import shutil

    for key in ("DAGSTER_HOME", "LOG_DIR"):
        shutil.rmtree(env[key], ignore_errors=True)
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
            (pg_db,),
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{pg_db}"')
    admin.close()
    conn = pymysql.connect(autocommit=True, **MY)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{my_db}`")
    conn.close()


def engine_seconds(env: dict) -> float:
    """Czas pracy silnika ostatniego runu (suma run_log skanu i weryfikacji bez startu procesu)."""
    db = connect_local(load_config(environ=env), autocommit=True)
    try:
        rows = db.query("SELECT duration_ms FROM run_log ORDER BY id_run_log DESC LIMIT 2")
        return sum(int(r["duration_ms"]) for r in rows) / 1000
    finally:
        db.close()


def bench(rows: int) -> list[dict]:
    pg_db, my_db, env = setup(rows)
    results = []
    try:
        t, mib, out = run_measured([sys.executable, __file__, "--phase-baseline", pg_db, my_db], env)
        base_s = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
        results.append(
            {"phase": "(a) baseline PG->MariaDB", "seconds": base_s, "wall": t, "engine": base_s, "mib": mib}
        )
        sync_cmd = [sys.executable, "sync.py", "--id_task", "1"]
        t, mib, _ = run_measured(sync_cmd, env)
        results.append({"phase": "(b) initial sync.py", "wall": t, "engine": engine_seconds(env), "mib": mib})
        src = psycopg2.connect(dbname=pg_db, **PG)
        src.autocommit = True
        with src.cursor() as cur:
            cur.execute("UPDATE texts SET body = body || ' (zmiana)' WHERE id % 100 = 7")
            cur.execute("DELETE FROM texts WHERE id % 200 = 3")
            cur.execute(
                "INSERT INTO texts SELECT g, 'nowy wiersz ' || g FROM generate_series(%s, %s) g",
                (rows + 1, rows + rows // 200),
            )
        src.close()
        t, mib, _ = run_measured(sync_cmd, env)
        results.append(
            {"phase": "(c) resync 1%/0.5%/0.5%", "wall": t, "engine": engine_seconds(env), "mib": mib}
        )
        t, mib, _ = run_measured(sync_cmd, env)
        results.append(
            {"phase": "(d) resync, no change", "wall": t, "engine": engine_seconds(env), "mib": mib}
        )
        db = connect_local(load_config(environ=env), autocommit=True)
        task = db.query_one(
            "SELECT status, records_new, records_updated, records_deleted FROM task WHERE id_task=1"
        )
        db.close()
        assert task["status"] == "completed", task
    finally:
        teardown(pg_db, my_db, env)
    for r in results:
        r["rows"] = rows
        r["rows_per_s"] = rows / r["engine"]
        r["ratio"] = r["rows_per_s"] / (rows / base_s)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100000])
    parser.add_argument("--phase-baseline", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase_baseline:
        baseline_phase(*args.phase_baseline)
        return
    all_results = []
    for rows in args.rows:
        all_results.extend(bench(rows))
    print(f"{'phase':28} {'N':>9} {'engine s':>9} {'wall s':>8} {'rows/s':>9} {'x base':>7} {'peak MiB':>9}")
    for r in all_results:
        print(
            f"{r['phase']:28} {r['rows']:>9} {r['engine']:>9.2f} {r.get('wall', r['engine']):>8.2f} "
            f"{r['rows_per_s']:>9.0f} {r['ratio']:>7.2f} {r['mib']:>9.1f}"
        )
    print()
    for rows in args.rows:
        by = {r["phase"][:3]: r for r in all_results if r["rows"] == rows}
        initial_ratio = by["(b)"]["ratio"]
        nochange = by["(d)"]["engine"] / by["(b)"]["engine"]
        print(
            f"N={rows}: initial sync = {initial_ratio:.2f}x baseline rows/s (target >= 0.5: "
            f"{'met' if initial_ratio >= 0.5 else 'NOT met'}); no-change resync = {nochange:.2f}x initial time "
            f"(target <= 0.35: {'met' if nochange <= 0.35 else 'NOT met'})"
        )
    if len(args.rows) > 1:
        lo, hi = min(args.rows), max(args.rows)
        peak = {
            n: max(r["mib"] for r in all_results if r["rows"] == n and not r["phase"].startswith("(a)"))
            for n in (lo, hi)
        }
        ratio = peak[hi] / peak[lo]
        print(
            f"peak RSS of sync.py at N={hi} / N={lo} = {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
