"""Testy silnika AI na prawdziwej MariaDB i przez prawdziwe HTTP do serwera zgodnego z OpenAI."""

import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import pymysql
import pytest

from lib import task_item
from lib.ai import cost as ai_cost
from lib.ai import online as ai_online
from lib.ai import operation as ai_operation
from lib.ai import prompts
from lib.ai import run as ai_worker
from lib.db_local import connect_local
from lib.db_utils import compute_hash
from lib.errors import AiError, TaskError, UsageError
from lib.runtime import scheduling
from tests.conftest import MYSQL_SERVER, PROJECT_ROOT
from tests.fake_openai import add_fault, fake_openai_fixture, usage_for  # noqa: F401
from tests.helpers import add_model, add_task

# Te testy sprawdzają zapytania o jeden tekst (AI_PACK_ITEMS=1, zachowanie sprzed paczek);
# paczki mają swoje testy w tests/test_ai_pack.py.
FAST = {
    "AI_PACK_ITEMS": 1,
    "AI_BACKOFF_S": 0.05,
    "AI_MAX_RETRIES": 3,
    "AI_TIMEOUT_S": 5.0,
    "AI_CONCURRENCY": 4,
    "AI_CLAIM_BATCH": 5,
}


def make_task(db, base_url, action="correct", model_extra=None, **task_extra) -> int:
    """Model wskazujący na serwer testowy i zadanie z tym modelem."""
    extra = {"price_input_per_mtok": "2.0000", "price_output_per_mtok": "8.0000"}
    extra.update(model_extra or {})
    id_model = add_model(db, name=f"m{uuid.uuid4().hex[:6]}", base_url=base_url, **extra)
    return add_task(db, 1, id_ai_model=id_model, ai_action=action, **task_extra)


def add_items(db, id_task, texts, status="pending", start=1) -> list[int]:
    """Wstawia pozycje bezpośrednio (tekst, hash, status) i zwraca ich id."""
    ids = []
    for offset, text in enumerate(texts):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, status) VALUES (%s, %s, %s, %s, %s)",
            (id_task, start + offset, text, compute_hash(text), status),
        )
        ids.append(int(db.last_insert_id))
    return ids


def item(db, id_item):
    return db.query_one("SELECT * FROM task_item WHERE id_task_item=%s", (id_item,))


def conf(settings, **extra):
    return settings.updated(**{**FAST, **extra})


def test_correction_stores_exact_fields(settings, db, fake_openai):
    fake_openai["cached_tokens"] = 50
    id_task = make_task(db, fake_openai["base_url"], model_extra={"price_cached_input_per_mtok": "0.5000"})
    text = "To jest bląd, napewno <b>{name}</b>\ndruga linia %s"
    [id_item] = add_items(db, id_task, [text])
    stats = ai_worker.run_ai(conf(settings), id_task)

    row = item(db, id_item)
    expected = "To jest błąd, na pewno <b>{name}</b>\ndruga linia %s"
    assert row["text_corrected"] == expected
    assert row["local_hash"] == compute_hash(expected)
    assert row["status"] == "processed" and row["is_changed"] == 0
    assert row["claim_uuid"] is None and row["claimed_at"] is None and row["ai_error"] is None
    assert row["processed_at"] is not None
    # operation_uuid zostaje po zapisie: wskazuje run, który wytworzył wynik (run_log -> run Dagstera).
    assert row["operation_uuid"] == stats["operation_uuid"]
    assert (
        db.query_value(
            "SELECT COUNT(*) FROM run_log WHERE id_task=%s AND kind='ai' AND operation_uuid=%s",
            (id_task, row["operation_uuid"]),
        )
        == 1
    )
    summary = json.loads(row["change_summary"])
    assert summary["counts"] == {
        "spelling": 2,
        "grammar": 0,
        "punctuation": 0,
        "style": 0,
        "typography": 0,
        "other": 0,
    }
    assert [(e["original"], e["replacement"]) for e in summary["edits"]] == [
        ("bląd", "błąd"),
        ("napewno", "na pewno"),
    ]
    # usage serwera testowego liczy całe zapytanie (prompt systemowy + tekst) i całą odpowiedź.
    [request] = fake_openai["requests"]
    usage = usage_for(request["payload"]["messages"], request["content"], 50)
    assert usage == request["usage"] and usage["prompt_tokens"] > len(text) // 4 + 200
    assert (
        row["tokens_input"] == usage["prompt_tokens"] and row["tokens_output"] == usage["completion_tokens"]
    )
    # (wejście bez cache * 2 + cache * 0,5 + wyjście * 8) / 1e6
    cost = (
        Decimal(usage["prompt_tokens"] - 50) * 2
        + Decimal(50) * Decimal("0.5")
        + Decimal(usage["completion_tokens"]) * 8
    ) / 10**6
    assert row["cost_usd"] == cost.quantize(Decimal("0.000001"))
    assert stats["processed"] == 1 and stats["failed"] == 0 and stats["requests_sent"] == 1
    assert stats["tokens_cached"] == 50 and stats["response_format"] == "json_schema"
    assert stats["cost_usd"] == pytest.approx(float(cost), abs=1e-6)
    log_row = db.query_one("SELECT * FROM run_log WHERE id_task=%s", (id_task,))
    assert (
        log_row["kind"] == "ai"
        and log_row["status"] == "completed"
        and json.loads(log_row["stats"])["processed"] == 1
    )
    # Klucz API nie trafia do zapytań: serwer własny bez klucza dostaje "not-needed".
    assert fake_openai["requests"][0]["headers"]["authorization"] == "Bearer not-needed"


