"""Tryb batch AI (OpenAI Batch API) na prawdziwej MariaDB i przez prawdziwe SDK ``openai``.

Serwer testowy (``tests/fake_openai.py``) implementuje ``/v1/files`` i ``/v1/batches``; linie
batcha dostają tę samą odpowiedź czatu co zapytania online. Awarie w punktach wysyłki i odbioru
to prawdziwy SIGKILL podprocesu (``AILEXIA_FAULT``), po którym ponowny run musi dojść do stanu
bez drugiego batcha dla tych samych pozycji, z każdym wynikiem zapisanym raz.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from dagster import build_sensor_context, instance_for_test
from starlette.templating import Jinja2Templates

from ailexia_dagster.constants import TAG_AI_BATCH
from ailexia_dagster.definitions import defs
from ailexia_dagster.resources import AilexiaResource
from ailexia_dagster.runner import materialize_task
from ailexia_dagster.sensors import ai_batch_sensor
from lib.ai import client as ai_client
from lib.ai import cost as ai_cost
from lib.ai import prompts
from lib.ai import run as ai_worker
from lib.ai.batch import ingest as ai_batch_ingest
from lib.ai.batch import submit as ai_batch
from lib.errors import TaskError
from lib.runtime import status
from lib.schema import init_db
from lib.web.views import TEMPLATES_DIR
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import (  # noqa: F401
    add_fault,
    correct_text,
    fake_openai_fixture,
    finish_batches,
    usage_for,
)
from tests.helpers import add_model, add_task
from tests.test_ai_worker import add_items, conf, item

# Ceny gpt-4o-mini (USD za milion tokenów).
PRICES = {"price_input_per_mtok": "0.1500", "price_output_per_mtok": "0.6000"}
KILLED = -signal.SIGKILL
TEXTS = ["To jest bląd", "Wogóle nie wiem", "To jest bląd", "Napewno {name} przyjdzie", "Bez błędów"]


def make_batch_task(db, base_url, model_batch=1, task_batch=None, **model_extra) -> int:
    """Model w trybie batch (ceny gpt-4o-mini) i zadanie z tym modelem."""
    extra = {**PRICES, "batch_mode": model_batch, **model_extra}
    id_model = add_model(
        db, name=f"batch{model_batch}{len(model_extra)}{task_batch}", base_url=base_url, **extra
    )
    return add_task(db, 1, id_ai_model=id_model, ai_batch_mode=task_batch)


def batches(db, id_task):
    return db.query("SELECT * FROM ai_batch WHERE id_task=%s ORDER BY id_ai_batch", (id_task,))


def items(db, id_task):
    return db.query("SELECT * FROM task_item WHERE id_task=%s ORDER BY id_task_item", (id_task,))


def provider_batches(state, claim):
    return [b for b in state["batches"].values() if (b["metadata"] or {}).get("ailexia_batch") == claim]


def collect(settings, id_task):
    """To, co robi sensor + run odbioru: odpytanie i odbiór każdego zakończonego batcha zadania."""
    results = []
    for work in ai_batch_ingest.poll_batches(settings, id_task):
        if work["action"] == "ingest":
            results.append(ai_worker.run_ai(settings, id_task, id_ai_batch=work["id_ai_batch"]))
    return results


def batch_cost(text: str, answer: str | None = None, prices=PRICES) -> Decimal:
    """Koszt linii z jednym tekstem po połowie cen (domyślne ceny batch), z ``usage`` serwera testowego.

    ``answer`` zastępuje poprawny tekst odpowiedzi (np. gdy serwer zgubił placeholder).
    """
    corrected, edits = correct_text(text)
    answer = corrected if answer is None else answer
    usage = usage_for(
        prompts.build_messages(text), json.dumps({"text": answer, "edits": edits}, ensure_ascii=False)
    )
    price_in = Decimal(prices["price_input_per_mtok"]) / 2
    price_out = Decimal(prices["price_output_per_mtok"]) / 2
    cost = (usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out) / 10**6
    return cost.quantize(Decimal("0.000001"))


def test_schema_upgrade_adds_batch_columns(local_env, settings, db):
    """Starsza baza (bez ai_batch i kolumn batch) jest podnoszona przez --init-db bez utraty wierszy."""
    id_model = add_model(db, name="old", **PRICES)
    id_task = add_task(db, 1, id_ai_model=id_model)
    [id_item] = add_items(db, id_task, ["stary tekst"])
    db.execute("DROP TABLE schema_migrations")  # baza sprzed migracji: --init-db ją przejmuje
    db.execute("DROP TABLE ai_batch")
    db.execute("ALTER TABLE task_item DROP INDEX idx_task_item_batch, DROP COLUMN id_ai_batch")
    db.execute(
        "ALTER TABLE ai_model DROP COLUMN batch_mode, DROP COLUMN price_batch_input_per_mtok, "
        "DROP COLUMN price_batch_output_per_mtok"
    )
    db.execute("ALTER TABLE task DROP COLUMN ai_batch_mode")
    actions = init_db(settings)
    assert "created table ai_batch" in actions
    for column in (
        "task_item.id_ai_batch",
        "ai_model.batch_mode",
        "ai_model.price_batch_input_per_mtok",
        "ai_model.price_batch_output_per_mtok",
        "task.ai_batch_mode",
    ):
        assert f"added column {column}" in actions
    assert "added key task_item.idx_task_item_batch" in actions
    assert item(db, id_item)["text_original"] == "stary tekst" and item(db, id_item)["id_ai_batch"] is None
    model = db.query_one("SELECT * FROM ai_model WHERE id_ai_model=%s", (id_model,))
    assert model["batch_mode"] == 0 and model["price_batch_input_per_mtok"] is None
    assert init_db(settings) == []


def test_batch_prices_default_to_half_and_explicit_prices_win():
    model = {**PRICES, "price_cached_input_per_mtok": "0.0750"}
    half = ai_cost.batch_price_row(model)
    assert half["price_input_per_mtok"] == Decimal("0.075") and half["price_output_per_mtok"] == Decimal(
        "0.3"
    )
    assert half["price_cached_input_per_mtok"] == Decimal("0.0375")
    explicit = ai_cost.batch_price_row(
        {**model, "price_batch_input_per_mtok": "0.1", "price_batch_output_per_mtok": "0.2"}
    )
    assert explicit["price_input_per_mtok"] == Decimal("0.1") and explicit[
        "price_output_per_mtok"
    ] == Decimal("0.2")
    assert ai_cost.compute_cost(1_000_000, 0, 1_000_000, half) == Decimal("0.375000")


def test_happy_path_submit_then_collect_at_half_price(settings, db, fake_openai):
    fake_openai["batch_mode"] = "hold"
    id_task = make_batch_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, TEXTS)
    stats = ai_worker.run_ai(conf(settings), id_task)

    assert stats["mode"] == "batch" and stats["batches_submitted"] == 1 and stats["claimed"] == len(TEXTS)
    [row] = batches(db, id_task)
    assert row["status"] == "submitted" and row["provider_status"] == "validating"
    assert row["item_count"] == 5 and row["request_count"] == 4  # duplikat wysłany raz
    assert row["input_file_id"] and row["provider_batch_id"] and row["submitted_at"] is not None
    assert row["operation_uuid"] == stats["operation_uuid"]
    # Pozycje czekają w batchu: zarezerwowane claim_uuid batcha, status bez zmian, widoczne w --status.
    for one in items(db, id_task):
        assert one["claim_uuid"] == row["claim_uuid"] and one["id_ai_batch"] == row["id_ai_batch"]
        assert one["status"] == "pending"
    [task_status] = status.collect_status(settings, id_task)
    assert task_status["items_in_batch"] == 5
    assert " batch " in status.format_status([task_status]).splitlines()[0]
    # Plik JSONL: jedna linia na tekst, custom_id = hash, ciało = zapytanie czatu z tego samego buildera.
    provider = fake_openai["batches"][row["provider_batch_id"]]
    assert provider["metadata"]["ailexia_batch"] == row["claim_uuid"]
    assert provider["endpoint"] == "/v1/chat/completions" and provider["completion_window"] == "24h"
    lines = [json.loads(x) for x in fake_openai["files"][row["input_file_id"]]["data"].decode().splitlines()]
    model = db.query_one("SELECT * FROM ai_model")
    by_text = {line["body"]["messages"][1]["content"]: line for line in lines}
    assert sorted(by_text) == sorted(set(TEXTS))
    for text, line in by_text.items():
        assert line["custom_id"] == "h:" + item(db, ids[TEXTS.index(text)])["original_hash"]
        assert line["body"] == ai_client.request_body(
            model, prompts.build_messages(text), "json_schema", conf(settings)
        )
    # Drugi run nie bierze pozycji z batcha (nic nie zostało do wysłania).
    again = ai_worker.run_ai(conf(settings), id_task)
    assert again["batches_submitted"] == 0 and len(batches(db, id_task)) == 1

    # Batch jeszcze pracuje: odpytanie nic nie zleca.
    assert ai_batch_ingest.poll_batches(settings) == []
    finish_batches(fake_openai)
    work = ai_batch_ingest.poll_batches(settings)
    assert [w["action"] for w in work] == ["ingest"] and work[0]["id_ai_batch"] == row["id_ai_batch"]
    result = ai_worker.run_ai(conf(settings), id_task, id_ai_batch=row["id_ai_batch"])
    assert result["processed"] == 4 and result["reused"] == 1 and result["failed"] == 0

    done = batches(db, id_task)[0]
    assert done["status"] == "ingested" and done["provider_status"] == "completed"
    stored = items(db, id_task)
    expected_cost = Decimal(0)
    for one in stored:
        assert one["status"] == "processed" and one["claim_uuid"] is None and one["id_ai_batch"] is None
        assert one["operation_uuid"] == result["operation_uuid"]
    for text in set(TEXTS):
        answer, _edits = correct_text(text)
        rows = [one for one in stored if one["text_original"] == text]
        assert all(one["text_corrected"] == answer for one in rows)
        # Koszt linii dostaje jedna pozycja, duplikat 0: suma po pozycjach = rachunek.
        assert sorted(one["cost_usd"] for one in rows)[-1] == batch_cost(text)
        assert sum(one["cost_usd"] for one in rows) == batch_cost(text)
        expected_cost += batch_cost(text)
    assert done["cost_usd"] == expected_cost == sum(one["cost_usd"] for one in stored)
    assert Decimal(str(result["cost_usd"])) == expected_cost
    log_row = db.query_one("SELECT * FROM run_log WHERE operation_uuid=%s", (result["operation_uuid"],))
    assert log_row["kind"] == "ai" and log_row["status"] == "completed"
    # Drugi odbiór tego samego batcha niczego nie zmienia (idempotentny).
    repeat = ai_worker.run_ai(conf(settings), id_task, id_ai_batch=row["id_ai_batch"])
    assert repeat["processed"] == 0 and items(db, id_task) == stored


def test_batch_costs_half_of_online(settings, db, fake_openai):
    """Te same teksty: online po cenach zwykłych, batch po domyślnych cenach batch = dokładnie połowa.

    Ceny 2 i 8 USD/Mtok dają koszty bez zaokrągleń (całe mikrodolary), więc porównanie jest dokładne.
    """
    prices = {"price_input_per_mtok": "2.0000", "price_output_per_mtok": "8.0000"}
    texts = [f"Tekst numer {n} z błędem bląd" for n in range(6)]
    online_model = add_model(db, name="online", base_url=fake_openai["base_url"], **prices)
    online_task = add_task(db, 1, id_ai_model=online_model)
    add_items(db, online_task, texts)
    ai_worker.run_ai(conf(settings), online_task)
    online = db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_task=%s", (online_task,))

    id_task = make_batch_task(db, fake_openai["base_url"], **prices)
    add_items(db, id_task, texts, start=100)
    ai_worker.run_ai(conf(settings), id_task)
    collect(conf(settings), id_task)
    batch = db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_task=%s", (id_task,))
    assert online > 0 and batch == online / 2


def test_task_override_and_online_runs_skip_batch_items(settings, db, fake_openai):
    """task.ai_batch_mode nadpisuje model; pozycji w batchu nie bierze run online."""
    fake_openai["batch_mode"] = "hold"
    online_task = make_batch_task(db, fake_openai["base_url"], model_batch=1, task_batch=0)
    add_items(db, online_task, ["bląd online"])
    assert ai_worker.run_ai(conf(settings), online_task)["processed"] == 1
    id_task = make_batch_task(db, fake_openai["base_url"], model_batch=0, task_batch=1)
    add_items(db, id_task, ["bląd w batchu", "drugi"], start=10)
    assert ai_worker.run_ai(conf(settings), id_task)["batches_submitted"] == 1
    # Przełączenie zadania na online w trakcie: pozycje z batcha nie są wysyłane drugi raz.
    db.execute("UPDATE task SET ai_batch_mode=0 WHERE id_task=%s", (id_task,))
    total = fake_openai["total"]
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["claimed"] == 0 and stats["processed"] == 0 and fake_openai["total"] == total
    assert all(one["id_ai_batch"] is not None for one in items(db, id_task))


def test_failed_lines_and_invalid_answers_return_to_pending(settings, db, fake_openai):
    id_task = make_batch_task(db, fake_openai["base_url"])
    add_fault(fake_openai, "500", text="zepsuty serwer")
    add_fault(fake_openai, "drop_placeholder", text="Witaj {name}")
    ids = add_items(db, id_task, ["zepsuty serwer", "Witaj {name}", "bląd"])
    ai_worker.run_ai(conf(settings), id_task)
    [result] = collect(conf(settings), id_task)
    assert result["processed"] == 1 and result["failed"] == 2
    failed, invalid, good = (item(db, i) for i in ids)
    assert failed["status"] == "pending" and failed["ai_attempts"] == 1 and "HTTP 500" in failed["ai_error"]
    assert invalid["status"] == "pending" and invalid["ai_attempts"] == 1 and "{name}" in invalid["ai_error"]
    for one in (failed, invalid):
        assert one["claim_uuid"] is None and one["id_ai_batch"] is None and one["cost_usd"] == 0
    assert good["status"] == "processed" and good["text_corrected"] == "błąd"
    # Odrzucona odpowiedź też jest na rachunku batcha (tokeny zapłacone), ale nie w pozycjach.
    [row] = batches(db, id_task)
    assert row["cost_usd"] == batch_cost("bląd") + batch_cost("Witaj {name}", "Witaj ")
    # Następny run wysyła je ponownie (nowy batch), tym razem poprawnie.
    ai_worker.run_ai(conf(settings), id_task)
    collect(conf(settings), id_task)
    assert {one["status"] for one in items(db, id_task)} == {"processed"}
    assert len(batches(db, id_task)) == 2


@pytest.mark.parametrize("outcome", ["expired", "failed"])
def test_expired_or_failed_batch_returns_unfinished_items(settings, db, fake_openai, outcome):
    fake_openai["batch_outcome"] = outcome
    fake_openai["batch_done_lines"] = 1
    id_task = make_batch_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd", "drugi tekst", "trzeci tekst"])
    ai_worker.run_ai(conf(settings), id_task)
    [result] = collect(conf(settings), id_task)
    rows = [item(db, i) for i in ids]
    done = 1 if outcome == "expired" else 0
    assert result["processed"] == done and sum(r["status"] == "processed" for r in rows) == done
    for one in rows[done:]:
        assert one["status"] == "pending" and one["claim_uuid"] is None and one["id_ai_batch"] is None
        assert one["ai_attempts"] == 0 and one["ai_error"]  # nie z winy pozycji: próba nie liczona
        assert ("batch_expired" if outcome == "expired" else "(failed)") in one["ai_error"]
    [row] = batches(db, id_task)
    assert row["status"] == "ingested" and row["provider_status"] == outcome
    if outcome == "failed":
        assert "fake failure" in row["error"]


def test_cancel_submitted_batch(settings, db, fake_openai):
    fake_openai["batch_mode"] = "hold"
    fake_openai["cancel_done_lines"] = 1
    id_task = make_batch_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd", "drugi tekst", "trzeci tekst"])
    ai_worker.run_ai(conf(settings), id_task)
    [row] = batches(db, id_task)
    message = ai_batch.cancel_batch(settings, row["id_ai_batch"])
    assert "anulowanie zlecone" in message and fake_openai["batch_calls"]["batches.cancel"] == 1
    assert batches(db, id_task)[0]["cancel_requested"] == 1
    [result] = collect(conf(settings), id_task)
    assert result["processed"] == 1 and batches(db, id_task)[0]["provider_status"] == "cancelled"
    rows = [item(db, i) for i in ids]
    assert rows[0]["status"] == "processed"
    for one in rows[1:]:
        assert one["status"] == "pending" and one["id_ai_batch"] is None and one["ai_attempts"] == 0
        assert "batch_cancelled" in one["ai_error"]
    # Batch skończony: drugie anulowanie nic nie robi.
    assert "nic do anulowania" in ai_batch.cancel_batch(settings, row["id_ai_batch"])


# --- awarie (SIGKILL podprocesu w punktach lib/faults.py) ----------------------------------


def wait_work(db, id_task, timeout=10.0):
    """``pending_work`` zadania, gdy serwer MySQL zwolni blokady zabitego procesu (zamknięcie sesji trwa chwilę)."""
    deadline = time.monotonic() + timeout
    while True:
        work = ai_batch_ingest.pending_work(db, id_task)
        if work or time.monotonic() > deadline:
            return work
        time.sleep(0.05)


def run_killed(local_env, settings, id_task, fault, extra_env=None, id_ai_batch=None):
    """Run AI zadania w podprocesie z ``AILEXIA_FAULT``; zwraca kod wyjścia."""
    env = {**os.environ, **local_env, "AILEXIA_FAULT": fault, **(extra_env or {})}
    code = (
        "from lib.ai import run as ai_worker; from lib.load_config import load_config; "
        f"ai_worker.run_ai(load_config(), {id_task}, id_ai_batch={id_ai_batch!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode


@pytest.mark.parametrize(
    ("fault", "status_after", "creates"),
    [
        ("ai_batch.prepared", "preparing", 0),
        ("ai_batch.uploaded", "preparing", 0),
        ("ai_batch.before_create", "uploaded", 0),
        ("ai_batch.created", "uploaded", 1),
    ],
)
def test_crash_during_submit_never_makes_two_batches(
    local_env, settings, db, fake_openai, fault, status_after, creates
):
    fake_openai["batch_mode"] = "hold"
    id_task = make_batch_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, TEXTS)
    assert run_killed(local_env, settings, id_task, fault) == KILLED
    [row] = batches(db, id_task)
    assert row["status"] == status_after and row["item_count"] == len(TEXTS)
    assert fake_openai["batch_calls"]["batches.create"] == creates
    # Pozycje nie giną i nie są brane przez nikogo innego, dopóki batch nie jest odzyskany.
    assert all(item(db, i)["claim_uuid"] == row["claim_uuid"] for i in ids)
    assert wait_work(db, id_task) == [
        {
            "id_ai_batch": row["id_ai_batch"],
            "id_task": id_task,
            "action": "recover",
            "run_key": f"ai-batch-{row['id_ai_batch']}-{status_after}-0",
        }
    ]

    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["batches_recovered"] == 1 and stats["batches_found"] == creates
    # Plik wysłany przed awarią (bez zapisanego id) jest usuwany; u dostawcy zostaje jeden plik batcha.
    assert stats["orphan_files_deleted"] == (1 if fault == "ai_batch.uploaded" else 0)
    [row] = batches(db, id_task)
    uploads = [
        f
        for f in fake_openai["files"].values()
        if f["info"]["filename"] == f"ailexia-{row['claim_uuid']}.jsonl"
    ]
    assert [f["info"]["id"] for f in uploads] == [row["input_file_id"]]
    assert row["status"] == "submitted" and len(provider_batches(fake_openai, row["claim_uuid"])) == 1
    assert fake_openai["batch_calls"]["batches.create"] == 1 and len(fake_openai["batches"]) == 1
    finish_batches(fake_openai)
    collect(conf(settings), id_task)
    stored = items(db, id_task)
    assert all(one["status"] == "processed" and one["id_ai_batch"] is None for one in stored)
    # Każdy tekst policzony raz: cztery linie, cztery pozycje z kosztem, duplikat 0.
    assert sum(one["cost_usd"] > 0 for one in stored) == 4
    assert sum(one["cost_usd"] for one in stored) == batches(db, id_task)[0]["cost_usd"]


def test_crash_mid_ingest_stores_each_result_once(local_env, settings, db, fake_openai):
    texts = [f"tekst {n} bląd" for n in range(450)]
    id_task = make_batch_task(db, fake_openai["base_url"])
    add_items(db, id_task, texts)
    ai_worker.run_ai(conf(settings), id_task)
    [work] = ai_batch_ingest.poll_batches(settings, id_task)
    # Odbiór zabity po pierwszej zatwierdzonej partii (200 linii).
    assert (
        run_killed(local_env, settings, id_task, "ai_batch.ingest_commit", id_ai_batch=work["id_ai_batch"])
        == KILLED
    )
    stored = db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )
    assert stored == 200
    [row] = batches(db, id_task)
    assert row["status"] == "ended"
    # Sensor widzi batch do odebrania ponownie (nowy klucz runu: przejęcie policzone).
    [again] = wait_work(db, id_task)
    assert again["run_key"] != work["run_key"] and again["action"] == "ingest"
    result = ai_worker.run_ai(conf(settings), id_task, id_ai_batch=row["id_ai_batch"])
    assert result["processed"] == 250
    rows = items(db, id_task)
    assert all(one["status"] == "processed" and one["claim_uuid"] is None for one in rows)
    expected = sum(batch_cost(t) for t in texts)
    assert sum(one["cost_usd"] for one in rows) == expected == batches(db, id_task)[0]["cost_usd"]
    assert fake_openai["total"] == 450  # każdy tekst wykonany u dostawcy raz


def test_cancel_before_submission_abandons_batch(local_env, settings, db, fake_openai):
    id_task = make_batch_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd", "drugi"])
    assert run_killed(local_env, settings, id_task, "ai_batch.uploaded") == KILLED
    assert wait_work(db, id_task)
    [row] = batches(db, id_task)
    assert "przed wysłaniem" in ai_batch.cancel_batch(settings, row["id_ai_batch"])
    assert (
        batches(db, id_task)[0]["status"] == "abandoned" and fake_openai["batch_calls"]["batches.create"] == 0
    )
    for one in (item(db, i) for i in ids):
        assert one["status"] == "pending" and one["claim_uuid"] is None and one["id_ai_batch"] is None


def test_sensor_requests_one_ingest_run_per_batch_state(settings, db, fake_openai):
    id_task = make_batch_task(db, fake_openai["base_url"])
    add_items(db, id_task, ["bląd", "drugi"])
    ai_worker.run_ai(conf(settings), id_task)
    [row] = batches(db, id_task)
    with instance_for_test() as instance:
        context = build_sensor_context(
            instance=instance,
            definitions=defs,
            instance_ref=instance.get_ref(),
            resources={"ailexia": AilexiaResource()},
        )
        result = ai_batch_sensor.evaluate_tick(context)
        [request] = result.run_requests
        assert request.run_key == f"ai-batch-{row['id_ai_batch']}-completed-0"
        assert request.tags[TAG_AI_BATCH] == str(row["id_ai_batch"]) and request.partition_key == str(id_task)
        ok, message = materialize_task(
            instance,
            [__import__("ailexia_dagster.assets", fromlist=["ai_corrections"]).ai_corrections],
            id_task,
            dict(request.tags),
        )
        assert ok, message
        assert {one["status"] for one in items(db, id_task)} == {"processed"}
        assert batches(db, id_task)[0]["status"] == "ingested"
        again = ai_batch_sensor.evaluate_tick(context)
        assert not again.run_requests


def test_text_changed_in_source_while_in_batch(settings, db, fake_openai):
    """Sync zmienił tekst pozycji czekającej w batchu: odpowiedź dla starego tekstu nie jest zapisana."""
    fake_openai["batch_mode"] = "hold"
    id_task = make_batch_task(db, fake_openai["base_url"])
    changed, kept = add_items(db, id_task, ["stary bląd", "bląd"])
    ai_worker.run_ai(conf(settings), id_task)
    db.execute(
        "UPDATE task_item SET text_original='nowy tekst', original_hash=SHA2('nowy tekst', 256), status='outdated' "
        "WHERE id_task_item=%s",
        (changed,),
    )
    finish_batches(fake_openai)
    [result] = collect(conf(settings), id_task)
    assert result["processed"] == 1
    row = item(db, changed)
    assert row["status"] == "outdated" and row["text_corrected"] is None and row["cost_usd"] == 0
    assert row["id_ai_batch"] is None and row["claim_uuid"] is None and row["ai_attempts"] == 0
    assert item(db, kept)["status"] == "processed"
    # Nowy tekst idzie w następnym batchu.
    ai_worker.run_ai(conf(settings), id_task)
    finish_batches(fake_openai)
    collect(conf(settings), id_task)
    assert item(db, changed)["status"] == "processed" and item(db, changed)["text_corrected"] == "nowy tekst"


def test_status_page_and_dry_run_show_batch(settings, db, fake_openai):
    fake_openai["batch_mode"] = "hold"
    id_task = make_batch_task(
        db, fake_openai["base_url"], price_input_per_mtok="2.0", price_output_per_mtok="8.0"
    )
    add_items(db, id_task, ["bląd", "drugi"])
    estimate = ai_worker.dry_run(conf(settings), id_task)
    db.execute("UPDATE task SET ai_batch_mode=0 WHERE id_task=%s", (id_task,))
    online = ai_worker.dry_run(conf(settings), id_task)
    assert estimate["batch_mode"] and not online["batch_mode"]
    assert estimate["estimated_cost_usd"] == pytest.approx(online["estimated_cost_usd"] / 2)
    db.execute("UPDATE task SET ai_batch_mode=NULL WHERE id_task=%s", (id_task,))
    ai_worker.run_ai(conf(settings), id_task)
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    html = templates.get_template("tasks.html").render(tasks=status.collect_status(settings), csrf="")
    assert "w batchu" in html
    row = html.split(f'data-task="{id_task}"')[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", c.split("</td>")[0]) for c in row.split('<td class="num">')[1:]]
    assert cells[1] == "2"  # kolumna "w batchu" po "pending"


def test_cli_collect_and_cancel(settings, db, fake_openai, capsys):
    """``ai.py --collect`` (cron bez sensora) odbiera zakończone batche; ``--cancel-batch`` anuluje."""
    import ai

    fake_openai["batch_mode"] = "hold"
    id_task = make_batch_task(db, fake_openai["base_url"])
    add_items(db, id_task, ["bląd", "drugi"])
    ai_worker.run_ai(conf(settings), id_task)
    other = make_batch_task(db, fake_openai["base_url"], task_batch=1)
    add_items(db, other, ["trzeci"], start=50)
    ai_worker.run_ai(conf(settings), other)
    [first, second] = db.query("SELECT id_ai_batch FROM ai_batch ORDER BY id_ai_batch")
    assert ai.main(["--collect"]) == 0 and "brak zakończonych" in capsys.readouterr().out
    assert ai.main(["--cancel-batch", str(second["id_ai_batch"])]) == 0
    assert "anulowanie zlecone" in capsys.readouterr().out
    finish_batches(fake_openai)
    assert ai.main(["--collect"]) == 0
    out = capsys.readouterr().out
    assert (
        f"batch {first['id_ai_batch']} odebrany" in out and f"batch {second['id_ai_batch']} odebrany" in out
    )
    assert {one["status"] for one in items(db, id_task)} == {"processed"}
    [cancelled] = items(db, other)
    assert cancelled["status"] == "pending" and "batch_cancelled" in cancelled["ai_error"]
    assert ai.main(["--cancel-batch", "999"]) == 2


def test_packed_lines_split_the_bill_exactly_and_bad_positions_go_back(settings, db, fake_openai):
    """Linie batcha niosą paczki (AI_PACK_ITEMS): każda pozycja sprawdzana osobno, rachunek dzielony dokładnie."""
    texts = [f"krótki tekst {n} z bląd" for n in range(7)] + ["Witaj {name}", "krótki tekst 0 z bląd"]
    # Serwer gubi w odpowiedzi na paczkę jedną pozycję (jeden błąd na zapytanie).
    add_fault(fake_openai, "pack_drop", text="krótki tekst 3 z bląd")
    id_task = make_batch_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, texts)
    packed = conf(settings, AI_PACK_ITEMS=20, AI_PACK_CHARS=4000)
    stats = ai_worker.run_ai(packed, id_task)
    [row] = batches(db, id_task)
    assert stats["claimed"] == 9 and row["request_count"] == 1  # osiem różnych tekstów, jedna linia
    [line] = [json.loads(x) for x in fake_openai["files"][row["input_file_id"]]["data"].decode().splitlines()]
    assert line["custom_id"] == "p:0"
    assert line["body"]["response_format"]["json_schema"]["name"] == ai_client.PACK.name
    assert ai_batch.request_texts(line) == texts[:8]
    [result] = collect(packed, id_task)
    assert result["processed"] == 7 and result["reused"] == 1 and result["failed"] == 1
    rows = [item(db, i) for i in ids]
    bad = rows[3]
    assert (
        bad["status"] == "pending" and bad["ai_attempts"] == 1 and bad["ai_error"].startswith("batch: paczka")
    )
    assert bad["id_ai_batch"] is None and bad["cost_usd"] == 0
    good = [r for n, r in enumerate(rows) if n != 3]
    assert all(
        r["status"] == "processed" and r["text_corrected"] == correct_text(r["text_original"])[0]
        for r in good
    )
    # Rachunek linii: usage serwera po połowie cen; części pozycji sumują się do udziałów dobrych pozycji.
    usage = fake_openai["prompt_tokens"], fake_openai["completion_tokens"]
    billed = ai_cost.compute_cost(usage[0], 0, usage[1], ai_cost.batch_price_row(PRICES))
    assert row["cost_usd"] == 0 and batches(db, id_task)[0]["cost_usd"] == billed
    shares = ai_cost.split_bill(usage[0], 0, usage[1], billed, [len(t) for t in texts[:8]])
    assert [r["cost_usd"] for r in rows[:8] if r["status"] == "processed"] == [
        s.cost for n, s in enumerate(shares) if n != 3
    ]
    assert sum(r["tokens_input"] for r in rows) == sum(s.tokens_input for n, s in enumerate(shares) if n != 3)
    assert rows[8]["cost_usd"] == 0 and rows[8]["text_corrected"] == rows[0]["text_corrected"]
    # Pozycje odrzucone idą w następnym batchu same i tym razem przechodzą.
    ai_worker.run_ai(packed, id_task)
    collect(packed, id_task)
    assert {item(db, i)["status"] for i in ids} == {"processed"}


def test_text_with_a_stored_result_is_not_sent_again(settings, db, fake_openai):
    """Tekst, który ma już wynik w zadaniu, dostaje go przy wysyłce (koszt 0) i nie trafia do pliku."""
    id_task = make_batch_task(db, fake_openai["base_url"])
    [first] = add_items(db, id_task, ["raz bląd"])
    ai_worker.run_ai(conf(settings), id_task)
    collect(conf(settings), id_task)
    again, other = add_items(db, id_task, ["raz bląd", "inny"], start=10)
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["claimed"] == 2 and stats["reused"] == 1
    row = batches(db, id_task)[-1]
    assert row["request_count"] == 1 and row["item_count"] == 2
    reused = item(db, again)
    assert reused["status"] == "processed" and reused["cost_usd"] == 0 and reused["id_ai_batch"] is None
    assert reused["text_corrected"] == item(db, first)["text_corrected"] == "raz błąd"
    assert item(db, other)["id_ai_batch"] == row["id_ai_batch"]


def test_ingest_works_after_the_model_is_disabled(settings, db, fake_openai):
    """Wyniki batcha są już zapłacone: odbiór nie zależy od statusu modelu (ceny z modelu batcha)."""
    id_task = make_batch_task(db, fake_openai["base_url"])
    [one] = add_items(db, id_task, ["bląd"])
    ai_worker.run_ai(conf(settings), id_task)
    db.execute("UPDATE ai_model SET status='disabled'")
    with pytest.raises(TaskError):
        ai_worker.run_ai(conf(settings), id_task)
    collect(conf(settings), id_task)
    assert item(db, one)["status"] == "processed" and item(db, one)["cost_usd"] == batch_cost("bląd")


def test_sensor_requests_recovery_of_a_dead_submission(local_env, settings, db, fake_openai):
    """Wysyłka, której run zginął, dostaje run AI zadania (bez tagu batcha), który ją dokańcza."""
    from ailexia_dagster.assets import ai_corrections

    id_task = make_batch_task(db, fake_openai["base_url"])
    add_items(db, id_task, ["bląd", "drugi"])
    assert run_killed(local_env, settings, id_task, "ai_batch.uploaded") == KILLED
    assert wait_work(db, id_task)
    [row] = batches(db, id_task)
    with instance_for_test() as instance:
        context = build_sensor_context(
            instance=instance,
            definitions=defs,
            instance_ref=instance.get_ref(),
            resources={"ailexia": AilexiaResource()},
        )
        [request] = ai_batch_sensor.evaluate_tick(context).run_requests
        assert request.run_key == f"ai-batch-{row['id_ai_batch']}-preparing-0"
        assert TAG_AI_BATCH not in request.tags and request.tags["ailexia/request"] == "batch_recover"
        ok, message = materialize_task(instance, [ai_corrections], id_task, dict(request.tags))
        assert ok, message
        assert batches(db, id_task)[0]["status"] == "submitted" and len(fake_openai["batches"]) == 1
        # Następny tick: batch zakończony u dostawcy -> run odbioru.
        [ingest] = ai_batch_sensor.evaluate_tick(context).run_requests
        assert ingest.tags[TAG_AI_BATCH] == str(row["id_ai_batch"])
