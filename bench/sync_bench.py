#!/usr/bin/env python
"""Benchmark synchronizacji: PostgreSQL (N wierszy tekstów 50-600 znaków) -> lokalna MariaDB.

Dla każdego N ze ``--rows`` benchmark zakłada świeżą bazę PostgreSQL z tabelą
``texts (id BIGINT PRIMARY KEY, body TEXT)``: polskie teksty z losowo wybranych słów (także znaki
4-bajtowe i czasem nowa linia), ziarno stałe (``--seed``), więc dane są co do bajtu powtarzalne,
a wiersze dla mniejszego N są początkiem danych dla większego. W jednym uruchomieniu mierzy:

* ``raw copy`` - miarę odniesienia: ``psql -c "\\copy texts TO plik"`` i
  ``mariadb --local-infile=1 -e "LOAD DATA LOCAL INFILE 'plik' INTO TABLE plain"``
  (``plain`` = ``id BIGINT PRIMARY KEY, body TEXT``, utf8mb4), oba procesy mierzone razem;
* ``dlt`` (gdy zainstalowany): ``sql_table(backend="pyarrow", chunk_size=50000)`` ->
  ``destination="sqlalchemy"`` (MariaDB przez PyMySQL), ``write_disposition="replace"``;
* ``Sling`` (gdy zainstalowany): binarka Go z pakietu PyPI ``sling-linux-amd64``,
  ``--mode full-refresh`` tej samej tabeli do MariaDB;
* pierwszą synchronizację ``python sync.py --id_task N`` (cały proces; połączenie i zadanie
  wpisane do zwykłych tabel ``database_connection`` i ``task``);
* resync po zmianie 1 % wierszy, usunięciu 0,5 % i wstawieniu 0,5 %;
* resync bez zmian.

Każdy przebieg to osobny proces: czas ścienny całego procesu, wiersze/s, stosunek do ``raw copy``
i do dlt/Sling, bajty przeczytane ze źródła i szczytowe RSS; dla ``sync.py`` dodatkowo (tylko
informacyjnie) czas pracy runu z ``run_log``, bez startu procesu i Dagstera. Bajty liczy proxy TCP
(``bench/byte_proxy.py``, ``os.splice`` bez kopiowania do Pythona), przez które wszystkie mierzone
przebiegi łączą się z PostgreSQL - widać więc, czy resync bez zmian czyta skróty, czy teksty.
Szczytowe RSS to największe ``VmHWM`` pojedynczego procesu w drzewie potomka, próbkowane co 50 ms
(dla ``raw copy`` większy z ``psql`` i ``mariadb``). Po każdym przebiegu benchmark sprawdza wynik
(liczba wierszy i suma MD5 par klucz-tekst równe źródłu; liczniki zadania dokładnie takie, jak
wynika ze zmian) - błąd kończy benchmark kodem 1. Nieosiągnięty cel nie jest błędem: jest
oznaczony w tabeli (``MET`` / ``NOT MET``). Wypisywane są też obciążenie (``uptime``) i liczba
rdzeni, bo inne procesy na maszynie zaburzają czasy; kolumna ``load`` to load average z chwili
startu danego przebiegu.

Cele (obowiązują przy największym N):

* pierwsza synchronizacja >= 0,5x wiersze/s ``raw copy`` i >= 1,5x wiersze/s dlt;
* resync bez zmian <= 0,5x czasu ``raw copy`` i <= 0,35x czasu pierwszej synchronizacji;
* szczytowe RSS ``sync.py`` przy największym N <= 1,2x szczytu przy najmniejszym N;
* resync 1 %: raportowany, cel orientacyjny <= 0,5x czasu pierwszej synchronizacji.

Serwer MariaDB musi mieć ``local_infile=ON`` (``raw copy`` i Sling ładują ``LOAD DATA LOCAL``);
benchmark to sprawdza i w razie potrzeby ustawia ``SET GLOBAL local_infile=ON`` (mówi o tym).
dlt i Sling pochodzą z dodatku ``bench`` (``.venv/bin/pip install -e '.[dev,bench]'``); gdy ich
nie ma, benchmark je pomija i pisze dlaczego. Nic nie potrzebuje internetu (telemetria dlt i Sling
wyłączona).

Użycie:
    .venv/bin/python bench/sync_bench.py --rows 100000 1000000

Opcje:
    --rows N [N ...]   rozmiary tabeli źródłowej (domyślnie 100000);
    --seed S           ziarno generatora tekstów (domyślnie 13);
    --skip-peers       bez dlt i Sling (``raw copy`` zostaje: to miara odniesienia);
    --no-proxy         połączenia do PostgreSQL bez proxy liczącego bajty (kolumna bajtów pusta;
                       do sprawdzenia, czy proxy nie zaburza czasów);
    --project [NAZWA=]DIR [...]
                       mierz silnik z innego katalogu projektu (np. drugi worktree) - jego
                       ``sync.py`` i jego ``.venv/bin/python``, gdy istnieje; kilka katalogów:
                       fazy ``sync.py`` na przemian na tej samej tabeli i przy tych samych
                       przebiegach odniesienia (porównanie gałęzi w jednym uruchomieniu);
                       dlt i Sling uruchamiane interpreterem benchmarku;
    --json [PLIK]      wynik także jako JSON: bez PLIKU zamiast tabeli na stdout, z PLIKIEM
                       tabela na stdout i JSON do pliku (postęp zawsze na stderr);
    --keep             nie usuwaj baz benchmarku (nazwy wypisane na stderr).
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import sync_sources  # noqa: E402
from bench.byte_proxy import bytes_read, start_proxy, stop_proxy  # noqa: E402
from bench.sync_sources import (  # noqa: E402, F401 (generate_rows, copy_into_pg, source_fingerprint: testy)
    MY_SERVER,
    PG_SERVER,
    TABLE,
    copy_into_pg,
    generate_rows,
    make_corpus,
    mariadb_fingerprint,
    my_connect,
    my_value,
    pg_connect,
    source_fingerprint,
)

MIB = 2**20


def check_same(label: str, expected: dict[str, int], got: dict[str, int]) -> None:
    """Przerywa benchmark, gdy kopia nie zgadza się ze źródłem co do wierszy lub treści."""
    if expected != got:
        raise SystemExit(f"sync_bench: {label}: wynik różni się od źródła: oczekiwano {expected}, jest {got}")


def _hwm_kib(pid: int) -> int:
    """``VmHWM`` procesu (szczyt RSS od jego ``exec``) w KiB; 0, gdy proces już nie istnieje."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _sample_peak(pid: int, stop: threading.Event, peak: list[int]) -> None:
    """Co 50 ms odczytuje ``VmHWM`` procesu i jego potomków; w ``peak[0]`` największa wartość."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            pids = [pid] + [child.pid for child in root.children(recursive=True)]
        except psutil.Error:
            pids = [pid]
        peak[0] = max([peak[0]] + [_hwm_kib(p) for p in pids])
        stop.wait(0.05)


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, proxy: dict | None) -> dict[str, Any]:
    """Uruchamia proces i zwraca czas ścienny, szczytowe RSS, bajty ze źródła i obciążenie.

    Szczytowe RSS to największe ``VmHWM`` pojedynczego procesu w drzewie potomka, próbkowane co
    50 ms (``VmHWM`` to znacznik najwyższego poziomu, więc próbka po szczycie go pokazuje).
    Nie ``ru_maxrss`` z ``wait4``: proces uruchomiony przez ``vfork`` + ``exec`` dziedziczy w nim
    szczyt rodzica (tu: benchmarku, który generował dane), co zawyżało wynik. Wyjście procesu idzie
    do plików tymczasowych, żeby czekanie w ``wait4`` nie zakleszczyło się na pełnym potoku.
    """
    load = os.getloadavg()[0]
    before = bytes_read(proxy)[0] if proxy else 0
    peak = [0]
    stop = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        sampler = threading.Thread(target=_sample_peak, args=(proc.pid, stop, peak), daemon=True)
        sampler.start()
        _, status, _ = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(
            f"sync_bench: {' '.join(cmd)} zakończone kodem {proc.returncode}:\n{stdout[-2000:]}\n{stderr[-3000:]}"
        )
    # Ostatnie bajty mogą być jeszcze w drodze przez proxy, gdy proces już się skończył.
    time.sleep(0.05)
    source_bytes = bytes_read(proxy)[0] - before if proxy else None
    return {
        "seconds": seconds,
        "peak_mib": peak[0] / 1024,
        "source_bytes": source_bytes,
        "load1": load,
        "stdout": stdout,
    }


def ensure_local_infile() -> str:
    """Sprawdza ``local_infile`` serwera MariaDB; włącza je, gdy wyłączone. Zwraca opis dla wyniku."""
    if int(my_value(None, "SELECT @@GLOBAL.local_infile")):
        return "MariaDB local_infile=ON (already set on the server)"
    conn = my_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL local_infile=ON")
    finally:
        conn.close()
    return "MariaDB local_infile was OFF: the bench ran SET GLOBAL local_infile=ON"


def find_sling() -> str | None:
    """Ścieżka binarki Sling z pakietu ``sling-linux-amd64`` albo ``None``."""
    if importlib.util.find_spec("sling_linux_amd64") is None:
        return None
    import sling_linux_amd64

    return sling_linux_amd64.SLING_BIN if os.path.isfile(sling_linux_amd64.SLING_BIN) else None


def peers_available(skip: bool) -> dict[str, str | None]:
    """Które ścieżki porównawcze da się uruchomić; wartość to powód pominięcia albo ``None``."""
    reasons: dict[str, str | None] = {}
    mysql_client = shutil.which("mariadb") or shutil.which("mysql")
    reasons["raw"] = None if shutil.which("psql") and mysql_client else "psql or mariadb client not on PATH"
    if skip:
        reasons["dlt"] = reasons["sling"] = "skipped (--skip-peers)"
        return reasons
    missing = [m for m in ("dlt", "pyarrow", "sqlalchemy") if importlib.util.find_spec(m) is None]
    reasons["dlt"] = (
        f"not installed ({', '.join(missing)}; pip install -e '.[dev,bench]')" if missing else None
    )
    reasons["sling"] = (
        None if find_sling() else "not installed (sling-linux-amd64; pip install -e '.[dev,bench]')"
    )
    return reasons


def run_raw(ctx: dict[str, Any]) -> dict[str, Any]:
    """``raw copy``: klient źródła do pliku TSV + ``LOAD DATA LOCAL INFILE`` do ``plain``, mierzone razem."""
    peers_db, src = ctx["peers_db"], ctx["src"]
    conn = my_connect(peers_db)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS plain")
        key = sync_sources.KINDS[src["kind"]]["plain_key"]
        cur.execute(f"CREATE TABLE plain (id {key} PRIMARY KEY, body TEXT) CHARACTER SET utf8mb4")
    conn.close()
    path = os.path.join(ctx["workdir"], "raw_copy.tsv")
    script = sync_sources.raw_copy_script(src, ctx["src_port"], path, peers_db)
    result = run_measured(["bash", "-c", script], ctx["env"], ROOT, ctx["proxy"])
    os.unlink(path)
    check_same("raw copy", ctx["expected"], mariadb_fingerprint(peers_db, "plain", "id", "body"))
    return result


DLT_CODE = """
import sys
import dlt
from dlt.sources.sql_database import sql_table

