"""Testy strony przeglądu w prawdziwej przeglądarce (Chromium z Debiana sterowany przez Playwright).

Jeden serwer (``review.py serve``) i jedna przeglądarka na moduł; każdy test ma własne zadanie.
Po każdym kroku sprawdzany jest stan bazy: status, tekst, hash, ``approved_by``, ``review_log``.
"""

import json
import os
import shutil
import sqlite3
import uuid

import pytest

from tests.helpers import (
    UNUSED_SOURCE,
    add_connection,
    add_task,
    add_task_item,
    running_review_server,
    sha256,
)

pytestmark = pytest.mark.slow

TOKEN = f"tok-{uuid.uuid4().hex}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SUMMARY = json.dumps(
    {
        "edits": [
            {
                "original": "Kot",
                "replacement": "Kot,",
                "category": "punctuation",
                "explanation": "przecinek przed zdaniem podrzędnym",
            },
            {
                "original": "ktury",
                "replacement": "który",
                "category": "spelling",
                "explanation": "ortografia: „który” piszemy przez ó",
            },
            {
                "original": "oknie",
                "replacement": "oknie.",
                "category": "punctuation",
                "explanation": "kropka na końcu zdania",
            },
        ],
        "counts": {"punctuation": 2, "spelling": 1},
    },
    ensure_ascii=False,
)
DEMO = [
    ("Kot ktury śpi na oknie", "Kot, który śpi na oknie.", SUMMARY),
    (
        "Ala ma  psa i kota\nktóre biegają",
        "Ala ma psa i kota,\nktóre biegają.",
        json.dumps(
            {
                "edits": [
                    {
                        "original": "ma  psa",
                        "replacement": "ma psa",
                        "category": "typography",
                        "explanation": "podwójna spacja",
                    },
                    {
                        "original": "kota",
                        "replacement": "kota,",
                        "category": "punctuation",
                        "explanation": "przecinek przed „które”",
                    },
                ]
            },
            ensure_ascii=False,
        ),
    ),
    (
        "Wczoraj poszłem do sklepu po chleb",
        "Wczoraj poszedłem do sklepu po chleb.",
        json.dumps(
            {
                "edits": [
                    {
                        "original": "poszłem",
                        "replacement": "poszedłem",
                        "category": "grammar",
                        "explanation": "poprawna forma czasownika „pójść”",
                    }
                ]
            },
            ensure_ascii=False,
        ),
    ),
    (
        "Spotkanie odbedzie sie w poniedzialek o godz 10",
        "Spotkanie odbędzie się w poniedziałek o godz. 10.",
        json.dumps(
            {
                "edits": [
                    {
                        "original": "odbedzie sie",
                        "replacement": "odbędzie się",
                        "category": "spelling",
                        "explanation": "polskie znaki",
                    },
                    {
                        "original": "godz",
                        "replacement": "godz.",
                        "category": "punctuation",
                        "explanation": "kropka po skrócie",
                    },
                ]
            },
            ensure_ascii=False,
        ),
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_review_server(tmp_path_factory.mktemp("review_browser"), TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "brak /usr/bin/chromium (instaluje go scripts/ensure_services.sh)"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def page(server, browser):
    """Jedna zalogowana karta na moduł (token z adresu, imię ``anna`` w sesji)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{server['base']}/?token={TOKEN}")
    tab.fill("#name-form input[name=name]", "anna")
    tab.click("#name-form button")
    tab.wait_for_selector("h1:has-text('Zadania')")
    tab.errors = errors
    yield tab
    context.close()
    assert errors == [], errors


def _task(db, texts, source=None):
    """Zadanie z pozycjami ``processed`` (oryginał, korekta, change_summary); zwraca (id_task, [id pozycji])."""
    source = source or UNUSED_SOURCE
    id_task = add_task(db, add_connection(db, source, alias=f"b-{uuid.uuid4().hex[:8]}"), status="completed")
    ids = [add_task_item(db, id_task, n, a, b, summary=s) for n, (a, b, s) in enumerate(texts, start=1)]
    return id_task, ids


def _row(db, id_item):
    return db.query_one(
        "SELECT status, text_corrected, local_hash, approved_by FROM task_item WHERE id_task_item=%s",
        (id_item,),
    )


def _log(db, id_item):
    return [
        (r["action"], r["reviewer"])
        for r in db.query(
            "SELECT action, reviewer FROM review_log WHERE id_task_item=%s ORDER BY id_review_log", (id_item,)
        )
    ]


def _current(page):
    return int(page.get_attribute("article.item.current", "data-id"))


def test_token_link_opens_task_and_pages_through_items(server, browser, wdb):
    id_task, ids = _task(wdb, [(f"tekst {n} ktury", f"tekst {n} który", None) for n in range(45)])
    context = browser.new_context()
    tab = context.new_page()
    try:
        tab.goto(f"{server['base']}/?token={TOKEN}&id_task={id_task}")
        assert "token=" not in tab.url  # token znika z paska adresu i historii
        tab.fill("#name-form input[name=name]", "ola")
        tab.click("#name-form button")
        tab.wait_for_selector("article.item")
        seen = [int(x) for x in tab.eval_on_selector_all("article.item", "els => els.map(e => e.dataset.id)")]
        assert seen == ids[:20]
        tab.click("#next")
        tab.wait_for_selector(f"#item-{ids[20]}")
        tab.click("#next")
        tab.wait_for_selector(f"#item-{ids[40]}")
        seen = [int(x) for x in tab.eval_on_selector_all("article.item", "els => els.map(e => e.dataset.id)")]
        assert seen == ids[40:] and tab.locator("#next").count() == 0
        tab.click("#prev")
        tab.wait_for_selector(f"#item-{ids[39]}")
        assert int(tab.get_attribute("article.item >> nth=0", "data-id")) == ids[20]
        assert "recenzent: ola" in tab.inner_text("header.top")
    finally:
        context.close()
    # Oglądanie niczego nie zmienia.
    assert (
        wdb.query_value("SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status<>'processed'", (id_task,))
        == 0
    )
    assert wdb.query_value("SELECT COUNT(*) FROM review_log WHERE id_task=%s", (id_task,)) == 0


def test_keyboard_accept_reject_move_and_undo(server, page, wdb):
    id_task, ids = _task(wdb, DEMO[:3])
    page.goto(f"{server['base']}/tasks/{id_task}")
    page.wait_for_selector(f"#item-{ids[0]}.current")
    page.keyboard.press("a")
    page.wait_for_selector(f"#item-{ids[0]}[data-status=accepted]")
    assert _row(wdb, ids[0])["status"] == "accepted" and _row(wdb, ids[0])["approved_by"] == "anna"
    assert _current(page) == ids[1]  # po decyzji kursor idzie dalej
    page.keyboard.press("j")
    assert _current(page) == ids[2]
    page.keyboard.press("k")
    assert _current(page) == ids[1]
    page.keyboard.press("r")
    page.wait_for_selector(f"#item-{ids[1]}[data-status=rejected]")
    assert _row(wdb, ids[1])["status"] == "rejected"
    assert wdb.query_value("SELECT records_rejected FROM task WHERE id_task=%s", (id_task,)) == 1
    page.keyboard.press("u")
    page.wait_for_selector(f"#item-{ids[1]}[data-status=processed]")
    assert _row(wdb, ids[1]) == {**_row(wdb, ids[1]), "status": "processed", "approved_by": None}
    assert "cofnięto" in page.inner_text("#flash")
    page.keyboard.press("u")
    page.wait_for_selector(f"#item-{ids[0]}[data-status=processed]")
    assert _row(wdb, ids[0])["status"] == "processed"
    page.keyboard.press("u")
    page.wait_for_selector("#flash:has-text('nie ma decyzji')")
    assert _log(wdb, ids[0]) == [("accept", "anna"), ("undo", "anna")]
    assert _log(wdb, ids[1]) == [("reject", "anna"), ("undo", "anna")]


def test_edit_then_accept_stores_the_reviewers_text(server, page, wdb):
    id_task, ids = _task(wdb, DEMO[2:4])
    page.goto(f"{server['base']}/tasks/{id_task}")
    page.wait_for_selector(f"#item-{ids[0]}.current")
    page.keyboard.press("j")
    page.keyboard.press("e")
    area = page.locator(f"#item-{ids[1]} .editor textarea")
    assert area.is_visible() and area.input_value() == DEMO[3][1]
    area.fill("Spotkanie odbędzie się w poniedziałek o 10:00.")
    area.press("Control+Enter")
    page.wait_for_selector(f"#item-{ids[1]}[data-status=accepted]")
    row = _row(wdb, ids[1])
    assert row["text_corrected"] == "Spotkanie odbędzie się w poniedziałek o 10:00."
    assert row["local_hash"] == sha256(row["text_corrected"]) and row["approved_by"] == "anna"
    assert _log(wdb, ids[1]) == [("edit", "anna")]
    # Karta pokazuje różnicę oryginału z tekstem człowieka.
    inserted = page.eval_on_selector_all(f"#item-{ids[1]} .diff ins", "els => els.map(e => e.textContent)")
    assert inserted[-1] == ":00."
    # Escape zamyka edytor bez zapisu.
    page.click(f"#item-{ids[0]} .act-edit")
    page.locator(f"#item-{ids[0]} textarea").fill("nie zapisuj")
    page.keyboard.press("Escape")
    assert not page.locator(f"#item-{ids[0]} .editor").is_visible()
    assert _row(wdb, ids[0])["status"] == "processed" and _row(wdb, ids[0])["text_corrected"] == DEMO[2][1]


def test_accept_a_subset_of_hunks(server, page, wdb):
    id_task, ids = _task(wdb, DEMO[:2])
    page.goto(f"{server['base']}/tasks/{id_task}")
    card = f"#item-{ids[0]}"
    page.wait_for_selector(f"{card}.current")
    assert page.locator(f"{card} .hunk[data-hunk]").count() == 3
    page.click(f"{card} .hunk[data-hunk='0']")  # bez przecinka po "Kot"
    assert page.get_attribute(f"{card} .hunk[data-hunk='0']", "aria-checked") == "false"
    assert "Akceptuj wybrane (2/3)" in page.inner_text(f"{card} .act-accept")
    page.keyboard.press("a")
    page.wait_for_selector(f"{card}[data-status=accepted]")
    row = _row(wdb, ids[0])
    assert row["text_corrected"] == "Kot który śpi na oknie." and row["local_hash"] == sha256(
        "Kot który śpi na oknie."
    )
    entry = wdb.query_one(
        "SELECT action, hunks, text_before FROM review_log WHERE id_task_item=%s", (ids[0],)
    )
    assert entry == {"action": "partial", "hunks": "[1, 2]", "text_before": DEMO[0][1]}
    # Druga pozycja: tylko zmiana białych znaków (podwójna spacja) widoczna jako symbole.
    second = f"#item-{ids[1]}"
    assert page.inner_text(f"{second} .hunk[data-hunk='0'] del") == "··"
    page.click(f"{second} .hunk[data-hunk='0']")
    page.click(f"{second} .hunk[data-hunk='2']")
    page.click(f"{second} .act-accept")
    page.wait_for_selector(f"{second}[data-status=accepted]")
    assert _row(wdb, ids[1])["text_corrected"] == "Ala ma  psa i kota,\nktóre biegają"


def test_refusals_show_the_reason_and_change_nothing(server, page, wdb):
    id_task, ids = _task(wdb, DEMO[:2])
    page.goto(f"{server['base']}/tasks/{id_task}")
    page.wait_for_selector(f"#item-{ids[0]}.current")
    # Po wyświetleniu źródło się zmieniło (synchronizacja): pozycja nieaktualna.
    wdb.execute("UPDATE task_item SET status='outdated', is_changed=1 WHERE id_task_item=%s", (ids[0],))
    page.keyboard.press("a")
    page.wait_for_selector(f"#item-{ids[0]}[data-status=outdated]")
    assert page.inner_text(f"#item-{ids[0]} .result").startswith("nieaktualna: tekst w źródle zmienił się")
    assert _row(wdb, ids[0])["status"] == "outdated" and _log(wdb, ids[0]) == []
    # Drugi recenzent zdecydował w międzyczasie: pierwszy widzi jego decyzję.
    wdb.execute("UPDATE task_item SET status='rejected', approved_by='jan' WHERE id_task_item=%s", (ids[1],))
    page.click(f"#item-{ids[1]} .act-accept")
    page.wait_for_selector(f"#item-{ids[1]}[data-status=rejected]")
    assert "teraz: rejected (jan)" in page.inner_text(f"#item-{ids[1]} .result")
    assert _row(wdb, ids[1])["status"] == "rejected" and _row(wdb, ids[1])["approved_by"] == "jan"


def test_accept_all_shown_takes_only_the_page(server, page, wdb):
    id_task, ids = _task(wdb, DEMO[:3])
    page.goto(f"{server['base']}/tasks/{id_task}?status=processed&limit=2")
    page.wait_for_selector(f"#item-{ids[1]}")
    page.click("#accept-shown")
    page.wait_for_selector("#flash:has-text('zaakceptowano 2')")
    page.wait_for_selector(f"#item-{ids[2]}")  # strona przeładowana: została trzecia pozycja
    assert [_row(wdb, i)["status"] for i in ids] == ["accepted", "accepted", "processed"]


def test_screenshot_of_a_seeded_page(server, page, wdb, tmp_path):
    """Zrzut strony z przykładowymi pozycjami (``AILEXIA_SCREENSHOT=docs/review.png`` zapisuje go do README)."""
    id_task, ids = _task(wdb, DEMO)
    page.set_viewport_size({"width": 1100, "height": 820})
    page.goto(f"{server['base']}/tasks/{id_task}")
    page.wait_for_selector(f"#item-{ids[0]}.current")
    page.click(f"#item-{ids[1]} .hunk[data-hunk='0']")
    page.keyboard.press("j")
    target = tmp_path / "review.png"
    page.screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    if os.environ.get("AILEXIA_SCREENSHOT"):
        shutil.copy(target, os.environ["AILEXIA_SCREENSHOT"])


def test_export_button_runs_the_dagster_export_and_shows_conflicts(server, page, wdb):
    from dagster import DagsterInstance, RunsFilter

    path = server["tmp"] / f"source-{uuid.uuid4().hex[:6]}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO articles VALUES (?, ?)", [(1, "Kot ktury śpi"), (2, "Dom stoi")])
    source = {
        "db_type": "sqlite",
        "host": "",
        "port": 0,
        "db_name": str(path),
        "db_user": "",
        "db_password": "",
    }
    id_task, ids = _task(
        wdb, [("Kot ktury śpi", "Kot, który śpi.", None), ("Dom stoi", "Dom stoi.", None)], source
    )
    wdb.execute(
        "UPDATE task_item SET status='accepted', approved_by='anna', approved_at=NOW() WHERE id_task=%s",
        (id_task,),
    )
    conn.execute("UPDATE articles SET body='dom stoi' WHERE id=2")  # zmiana w źródle po synchronizacji
    page.goto(f"{server['base']}/tasks/{id_task}?status=accepted")
    page.click("#export")
    page.wait_for_selector("#export-state[data-state=done]", timeout=180_000)
    assert page.inner_text("#written") == "1" and page.inner_text("#conflicts") == "1"
    problems = page.inner_text("#export-problems")
    assert "tekst w źródle zmienił się od synchronizacji (różnica wielkości liter)" in problems
    assert dict(conn.execute("SELECT id, body FROM articles").fetchall()) == {
        1: "Kot, który śpi.",
        2: "dom stoi",
    }
    conn.close()
    assert [_row(wdb, i)["status"] for i in ids] == ["exported", "conflict"]
    instance = DagsterInstance.from_config(server["env"]["DAGSTER_HOME"])
    try:
        runs = instance.get_runs(
            filters=RunsFilter(tags={"ailexia/id_task": str(id_task), "ailexia/kind": "export"})
        )
        assert len(runs) == 1 and runs[0].is_success
        # Strona pokazuje run Dagstera, którym szedł eksport (ten sam id co w UI).
        assert runs[0].run_id in page.inner_text("#run-id")
        assert page.inner_text("#run-status") == "completed"
    finally:
        instance.dispose()
