#!/usr/bin/env python
"""Benchmark przeglądu przy dużym zadaniu: strony keyset, decyzja z licznikami, strona zadań.

Świeża baza MariaDB: zadanie 1 z N pozycjami (60 % ``processed``, 20 % ``accepted``, 20 % ``pending``),
zadanie 2 z N/3 pozycjami ``processed`` wstawionymi później (większe ``id_task_item``). Drukuje:

* dla stron po statusie (``task_item.status_page_query``: strona przeglądu, strona decyzji ``--all``,
  strona zrzutu) indeks i liczbę przeczytanych wierszy z ``ANALYZE FORMAT=JSON`` - tak jak działa
  (``FORCE INDEX``) i bez wskazówki (co wybrałby optymalizator) - oraz czas (min/mediana z 7 prób);
* czas jednej decyzji z cofnięciem (liczniki zmieniane o różnicę) i czas pełnego przeliczenia
  liczników zadania (``refresh_review_counters``), które wcześniej kończyło każdą decyzję;
* czas strony zadań (``collect_status``: liczby po statusie, tokeny, koszt).

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

from lib import task_item  # noqa: E402
from lib.db_local import connect_local  # noqa: E402
from lib.load_config import load_config  # noqa: E402
from lib.review.decisions import set_decision, undo_last  # noqa: E402
from lib.review.dump import DUMP_COLUMNS  # noqa: E402
from lib.runtime.status import collect_status  # noqa: E402
from lib.schema import init_db  # noqa: E402


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


def _times(function, repeat: int = 7) -> tuple[float, float]:
    """Min i mediana czasu ``function()`` w milisekundach."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        function()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def _fill(db, items: int) -> None:
    """Połączenie, dwa zadania i ich pozycje (tokeny i koszt na każdej przetworzonej)."""
    db.execute(
        "INSERT INTO database_connection (id_user, alias, db_type, host, db_name, db_user) "
        "VALUES (1, 'bench', 'sqlite', '', '/nonexistent.sqlite', '')"
    )
    db.execute(
        "INSERT INTO task (id_task, id_user, id_database_connection, table_name, column_name, status) "
        "VALUES (1, 1, 1, 'articles', 'body', 'completed'), (2, 1, 1, 'articles', 'body', 'completed')"
    )
    statuses = ("processed", "processed", "processed", "accepted", "pending")
    for id_task, count, text in ((1, items, "tekst {} ktury śpi"), (2, items // 3, "inny {}")):
        for start in range(1, count + 1, 50_000):
            rows = []
            for n in range(start, min(start + 50_000, count + 1)):
                status = statuses[n % 5] if id_task == 1 else "processed"
                corrected = None if status == "pending" else text.format(n).replace("ktury", "który") + "."
                tokens = (0, 0, 0) if status == "pending" else (120, 40, 0.000042)
                rows.append((id_task, n, text.format(n), corrected, status, *tokens))
            db.executemany(
                "INSERT INTO task_item (id_task, remote_id, text_original, text_corrected, status, "
                "tokens_input, tokens_output, cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    db.execute("UPDATE task_item SET approved_at=NOW(), approved_by='bench' WHERE status='accepted'")
    db.execute("ANALYZE TABLE task_item")


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
        started = time.monotonic()
        _fill(db, args.items)
        print(f"wstawiono {args.items + args.items // 3} pozycji w {time.monotonic() - started:.1f} s")
        ids = [
            r["id_task_item"]
            for r in db.query(
                "SELECT id_task_item FROM task_item WHERE id_task=1 AND status='processed' ORDER BY id_task_item"
            )
        ]
        page = (task_item.PAGE_COLUMNS, args.limit + 1, {})
        lock = (task_item.DECISION_COLUMNS, 1000, {"lock": True})
        dump = (", ".join(DUMP_COLUMNS), 1000, {"condition": task_item.ONLY_CORRECTED})
        scenarios = [
            ("strona, zad. 1, pierwsza", 1, None, False, page),
            ("strona, zad. 1, 90% w głąb", 1, ids[len(ids) * 9 // 10], False, page),
            ("strona, zad. 1, wstecz od połowy", 1, ids[len(ids) // 2], True, page),
            ("strona, zad. 2, pierwsza", 2, None, False, page),
            ("decyzje --all, zad. 2, pierwsza", 2, None, False, lock),
            ("zrzut, zad. 2, pierwsza", 2, None, False, dump),
        ]
        print(
            f"{'zapytanie':34} {'indeks (tak jak działa)':26} {'wiersze':>8} {'bez FORCE INDEX':26} "
            f"{'wiersze':>8} {'min ms':>7} {'med ms':>7}"
        )
        hint = f" FORCE INDEX ({task_item.STATUS_PAGE_INDEX})"
        for label, id_task, key, backwards, (columns, limit, options) in scenarios:
            sql, params = task_item.status_page_query(
                columns, id_task, "processed", key, limit, backwards=backwards, **options
            )
            forced = _plan(db, sql, params)
            plain = _plan(db, sql.replace(hint, ""), params)
            low, median = _times(lambda sql=sql, params=params: db.query(sql, params))
            print(
                f"{label:34} {forced[0]:26} {forced[1]:>8} {plain[0]:26} {plain[1]:>8} {low:>7.2f} {median:>7.2f}"
            )

        decider = connect_local(settings, autocommit=False)
        try:
            target = ids[len(ids) // 2]

            def decide_and_undo() -> None:
                set_decision(decider, 1, [target], "accepted", "bench", session="bench")
                undo_last(decider, 1, "bench", "bench")

            low, median = _times(decide_and_undo)
            print(f"decyzja + cofnięcie (liczniki o różnicę): min {low:.1f} ms, mediana {median:.1f} ms")
            low, median = _times(lambda: task_item.refresh_review_counters(decider, 1), repeat=3)
            print(f"pełne przeliczenie liczników zadania 1: min {low:.0f} ms, mediana {median:.0f} ms")
        finally:
            decider.close()
        low, median = _times(lambda: collect_status(settings), repeat=3)
        print(
            f"strona zadań (collect_status, 2 zadania): min {low / 1000:.2f} s, mediana {median / 1000:.2f} s"
        )
    finally:
        db.execute(f"DROP DATABASE IF EXISTS `{name}`")
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
