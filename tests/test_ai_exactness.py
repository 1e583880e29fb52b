"""Dokładność AI (issue 14, część 3): ślad operacji, limit kosztu bez przekroczeń, KILL sesji blokady.

Prawdziwa MariaDB, prawdziwe HTTP przez SDK ``openai`` do ``tests/fake_openai.py``; sesje
zabijane poleceniem ``KILL CONNECTION`` jak w ``tests/reliability/test_server_failures.py``.
"""

import os
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pymysql
import pytest

from lib.ai import operation as ai_operation
from lib.ai import run as ai_worker
from lib.db_utils import compute_hash
from tests.conftest import MYSQL_SERVER, PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_model, add_task


def make_task(db, base_url: str, **model_extra) -> int:
    id_model = add_model(db, name=f"m{os.urandom(3).hex()}", base_url=base_url, **model_extra)
    return add_task(db, 1, id_ai_model=id_model)


def add_items(db, id_task: int, texts: list[str]) -> None:
    for n, text in enumerate(texts, start=1):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, text_original, original_hash) VALUES (%s, %s, %s, %s)",
            (id_task, n, text, compute_hash(text)),
        )


def processed(db, id_task: int) -> int:
    return db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )


# --- (a) operation_uuid -> run_log -> run Dagstera -------------------------------------------------


