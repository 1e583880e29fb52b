"""Połączenia PyMySQL (lokalna baza i źródła MySQL/MariaDB) z jednym kontekstem TLS na proces.

PyMySQL 1.2 bez opcji TLS łączy w trybie "preferred": próbuje TLS, gdy serwer go oferuje, a bez
niego łączy się zwykle. Kontekst TLS buduje jednak przy każdym połączeniu, a
``ssl.create_default_context`` wczytuje systemowe certyfikaty CA (~24 ms CPU z GIL-em), choć w tym
trybie certyfikat i tak nie jest weryfikowany (``CERT_NONE``). Run AI otwiera kilka połączeń na
starcie i w trakcie (blokady, miejsca modelu, pula zapisu), synchronizacja kilka do źródła -
każde płaciło te 24 ms. Tu kontekst "preferred" powstaje raz (tą samą metodą PyMySQL, więc z tymi
samymi ustawieniami), a tryb połączenia się nie zmienia: TLS, gdy serwer go oferuje, inaczej bez.
"""

import ssl
import threading
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

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
_contexts: dict[str, ssl.SSLContext] = {}


class _Connection(pymysql.connections.Connection):
    """Połączenie PyMySQL, które bierze gotowy kontekst TLS trybu "preferred" zamiast budować nowy."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if isinstance(sslp, dict) and not sslp:
            with _lock:
                context = _contexts.get("preferred")
                if context is None:
                    context = _contexts["preferred"] = super()._create_ssl_ctx(sslp)
            return context
        return super()._create_ssl_ctx(sslp)


def connect(**options: Any) -> pymysql.connections.Connection:
    """Otwiera połączenie PyMySQL z przypiętym trybem SQL sesji (``SESSION_SQL_MODE``).

    Argumenty jak ``pymysql.connect``; ``init_command`` jest zawsze nasz: PyMySQL wykonuje go po
    każdym (także ponownym) nawiązaniu połączenia, przed pierwszym zapytaniem.
    """
    return _Connection(**options, init_command=INIT_COMMAND)


def backslash_escapes(conn: pymysql.connections.Connection) -> bool:
    """Czy sesja traktuje backslash jako znak ucieczki (flaga stanu z ostatniej odpowiedzi serwera).

    Serwer odsyła flagę ``SERVER_STATUS_NO_BACKSLASH_ESCAPES`` w każdym pakiecie OK, więc odczyt
    nie kosztuje zapytania i widzi także zmianę ``sql_mode`` wykonaną w trakcie sesji.
    """
    return not conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES


def required_unverified_context() -> ssl.SSLContext:
    """Kontekst TLS "wymagany, certyfikat nieweryfikowany" (jak ``sslmode=require``), jeden na proces."""
    with _lock:
        context = _contexts.get("required")
        if context is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            _contexts["required"] = context
        return context
