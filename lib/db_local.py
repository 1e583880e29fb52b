"""Prosta klasa do lokalnej bazy MySQL/MariaDB (PyMySQL, wyłącznie TCP).

To jedyna klasa, o którą prosi specyfikacja: połączenie, zapytania, transakcje, zamknięcie.
Logika biznesowa żyje w modułach funkcji, które dostają obiekt ``MySQL`` jako argument.
"""

import contextlib
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
import pymysql.cursors

from lib import mysql_connect
from lib.db_utils import get_logger, mask_secrets
from lib.errors import LocalDbError
from lib.load_config import Settings

# Kody błędów MySQL oznaczające zerwane połączenie (2006 gone away, 2013 lost, 2055 lost...).
_DROPPED = {2006, 2013, 2055, 0}
DEADLOCK_CODES = {1213, 1205}
# Próby odczytu poza transakcją przy zerwanym połączeniu (nowe połączenie przed każdą kolejną).
# Jedna powtórka nie wystarcza, gdy sesje są zabijane seriami (KILL po KILL, restart serwera).
READ_ATTEMPTS = 3

_PASSWORD_RE = re.compile(r"(?i)(password|passwd|pwd|api_key|secret)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)")

log = get_logger("db_local")


def _error_text(exc: BaseException) -> str:
    """Zwraca krótki opis błędu PyMySQL (kod + komunikat)."""
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) >= 2:
        return f"{exc.args[0]}: {exc.args[1]}"
    return str(exc) or exc.__class__.__name__


def error_code(exc: BaseException) -> int | None:
    """Zwraca kod błędu MySQL z wyjątku PyMySQL albo ``None``."""
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_dropped(exc: BaseException) -> bool:
    """Czy wyjątek oznacza zerwane połączenie z lokalną bazą (a nie błąd zapytania)."""
    return isinstance(exc, pymysql.err.InterfaceError) or error_code(exc) in _DROPPED


def local_error_message(exc: pymysql.MySQLError) -> str:
    """Komunikat dla operatora o błędzie lokalnej bazy, który dotarł aż do skryptu CLI.

    Skrypty (``sync.py``, ``ai.py``, ``review.py``) kończą się nim zamiast śladu stosu, np. gdy
    połączenie skryptu zostało zabite, zanim odczytał stan zadania po runie.
    """
    if is_dropped(exc):
        return f"utracono połączenie z lokalną bazą MySQL ({_error_text(exc)}); stan zadania pokaże --status"
    return f"błąd lokalnej bazy MySQL ({_error_text(exc)})"


