"""Faza nauki (pilot, in_learning), flagi zabezpieczeń w zapisie wyników, ``ai.py --eval``,
``review.py dump --format eval`` - na prawdziwej MariaDB i przez HTTP do serwera testowego."""

import io
import json
import uuid

import pytest

import ai
import review
from lib.ai import learning, prompts
from lib.ai import run as ai_worker
from lib.ai.quality import guardrails
from lib.db_utils import compute_hash
from lib.review import decisions
from lib.review.dump import dump_items
from lib.runtime import scheduling
from lib.task import finish_sync
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_model, add_task

FAST = {"AI_BACKOFF_S": 0.05, "AI_MAX_RETRIES": 2, "AI_TIMEOUT_S": 5.0, "AI_CONCURRENCY": 4}


def conf(settings, **extra):
    return settings.updated(**{**FAST, **extra})


def make_task(db, base_url, pilot=None, **extra):
    """Model na serwerze testowym (ceny 1 USD / mln tokenów) i zadanie ``completed`` z tym modelem."""
    id_model = add_model(
        db,
        name=f"m{uuid.uuid4().hex[:6]}",
        base_url=base_url,
        price_input_per_mtok="1.0000",
        price_output_per_mtok="1.0000",
    )
    return add_task(db, 1, id_ai_model=id_model, ai_pilot_items=pilot, status="completed", **extra)


def add_items(db, id_task, texts):
    ids = []
    for offset, text in enumerate(texts):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, remote_key, source_ord, text_original, original_hash) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (id_task, offset + 1, f"[{offset + 1}]", offset + 1, text, compute_hash(text)),
        )
        ids.append(int(db.last_insert_id))
    return ids


def sent_texts(fake):
    return dict(fake["per_text"])


TEXTS = [f"Zdanie numer {n} ma bląd." for n in range(1, 11)]


