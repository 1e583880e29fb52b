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
import io
import json
import os
import random
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
import psycopg2
import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.byte_proxy import bytes_read, start_proxy, stop_proxy  # noqa: E402

PG_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}
MY_SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
TABLE = "texts"
MIB = 2**20

# Słownik generatora: polskie słowa z diakrytykami, trochę znaków 4-bajtowych i rzadka nowa linia.
WORDS = (
    "zażółć gęślą jaźń źdźbło łódź żółw chrząszcz brzmi w trzcinie szczebrzeszyn się ślimak "
    "pójdź kińże tę chmurność w głąb flaszy książka miasto ulica rzeka dzień noc człowiek "
    "urząd wniosek decyzja termin opłata faktura zamówienie dostawa reklamacja klient umowa "
    "aneks pełnomocnictwo oświadczenie zaświadczenie wyjaśnienie odpowiedź pytanie prośba "
    "że bo ale oraz lub więc jednak także również już jeszcze bardzo tylko który która które "
    "był była było będzie można trzeba należy proszę dziękuję uprzejmie serdecznie pozdrawiam "
    "Kraków Gdańsk Wrocław Łódź Poznań Szczecin Białystok Rzeszów Zielona Góra Częstochowa "
    "napewno wogóle niewiem poprostu conajmniej narazie wziąść poszłem "
    "😀 🙂 👍 𝄞 𠜎 ✓ № § – „ ” … ,"
).split()
WORDS += ["\n"] * 2


def make_corpus(rng: random.Random, chars: int = 1 << 20) -> str:
    """Buduje ciąg słów ze słownika, z którego tnie się teksty wierszy."""
    parts, size = [], 0
    while size < chars:
        word = rng.choice(WORDS)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts).replace(" \n ", "\n")


def generate_rows(rng: random.Random, corpus: str, first_id: int, count: int) -> list[tuple[int, str]]:
    """Zwraca ``count`` wierszy ``(id, tekst)`` o długości 50-600 znaków, kolejne id od ``first_id``."""
    rows = []
    span = len(corpus) - 601
    for row_id in range(first_id, first_id + count):
        length = rng.randint(50, 600)
        start = rng.randrange(span)
        text = corpus[start : start + length]
        # Bez spacji na brzegach: to nie jest test przypadków brzegowych porównań z PAD SPACE.
        if text[0].isspace():
            text = "A" + text[1:]
        if text[-1].isspace():
            text = text[:-1] + "."
        rows.append((row_id, text))
    return rows


def copy_into_pg(conn, rows: list[tuple[int, str]]) -> None:
    """Ładuje wiersze do tabeli źródłowej przez ``COPY ... FROM STDIN`` (format tekstowy)."""
    buffer = io.StringIO()
    for row_id, text in rows:
        buffer.write(f"{row_id}\t{text.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}\n")
    buffer.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {TABLE} (id, body) FROM STDIN", buffer)


def pg_connect(dbname: str):
    """Połączenie bezpośrednio z PostgreSQL (z pominięciem proxy; nie wlicza się do bajtów)."""
    conn = psycopg2.connect(dbname=dbname, **PG_SERVER)
    conn.autocommit = True
    return conn


def my_connect(database: str | None = None):
    """Połączenie z MariaDB (autocommit, utf8mb4)."""
    return pymysql.connect(database=database, autocommit=True, charset="utf8mb4", **MY_SERVER)


def my_value(database: str | None, sql: str, params: tuple = ()) -> Any:
    """Pierwsza kolumna pierwszego wiersza zapytania do MariaDB."""
    conn = my_connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def create_source(pg_db: str, rows: int, seed: int) -> dict[str, Any]:
    """Zakłada bazę źródłową z tabelą ``texts`` i N wierszami; zwraca generator do dalszych wstawień."""
    admin = pg_connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE \"{pg_db}\" ENCODING 'UTF8' TEMPLATE template0")
    admin.close()
    rng = random.Random(seed)
    corpus = make_corpus(rng)
    conn = pg_connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, body TEXT)")
    for first in range(1, rows + 1, 100_000):
        copy_into_pg(conn, generate_rows(rng, corpus, first, min(100_000, rows + 1 - first)))
    with conn.cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {TABLE}")
    conn.close()
    return {"rng": rng, "corpus": corpus}