pg_url, my_url, dataset, workdir = sys.argv[1:5]
pipeline = dlt.pipeline(
    pipeline_name="sync_bench_dlt",
    destination=dlt.destinations.sqlalchemy(credentials=my_url),
    dataset_name=dataset,
    pipelines_dir=workdir,
)
table = sql_table(credentials=pg_url, table="texts", backend="pyarrow", chunk_size=50000)
info = pipeline.run(table, write_disposition="replace")
print(info)
"""


def run_dlt(ctx: dict[str, Any]) -> dict[str, Any]:
    """dlt 1.x: ``sql_table`` (pyarrow, 50 000 wierszy na porcję) -> sqlalchemy (MariaDB, PyMySQL)."""
    dataset = f"{ctx['peers_db']}_dlt"
    pg_url = f"postgresql+psycopg2://postgres@127.0.0.1:{ctx['src_port']}/{ctx['src']['db']}"
    my_url = f"mysql+pymysql://root@127.0.0.1:3306/{ctx['peers_db']}?charset=utf8mb4"
    workdir = os.path.join(ctx["workdir"], "dlt")
    env = dict(ctx["env"], RUNTIME__DLTHUB_TELEMETRY="false", DLT_DATA_DIR=workdir)
    cmd = [sys.executable, "-c", DLT_CODE, pg_url, my_url, dataset, workdir]
    result = run_measured(cmd, env, Path(ctx["workdir"]), ctx["proxy"])
    check_same("dlt", ctx["expected"], mariadb_fingerprint(dataset, TABLE, "id", "body"))
    if not ctx["keep"]:
        my_value(None, f"DROP DATABASE IF EXISTS `{dataset}`")
    return result


def run_sling(ctx: dict[str, Any]) -> dict[str, Any]:
    """Sling (binarka Go z PyPI): ``--mode full-refresh`` tabeli źródłowej do MariaDB."""
    home = os.path.join(ctx["workdir"], "sling")
    os.makedirs(home, exist_ok=True)
    env = dict(
        ctx["env"],
        SLING_HOME_DIR=home,
        SLING_DISABLE_TELEMETRY="true",
        SLING_LOADED_AT_COLUMN="false",
    )
    cmd = [
        find_sling(),
        "run",
        "--src-conn",
        f"postgresql://postgres@127.0.0.1:{ctx['src_port']}/{ctx['src']['db']}?sslmode=disable",
        "--src-stream",
        f"public.{TABLE}",
        "--tgt-conn",
        f"mysql://root@127.0.0.1:3306/{ctx['peers_db']}",
        "--tgt-object",
        f"{ctx['peers_db']}.texts_sling",
        "--mode",
        "full-refresh",
    ]
    result = run_measured(cmd, env, Path(home), ctx["proxy"])
    check_same("Sling", ctx["expected"], mariadb_fingerprint(ctx["peers_db"], "texts_sling", "id", "body"))
    if not ctx["keep"]:
        my_value(ctx["peers_db"], "DROP TABLE IF EXISTS texts_sling")
    return result


def register_task(ctx: dict[str, Any], engine: dict[str, Any]) -> int:
    """Zakłada schemat lokalnej bazy silnika (``sync.py --init-db``) i wpisuje połączenie oraz zadanie."""
    subprocess.run(
        [engine["python"], "sync.py", "--init-db"],
        cwd=engine["project"],
        env=engine["env"],
        check=True,
        capture_output=True,
    )
    db_type, host, port, db_name = sync_sources.connection_row(ctx["src"], ctx["src_port"])
    user = "root" if db_type == "mysql" else "postgres"
    conn = my_connect(engine["local_db"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, "
                "db_password, status) VALUES (1, 'bench', %s, %s, %s, %s, %s, '', 'active')",
                (db_type, host, port, db_name, user),
            )
            cur.execute(
                "INSERT INTO task (id_user, id_database_connection, table_name, column_name) "
                "VALUES (1, %s, %s, 'body')",
                (cur.lastrowid, TABLE),
            )
            return int(cur.lastrowid)
    finally:
        conn.close()


def has_cursor_mode(engine: dict[str, Any]) -> bool:
    """Czy schemat silnika ma tryb kursora (``task.cursor_column``)."""
    return bool(my_value(engine["local_db"], "SHOW COLUMNS FROM task LIKE 'cursor_column'"))


def set_cursor(engine: dict[str, Any], column: str | None) -> None:
    """Ustawia (albo zdejmuje) kolumnę kursora zadania silnika."""
    my_value(
        engine["local_db"], "UPDATE task SET cursor_column=%s WHERE id_task=%s", (column, engine["id_task"])
    )


def run_sync(
    ctx: dict[str, Any], engine: dict[str, Any], expected_counters: dict[str, int]
) -> dict[str, Any]:
    """Jeden proces ``sync.py --id_task N`` silnika; sprawdza pozycje i liczniki zadania po nim."""
    id_task = engine["id_task"]
    result = run_measured(
        [engine["python"], "sync.py", "--id_task", str(id_task)],
        engine["env"],
        engine["project"],
        ctx["proxy"],
    )
    conn = my_connect(engine["local_db"])
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(
                "SELECT status, records_new, records_updated, records_deleted FROM task WHERE id_task=%s",
                (id_task,),
            )
            task = cur.fetchone()
    finally:
        conn.close()
    counters = {k: int(task[k]) for k in expected_counters}
    if task["status"] != "completed" or counters != expected_counters:
        raise SystemExit(
            f"sync_bench: zadanie po sync.py: status {task['status']}, liczniki {counters}, "
            f"oczekiwano completed i {expected_counters}"
        )
    items = f"task_item WHERE id_task={int(id_task)} AND deleted_at IS NULL"
    key = sync_sources.local_key_sql(ctx["src"]["kind"])
    check_same(
        "sync.py", ctx["expected"], mariadb_fingerprint(engine["local_db"], items, key, "text_original")
    )
    result["counters"] = counters
    result["engine_s"] = engine_seconds(engine["local_db"], id_task)
    return result


def engine_seconds(local_db: str, id_task: int) -> float | None:
    """Czas pracy silnika w ostatnim runie zadania (suma ``run_log.duration_ms``), bez startu procesu.

    Tylko informacyjnie (cele liczą cały proces); ``None``, gdy schemat tego nie udostępnia.
    """
    try:
        total = my_value(
            local_db,
            "SELECT SUM(duration_ms) FROM run_log WHERE id_task=%s "
            "AND run_id=(SELECT run_id FROM task WHERE id_task=%s)",
            (id_task, id_task),
        )
    except pymysql.MySQLError:
        return None
    return None if total is None else int(total) / 1000


# Przebiegi resyncu po kolei: (ścieżka, etykieta, zmiana źródła przed nim jako funkcja N).
# Warunki na ``n`` się nie nakładają, więc liczniki każdego przebiegu są dokładnie znane.
RESYNCS = (
    ("resync_none", "no change", lambda rows: None),
    ("resync_10", "10 rows", lambda rows: {"updated": f"n % {rows // 10} = 5"}),
    ("resync_01pct", "0.1 %", lambda rows: {"updated": "n % 1000 = 11"}),
    (
        "resync_1pct",
        "1 % (+0.5 % del, +0.5 % new)",
        lambda rows: {"updated": "n % 100 = 7", "deleted": "n % 200 = 3", "inserted": rows // 200},
    ),
    (
        "resync_1pct_cursor",
        "1 % with a cursor",
        lambda rows: {"updated": "n % 100 = 13", "deleted": "n % 200 = 9", "inserted": rows // 200},
    ),
)
NO_CHANGE = {"records_new": 0, "records_updated": 0, "records_deleted": 0}


def log(message: str) -> None:
    """Postęp na stderr (stdout zostaje na tabelę albo JSON)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_engines(projects: list[str], tag: str, workdir: str) -> list[dict[str, Any]]:
    """Opis każdego mierzonego silnika: katalog, interpreter, własna lokalna baza i środowisko procesu.

    ``projects`` to katalogi, opcjonalnie z nazwą: ``NAZWA=KATALOG`` (inaczej nazwą jest gałąź gita).
    """
    engines = []
    for number, spec in enumerate(projects):
        label, _, directory = spec.rpartition("=")
        project = Path(directory).resolve()
        project_python = project / ".venv" / "bin" / "python"
        local_db = f"ailexia_bench_{tag}" + (f"_{number}" if number else "")
        home = os.path.join(workdir, f"engine{number}")
        env = {
            **os.environ,
            "DB_LOCAL_HOST": MY_SERVER["host"],
            "DB_LOCAL_PORT": str(MY_SERVER["port"]),
            "DB_LOCAL_USER": MY_SERVER["user"],
            "DB_LOCAL_PASSWORD": MY_SERVER["password"],
            "DB_LOCAL_NAME": local_db,
            "ENV_FILE": os.path.join(home, "no.env"),
            "LOG_LEVEL": "WARNING",
            "LOG_DIR": os.path.join(home, "logs"),
            "DAGSTER_HOME": os.path.join(home, "dagster_home"),
        }
        os.makedirs(env["DAGSTER_HOME"])
        name = label or engine_name(project)
        if any(e["name"] == name for e in engines):
            name = f"{name}#{number + 1}"
        engines.append(
            {
                "name": name,
                "project": project,
                "python": str(project_python) if project_python.exists() else sys.executable,
                "local_db": local_db,
                "env": env,
            }
        )
    return engines


