"""Benchmark silnika AI: przepustowość ``run_ai`` względem ideału przy stałym opóźnieniu modelu.

Serwer zgodny z OpenAI (``tests/fake_openai.py``) działa w osobnym procesie ze stałym
opóźnieniem 200 ms; baza MariaDB jest tworzona na czas pomiaru i usuwana. Ideał to
``AI_CONCURRENCY / opóźnienie`` pozycji na sekundę; cel: co najmniej 0,9 ideału.
Drugi scenariusz: 30% zdublowanych tekstów - liczba zapytań musi równać się liczbie różnych tekstów.

Użycie: ``.venv/bin/python bench/ai_bench.py [--items 2000] [--latency 0.2]``
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openai.types.chat import ChatCompletion

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from lib import ai_client, ai_worker, prompts  # noqa: E402
from lib.db_local import connect_local  # noqa: E402
from lib.db_utils import compute_hash  # noqa: E402
from lib.load_config import load_config  # noqa: E402
from lib.schema import init_db  # noqa: E402


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    """Uruchamia serwer testowy w osobnym procesie i zwraca (proces, base_url)."""
    code = f"from tests.fake_openai import serve_forever_main; serve_forever_main({latency})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
    )
    base_url = proc.stdout.readline().strip()
    return proc, base_url


def server_stats(base_url: str) -> dict:
    """Czyta liczniki serwera testowego (zapytania łącznie i różne teksty)."""
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/_stats") as response:
        return json.loads(response.read())


def make_task(db, base_url: str, texts: list[str]) -> int:
    """Tworzy model, zadanie i pozycje (wielowierszowy INSERT)."""
    db.execute(
        "INSERT INTO ai_model (name, model, base_url, price_input_per_mtok, price_output_per_mtok) "
        "VALUES (%s, 'fake-model', %s, 0.15, 0.6)",
        (f"bench-{uuid.uuid4().hex[:8]}", base_url),
    )
    id_model = db.last_insert_id
    db.execute(
        "INSERT INTO task (id_user, id_database_connection, id_ai_model, table_name, column_name) "
        "VALUES (1, 1, %s, 'bench', 'body')",
        (id_model,),
    )
    id_task = db.last_insert_id
    rows = [(id_task, n + 1, text, compute_hash(text), "pending") for n, text in enumerate(texts)]
    db.executemany(
        "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, status) VALUES (%s, %s, %s, %s, %s)",
        rows,
    )
    return int(id_task)


def run_case(settings: dict, db, base_url: str, texts: list[str], concurrency: int, latency: float) -> dict:
    """Jeden pomiar: świeże zadanie, ``run_ai``, liczniki serwera przed i po."""
    id_task = make_task(db, base_url, texts)
    before = server_stats(base_url)["total"]
    cfg = dict(settings, AI_CONCURRENCY=concurrency)
    started = time.perf_counter()
    stats = ai_worker.run_ai(cfg, id_task)
    elapsed = time.perf_counter() - started
    sent = server_stats(base_url)["total"] - before
    distinct = len(set(texts))
    done = db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )
    rate = distinct / elapsed  # zapytania do modelu na sekundę (duplikaty nie czekają na model)
    ideal = concurrency / latency
    return {
        "concurrency": concurrency,
        "items": len(texts),
        "distinct": distinct,
        "processed": done,
        "requests": sent,
        "stats_requests": stats["requests_sent"],
        "seconds": elapsed,
        "items_per_s": len(texts) / elapsed,
        "ideal": ideal,
        "ratio": rate / ideal,
        "overhead_ms": (elapsed * concurrency / distinct - latency) * 1000,
    }


def run_sdk_baseline(base_url: str, items: int, concurrency: int, latency: float) -> dict:
    """Punkt odniesienia w tym samym runie: samo SDK ``openai`` w ``concurrency`` wątkach, bez bazy.

    Te same wiadomości i ten sam ``client.post`` co silnik; pokazuje, ile z luki do ideału to koszt
    samego klienta HTTP i serwera testowego na tej maszynie, a ile dokłada silnik.
    """
    client = ai_client.make_client(base_url, "not-needed", 10.0)
    body = {"response_format": {"type": "json_object"}, "model": "fake-model"}

    def one(n: int) -> None:
        text = f"[sdk] Tekst numer {n}: to jest bląd, wogóle napewno do poprawy."
        messages = prompts.build_messages(text, "correct", None, None, None)
        response = client.post(
            "/chat/completions", body={**body, "messages": messages}, cast_to=ChatCompletion
        )
        prompts.parse_answer(response.choices[0].message.content)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(items)))
    elapsed = time.perf_counter() - started
    client.close()
    ideal = concurrency / latency
    return {
        "concurrency": concurrency,
        "items": items,
        "distinct": items,
        "processed": items,
        "requests": items,
        "seconds": elapsed,
        "items_per_s": items / elapsed,
        "ideal": ideal,
        "ratio": items / elapsed / ideal,
        "overhead_ms": (elapsed * concurrency / items - latency) * 1000,
    }


def main() -> int:
    """Uruchamia pomiary i drukuje tabelę; kod wyjścia 1, gdy cel nie jest osiągnięty."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()

    name = f"ailexia_bench_{uuid.uuid4().hex[:8]}"
    os.environ["DB_LOCAL_NAME"] = name
    settings = load_config(
        environ=dict(os.environ, ENV_FILE=str(PROJECT_ROOT / "no.env"), DB_LOCAL_NAME=name)
    )
    settings.update(AI_CLAIM_BATCH=20, AI_MAX_RETRIES=2, AI_TIMEOUT_S=10.0, LOG_LEVEL="WARNING")
    init_db(settings)
    proc, base_url = start_fake(args.latency)
    db = connect_local(settings, autocommit=True)
    rows = []
    try:
        unique = [f"Tekst numer {n}: to jest bląd, wogóle napewno do poprawy." for n in range(args.items)]
        for concurrency in (8, 32):
            rows.append(
                (
                    "unikalne",
                    run_case(
                        settings,
                        db,
                        base_url,
                        [f"[c{concurrency}] {t}" for t in unique],
                        concurrency,
                        args.latency,
                    ),
                )
            )
        rows.append(("samo SDK (baza)", run_sdk_baseline(base_url, args.items, 32, args.latency)))
        distinct_count = int(args.items * 0.7)
        dup_texts = [f"[dup] {unique[n % distinct_count]}" for n in range(args.items)]
        rows.append(("30% duplikatów", run_case(settings, db, base_url, dup_texts, 32, args.latency)))
    finally:
        db.close()
        proc.terminate()
        proc.wait()
        admin = connect_local(settings, with_database=False, autocommit=True)
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()

    print(
        f"\nrun_ai vs serwer zgodny z OpenAI, opóźnienie {args.latency * 1000:.0f} ms, {args.items} pozycji\n"
    )
    header = f"{'scenariusz':<16}{'conc':>5}{'pozycje':>8}{'różne':>7}{'zapyt.':>7}{'czas s':>8}{'poz/s':>8}{'ideał':>7}{'ratio':>7}{'narzut ms':>10}"
    print(header)
    print("-" * len(header))
    ok = True
    for label, r in rows:
        print(
            f"{label:<16}{r['concurrency']:>5}{r['items']:>8}{r['distinct']:>7}{r['requests']:>7}{r['seconds']:>8.2f}"
            f"{r['items_per_s']:>8.1f}{r['ideal']:>7.0f}{r['ratio']:>7.2f}{r['overhead_ms']:>10.1f}"
        )
        ok &= r["processed"] == r["items"] and r["requests"] == r["distinct"]
        if label == "unikalne":
            ok &= r["ratio"] >= 0.9
    print(
        "\nratio = (różne teksty / czas) / (conc / opóźnienie); cel: ratio >= 0,90 dla 'unikalne' (conc 8 i 32),"
        "\nzapytania == różne teksty dla '30% duplikatów'; 'samo SDK' to punkt odniesienia bez silnika i bazy"
    )
    print("wynik:", "OK" if ok else "CEL NIEOSIĄGNIĘTY")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