def test_translation(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"], action="translate", source_lang="pl", target_lang="en")
    [id_item] = add_items(db, id_task, ["Witaj {name}, masz %d wiadomości"])
    ai_worker.run_ai(conf(settings), id_task)
    row = item(db, id_item)
    assert row["text_corrected"] == "[en] Witaj {name}, masz %d wiadomości"
    summary = json.loads(row["change_summary"])
    assert summary["edits"] == [] and summary["note"] == "tłumaczenie pl -> en"
    assert row["status"] == "processed"


def test_429_retry_after_is_honoured(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["bląd"])
    add_fault(fake_openai, "429", retry_after=1)
    stats = ai_worker.run_ai(conf(settings), id_task)
    times = [r["time"] for r in fake_openai["requests"]]
    assert len(times) == 2 and times[1] - times[0] >= 0.95
    assert item(db, id_item)["status"] == "processed" and stats["requests_sent"] == 2 and stats["failed"] == 0


def test_500_then_success_and_timeout_then_success(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd jeden", "bląd dwa"])
    add_fault(fake_openai, "500", times=2, text="bląd jeden")
    add_fault(fake_openai, "timeout", text="bląd dwa", delay=2.0)
    stats = ai_worker.run_ai(conf(settings, AI_TIMEOUT_S=0.8), id_task)
    assert [item(db, i)["text_corrected"] for i in ids] == ["błąd jeden", "błąd dwa"]
    assert fake_openai["per_text"]["bląd jeden"] == 3 and fake_openai["per_text"]["bląd dwa"] == 2
    assert stats["processed"] == 2 and stats["failed"] == 0


def test_malformed_once_is_repaired(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["wogóle"])
    add_fault(fake_openai, "malformed")
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert item(db, id_item)["text_corrected"] == "w ogóle"
    repair = fake_openai["requests"][1]["payload"]["messages"]
    assert repair[-1]["role"] == "user" and "not valid" in repair[-1]["content"]
    assert stats["requests_sent"] == 2 and stats["processed"] == 1


def test_malformed_twice_is_item_error(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["wogóle", "napewno"])
    add_fault(fake_openai, "malformed", times=2, text="wogóle")
    stats = ai_worker.run_ai(conf(settings), id_task)
    bad, good = item(db, ids[0]), item(db, ids[1])
    assert bad["status"] == "pending" and bad["ai_attempts"] == 1 and bad["text_corrected"] is None
    assert "JSON" in bad["ai_error"] and bad["claim_uuid"] is None and bad["operation_uuid"] is None
    assert good["status"] == "processed"
    assert stats["failed"] == 1 and stats["processed"] == 1


def test_dropped_placeholder_is_item_error(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["Cześć {name}"])
    add_fault(fake_openai, "drop_placeholder", times=2)
    ai_worker.run_ai(conf(settings), id_task)
    row = item(db, id_item)
    assert row["status"] == "pending" and "{name}" in row["ai_error"] and row["ai_attempts"] == 1


def test_401_stops_run(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, [f"tekst {n}" for n in range(12)])
    add_fault(fake_openai, "401", times=100)
    with pytest.raises(AiError, match="401"):
        ai_worker.run_ai(conf(settings, AI_CONCURRENCY=1, AI_CLAIM_BATCH=2), id_task)
    rows = [item(db, i) for i in ids]
    assert all(
        r["status"] == "pending" and r["claim_uuid"] is None and r["operation_uuid"] is None for r in rows
    )
    assert all(r["ai_attempts"] == 0 and r["ai_error"] is None for r in rows)
    assert fake_openai["total"] <= 2
    assert db.query_value("SELECT status FROM run_log WHERE id_task=%s", (id_task,)) == "error"


def test_404_unknown_model(settings, db, fake_openai):
    fake_openai["models"] = {"other-model"}
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["tekst"])
    with pytest.raises(AiError, match="fake-model nie istnieje"):
        ai_worker.run_ai(conf(settings), id_task)
    assert item(db, id_item)["ai_attempts"] == 0


def test_missing_api_key_for_openai(settings, db):
    id_task = make_task(db, None)
    add_items(db, id_task, ["tekst"])
    with pytest.raises(AiError, match="brak klucza API: ustaw zmienną OPENAI_API_KEY"):
        ai_worker.run_ai(conf(settings), id_task)


def test_unknown_task_and_disabled_model(settings, db, fake_openai):
    with pytest.raises(UsageError, match="zadanie 999 nie istnieje"):
        ai_worker.run_ai(conf(settings), 999)
    id_task = make_task(db, fake_openai["base_url"], model_extra={"status": "disabled"})
    with pytest.raises(TaskError, match="wyłączony"):
        ai_worker.run_ai(conf(settings), id_task)
    no_model = add_task(db, 1)
    with pytest.raises(TaskError, match="nie ma przypisanego modelu"):
        ai_worker.run_ai(conf(settings), no_model)


def test_json_schema_rejected_falls_back(settings, db, fake_openai):
    fake_openai["reject_json_schema"] = True
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd a", "bląd b", "bląd c"])
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["response_format"] == "json_object" and stats["failed"] == 0 and stats["processed"] == 3
    assert stats["requests_sent"] == 4  # jedna próba json_schema, potem trzy zapytania json_object
    assert all(item(db, i)["ai_attempts"] == 0 for i in ids)
    formats = [r["payload"].get("response_format", {}).get("type") for r in fake_openai["requests"]]
    assert formats[0] == "json_schema" and set(formats[1:]) == {"json_object"}


def test_both_formats_rejected_uses_instructions(settings, db, fake_openai):
    fake_openai["reject_json_schema"] = True
    fake_openai["reject_json_object"] = True
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["bląd"])
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["response_format"] == "text" and item(db, id_item)["text_corrected"] == "błąd"
    assert "response_format" not in fake_openai["requests"][-1]["payload"]


