"""Strona przeglądu w przeglądarce (``python review.py serve``): składanie aplikacji Starlette.

Tu są tylko adresy, warstwy pośrednie i stan aplikacji (``app.state.review``). Handlery są
w modułach obok: ``routes`` (zadania, pozycje, decyzje), ``auth`` (token, sesja, CSRF, imię),
``exports`` (eksport w tle), ``views`` (szablony i odpowiedzi), ``operator`` (źródła i modele)
i ``operator_tasks`` (nowe zadanie, postęp, pauza i wznowienie) - strony operatora, to samo co
polecenie ``ailexia``. Serwuje uvicorn ze skryptu
``review.py``; moduł nie zna Dagstera (eksport dostaje jako funkcję).
"""

from itsdangerous import URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lib.errors import UsageError
from lib.load_config import Settings
from lib.web import auth, exports, operator, operator_tasks, pilot, routes
from lib.web.state import ExportRunner, ReviewState
from lib.web.views import STATIC_DIR, make_templates

ROUTES = [
    Route("/", routes.index),
    Route("/tasks/{id_task:int}", routes.task_items),
    Route("/tasks/{id_task:int}/export", exports.export_page),
    Route("/tasks/{id_task:int}/export", exports.export_start, methods=["POST"]),
    Route("/tasks/new", operator_tasks.task_new_page),
    Route("/tasks/new", operator_tasks.task_add, methods=["POST"]),
    Route("/tasks/{id_task:int}/pause", operator_tasks.task_change, methods=["POST"]),
    Route("/tasks/{id_task:int}/resume", operator_tasks.task_change, methods=["POST"]),
    Route("/tasks/{id_task:int}/resync", operator_tasks.task_change, methods=["POST"]),
    Route("/progress", operator_tasks.progress_page),
    Route("/api/progress", operator_tasks.progress_api),
    Route("/sources", operator.sources_page),
    Route("/sources", operator.source_add, methods=["POST"]),
    Route("/sources/{alias:path}/test", operator.source_test, methods=["POST"]),
    Route("/sources/{alias:path}/tables", operator.source_tables),
    Route("/models", operator.models_page),
    Route("/models", operator.model_add, methods=["POST"]),
    Route("/models/{name:path}/test", operator.model_test, methods=["POST"]),
    Route("/tasks/{id_task:int}/pilot", pilot.pilot_action, methods=["POST"]),
    Route("/login", auth.login, methods=["POST"]),
    Route("/reviewer", auth.set_name, methods=["POST"]),
    Route("/logout", auth.logout, methods=["POST"]),
    Route("/api/items/{id_item:int}/decide", routes.decide, methods=["POST"]),
    Route("/api/items/{id_item:int}/edit", routes.edit, methods=["POST"]),
    Route("/api/tasks/{id_task:int}/undo", routes.undo, methods=["POST"]),
    Route("/api/tasks/{id_task:int}/accept-shown", routes.accept_shown, methods=["POST"]),
    Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
]


def create_app(
    settings: Settings,
    token: str,
    export_runner: ExportRunner | None = None,
) -> Starlette:
    """Buduje aplikację ASGI strony przeglądu.

    Args:
        settings: Ustawienia z ``load_config`` (połączenie lokalne).
        token: Token dostępu (``REVIEW_TOKEN`` albo wylosowany przez skrypt).
        export_runner: Funkcja ``(id_task) -> (sukces, komunikat)`` uruchamiająca eksport
            zadania (ten sam co ``sync.py --export``); ``None`` = przycisk eksportu niedostępny.

    Returns:
        Aplikacja Starlette gotowa dla uvicorn.

    Raises:
        UsageError: Gdy token jest pusty.
    """
    if not token:
        raise UsageError("strona przeglądu wymaga niepustego tokenu")
    secret = auth.cookie_secret(token)
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie=auth.SESSION_COOKIE,
            max_age=auth.SESSION_MAX_AGE_S,
            same_site="strict",
        ),
        Middleware(auth.auth_middleware),
    ]
    app = Starlette(routes=list(ROUTES), middleware=middleware)
    app.state.review = ReviewState(
        settings=settings,
        token=token,
        templates=make_templates(),
        shown_signer=URLSafeTimedSerializer(secret, salt="ailexia-review-shown"),
        export_runner=export_runner,
    )
    return app
