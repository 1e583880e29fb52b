"""Teksty, które mogłyby stać się SQL-em, przechodzą bajt w bajt przez każdą ścieżkę (issue 24).

Zgłoszenie: przy globalnym ``sql_mode`` lokalnej MariaDB z ``NO_BACKSLASH_ESCAPES`` tekst ``a\\'b``
ze źródła psuł pierwszą synchronizację błędem składni SQL, bo ``db_local.sql_literal`` ucieka
backslashem - tekst mógł więc stać się SQL-em. Poprawka przypina tryb SQL każdej sesji PyMySQL
projektu (``mysql_connect.INIT_COMMAND``, także po ponownym połączeniu), ``MySQL.execute_encoded``
odmawia pracy w sesji z ``NO_BACKSLASH_ESCAPES``, a sesje PostgreSQL mają
``standard_conforming_strings=on`` niezależnie od ustawień serwera i bazy.

Testy zmieniają ustawienia prawdziwych serwerów na czas testu i zawsze je przywracają (``finally``):

* MariaDB: ``SET GLOBAL sql_mode`` z dopisanym ``NO_BACKSLASH_ESCAPES`` albo ``ANSI_QUOTES``
  (marker ``global_settings`` - zmienia serwer dla wszystkich, więc takie testy można puszczać
  osobno, szeregowo);
* PostgreSQL: ``ALTER DATABASE <źródło testu> SET standard_conforming_strings = off`` - tylko baza
  źródłowa testu, bez markera. ``ALTER SYSTEM`` nie jest potrzebny: ustawienie bazy ma wyższy
  priorytet niż plik konfiguracji serwera, a opcja ``-c`` połączenia wygrywa z oboma; zmiana całego
  serwera psułaby za to równolegle działające testy z literałami z backslashem.

Każdy test pełnej ścieżki sprawdza na końcu, że tabela ``canary`` (z jednym wierszem) wciąż istnieje
w bazie lokalnej i w źródle.
"""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg2
import pymysql
import pytest

from lib import db_remote
from lib.ai import run as ai_worker
from lib.db_local import connect_local, sql_literal
from lib.errors import LocalDbError
from lib.export.run import run_export
from lib.mysql_connect import INIT_COMMAND, SESSION_SQL_MODE
from lib.review.decisions import Outcome, accept_hunks, edit_and_accept, set_decision
from lib.review.diff import diff_hunks
from lib.sync import engine as sync
from tests.conftest import MYSQL_SERVER, PG_SERVER, PROJECT_ROOT
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import (
    add_connection,
    add_model,
    add_task,
    create_text_table,
    sha256,
    source_execute,
    source_query,
)

GLOBAL = pytest.mark.global_settings

# Teksty, które muszą przejść bez zmiany żadnego bajtu (kolejność ma znaczenie: rotacje niżej).
TEXTS = (
    "'",  # apostrof
    "\\",  # backslash
    "\\'",  # backslash + apostrof
    "''",  # dwa apostrofy
    '"',  # cudzysłów
    "\x00",  # sam znak NUL
    "przed\x00po",  # NUL w środku tekstu
    "\\N",  # dwa znaki \N (NULL w formacie COPY)
    "🙂 𝔘",  # znaki 4-bajtowe
    "Zażółć gęślą jaźń ŻÓŁĆ",  # polskie litery
    "x\\', 0); DROP TABLE canary; -- ",
    'x\\", 0); DROP TABLE canary; -- ',
    "'); DROP TABLE canary; --",
    "a\\'b",  # tekst ze zgłoszenia
    "koniec\\",  # backslash na końcu literału
    "\\\\'",  # dwa backslashe + apostrof
    "tab\tnowa\nlinia \\t\\n",  # prawdziwe tabulator i nowa linia obok ich zapisów z backslashem
)
# Wiersz dodany w źródle przed drugą synchronizacją.
NEW_TEXT = "nowy \\'); DROP TABLE canary; -- 🙂"
# Teksty złożone wyłącznie ze znaków pomijalnych w sortowaniu utf8mb4_unicode_ci kolumny
# ``text_original`` (NUL): reguła AI ``text_original <> ''`` (``task_item._AI_CANDIDATE``) uznaje je za
# puste, więc nie idą do modelu i zostają ``pending`` - w kroku AI, przeglądu i eksportu ich nie ma.
LOCALLY_EMPTY = {"\x00"}
NULL_KEY = 1000
NEW_KEY = 2000