def bench_one(
    rows: int, kind: str, args: argparse.Namespace, reasons: dict[str, str | None]
) -> dict[str, Any]:
    """Wszystkie przebiegi dla jednego N i rodzaju źródła na świeżej tabeli źródłowej.

    Przy kilku silnikach (``--project A B``) fazy idą na przemian: pierwsza synchronizacja każdego,
    potem jedna zmiana źródła i resync każdego - ten sam stan źródła i podobne obciążenie maszyny.
    """
    tag = uuid.uuid4().hex[:8]
    workdir = tempfile.mkdtemp(prefix="ailexia_sync_bench_")
    engines = make_engines(args.project or [str(ROOT)], tag, workdir)
    ctx: dict[str, Any] = {
        "src": None,
        "local_dbs": [engine["local_db"] for engine in engines],
        "peers_db": f"ailexia_bench_peers_{tag}",
        "workdir": workdir,
        "keep": args.keep,
        "proxy": None,
        "env": {**os.environ, "PGPASSWORD": ""},
    }
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    suffix = len(engines) > 1
    name_of = sync_sources.KINDS[kind]["label"]

    def sync_phase(path: str, label: str, expected: dict[str, int], only: list | None = None) -> None:
        for engine in only or engines:
            name = f"{label} [{engine['name']}]" if suffix else label
            log(f"{name_of} N={rows}: {name}")
            result = run_sync(ctx, engine, expected)
            runs.append({"path": path, "label": name, "engine": engine["name"], **result})

    try:
        log(f"{name_of} N={rows}: generating source table")
        ctx["src"] = sync_sources.create(kind, tag, workdir, rows, args.seed)
        ctx["expected"] = sync_sources.fingerprint(ctx["src"])
        my_value(None, f"CREATE DATABASE `{ctx['peers_db']}` CHARACTER SET utf8mb4")
        engine_kind = ctx["src"]["engine"]
        if not args.no_proxy and engine_kind != "sqlite":
            server = PG_SERVER if engine_kind == "pgsql" else MY_SERVER
            ctx["proxy"] = start_proxy(server["host"], server["port"])
        default_port = PG_SERVER["port"] if engine_kind == "pgsql" else MY_SERVER["port"]
        ctx["src_port"] = ctx["proxy"]["port"] if ctx["proxy"] else default_port

        for name, label, function in (
            ("raw", "raw copy (client dump + LOAD DATA)", run_raw),
            ("dlt", "dlt (pyarrow -> sqlalchemy)", run_dlt),
            ("sling", "Sling full-refresh", run_sling),
        ):
            reason = reasons[name] or (
                None if name == "raw" or kind == "pg_bigint" else "peers: pg_bigint only"
            )
            if reason:
                skipped[name] = reason
                continue
            log(f"{name_of} N={rows}: {label}")
            runs.append({"path": name, "label": label, **function(ctx)})

        for engine in engines:
            engine["id_task"] = register_task(ctx, engine)
        sync_phase("initial", "initial", {"records_new": rows, "records_updated": 0, "records_deleted": 0})
        for path, label, plan in RESYNCS:
            only = None
            if path == "resync_1pct_cursor":
                only = [engine for engine in engines if has_cursor_mode(engine)]
                if not only:
                    skipped[path] = "engine has no task.cursor_column"
                    continue
                for engine in only:
                    set_cursor(engine, "updated_at")
                # Run bez zmian zapamiętuje wartość kursora; mierzony jest dopiero następny.
                sync_phase("cursor_prime", "cursor prime (not a target)", NO_CHANGE, only)
            change = plan(rows)
            counters = NO_CHANGE if change is None else sync_sources.change(ctx["src"], **change)
            ctx["expected"] = sync_sources.fingerprint(ctx["src"])
            sync_phase(path, label, counters, only)
    finally:
        if ctx["proxy"]:
            stop_proxy(ctx["proxy"])
        teardown(ctx)
    for run in runs:
        run.pop("stdout", None)
        run["rows"] = rows
        run["rows_per_s"] = rows / run["seconds"]
    return {
        "rows": rows,
        "kind": kind,
        "kind_label": name_of,
        "source_text_mib": ctx["expected"]["text_bytes"] / MIB,
        "runs": runs,
        "skipped": skipped,
        "engines": [
            {"name": e["name"], "project": str(e["project"]), "commit": git_head(e["project"])}
            for e in engines
        ],
    }


