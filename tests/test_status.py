"""Testy widoku stanu zadań (``collect_status``: ``sync.py --status`` i strona zadań przeglądu)."""

import pytest

from lib.errors import UsageError
from lib.runtime.status import collect_status
from tests.helpers import add_connection, add_task, add_task_item


def _reference(db, id_task):
    """Te same agregaty jednym prostym zapytaniem (kształt sprzed podziału na trzy zapytania)."""
    row = db.query_one(
        "SELECT COUNT(*) AS items_total, COALESCE(SUM(status='pending'),0) AS items_pending, "
        "COALESCE(SUM(status='outdated'),0) AS items_outdated, COALESCE(SUM(status='processed'),0) AS items_processed, "
        "COALESCE(SUM(status='accepted'),0) AS items_accepted, COALESCE(SUM(status='rejected'),0) AS items_rejected, "
        "COALESCE(SUM(status='exported'),0) AS items_exported, COALESCE(SUM(status='conflict'),0) AS items_conflict, "
        "COALESCE(SUM(id_ai_batch IS NOT NULL),0) AS items_in_batch, "
        "COALESCE(SUM(tokens_input),0) AS tokens_input, COALESCE(SUM(tokens_output),0) AS tokens_output, "
        "COALESCE(SUM(cost_usd),0) AS cost_usd FROM task_item WHERE id_task=%s AND deleted_at IS NULL",
        (id_task,),
    )
    return {k: (float(v) if k == "cost_usd" else int(v)) for k, v in row.items()}


def test_counts_per_status_tokens_and_cost_skip_deleted_items(settings, db, sqlite_source):
    connection = add_connection(db, sqlite_source)
    big, empty, other = (add_task(db, connection, status="completed") for _ in range(3))
    statuses = ["pending", "processed", "accepted", "rejected", "exported", "conflict", "outdated"]
    for n in range(40):
        add_task_item(
            db, big, n, f"t{n}", None if n % 7 == 0 else f"T{n}", status=statuses[n % 7], deleted=n % 5 == 0
        )
    add_task_item(db, other, 1, "a", "A", status="accepted")
    db.execute(
        "UPDATE task_item SET tokens_input=id_task_item*3, tokens_output=id_task_item, "
        "cost_usd=id_task_item/1000 WHERE status<>'pending'"
    )
    # Pozycje czekające w batchu OpenAI (kolumna "batch" widoku stanu).
    db.execute("UPDATE task_item SET id_ai_batch=1 WHERE status='pending' AND id_task_item % 2 = 0")
    rows = {r["id_task"]: r for r in collect_status(settings)}
    assert list(rows) == [big, empty, other]
    for id_task in (big, empty, other):
        got = {k: v for k, v in rows[id_task].items() if k.startswith(("items_", "tokens_", "cost_"))}
        assert got == pytest.approx(_reference(db, id_task)), id_task
    assert rows[big]["items_total"] == 32 and rows[empty]["items_total"] == 0
    assert rows[big]["cost_usd"] > 0 and isinstance(rows[big]["cost_usd"], float)
    one = collect_status(settings, other)
    assert len(one) == 1 and one[0]["items_accepted"] == 1 and one[0]["alias"]
    with pytest.raises(UsageError, match="nie istnieje"):
        collect_status(settings, other + 100)
