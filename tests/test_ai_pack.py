"""Paczki tekstów (issue 14, część 1): kilka krótkich tekstów w jednym zapytaniu.

Prawdziwa MariaDB i prawdziwe HTTP przez SDK ``openai`` do ``tests/fake_openai.py``, który
odpowiada na paczki i psuje wybrane pozycje (brak, duplikat, nieznane id, niepoprawna treść).
"""

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from lib.ai import cost as ai_cost
from lib.ai import packs as ai_pack
from lib.ai import prompts
from lib.ai import run as ai_worker
from lib.db_utils import compute_hash
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import add_fault, correct_text, fake_openai_fixture  # noqa: F401
from tests.helpers import add_model, add_task

FAST = {
    "AI_BACKOFF_S": 0.05,
    "AI_MAX_RETRIES": 2,
    "AI_TIMEOUT_S": 5.0,
    "AI_CONCURRENCY": 2,
    "AI_CLAIM_BATCH": 5,
    "AI_PACK_ITEMS": 20,
    "AI_PACK_CHARS": 4000,
}
PRICES = {
    "price_input_per_mtok": "0.1500",
    "price_output_per_mtok": "0.6000",
    "price_cached_input_per_mtok": "0.0750",
}


def conf(settings, **extra):
    return settings.updated(**{**FAST, **extra})


def make_task(db, base_url: str, **model_extra) -> int:
    id_model = add_model(db, name=f"m{os.urandom(3).hex()}", base_url=base_url, **{**PRICES, **model_extra})
    return add_task(db, 1, id_ai_model=id_model)


def add_items(db, id_task: int, texts: list[str]) -> list[int]:
    ids = []
    for n, text in enumerate(texts, start=1):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, text_original, original_hash) VALUES (%s, %s, %s, %s)",
            (id_task, n, text, compute_hash(text)),
        )
        ids.append(int(db.last_insert_id))
    return ids


def model_of(db, id_task: int) -> dict:
    return db.query_one(
        "SELECT m.* FROM ai_model m JOIN task t ON t.id_ai_model=m.id_ai_model WHERE t.id_task=%s", (id_task,)
    )


def billed(fake_openai, model: dict) -> tuple[int, int, Decimal]:
    """Rachunek wszystkich zapytań zapisanych przez serwer: tokeny wejścia, wyjścia, koszt (USD)."""
    tokens_in = tokens_out = 0
    cost = Decimal(0)
    for request in fake_openai["requests"]:
        usage = request.get("usage")
        if usage is None:
            continue
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        tokens_in += usage["prompt_tokens"]
        tokens_out += usage["completion_tokens"]
        cost += ai_cost.compute_cost(usage["prompt_tokens"], cached, usage["completion_tokens"], model)
    return tokens_in, tokens_out, cost


def stored_bill(db, id_task: int) -> tuple[int, int, Decimal]:
    row = db.query_one(
        "SELECT SUM(tokens_input) AS tin, SUM(tokens_output) AS tout, SUM(cost_usd) AS cost FROM task_item "
        "WHERE id_task=%s",
        (id_task,),
    )
    return int(row["tin"]), int(row["tout"]), row["cost"]


SHORT = [
    "To jest bląd w opisie produktu.",
    "Wogóle nie działa, napewno do poprawy {name}.",
    "Krzesło <b>dębowe</b>, bląd w cenie %s.",
    "Stół\nz drugą linią, bez zmian.",
    "Lampa :color, bląd.",
    "Zestaw „Mały ogrodnik” – napewno dla dzieci.",
]


def expected_text(text: str) -> str:
    return correct_text(text)[0]


# --- czyste funkcje ------------------------------------------------------------------------------


