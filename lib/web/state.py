"""Stan strony przeglądu trzymany w ``app.state.review`` i dostęp do lokalnej bazy z widoków.

Jeden obiekt stanu na aplikację (ustawienia, token, szablony, podpis listy pokazanych pozycji,
funkcja eksportu i stan wątków eksportu). Widoki czytają go z żądania (``review_state``), więc
każdy z nich można wywołać na aplikacji zbudowanej w teście.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from itsdangerous import URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from lib.db_local import MySQL, connect_local
from lib.load_config import Settings

_T = TypeVar("_T")

# Funkcja eksportu zadania: zwraca (sukces, komunikat jednej linii).
ExportRunner = Callable[[int], tuple[bool, str]]


@dataclass
class ReviewState:
    """Stan aplikacji przeglądu (``app.state.review``).

    Attributes:
        settings: Ustawienia z ``load_config`` (połączenie lokalne).
        token: Token dostępu (``REVIEW_TOKEN`` albo wylosowany przez skrypt).
        templates: Szablony Jinja2 strony.
        shown_signer: Podpis listy pozycji pokazanych w sesji ("Akceptuj pokazane").
        export_runner: Funkcja eksportu zadania albo ``None`` (przycisk eksportu niedostępny).
        exports: Stan eksportów uruchomionych ze strony, po ``id_task``.
        exports_lock: Blokada ``exports`` (wątki eksportu i widoki).
    """

    settings: Settings
    token: str
    templates: Jinja2Templates
    shown_signer: URLSafeTimedSerializer
    export_runner: ExportRunner | None = None
    exports: dict[int, dict[str, Any]] = field(default_factory=dict)
    exports_lock: threading.Lock = field(default_factory=threading.Lock)


def review_state(request: Request) -> ReviewState:
    """Stan aplikacji, do której trafiło żądanie (działa też w warstwie pośredniej)."""
    return request.app.state.review


def with_db(settings: Settings, function: Callable[[MySQL], _T]) -> _T:
    """Wywołuje ``function`` na nowym połączeniu lokalnym (bez autocommit) i zamyka połączenie."""
    db = connect_local(settings, autocommit=False)
    try:
        return function(db)
    finally:
        db.close()


async def call_db(request: Request, function: Callable[[MySQL], _T]) -> _T:
    """``with_db`` w puli wątków: zapytania nie blokują pętli zdarzeń serwera."""
    return await run_in_threadpool(with_db, review_state(request).settings, function)