def _formats(fake_openai) -> list[str | None]:
    return [r["payload"].get("response_format", {}).get("type") for r in fake_openai["requests"]]


def test_response_format_remembered_for_the_server_and_model(settings, db, fake_openai):
    """Format wykryty przez run trafia do ``ai_model.response_format`` wszystkich wierszy tego serwera
    i modelu; następny run (także zadania z innym wierszem ``ai_model`` na ten sam serwer) nie wysyła
    próby wstępnej - od pierwszego zapytania pyta w zapamiętanym formacie."""
    fake_openai["reject_json_schema"] = True
    first = make_task(db, fake_openai["base_url"])
    add_items(db, first, ["bląd a", "bląd b"])
    stats = ai_worker.run_ai(conf(settings), first)
    assert stats["response_format"] == "json_object" and stats["requests_sent"] == 3
    assert (
        db.query_value(
            "SELECT response_format FROM ai_model WHERE id_ai_model=(SELECT id_ai_model FROM task WHERE id_task=%s)",
            (first,),
        )
        == "json_object"
    )
    second = make_task(db, fake_openai["base_url"])  # nowy wiersz ai_model, ten sam serwer i model
    add_items(db, second, ["bląd c", "bląd d", "bląd e"])
    fake_openai["requests"].clear()
    stats = ai_worker.run_ai(conf(settings), second)
    assert stats["processed"] == 3 and stats["failed"] == 0 and stats["requests_sent"] == 3
    assert stats["response_format"] == "json_object"
    assert _formats(fake_openai) == ["json_object"] * 3
    # Inny model na tym samym serwerze nie korzysta z cudzej pamięci.
    other = make_task(db, fake_openai["base_url"], model_extra={"model": "other-model"})
    add_items(db, other, ["bląd f"])
    fake_openai["requests"].clear()
    ai_worker.run_ai(conf(settings), other)
    assert _formats(fake_openai) == ["json_schema", "json_object"]