def test_operation_uuid_leads_to_run_log_and_dagster_run(local_env, settings, db, fake_openai):
    from dagster import DagsterInstance

    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, [f"bląd {n}" for n in range(7)] + ["bląd 0"])
    result = subprocess.run(
        [sys.executable, "ai.py", "--id_task", str(id_task)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **local_env, "AI_PACK_ITEMS": "3"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = db.query(
        "SELECT i.operation_uuid, r.run_id, r.status FROM task_item i "
        "LEFT JOIN run_log r ON r.operation_uuid=i.operation_uuid AND r.kind='ai' WHERE i.id_task=%s",
        (id_task,),
    )
    assert len(rows) == 8 and all(r["operation_uuid"] and r["status"] == "completed" for r in rows)
    [run_id] = {r["run_id"] for r in rows}
    run = DagsterInstance.get().get_run_by_id(run_id)
    assert run is not None and run.tags["dagster/partition"] == str(id_task)


# --- (b) AI_MAX_COST_USD nigdy przekroczony ----------------------------------------------------------


@pytest.mark.parametrize("pack_items", [1, 5])
def test_budget_never_exceeded_with_many_requests_in_flight(settings, db, fake_openai, pack_items):
    """Współbieżność 8 i opóźnienie modelu: dawniej zapytania w drodze przebijały limit.

    Rezerwacja szacunku przed wysłaniem (wejście z góry + ``max_output_tokens``) i rozliczenie
    po odpowiedzi: suma kosztów nigdy nie przekracza limitu, a run kończy się ``budget_reached``.
    """
    fake_openai["latency"] = 0.1
    id_task = make_task(
        db,
        fake_openai["base_url"],
        price_input_per_mtok="10.0000",
        price_output_per_mtok="10.0000",
        max_output_tokens=100,
    )
    add_items(db, id_task, [f"Tekst numer {n}: bląd, wogóle napewno." for n in range(120)])
    limit = Decimal("0.06")
    stats = ai_worker.run_ai(
        settings.updated(
            AI_CONCURRENCY=8,
            AI_CLAIM_BATCH=8,
            AI_PACK_ITEMS=pack_items,
            AI_MAX_COST_USD=float(limit),
            AI_BACKOFF_S=0.05,
        ),
        id_task,
    )
    spent = db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_task=%s", (id_task,))
    assert stats["budget_reached"] is True and 0 < processed(db, id_task) < 120
    assert spent <= limit and Decimal(str(stats["cost_usd"])) <= limit
    assert Decimal(str(stats["cost_usd"])) == spent  # każde opłacone zapytanie zapisane
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid IS NOT NULL") == 0
    # Nie zatrzymał się za wcześnie: wykorzystał więcej niż połowę limitu.
    assert spent > limit / 2


# --- (c) KILL sesji z blokadą operacji ----------------------------------------------------------------


def _kill_session(session: int) -> None:
    admin = pymysql.connect(**MYSQL_SERVER, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"KILL CONNECTION {int(session)}")
    finally:
        admin.close()


def _lock_holder(db, operation: str) -> int | None:
    return db.query_value("SELECT IS_USED_LOCK(%s)", (ai_operation.LOCK_PREFIX + operation,))


@pytest.mark.parametrize(("pack_items", "victim_session"), [(1, "lock"), (3, "lock"), (1, "control")])
def test_killing_the_operation_lock_session_never_pays_twice(
    settings, db, fake_openai, pack_items, victim_session
):
    """KILL tylko sesji z ``GET_LOCK('ailexia:ai_op:<uuid>')`` w chwili, gdy zapytania są w drodze.

    Drugi run startuje od razu: rezerwacje pierwszego nadal chroni jego druga blokada (sesja
    ``control``), więc ich nie przejmuje. Pierwszy run zauważa utratę blokady, nic już nie
    wysyła, zapisuje odpowiedzi w drodze, zwalnia resztę i kończy się błędem. Każdy tekst jest
    wysłany do modelu dokładnie raz (serwer liczy zapytania per tekst) i opłacony raz.
    ``control``: zabita druga sesja (z blokadą życia) - rezerwacje chroni nadal blokada operacji.
    """
    fake_openai["latency"] = 0.6
    id_task = make_task(
        db, fake_openai["base_url"], price_input_per_mtok="0.1500", price_output_per_mtok="0.6000"
    )
    texts = [f"Zdanie {n}: bląd do poprawy." for n in range(40)]
    add_items(db, id_task, texts)
    cfg = settings.updated(
        AI_CONCURRENCY=4, AI_CLAIM_BATCH=4, AI_PACK_ITEMS=pack_items, AI_BACKOFF_S=0.05, AI_TIMEOUT_S=10.0
    )
    outcome: dict[str, object] = {}

    def victim() -> None:
        try:
            outcome["stats"] = ai_worker.run_ai(cfg, id_task)
        except Exception as exc:  # oczekiwany TaskError po utracie blokady
            outcome["error"] = exc

    thread = threading.Thread(target=victim)
    thread.start()
    deadline = time.monotonic() + 20
    while fake_openai["total"] < 4:  # zapytania w drodze (serwer odpowiada po 0,6 s)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    operation = db.query_value(
        "SELECT operation_uuid FROM run_log WHERE id_task=%s AND kind='ai'", (id_task,)
    )
    prefix = ai_operation.LOCK_PREFIX if victim_session == "lock" else ai_operation.LIVENESS_PREFIX
    holder = db.query_value("SELECT IS_USED_LOCK(%s)", (prefix + operation,))
    assert holder is not None
    _kill_session(holder)
    while (
        db.query_value("SELECT IS_USED_LOCK(%s)", (prefix + operation,)) is not None
    ):  # KILL jest asynchroniczny
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Inny run od razu: rezerwacje ofiary nie są martwe (druga blokada), więc ich nie rusza.
    taker = ai_worker.run_ai(cfg, id_task)
    thread.join(60)
    assert not thread.is_alive()
    if victim_session == "lock":
        assert "blokadą operacji" in str(outcome.get("error")), outcome
        victim_log = db.query_one(
            "SELECT status, message, stats FROM run_log WHERE operation_uuid=%s", (operation,)
        )
        assert victim_log["status"] == "error" and "blokadą operacji" in victim_log["message"]
    else:
        # Sesja control (rezerwacje, run_log) zniknęła: run kończy się błędem utraty połączenia.
        assert "error" in outcome, outcome
    if victim_session == "lock":
        # Po ofierze nic nie jest zarezerwowane; ostatni run kończy, co zwolniła.
        assert db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid IS NOT NULL") == 0
    else:
        # Zwolnić się nie dało (sesja control martwa), ale obie blokady ofiary są już wolne.
        assert _lock_holder(db, operation) is None
    ai_worker.run_ai(cfg, id_task)

    assert processed(db, id_task) == 40
    sent = {t: n for t, n in fake_openai["per_text"].items() if t in texts}
    assert len(sent) == 40 and set(sent.values()) == {1}, {t: n for t, n in sent.items() if n != 1}
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND cost_usd > 0", (id_task,)) == 40
    )
    # Ofiara przestała wysyłać po utracie blokady: przetworzyła tylko początek.
    by_op = db.query(
        "SELECT operation_uuid, COUNT(*) AS n FROM task_item WHERE id_task=%s GROUP BY operation_uuid",
        (id_task,),
    )
    counts = {r["operation_uuid"]: r["n"] for r in by_op}
    assert 0 < counts.get(operation, 0) < 40 and counts.get(taker["operation_uuid"], 0) > 0
