"""Testy strony przeglądu przez HTTP na prawdziwym serwerze (``review.py serve`` w podprocesie).

Dostęp (401 bez tokenu i sesji, zły token, podpisane ciasteczko HttpOnly/SameSite=Strict), zapisy
bez CSRF albo z obcego Origin (403, baza bez zmian), strony i decyzje przez HTTP, akceptacja tylko
pokazanych pozycji, stronicowanie keyset na 100 000 pozycji (plan zapytania i czas).
"""

import http.client
import json
import re
import time
import uuid
from urllib.parse import urlencode, urlsplit

import pytest

from lib import task_item
from lib.errors import UsageError
from lib.review.decisions import Outcome
from lib.review.items import get_item, page_items
from lib.review.rules import item_version
from tests.helpers import (
    UNUSED_SOURCE,
    add_connection,
    add_task,
    add_task_item,
    running_review_server,
    start_review_server,
    stop_process_group,
)

TOKEN = f"tok-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Jeden serwer strony przeglądu na moduł, na własnej lokalnej bazie."""
    with running_review_server(tmp_path_factory.mktemp("review_web"), TOKEN) as running:
        yield running


@pytest.fixture
def seeded(wdb):
    """Zadanie z trzema pozycjami processed i jedną outdated."""
    source = UNUSED_SOURCE
    id_task = add_task(
        wdb, add_connection(wdb, source, alias=f"web-{uuid.uuid4().hex[:8]}"), status="completed"
    )
    summary = json.dumps(
        {
            "edits": [
                {
                    "original": "ktury",
                    "replacement": "który",
                    "category": "spelling",
                    "explanation": "ortografia",
                }
            ],
            "counts": {"spelling": 1},
        }
    )
    ids = [
        add_task_item(wdb, id_task, 1, "Kot ktury śpi", "Kot, który śpi.", summary=summary),
        add_task_item(wdb, id_task, 2, "Ala ma  psa", "Ala ma psa."),
        add_task_item(wdb, id_task, 3, "Dom stoi", "Dom stoi."),
        add_task_item(wdb, id_task, 4, "stary", "nowy", status="outdated", is_changed=1),
    ]
    return id_task, ids