def test_remembered_format_rejected_is_detected_again(settings, db, fake_openai):
    """Zapamiętany format, którego serwer już nie przyjmuje: odrzucenie nie jest błędem pozycji,
    run wykrywa format od następnego, słabszego, i zapamiętuje nowy."""
    fake_openai["reject_json_schema"] = True
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd a", "bląd b", "bląd c"])
    db.execute(
        "UPDATE ai_model SET response_format='json_schema' WHERE id_ai_model=(SELECT id_ai_model FROM task WHERE id_task=%s)",
        (id_task,),
    )
    stats = ai_worker.run_ai(conf(settings, AI_CONCURRENCY=1), id_task)
    assert stats["processed"] == 3 and stats["failed"] == 0
    assert all(item(db, i)["ai_attempts"] == 0 and item(db, i)["ai_error"] is None for i in ids)
    # Jedno odrzucone zapytanie w zapamiętanym formacie, potem od razu json_object (bez ponownego json_schema).
    assert _formats(fake_openai) == ["json_schema", "json_object", "json_object", "json_object"]
    assert stats["requests_sent"] == 4 and stats["response_format"] == "json_object"
    assert (
        db.query_value(
            "SELECT response_format FROM ai_model WHERE id_ai_model=(SELECT id_ai_model FROM task WHERE id_task=%s)",
            (id_task,),
        )
        == "json_object"
    )


def test_max_attempts_gives_up(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["wogóle"])
    cfg = conf(settings, AI_MAX_ATTEMPTS=2)
    add_fault(fake_openai, "malformed", times=4)
    first = ai_worker.run_ai(cfg, id_task)
    second = ai_worker.run_ai(cfg, id_task)
    assert first["failed"] == 1 and second["failed"] == 1 and second["given_up"] == 1
    third = ai_worker.run_ai(cfg, id_task)
    assert third["processed"] == 0 and third["failed"] == 0 and third["given_up"] == 1
    assert fake_openai["total"] == 4
    assert item(db, id_item)["ai_attempts"] == 2 and scheduling.tasks_with_pending_ai(db, 2) == []