def test_split_integer_remainder_goes_to_one_item_and_sums_exactly():
    assert ai_cost.split_integer(10, [1, 1, 1]) == [4, 3, 3]  # reszta do pierwszej z równych
    assert ai_cost.split_integer(100, [10, 30, 60]) == [10, 30, 60]
    parts = ai_cost.split_integer(7, [5, 50, 5])
    assert sum(parts) == 7 and parts[1] == max(parts)
    assert ai_cost.split_integer(5, [0, 0]) == [3, 2]
    shares = ai_cost.split_bill(1234, 100, 567, Decimal("0.000987"), [31, 7, 200, 1])
    assert sum(s.tokens_input for s in shares) == 1234 and sum(s.tokens_output for s in shares) == 567
    assert sum(s.tokens_cached for s in shares) == 100
    assert sum(s.cost for s in shares) == Decimal("0.000987")


def test_plan_packs_limits_and_long_texts_alone():
    texts = ["a" * 10, "b" * 10, "c" * 60, "d" * 10, "e" * 45, "f" * 5]
    packs = ai_pack.plan_packs(texts, lambda t: t, max_items=2, max_chars=100)
    # "c" (60 > 100 // 2) jedzie sam; reszta po 2 teksty i najwyżej 100 znaków.
    assert sorted(packs) == sorted([["a" * 10, "b" * 10], ["c" * 60], ["d" * 10, "e" * 45], ["f" * 5]])
    assert ai_pack.plan_packs(texts, lambda t: t, max_items=1, max_chars=100) == [[t] for t in texts]
    assert ai_pack.plan_packs(["x" * 30] * 4, lambda t: t, max_items=10, max_chars=70) == [["x" * 30] * 2] * 2


def test_parse_pack_reports_each_bad_item_alone():
    originals = ["a {x}", "b", "c", "d"]
    content = json.dumps(
        {
            "items": [
                {"id": "1", "text": "a", "edits": []},  # zgubiony placeholder
                {"id": "2", "text": "B", "edits": []},
                {"id": "2", "text": "B", "edits": []},  # duplikat
                {"id": "9", "text": "?", "edits": []},  # nieznane id; "3" brak
                {"id": "4", "text": "D", "edits": []},
            ]
        }
    )
    answers, problems = ai_pack.parse_pack(content, originals)
    assert set(answers) == {3} and answers[3]["text"] == "D"
    assert set(problems) == {0, 1, 2}
    assert "{x}" in problems[0] and "2 odpowiedzi" in problems[1] and "brak" in problems[2]
    answers, problems = ai_pack.parse_pack("{nie json", originals)
    assert answers == {} and set(problems) == {0, 1, 2, 3}


# --- silnik przez HTTP ---------------------------------------------------------------------------


def test_pack_sends_texts_verbatim_once_and_splits_the_bill_exactly(settings, db, fake_openai):
    fake_openai["cached_tokens"] = 40
    id_task = make_task(db, fake_openai["base_url"])
    texts = SHORT + SHORT[:2]  # dwa duplikaty
    ids = add_items(db, id_task, texts)
    stats = ai_worker.run_ai(conf(settings), id_task)

    [request] = fake_openai["requests"]
    messages = request["payload"]["messages"]
    # Stała część promptu pierwsza (cache prefiksu), potem tablica JSON z tekstami dosłownie.
    assert messages[0] == {
        "role": "system",
        "content": prompts.system_prompt("correct", None, None, None, pack=True),
    }
    assert json.loads(messages[1]["content"]) == [{"id": str(n + 1), "text": t} for n, t in enumerate(SHORT)]
    assert request["payload"]["response_format"]["json_schema"]["schema"] == prompts.PACK_ANSWER_SCHEMA
    assert set(fake_openai["per_text"].values()) == {1} and len(fake_openai["per_text"]) == len(SHORT)

    rows = db.query("SELECT * FROM task_item WHERE id_task=%s ORDER BY id_task_item", (id_task,))
    assert [r["text_corrected"] for r in rows] == [expected_text(t) for t in texts]
    assert all(r["status"] == "processed" and r["claim_uuid"] is None for r in rows)
    assert {r["operation_uuid"] for r in rows} == {stats["operation_uuid"]}
    summary = json.loads(rows[0]["change_summary"])
    assert summary["counts"]["spelling"] == 1 and summary["edits"][0]["original"] == "bląd"
    # Suma po pozycjach = rachunek API co do tokena i mikrodolara; duplikaty 0.
    model = model_of(db, id_task)
    assert stored_bill(db, id_task) == billed(fake_openai, model)
    assert all(r["cost_usd"] == 0 and r["tokens_input"] == 0 for r in rows[len(SHORT) :])
    # Podział po znakach: dłuższy tekst płaci więcej.
    by_text = {r["text_original"]: r for r in rows[: len(SHORT)]}
    assert by_text[SHORT[5]]["tokens_input"] > by_text[SHORT[4]]["tokens_input"]
    assert stats["packs_sent"] == 1 and stats["items_in_packs"] == len(SHORT) and stats["requests_sent"] == 1
    assert stats["processed"] == len(SHORT) and stats["reused"] == 2 and stats["tokens_cached"] == 40
    assert Decimal(str(stats["cost_usd"])) == billed(fake_openai, model)[2]
    assert len(ids) == len(rows)


