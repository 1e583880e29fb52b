#!/usr/bin/env python
"""Benchmark stronicowania strony przeglądu (keyset po indeksie ``(id_task, status)``).

Świeża baza MariaDB: zadanie 1 z N pozycjami (60 % ``processed``), zadanie 2 z N/3 pozycjami
``processed`` wstawionymi później (większe ``id_task_item``). Dla każdej strony drukuje indeks
i liczbę przeczytanych wierszy z ``ANALYZE FORMAT=JSON`` zapytania ``review.page_query`` (tak jak
działa) i tego samego bez ``FORCE INDEX`` (co wybrałby optymalizator), oraz czas
``review.page_items`` (min/mediana z 7 prób). Na końcu czas strony zadań (``collect_status``).

Użycie: python bench/review_bench.py [--items 1000000] [--limit 20]
"""

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import review  # noqa: E402
from lib.db_local import connect_local  # noqa: E402
from lib.load_config import load_config  # noqa: E402
from lib.schema import init_db  # noqa: E402
from lib.status import collect_status  # noqa: E402


def _plan(db, sql: str, params: list) -> tuple[str, int]:
    """Indeks i liczba przeczytanych wierszy tabeli ``task_item`` z ``ANALYZE FORMAT=JSON``."""
    text = db.query_value("ANALYZE FORMAT=JSON " + sql, params)

    def find(node):
        if isinstance(node, dict):
            if node.get("table_name") == "task_item":
                return node
            nodes = node.values()
        elif isinstance(node, list):
            nodes = node
        else:
            return None
        for value in nodes:
            found = find(value)
            if found:
                return found
        return None

    table = find(json.loads(text))
    return table.get("key", "-"), int(float(table.get("r_rows", 0)))


def main() -> int:
    """Punkt wejścia."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    name = f"ailexia_review_bench_{uuid.uuid4().hex[:8]}"
    settings = load_config(environ={**os.environ, "DB_LOCAL_NAME": name})
    init_db(settings)
    db = connect_local(settings, autocommit=True)
    try:
        statuses = ("processed", "processed", "processed", "accepted", "pending")
        started = time.monotonic()
        for id_task, count, text in ((1, args.items, "tekst {} ktury śpi"), (2, args.items // 3, "inny {}")):
            for start in range(1, count + 1, 50_000):
                rows = [
                    (
                        id_task,
                        n,
                        text.format(n),
                        text.format(n).replace("ktury", "który") + ".",
                        statuses[n % 5] if id_task == 1 else "processed",
                    )
                    for n in range(start, min(start + 50_000, count + 1))
                ]
                db.executemany(
                    "INSERT INTO task_item (id_task, remote_id, text_original, text_corrected, status) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    rows,
                )
        db.execute("ANALYZE TABLE task_item")
        print(f"wstawiono {args.items + args.items // 3} pozycji w {time.monotonic() - started:.1f} s")
        ids = [
            r["id_task_item"]
            for r in db.query(
                "SELECT id_task_item FROM task_item WHERE id_task=1 AND status='processed' ORDER BY id_task_item"
            )
        ]
        scenarios = [
            ("zadanie 1, pierwsza", 1, None, False),
            ("zadanie 1, 90% w głąb", 1, ids[len(ids) * 9 // 10], False),
            ("zadanie 1, wstecz od połowy", 1, ids[len(ids) // 2], True),
            ("zadanie 2, pierwsza", 2, None, False),
        ]
        print(
            f"{'strona':30} {'indeks (FORCE)':28} {'wiersze':>8} {'bez FORCE':28} {'wiersze':>8} "
            f"{'min ms':>7} {'med ms':>7}"
        )
        for label, id_task, key, backwards in scenarios:
            sql, params = review.page_query(id_task, "processed", key, backwards, args.limit + 1)
            forced = _plan(db, sql, params)
            plain = _plan(db, sql.replace(" FORCE INDEX (idx_task_item_task_status)", ""), params)
            kwargs = {"before": key} if backwards else {"after": key}
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                review.page_items(db, id_task, "processed", limit=args.limit, **kwargs)
                times.append((time.perf_counter() - t0) * 1000)
            print(
                f"{label:30} {forced[0]:28} {forced[1]:>8} {plain[0]:28} {plain[1]:>8} "
                f"{min(times):>7.2f} {statistics.median(times):>7.2f}"
            )
        t0 = time.perf_counter()
        collect_status(settings)
        print(f"strona zadań (collect_status, agregaty wszystkich pozycji): {time.perf_counter() - t0:.2f} s")
    finally:
        db.execute(f"DROP DATABASE IF EXISTS `{name}`")
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