def test_duplicates_sent_once_and_reused(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    texts = ["bląd A", "bląd B", "bląd A", "bląd A", "bląd C", "bląd B"] * 3
    ids = add_items(db, id_task, texts)
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert fake_openai["total"] == 3 and stats["requests_sent"] == 3
    assert set(fake_openai["per_text"].values()) == {1}
    rows = [item(db, i) for i in ids]
    assert all(r["status"] == "processed" for r in rows)
    assert sum(1 for r in rows if r["cost_usd"] > 0) == 3
    assert stats["processed"] == 3 and stats["reused"] == 15 and stats["skipped"] == 15
    # Nowa pozycja z tekstem już poprawionym w zadaniu: wynik z bazy, bez zapytania.
    [new_id] = add_items(db, id_task, ["bląd C"], start=100)
    again = ai_worker.run_ai(conf(settings), id_task)
    assert fake_openai["total"] == 3 and again["reused"] == 1
    assert item(db, new_id)["text_corrected"] == "błąd C" and item(db, new_id)["tokens_input"] == 0


def test_run_forgets_stored_groups_and_late_duplicates_reuse_the_database(
    settings, db, fake_openai, monkeypatch
):
    # Run nie trzyma w pamięci wyniku każdego różnego tekstu (pamięć rosła z wielkością zadania):
    # grupy z zapisanym wynikiem są zapominane przed kolejną rezerwacją, a duplikat, który przychodzi
    # w późniejszej rezerwacji, bierze wynik z bazy - nadal bez drugiego zapytania. Grupa z błędem
    # zostaje: jej późny duplikat dostaje ten sam błąd, też bez zapytania.
    id_task = make_task(db, fake_openai["base_url"])
    distinct = [f"bląd numer {n}" for n in range(60)]
    bad = "zły tekst, wogóle"
    ids = add_items(db, id_task, [bad, *distinct, *distinct[:10], bad])
    add_fault(fake_openai, "malformed", times=2, text=bad)  # zapytanie + próba naprawy
    peak = []
    claim_more = ai_online._claim_more

    def counting(run, *args):
        peak.append(len(run.groups))
        return claim_more(run, *args)

    monkeypatch.setattr(ai_online, "_claim_more", counting)
    stats = ai_worker.run_ai(conf(settings, AI_CONCURRENCY=2), id_task)
    assert fake_openai["per_text"].pop(bad) == 2
    assert fake_openai["total"] == 62 and set(fake_openai["per_text"].values()) == {1}
    assert stats["processed"] == 60 and stats["reused"] == 10 and stats["failed"] == 2
    assert all(item(db, i)["status"] == "processed" for i in ids[1:-1])
    assert all("JSON" in item(db, i)["ai_error"] for i in (ids[0], ids[-1]))
    # Rezerwacje po 5 pozycji, najwyżej 2 * 2 + zapasowe zadania w puli: w pamięci kilkanaście grup, nie 60.
    assert len(peak) > 10 and max(peak) <= 20


def test_texts_without_hash_are_not_sent(settings, db, fake_openai):
    # Tekst bez hasha (stan zgłaszany przez weryfikację) nie jest kandydatem AI: hash jest kluczem
    # identycznych tekstów - dawniej dwa różne teksty bez hasha dzieliły grupę (klucz None) i drugi
    # dostawał poprawkę pierwszego, a rezerwacja z hashami i bez kończyła się błędem sorted().
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["bląd pierwszy", "wogóle drugi", "napewno trzeci"])
    db.execute("UPDATE task_item SET original_hash=NULL WHERE id_task_item IN (%s, %s)", (ids[0], ids[1]))
    assert task_item.count_ai_eligible(db, id_task, 3) == 1
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert fake_openai["per_text"] == {"napewno trzeci": 1} and stats["processed"] == 1
    rows = [item(db, i) for i in ids]
    assert [r["text_corrected"] for r in rows] == [None, None, "na pewno trzeci"]
    assert all(r["status"] == "pending" and r["claim_uuid"] is None for r in rows[:2])


def test_outdated_item_is_corrected_again(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["bląd stary"])
    ai_worker.run_ai(conf(settings), id_task)
    new_text = "napewno nowy"
    db.execute(
        "UPDATE task_item SET text_original=%s, original_hash=%s, status='outdated', is_changed=1 WHERE id_task_item=%s",
        (new_text, compute_hash(new_text), id_item),
    )
    stats = ai_worker.run_ai(conf(settings), id_task)
    row = item(db, id_item)
    assert stats["processed"] == 1 and row["status"] == "processed" and row["is_changed"] == 0
    assert row["text_corrected"] == "na pewno nowy" and row["local_hash"] == compute_hash("na pewno nowy")


