"""Zatrzymanie ``ai.py`` w trakcie pracy: SIGTERM i ``--max-seconds``.

Serwer zgodny z OpenAI odpowiada z opóźnieniem 0,3 s, więc w chwili zatrzymania kilka zapytań
jest w drodze. Run ma przestać rezerwować, dokończyć (zapisać i opłacić) zapytania w drodze,
zwolnić niezaczęte rezerwacje i zakończyć się kodem 0 z wpisem ``paused`` w ``run_log``; ponowny
run kończy resztę. Licznik zapytań serwera per tekst pokazuje, że żaden tekst nie poszedł dwa
razy - odpowiedź w drodze nie przepada.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from lib.db_utils import compute_hash
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_model, add_task

pytestmark = pytest.mark.slow

ITEMS = 60
TEXTS = [f"bląd w zdaniu {n}, napewno" for n in range(ITEMS)]
# AI_PACK_ITEMS=1: zatrzymanie w połowie pracy wymaga wielu zapytań (paczki zrobiłyby 60 tekstów w 3).
AI_ENV = {
    "AI_CONCURRENCY": "4",
    "AI_CLAIM_BATCH": "5",
    "AI_BACKOFF_S": "0.05",
    "AI_TIMEOUT_S": "10",
    "AI_PACK_ITEMS": "1",
}


@pytest.fixture
def ai_task(db, fake_openai):
    """Zadanie z ``ITEMS`` różnymi tekstami i modelem na wolnym (0,3 s) serwerze testowym."""
    fake_openai["latency"] = 0.3
    id_model = add_model(
        db,
        name=f"m{uuid.uuid4().hex[:6]}",
        base_url=fake_openai["base_url"],
        price_input_per_mtok="2.0000",
        price_output_per_mtok="8.0000",
    )
    id_task = add_task(db, 1, id_ai_model=id_model)
    for remote_id, text in enumerate(TEXTS, start=1):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, text_original, original_hash) VALUES (%s, %s, %s, %s)",
            (id_task, remote_id, text, compute_hash(text)),
        )
    return id_task


def ai_cmd(id_task: int, *extra: str) -> list[str]:
    return [sys.executable, "ai.py", "--id_task", str(id_task), *extra]


def env_for(local_env: dict) -> dict:
    full = {**os.environ, **local_env, **AI_ENV}
    full.pop("AILEXIA_FAULT", None)
    return full


def processed(db, id_task: int) -> int:
    return db.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='processed'", (id_task,)
    )


def sent_per_text(fake_openai) -> dict[str, int]:
    """Zapytania per tekst pozycji (bez ewentualnych sond formatu odpowiedzi)."""
    return {text: n for text, n in fake_openai["per_text"].items() if text in TEXTS}


def assert_stopped_cleanly(db, id_task: int, fake_openai, reason: str) -> int:
    """Po zatrzymaniu: wpis paused, brak rezerwacji, każde wysłane zapytanie zapisane i opłacone."""
    done = processed(db, id_task)
    assert 0 < done < ITEMS
    assert (
        db.query_value(
            "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND claim_uuid IS NOT NULL", (id_task,)
        )
        == 0
    )
    log_row = db.query_one("SELECT status, message FROM run_log WHERE id_task=%s AND kind='ai'", (id_task,))
    assert log_row["status"] == "paused" and reason in log_row["message"], log_row
    # Zapytania w drodze w chwili zatrzymania zostały dokończone: wysłane = zapisane z kosztem.
    sent = sent_per_text(fake_openai)
    paid = {
        r["text_original"]
        for r in db.query(
            "SELECT text_original FROM task_item WHERE id_task=%s AND status='processed' AND cost_usd > 0",
            (id_task,),
        )
    }
    assert set(sent) == paid and set(sent.values()) == {1}
    return done


def assert_rerun_completes(local_env, db, id_task: int, fake_openai) -> None:
    rerun = subprocess.run(
        ai_cmd(id_task), cwd=PROJECT_ROOT, env=env_for(local_env), capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert processed(db, id_task) == ITEMS
    sent = sent_per_text(fake_openai)
    assert len(sent) == ITEMS and set(sent.values()) == {1}  # żaden tekst nie opłacony dwa razy
    assert (
        db.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND cost_usd > 0", (id_task,))
        == ITEMS
    )


def test_sigterm_finishes_in_flight_releases_rest_and_rerun_completes(
    local_env, settings, db, ai_task, fake_openai
):
    proc = subprocess.Popen(
        ai_cmd(ai_task),
        cwd=PROJECT_ROOT,
        env=env_for(local_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while processed(db, ai_task) < 8:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    # Dokończenie zapytań w drodze (0,3 s każde) i zamknięcie runu, nie przetworzenie całej reszty.
    assert time.monotonic() - signalled < 5
    assert_stopped_cleanly(db, ai_task, fake_openai, "signal")
    assert_rerun_completes(local_env, db, ai_task, fake_openai)


def test_max_seconds_stops_after_about_a_second_and_rerun_completes(
    local_env, settings, db, ai_task, fake_openai
):
    result = subprocess.run(
        ai_cmd(ai_task, "--max-seconds", "1"),
        cwd=PROJECT_ROOT,
        env=env_for(local_env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_stopped_cleanly(db, ai_task, fake_openai, "time_limit")
    duration_ms = db.query_value("SELECT duration_ms FROM run_log WHERE id_task=%s AND kind='ai'", (ai_task,))
    # Limit 1 s plus dokończenie zapytań w drodze (0,3 s); bez limitu run trwałby ok. 4,5 s.
    assert 900 <= duration_ms <= 2500, duration_ms
    assert_rerun_completes(local_env, db, ai_task, fake_openai)