def test_pilot_end_to_end(settings, db, fake_openai, capsys):
    """N=3 z 10 różnych tekstów: co 3. tekst (1, 4, 7), duplikat tekstu 4 też w pilocie; in_learning;
    nic więcej do zatwierdzenia (run, ai.py, sensor, cron); po zatwierdzeniu reszta, nic dwa razy."""
    s = conf(settings)
    id_task = make_task(db, fake_openai["base_url"], pilot=3)
    ids = add_items(db, id_task, [*TEXTS, TEXTS[3]])
    stats = ai_worker.run_ai(s, id_task)

    pilot_texts = [TEXTS[0], TEXTS[3], TEXTS[6]]
    assert sent_texts(fake_openai) == {text: 1 for text in pilot_texts}
    assert stats["processed"] == 3 and stats["reused"] == 1 and stats["pilot"] == "in_learning"
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "in_learning"
    marked = db.query("SELECT id_task_item FROM task_item WHERE id_ai_pilot IS NOT NULL ORDER BY 1")
    assert [r["id_task_item"] for r in marked] == [ids[0], ids[3], ids[6], ids[10]]
    version = db.query_value("SELECT DISTINCT prompt_version FROM task_item WHERE status='processed'")
    assert len(version) == 12
    assert db.query_value("SELECT prompt_version FROM ai_pilot WHERE id_task=%s", (id_task,)) == version

    # In_learning: nic nie jest wysyłane - run, ai.py (jedna linia, kod 0), sensor AI, tryb cron.
    total = fake_openai["total"]
    assert ai_worker.run_ai(s, id_task)["pilot"] == "in_learning"
    assert ai.main(["--id_task", str(id_task)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "in_learning" in out[0] and f"review.py pilot --id_task {id_task}" in out[0]
    assert scheduling.tasks_with_pending_ai(db, 3) == []
    assert all(not row["eligible"] for row in scheduling.completed_since(db, None, 3, settle_s=0))
    assert fake_openai["total"] == total
    # Synchronizacja w fazie nauki kończy się w in_learning, nie w completed (sensor AI nic nie zleca).
    db.execute("UPDATE task SET status='verifying' WHERE id_task=%s", (id_task,))
    finish_sync(db, id_task, 0)
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "in_learning"

    # Ocena: przyjęta, poprawiona (recenzent dopisał kropkę), odrzucona.
    decisions.set_decision(db, id_task, [ids[0]], "accepted", "anna")
    outcome = decisions.edit_and_accept(db, ids[3], "Zdanie numer 4 ma błąd!", "anna")
    assert outcome.reason is None
    decisions.set_decision(db, id_task, [ids[6]], "rejected", "anna")
    figures = learning.pilot_figures(db, id_task, s)
    cost = float(db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_ai_pilot IS NOT NULL"))
    # Przyjęta: 1 TP; poprawiona: edycja modelu ("błąd") różna od edycji recenzenta ("błąd !") - 1 FP;
    # odrzucona: wzorzec bez edycji - 1 FP. Precyzja 1/3.
    assert figures["items"] == 4 and figures["texts"] == 3 and figures["reviewed"] == 3
    assert (figures["accepted"], figures["edited"], figures["rejected"]) == (1, 1, 1)
    assert figures["acceptance_rate"] == round(1 / 3, 4)
    assert (figures["tp"], figures["fp"], figures["precision"]) == (1, 2, round(1 / 3, 4))
    assert figures["cost_usd"] == pytest.approx(cost) and cost > 0
    assert figures["remaining_texts"] == 7
    assert figures["projected_cost_usd"] == pytest.approx(round(cost / 3 * 7, 6))
    assert figures["flagged"] == 0

    assert review.main(["pilot", "--id_task", str(id_task), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["precision"] == figures["precision"]
    assert review.main(["pilot", "--id_task", str(id_task), "--approve", "--by", "anna"]) == 0
    capsys.readouterr()
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    pilot = db.query_one("SELECT * FROM ai_pilot WHERE id_task=%s", (id_task,))
    assert pilot["status"] == "approved" and pilot["approved_by"] == "anna" and pilot["reviewed"] == 3
    # Sensor AI widzi zadanie znowu (nowe finished_at, pozycje do AI).
    assert any(row["eligible"] for row in scheduling.completed_since(db, None, 3, settle_s=0))

    stats = ai_worker.run_ai(s, id_task)
    assert stats["pilot"] is None and stats["processed"] == 7
    assert sent_texts(fake_openai) == {text: 1 for text in TEXTS}
    assert db.query_value("SELECT COUNT(*) FROM task_item WHERE status='pending'") == 0


def test_pilot_redo_with_another_model(settings, db, fake_openai, capsys):
    """Pilot od nowa innym modelem: te same pozycje wracają do pending, poprzedni pilot w historii."""
    s = conf(settings)
    id_task = make_task(db, fake_openai["base_url"], pilot=2)
    add_items(db, id_task, TEXTS[:6])
    ai_worker.run_ai(s, id_task)
    first = sent_texts(fake_openai)
    assert sorted(first) == [TEXTS[0], TEXTS[3]]
    add_model(db, name="other", model="other-model", base_url=fake_openai["base_url"])
    code = review.main(["pilot", "--id_task", str(id_task), "--redo", "--model", "other", "--by", "olek"])
    assert code == 0, capsys.readouterr()
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE status='pending' AND id_ai_pilot IS NOT NULL")
        == 2
    )

    requests_before = len(fake_openai["requests"])
    stats = ai_worker.run_ai(s, id_task)
    assert stats["pilot"] == "in_learning"
    assert sent_texts(fake_openai) == {TEXTS[0]: 2, TEXTS[3]: 2}
    assert {r["payload"]["model"] for r in fake_openai["requests"][requests_before:]} == {"other-model"}
    history = db.query(
        "SELECT status, redone_by, id_ai_model FROM ai_pilot WHERE id_task=%s ORDER BY id_ai_pilot",
        (id_task,),
    )
    assert [(h["status"], h["redone_by"]) for h in history] == [("redone", "olek"), ("in_learning", None)]
    other = db.query_value("SELECT id_ai_model FROM ai_model WHERE name='other'")
    assert history[1]["id_ai_model"] == other
    assert db.query_value("SELECT id_ai_model FROM task WHERE id_task=%s", (id_task,)) == other


GUARDED = {
    "numbers": ("Cena tego zestawu wynosi 120 zł za sztukę w naszym sklepie internetowym.",
                "Cena tego zestawu wynosi 12 zł za sztukę w naszym sklepie internetowym."),
    "urls": ("Więcej informacji znajdziesz na https://example.com/pomoc w dziale pomocy dla klientów sklepu.",
             "Więcej informacji znajdziesz na example w dziale pomocy dla klientów sklepu."),
    "emails": ("Pisz na biuro@firma.pl albo dzwoń do nas w dni robocze rano i po południu.",
               "Pisz na biuro albo dzwoń do nas w dni robocze rano i po południu."),
    "edit_ratio": ("Kot siedzi na oknie i patrzy na ptaki w ogrodzie sąsiada.",
                   "Pies leży pod stołem oraz obserwuje muchy w kuchni babci."),
    "length": ("Krótkie zdanie.", "Krótkie zdanie, które model rozpisał na bardzo wiele słów."),
    "language": ("Dzisiaj rano poszliśmy do sklepu kupić chleb i mleko dla całej rodziny.",
                 "This morning we went to the shop to buy bread and milk for the whole family."),
}  # fmt: skip


@pytest.mark.parametrize("pack_items", [1, 20])
def test_guardrails_stored_as_flags(settings, db, fake_openai, pack_items):
    """Każda zasada z przykładem trafia do ``ai_flags``; zwykła poprawka bez flag (pojedynczo i w paczce)."""
    id_task = make_task(db, fake_openai["base_url"])
    fake_openai["answers"] = dict(GUARDED.values())
    ordinary = "To jest bląd w zdaniu, a wogóle nic więcej."
    ids = add_items(db, id_task, [original for original, _answer in GUARDED.values()] + [ordinary])
    stats = ai_worker.run_ai(conf(settings, AI_PACK_ITEMS=pack_items), id_task)
    assert stats["flagged"] == len(GUARDED)
    rows = {r["id_task_item"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    for id_item, (code, (original, answer)) in zip(ids, GUARDED.items(), strict=False):
        row = rows[id_item]
        assert row["status"] == "processed" and row["text_corrected"] == answer
        assert code in json.loads(row["ai_flags"]), (code, row["ai_flags"])
        assert row["ai_flags"] == json.dumps(guardrails.answer_flags(original, answer))
    assert rows[ids[-1]]["ai_flags"] is None and rows[ids[-1]]["status"] == "processed"
    task = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    model = db.query_one("SELECT * FROM ai_model WHERE id_ai_model=%s", (task["id_ai_model"],))
    assert {r["prompt_version"] for r in rows.values()} == {prompts.prompt_version("correct", model)}
    assert stats["quality"]["flagged"] == len(GUARDED)
    assert stats["quality"]["flags_language"] >= 1


EVAL_LINES = [
    {"id": "a", "text": "To jest bląd.", "reference": "To jest błąd.", "categories": ["spelling"]},
    {"id": "b", "text": "Wszystko dobrze.", "reference": "Wszystko dobrze."},
    {
        "id": "c",
        "text": "Ala ma kota",
        "references": ["Ala ma kota.", "Ala ma kota!"],
        "categories": ["punct"],
    },
    {"id": "d", "text": "Jest wogóle dobrze", "reference": "Jest w ogóle dobrze", "categories": ["spelling"]},
    {"id": "e", "text": "Pies biega.", "reference": "Pies biega."},
]


@pytest.mark.parametrize("pack_items", [1, 20])
def test_eval_command_figures_by_hand(settings, db, fake_openai, tmp_path, capsys, pack_items, monkeypatch):
    """Zestaw przez skryptowany serwer: a, d trafione (TP 2), e zmienione niepotrzebnie (FP 1),
    c bez kropki (FN 1): P = R = F0.5 = 2/3; już poprawne b, e - zmienione 1 z 2; exact a, b, d = 3/5."""
    monkeypatch.setenv("AI_PACK_ITEMS", str(pack_items))
    fake_openai["answers"] = {"Pies biega.": "Pies biegnie."}
    add_model(db, name="evalmodel", base_url=fake_openai["base_url"], price_input_per_mtok="1.0000",
              price_output_per_mtok="1.0000")  # fmt: skip
    path = tmp_path / "mini.jsonl"
    path.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in EVAL_LINES), encoding="utf-8"
    )
    out = tmp_path / "out.json"
    items_before = db.query_value("SELECT COUNT(*) FROM task_item")
    assert ai.main(["--eval", str(path), "--model", "evalmodel", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "evalmodel" in printed and "set: mini" in printed

    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["set"] == "mini" and len(result["results"]) == 1
    r = result["results"][0]
    assert (r["items"], r["tp"], r["fp"], r["fn"], r["failed"]) == (5, 2, 1, 1, 0)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f05"] == pytest.approx(2 / 3)
    assert r["unchanged_changed_rate"] == pytest.approx(0.5) and r["exact_match"] == pytest.approx(0.6)
    assert r["chrf"] is None
    assert r["per_category"] == {"punct": {"n": 1, "recall": 0.0}, "spelling": {"n": 2, "recall": 1.0}}
    tokens = fake_openai["prompt_tokens"] + fake_openai["completion_tokens"]
    assert r["cost_usd"] == pytest.approx(tokens / 1_000_000)
    assert fake_openai["packs"] == (1 if pack_items > 1 else 0)
    row = db.query_one("SELECT * FROM ai_eval")
    assert (
        row["model_name"] == "evalmodel" and row["items"] == 5 and float(row["f05"]) == pytest.approx(0.6667)
    )
    assert json.loads(row["figures"])["tp"] == 2 and row["prompt_version"] == r["prompt_version"]
    assert db.query_value("SELECT COUNT(*) FROM task_item") == items_before == 0

    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(settings.dagster_home)
    records = instance.fetch_observations(AssetKey("ai_quality"), limit=10).records
    assert len(records) == 1
    observation = records[0].event_log_entry.asset_observation
    assert observation.partition == "evalmodel" and observation.metadata["f05"].value == pytest.approx(2 / 3)


def test_dump_format_eval(settings, db, fake_openai):
    """Przyjęta -> tekst przyjęty, poprawiona -> tekst recenzenta, odrzucona -> oryginał; reszta pominięta."""
    id_task = make_task(db, fake_openai["base_url"])
    ids = add_items(db, id_task, ["Ala bląd.", "Ola wogóle.", "Ela napewno.", "Iza bląd."])
    ai_worker.run_ai(conf(settings), id_task)
    decisions.set_decision(db, id_task, [ids[0]], "accepted", "anna")
    decisions.edit_and_accept(db, ids[1], "Ola w ogóle!", "anna")
    decisions.set_decision(db, id_task, [ids[2]], "rejected", "anna")
    out = io.StringIO()
    assert dump_items(db, id_task, "eval", out) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {"id": str(ids[0]), "text": "Ala bląd.", "reference": "Ala błąd."},
        {"id": str(ids[1]), "text": "Ola wogóle.", "reference": "Ola w ogóle!"},
        {"id": str(ids[2]), "text": "Ela napewno.", "reference": "Ela napewno."},
    ]


def test_pilot_in_batch_mode_and_batch_results_carry_version_and_flags(settings, db, fake_openai):
    """Tryb batch: batch pilota ma tylko jego teksty; wyniki z odbioru mają prompt_version i flagi;
    po odbiorze zadanie jest in_learning i kolejny run nie wysyła nic."""
    from lib.ai.batch import ingest as ai_batch_ingest

    s = conf(settings)
    fake_openai["batch_mode"] = "complete"
    fake_openai["answers"] = {GUARDED["numbers"][0]: GUARDED["numbers"][1]}
    id_task = make_task(db, fake_openai["base_url"], pilot=2)
    db.execute("UPDATE ai_model SET batch_mode=1")
    texts = [GUARDED["numbers"][0], *TEXTS[1:6]]
    ids = add_items(db, id_task, texts)
    submitted = ai_worker.run_ai(s, id_task)
    assert submitted["batches_submitted"] == 1 and submitted["pilot"] == "running"
    [batch] = db.query("SELECT * FROM ai_batch WHERE id_task=%s", (id_task,))
    assert batch["item_count"] == 2 and len(batch["prompt_version"]) == 12
    [work] = ai_batch_ingest.poll_batches(s, id_task)
    result = ai_worker.run_ai(s, id_task, id_ai_batch=work["id_ai_batch"])
    assert result["processed"] == 2 and result["flagged"] == 1 and result["pilot"] == "in_learning"
    rows = {r["id_task_item"]: r for r in db.query("SELECT * FROM task_item WHERE status='processed'")}
    assert sorted(rows) == [ids[0], ids[3]]
    assert rows[ids[0]]["ai_flags"] == '["numbers"]' and rows[ids[3]]["ai_flags"] is None
    assert {r["prompt_version"] for r in rows.values()} == {batch["prompt_version"]}
    assert db.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "in_learning"
    assert ai_worker.run_ai(s, id_task)["pilot"] == "in_learning"
    assert db.query_value("SELECT COUNT(*) FROM ai_batch") == 1