# Tryby serwerów: MariaDB (globalny sql_mode: baza lokalna i źródło MariaDB) albo PostgreSQL (baza źródła).
MARIADB_FLAGS = {"no_backslash_escapes": "NO_BACKSLASH_ESCAPES", "ansi_quotes": "ANSI_QUOTES"}
PG_SCS_OFF = "pg_standard_conforming_strings_off"

AI_SETTINGS = {
    "AI_BACKOFF_S": 0.05,
    "AI_MAX_RETRIES": 2,
    "AI_TIMEOUT_S": 10.0,
    "AI_CONCURRENCY": 2,
    "AI_PACK_CHARS": 4000,
}


def texts_for(db_type: str) -> list[str]:
    """Teksty, które źródło potrafi przechować (PostgreSQL nie zapisuje NUL w kolumnie tekstowej)."""
    if db_type == "pgsql":
        return [t for t in TEXTS if "\x00" not in t]
    return list(TEXTS)


def rotated(values: list[str], shift: int) -> list[str]:
    """Lista przesunięta cyklicznie: element ``i`` dostaje ``values[i + shift]``."""
    return [values[(i + shift) % len(values)] for i in range(len(values))]


# --- ustawienia serwerów --------------------------------------------------------------------


def _mysql_admin():
    """Połączenie administracyjne MariaDB z trybem sesji projektu (niezależne od globalnego sql_mode)."""
    return pymysql.connect(**MYSQL_SERVER, autocommit=True, charset="utf8mb4", init_command=INIT_COMMAND)


@contextlib.contextmanager
def mariadb_global_flag(flag: str) -> Iterator[None]:
    """Dopisuje ``flag`` do GLOBAL ``sql_mode`` MariaDB; przywraca dokładnie poprzednią wartość.

    Sprawdza też, że nowa sesja bez przypiętego trybu (zwykłe ``pymysql.connect``) naprawdę go
    dostaje - inaczej test nie dowodziłby niczego.
    """
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.sql_mode")
            previous = cursor.fetchone()[0]
    finally:
        admin.close()
    try:
        admin = _mysql_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, %s)", (f",{flag}",))
        finally:
            admin.close()
        plain = pymysql.connect(**MYSQL_SERVER, charset="utf8mb4")
        try:
            with plain.cursor() as cursor:
                cursor.execute("SELECT @@SESSION.sql_mode")
                assert flag in cursor.fetchone()[0].split(",")
        finally:
            plain.close()
        yield
    finally:
        # Nowe połączenie: to z początku testu mogło zostać zerwane.
        admin = _mysql_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute("SET GLOBAL sql_mode = %s", (previous,))
                cursor.execute("SELECT @@GLOBAL.sql_mode")
                assert cursor.fetchone()[0] == previous
        finally:
            admin.close()


def _pg_connect(dbname: str):
    conn = psycopg2.connect(dbname=dbname, **PG_SERVER)
    conn.autocommit = True
    return conn


def _pg_setting(dbname: str, name: str) -> str:
    """Wartość ustawienia w nowej sesji bez opcji połączenia (domyślna dla tej bazy)."""
    conn = _pg_connect(dbname)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SHOW {name}")
            return cursor.fetchone()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def pg_standard_strings_off(dbname: str) -> Iterator[None]:
    """``standard_conforming_strings = off`` jako ustawienie bazy źródłowej testu (cofane w ``finally``)."""
    admin = _pg_connect("postgres")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{dbname}" SET standard_conforming_strings = off')
        assert _pg_setting(dbname, "standard_conforming_strings") == "off"
        yield
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{dbname}" RESET standard_conforming_strings')
        admin.close()


