"""Strony operatora (źródła, modele, nowe zadanie, postęp) przez HTTP: Starlette ``TestClient``.

Aplikacja strony przeglądu (``lib.web.app.create_app``) na świeżej lokalnej bazie MariaDB, źródła
PostgreSQL i SQLite, model na ``tests/fake_openai.py``. Sprawdzane jest to, co widzi operator:
kody HTTP, komunikaty (te same co ``ailexia``), stan bazy po każdym zapisie; hasło źródła nie
pojawia się w żadnej odpowiedzi ani w bazie jawnie; zapis bez CSRF, bez sesji albo z obcego
``Origin`` niczego nie zmienia.
"""

import json
import re
import subprocess
import uuid

import pytest
from starlette.testclient import TestClient

from lib.db_local import connect_local
from lib.load_config import load_config
from lib.passwords import new_key
from lib.schema import init_db
from lib.web.app import create_app
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import create_text_table, source_execute

TOKEN = f"tok-{uuid.uuid4().hex}"
BASE = "http://testserver"
PASSWORD = f"Tajne-{uuid.uuid4().hex[:12]}"
TEXTS = [(1, "Pierwszy tekst z bląd."), (2, "Drugi tekst."), (3, "Trzeci tekst wogóle.")]


class Browser:
    """Klient jak przeglądarka: ciasteczko sesji, token CSRF z ostatniej strony, ``Origin`` tego serwera.

    Zapamiętuje treść każdej odpowiedzi (``seen``), żeby test mógł w nich szukać hasła.
    """

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""
        self.seen: list[str] = []

    def _keep(self, response):
        self.seen.append(response.text)
        self.seen.append(json.dumps(dict(response.headers)))
        match = re.search(r'<meta name="csrf-token" content="([^"]*)">', response.text)
        if match and match.group(1):
            self.csrf = match.group(1)
        return response

    def get(self, path: str, json_api: bool = False):
        headers = {"Accept": "application/json"} if json_api else {}
        return self._keep(self.client.get(path, headers=headers))

    def post(self, path: str, form: dict | None = None, *, csrf=True, origin=BASE, json_api=False):
        headers = {"Accept": "application/json"} if json_api else {}
        if origin:
            headers["Origin"] = origin
        data = dict(form or {})
        if csrf:
            data["csrf_token"] = self.csrf
        return self._keep(self.client.post(path, data=data, headers=headers))

    def follow(self, response):
        """Przekierowanie po zapisie (POST-redirect-GET) jak w przeglądarce."""
        assert response.status_code == 303, (
            response.status_code,
            re.findall(r"message[^>]*>([^<]*)<", response.text),
        )
        return self.get(response.headers["location"])


@pytest.fixture
def web(local_env, monkeypatch):
    """Aplikacja strony na świeżej lokalnej bazie (z kluczem szyfrującym) i zalogowany klient."""
    monkeypatch.setenv("AILEXIA_SECRET_KEY", new_key())
    settings = load_config()
    init_db(settings)
    app = create_app(settings, TOKEN)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        browser = Browser(client)
        browser.get(f"/sources?token={TOKEN}")
        assert browser.csrf
        yield browser, settings


