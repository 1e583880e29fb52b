"""Macierz awarii: SIGKILL w nazwanych punktach (``lib/faults.py``) i ponowny run.

Każdy przypadek uruchamia prawdziwy skrypt (``sync.py`` / ``ai.py`` przez Dagstera) z
``AILEXIA_FAULT=<punkt>[:N]``; proces zabija się sam w tym punkcie (kod wyjścia -9). Potem ten
sam skrypt bez awarii i porównanie z runem nieprzerwanym na bliźniaczym zadaniu nad tym samym
źródłem: pozycje, hashe, statusy, znaczniki usunięcia i liczniki operacji muszą być równe, bez
duplikatów ``(id_task, remote_id)`` i bez żadnego zapisu w źródle (sync jest tylko do odczytu).
"""

import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest

from lib.ai import run as ai_worker
from lib.db_utils import compute_hash
from lib.review.decisions import set_decision
from lib.runtime.run_log import ABANDONED_RUN_MESSAGE
from lib.sync import engine as sync
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import (
    add_connection,
    add_model,
    add_task,
    create_text_table,
    simulate_ai,
    source_execute,
    source_query,
)
from tests.test_sync_pipeline import _state

pytestmark = pytest.mark.slow

ROWS = 3000
SYNC_ENV = {"BATCH_SIZE": "100", "COMMIT_ROWS": "300"}
# AI_PACK_ITEMS=1: okna podwójnego zapytania poniżej są liczone w zapytaniach o jeden tekst;
# śmierć w środku paczki sprawdza tests/test_ai_pack.py.
AI_ENV = {
    "AI_CONCURRENCY": "2",
    "AI_CLAIM_BATCH": "5",
    "AI_BACKOFF_S": "0.05",
    "AI_TIMEOUT_S": "10",
    "AI_PACK_ITEMS": "1",
}
KILLED = -signal.SIGKILL


def run_script(env: dict, script: str, *args: str, fault: str | None = None, timeout: int = 180):
    """Uruchamia skrypt projektu jako podproces; ``fault`` ustawia ``AILEXIA_FAULT``."""
    full = {**os.environ, **env}
    full.pop("AILEXIA_FAULT", None)
    if fault:
        full["AILEXIA_FAULT"] = fault
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def duplicates(db, id_task: int) -> int:
    """Liczba zdublowanych ``remote_id`` w zadaniu."""
    return db.query_value(
        "SELECT COUNT(*) FROM (SELECT remote_id FROM task_item WHERE id_task=%s GROUP BY remote_id HAVING COUNT(*)>1) d",
        (id_task,),
    )


def full_state(db, id_task: int):
    """``_state`` z testów sync plus hash tekstu poprawionego i usunięte pozycje po kluczu."""
    items, task = _state(db, id_task)
    extra = db.query(
        "SELECT remote_id, local_hash, text_corrected FROM task_item WHERE id_task=%s ORDER BY remote_id",
        (id_task,),
    )
    return items, task, [tuple(r.values()) for r in extra]


def committed_items(db, id_task: int) -> dict[int, tuple]:
    """Stan pozycji po kluczu: hash, status, flaga usunięcia."""
    rows = db.query(
        "SELECT remote_id, original_hash, status, deleted_at IS NULL AS live FROM task_item WHERE id_task=%s",
        (id_task,),
    )
    return {r["remote_id"]: (r["original_hash"], r["status"], r["live"]) for r in rows}


def source_fingerprint(source: dict) -> tuple:
    """Odcisk całej tabeli źródłowej (liczba wierszy i md5 treści) - do sprawdzenia braku zapisów."""
    return tuple(
        source_query(
            source,
            "SELECT COUNT(*), md5(string_agg(id || ':' || coalesce(body, '~'), ',' ORDER BY id)) FROM articles",
        )[0]
    )


def assert_killed_run_closed(db, id_task: int) -> None:
    """Wpis ``run_log`` zabitego runu zamknął następny run: ``error`` z przyczyną, bez ``finished_at``."""
    rows = db.query("SELECT status, message, finished_at FROM run_log WHERE id_task=%s", (id_task,))
    assert not [r for r in rows if r["status"] == "running"], rows
    abandoned = [r for r in rows if r["message"] == ABANDONED_RUN_MESSAGE]
    assert (
        len(abandoned) == 1 and abandoned[0]["status"] == "error" and abandoned[0]["finished_at"] is None
    ), rows