def test_pack_store_keeps_quotes_backslashes_and_emoji_verbatim(settings, db, fake_openai):
    # Zapis paczki składa zapytanie w bajtach (``sql_literal``), nie przez parametry PyMySQL:
    # apostrofy, backslashe (także przed apostrofem), cudzysłowy, znaki spoza BMP i nowe linie
    # muszą dojść do bazy bez zmian - w tekście i w podsumowaniu zmian (JSON).
    texts = [
        "O'Reilly: to jest bląd.",
        "Ścieżka C:\\temp\\ i \\' na końcu, wogóle",
        'Cytat "w cudzysłowie" \\"x\\" napewno',
        "Emoji 🎉🪑 i bląd\r\nnowa linia\ttab",
        "Znak NUL \x00 w środku, bląd",
        "Sam backslash na końcu, bląd \\",
    ]
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, texts)
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["packs_sent"] == 1 and stats["processed"] == len(texts)
    rows = db.query("SELECT * FROM task_item WHERE id_task=%s ORDER BY id_task_item", (id_task,))
    assert [r["text_original"] for r in rows] == texts
    assert [r["text_corrected"] for r in rows] == [expected_text(t) for t in texts]
    for row, text in zip(rows, texts, strict=True):
        edits = correct_text(text)[1]
        assert json.loads(row["change_summary"])["edits"] == edits
        assert row["local_hash"] == compute_hash(expected_text(text))
    model = model_of(db, id_task)
    assert stored_bill(db, id_task) == billed(fake_openai, model)


def tmp_tables(session) -> dict[str, int]:
    """Liczniki tabel tymczasowych sesji (``Created_tmp_tables`` i ``Created_tmp_disk_tables``)."""
    return {
        r["Variable_name"]: int(r["Value"])
        for r in session.query("SHOW SESSION STATUS LIKE 'Created_tmp%tables'")
    }


