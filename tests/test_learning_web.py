"""Strona przeglądu w fazie nauki (prawdziwy ``review.py serve``): pozycje z flagami najpierw, z powodem
słowami, "Akceptuj pokazane" bez nich, panel pilota i jego dwie decyzje pod tokenem i CSRF."""

import re
import uuid

import pytest

from lib.ai import run as ai_worker
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_model, running_review_server
from tests.test_learning import GUARDED, add_items, conf, make_task
from tests.test_review_web import TOKEN, logged_in

NUMBERS_TEXT, NUMBERS_ANSWER = GUARDED["numbers"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_review_server(tmp_path_factory.mktemp("learning_web"), TOKEN) as running:
        yield running


def in_learning_task(server, wdb, fake):
    """Zadanie z pilotem 2 z 4 tekstów (teksty 1 i 3); tekst 1 dostaje odpowiedź z flagą ``numbers``."""
    fake["answers"] = {NUMBERS_TEXT: NUMBERS_ANSWER}
    id_task = make_task(wdb, fake["base_url"], pilot=2)
    ids = add_items(
        wdb, id_task, [NUMBERS_TEXT, "Drugi tekst ma bląd.", "Trzeci tekst ma bląd.", "Czwarty bląd."]
    )
    stats = ai_worker.run_ai(conf(server["settings"]), id_task)
    assert stats["pilot"] == "in_learning"
    return id_task, ids


def item_ids(page):
    return [int(i) for i in re.findall(r'<article class="item[^"]*" id="item-(\d+)"', page)]


def test_flagged_first_with_reasons_and_pilot_approval(server, wdb, fake_openai):
    id_task, ids = in_learning_task(server, wdb, fake_openai)
    client = logged_in(server)
    status, _h, page = client.call("GET", f"/tasks/{id_task}")
    assert status == 200
    # Najpierw pozycja z flagą, z powodem słowami; "Akceptuj pokazane" jej nie obejmuje.
    assert item_ids(page) == [ids[0]]
    assert "odpowiedź zgubiła albo zmieniła liczbę z oryginału" in page and 'data-flags="numbers"' in page
    assert 'id="flags-note"' in page
    assert re.search(r'id="accept-shown" data-shown="[^"]*" disabled>Akceptuj pokazane \(0\)', page)
    _s, _h, rest = client.call("GET", f"/tasks/{id_task}?status=processed&flags=unflagged")
    assert item_ids(rest) == [ids[2]] and "Akceptuj pokazane (1)" in rest
    # Panel pilota z liczbami.
    assert 'id="pilot"' in page and 'id="pilot-flagged">1' in page
    assert re.search(r'id="pilot-decisions">0 / 0 / 0<', page)

    status, data = client.post_json(f"/api/items/{ids[0]}/decide", {"decision": "rejected", "version": re.search(
        rf'id="item-{ids[0]}" data-id="{ids[0]}"\s+data-version="([^"]+)"', page).group(1)})  # fmt: skip
    assert status == 200 and data["status"] == "rejected"
    _s, _h, page = client.call("GET", f"/tasks/{id_task}")
    assert re.search(r'id="pilot-decisions">0 / 0 / 1<', page) and 'id="pilot-precision">0.00<' in page

    # Bez CSRF: odmowa, nic się nie zmienia; z CSRF: zatwierdzenie i powrót do zwykłego AI.
    status, _h, text = client.call(
        "POST", f"/tasks/{id_task}/pilot", form={"action": "approve"}, headers={"Origin": server["base"]}
    )
    assert status == 403 and "CSRF" in text
    assert wdb.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "in_learning"
    status, headers, _t = client.call(
        "POST",
        f"/tasks/{id_task}/pilot",
        form={"csrf_token": client.csrf, "action": "approve"},
        headers={"Origin": server["base"]},
    )
    assert status == 303 and headers["location"] == f"/tasks/{id_task}?status=processed"
    assert wdb.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    pilot = wdb.query_one("SELECT status, approved_by, rejected FROM ai_pilot WHERE id_task=%s", (id_task,))
    assert pilot == {"status": "approved", "approved_by": "anna", "rejected": 1}
    _s, _h, page = client.call("GET", f"/tasks/{id_task}")
    assert 'id="pilot"' not in page


def test_pilot_redo_from_the_page(server, wdb, fake_openai):
    id_task, ids = in_learning_task(server, wdb, fake_openai)
    other = f"other-{uuid.uuid4().hex[:6]}"
    add_model(wdb, name=other, model="other-model", base_url=fake_openai["base_url"])
    client = logged_in(server, "olek")
    _s, _h, page = client.call("GET", f"/tasks/{id_task}")
    assert f'<option value="{other}"' in page
    status, _h, _t = client.call(
        "POST",
        f"/tasks/{id_task}/pilot",
        form={"csrf_token": client.csrf, "action": "redo", "model": other},
        headers={"Origin": server["base"]},
    )
    assert status == 303
    rows = wdb.query(
        "SELECT status, redone_by FROM ai_pilot WHERE id_task=%s ORDER BY id_ai_pilot", (id_task,)
    )
    assert [(r["status"], r["redone_by"]) for r in rows] == [("redone", "olek"), ("running", None)]
    pending = wdb.query_value(
        "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status='pending' AND id_ai_pilot IS NOT NULL",
        (id_task,),
    )
    assert pending == 2
    assert (
        wdb.query_value(
            "SELECT m.name FROM task t JOIN ai_model m USING (id_ai_model) WHERE id_task=%s", (id_task,)
        )
        == other
    )


@pytest.mark.slow
def test_browser_flag_reason_accept_alone_and_approve(server, wdb, fake_openai):
    """W przeglądarce: powód flagi słowami, pozycja z flagą przyjęta pojedynczo, zatwierdzenie pilota."""
    from playwright.sync_api import sync_playwright

    from tests.test_review_browser import CHROMIUM, CHROMIUM_ARGS

    id_task, ids = in_learning_task(server, wdb, fake_openai)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
            tab.set_default_timeout(15_000)
            errors = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto(f"{server['base']}/?token={TOKEN}")
            tab.fill("#name-form input[name=name]", "ewa")
            tab.click("#name-form button")
            tab.wait_for_selector("h1:has-text('Zadania')")
            tab.goto(f"{server['base']}/tasks/{id_task}")
            card = tab.locator(f"#item-{ids[0]}")
            assert "odpowiedź zgubiła albo zmieniła liczbę z oryginału" in card.locator(".flags").inner_text()
            assert tab.is_disabled("#accept-shown")
            card.locator(".act-accept").click()
            tab.wait_for_selector(f"#item-{ids[0]}[data-status=accepted]")
            assert (
                wdb.query_value("SELECT status FROM task_item WHERE id_task_item=%s", (ids[0],)) == "accepted"
            )
            tab.reload()
            assert tab.inner_text("#pilot-decisions") == "1 / 0 / 0"
            tab.click("#pilot-approve")
            tab.wait_for_url(f"**/tasks/{id_task}?status=processed")
            assert tab.locator("#pilot").count() == 0
            assert errors == [], errors
        finally:
            browser.close()
    assert wdb.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "completed"
    assert wdb.query_value("SELECT approved_by FROM ai_pilot WHERE id_task=%s", (id_task,)) == "ewa"