def text_for(i: int, version: int = 0) -> str:
    """Deterministyczny tekst wiersza (wersja > 0 = tekst zmieniony w źródle)."""
    suffix = f" (wersja {version})" if version else ""
    return f"Wiersz {i}: zażółć gęślą jaźń, bląd napewno. " * (1 + i % 5) + suffix


@pytest.fixture
def sync_pair(settings, db, pg_source):
    """Źródło PostgreSQL (parzyste klucze 2..2*ROWS) i dwa zadania na nim: ofiara i bliźniak."""
    create_text_table(pg_source, rows=[(i, text_for(i)) for i in range(2, 2 * ROWS + 1, 2)])
    connection = add_connection(db, pg_source)
    return add_task(db, connection), add_task(db, connection)


def change_source(source: dict) -> None:
    """Zmiany w źródle rozłożone po całym zakresie: nowe (nieparzyste), zmienione, usunięte wiersze."""
    source_execute(source, "UPDATE articles SET body = body || ' (wersja 1)' WHERE id % 74 = 0")
    source_execute(source, "DELETE FROM articles WHERE id % 202 = 0")
    source_execute(source, "UPDATE articles SET body = NULL WHERE id % 998 = 0")
    source_execute(
        source,
        "INSERT INTO articles (id, body) SELECT g, 'nowy wiersz ' || g FROM generate_series(1, %s, 62) g",
        (2 * ROWS,),
    )
    source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, 'za końcem')", (2 * ROWS + 500,))


def corrected(db, id_task: int) -> None:
    """Część pozycji po korekcie AI i eksporcie (zmiana w źródle zrobi z nich ``outdated``)."""
    keys = [
        r["remote_id"]
        for r in db.query(
            "SELECT remote_id FROM task_item WHERE id_task=%s AND remote_id %% 6 = 0", (id_task,)
        )
    ]
    simulate_ai(db, id_task, {k: f"poprawiony {k}" for k in keys})


# Punkty skanu: N-te przejście trafia w partię ze środka (ok. 10 partii po COMMIT_ROWS wierszy).
SYNC_FAULTS = ["sync.init", "sync.fetch:4", "sync.update:5", "sync.verify"]


@pytest.mark.parametrize("resync", [False, True], ids=["initial", "resync"])
@pytest.mark.parametrize("fault", SYNC_FAULTS)
def test_sync_killed_at_checkpoint_then_rerun_equals_uninterrupted(
    local_env, settings, db, pg_source, sync_pair, fault, resync
):
    """SIGKILL w punkcie skanu/weryfikacji; ponowny run daje stan identyczny z runem bez przerwy.

    Wariant ``resync``: oba zadania mają już pełną kopię (część pozycji poprawiona), a źródło
    dostało nowe, zmienione, usunięte i wyzerowane wiersze w całym zakresie kluczy - przerwana
    transakcja (``sync.update``) zawiera więc prawdziwe INSERT-y i UPDATE-y.
    """
    victim, twin = sync_pair
    cfg = settings.updated(BATCH_SIZE=100, COMMIT_ROWS=300)
    env = {**local_env, **SYNC_ENV}
    if resync:
        for id_task in (victim, twin):
            sync.sync_task(cfg, id_task)
            corrected(db, id_task)
        change_source(pg_source)
    before = source_fingerprint(pg_source)
    items_before = committed_items(db, victim)

    killed = run_script(env, "sync.py", "--id_task", str(victim), fault=fault)
    assert killed.returncode == KILLED, killed.stdout + killed.stderr
    task = db.query_one("SELECT status, last_processed_id FROM task WHERE id_task=%s", (victim,))
    assert task["status"] == ("verifying" if fault == "sync.verify" else "in_progress")
    # Nic poza zatwierdzonym kluczem: przerwana transakcja (sync.update) nie zostawiła śladu.
    last = task["last_processed_id"] if task["status"] == "in_progress" else None
    if last is not None or fault == "sync.init":
        bound = -1 if last is None else last
        assert {k: v for k, v in committed_items(db, victim).items() if k > bound} == {
            k: v for k, v in items_before.items() if k > bound
        }
    assert duplicates(db, victim) == 0

    rerun = run_script(env, "sync.py", "--id_task", str(victim))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    sync.sync_task(cfg, twin)

    assert full_state(db, victim) == full_state(db, twin)
    assert_killed_run_closed(db, victim)
    got_items, got_task, _extra = full_state(db, victim)
    assert got_task["status"] == "completed" and duplicates(db, victim) == 0
    if resync:
        assert (
            got_task["records_new"] > 0
            and got_task["records_updated"] > 0
            and got_task["records_deleted"] > 0
        )
        assert {row[3] for row in got_items} >= {"outdated", "pending", "processed"}
    else:
        assert got_task["records_new"] == ROWS and len(got_items) == ROWS
    assert source_fingerprint(pg_source) == before


