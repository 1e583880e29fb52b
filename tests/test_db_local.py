"""Testy klasy MySQL na prawdziwej MariaDB: UTF-8, transakcje, ponowne połączenie, log SQL."""

import logging
import ssl

import pymysql
import pytest

from lib import mysql_connect
from lib.db_local import MySQL, connect_local, sql_literal
from lib.errors import LocalDbError

POLISH = "Zażółć gęślą jaźń — ŻÓŁW 🐢🇵🇱 naïve"


@pytest.fixture
def scratch(db):
    db.execute("CREATE TABLE scratch (id INT PRIMARY KEY, body TEXT) CHARACTER SET utf8mb4")
    return db


def test_utf8mb4_round_trip(scratch):
    scratch.execute("INSERT INTO scratch VALUES (%s, %s)", (1, POLISH))
    assert scratch.query_value("SELECT body FROM scratch WHERE id=1") == POLISH


def test_transaction_rolls_back(settings, scratch):
    conn = connect_local(settings)
    try:
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("INSERT INTO scratch VALUES (%s, %s)", (2, "a"))
            raise RuntimeError("przerwij")
        assert scratch.query_value("SELECT COUNT(*) FROM scratch") == 0
        with conn.transaction():
            conn.execute("INSERT INTO scratch VALUES (%s, %s)", (3, "b"))
        assert scratch.query_value("SELECT COUNT(*) FROM scratch") == 1
    finally:
        conn.close()


def test_autocommit_off_by_default(settings, scratch):
    conn = connect_local(settings)
    try:
        conn.execute("INSERT INTO scratch VALUES (%s, %s)", (4, "c"))
        assert scratch.query_value("SELECT COUNT(*) FROM scratch") == 0
        conn.commit()
        assert scratch.query_value("SELECT COUNT(*) FROM scratch") == 1
    finally:
        conn.close()


def test_executemany_is_one_multirow_insert(settings, scratch, caplog):
    conn = connect_local(settings.updated(LOG_SQL_QUERIES=True))
    try:
        with caplog.at_level(logging.DEBUG, logger="ailexia.db_local"):
            conn.executemany(
                "INSERT INTO scratch (id, body) VALUES (%s, %s)", [(i, f"t{i}") for i in range(10, 1010)]
            )
            conn.commit()
    finally:
        conn.close()
    inserts = [r for r in caplog.records if "INSERT INTO scratch" in r.getMessage()]
    assert len(inserts) == 1
    assert scratch.query_value("SELECT COUNT(*) FROM scratch") == 1000


def test_dropped_connection_is_recovered_for_reads(settings, scratch):
    conn = connect_local(settings, autocommit=True)
    try:
        thread_id = conn.query_value("SELECT CONNECTION_ID()")
        scratch.execute(f"KILL {int(thread_id)}")
        assert conn.query_value("SELECT 41 + 1") == 42
        assert conn.query_value("SELECT CONNECTION_ID()") != thread_id
    finally:
        conn.close()


def test_dropped_connection_inside_transaction_is_not_retried(settings, scratch):
    conn = connect_local(settings)
    try:
        conn.execute("INSERT INTO scratch VALUES (%s, %s)", (5, "d"))
        scratch.execute(f"KILL {int(conn.conn.thread_id())}")
        with pytest.raises(pymysql.MySQLError):
            conn.query("SELECT * FROM scratch")
        assert scratch.query_value("SELECT COUNT(*) FROM scratch") == 0
    finally:
        conn.close()


def test_sql_log_masks_passwords(settings, scratch, caplog):
    conn = connect_local(settings.updated(LOG_SQL_QUERIES=True), autocommit=True)
    try:
        with caplog.at_level(logging.DEBUG, logger="ailexia.db_local"):
            conn.query("SELECT %s AS db_password, 'password=Sekret123' AS x", ("Sekret123",))
            conn.query("SELECT 1 /* password=HasloZle */")
    finally:
        conn.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "SELECT" in text and "ms" in text
    assert "HasloZle" not in text


def test_wrong_password_gives_clear_error_without_password(settings):
    with pytest.raises(LocalDbError) as info:
        MySQL("127.0.0.1", settings.db_local_port, "no_such_user_ax", "TopSecret!", None)
    assert "TopSecret!" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_unreachable_server_gives_clear_error():
    with pytest.raises(LocalDbError) as info:
        MySQL("127.0.0.1", 1, "root", "", None, connect_timeout=2)
    assert "127.0.0.1:1" in str(info.value)