def test_changed_text_during_run_discards_answer(settings, db, fake_openai):
    fake_openai["latency"] = 0.6
    id_task = make_task(db, fake_openai["base_url"])
    [id_item] = add_items(db, id_task, ["bląd"])
    import threading

    def change():
        # Tekst zmienia się, gdy zapytanie już dotarło do serwera (odpowiedź w drodze).
        deadline = time.monotonic() + 30
        while fake_openai["total"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        db.execute(
            "UPDATE task_item SET text_original='inny', original_hash=%s WHERE id_task_item=%s",
            (compute_hash("inny"), id_item),
        )

    thread = threading.Thread(target=change)
    thread.start()
    stats = ai_worker.run_ai(conf(settings), id_task, limit=1)
    thread.join()
    row = item(db, id_item)
    assert stats["discarded"] == 1 and row["text_corrected"] is None and row["status"] == "pending"
    assert row["claim_uuid"] is None and row["operation_uuid"] is None


def test_dead_operation_claim_is_reclaimed(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    dead, alive = add_items(db, id_task, ["bląd martwy", "bląd żywy"])
    dead_op, live_op = str(uuid.uuid4()), str(uuid.uuid4())
    db.execute("UPDATE task_item SET claim_uuid=%s, claimed_at=NOW() WHERE id_task_item=%s", (dead_op, dead))
    db.execute("UPDATE task_item SET claim_uuid=%s, claimed_at=NOW() WHERE id_task_item=%s", (live_op, alive))
    holder = pymysql.connect(**MYSQL_SERVER, autocommit=True)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (ai_operation.LOCK_PREFIX + live_op,))
        stats = ai_worker.run_ai(conf(settings), id_task)
    finally:
        holder.close()
    assert item(db, dead)["status"] == "processed" and stats["processed"] == 1
    assert item(db, alive)["status"] == "pending" and item(db, alive)["claim_uuid"] == live_op
    # Właściciel zniknął (połączenie zamknięte): następny run przejmuje od razu.
    ai_worker.run_ai(conf(settings), id_task)
    assert item(db, alive)["status"] == "processed"


def test_budget_cap_stops_claiming(settings, db, fake_openai):
    """Limit kosztu: run wysyła tylko zapytania, których szacunek z góry mieści się w limicie.

    Zmiana zachowania (issue 14, 3b): dawniej run kończył rezerwację dopiero po przekroczeniu
    limitu (3-5 pozycji przy limicie 2,5 zapytania); teraz nigdy go nie przekracza, a zatrzymuje
    się dopiero, gdy następne zapytanie mogłoby go przekroczyć.
    """
    extra = {"price_input_per_mtok": "10.0000", "price_output_per_mtok": "10.0000", "max_output_tokens": 200}
    id_task = make_task(db, fake_openai["base_url"], model_extra=extra)
    texts = [f"bląd {n:02d}" for n in range(30)]
    ids = add_items(db, id_task, texts)
    limit = Decimal("0.05")
    stats = ai_worker.run_ai(
        conf(settings, AI_MAX_COST_USD=float(limit), AI_CONCURRENCY=1, AI_CLAIM_BATCH=1), id_task
    )
    processed = db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )
    spent = db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_task=%s", (id_task,))
    assert stats["budget_reached"] is True and processed >= 1 and stats["processed"] == processed
    assert spent <= limit and Decimal(str(stats["cost_usd"])) == spent
    # Zatrzymał się dopiero, gdy kolejne zapytanie (szacunek z góry) nie mieściło się w limicie.
    model = db.query_one(
        "SELECT * FROM ai_model WHERE id_ai_model=(SELECT id_ai_model FROM task WHERE id_task=%s)", (id_task,)
    )
    next_estimate = ai_cost.reserve_estimate(model, prompts.build_messages(texts[-1]), 200, requests=2)
    assert spent + next_estimate > limit
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid IS NOT NULL") == 0
    assert db.query_value("SELECT message FROM run_log WHERE id_task=%s", (id_task,)).startswith(
        "osiągnięto limit"
    )
    assert len(ids) - processed >= 15


