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
    """Otwiera połączenie PyMySQL (argumenty jak ``pymysql.connect``)."""
    return _Connection(**options)


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
