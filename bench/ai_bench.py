"""Benchmark silnika AI: przepustowość ``run_ai`` względem ideału i tabela kosztu na stałym korpusie.

Serwer zgodny z OpenAI (``tests/fake_openai.py``) działa w osobnym procesie ze stałym
opóźnieniem 200 ms; baza MariaDB jest tworzona na czas pomiaru i usuwana. Ideał to
``AI_CONCURRENCY / opóźnienie`` zapytań na sekundę; cel: co najmniej 0,9 ideału (liczone
w zapytaniach, także dla paczek). Scenariusz z 30% zdublowanych tekstów: liczba zapytań musi
równać się liczbie różnych tekstów.

Tabela kosztu (issue 14): stały korpus - 2 000 krótkich tekstów (20-200 znaków, po polsku, część
zdublowana) i 200 długich (2 000-5 000 znaków) - przetworzony jeden tekst na zapytanie i w
paczkach; tokeny wejścia/wyjścia na pozycję (z ``task_item``, których suma = rachunek serwera)
i koszt 1 000 pozycji po cenach gpt-4o-mini ($0,15 / $0,60 za Mtok; batch połowa). ``usage``
serwera testowego liczy całe zapytanie (znaki / 4), więc paczka pokazuje prawdziwą oszczędność
na prompcie systemowym. Wiersz trybu batch dokłada ``batch_cost_rows`` (hak dla Batch API).

Użycie: ``.venv/bin/python bench/ai_bench.py [--items 2000] [--latency 0.2] [--cost-scale 1.0]``
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from lib.ai import client as ai_client  # noqa: E402
from lib.ai import prompts  # noqa: E402
from lib.ai import run as ai_worker  # noqa: E402
from lib.db_local import connect_local  # noqa: E402
from lib.db_utils import compute_hash  # noqa: E402
from lib.load_config import Settings, load_config  # noqa: E402
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


def run_case(
    settings: Settings,
    db,
    base_url: str,
    texts: list[str],
    concurrency: int,
    latency: float,
    pack_items: int = 1,
) -> dict:
    """Jeden pomiar: świeże zadanie, ``run_ai``, liczniki serwera przed i po."""
    id_task = make_task(db, base_url, texts)
    before = server_stats(base_url)["total"]
    cfg = settings.updated(AI_CONCURRENCY=concurrency, AI_PACK_ITEMS=pack_items)
    started = time.perf_counter()
    stats = ai_worker.run_ai(cfg, id_task)
    elapsed = time.perf_counter() - started
    sent = server_stats(base_url)["total"] - before
    distinct = len(set(texts))
    done = db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )
    rate = sent / elapsed  # zapytania do modelu na sekundę (duplikaty nie czekają na model)
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
        "overhead_ms": (elapsed * concurrency / max(sent, 1) - latency) * 1000,
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
        response = client.post("/chat/completions", body={**body, "messages": messages}, cast_to=object)
        prompts.parse_answer(response["choices"][0]["message"]["content"])

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


# --- tabela kosztu ---------------------------------------------------------------------------

# Ceny gpt-4o-mini (USD za milion tokenów); Batch API: połowa.
PRICE_INPUT = 0.15
PRICE_OUTPUT = 0.60
BATCH_FACTOR = 0.5
SHORT_MAX_CHARS = 200

_WORDS = (
    "krzesło stół lampa szafka dębowa sosnowa biały czarny zestaw ogrodowy dla dzieci produkt opis "
    "wysyłka gratis promocja nowy model kolor rozmiar materiał bawełna poduszka dywan półka regał "
    "łóżko materac kanapa narożnik fotel komoda lustro wieszak kosz pojemnik kubek talerz garnek "
    "patelnia nóż widelec łyżka szklanka czajnik odkurzacz żelazko pralka lodówka zmywarka piekarnik "
    "jakość trwały lekki wygodny elegancki praktyczny nowoczesny klasyczny ręcznie wykonany polski"
).split()
_TYPOS = ("bląd", "wogóle", "napewno")


def _sentence(rng: random.Random, target: int) -> str:
    """Zdanie po polsku o długości około ``target`` znaków (czasem z błędem, placeholderem, znacznikiem)."""
    words: list[str] = []
    while len(" ".join(words)) < target:
        roll = rng.random()
        if roll < 0.06:
            words.append(rng.choice(_TYPOS))
        elif roll < 0.08:
            words.append("{name}")
        elif roll < 0.10:
            words.append(f"<b>{rng.choice(_WORDS)}</b>")
        else:
            words.append(rng.choice(_WORDS))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def build_corpus(scale: float = 1.0, seed: int = 14) -> list[str]:
    """Stały korpus tabeli kosztu: 2 000 krótkich tekstów (20-200 znaków, ~10% duplikatów) i 200
    długich (2 000-5 000 znaków), wymieszane (ziarno stałe, więc każdy przebieg ten sam).

    Args:
        scale: Ułamek korpusu (test dymny: mały przebieg).
        seed: Ziarno losowania.

    Returns:
        Teksty w kolejności pozycji zadania.
    """
    rng = random.Random(seed)
    shorts: list[str] = []
    for _ in range(max(10, int(2000 * scale))):
        if shorts and rng.random() < 0.10:
            shorts.append(rng.choice(shorts))
            continue
        text = _sentence(rng, rng.randint(19, SHORT_MAX_CHARS - 2))
        shorts.append(text[: SHORT_MAX_CHARS - 1].rstrip() + "." if len(text) > SHORT_MAX_CHARS else text)
    longs: list[str] = []
    for _ in range(max(2, int(200 * scale))):
        target = rng.randint(2000, 5000)
        parts: list[str] = []
        while len(" ".join(parts)) < target - 120:
            parts.append(_sentence(rng, rng.randint(40, 110)))
        longs.append("\n".join(parts) if rng.random() < 0.3 else " ".join(parts))
    texts = shorts + longs
    rng.shuffle(texts)
    return texts


def cost_of(tokens_in: float, tokens_out: float, factor: float = 1.0) -> float:
    """Koszt w USD po cenach gpt-4o-mini (``factor`` 0,5 = Batch API)."""
    return (tokens_in * PRICE_INPUT + tokens_out * PRICE_OUTPUT) / 1_000_000 * factor


def cost_rows_for_task(db, id_task: int, label: str, requests: int, factor: float = 1.0) -> list[dict]:
    """Wiersze tabeli kosztu zadania (krótkie i długie osobno) z tokenów zapisanych w ``task_item``.

    Suma tokenów pozycji równa się rachunkowi serwera (podział paczki co do tokena), więc to są
    tokeny opłacone. Własne tokeny tekstu = znaki / 4 (ta sama miara co ``usage`` serwera testowego).
    """
    rows = db.query(
        "SELECT CHAR_LENGTH(text_original) <= %s AS short, COUNT(*) AS items, "
        "COUNT(DISTINCT original_hash) AS distinct_texts, SUM(tokens_input) AS tin, SUM(tokens_output) AS tout, "
        "SUM(CHAR_LENGTH(text_original) DIV 4) AS own, SUM(status='processed') AS done "
        "FROM task_item WHERE id_task=%s GROUP BY short ORDER BY short DESC",
        (SHORT_MAX_CHARS, id_task),
    )
    own_distinct = {
        int(r["short"]): int(r["own"])
        for r in db.query(
            "SELECT short, SUM(own) AS own FROM (SELECT MAX(CHAR_LENGTH(text_original)) <= %s AS short, "
            "MAX(CHAR_LENGTH(text_original) DIV 4) AS own FROM task_item WHERE id_task=%s GROUP BY original_hash) t "
            "GROUP BY short",
            (SHORT_MAX_CHARS, id_task),
        )
    }
    out = []
    for r in rows:
        items, distinct = int(r["items"]), int(r["distinct_texts"])
        tin, tout, own = int(r["tin"] or 0), int(r["tout"] or 0), int(r["own"] or 0)
        out.append(
            {
                "mode": label,
                "part": "krótkie" if r["short"] else "długie",
                "items": items,
                "distinct": distinct,
                "done": int(r["done"] or 0),
                "requests": requests,
                "in_per_item": tin / items,
                "out_per_item": tout / items,
                "own_per_item": own / items,
                "in_per_distinct": tin / distinct,
                "own_per_distinct": own_distinct.get(int(r["short"]), 0) / distinct,
                "usd_per_1000": cost_of(tin, tout, factor) / items * 1000,
            }
        )
    return out


def run_cost_mode(
    settings: Settings, db, base_url: str, texts: list[str], label: str, pack_items: int
) -> list[dict]:
    """Przetwarza korpus jednym trybem (``AI_PACK_ITEMS``) i zwraca jego wiersze tabeli kosztu."""
    id_task = make_task(db, base_url, texts)
    before = server_stats(base_url)
    ai_worker.run_ai(settings.updated(AI_CONCURRENCY=32, AI_PACK_ITEMS=pack_items), id_task)
    after = server_stats(base_url)
    billed_in = after["prompt_tokens"] - before["prompt_tokens"]
    stored_in = db.query_value("SELECT SUM(tokens_input) FROM task_item WHERE id_task=%s", (id_task,))
    rows = cost_rows_for_task(db, id_task, label, after["total"] - before["total"])
    for row in rows:
        row["billed_equals_stored"] = int(stored_in or 0) == billed_in
    return rows


def batch_cost_rows(settings: Settings, db, base_url: str, texts: list[str]) -> list[dict]:
    """Wiersze trybu batch (OpenAI Batch API) tabeli kosztu w formacie ``cost_rows_for_task``.

    Pełna droga batch (``bench/ai_batch_cost.py``): plik JSONL, ``files.create``, ``batches.create``,
    odpytanie i odbiór wyników; jeden tekst na linię i paczki w liniach, koszt po cenach batch.
    """
    from bench import ai_batch_cost

    return ai_batch_cost.batch_cost_rows(settings, db, base_url, texts)


def print_cost_table(rows: list[dict]) -> bool:
    """Drukuje tabelę kosztu; zwraca ``True``, gdy cel paczek jest spełniony."""
    header = (
        f"{'tryb':<16}{'teksty':<9}{'pozycje':>8}{'różne':>7}{'zapyt.':>8}{'wej./poz.':>11}{'wyj./poz.':>11}"
        f"{'własne/poz.':>13}{'$/1000 poz.':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['mode']:<16}{r['part']:<9}{r['items']:>8}{r['distinct']:>7}{r['requests']:>8}"
            f"{r['in_per_item']:>11.1f}{r['out_per_item']:>11.1f}{r['own_per_item']:>13.1f}{r['usd_per_1000']:>13.4f}"
        )
    ok = True
    packed = [r for r in rows if r["mode"] == "paczki" and r["part"] == "krótkie"]
    for r in packed:
        limit = 2 * r["own_per_distinct"] + 15
        met = r["in_per_distinct"] <= limit
        ok &= met
        print(
            f"\ncel paczek: krótkie teksty opłacone {r['in_per_distinct']:.1f} tokenów wejścia na różny tekst "
            f"<= 2 x własne ({r['own_per_distinct']:.1f}) + 15 = {limit:.1f}: {'OK' if met else 'NIE'}"
        )
    single = {r["part"]: r for r in rows if r["mode"] == "1 na zapytanie"}
    for r in packed:
        base = single.get(r["part"])
        if base:
            print(
                f"paczki vs 1 na zapytanie (krótkie): wejście {r['in_per_item'] / base['in_per_item']:.2f}x, "
                f"koszt {r['usd_per_1000'] / base['usd_per_1000']:.2f}x"
            )
    ok &= all(r["done"] == r["items"] and r.get("billed_equals_stored", True) for r in rows)
    return ok


def main() -> int:
    """Uruchamia pomiary i drukuje tabele; kod wyjścia 1, gdy cel nie jest osiągnięty."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--pack-items", type=int, default=20, help="AI_PACK_ITEMS trybu z paczkami")
    parser.add_argument("--cost-scale", type=float, default=1.0, help="ułamek korpusu tabeli kosztu")
    parser.add_argument("--skip-throughput", action="store_true", help="tylko tabela kosztu")
    args = parser.parse_args()

    name = f"ailexia_bench_{uuid.uuid4().hex[:8]}"
    os.environ["DB_LOCAL_NAME"] = name
    settings = load_config(
        environ=dict(os.environ, ENV_FILE=str(PROJECT_ROOT / "no.env"), DB_LOCAL_NAME=name)
    )
    settings = settings.updated(AI_CLAIM_BATCH=20, AI_MAX_RETRIES=2, AI_TIMEOUT_S=10.0, LOG_LEVEL="WARNING")
    init_db(settings)
    proc, base_url = start_fake(args.latency)
    # Koszt nie zależy od opóźnienia: tabela kosztu idzie przez drugi, szybki serwer.
    cost_proc, cost_url = start_fake(0.01)
    db = connect_local(settings, autocommit=True)
    rows = []
    cost_rows: list[dict] = []
    try:
        unique = [f"Tekst numer {n}: to jest bląd, wogóle napewno do poprawy." for n in range(args.items)]
        if not args.skip_throughput:
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
            # Paczki: tyle pozycji, żeby zapytań było tyle co w 'unikalne' (ratio liczone w zapytaniach).
            packed = [
                f"[p{n // args.items}] {unique[n % args.items]}" for n in range(args.items * args.pack_items)
            ]
            rows.append(
                (
                    "paczki",
                    run_case(settings, db, base_url, packed, 32, args.latency, pack_items=args.pack_items),
                )
            )
        corpus = build_corpus(args.cost_scale)
        cost_rows += run_cost_mode(settings, db, cost_url, corpus, "1 na zapytanie", 1)
        cost_rows += run_cost_mode(settings, db, cost_url, corpus, "paczki", args.pack_items)
        cost_rows += batch_cost_rows(settings, db, cost_url, corpus)
    finally:
        db.close()
        for server in (proc, cost_proc):
            server.terminate()
            server.wait()
        admin = connect_local(settings, with_database=False, autocommit=True)
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()

    ok = True
    if rows:
        print(
            f"\nrun_ai vs serwer zgodny z OpenAI, opóźnienie {args.latency * 1000:.0f} ms, {args.items} pozycji\n"
        )
        header = f"{'scenariusz':<16}{'conc':>5}{'pozycje':>8}{'różne':>7}{'zapyt.':>7}{'czas s':>8}{'poz/s':>8}{'ideał':>7}{'ratio':>7}{'narzut ms':>10}"
        print(header)
        print("-" * len(header))
        for label, r in rows:
            print(
                f"{label:<16}{r['concurrency']:>5}{r['items']:>8}{r['distinct']:>7}{r['requests']:>7}{r['seconds']:>8.2f}"
                f"{r['items_per_s']:>8.1f}{r['ideal']:>7.0f}{r['ratio']:>7.2f}{r['overhead_ms']:>10.1f}"
            )
            ok &= r["processed"] == r["items"]
            if label in ("unikalne", "30% duplikatów"):
                ok &= r["requests"] == r["distinct"]
            if label in ("unikalne", "paczki"):
                ok &= r["ratio"] >= 0.9
        print(
            "\nratio = (zapytania / czas) / (conc / opóźnienie); cel: ratio >= 0,90 dla 'unikalne' (conc 8 i 32)"
            f"\ni 'paczki' ({args.pack_items} tekstów na zapytanie), zapytania == różne teksty dla '30% duplikatów';"
            "\n'samo SDK' to punkt odniesienia bez silnika i bazy"
        )
    print(
        f"\nkoszt na stałym korpusie ({len(corpus)} pozycji: krótkie 20-200 znaków, długie 2 000-5 000), "
        f"ceny gpt-4o-mini ${PRICE_INPUT} / ${PRICE_OUTPUT} za Mtok; tokeny opłacone = suma task_item\n"
    )
    ok &= print_cost_table(cost_rows)
    from bench import ai_batch_cost

    ok &= ai_batch_cost.report_batch_target(cost_rows)
    print("wynik:", "OK" if ok else "CEL NIEOSIĄGNIĘTY")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