def test_store_ai_results_one_statement_per_pack_no_temp_tables(settings, db):
    # Zapis paczki: jedno UPDATE po kluczu głównym z wartościami wybieranymi przez ELT(FIELD(...)).
    # Sprawdzane wprost: wyniki trafiają do właściwych wierszy (także grupa duplikatów i NULL hash),
    # wiersz ze zmienionym w międzyczasie tekstem nie jest zapisany i zostaje zarezerwowany, a
    # polecenie nie tworzy tabel tymczasowych (poprzednie UPDATE ... JOIN (SELECT ... UNION ALL)
    # tworzyło przy każdej paczce tabele tymczasowe, w benchmarku jedną z nich na dysku).
    from lib import task_item
    from lib.db_local import connect_local

    id_task = make_task(db, "http://127.0.0.1:9/v1")
    a, b1, b2, stale, empty = add_items(db, id_task, ["tekst a", "tekst b", "tekst b", "tekst c", "tekst d"])
    db.execute("UPDATE task_item SET original_hash=NULL WHERE id_task_item=%s", (empty,))
    operation = "11111111-2222-3333-4444-555555555555"
    db.execute("UPDATE task_item SET claim_uuid=%s WHERE id_task=%s", (operation, id_task))

    def result(ids, original, text, tokens, cost):
        return {
            "ids": ids,
            "original_hash": original,
            "text": text,
            "text_hash": compute_hash(text),
            "summary": json.dumps({"n": text}),
            "tokens_input": tokens,
            "tokens_output": tokens + 1,
            "cost": Decimal(cost),
        }

    results = [
        result([a], compute_hash("tekst a"), "Tekst A, 'x' \\ 🎉", 11, "0.000011"),
        result([b1, b2], compute_hash("tekst b"), "Tekst B", 7, "0.000007"),
        result([stale], compute_hash("inny tekst"), "Tekst C", 5, "0.000005"),
        result([empty], None, "Tekst D", 3, "0.000003"),
    ]
    session = connect_local(settings, autocommit=True)
    try:
        session.execute("FLUSH STATUS")
        before = tmp_tables(session)
        assert task_item.store_ai_results(session, operation, results) == [1, 2, 0, 1]
        after = tmp_tables(session)
    finally:
        session.close()
    assert after == before

    rows = {r["id_task_item"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    for id_item, expected in ((a, results[0]), (b1, results[1]), (b2, results[1]), (empty, results[3])):
        row = rows[id_item]
        assert (
            row["status"] == "processed" and row["claim_uuid"] is None and row["operation_uuid"] == operation
        )
        assert row["text_corrected"] == expected["text"] and row["local_hash"] == expected["text_hash"]
        assert row["change_summary"] == expected["summary"]
        assert (row["tokens_input"], row["tokens_output"]) == (
            expected["tokens_input"],
            expected["tokens_output"],
        )
        assert row["cost_usd"] == expected["cost"]
    assert rows[stale]["status"] != "processed" and rows[stale]["text_corrected"] is None
    assert rows[stale]["claim_uuid"] == operation


@pytest.mark.parametrize(
    "kind",
    ["pack_drop", "pack_duplicate", "pack_unknown_id", "pack_invalid", "drop_placeholder", "lone_surrogate"],
)
def test_bad_item_is_retried_alone_rest_of_pack_stored(settings, db, fake_openai, kind):
    id_task = make_task(db, fake_openai["base_url"])
    victim = SHORT[1]  # ma placeholder {name}
    add_items(db, id_task, SHORT)
    add_fault(fake_openai, kind, text=victim)
    stats = ai_worker.run_ai(conf(settings), id_task)

    # Jedna paczka + jedno zapytanie o sam zły tekst; paczka nie poszła drugi raz.
    assert fake_openai["total"] == 2 and fake_openai["packs"] == 1
    assert fake_openai["per_text"][victim] == 2
    assert all(n == 1 for text, n in fake_openai["per_text"].items() if text != victim)
    single = fake_openai["requests"][1]["payload"]["messages"]
    assert single[1] == {"role": "user", "content": victim}
    rows = {r["text_original"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    assert all(
        r["status"] == "processed" and r["text_corrected"] == expected_text(t) for t, r in rows.items()
    )
    assert rows[victim]["ai_attempts"] == 0 and rows[victim]["ai_error"] is None
    assert stats["retried_alone"] == 1 and stats["failed"] == 0 and stats["processed"] == len(SHORT)
    # Zły tekst płaci swoją część paczki i swoje zapytanie; suma = cały rachunek.
    model = model_of(db, id_task)
    assert stored_bill(db, id_task) == billed(fake_openai, model)
    own = fake_openai["requests"][1]["usage"]
    assert rows[victim]["tokens_input"] > own["prompt_tokens"]


def test_whole_pack_unreadable_each_item_retried_alone_once(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, SHORT[:3])
    add_fault(fake_openai, "malformed", text=SHORT[0])  # pasuje do paczki (zawiera ten tekst)
    ai_worker.run_ai(conf(settings), id_task)
    assert fake_openai["total"] == 4 and fake_openai["packs"] == 1
    assert all(fake_openai["per_text"][t] == 2 for t in SHORT[:3])
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,))
        == 3
    )
    assert stored_bill(db, id_task) == billed(fake_openai, model_of(db, id_task))


def test_item_failing_alone_too_gets_error_others_stored(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, SHORT[:4])
    add_fault(fake_openai, "pack_invalid", text=SHORT[1])
    add_fault(fake_openai, "drop_placeholder", times=2, text=SHORT[1])  # sam tekst: błąd i naprawa też złe
    stats = ai_worker.run_ai(conf(settings), id_task)
    row = db.query_one("SELECT * FROM task_item WHERE id_task=%s AND text_original=%s", (id_task, SHORT[1]))
    assert row["status"] == "pending" and row["ai_attempts"] == 1 and "{name}" in row["ai_error"]
    assert stats["failed"] == 1 and stats["processed"] == 3 and fake_openai["total"] == 3


def test_pack_limits_from_model_row_and_long_texts_alone(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"], pack_items=2, pack_chars=200)
    long_text = "Długi opis, bląd. " * 8  # 136 znaków > 200 // 2
    texts = [f"bląd numer {n}" for n in range(5)] + [long_text]
    add_items(db, id_task, texts)
    ai_worker.run_ai(conf(settings, AI_CLAIM_BATCH=10), id_task)
    sizes = sorted(len(r["texts"]) for r in fake_openai["requests"])
    assert sizes == [1, 1, 2, 2]  # 5 krótkich po 2 (+1 sam) i długi sam
    alone = [r for r in fake_openai["requests"] if r["texts"] == [long_text]]
    assert alone and alone[0]["payload"]["messages"][1]["content"] == long_text
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,))
        == 6
    )