@pytest.fixture
def wdb(web):
    conn = connect_local(web[1], autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def pg_role(pg_source):
    """Rola PostgreSQL z hasłem, z prawem odczytu i zapisu tabeli ``articles``."""
    create_text_table(pg_source, rows=TEXTS)
    role = f"ax_web_{uuid.uuid4().hex[:8]}"
    source_execute(pg_source, f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    source_execute(pg_source, f"GRANT SELECT, UPDATE ON articles TO {role}")
    yield role
    source_execute(pg_source, f"DROP OWNED BY {role}")
    source_execute(pg_source, f"DROP ROLE {role}")


def pg_form(pg_source, alias: str, role: str) -> dict:
    return {
        "alias": alias,
        "type": "pgsql",
        "host": pg_source["host"],
        "port": str(pg_source["port"]),
        "db": pg_source["db_name"],
        "user": role,
        "password": PASSWORD,
    }


def add_sqlite_source(browser: Browser, sqlite_source, alias: str = "pliki") -> None:
    create_text_table(sqlite_source, rows=TEXTS)
    # Tabela bez klucza: wybór pokazuje powód, zadanie bez --key jest odmawiane.
    source_execute(sqlite_source, "CREATE TABLE notes (body TEXT)")
    response = browser.post("/sources", {"alias": alias, "type": "sqlite", "db": sqlite_source["db_name"]})
    assert response.status_code == 303, response.text


def test_pages_and_writes_need_the_token_session(web, wdb):
    browser, settings = web
    with TestClient(create_app(settings, TOKEN), base_url=BASE, follow_redirects=False) as stranger:
        for path in ("/sources", "/models", "/tasks/new", "/progress", "/sources/x/tables"):
            assert stranger.get(path).status_code == 401, path
        api = stranger.get("/api/progress")
        assert api.status_code == 401 and api.json()["ok"] is False
        form = {"alias": "obcy", "type": "sqlite", "db": "/tmp/x.sqlite", "csrf_token": browser.csrf}
        assert stranger.post("/sources", data=form, headers={"Origin": BASE}).status_code == 401
        assert stranger.get(f"/sources?token=zly-{TOKEN}").status_code == 401
    assert wdb.query_value("SELECT COUNT(*) FROM database_connection") == 0
    # Nawigacja strony prowadzi do stron operatora.
    page = browser.get("/sources").text
    for link in ("/progress", "/tasks/new", "/sources", "/models"):
        assert f'href="{link}"' in page


def test_source_add_test_tables_list_and_password_never_shown(web, wdb, pg_source, pg_role):
    browser, _settings = web
    listed = browser.follow(browser.post("/sources", pg_form(pg_source, "crm", pg_role)))
    assert "dodano źródło &#39;crm&#39;" in listed.text and "zaszyfrowane" in listed.text
    row = wdb.query_one(
        "SELECT db_password, password_env, db_user FROM database_connection WHERE alias='crm'"
    )
    assert row["db_password"].startswith("fernet:") and PASSWORD not in row["db_password"]
    assert row["db_user"] == pg_role and row["password_env"] is None

    # Powtórzony alias: to samo zdanie co ailexia source add, formularz bez hasła, nic nie dodane.
    again = browser.post("/sources", pg_form(pg_source, "crm", pg_role))
    assert again.status_code == 400
    assert "źródło o aliasie &#39;crm&#39; już istnieje; wybierz inny --alias" in again.text
    assert 'name="password" value=""' in again.text
    assert wdb.query_value("SELECT COUNT(*) FROM database_connection") == 1
    env_form = {**pg_form(pg_source, "crm_env", pg_role), "password": "", "password_env": "CRM_PASSWORD"}
    assert browser.post("/sources", env_form).status_code == 303
    bad_port = browser.post("/sources", {**env_form, "alias": "x", "port": "abc"}, json_api=True)
    assert bad_port.status_code == 400 and bad_port.json()["message"].startswith("--port:")

    listed = browser.get("/sources", json_api=True).json()
    assert [(s["alias"], s["password"]) for s in listed] == [
        ("crm", "encrypted"),
        ("crm_env", "env:CRM_PASSWORD"),
    ]

    tested = browser.post("/sources/crm/test")
    assert tested.status_code == 200, tested.text
    assert f'<td id="user">{pg_role}</td>' in tested.text
    assert "tak (1 z 1 tabel)" in re.sub(r"\s+", " ", tested.text)
    as_json = browser.post("/sources/crm/test", json_api=True).json()
    assert as_json["can_read"] is True and as_json["can_update"] is True and as_json["user"] == pg_role
    assert as_json["version"].split(".")[0].isdigit() and as_json["elapsed_ms"] >= 0

    one = browser.post("/sources/crm/test", {"table": "articles"}, json_api=True).json()
    assert (one["tables_checked"], one["can_update"]) == (1, True)
    no_table = browser.post("/sources/crm/test", {"table": "brak"}, json_api=True)
    assert no_table.status_code == 400 and "'brak'" in no_table.json()["message"]
    tables = browser.get("/sources/crm/tables", json_api=True).json()
    assert [(t["table"], t["key"], t["text_columns"]) for t in tables] == [
        ("articles", "id", ["body", "note"])
    ]
    page = browser.get("/sources/crm/tables").text
    assert "body, note" in page and "/tasks/new?source=crm&amp;table=articles" in page
    assert browser.get("/sources/crm/tables?schema=brak", json_api=True).json() == []
    missing = browser.get("/sources/nieznane/tables")
    assert missing.status_code == 400 and "&#39;nieznane&#39; nie istnieje" in missing.text

    assert all(PASSWORD not in text for text in browser.seen)
    assert PASSWORD not in json.dumps(dict(browser.client.cookies))


def test_writes_without_csrf_or_from_another_origin_change_nothing(web, wdb, sqlite_source):
    browser, _settings = web
    form = {"alias": "obce", "type": "sqlite", "db": sqlite_source["db_name"]}
    no_csrf = browser.post("/sources", form, csrf=False)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["message"]
    foreign = browser.post("/sources", form, origin="http://evil.example")
    assert foreign.status_code == 403 and "Origin" in foreign.json()["message"]
    assert browser.post("/sources", form, origin=None).status_code == 403
    assert browser.post("/models", {"name": "m"}, csrf=False).status_code == 403
    assert browser.post("/tasks/new", {"source": "obce"}, csrf=False).status_code == 403
    assert wdb.query_value("SELECT COUNT(*) FROM database_connection") == 0
    assert wdb.query_value("SELECT COUNT(*) FROM ai_model") == 0

    add_sqlite_source(browser, sqlite_source)
    id_task = browser.post(
        "/tasks/new", {"source": "pliki", "table": "articles", "column": "body"}, json_api=True
    ).json()["id_task"]
    assert browser.post(f"/tasks/{id_task}/pause", csrf=False).status_code == 403
    assert browser.post(f"/tasks/{id_task}/pause", origin="http://evil.example").status_code == 403
    assert browser.post("/sources/pliki/test", csrf=False).status_code == 403
    assert wdb.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "new"


def test_task_picker_and_wrong_names_refused_with_the_cli_sentence(web, wdb, sqlite_source, local_env):
    browser, _settings = web
    add_sqlite_source(browser, sqlite_source)
    picker = browser.get("/tasks/new?source=pliki")
    assert picker.status_code == 200
    assert 'data-columns=\'["body", "note"]\'' in picker.text and 'data-key="id"' in picker.text
    assert 'data-problem="brak użytecznego klucza' in picker.text
    assert "klucz workera: <b>id</b>" in picker.text

    wrong = browser.post("/tasks/new", {"source": "pliki", "table": "articles", "column": "tresc"})
    assert wrong.status_code == 400
    message = re.search(r'<p class="message" id="form-message">([^<]*)</p>', wrong.text).group(1)
    cli = subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "ailexia"), "task", "add", "--source", "pliki"]
        + ["--table", "articles", "--column", "tresc"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert cli.returncode == 2
    assert cli.stderr.strip() == "ailexia: " + message.replace("&#39;", "'")
    # Formularz wraca z wyborem źródła i tabeli, żeby poprawić tylko kolumnę.
    assert '<option value="articles"' in wrong.text and 'name="source" value="pliki"' in wrong.text

    refusals = [
        ({"table": "articles", "column": "body", "key": "numer"}, "kolumna 'numer' nie istnieje"),
        ({"table": "notes", "column": "body"}, "brak użytecznego klucza"),
        ({"table": "brak", "column": "body"}, "'brak'"),
        ({"table": "articles", "column": "body", "model": "nieznany"}, "model 'nieznany' nie istnieje"),
        ({"table": "articles", "column": "body", "action": "translate"}, "--to"),
        ({"table": "articles", "column": "body", "pilot": "dużo"}, "--pilot"),
        ({"table": "", "column": "body"}, "--table"),
    ]
    for fields, fragment in refusals:
        refused = browser.post("/tasks/new", {"source": "pliki", **fields}, json_api=True)
        assert refused.status_code == 400 and fragment in refused.json()["message"], (fields, refused.text)
    assert wdb.query_value("SELECT COUNT(*) FROM task") == 0

    form = {"source": "pliki", "table": "articles", "column": "body", "export_column": "note"}
    added = browser.post("/tasks/new", form)
    progress = browser.follow(added)
    id_task = wdb.query_value("SELECT id_task FROM task")
    assert f"dodano zadanie {id_task}" in progress.text and "articles.body" in progress.text
    task = wdb.query_one("SELECT table_name, column_name, key_column, export_column, status FROM task")
    assert task == {
        "table_name": "articles",
        "column_name": "body",
        "key_column": None,
        "export_column": "note",
        "status": "new",
    }


def test_progress_and_pause_resume_resync(web, wdb, sqlite_source):
    browser, _settings = web
    add_sqlite_source(browser, sqlite_source)
    form = {"source": "pliki", "table": "articles", "column": "body", "key": "id"}
    id_task = browser.post("/tasks/new", form, json_api=True).json()["id_task"]
    wdb.execute(
        "UPDATE task SET status='in_progress', sync_stage='compare', sync_progress=42.5, records_total=3 "
        "WHERE id_task=%s",
        (id_task,),
    )
    page = browser.get("/progress").text
    assert f'data-task="{id_task}" data-status="in_progress" class="running"' in page
    assert 'value="42.5"' in page and "task-pause" in page and "task-resume" not in page
    api = browser.get("/api/progress", json_api=True).json()
    (row,) = api["tasks"]
    assert (row["status"], row["sync_stage"], row["sync_progress"], row["items_total"]) == (
        "in_progress",
        "compare",
        42.5,
        0,
    )
    assert f"/tasks/{id_task}/pause" in api["html"] and browser.csrf in api["html"]

    paused = browser.follow(browser.post(f"/tasks/{id_task}/pause"))
    assert f"zadanie {id_task}: in_progress -&gt; paused" in paused.text
    assert wdb.query_one("SELECT status, pause_reason FROM task WHERE id_task=%s", (id_task,)) == {
        "status": "paused",
        "pause_reason": "manual",
    }
    assert "task-resume" in paused.text
    again = browser.post(f"/tasks/{id_task}/pause", json_api=True).json()
    assert again["changed"] is False and again["message"] == f"zadanie {id_task}: już paused (bez zmian)"
    resumed = browser.post(f"/tasks/{id_task}/resume", json_api=True).json()
    assert (resumed["before"], resumed["after"]) == ("paused", "resync")
    wdb.execute("UPDATE task SET status='completed' WHERE id_task=%s", (id_task,))
    refused = browser.follow(browser.post(f"/tasks/{id_task}/resume"))
    flash = re.search(r'<div id="flash"[^>]*class="problem">([^<]*)</div>', refused.text).group(1)
    assert flash == f"zadanie {id_task} ma status completed: wznowić można tylko zadanie wstrzymane (paused)"
    resync = browser.post(f"/tasks/{id_task}/resync", json_api=True).json()
    assert (resync["before"], resync["after"]) == ("completed", "resync")
    assert wdb.query_value("SELECT status FROM task WHERE id_task=%s", (id_task,)) == "resync"
    assert browser.post("/tasks/999999/pause", json_api=True).status_code == 400


def test_model_add_list_and_test_against_fake_server(web, wdb, fake_openai, monkeypatch):
    browser, _settings = web
    monkeypatch.setenv("FAKE_KEY", "sk-fake-web-1234")
    form = {
        "name": "lokalny",
        "model": "fake-model",
        "base_url": fake_openai["base_url"],
        "api_key_env": "FAKE_KEY",
        "price_in": "0.15",
        "price_out": "0,60",
        "pack_items": "10",
    }
    listed = browser.follow(browser.post("/models", form))
    assert "dodano model &#39;lokalny&#39;" in listed.text and "fake-model" in listed.text
    duplicate = browser.post("/models", form)
    assert duplicate.status_code == 400 and "już istnieje" in duplicate.text
    bad_price = browser.post("/models", {**form, "name": "m2", "price_in": "-1"}, json_api=True)
    assert bad_price.status_code == 400 and bad_price.json()["message"].startswith("--price-in:")
    not_number = browser.post("/models", {**form, "name": "m3", "price_out": "dużo"}, json_api=True)
    assert not_number.json()["message"].startswith("--price-out: oczekiwano liczby")
    row = wdb.query_one("SELECT price_input_per_mtok, price_output_per_mtok, pack_items FROM ai_model")
    assert (float(row["price_input_per_mtok"]), float(row["price_output_per_mtok"]), row["pack_items"]) == (
        0.15,
        0.6,
        10,
    )
    assert [m["name"] for m in browser.get("/models", json_api=True).json()] == ["lokalny"]

    tested = browser.post("/models/lokalny/test")
    assert tested.status_code == 200, tested.text
    assert '<td id="answer">To jest błąd, którego w ogóle nie widać.</td>' in tested.text
    as_json = browser.post("/models/lokalny/test", json_api=True).json()
    expected = (as_json["tokens_input"] * 0.15 + as_json["tokens_output"] * 0.60) / 1_000_000
    assert as_json["cost_usd"] == pytest.approx(expected, abs=1e-6) and as_json["latency_ms"] >= 0
    assert {r["headers"]["authorization"] for r in fake_openai["requests"]} == {"Bearer sk-fake-web-1234"}
    missing = browser.post("/models/nieznany/test")
    assert missing.status_code == 400 and "model &#39;nieznany&#39; nie istnieje" in missing.text
    assert all("sk-fake-web-1234" not in text for text in browser.seen)