# --- AI -------------------------------------------------------------------------------------

AI_TEXTS = [f"bląd numer {n % 30}, napewno" for n in range(40)]  # 30 różnych tekstów, 10 duplikatów


def ai_task(db, base_url: str, id_model: int) -> int:
    """Zadanie AI z pozycjami ``AI_TEXTS`` wstawionymi wprost (bez synchronizacji)."""
    id_task = add_task(db, 1, id_ai_model=id_model)
    for remote_id, text in enumerate(AI_TEXTS, start=1):
        db.execute(
            "INSERT INTO task_item (id_task, remote_id, text_original, original_hash) VALUES (%s, %s, %s, %s)",
            (id_task, remote_id, text, compute_hash(text)),
        )
    return id_task


def ai_outcome(db, id_task: int):
    """Wynik AI niezależny od tego, która pozycja grupy duplikatów była liderem."""
    rows = db.query(
        "SELECT remote_id, status, text_corrected, local_hash, claim_uuid, ai_attempts, "
        "operation_uuid IN (SELECT operation_uuid FROM run_log r WHERE r.id_task=task_item.id_task AND r.kind='ai') "
        "AS produced_by_logged_run FROM task_item "
        "WHERE id_task=%s ORDER BY remote_id",
        (id_task,),
    )
    paid = db.query(
        "SELECT original_hash, SUM(cost_usd > 0) AS paid, SUM(cost_usd) AS cost, SUM(tokens_input) AS tin, "
        "SUM(tokens_output) AS tout FROM task_item WHERE id_task=%s GROUP BY original_hash ORDER BY original_hash",
        (id_task,),
    )
    return [tuple(r.values()) for r in rows], [tuple(r.values()) for r in paid]


@pytest.mark.parametrize(
    ("fault", "max_extra"),
    [("ai.claimed:1", 0), ("ai.request:4", 3), ("ai.store:3", 4)],
)
def test_ai_killed_at_checkpoint_then_rerun_pays_each_text_once(
    local_env, settings, db, fake_openai, fault, max_extra
):
    """SIGKILL w punkcie runu AI; po ponownym runie każda pozycja przetworzona raz i każdy tekst opłacony raz.

    Okno podwójnego zapytania: odpowiedzi, które były w drodze albo już przyszły, ale nie zostały
    zatwierdzone w bazie, giną z procesem - te teksty są wysyłane ponownie (każdy najwyżej jeden
    raz więcej). Przy ``ai.store`` na pewno jeden tekst (odpowiedź już przyszła i przepadła);
    razem z nim co najwyżej zapytania w drodze (``AI_CONCURRENCY``) i odpowiedzi czekające na
    zapis w pozostałych wątkach puli (``AI_CONCURRENCY + 2`` wątków), czyli tu najwyżej 4; przy
    ``ai.request`` najwyżej 3 (zabijający wątek jeszcze nic nie wysłał); przy ``ai.claimed`` na
    pierwszej rezerwacji nic jeszcze nie wyszło (0). W bazie zostaje zawsze jeden wynik i jeden
    koszt na tekst - powtórne zapytanie kosztuje tylko u dostawcy (``max_extra`` ogranicza tę
    stratę w teście).
    """
    fake_openai["latency"] = 0.05
    id_model = add_model(
        db, base_url=fake_openai["base_url"], price_input_per_mtok="2.0000", price_output_per_mtok="8.0000"
    )
    victim, twin = (
        ai_task(db, fake_openai["base_url"], id_model),
        ai_task(db, fake_openai["base_url"], id_model),
    )
    ai_worker.run_ai(
        settings.updated(**{k: float(v) if "." in v else int(v) for k, v in AI_ENV.items()}), twin
    )
    assert set(fake_openai["per_text"].values()) == {1}
    fake_openai["per_text"].clear()
    env = {**local_env, **AI_ENV}

    killed = run_script(env, "ai.py", "--id_task", str(victim), fault=fault)
    assert killed.returncode == KILLED, killed.stdout + killed.stderr
    rerun = run_script(env, "ai.py", "--id_task", str(victim))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    rows, paid = ai_outcome(db, victim)
    assert_killed_run_closed(db, victim)
    assert all(r[1] == "processed" and r[4] is None and r[5] == 0 and r[6] == 1 for r in rows)
    assert [p[1] for p in paid] == [1] * 30  # każdy różny tekst opłacony dokładnie raz
    assert (rows, paid) == ai_outcome(db, twin)
    total = db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_task=%s", (victim,))
    assert (
        total == db.query_value("SELECT SUM(cost_usd) FROM task_item WHERE id_task=%s", (twin,)) > Decimal(0)
    )
    sent = {text: n for text, n in fake_openai["per_text"].items() if text in AI_TEXTS}  # bez sond formatu
    assert len(sent) == 30 and max(sent.values()) <= 2
    assert sum(sent.values()) - 30 <= max_extra, dict(sent)