@pytest.mark.parametrize("reject", ["json_schema", "both"])
def test_pack_falls_back_to_weaker_response_format(settings, db, fake_openai, reject):
    fake_openai["reject_json_schema"] = True
    fake_openai["reject_json_object"] = reject == "both"
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, SHORT)
    stats = ai_worker.run_ai(conf(settings), id_task)
    assert stats["response_format"] == ("text" if reject == "both" else "json_object")
    assert stats["processed"] == len(SHORT) and stats["failed"] == 0
    # Sondy formatu nie są błędem pozycji; każdy tekst w zapisanej odpowiedzi raz.
    assert db.query_value("SELECT SUM(ai_attempts) FROM task_item WHERE id_task=%s", (id_task,)) == 0
    assert stored_bill(db, id_task) == billed(fake_openai, model_of(db, id_task))


def test_pack_of_translations(settings, db, fake_openai):
    id_task = make_task(db, fake_openai["base_url"])
    db.execute("UPDATE task SET ai_action='translate', target_lang='en' WHERE id_task=%s", (id_task,))
    add_items(db, id_task, SHORT[:3])
    ai_worker.run_ai(conf(settings), id_task)
    assert fake_openai["packs"] == 1
    rows = db.query("SELECT text_original, text_corrected FROM task_item WHERE id_task=%s", (id_task,))
    assert all(r["text_corrected"] == f"[en] {r['text_original']}" for r in rows)