SOURCES = {"pg_source": "pgsql", "mysql_source": "mysql", "sqlite_source": "sqlite"}
# Macierz: tryby domyślne i oba globalne tryby MariaDB dla każdego źródła, PostgreSQL bez
# standard_conforming_strings tylko dla źródła PostgreSQL.
CASES = [
    *(pytest.param(("default", source), id=f"default-{kind}") for source, kind in SOURCES.items()),
    *(
        pytest.param((mode, source), id=f"{mode}-{kind}", marks=GLOBAL)
        for mode in MARIADB_FLAGS
        for source, kind in SOURCES.items()
    ),
    pytest.param((PG_SCS_OFF, "pg_source"), id=f"{PG_SCS_OFF}-pgsql"),
]


@pytest.fixture
def case(request) -> Iterator[dict[str, Any]]:
    """Tryb serwerów i źródło testu: ``mode``, ``source``, ``settings``, ``db``.

    Globalny tryb MariaDB ustawiany jest przed utworzeniem bazy lokalnej i źródła, więc w tym
    trybie działa każde połączenie projektu (także ``init_db``); ustawienie PostgreSQL dotyczy bazy
    źródła, więc powstaje zaraz po niej.
    """
    mode, source_name = request.param
    with contextlib.ExitStack() as stack:
        if mode in MARIADB_FLAGS:
            stack.enter_context(mariadb_global_flag(MARIADB_FLAGS[mode]))
        source = request.getfixturevalue(source_name)
        if mode == PG_SCS_OFF:
            stack.enter_context(pg_standard_strings_off(source["db_name"]))
        settings = request.getfixturevalue("settings")
        db = request.getfixturevalue("db")
        yield {"mode": mode, "source": source, "settings": settings, "db": db}


# --- odczyt i porównania --------------------------------------------------------------------


def make_canaries(db, source: dict) -> None:
    db.execute("CREATE TABLE canary (id INT PRIMARY KEY, note VARCHAR(32))")
    db.execute("INSERT INTO canary (id, note) VALUES (1, 'alive')")
    source_execute(source, "CREATE TABLE canary (id INTEGER PRIMARY KEY, note VARCHAR(32))")
    source_execute(source, "INSERT INTO canary (id, note) VALUES (1, 'alive')")


def assert_canaries(db, source: dict) -> None:
    assert db.query("SELECT id, note FROM canary") == [{"id": 1, "note": "alive"}]
    assert source_query(source, "SELECT id, note FROM canary") == [(1, "alive")]


def local_items(db, id_task: int) -> dict[int, dict]:
    """Pozycje zadania po ``remote_id`` z bajtami tekstów i hashami policzonymi przez serwer."""
    rows = db.query(
        "SELECT id_task_item, remote_id, status, is_changed, deleted_at, ai_error, change_summary, "
        "text_original, CAST(text_original AS BINARY) AS original_bytes, original_hash, "
        "SHA2(text_original, 256) AS original_server_hash, "
        "text_corrected, CAST(text_corrected AS BINARY) AS corrected_bytes, local_hash, "
        "SHA2(text_corrected, 256) AS corrected_server_hash "
        "FROM task_item WHERE id_task=%s",
        (id_task,),
    )
    return {int(r["remote_id"]): r for r in rows}


def assert_exact(
    text: str | None, raw: Any, stored_hash: str | None, server_hash: str | None, expected
) -> None:
    """Tekst, jego bajty na serwerze, zapisany hash i hash liczony przez serwer = oczekiwany tekst."""
    if expected is None:
        assert (text, raw, stored_hash, server_hash) == (None, None, None, None)
        return
    assert text == expected, f"{text!r} != {expected!r}"
    assert bytes(raw) == expected.encode("utf-8")
    assert stored_hash == sha256(expected) == server_hash, repr(expected)


def assert_originals(items: dict[int, dict], expected: dict[int, str | None]) -> None:
    for key, text in expected.items():
        row = items[key]
        assert_exact(
            row["text_original"],
            row["original_bytes"],
            row["original_hash"],
            row["original_server_hash"],
            text,
        )


def assert_corrected(items: dict[int, dict], expected: dict[int, str]) -> None:
    for key, text in expected.items():
        row = items[key]
        assert_exact(
            row["text_corrected"],
            row["corrected_bytes"],
            row["local_hash"],
            row["corrected_server_hash"],
            text,
        )