def teardown(ctx: dict[str, Any]) -> None:
    """Usuwa bazy i katalog roboczy (albo, z ``--keep``, wypisuje ich nazwy)."""
    if ctx["keep"]:
        src = ctx["src"]["db"] if ctx["src"] else "-"
        log(
            f"kept: source {src}, MariaDB {', '.join(ctx['local_dbs'])}, {ctx['peers_db']}, dir {ctx['workdir']}"
        )
        return
    if ctx["src"]:
        sync_sources.drop(ctx["src"])
    shutil.rmtree(ctx["workdir"], ignore_errors=True)
    for name in (*ctx["local_dbs"], ctx["peers_db"], f"{ctx['peers_db']}_dlt"):
        my_value(None, f"DROP DATABASE IF EXISTS `{name}`")


# Cele issue 28 na rodzaj źródła: (nazwa, licznik, mianownik, relacja, próg); czas/czas przebiegów.
# ``raw/initial >= 0.5`` = wiersze/s pierwszej synchronizacji >= 0,5x ``raw copy``.
TARGETS: dict[str, list[tuple[str, str, str, str, float]]] = {
    "pg_bigint": [
        ("initial rows/s >= 0.5x raw copy", "raw", "initial", ">=", 0.5),
        ("initial rows/s >= 1.5x dlt", "dlt", "initial", ">=", 1.5),
        ("initial faster than Sling", "sling", "initial", ">", 1.0),
        ("no change <= 0.35x raw copy", "resync_none", "raw", "<=", 0.35),
        ("10 rows <= 1.1x no change", "resync_10", "resync_none", "<=", 1.1),
        ("0.1 % <= 0.15x initial", "resync_01pct", "initial", "<=", 0.15),
        ("1 % <= 0.3x initial", "resync_1pct", "initial", "<=", 0.3),
        ("1 % with a cursor <= 0.15x initial", "resync_1pct_cursor", "initial", "<=", 0.15),
    ],
    "pg_uuid": [
        ("no change <= 0.35x initial", "resync_none", "initial", "<=", 0.35),
        ("1 % <= 0.45x initial", "resync_1pct", "initial", "<=", 0.45),
    ],
    "mariadb_int": [
        ("no change <= 0.35x initial", "resync_none", "initial", "<=", 0.35),
        ("1 % <= 0.45x initial", "resync_1pct", "initial", "<=", 0.45),
    ],
    "sqlite": [("no change <= 0.5x initial", "resync_none", "initial", "<=", 0.5)],
}