def test_should_stop_finishes_in_flight_and_releases(settings, db, fake_openai):
    fake_openai["latency"] = 0.1
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, [f"bląd {n}" for n in range(40)])
    calls = []

    def should_stop():
        calls.append(1)
        return "manual" if len(calls) > 3 else None

    stats = ai_worker.run_ai(conf(settings), id_task, should_stop=should_stop)
    processed = db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )
    assert stats["stopped"] == "manual" and 0 < processed < 40 and stats["processed"] == processed
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid IS NOT NULL") == 0
    assert db.query_value("SELECT status FROM run_log WHERE id_task=%s", (id_task,)) == "paused"


def test_limit(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, [f"bląd {n}" for n in range(10)])
    stats = ai_worker.run_ai(conf(settings), id_task, limit=4)
    assert stats["processed"] == 4 and fake_openai["total"] == 4


def test_dry_run_sends_nothing(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, ["a" * 400, "b" * 400, "a" * 400, ""])
    estimate = ai_worker.dry_run(conf(settings), id_task)
    assert estimate["items"] == 3 and estimate["distinct_texts"] == 2 and estimate["characters"] == 800
    assert estimate["estimated_tokens_input"] > 200 and estimate["estimated_cost_usd"] > 0
    assert fake_openai["total"] == 0
    assert scheduling.tasks_with_pending_ai(db, settings.ai_max_attempts) == [id_task]


def _spawn_run(id_task: int, extra: dict) -> subprocess.Popen:
    code = (
        "import json, sys\n"
        "from lib.load_config import load_config\n"
        "from lib.ai.run import run_ai\n"
        "s = load_config(); s.update(json.loads(sys.argv[1]))\n"
        f"print(json.dumps(run_ai(s, {id_task})))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(extra)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_share_task_without_duplicates(settings, db, fake_openai):
    # Bramka na 2 zapytania: pierwsze zapytanie runu idzie samo (sprawdza obsługę json_schema),
    # więc drugie zapytanie może przyjść tylko z drugiego procesu. Żadne nie dostanie odpowiedzi,
    # dopóki oba procesy nie pracują - obaj muszą coś przetworzyć, niezależnie od tego, jak wolno
    # startuje drugi proces na obciążonej maszynie CI.
    fake_openai["latency"] = 0.05
    fake_openai["gate"] = 2
    id_task = make_task(db, fake_openai["base_url"])
    texts = [f"bląd numer {n}" for n in range(150)]
    add_items(db, id_task, texts)
    extra = {**FAST, "AI_CONCURRENCY": 4, "AI_CLAIM_BATCH": 3, "AI_TIMEOUT_S": 40.0}
    procs = [_spawn_run(id_task, extra) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,))
        == 150
    )
    assert set(fake_openai["per_text"].values()) == {1} and len(fake_openai["per_text"]) == 150
    assert sum(r["processed"] for r in results) == 150
    assert all(r["processed"] > 0 for r in results)
    # Start drugiego runu nie uznał pierwszego (żywego, z blokadą operacji) za porzucony.
    runs = db.query("SELECT status, operation_uuid FROM run_log WHERE id_task=%s AND kind='ai'", (id_task,))
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert {r["operation_uuid"] for r in runs} == {r["operation_uuid"] for r in results}
    # Każda przetworzona pozycja wskazuje run, który wytworzył jej wynik.
    producers = db.query(
        "SELECT operation_uuid, COUNT(*) AS n FROM task_item WHERE id_task=%s GROUP BY operation_uuid",
        (id_task,),
    )
    assert {r["operation_uuid"]: r["n"] for r in producers} == {
        r["operation_uuid"]: r["processed"] for r in results
    }


@pytest.mark.slow
def test_killed_process_claims_are_reclaimed_at_once(settings, db, fake_openai):
    fake_openai["latency"] = 5.0
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, [f"bląd {n}" for n in range(6)])
    proc = _spawn_run(id_task, {**FAST, "AI_CONCURRENCY": 2, "AI_CLAIM_BATCH": 2})
    deadline = time.monotonic() + 15
    while db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid IS NOT NULL") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid IS NOT NULL") > 0
    fake_openai["latency"] = 0.0
    time.sleep(0.2)  # serwer MariaDB zamyka sesję zabitego procesu (zwalnia GET_LOCK)
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["processed"] == 6