def test_text_changed_while_pack_in_flight_only_that_item_discarded(settings, db, fake_openai):
    fake_openai["latency"] = 0.6
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, SHORT[:4])
    import threading
    import time

    def change() -> None:
        deadline = time.monotonic() + 30
        while fake_openai["total"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        db.execute(
            "UPDATE task_item SET text_original='inny', original_hash=%s WHERE id_task_item=%s",
            (compute_hash("inny"), ids[2]),
        )

    thread = threading.Thread(target=change)
    thread.start()
    stats = ai_worker.run_ai(conf(settings), id_task, limit=4)
    thread.join()
    rows = {r["id_task_item"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    assert rows[ids[2]]["status"] == "pending" and rows[ids[2]]["text_corrected"] is None
    assert rows[ids[2]]["claim_uuid"] is None and rows[ids[2]]["cost_usd"] == 0
    assert all(rows[i]["status"] == "processed" for i in (ids[0], ids[1], ids[3]))
    assert stats["discarded"] == 1 and stats["processed"] == 3 and fake_openai["packs"] == 1


# --- śmierć procesu w środku paczki ------------------------------------------------------------------

CRASH_TEXTS = [f"Opis {n % 30}: bląd, wogóle {'x' * (n % 30 % 7)}" for n in range(40)]  # 30 różnych


def _run_ai_process(local_env: dict, id_task: int, fault: str | None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **local_env,
        "AI_CONCURRENCY": "2",
        "AI_CLAIM_BATCH": "5",
        "AI_PACK_ITEMS": "5",
        "AI_BACKOFF_S": "0.05",
        "AI_TIMEOUT_S": "10",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("AILEXIA_FAULT", None)
    if fault:
        env["AILEXIA_FAULT"] = fault
    code = (
        "import sys\nfrom lib.load_config import load_config\nfrom lib.ai.run import run_ai\n"
        f"run_ai(load_config(), {id_task})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("fault", ["ai.request:3", "ai.store:2", "ai.pack_stored:2"])
def test_crash_mid_pack_then_resume_pays_nothing_twice(local_env, settings, db, fake_openai, fault):
    """SIGKILL w trakcie paczek; po wznowieniu każdy tekst opłacony w bazie raz.

    Tekst, którego wynik został zatwierdzony przed śmiercią, nie jest wysyłany ponownie
    (``operation_uuid`` wskazuje zabity run). Ponownie idą tylko teksty, których odpowiedź
    zginęła z procesem (paczki w drodze albo odebrane, ale niezatwierdzone) - każdy najwyżej raz
    więcej; paczka zapisuje się w całości albo wcale.
    """
    fake_openai["latency"] = 0.05
    id_task = make_task(db, fake_openai["base_url"])
    add_items(db, id_task, CRASH_TEXTS)
    killed = _run_ai_process(local_env, id_task, fault)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    dead_op = db.query_value("SELECT operation_uuid FROM run_log WHERE id_task=%s AND kind='ai'", (id_task,))
    before = db.query(
        "SELECT text_original, original_hash, cost_usd FROM task_item WHERE id_task=%s AND operation_uuid=%s",
        (id_task, dead_op),
    )
    sent_before = dict(fake_openai["per_text"])
    rerun = _run_ai_process(local_env, id_task, None)
    assert rerun.returncode == 0, rerun.stderr

    rows = db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))
    assert all(r["status"] == "processed" and r["claim_uuid"] is None for r in rows)
    paid = db.query(
        "SELECT original_hash, SUM(cost_usd > 0) AS paid FROM task_item WHERE id_task=%s GROUP BY original_hash",
        (id_task,),
    )
    assert len(paid) == 30 and all(p["paid"] == 1 for p in paid)
    stored_early = {r["text_original"] for r in before}
    if fault.startswith("ai.pack_stored"):
        assert len(stored_early) >= 10  # dwie paczki zatwierdzone przed śmiercią
    # Tylko teksty pozycji (zapytanie przerwane przez SIGKILL w pół wysyłania serwer widzi jako puste).
    sent = {t: n for t, n in fake_openai["per_text"].items() if t in set(CRASH_TEXTS)}
    assert all(sent[t] == 1 for t in stored_early)  # zatwierdzone przed śmiercią: nie wysłane drugi raz
    assert len(sent) == 30 and max(sent.values()) <= 2, set(fake_openai["per_text"]) - set(CRASH_TEXTS)
    # Ponownie wysłane tylko teksty wysłane przed śmiercią bez zatwierdzonego wyniku.
    again = {t for t, n in sent.items() if n == 2}
    assert again <= set(sent_before) - stored_early
    if fault.startswith("ai.request"):
        # Śmierć przed wysłaniem 3. paczki: odpowiedzi dwóch pierwszych mogły jeszcze nie być zapisane.
        assert len(again) <= 2 * 5
    # Paczka zapisuje się w całości: teksty zapisane przez zabity run to całe paczki po 5 tekstów.
    assert len({r["original_hash"] for r in before if r["cost_usd"] > 0}) % 5 == 0