def source_fingerprint(pg_db: str) -> dict[str, int]:
    """Liczba wierszy, bajty tekstów (UTF-8) i suma MD5 par ``id:tekst`` tabeli źródłowej."""
    conn = pg_connect(pg_db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM(octet_length(body)), 0), "
                f"COALESCE(SUM(('x' || substr(md5(id::text || ':' || body), 1, 12))::bit(48)::bigint), 0) "
                f"FROM {TABLE}"
            )
            count, text_bytes, digest = cur.fetchone()
    finally:
        conn.close()
    return {"rows": int(count), "text_bytes": int(text_bytes), "digest": int(digest)}


def mariadb_fingerprint(database: str, sql_from: str, key: str, text: str) -> dict[str, int]:
    """To samo co ``source_fingerprint`` dla tabeli w MariaDB (``sql_from`` z ewentualnym WHERE)."""
    conn = my_connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM(OCTET_LENGTH({text})), 0), "
                f"COALESCE(SUM(CAST(CONV(SUBSTR(MD5(CONCAT({key}, ':', {text})), 1, 12), 16, 10) AS UNSIGNED)), 0) "
                f"FROM {sql_from}"
            )
            count, text_bytes, digest = cur.fetchone()
    finally:
        conn.close()
    return {"rows": int(count), "text_bytes": int(text_bytes), "digest": int(digest)}


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
    """``raw copy``: ``psql \\copy`` do pliku + ``LOAD DATA LOCAL INFILE`` do ``plain``, mierzone razem."""
    peers_db = ctx["peers_db"]
    conn = my_connect(peers_db)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS plain")
        cur.execute("CREATE TABLE plain (id BIGINT PRIMARY KEY, body TEXT) CHARACTER SET utf8mb4")
    conn.close()
    path = os.path.join(ctx["workdir"], "raw_copy.tsv")
    client = shutil.which("mariadb") or shutil.which("mysql")
    script = (
        f"psql -q -X -h 127.0.0.1 -p {ctx['pg_port']} -U postgres -d {ctx['pg_db']} "
        f"-c \"\\copy {TABLE} TO '{path}'\" && "
        f"{client} -h 127.0.0.1 -P 3306 -u root --local-infile=1 --default-character-set=utf8mb4 {peers_db} "
        f"-e \"LOAD DATA LOCAL INFILE '{path}' INTO TABLE plain CHARACTER SET utf8mb4\""
    )
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
    pg_url = f"postgresql+psycopg2://postgres@127.0.0.1:{ctx['pg_port']}/{ctx['pg_db']}"
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
        f"postgresql://postgres@127.0.0.1:{ctx['pg_port']}/{ctx['pg_db']}?sslmode=disable",
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
    conn = my_connect(engine["local_db"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO database_connection (id_user, alias, db_type, host, port, db_name, db_user, "
                "db_password, status) VALUES (1, 'bench', 'pgsql', '127.0.0.1', %s, %s, 'postgres', '', 'active')",
                (ctx["pg_port"], ctx["pg_db"]),
            )
            cur.execute(
                "INSERT INTO task (id_user, id_database_connection, table_name, column_name) "
                "VALUES (1, %s, %s, 'body')",
                (cur.lastrowid, TABLE),
            )
            return int(cur.lastrowid)
    finally:
        conn.close()


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
    check_same(
        "sync.py",
        ctx["expected"],
        mariadb_fingerprint(engine["local_db"], items, "remote_id", "text_original"),
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


def change_source(ctx: dict[str, Any], source: dict[str, Any], rows: int) -> dict[str, int]:
    """Zmienia 1 % wierszy, usuwa 0,5 % i wstawia 0,5 % nowych; zwraca oczekiwane liczniki resyncu."""
    conn = pg_connect(ctx["pg_db"])
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {TABLE} SET body = body || ' — poprawka 🙂' WHERE id % 100 = 7")
        updated = cur.rowcount
        cur.execute(f"DELETE FROM {TABLE} WHERE id % 200 = 3")
        deleted = cur.rowcount
    inserted = rows // 200
    copy_into_pg(conn, generate_rows(source["rng"], source["corpus"], rows + 1, inserted))
    with conn.cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {TABLE}")
    conn.close()
    return {"records_new": inserted, "records_updated": updated, "records_deleted": deleted}


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


def bench_one(rows: int, args: argparse.Namespace, reasons: dict[str, str | None]) -> dict[str, Any]:
    """Wszystkie przebiegi dla jednego N na świeżej tabeli źródłowej.

    Przy kilku silnikach (``--project A B``) fazy idą na przemian: pierwsza synchronizacja każdego,
    potem jedna zmiana źródła, resync 1 % każdego, resync bez zmian każdego - ten sam stan źródła
    i podobne obciążenie maszyny dla wszystkich.
    """
    tag = uuid.uuid4().hex[:8]
    workdir = tempfile.mkdtemp(prefix="ailexia_sync_bench_")
    engines = make_engines(args.project or [str(ROOT)], tag, workdir)
    ctx: dict[str, Any] = {
        "pg_db": f"ailexia_bench_src_{tag}",
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

    def sync_phase(path: str, label: str, expected: dict[str, int]) -> None:
        for engine in engines:
            name = f"{label} [{engine['name']}]" if suffix else label
            log(f"N={rows}: {name}")
            result = run_sync(ctx, engine, expected)
            runs.append({"path": path, "label": name, "engine": engine["name"], **result})

    try:
        log(f"N={rows}: generating source table {ctx['pg_db']}.{TABLE}")
        source = create_source(ctx["pg_db"], rows, args.seed)
        ctx["expected"] = source_fingerprint(ctx["pg_db"])
        my_value(None, f"CREATE DATABASE `{ctx['peers_db']}` CHARACTER SET utf8mb4")
        if not args.no_proxy:
            ctx["proxy"] = start_proxy(PG_SERVER["host"], PG_SERVER["port"])
        ctx["pg_port"] = ctx["proxy"]["port"] if ctx["proxy"] else PG_SERVER["port"]

        for name, label, function in (
            ("raw", "raw copy (psql \\copy + LOAD DATA)", run_raw),
            ("dlt", "dlt (pyarrow -> sqlalchemy)", run_dlt),
            ("sling", "Sling full-refresh", run_sling),
        ):
            if reasons[name]:
                skipped[name] = reasons[name]
                log(f"N={rows}: {label}: {reasons[name]}")
                continue
            log(f"N={rows}: {label}")
            runs.append({"path": name, "label": label, **function(ctx)})

        for engine in engines:
            engine["id_task"] = register_task(ctx, engine)
        sync_phase(
            "initial", "sync.py initial", {"records_new": rows, "records_updated": 0, "records_deleted": 0}
        )
        counters = change_source(ctx, source, rows)
        ctx["expected"] = source_fingerprint(ctx["pg_db"])
        log(f"N={rows}: source changed: 1 % changed / 0.5 % deleted / 0.5 % inserted {counters}")
        sync_phase("resync_1pct", "sync.py resync 1 %", counters)
        sync_phase(
            "resync_none",
            "sync.py resync no change",
            {"records_new": 0, "records_updated": 0, "records_deleted": 0},
        )
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
        log(
            f"kept: PostgreSQL {ctx['pg_db']}, MariaDB {', '.join(ctx['local_dbs'])}, {ctx['peers_db']}, "
            f"dir {ctx['workdir']}"
        )
        return
    shutil.rmtree(ctx["workdir"], ignore_errors=True)
    admin = pg_connect("postgres")
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
            (ctx["pg_db"],),
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{ctx["pg_db"]}"')
    admin.close()
    for name in (*ctx["local_dbs"], ctx["peers_db"], f"{ctx['peers_db']}_dlt"):
        my_value(None, f"DROP DATABASE IF EXISTS `{name}`")


def evaluate_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oblicza cele z issue 13 dla każdego N i silnika oraz cel pamięci między najmniejszym a największym N."""
    targets = []
    engines = [e["name"] for e in results[0]["engines"]]
    for engine in engines:
        prefix = f"[{engine}] " if len(engines) > 1 else ""
        for result in results:
            by = {run["path"]: run for run in result["runs"] if run.get("engine") in (None, engine)}
            initial, none, one = by["initial"], by["resync_none"], by["resync_1pct"]
            raw, dlt = by.get("raw"), by.get("dlt")
            checks = [
                (
                    "initial sync rows/s >= 0.5x raw copy",
                    raw and raw["seconds"] / initial["seconds"],
                    ">=",
                    0.5,
                ),
                ("initial sync rows/s >= 1.5x dlt", dlt and dlt["seconds"] / initial["seconds"], ">=", 1.5),
                (
                    "no-change resync time <= 0.5x raw copy",
                    raw and none["seconds"] / raw["seconds"],
                    "<=",
                    0.5,
                ),
                ("no-change resync time <= 0.35x initial", none["seconds"] / initial["seconds"], "<=", 0.35),
                ("1 % resync time <= 0.5x initial (aim)", one["seconds"] / initial["seconds"], "<=", 0.5),
            ]
            for name, value, op, limit in checks:
                met = None if not value else (value >= limit if op == ">=" else value <= limit)
                targets.append(
                    {
                        "rows": result["rows"],
                        "engine": engine,
                        "target": prefix + name,
                        "value": value or None,
                        "met": met,
                    }
                )
        if len(results) > 1:
            ordered = sorted(results, key=lambda r: r["rows"])

            def sync_peak(result: dict[str, Any], engine: str = engine) -> float:
                return max(r["peak_mib"] for r in result["runs"] if r.get("engine") == engine)

            low, high = sync_peak(ordered[0]), sync_peak(ordered[-1])
            targets.append(
                {
                    "rows": ordered[-1]["rows"],
                    "engine": engine,
                    "target": f"{prefix}sync.py peak RSS at N={ordered[-1]['rows']} <= 1.2x N={ordered[0]['rows']}",
                    "value": high / low,
                    "met": high / low <= 1.2,
                    "detail": f"{high:.1f} MiB / {low:.1f} MiB",
                }
            )
    return targets


def _ratio(by: dict[str, dict[str, Any]], peer: str, run: dict[str, Any]) -> str:
    """Czas ścieżki ``peer`` podzielony przez czas przebiegu ``run`` (albo ``-``, gdy jej nie mierzono)."""
    return f"{by[peer]['seconds'] / run['seconds']:.2f}" if peer in by else "-"


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
        f"{'path':<36}{'N':>9}{'s':>9}{'rows/s':>10}{'x raw':>7}{'x dlt':>7}{'x Sling':>8}"
        f"{'src MiB':>9}{'peak MiB':>9}{'load':>6}{'engine s':>9}"
    )
    for result in report["results"]:
        by = {run["path"]: run for run in result["runs"] if "engine" not in run}
        lines.append(f"N={result['rows']}: source texts {result['source_text_mib']:.1f} MiB (UTF-8)")
        lines.append(header)
        lines.append("-" * len(header))
        for run in result["runs"]:
            src = "-" if run["source_bytes"] is None else f"{run['source_bytes'] / MIB:.1f}"
            engine = "" if run.get("engine_s") is None else f"{run['engine_s']:.2f}"
            lines.append(
                f"{run['label']:<36}{run['rows']:>9}{run['seconds']:>9.2f}{run['rows_per_s']:>10.0f}"
                f"{_ratio(by, 'raw', run):>7}{_ratio(by, 'dlt', run):>7}{_ratio(by, 'sling', run):>8}{src:>9}{run['peak_mib']:>9.1f}"
                f"{run['load1']:>6.2f}{engine:>9}"
            )
        for name, reason in result["skipped"].items():
            lines.append(f"  ({name} not measured: {reason})")
        lines.append("")
    lines.append(
        "x raw / x dlt / x Sling = that path's time / this row's time (= ratio of rows/s at the same N)"
    )
    lines.append(
        "s = whole process (the targets use it); engine s = the sync run's own time from run_log, "
        "without process start-up (for information)"
    )
    lines.append("targets (binding at the largest N):")
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
    if any(n < 400 for n in args.rows):
        parser.error("--rows: co najmniej 400 wierszy (1 % zmian musi coś zmienić)")

    report: dict[str, Any] = {"cores": os.cpu_count(), "uptime_start": uptime()}
    reasons = peers_available(args.skip_peers)
    report["local_infile"] = ensure_local_infile()
    report["bytes_note"] = (
        "not measured (--no-proxy)"
        if args.no_proxy
        else "server->client bytes through a splice() byte-counting TCP proxy in front of PostgreSQL, "
        "used by every measured run (same path for all, so the timings stay comparable)"
    )
    report["results"] = [bench_one(rows, args, reasons) for rows in args.rows]
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
