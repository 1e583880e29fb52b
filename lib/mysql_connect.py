"""Połączenia PyMySQL (lokalna baza i źródła MySQL/MariaDB) z jednym kontekstem TLS na proces.

Tryb "preferred" (lokalna baza, źródła bez ``use_ssl``): TLS, gdy serwer go oferuje, bez
weryfikacji certyfikatu; inaczej połączenie zwykłe. Tryb "required" (źródła z ``use_ssl``): TLS
albo błąd. PyMySQL sam robi "preferred" tylko wtedy, gdy nie dostaje opcji TLS, i wtedy buduje
kontekst przy każdym połączeniu (``ssl.create_default_context`` wczytuje certyfikaty CA, ~24 ms
CPU z GIL-em); publiczny argument ``ssl=<SSLContext>`` oznacza w PyMySQL 1.2 zawsze "required"
(``SSL is required but the server doesn't support it``). Dlatego "preferred" składamy z
publicznych opcji: ``ssl=`` ze wspólnym kontekstem, gdy serwer (host, port) oferuje TLS, a
``ssl_disabled=True``, gdy nie oferuje; co oferuje, wiemy z pierwszego połączenia procesu z tym
serwerem (odmowa TLS przychodzi przed logowaniem) i sprawdzamy przy każdym kolejnym.
"""

import ssl
import threading
from typing import Any

import pymysql
from pymysql.constants import CLIENT, CR, SERVER_STATUS

# Tryb SQL każdej sesji MySQL/MariaDB projektu (lokalnej i źródłowej), ustawiany zaraz po połączeniu
# (także ponownym) przez ``init_command``, więc globalna konfiguracja serwera nie zmienia znaczenia
# naszego SQL. Kod polega na tym, że: backslash jest znakiem ucieczki w literałach (brak
# NO_BACKSLASH_ESCAPES: ``db_local.sql_literal`` i PyMySQL), cudzysłów ogranicza napis, nie
# identyfikator (brak ANSI_QUOTES), ``||`` to OR (brak PIPES_AS_CONCAT), CHAR czytany jest bez
# dopełnienia spacjami (brak PAD_CHAR_TO_FULL_LENGTH), GROUP BY nie wymaga pełnej listy kolumn
# (brak ONLY_FULL_GROUP_BY), a znak spoza zestawu znaków kolumny albo za długi tekst to błąd
# zapytania, nigdy cicha zamiana na '?' lub obcięcie (STRICT_ALL_TABLES).
SESSION_SQL_MODE = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
INIT_COMMAND = f"SET SESSION sql_mode='{SESSION_SQL_MODE}'"

_lock = threading.Lock()
_context: ssl.SSLContext | None = None
# (host, port) -> czy serwer oferował TLS przy ostatnim połączeniu tego procesu.
_server_tls: dict[tuple[str, int], bool] = {}


def tls_context() -> ssl.SSLContext:
    """Wspólny kontekst TLS procesu: szyfrowanie bez weryfikacji certyfikatu (jak ``sslmode=require``).

    Ustawienia jak kontekst, który PyMySQL buduje sam w trybie "preferred" bez CA.
    """
    global _context
    with _lock:
        if _context is None:
            context = ssl.create_default_context()
            context.verify_flags &= ~ssl.VERIFY_X509_STRICT
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            _context = context
        return _context


def connect(*, tls: str = "preferred", **options: Any) -> pymysql.connections.Connection:
    """Otwiera połączenie PyMySQL z przypiętym trybem SQL sesji (``SESSION_SQL_MODE``).

    Argumenty jak ``pymysql.connect`` (bez opcji TLS); ``init_command`` jest zawsze nasz: PyMySQL
    wykonuje go po każdym (także ponownym) nawiązaniu połączenia, przed pierwszym zapytaniem.

    Args:
        tls: ``preferred`` (TLS, gdy serwer go oferuje) albo ``required`` (TLS albo błąd).
        **options: Opcje ``pymysql.connect``.

    Raises:
        pymysql.MySQLError: Błąd połączenia (w trybie ``required`` także serwer bez TLS).
    """
    options["init_command"] = INIT_COMMAND
    if tls == "required":
        return pymysql.connect(**options, ssl=tls_context())
    endpoint = (str(options.get("host") or "localhost"), int(options.get("port") or 3306))
    if _server_tls.get(endpoint, True):
        try:
            conn = pymysql.connect(**options, ssl=tls_context())
        except pymysql.err.OperationalError as error:
            if error.args[0] != CR.CR_SSL_CONNECTION_ERROR:
                raise
            # Serwer nie oferuje TLS (odmowa przed wysłaniem danych logowania): połączenie zwykłe.
        else:
            _server_tls[endpoint] = True
            return conn
    conn = pymysql.connect(**options, ssl_disabled=True)
    offers = bool(conn.server_capabilities & CLIENT.SSL)
    _server_tls[endpoint] = offers
    if offers:
        # Serwer włączył TLS od poprzedniego połączenia: to zamykamy i łączymy się z TLS.
        conn.close()
        return connect(tls=tls, **options)
    return conn


def backslash_escapes(conn: pymysql.connections.Connection) -> bool:
    """Czy sesja traktuje backslash jako znak ucieczki (flaga stanu z ostatniej odpowiedzi serwera).

    Serwer odsyła flagę ``SERVER_STATUS_NO_BACKSLASH_ESCAPES`` w każdym pakiecie OK, więc odczyt
    nie kosztuje zapytania i widzi także zmianę ``sql_mode`` wykonaną w trakcie sesji.
    """
    return not conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