class MySQL:
    """Połączenie z lokalną bazą MySQL/MariaDB.

    Autocommit jest domyślnie wyłączony: zmiany trzeba zatwierdzić ``commit()`` albo użyć
    ``transaction()``. Odczyty poza transakcją są ponawiane (do ``READ_ATTEMPTS`` prób) po zerwanym połączeniu.

    Args:
        host: Adres serwera (zawsze TCP; ``localhost`` zamieniany na 127.0.0.1).
        port: Port TCP.
        user: Użytkownik.
        password: Hasło (nigdy nie trafia do logów).
        database: Nazwa bazy albo ``None`` (np. przy tworzeniu bazy).
        log_sql: ``True`` loguje każde zapytanie z parametrami i czasem.
        autocommit: Tryb autocommit.
        connect_timeout: Limit czasu połączenia w sekundach.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        database: str | None,
        log_sql: bool = False,
        autocommit: bool = False,
        connect_timeout: int = 10,
    ) -> None:
        # "localhost" w PyMySQL i tak idzie po TCP, ale jawnie wymuszamy adres IP.
        self.host = "127.0.0.1" if host in ("localhost", "") else host
        self.port = int(port)
        self.user = user
        self._password = password
        self.database = database
        self.log_sql = log_sql
        self.autocommit = autocommit
        self.connect_timeout = connect_timeout
        self.conn: pymysql.connections.Connection | None = None
        self.in_transaction = False
        self.last_insert_id = 0
        # Liczba blokad GET_LOCK trzymanych przez tę sesję (patrz ``ping``).
        self.session_locks = 0
        self.connect()

    # --- połączenie -----------------------------------------------------------------------
    def connect(self) -> None:
        """Otwiera (lub otwiera ponownie) połączenie TCP.

        Raises:
            LocalDbError: Gdy serwer jest nieosiągalny albo odrzuca logowanie.
        """
        try:
            self.conn = mysql_connect.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self._password,
                database=self.database,
                charset="utf8mb4",
                autocommit=self.autocommit,
                connect_timeout=self.connect_timeout,
                cursorclass=pymysql.cursors.DictCursor,
            )
        except pymysql.MySQLError as exc:
            where = f"{self.user}@{self.host}:{self.port}/{self.database or ''}"
            raise LocalDbError(
                f"nie można połączyć z lokalną bazą MySQL {where}: {mask_secrets(_error_text(exc), [self._password])}"
            ) from None
        self.in_transaction = False

    def close(self) -> None:
        """Zamyka połączenie (bezpieczne przy wielokrotnym wywołaniu)."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    def __enter__(self) -> "MySQL":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> None:
        """Sprawdza połączenie i otwiera je ponownie, gdy zostało zerwane.

        Raises:
            LocalDbError: Gdy połączenie trzymało blokady sesji (``GET_LOCK``) - po ponownym
                połączeniu blokad by już nie było, więc run nie może po cichu pracować dalej.
        """
        try:
            assert self.conn is not None
            self.conn.ping(reconnect=False)
        except Exception as exc:
            self._reconnect_allowed(_error_text(exc))
            self.connect()

    def _reconnect_allowed(self, cause: str) -> None:
        """Odmawia cichego ponownego połączenia, gdy sesja trzymała blokady ``GET_LOCK``."""
        if self.session_locks:
            self.in_transaction = False
            raise LocalDbError(
                f"utracono połączenie z lokalną bazą MySQL {self.host}:{self.port} ({cause}); "
                "blokada zadania przepadła razem z sesją - run przerwany, można go wznowić"
            )

    # --- logowanie SQL ----------------------------------------------------------------------
    def _log(self, sql: str, params: Any, started: float, rows: int | None = None) -> None:
        if not self.log_sql:
            return
        text = " ".join(sql.split())
        if params is not None:
            shown = (
                params
                if not isinstance(params, list) or len(params) <= 5
                else f"{params[:5]}... ({len(params)} wierszy)"
            )
            text = f"{text} | params={shown!r}"
        text = _PASSWORD_RE.sub(r"\1\2***", text)
        text = mask_secrets(text, [self._password])
        suffix = f" rows={rows}" if rows is not None else ""
        log.debug("SQL (%.1f ms)%s: %s", (time.perf_counter() - started) * 1000, suffix, text)

    # --- zapytania -------------------------------------------------------------------------
    def _run(self, sql: str, params: Any, fetch: str | None, retry_read: bool) -> Any:
        """Wykonuje zapytanie; odczyt poza transakcją ponawia (``READ_ATTEMPTS``) po zerwanym połączeniu."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            started = time.perf_counter()
            try:
                if self.conn is None:
                    self.connect()
                assert self.conn is not None
                with self.conn.cursor() as cursor:
                    count = cursor.execute(sql, params)
                    if fetch == "all":
                        result: Any = cursor.fetchall()
                    elif fetch == "one":
                        result = cursor.fetchone()
                    else:
                        result = count
                    self._log(sql, params, started, count)
                    if fetch is None:
                        self.last_insert_id = cursor.lastrowid
                    return result
            except pymysql.MySQLError as exc:
                dropped = is_dropped(exc)
                if dropped and retry_read and not self.in_transaction and attempt < READ_ATTEMPTS:
                    self._reconnect_allowed(_error_text(exc))
                    log.warning("połączenie z lokalną bazą zerwane (%s) - ponawiam odczyt", _error_text(exc))
                    self.close()
                    self.connect()
                    continue
                if dropped:
                    self.in_transaction = False
                raise
        raise AssertionError("nieosiągalne")

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Wykonuje SELECT i zwraca wszystkie wiersze jako słowniki.

        Args:
            sql: Zapytanie z parametrami ``%s``.
            params: Parametry (krotka, lista albo słownik).

        Returns:
            Lista słowników ``kolumna -> wartość``.
        """
        return list(self._run(sql, params, "all", retry_read=True))

    def query_one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        """Wykonuje SELECT i zwraca pierwszy wiersz albo ``None``."""
        return self._run(sql, params, "one", retry_read=True)

    def query_value(self, sql: str, params: Any = None) -> Any:
        """Zwraca wartość pierwszej kolumny pierwszego wiersza (albo ``None``)."""
        row = self.query_one(sql, params)
        return None if row is None else next(iter(row.values()))

    def execute(self, sql: str, params: Any = None) -> int:
        """Wykonuje zapytanie modyfikujące (bez automatycznego commit).

        Args:
            sql: Zapytanie z parametrami ``%s``.
            params: Parametry.

        Returns:
            Liczba zmienionych wierszy.
        """
        if not self.autocommit:
            self.in_transaction = True
        return self._run(sql, params, None, retry_read=False)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], chunk_rows: int = 2000) -> int:
        """Wstawia wiele wierszy jednym wielowierszowym INSERT (w porcjach).

        PyMySQL skleja wiersze w jedno ``INSERT ... VALUES (...), (...)`` tylko dla zapytania
        w postaci ``INSERT ... VALUES (%s, ...)`` (opcjonalnie z ``ON DUPLICATE KEY UPDATE``);
        inne zapytania wykonywane są wiersz po wierszu.

        Args:
            sql: ``INSERT ... VALUES (%s, ...)``.
            rows: Wiersze parametrów.
            chunk_rows: Ile wierszy najwyżej w jednym zapytaniu (limit max_allowed_packet).

        Returns:
            Suma zmienionych wierszy.
        """
        if not rows:
            return 0
        if not self.autocommit:
            self.in_transaction = True
        total = 0
        assert self.conn is not None
        for start in range(0, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            started = time.perf_counter()
            with self.conn.cursor() as cursor:
                total += cursor.executemany(sql, chunk) or 0
            self._log(sql, list(chunk), started, len(chunk))
        return total

    def execute_encoded(self, statement: bytes) -> int:
        """Wykonuje gotowe zapytanie w bajtach (wartości już jako literały, ``sql_literal``).

        Dla dużych zapytań składanych poza PyMySQL (wielowierszowe ``INSERT`` pierwszej synchronizacji,
        zapis paczki wyników AI): bez formatowania parametrów i bez kopii zapytania w ``str``. Log SQL
        pokazuje początek.

        Returns:
            Liczba zmienionych wierszy.
        """
        if not self.autocommit:
            self.in_transaction = True
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        if not mysql_connect.backslash_escapes(self.conn):
            # Literały ``sql_literal`` są poprawne tylko z ucieczkami backslash; w innym trybie tekst
            # mógłby zakończyć literał i stać się SQL-em - lepiej odmówić niż wykonać.
            raise LocalDbError(
                "sesja lokalnej bazy MySQL ma w sql_mode NO_BACKSLASH_ESCAPES - odmawiam wykonania zapytania "
                "z literałami tekstu; tryb sesji ustawia mysql_connect.INIT_COMMAND"
            )
        started = time.perf_counter()
        with self.conn.cursor() as cursor:
            count = cursor.execute(statement)  # type: ignore[arg-type]  # PyMySQL wysyła bajty bez zmian
        self._log(f"{statement[:120].decode('utf-8', 'replace')}… ({len(statement)} B)", None, started, count)
        return count

    # --- transakcje -------------------------------------------------------------------------
    def begin(self) -> None:
        """Rozpoczyna transakcję jawnie."""
        self.ping()
        assert self.conn is not None
        self.conn.begin()
        self.in_transaction = True

    def commit(self) -> None:
        """Zatwierdza bieżącą transakcję."""
        assert self.conn is not None
        started = time.perf_counter()
        self.conn.commit()
        self._log("COMMIT", None, started)
        self.in_transaction = False

    def rollback(self) -> None:
        """Wycofuje bieżącą transakcję (bez błędu, gdy połączenie już nie istnieje)."""
        if self.conn is not None:
            with contextlib.suppress(pymysql.MySQLError):
                self.conn.rollback()
        self.in_transaction = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator["MySQL"]:
        """Kontekst transakcji: commit przy sukcesie, rollback przy wyjątku."""
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            self.commit()


def connect_local(settings: Settings, with_database: bool = True, **kwargs: Any) -> MySQL:
    """Tworzy połączenie z lokalną bazą według ustawień z ``load_config``.

    Args:
        settings: Ustawienia (DB_LOCAL_*, LOG_SQL_QUERIES).
        with_database: ``False`` łączy bez wybranej bazy (np. do CREATE DATABASE).
        **kwargs: Dodatkowe argumenty ``MySQL`` (np. ``autocommit=True``).

    Returns:
        Obiekt ``MySQL``.

    Raises:
        LocalDbError: Gdy połączenie się nie uda.
    """
    return MySQL(
        host=settings.db_local_host,
        port=settings.db_local_port,
        user=settings.db_local_user,
        password=settings.db_local_password.get_secret_value(),
        database=settings.db_local_name if with_database else None,
        log_sql=settings.log_sql_queries,
        **kwargs,
    )


def retry_on_deadlock(function, attempts: int = 5, db: MySQL | None = None):
    """Wykonuje funkcję transakcyjną, ponawiając ją po zakleszczeniu (MySQL 1213/1205).

    Args:
        function: Funkcja bez argumentów wykonująca całą transakcję.
        attempts: Maksymalna liczba prób.
        db: Połączenie, na którym trzeba zrobić rollback przed ponowieniem.

    Returns:
        Wynik funkcji.
    """
    for attempt in range(1, attempts + 1):
        try:
            return function()
        except pymysql.MySQLError as exc:
            if error_code(exc) not in DEADLOCK_CODES or attempt == attempts:
                raise
            if db is not None:
                db.rollback()
            logging.getLogger("ailexia.db_local").warning(
                "zakleszczenie (%s), próba %d", _error_text(exc), attempt + 1
            )
            time.sleep(0.05 * attempt)
    raise AssertionError("nieosiągalne")


def sql_literal(raw: bytes) -> bytes:
    """Koduje tekst UTF-8 jako literał SQL w apostrofach (do gotowych zapytań w bajtach).

    W UTF-8 bajty ``\\``, ``'`` i NUL nie występują wewnątrz znaków wielobajtowych, więc wystarczy
    ucieczka tych trzech bajtów (reguła ucieczek backslash, jak w PyMySQL). Literał jest poprawny
    tylko w sesji bez ``NO_BACKSLASH_ESCAPES``: taki tryb przypina ``mysql_connect.INIT_COMMAND``,
    a ``MySQL.execute_encoded`` odmawia wykonania, gdy sesja ma inny.

    Args:
        raw: Tekst w UTF-8.

    Returns:
        Literał, np. ``b"'it\\'s'"``.
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\", b"\\\\")
    if b"'" in raw:
        raw = raw.replace(b"'", b"\\'")
    if b"\0" in raw:
        raw = raw.replace(b"\0", b"\\0")
    return b"'" + raw + b"'"