def rows_read(session) -> int:
    """Wiersze przeczytane przez sesję od ``FLUSH STATUS`` (``Handler_read_*`` bez wejść do indeksu)."""
    return sum(
        int(r["Value"])
        for r in session.query("SHOW SESSION STATUS LIKE 'Handler_read%'")
        if r["Variable_name"] != "Handler_read_key"
    )


def test_first_claim_reads_only_the_task_rows(settings, db):
    """Pierwsza rezerwacja runu (``after_id=0``) czyta indeks zadania, nie całą tabelę: pozycje innych
    zadań (tu 60 000 przetworzonych) nie są przechodzone (liczniki ``Handler_read_*`` sesji)."""
    other = add_task(db, 1)
    rows = [(other, n, f"gotowe {n}", compute_hash(f"gotowe {n}"), "processed") for n in range(60000)]
    db.executemany(
        "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, status) VALUES (%s, %s, %s, %s, %s)",
        rows,
    )
    id_task = add_task(db, 1)
    texts = [f"bląd {n}" for n in range(20000)]
    db.executemany(
        "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, status) VALUES (%s, %s, %s, %s, %s)",
        [(id_task, n, text, compute_hash(text), "pending") for n, text in enumerate(texts)],
    )
    db.execute("ANALYZE TABLE task_item")
    claimer = connect_local(settings)
    try:
        claimer.execute("FLUSH STATUS")
        claimed = task_item.claim_for_ai(
            claimer, id_task, str(uuid.uuid4()), 160, 5, 900, ai_operation.LOCK_PREFIXES
        )
        reads = rows_read(claimer)
    finally:
        claimer.close()
    assert len(claimed) == 160
    assert reads < 1000, reads


def test_end_of_run_release_reads_only_the_task_rows(settings, db):
    """Zwolnienie rezerwacji na końcu runu szuka w pozycjach zadania, nie w całej tabeli (tu 30 000
    pozycji innego zadania); zwalnia tylko rezerwacje tej operacji."""
    other = add_task(db, 1)
    foreign = str(uuid.uuid4())
    db.executemany(
        "INSERT INTO task_item (id_task, remote_id, text_original, original_hash, claim_uuid) VALUES (%s, %s, %s, %s, %s)",
        [(other, n, f"inne {n}", compute_hash(f"inne {n}"), foreign) for n in range(30000)],
    )
    id_task = add_task(db, 1)
    ids = add_items(db, id_task, [f"bląd {n}" for n in range(50)])
    operation = str(uuid.uuid4())
    db.execute(
        f"UPDATE task_item SET claim_uuid=%s WHERE id_task_item IN ({','.join(['%s'] * 40)})",
        (operation, *ids[:40]),
    )
    db.execute("ANALYZE TABLE task_item")
    releaser = connect_local(settings)
    try:
        releaser.execute("FLUSH STATUS")
        released = task_item.release_claims(releaser, operation, id_task=id_task)
        reads = rows_read(releaser)
    finally:
        releaser.close()
    assert released == 40
    assert reads < 1000, reads
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE claim_uuid=%s", (foreign,)) == 30000
    with pytest.raises(ValueError):
        task_item.release_claims(db, operation)


def test_items_total_counts_the_items_the_run_will_do(settings, db, fake_openai):
    """``items_total`` (postęp): pozycje do zrobienia przed pierwszą rezerwacją, z limitem runu."""
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, [f"bląd {n}" for n in range(7)])
    add_items(db, id_task, ["gotowe"], status="processed", start=100)
    seen: list[int] = []
    stats = ai_worker.run_ai(
        conf(settings), id_task, limit=3, progress=lambda s: seen.append(s.get("items_total", 0))
    )
    assert stats["items_total"] == 3 and stats["processed"] == 3
    assert seen and seen[-1] == 3
    assert ai_worker.run_ai(conf(settings), id_task)["items_total"] == 4