def request(base, method, path, *, cookie=None, headers=None, json_body=None, form=None):
    """Jedno żądanie HTTP; zwraca ``(status, nagłówki, treść, ciasteczko z Set-Cookie albo None)``."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    sent = dict(headers or {})
    if cookie:
        sent["Cookie"] = cookie
    body = None
    if json_body is not None:
        body = json.dumps(json_body)
        sent["Content-Type"] = "application/json"
    elif form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8")
        set_cookies = response.headers.get_all("set-cookie") or []
    finally:
        conn.close()
    new_cookie = None
    for header in set_cookies:
        if header.startswith("ailexia_review="):
            new_cookie = header.split(";", 1)[0]
    return response.status, response.headers, text, new_cookie


class Browserless:
    """Minimalny klient z ciasteczkiem sesji (jak przeglądarka: ciasteczko z każdej odpowiedzi)."""

    def __init__(self, base):
        self.base = base
        self.origin = base
        self.cookie = None
        self.csrf = None

    def call(self, method, path, **kwargs):
        status, headers, text, cookie = request(self.base, method, path, cookie=self.cookie, **kwargs)
        if cookie:
            self.cookie = cookie
        match = re.search(r'<meta name="csrf-token" content="([^"]*)">', text)
        if match and match.group(1):
            self.csrf = match.group(1)
        return status, headers, text

    def post_json(self, path, body, csrf=True, origin=True):
        headers = {"Accept": "application/json"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf if csrf is True else csrf
        if origin:
            headers["Origin"] = self.origin if origin is True else origin
        status, _headers, text = self.call("POST", path, json_body=body, headers=headers)
        return status, json.loads(text)


def logged_in(server, name="anna"):
    """Klient zalogowany tokenem z adresu, z imieniem w sesji."""
    client = Browserless(server["base"])
    status, _h, text = client.call("GET", f"/?token={TOKEN}")
    assert status == 200 and "Kto przegląda?" in text
    status, headers, _t = client.call(
        "POST",
        "/reviewer",
        form={"csrf_token": client.csrf, "name": name, "next": "/"},
        headers={"Origin": server["base"]},
    )
    assert status == 303 and headers["location"] == "/"
    return client


def snapshot(db, id_task):
    """Stan pozycji zadania i dziennika decyzji (do sprawdzenia, że odmowa niczego nie zmieniła)."""
    items = db.query(
        "SELECT id_task_item, status, text_corrected, local_hash, approved_by, row_updated_at FROM task_item "
        "WHERE id_task=%s ORDER BY id_task_item",
        (id_task,),
    )
    return items, db.query_value("SELECT COUNT(*) FROM review_log WHERE id_task=%s", (id_task,))


def test_no_token_no_session_is_401_and_changes_nothing(server, wdb, seeded):
    id_task, ids = seeded
    before = snapshot(wdb, id_task)
    base = server["base"]
    for path in ("/", f"/?id_task={id_task}", f"/tasks/{id_task}", f"/tasks/{id_task}/export"):
        status, _h, text, cookie = request(base, "GET", path)
        assert status == 401, path
        assert "brak dostępu" in text and 'name="token"' in text and cookie is None
    writes = [
        (f"/api/items/{ids[0]}/decide", {"decision": "accepted", "version": "x"}),
        (f"/api/items/{ids[0]}/edit", {"text": "zmiana", "version": "x"}),
        (f"/api/tasks/{id_task}/undo", {}),
        (f"/api/tasks/{id_task}/accept-shown", {"shown": "x"}),
        (f"/tasks/{id_task}/export", {}),
        ("/reviewer", {"name": "intruz"}),
    ]
    for path, body in writes:
        status, _h, text, _c = request(base, "POST", path, json_body=body, headers={"Origin": base})
        assert status == 401, path
        assert json.loads(text)["message"].startswith("brak dostępu")
    assert snapshot(wdb, id_task) == before
    # Pliki statyczne (bez danych) są dostępne bez tokenu - strona logowania ich używa.
    assert request(base, "GET", "/static/review.css")[0] == 200


def test_wrong_token_is_401_and_sets_no_session(server, wdb, seeded):
    id_task, _ids = seeded
    base = server["base"]
    status, _h, text, cookie = request(base, "GET", f"/?token=wrong-{TOKEN}&id_task={id_task}")
    assert status == 401 and "zły token" in text and cookie is None
    status, _h, text, cookie = request(
        base, "POST", "/login", form={"token": "nope", "name": "x", "next": "/"}, headers={"Origin": base}
    )
    assert status == 401 and "zły token" in text and cookie is None
    # Zły token w adresie przy ważnej sesji też jest odmową (nie po cichu ignorowany).
    client = logged_in(server)
    status, _h, _t = client.call("GET", f"/tasks/{id_task}?token=wrong")
    assert status == 401


def test_token_in_url_sets_signed_httponly_samesite_strict_cookie(server, seeded):
    id_task, ids = seeded
    base = server["base"]
    status, headers, text, cookie = request(base, "GET", f"/?token={TOKEN}&id_task={id_task}")
    assert status == 200 and cookie
    set_cookie = headers.get_all("set-cookie")[0].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie
    assert TOKEN not in text and TOKEN not in set_cookie  # token nie wraca do strony ani do ciasteczka
    assert (
        headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in headers["content-security-policy"]
    )
    # Samo ciasteczko wystarcza (imię jeszcze nieznane: formularz imienia).
    status, _h, text, _c = request(base, "GET", f"/tasks/{id_task}", cookie=cookie)
    assert status == 200 and "Kto przegląda?" in text
    # Podrobiony podpis albo treść: brak dostępu.
    name, value = cookie.split("=", 1)
    forged = f"{name}={value[:-3]}{'AAA' if not value.endswith('AAA') else 'BBB'}"
    assert request(base, "GET", f"/tasks/{id_task}", cookie=forged)[0] == 401


def test_login_form_with_token_and_name(server, seeded):
    id_task, ids = seeded
    base = server["base"]
    status, headers, _t, cookie = request(
        base,
        "POST",
        "/login",
        form={"token": TOKEN, "name": "ola", "next": f"/tasks/{id_task}"},
        headers={"Origin": base},
    )
    assert status == 303 and headers["location"] == f"/tasks/{id_task}" and cookie
    status, _h, text, _c = request(base, "GET", f"/tasks/{id_task}", cookie=cookie)
    assert status == 200 and "recenzent: <b>ola</b>" in text and f'id="item-{ids[0]}"' in text
    # Przekierowanie tylko w obrębie serwera.
    status, headers, _t, _c = request(
        base, "POST", "/login", form={"token": TOKEN, "next": "//evil.example/x"}, headers={"Origin": base}
    )
    assert status == 303 and headers["location"] == "/"


def test_writes_need_csrf_token_and_same_origin(server, wdb, seeded):
    id_task, ids = seeded
    client = logged_in(server)
    status, _h, text = client.call("GET", f"/tasks/{id_task}")
    version = re.search(rf'id="item-{ids[0]}" data-id="{ids[0]}"\s+data-version="([^"]+)"', text).group(1)
    body = {"decision": "accepted", "version": version}
    path = f"/api/items/{ids[0]}/decide"
    before = snapshot(wdb, id_task)
    for kwargs, fragment in (
        ({"csrf": False}, "CSRF"),
        ({"csrf": "forged-token"}, "CSRF"),
        ({"origin": "http://evil.example"}, "Origin"),
        ({"origin": False}, "Origin"),
        ({"origin": server["base"].replace("127.0.0.1", "localhost")}, "Origin"),
    ):
        status, data = client.post_json(path, body, **kwargs)
        assert status == 403 and fragment in data["message"], kwargs
    assert snapshot(wdb, id_task) == before
    status, data = client.post_json(path, body)
    assert status == 200 and data["ok"] and data["changed"] and data["status"] == "accepted"
    row = wdb.query_one("SELECT status, approved_by FROM task_item WHERE id_task_item=%s", (ids[0],))
    assert row == {"status": "accepted", "approved_by": "anna"}


def test_every_write_route_refuses_without_csrf(server, wdb, seeded):
    """Każdy POST aplikacji (poza logowaniem tokenem) odmawia bez tokenu CSRF i niczego nie zmienia."""
    from starlette.routing import Route

    from lib.web.app import create_app

    id_task, ids = seeded
    client = logged_in(server)
    client.call("GET", f"/tasks/{id_task}")
    app = create_app(server["settings"], "x")
    posts = [r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    assert len(posts) >= 8
    before = snapshot(wdb, id_task)
    for path in posts:
        if path == "/login":
            continue
        concrete = path.replace("{id_item:int}", str(ids[0])).replace("{id_task:int}", str(id_task))
        status, data = client.post_json(
            concrete, {"decision": "accepted", "version": "v", "name": "mallory"}, csrf=False
        )
        assert status == 403 and "CSRF" in data["message"], path
    assert snapshot(wdb, id_task) == before
    status, _h, text = client.call("GET", "/")
    assert "recenzent: <b>anna</b>" in text  # imię w sesji też bez zmian


def test_pages_diff_paging_and_idempotent_decisions(server, wdb, seeded):
    id_task, ids = seeded
    client = logged_in(server)
    status, _h, text = client.call("GET", f"/?id_task={id_task}")
    assert status == 200
    assert [int(i) for i in re.findall(r'<article class="item[^"]*" id="item-(\d+)"', text)] == ids[:3]
    assert "<del>ktury</del><ins>który</ins>" in text
    # Podwójna spacja zamieniona na pojedynczą: białe znaki widoczne w zmianie.
    assert (
        '<del><span class="ws">·</span><span class="ws">·</span></del><ins><span class="ws">·</span></ins>'
        in text
    )
    assert 'class="cat spelling">spelling</span>' in text and "ortografia" in text
    # Keyset: strony po 2 pozycje, następna i poprzednia.
    status, _h, first = client.call("GET", f"/tasks/{id_task}?status=processed&limit=2")
    assert re.findall(r'id="item-(\d+)"', first) == [str(ids[0]), str(ids[1])]
    next_url = re.search(r'<a href="([^"]+)" id="next">', first).group(1).replace("&amp;", "&")
    assert f"after={ids[1]}" in next_url
    status, _h, second = client.call("GET", next_url)
    assert re.findall(r'id="item-(\d+)"', second) == [str(ids[2])] and 'id="next"' not in second
    prev_url = re.search(r'<a href="([^"]+)" id="prev">', second).group(1).replace("&amp;", "&")
    assert re.findall(r'id="item-(\d+)"', client.call("GET", prev_url)[2]) == [str(ids[0]), str(ids[1])]
    status, _h, outdated = client.call("GET", f"/tasks/{id_task}?status=outdated")
    assert f'id="item-{ids[3]}"' in outdated and "act-accept" not in outdated  # bez przycisków decyzji
    assert client.call("GET", f"/tasks/{id_task}?status=bogus")[0] == 400
    assert client.call("GET", "/tasks/999999")[0] == 404

    version = re.search(rf'data-id="{ids[1]}"\s+data-version="([^"]+)"', first).group(1)
    status, data = client.post_json(
        f"/api/items/{ids[1]}/decide", {"decision": "rejected", "version": version}
    )
    assert data["ok"] and data["changed"] and 'data-status="rejected"' in data["html"]
    # Podwójne kliknięcie: bez zmiany i bez drugiego wpisu w dzienniku, komunikat mówi, jak jest.
    status, data = client.post_json(
        f"/api/items/{ids[1]}/decide", {"decision": "rejected", "version": version}
    )
    assert (
        status == 200
        and data["ok"]
        and not data["changed"]
        and data["message"] == f"#{ids[1]}: rejected (anna)"
    )
    assert wdb.query_value("SELECT COUNT(*) FROM review_log WHERE id_task_item=%s", (ids[1],)) == 1
    # Drugi recenzent ze starą wersją: odmowa z decyzją pierwszego.
    other = logged_in(server, "jan")
    status, data = other.post_json(
        f"/api/items/{ids[1]}/decide", {"decision": "accepted", "version": version}
    )
    assert not data["ok"] and data["message"].startswith(
        "pozycja zmieniła się od wyświetlenia (teraz: rejected (anna))"
    )
    # Pozycja nieaktualna: reguła CLI z powodem.
    status, data = client.post_json(f"/api/items/{ids[3]}/decide", {"decision": "accepted", "version": "v"})
    assert not data["ok"] and data["message"].startswith("nieaktualna")
    # Cofnięcie ostatniej decyzji sesji.
    status, data = client.post_json(f"/api/tasks/{id_task}/undo", {})
    assert data["ok"] and data["id"] == ids[1] and data["status"] == "processed"
    # Strona zadań z licznikami.
    status, _h, tasks = client.call("GET", "/")
    row = re.search(rf'<tr data-task="{id_task}">(.*?)</tr>', tasks, re.S).group(1)
    assert [int(n) for n in re.findall(r'<td class="num"><a [^>]*>(\d+)</a></td>', row)] == [0, 3, 0, 0, 0, 0]


def test_accept_shown_takes_only_rendered_unchanged_items(server, wdb, seeded):
    id_task, ids = seeded
    client = logged_in(server)
    _s, _h, page = client.call("GET", f"/tasks/{id_task}?status=processed&limit=2")
    shown = re.search(r'id="accept-shown" data-shown="([^"]+)"', page).group(1)
    # Pozycja zmieniona po wyświetleniu (np. nowa korekta AI) nie jest akceptowana w ciemno.
    wdb.execute("UPDATE task_item SET text_corrected='Ala ma kota.' WHERE id_task_item=%s", (ids[1],))
    before = snapshot(wdb, id_task)
    for forged in (shown[:-4] + "AAAA", "x", ""):
        status, data = client.post_json(f"/api/tasks/{id_task}/accept-shown", {"shown": forged})
        assert status == 400 and "nieważna" in data["message"]
    other = logged_in(server, "jan")
    status, data = other.post_json(f"/api/tasks/{id_task}/accept-shown", {"shown": shown})
    assert status == 400 and "innej sesji" in data["message"]
    assert snapshot(wdb, id_task) == before
    status, data = client.post_json(f"/api/tasks/{id_task}/accept-shown", {"shown": shown})
    assert status == 200 and data["accepted"] == [ids[0]]
    assert [(r["id"], r["reason"].split(" (")[0]) for r in data["refused"]] == [
        (ids[1], "pozycja zmieniła się od wyświetlenia")
    ]
    statuses = {
        r["id_task_item"]: r["status"]
        for r in wdb.query("SELECT id_task_item, status FROM task_item WHERE id_task=%s", (id_task,))
    }
    assert statuses == {ids[0]: "accepted", ids[1]: "processed", ids[2]: "processed", ids[3]: "outdated"}


def test_handler_parts_work_alone_without_http(server, wdb, seeded):
    """Akcje decyzji i stan eksportu działają bez serwera HTTP: na bazie i na ``app.state.review``."""
    from lib.web import exports, routes
    from lib.web.app import create_app
    from lib.web.state import with_db

    id_task, ids = seeded
    settings = server["settings"]
    shown = item_version(get_item(wdb, ids[2]))
    outcome = with_db(
        settings,
        lambda db: routes.decide_item(db, ids[2], {"decision": "rejected", "version": shown}, "ola", "s1"),
    )
    assert outcome == Outcome(True, None, ids[2])
    row = wdb.query_one("SELECT status, approved_by FROM task_item WHERE id_task_item=%s", (ids[2],))
    assert row == {"status": "rejected", "approved_by": "ola"}
    # Poprawka na podstawie wersji sprzed odrzucenia: odmowa z opisem obecnego stanu, baza bez zmian.
    before = snapshot(wdb, id_task)
    outcome = with_db(
        settings, lambda db: routes.edit_item(db, ids[2], {"text": "Dom.", "version": shown}, "ola", "s1")
    )
    assert not outcome.changed and "zmieniła się od wyświetlenia (teraz: rejected (ola))" in outcome.reason
    assert snapshot(wdb, id_task) == before
    with pytest.raises(UsageError, match="brak wersji"):
        with_db(settings, lambda db: routes.decide_item(db, ids[0], {"decision": "accepted"}, "ola", "s1"))

    state = create_app(settings, "x", lambda task: (True, f"eksport {task}: ok")).state.review
    assert exports.claim_export(state, id_task)
    assert not exports.claim_export(state, id_task)  # drugi eksport tego zadania nie startuje
    exports.run_export(state, id_task)
    assert state.exports[id_task]["state"] == "done" and state.exports[id_task]["ok"] is True
    assert state.exports[id_task]["message"] == f"eksport {id_task}: ok"
    assert exports.claim_export(state, id_task)


def _find_table(node, name):
    """Szuka w planie JSON (EXPLAIN/ANALYZE) opisu dostępu do tabeli ``name``."""
    if isinstance(node, dict):
        if node.get("table_name") == name:
            return node
        for value in node.values():
            found = _find_table(value, name)
            if found:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find_table(value, name)
            if found:
                return found
    return None


@pytest.mark.slow
def test_keyset_paging_on_100000_items_stays_fast(server, wdb):
    """100 000 pozycji zadania (+ 30 000 innego): każda strona czyta ~limit wierszy indeksu, nie OFFSET."""
    source = UNUSED_SOURCE
    conn_id = add_connection(wdb, source, alias=f"big-{uuid.uuid4().hex[:8]}")
    id_task, other = add_task(wdb, conn_id, status="completed"), add_task(wdb, conn_id, status="completed")
    started = time.monotonic()
    statuses = ("processed", "processed", "processed", "accepted", "pending")
    rows = [(id_task, n, f"tekst {n} ktury", f"tekst {n} który", statuses[n % 5]) for n in range(1, 100_001)]
    rows += [(other, n, f"inny {n}", f"inny {n}.", "processed") for n in range(1, 30_001)]
    wdb.executemany(
        "INSERT INTO task_item (id_task, remote_id, text_original, text_corrected, status) VALUES (%s, %s, %s, %s, %s)",
        rows,
    )
    wdb.execute("ANALYZE TABLE task_item")
    print(f"\nwstawiono {len(rows)} pozycji w {time.monotonic() - started:.1f} s")
    limit = 20
    ids = [
        r["id_task_item"]
        for r in wdb.query(
            "SELECT id_task_item FROM task_item WHERE id_task=%s AND status='processed' ORDER BY id_task_item",
            (id_task,),
        )
    ]
    assert len(ids) == 60_000
    deep = ids[54_000]

    # Plan: zakres indeksu (id_task, status, deleted_at) od klucza strony, bez sortowania, ~limit+1
    # przeczytanych wierszy - także dla zadania wstawionego później (bez FORCE INDEX MariaDB czytała
    # PRIMARY przez wszystkie pozycje wcześniejszych zadań). Ten sam kształt: decyzje --all i zrzut.
    cases = [
        (task_item.PAGE_COLUMNS, id_task, None, False, limit + 1, {}),
        (task_item.PAGE_COLUMNS, id_task, deep, False, limit + 1, {}),
        (task_item.PAGE_COLUMNS, id_task, deep, True, limit + 1, {}),
        (task_item.PAGE_COLUMNS, other, None, False, limit + 1, {}),
        (task_item.DECISION_COLUMNS, other, None, False, 1000, {"lock": True}),
        ("id_task_item, text_corrected", other, None, False, 1000, {"condition": task_item.ONLY_CORRECTED}),
    ]
    for columns, task, key, backwards, rows_limit, options in cases:
        sql, params = task_item.status_page_query(
            columns, task, "processed", key, rows_limit, backwards=backwards, **options
        )
        plan = json.loads(wdb.query_value("ANALYZE FORMAT=JSON " + sql, params))
        table = _find_table(plan, "task_item")
        assert table["key"] == task_item.STATUS_PAGE_INDEX and table["access_type"] in ("range", "ref"), table
        assert table["r_rows"] <= rows_limit, (task, key, backwards, table)
        assert "filesort" not in json.dumps(plan)
    offset_plan = json.loads(
        wdb.query_value(
            "ANALYZE FORMAT=JSON SELECT id_task_item FROM task_item WHERE id_task=%s AND status='processed' "
            "ORDER BY id_task_item LIMIT 21 OFFSET 54000",
            (id_task,),
        )
    )
    print(f"r_rows: keyset <= {limit + 1}, OFFSET {_find_table(offset_plan, 'task_item')['r_rows']}")

    # Czasy stron (biblioteka): pierwsza, głęboka, wstecz; zawartość ciągła i rosnąca.
    timings = {}
    for label, kwargs, expected in (
        ("first", {}, ids[:limit]),
        ("deep", {"after": deep}, ids[54_001 : 54_001 + limit]),
        ("back", {"before": deep}, ids[54_000 - limit : 54_000]),
        ("last", {"after": ids[-3]}, ids[-2:]),
    ):
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            page = page_items(wdb, id_task, "processed", limit=limit, **kwargs)
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        assert [i["id_task_item"] for i in page.items] == expected, label
        timings[label] = best
    assert page_items(wdb, id_task, "processed", after=ids[-3], limit=limit).has_next is False
    print("czasy stron (s): " + ", ".join(f"{k}={v:.4f}" for k, v in timings.items()))
    # Luźna granica (maszyna współdzielona): strona ~ms; OFFSET-owy skan 54 000 wierszy byłby wyraźnie wolniejszy.
    assert max(timings.values()) < 0.5, timings

    # Przez HTTP: głęboka strona z różnicami w granicy jednej sekundy.
    client = logged_in(server)
    t0 = time.perf_counter()
    status, _h, text = client.call("GET", f"/tasks/{id_task}?status=processed&after={deep}")
    http_s = time.perf_counter() - t0
    assert status == 200 and re.findall(r'id="item-(\d+)"', text)[0] == str(ids[54_001])
    t0 = time.perf_counter()
    assert client.call("GET", "/")[0] == 200
    tasks_s = time.perf_counter() - t0
    print(f"HTTP: głęboka strona {http_s:.3f} s, strona zadań (agregaty 130 000 pozycji) {tasks_s:.3f} s")
    assert http_s < 1.0


def test_serve_generates_a_token_and_reports_a_busy_port(server, tmp_path):
    """Bez ``REVIEW_TOKEN`` serwer losuje token i wypisuje go w adresie; zajęty port = jedna linia, kod 1."""
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    env = {**server["env"], "REVIEW_TOKEN": ""}
    process, base = start_review_server(env, tmp_path / "serve.log")
    try:
        printed = re.search(r"\?token=([0-9a-f]+)", (tmp_path / "serve.log").read_text()).group(1)
        assert len(printed) == 48 and printed != TOKEN
        assert request(base, "GET", f"/?token={TOKEN}")[0] == 401  # token innego serwera nie działa
        status, _h, _t, cookie = request(base, "GET", f"/?token={printed}")
        assert status == 200 and cookie
    finally:
        stop_process_group(process)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "review.py", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"review: nie można nasłuchiwać na 127.0.0.1:{port}: Address already in use"
    ]