_SOURCE_BYTES = {
    "pgsql": "convert_to(body, 'UTF8')",
    "mysql": "CAST(body AS BINARY)",
    "sqlite": "CAST(body AS BLOB)",
}


def assert_source(source: dict, expected: dict[int, str | None]) -> None:
    """Tabela źródła ma dokładnie te wiersze i teksty (porównanie tekstów i bajtów z bazy)."""
    texts = {int(k): v for k, v in source_query(source, "SELECT id, body FROM articles")}
    assert texts == expected
    expression = _SOURCE_BYTES[source["db_type"]]
    raw = {int(k): v for k, v in source_query(source, f"SELECT id, {expression} FROM articles")}
    assert {k: None if v is None else bytes(v) for k, v in raw.items()} == {
        k: None if v is None else v.encode("utf-8") for k, v in expected.items()
    }


def assert_task_completed(db, id_task: int) -> None:
    task = db.query_one("SELECT status, error_log FROM task WHERE id_task=%s", (id_task,))
    assert task == {"status": "completed", "error_log": None}


# --- pełna ścieżka: sync, resync, AI, przegląd, eksport -------------------------------------


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_texts_survive_every_path(case, fake_openai):
    source, settings, db = case["source"], case["settings"], case["db"]
    kind = source["db_type"]
    texts = texts_for(kind)
    make_canaries(db, source)

    # 1. Pierwsza synchronizacja pustego zadania (wielowierszowe INSERT; z PostgreSQL przez COPY).
    first = {key: text for key, text in enumerate(texts, start=1)}
    first[NULL_KEY] = None  # NULL musi zostać NULL-em, a tekst \N tekstem
    create_text_table(source, rows=sorted(first.items()))
    id_model = add_model(db, name="fake-safety", base_url=fake_openai["base_url"])
    id_task = add_task(db, add_connection(db, source), id_ai_model=id_model)
    stats = sync.sync_task(settings, id_task)
    assert stats["read_mode"] == ("copy" if kind == "pgsql" else "pages")
    assert (stats["new"], stats["updated"], stats["deleted"]) == (len(first), 0, 0)
    assert_task_completed(db, id_task)
    items = local_items(db, id_task)
    assert len(items) == len(first)
    assert_originals(items, first)

    # 2. Resync: każdy tekst zmieniony na inny taki tekst, jeden wiersz nowy, jeden usunięty.
    deleted_key = len(texts)
    second = {key: text for key, text in enumerate(rotated(texts, 1)[: len(texts) - 1], start=1)}
    second[NULL_KEY] = None
    second[NEW_KEY] = NEW_TEXT
    for key, text in second.items():
        if key <= len(texts):
            source_execute(source, "UPDATE articles SET body=%s WHERE id=%s", (text, key))
    source_execute(source, "DELETE FROM articles WHERE id=%s", (deleted_key,))
    source_execute(source, "INSERT INTO articles (id, body) VALUES (%s, %s)", (NEW_KEY, NEW_TEXT))
    stats = sync.sync_task(settings, id_task)
    assert (stats["new"], stats["updated"], stats["deleted"]) == (1, len(texts) - 1, 1)
    assert_task_completed(db, id_task)
    items = local_items(db, id_task)
    assert_originals(items, second)
    assert_originals(items, {deleted_key: first[deleted_key]})  # usunięta pozycja zachowuje tekst
    assert items[deleted_key]["deleted_at"] is not None
    for key in range(1, len(texts)):
        assert (items[key]["status"], items[key]["is_changed"]) == ("pending", 1)

    # 3. AI: odpowiedzi modelu to takie same teksty - najpierw zapytania o jeden tekst, potem paczki.
    active = sorted(key for key, text in second.items() if text is not None and text not in LOCALLY_EMPTY)
    not_sent = [key for key, text in second.items() if text in LOCALLY_EMPTY]
    originals = [second[key] for key in active]
    answers = dict(zip(originals, rotated(originals, 3), strict=True))
    fake_openai["answers"] = answers
    conf = settings.updated(**AI_SETTINGS)
    single = ai_worker.run_ai(conf.updated(AI_PACK_ITEMS=1, AI_CLAIM_BATCH=2), id_task, limit=4)
    assert (single["processed"], single["failed"], fake_openai["total"], fake_openai["packs"]) == (4, 0, 4, 0)
    packed = ai_worker.run_ai(conf.updated(AI_PACK_ITEMS=20, AI_CLAIM_BATCH=50), id_task)
    assert (packed["processed"], packed["failed"]) == (len(active) - 4, 0)
    assert fake_openai["packs"] >= 1
    assert sorted(fake_openai["per_text"]) == sorted(originals)  # każdy tekst wysłany dokładnie raz
    assert set(fake_openai["per_text"].values()) == {1}
    items = local_items(db, id_task)
    corrected = {key: answers[second[key]] for key in active}
    assert_corrected(items, corrected)
    for key in active:
        row = items[key]
        assert (row["status"], row["is_changed"], row["ai_error"]) == ("processed", 0, None)
        [edit] = json.loads(row["change_summary"])["edits"]
        assert (edit["original"], edit["replacement"]) == (second[key], corrected[key])
    for key in [NULL_KEY, *not_sent]:
        assert (items[key]["status"], items[key]["text_corrected"]) == ("pending", None)
    assert items[deleted_key]["text_corrected"] is None

    # 4. Przegląd: odrzucenie, edycja z takim tekstem, akceptacja wybranych zmian i zwykła akceptacja.
    by_id = {key: int(items[key]["id_task_item"]) for key in active}
    rejected, edited, partial, accepted = active[0], active[1:4], active[4], active[5:]
    changed, refused = set_decision(db, id_task, [by_id[rejected]], "rejected", "jan")
    assert (changed, refused) == ([by_id[rejected]], [])
    edit_texts = dict(zip(active, rotated(originals, 6), strict=True))
    final = dict(corrected)
    for key in edited:
        assert edit_texts[key] != corrected[key]
        outcome = edit_and_accept(db, by_id[key], edit_texts[key], "anna", "s1")
        assert outcome == Outcome(True, None, by_id[key])
        final[key] = edit_texts[key]
        logged = db.query_one(
            "SELECT text_after, hash_after FROM review_log WHERE id_task_item=%s AND action='edit'",
            (by_id[key],),
        )
        assert logged == {"text_after": edit_texts[key], "hash_after": sha256(edit_texts[key])}
    hunks = diff_hunks(second[partial], corrected[partial])
    outcome = accept_hunks(db, by_id[partial], [h.index for h in hunks], "anna", "s1")
    assert outcome.changed and outcome.reason is None  # wszystkie zmiany = tekst modelu
    changed, refused = set_decision(db, id_task, [by_id[key] for key in accepted], "accepted", "anna")
    assert refused == [] and sorted(changed) == sorted(by_id[key] for key in accepted)
    items = local_items(db, id_task)
    assert_corrected(items, final)
    assert items[rejected]["status"] == "rejected"
    for key in [*edited, partial, *accepted]:
        assert items[key]["status"] == "accepted"

    # 5. Eksport do źródła: zaakceptowane teksty w źródle bajt w bajt, reszta bez zmian.
    stats = run_export(settings, id_task)
    assert (stats["exported"], stats["already_exported"], stats["conflicts"], stats["skipped"]) == (
        len(active) - 1,
        0,
        0,
        0,
    )
    in_source = {**second, **{key: final[key] for key in active if key != rejected}}
    assert_source(source, in_source)
    items = local_items(db, id_task)
    for key in active:
        assert items[key]["status"] == ("rejected" if key == rejected else "exported")

    # Resync po eksporcie: hash źródła (liczony przez źródło albo z tekstu) = local_hash - bez zmian.
    stats = sync.sync_task(settings, id_task)
    assert (stats["new"], stats["updated"], stats["deleted"]) == (0, 0, 0)
    assert_task_completed(db, id_task)
    items = local_items(db, id_task)
    assert_corrected(items, final)
    assert_originals(items, second)
    assert_canaries(db, source)