# --- eksport ---------------------------------------------------------------------------------

WRITES_TRIGGER = [
    "CREATE TABLE writes (id BIGINT PRIMARY KEY, n INT NOT NULL)",
    "CREATE FUNCTION count_write() RETURNS trigger AS $$ BEGIN "
    "INSERT INTO writes VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = writes.n + 1; "
    "RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER articles_writes AFTER UPDATE ON articles FOR EACH ROW EXECUTE FUNCTION count_write()",
]


def test_export_killed_after_source_commit_then_rerun_writes_each_row_once(
    local_env, settings, db, pg_source
):
    """SIGKILL po zatwierdzeniu partii w źródle, przed zapisem statusu lokalnie (partia 2 z 3).

    Ponowny run rozpoznaje tekst już obecny w źródle (``already_exported``) i nie pisze go drugi
    raz: wyzwalacz liczy UPDATE-y każdego wiersza - każdy dokładnie 1.
    """
    originals = {i: f"tekst {i} bez kropki" for i in range(1, 31)}
    corrections = {i: f"Tekst {i} z kropką." for i in range(1, 31)}
    create_text_table(pg_source, rows=sorted(originals.items()))
    id_task = add_task(db, add_connection(db, pg_source))
    sync.sync_task(settings, id_task)
    simulate_ai(db, id_task, corrections)
    ids = [
        r["id_task_item"] for r in db.query("SELECT id_task_item FROM task_item WHERE id_task=%s", (id_task,))
    ]
    set_decision(db, id_task, ids, "accepted", "anna")
    for statement in WRITES_TRIGGER:
        source_execute(pg_source, statement)
    env = {**local_env, "BATCH_SIZE": "10"}

    killed = run_script(
        env, "sync.py", "--export", "--id_task", str(id_task), fault="export.source_committed:2"
    )
    assert killed.returncode == KILLED, killed.stdout + killed.stderr
    statuses = [
        r["status"]
        for r in db.query("SELECT status FROM task_item WHERE id_task=%s ORDER BY remote_id", (id_task,))
    ]
    assert statuses == ["exported"] * 10 + ["accepted"] * 20
    rerun = run_script(env, "sync.py", "--export", "--id_task", str(id_task))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    assert dict(source_query(pg_source, "SELECT id, body FROM articles")) == corrections
    assert dict(source_query(pg_source, "SELECT id, n FROM writes")) == {i: 1 for i in range(1, 31)}
    assert {r["status"] for r in db.query("SELECT status FROM task_item WHERE id_task=%s", (id_task,))} == {
        "exported"
    }
    assert db.query_value("SELECT records_exported FROM task WHERE id_task=%s", (id_task,)) == 30