def test_localhost_is_forced_to_tcp(settings):
    conn = MySQL("localhost", settings.db_local_port, "root", "", None, autocommit=True)
    try:
        assert conn.host == "127.0.0.1"
        # Połączenie TCP ma w processliście host z portem, gniazdo unix - "localhost".
        host = conn.query_value("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID=CONNECTION_ID()")
        assert host.startswith("127.0.0.1:") or host.startswith("localhost:")
        assert ":" in host
    finally:
        conn.close()


def test_sql_literal_round_trips_every_byte(scratch):
    texts = [
        POLISH,
        "it's \\ back\\slash '' \\' \\\\",
        "tab\tnew\nline\rcr \\N \\0 \\t",
        "nul\0inside\0",
        "\x1a ctrl-z \x7f del",
        "",
        "'",
        "\\",
    ]
    values = b",".join(b"(%d,%b)" % (i, sql_literal(t.encode())) for i, t in enumerate(texts))
    assert scratch.execute_encoded(b"INSERT INTO scratch (id, body) VALUES " + values) == len(texts)
    rows = scratch.query("SELECT id, body FROM scratch ORDER BY id")
    assert [r["body"] for r in rows] == texts


def test_session_holding_a_lock_is_not_silently_reconnected(settings, scratch):
    from lib.errors import LocalDbError as Err
    from lib.runtime.locks import acquire_task_lock

    conn = connect_local(settings)
    try:
        acquire_task_lock(conn, 99)
        scratch.execute(f"KILL {int(conn.conn.thread_id())}")
        with pytest.raises(Err) as info:
            conn.query("SELECT 1")
        assert "blokada zadania przepadła" in str(info.value)
        with pytest.raises(Err):
            conn.begin()
    finally:
        conn.close()


def test_lost_lock_session_found_by_ping_names_the_driver_error(settings, scratch):
    from lib.errors import LocalDbError as Err
    from lib.runtime.locks import acquire_task_lock

    conn = connect_local(settings)
    try:
        acquire_task_lock(conn, 98)
        scratch.execute(f"KILL {int(conn.conn.thread_id())}")
        # begin() sprawdza sesję przez ping(); komunikat ma nazwać przyczynę od sterownika.
        with pytest.raises(Err) as info:
            conn.begin()
        message = str(info.value)
        assert "blokada zadania przepadła" in message
        assert any(word in message for word in ("Lost connection", "gone away", "2013", "2006")), message
    finally:
        conn.close()


def test_read_outside_a_transaction_survives_sessions_killed_in_a_row(settings, scratch, monkeypatch):
    """Odczyt poza transakcją przechodzi, gdy zabito sesję i jeszcze nowe połączenie po niej.

    Tak wygląda ``KILL`` seriami (test awarii serwera, restart): pierwsza powtórka trafia na
    sesję zabitą zaraz po połączeniu, dopiero następna się udaje.
    """
    conn = connect_local(settings, autocommit=True)
    original_connect = conn.connect
    killed_after_reconnect = []

    def connect_and_kill_once() -> None:
        original_connect()
        if not killed_after_reconnect:
            killed_after_reconnect.append(conn.conn.thread_id())
            scratch.execute(f"KILL {int(conn.conn.thread_id())}")

    try:
        scratch.execute("INSERT INTO scratch VALUES (1, 'x')")
        scratch.execute(f"KILL {int(conn.conn.thread_id())}")
        monkeypatch.setattr(conn, "connect", connect_and_kill_once)
        assert conn.query_value("SELECT body FROM scratch WHERE id=1") == "x"
        assert len(killed_after_reconnect) == 1
    finally:
        conn.close()


def test_connections_share_one_tls_context_and_prefer_tls(settings, monkeypatch):
    # Kontekst TLS powstaje raz na proces (nie ~24 ms CPU na połączenie), a tryb "preferred" się nie
    # zmienia: TLS, gdy serwer go oferuje; ten serwer testowy go nie ma, więc bez - i bez błędu.
    probe = pymysql.connect(host="127.0.0.1", port=settings.db_local_port, user="root", password="")
    offers_tls = bool(probe.server_capabilities & pymysql.constants.CLIENT.SSL)
    probe.close()
    built = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: built.append(1) or real(*a, **k))
    conns = [connect_local(settings, autocommit=True) for _ in range(4)]
    try:
        assert len(built) <= 1, f"kontekst TLS budowany {len(built)} razy na 4 połączenia"
        context = mysql_connect.tls_context()
        assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
        for conn in conns:
            cipher = conn.query_one("SHOW SESSION STATUS LIKE 'Ssl_cipher'")["Value"]
            assert bool(cipher) == offers_tls
            assert conn.query_value("SELECT 1") == 1
    finally:
        for conn in conns:
            conn.close()