# --- połączenia projektu mają przypięte ustawienia sesji ------------------------------------


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_project_sessions_are_pinned(case):
    """Sesje projektu (lokalna, źródło) mają tryb projektu, choć serwer domyślnie daje inny."""
    source, settings = case["source"], case["settings"]
    local = connect_local(settings, autocommit=True)
    try:
        assert local.query_value("SELECT @@SESSION.sql_mode") == SESSION_SQL_MODE
    finally:
        local.close()
    row = {**{k: v for k, v in source.items() if k != "conn"}, "alias": "pinned"}
    rconn = db_remote.connect(row, settings)
    try:
        cursor = rconn.conn.cursor()
        if source["db_type"] == "mysql":
            cursor.execute("SELECT @@SESSION.sql_mode")
            assert cursor.fetchone()[0] == SESSION_SQL_MODE
        elif source["db_type"] == "pgsql":
            cursor.execute("SHOW standard_conforming_strings")
            assert cursor.fetchone()[0] == "on"
            cursor.execute("SHOW client_encoding")
            assert cursor.fetchone()[0] == "UTF8"
        cursor.close()
    finally:
        db_remote.close(rconn)
    if case["mode"] == PG_SCS_OFF:
        # Kontrola: sesja bez opcji projektu dostaje ustawienie bazy.
        assert _pg_setting(source["db_name"], "standard_conforming_strings") == "off"