def _met(value: float | None, op: str, limit: float) -> bool | None:
    if not value:
        return None
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit}[op]


def evaluate_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cele issue 28 dla każdego N, rodzaju źródła i silnika oraz cel pamięci między najmniejszym a największym N."""
    targets = []
    engines = [e["name"] for e in results[0]["engines"]]
    for engine in engines:
        prefix = f"[{engine}] " if len(engines) > 1 else ""
        for result in results:
            by = {run["path"]: run for run in result["runs"] if run.get("engine") in (None, engine)}
            for name, top, bottom, op, limit in TARGETS[result["kind"]]:
                value = by[top]["seconds"] / by[bottom]["seconds"] if top in by and bottom in by else None
                targets.append(
                    {
                        "rows": result["rows"],
                        "kind": result["kind"],
                        "engine": engine,
                        "target": f"{prefix}{result['kind']}: {name}",
                        "value": value,
                        "met": _met(value, op, limit),
                    }
                )
        sizes = sorted({r["rows"] for r in results})
        if len(sizes) > 1:

            def sync_peak(rows: int, engine: str = engine) -> float:
                return max(
                    run["peak_mib"]
                    for r in results
                    if r["rows"] == rows
                    for run in r["runs"]
                    if run.get("engine") == engine
                )

            low, high = sync_peak(sizes[0]), sync_peak(sizes[-1])
            targets.append(
                {
                    "rows": sizes[-1],
                    "kind": "all",
                    "engine": engine,
                    "target": f"{prefix}sync.py peak RSS at N={sizes[-1]} <= 1.2x N={sizes[0]}",
                    "value": high / low,
                    "met": high / low <= 1.2,
                    "detail": f"{high:.1f} MiB / {low:.1f} MiB",
                }
            )
    return targets


def _ratio(by: dict[str, dict[str, Any]], base: str, run: dict[str, Any]) -> str:
    """Czas przebiegu ``run`` podzielony przez czas ścieżki ``base`` (albo ``-``, gdy jej nie mierzono)."""
    return f"{run['seconds'] / by[base]['seconds']:.2f}" if base in by else "-"


def format_report(report: dict[str, Any]) -> str:
    """Tabela tekstowa wyników i celów."""
    lines = [
        *(f"engine: {e['name']} = {e['project']} @ {e['commit']}" for e in report["results"][0]["engines"]),
        f"machine: {report['cores']} cores; uptime at start: {report['uptime_start']}",
        f"                    uptime at end:   {report['uptime_end']}",
        report["local_infile"],
        f"source bytes: {report['bytes_note']}",
        "",
    ]
    header = (
        f"{'path':<36}{'N':>9}{'s':>8}{'x init':>7}{'x raw':>7}{'src MiB':>9}{'peak MiB':>9}"
        f"{'load':>6}{'engine s':>9}"
    )
    for result in report["results"]:
        by = {run["path"]: run for run in result["runs"] if run["path"] in ("raw", "initial")}
        lines.append(
            f"{result['kind_label']}, N={result['rows']}: source texts {result['source_text_mib']:.1f} MiB (UTF-8)"
        )
        lines.append(header)
        lines.append("-" * len(header))
        for run in result["runs"]:
            src = "-" if run["source_bytes"] is None else f"{run['source_bytes'] / MIB:.2f}"
            engine = "" if run.get("engine_s") is None else f"{run['engine_s']:.2f}"
            lines.append(
                f"{run['label']:<36}{run['rows']:>9}{run['seconds']:>8.2f}{_ratio(by, 'initial', run):>7}"
                f"{_ratio(by, 'raw', run):>7}{src:>9}{run['peak_mib']:>9.1f}{run['load1']:>6.2f}{engine:>9}"
            )
        for name, reason in result["skipped"].items():
            lines.append(f"  ({name} not measured: {reason})")
        lines.append("")
    lines.append(
        "x init / x raw = this row's time / the initial sync's (raw copy's) time at the same N and source"
    )
    lines.append(
        "s = whole process (the targets use it); engine s = the sync run's own time from run_log, "
        "without process start-up (for information)"
    )
    lines.append("targets (issue 28; binding at the largest N):")
    width = max(len(t["target"]) for t in report["targets"])
    for target in report["targets"]:
        mark = {True: "MET", False: "NOT MET", None: "n/a"}[target["met"]]
        value = "-" if target["value"] is None else f"{target['value']:.2f}x"
        detail = f" ({target['detail']})" if target.get("detail") else ""
        lines.append(f"  N={target['rows']:<9} {target['target']:<{width}} {value:>8}{detail}  {mark}")
    return "\n".join(lines)


def uptime() -> str:
    """Wynik ``uptime`` (obciążenie maszyny) albo load average, gdy polecenia brak."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    """Punkt wejścia: mierzy, drukuje tabelę (albo JSON); kod 1, gdy któryś wynik jest błędny."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=list(sync_sources.KINDS),
        default=list(sync_sources.KINDS),
        help="rodzaje źródeł",
    )
    parser.add_argument("--skip-peers", action="store_true", help="bez dlt i Sling")
    parser.add_argument("--no-proxy", action="store_true", help="bez proxy liczącego bajty źródła")
    parser.add_argument(
        "--project", nargs="+", help="katalogi projektu, których sync.py mierzyć (na przemian)"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PLIK", help="wynik jako JSON (na stdout albo do PLIKU)"
    )
    parser.add_argument("--keep", action="store_true", help="nie usuwaj baz benchmarku")
    args = parser.parse_args(argv)
    if any(n < 1000 for n in args.rows):
        parser.error("--rows: co najmniej 1000 wierszy (0,1 % zmian musi coś zmienić)")

    report: dict[str, Any] = {"cores": os.cpu_count(), "uptime_start": uptime()}
    reasons = peers_available(args.skip_peers)
    report["local_infile"] = ensure_local_infile()
    report["bytes_note"] = (
        "not measured (--no-proxy)"
        if args.no_proxy
        else "server->client bytes through a splice() byte-counting TCP proxy in front of the source server "
        "(PostgreSQL or MariaDB; SQLite is a file: not measured), used by every measured run"
    )
    report["results"] = [bench_one(rows, kind, args, reasons) for rows in args.rows for kind in args.kinds]
    report["uptime_end"] = uptime()
    report["targets"] = evaluate_targets(report["results"])
    if args.json == "-":
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(format_report(report))
    return 0


def engine_name(path: Path) -> str:
    """Krótka nazwa silnika: gałąź gita katalogu albo jego nazwa."""
    try:
        branch = _git(path, "rev-parse", "--abbrev-ref", "HEAD")
        if branch == "HEAD":  # odłączony HEAD (np. worktree --detach): gałąź, która zawiera commit
            branch = _git(path, "name-rev", "--name-only", "--exclude=tags/*", "HEAD")
        return branch or path.name
    except (OSError, subprocess.CalledProcessError):
        return path.name


def _git(path: Path, *args: str) -> str:
    """Wynik polecenia ``git -C path ...`` bez końcowych białych znaków."""
    return subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def git_head(path: Path) -> str:
    """Skrót i temat ostatniego commita katalogu projektu (do opisania, co zmierzono)."""
    try:
        return _git(path, "log", "-1", "--format=%h %s")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
