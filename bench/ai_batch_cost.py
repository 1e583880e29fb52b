"""Tryb batch (OpenAI Batch API) w tabeli kosztu ``bench/ai_bench.py``: pełny przebieg na tym samym korpusie.

Zadanie w trybie batch (``task.ai_batch_mode=1``) przechodzi całą drogę produkcyjną przez SDK
``openai`` i serwer testowy: ``run_ai`` (plik JSONL, ``files.create``, ``batches.create``),
odpytanie (``poll_batches``: ``batches.retrieve``) i odbiór (``run_ai`` z ``id_ai_batch``: pliki
wyników). Tokeny na pozycję czytane są z ``task_item`` (ta sama miara co w innych wierszach),
koszt po cenach batch (połowa cen gpt-4o-mini).

Użycie samodzielne (tylko wiersze batch i 1 na zapytanie online, do porównania):
``.venv/bin/python bench/ai_batch_cost.py [--cost-scale 1.0]``
"""

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from lib.ai import run as ai_worker  # noqa: E402
from lib.ai.batch import ingest as ai_batch_ingest  # noqa: E402
from lib.load_config import Settings  # noqa: E402


def run_batch_mode(settings: Settings, db: Any, task_id: int, pack_items: int) -> dict[str, int]:
    """Przetwarza zadanie trybem batch do końca (wysyłka, odpytanie, odbiór).

    Args:
        settings: Ustawienia.
        db: Połączenie z lokalną bazą (autocommit).
        task_id: Zadanie z pozycjami (model wskazuje serwer testowy).
        pack_items: ``AI_PACK_ITEMS`` linii batcha (1 = jeden tekst na linię).

    Returns:
        ``requests`` (linie JSONL), ``batches``, ``processed``.
    """
    db.execute("UPDATE task SET ai_batch_mode=1 WHERE id_task=%s", (task_id,))
    cfg = settings.updated(AI_PACK_ITEMS=pack_items)
    ai_worker.run_ai(cfg, task_id)
    processed = 0
    for work in ai_batch_ingest.poll_batches(cfg, task_id):
        if work["action"] == "ingest":
            processed += ai_worker.run_ai(cfg, task_id, id_ai_batch=work["id_ai_batch"])["processed"]
    row = db.query_one(
        "SELECT COUNT(*) AS batches, COALESCE(SUM(request_count),0) AS requests FROM ai_batch WHERE id_task=%s",
        (task_id,),
    )
    return {"requests": int(row["requests"]), "batches": int(row["batches"]), "processed": processed}


def batch_cost_rows(settings: Settings, db: Any, base_url: str, texts: list[str]) -> list[dict]:
    """Wiersze trybu batch tabeli kosztu (format ``ai_bench.cost_rows_for_task``): 1 na linię i paczki."""
    from bench import ai_bench

    rows: list[dict] = []
    for label, pack_items in (("batch 1/linię", 1), ("batch paczki", settings.ai_pack_items)):
        task_id = ai_bench.make_task(db, base_url, texts)
        before = ai_bench.server_stats(base_url)
        run = run_batch_mode(settings, db, task_id, pack_items)
        after = ai_bench.server_stats(base_url)
        billed_in = after["prompt_tokens"] - before["prompt_tokens"]
        stored_in = db.query_value("SELECT SUM(tokens_input) FROM task_item WHERE id_task=%s", (task_id,))
        part = ai_bench.cost_rows_for_task(db, task_id, label, run["requests"], factor=ai_bench.BATCH_FACTOR)
        for row in part:
            row["billed_equals_stored"] = int(stored_in or 0) == billed_in
        rows.extend(part)
    return rows


def main() -> int:
    """Korpus ``ai_bench.build_corpus``: 1 na zapytanie online, batch 1 na linię i batch z paczkami."""
    from bench import ai_bench
    from lib.db_local import connect_local
    from lib.load_config import load_config
    from lib.schema import init_db

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-scale", type=float, default=1.0)
    args = parser.parse_args()
    name = f"ailexia_bench_{uuid.uuid4().hex[:8]}"
    settings = load_config(
        environ=dict(os.environ, ENV_FILE=str(PROJECT_ROOT / "no.env"), DB_LOCAL_NAME=name)
    )
    settings = settings.updated(AI_CLAIM_BATCH=20, AI_MAX_RETRIES=2, AI_TIMEOUT_S=30.0, LOG_LEVEL="WARNING")
    init_db(settings)
    proc, base_url = ai_bench.start_fake(0.0)
    db = connect_local(settings, autocommit=True)
    try:
        texts = ai_bench.build_corpus(args.cost_scale)
        rows = ai_bench.run_cost_mode(settings, db, base_url, texts, "1 na zapytanie", 1)
        rows += batch_cost_rows(settings, db, base_url, texts)
    finally:
        db.close()
        proc.terminate()
        proc.wait()
        admin = connect_local(settings, with_database=False, autocommit=True)
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
    ai_bench.print_cost_table(rows)
    return 0 if report_batch_target(rows) else 1


def report_batch_target(rows: list[dict]) -> bool:
    """Drukuje koszt trybów batch względem 1 na zapytanie (cel: cały korpus <= 0,5x) i zwraca, czy spełniony.

    Cel liczony na całym korpusie (krótkie + długie); stosunki części są informacyjne (w paczkach
    długi tekst tuż nad połową ``AI_PACK_CHARS`` jedzie sam, tuż pod - w paczce, więc podział na
    części nie jest ten sam co w trybie 1 na zapytanie).
    """

    def total(mode: str) -> float:
        return sum(r["usd_per_1000"] * r["items"] / 1000 for r in rows if r["mode"] == mode)

    online = total("1 na zapytanie")
    parts_online = {r["part"]: r for r in rows if r["mode"] == "1 na zapytanie"}
    ok = True
    for mode in dict.fromkeys(r["mode"] for r in rows if r["mode"].startswith("batch")):
        mine = [r for r in rows if r["mode"] == mode]
        ratio = total(mode) / online if online else float("inf")
        complete = all(r["done"] == r["items"] and r.get("billed_equals_stored", True) for r in mine)
        met = ratio <= 0.5 + 1e-9 and complete
        ok &= met
        parts = ", ".join(
            f"{r['part']} {r['usd_per_1000'] / parts_online[r['part']]['usd_per_1000']:.2f}x"
            for r in mine
            if r["part"] in parts_online
        )
        print(
            f"{mode} vs 1 na zapytanie: cały korpus {ratio:.2f}x (cel <= 0,50; {parts}); "
            f"wszystko przetworzone i rachunek = suma pozycji: {complete} - {'OK' if met else 'NIE'}"
        )
    return ok


if __name__ == "__main__":
    sys.exit(main())
