"""Strony operatora w prawdziwej przeglądarce (Chromium z Debiana sterowany przez Playwright).

Serwer ``review.py serve`` w podprocesie na własnej lokalnej bazie (z kluczem szyfrującym), źródło
SQLite: operator rejestruje źródło, testuje je, wybiera tabelę i kolumnę, dostaje odmowę złego
klucza, zakłada zadanie, widzi je na stronie postępu (odświeżanej na żywo) i wstrzymuje je.
Zrzuty stron trafiają do ``/tmp/operator_shots/`` (``AILEXIA_OPERATOR_SHOTS`` zmienia katalog).
"""

import os
import uuid
from pathlib import Path

import pytest

from lib.passwords import new_key
from tests.helpers import create_text_table, running_review_server, source_execute
from tests.test_review_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow

TOKEN = f"tok-{uuid.uuid4().hex}"
SHOTS = Path(os.environ.get("AILEXIA_OPERATOR_SHOTS", "/tmp/operator_shots"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``review.py serve`` z tokenem i kluczem ``AILEXIA_SECRET_KEY`` na świeżej lokalnej bazie."""
    tmp = tmp_path_factory.mktemp("operator_browser")
    with running_review_server(tmp, TOKEN, {"AILEXIA_SECRET_KEY": new_key()}) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "brak /usr/bin/chromium (instaluje go scripts/ensure_services.sh)"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(server, browser):
    """Zalogowana karta; na końcu: żadnego błędu skryptu ani naruszenia CSP w konsoli."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # Błędy konsoli (np. naruszenie CSP), poza wpisem o odpowiedzi 400 na odrzucony formularz.
    tab.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    tab.goto(f"{server['base']}/sources?token={TOKEN}")
    tab.wait_for_selector("h1:has-text('Źródła')")
    yield tab
    context.close()
    assert errors == [], errors


def shot(tab, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = SHOTS / name
    tab.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    return target


def test_register_source_pick_table_and_column_create_task_and_pause_it(server, page, wdb, sqlite_source):
    create_text_table(sqlite_source, rows=[(1, "Pierwszy tekst z bląd."), (2, "Drugi tekst.")])
    source_execute(sqlite_source, "CREATE TABLE notes (body TEXT)")
    assert "token=" not in page.url  # token znika z paska adresu

    # Źródło: formularz, komunikat po zapisie, wiersz na liście (hasło: brak).
    page.fill("#f-alias", "pliki")
    page.select_option("#f-type", "sqlite")
    page.fill("#f-db", sqlite_source["db_name"])
    page.click("#source-add")
    page.wait_for_selector("#flash.ok:has-text(\"dodano źródło 'pliki'\")")
    row = page.locator("#sources tr[data-alias=pliki]")
    assert "sqlite" in row.inner_text() and "brak" in row.inner_text()
    assert wdb.query_value("SELECT db_type FROM database_connection WHERE alias='pliki'") == "sqlite"
    shot(page, "sources.png")

    row.locator("button.test-source").click()
    page.wait_for_selector("#source-test")
    assert page.inner_text("#can-read").startswith("tak") and page.inner_text("#version")[0].isdigit()
    shot(page, "source_test.png")

    # Nowe zadanie: źródło -> tabele -> kolumny tekstowe i klucz workera.
    page.click("#nav-task-new")
    page.select_option("#t-source", "pliki")
    page.wait_for_selector("#task-form")
    assert page.input_value("#t-table") == "articles"
    assert page.inner_text("#key-hint") == "klucz workera: id"
    page.select_option("#t-table", "notes")
    assert page.eval_on_selector_all("#t-column option", "os => os.map(o => o.value)") == ["body"]
    assert page.inner_text("#key-hint").startswith("brak klucza: brak użytecznego klucza")
    page.select_option("#t-table", "articles")
    assert page.eval_on_selector_all("#t-column option", "os => os.map(o => o.value)") == ["body", "note"]
    page.select_option("#t-column", "body")
    shot(page, "task_new.png")
    page.fill("#t-key", "numer")
    page.click("#task-add")
    page.wait_for_selector("#form-message:has-text(\"kolumna 'numer' nie istnieje\")")
    assert wdb.query_value("SELECT COUNT(*) FROM task") == 0
    assert page.input_value("#t-table") == "articles"  # wybór zostaje, poprawia się tylko klucz

    page.fill("#t-key", "")
    page.click("#task-add")
    page.wait_for_selector("#flash.ok:has-text('dodano zadanie')")
    id_task = wdb.query_value("SELECT id_task FROM task")
    assert page.url.endswith("/progress")
    task_row = page.locator(f"#progress tr[data-task='{id_task}']")
    assert "articles.body" in task_row.inner_text() and task_row.get_attribute("data-status") == "new"

    # Postęp na żywo: zmiana w bazie pojawia się bez przeładowania strony.
    wdb.execute(
        "UPDATE task SET status='in_progress', sync_stage='compare', sync_progress=37.5 WHERE id_task=%s",
        (id_task,),
    )
    page.wait_for_selector(f"#progress tr[data-task='{id_task}'][data-status=in_progress]", timeout=20_000)
    assert "37.5%" in page.locator(f"#progress tr[data-task='{id_task}']").inner_text()
    page.click(f"#progress tr[data-task='{id_task}'] button.task-pause")
    page.wait_for_selector(f"#flash.ok:has-text('zadanie {id_task}: in_progress -> paused')")
    assert wdb.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "paused"
    page.wait_for_selector(f"#progress tr[data-task='{id_task}'] button.task-resume")
    shot(page, "progress.png")