# --- execute_encoded odmawia w sesji z NO_BACKSLASH_ESCAPES; po ponownym połączeniu tryb wraca ---


@pytest.mark.parametrize(
    "global_flag", [pytest.param(None, id="default"), pytest.param("NO_BACKSLASH_ESCAPES", marks=GLOBAL)]
)
def test_execute_encoded_refuses_and_reconnect_restores_mode(request, global_flag):
    with contextlib.ExitStack() as stack:
        if global_flag:
            stack.enter_context(mariadb_global_flag(global_flag))
        settings = request.getfixturevalue("settings")
        db = connect_local(settings, autocommit=True)
        stack.callback(db.close)
        db.execute("CREATE TABLE probe (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)")
        text = "x\\', 0); DROP TABLE probe; -- "
        insert = b"INSERT INTO probe (body) VALUES (%b)" % sql_literal(text.encode("utf-8"))
        assert db.query_value("SELECT @@SESSION.sql_mode") == SESSION_SQL_MODE

        db.execute("SET SESSION sql_mode='NO_BACKSLASH_ESCAPES'")
        with pytest.raises(LocalDbError, match="NO_BACKSLASH_ESCAPES"):
            db.execute_encoded(insert)
        assert db.query_value("SELECT COUNT(*) FROM probe") == 0

        # Sesja zabita z innego połączenia: wrapper łączy się ponownie i tryb jest znów przypięty.
        killed = db.query_value("SELECT CONNECTION_ID()")
        admin = _mysql_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"KILL {int(killed)}")
        finally:
            admin.close()
        assert db.query_value("SELECT @@SESSION.sql_mode") == SESSION_SQL_MODE
        assert db.query_value("SELECT CONNECTION_ID()") != killed
        assert db.execute_encoded(insert) == 1
        row = db.query_one("SELECT body, CAST(body AS BINARY) AS raw FROM probe")
        assert row["body"] == text and bytes(row["raw"]) == text.encode("utf-8")


# --- zgłoszona reprodukcja: sync.py jako proces przy globalnym NO_BACKSLASH_ESCAPES ---------


@GLOBAL
def test_sync_cli_first_sync_under_no_backslash_escapes(request):
    with mariadb_global_flag("NO_BACKSLASH_ESCAPES"):
        source = request.getfixturevalue("sqlite_source")
        request.getfixturevalue("settings")
        db = request.getfixturevalue("db")
        make_canaries(db, source)
        create_text_table(source, rows=[(1, "a\\'b")])
        id_task = add_task(db, add_connection(db, source))
        result = subprocess.run(
            [sys.executable, "sync.py", "--id_task", str(id_task)],
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert_task_completed(db, id_task)
        items = local_items(db, id_task)
        assert list(items) == [1]
        assert_originals(items, {1: "a\\'b"})
        assert_canaries(db, source)
