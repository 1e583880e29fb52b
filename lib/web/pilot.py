"""Panel pilota (faza nauki) na stronie pozycji zadania: liczby i dwie decyzje.

Zadanie ``in_learning`` czeka na ocenę pilota. Strona pokazuje jego liczby (te same co
``review.py pilot``, ``lib.ai.learning.pilot_figures``) i dwa formularze: zatwierdzenie (reszta
zadania idzie do AI) oraz pilot od nowa, opcjonalnie innym modelem. Zapis wymaga tokenu CSRF sesji
i imienia recenzenta, jak każdy zapis strony.
"""

from typing import Any

import pymysql
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lib.ai import learning
from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.errors import AilexiaError
from lib.load_config import Settings
from lib.web.auth import read_write
from lib.web.state import call_db, review_state
from lib.web.views import error_response, refused

log = get_logger("review_web")

PILOT_ACTIONS = ("approve", "redo")


def pilot_panel(db: MySQL, settings: Settings, task_row: dict[str, Any]) -> dict[str, Any] | None:
    """Dane panelu pilota zadania ``in_learning`` (liczby i aktywne modele) albo ``None``."""
    id_task = int(task_row["id_task"])
    if task_row.get("status") != learning.IN_LEARNING or learning.open_pilot(db, id_task) is None:
        return None
    figures = learning.pilot_figures(db, id_task, settings)
    models = [
        row["name"] for row in db.query("SELECT name FROM ai_model WHERE status='active' ORDER BY name")
    ]
    db.commit()
    return {"figures": figures, "models": models}


async def pilot_action(request: Request) -> Response:
    """``POST /tasks/{id_task}/pilot``: ``action=approve`` albo ``action=redo`` (+ ``model``)."""
    data, problem = await read_write(request)
    if problem:
        return refused(request, 403, problem)
    name = request.session.get("name")
    if not name:
        return refused(request, 400, "podaj najpierw swoje imię (odśwież stronę)")
    id_task = int(request.path_params["id_task"])
    action = data.get("action")
    if action not in PILOT_ACTIONS:
        return refused(request, 400, f"nieznana decyzja pilota {action!r} (approve albo redo)")
    model = str(data.get("model") or "").strip() or None
    settings = review_state(request).settings

    def work(db: MySQL) -> dict[str, Any]:
        if action == "approve":
            return learning.approve_pilot(db, id_task, name, settings)
        return learning.redo_pilot(db, id_task, name, settings, model)

    try:
        await call_db(request, work)
    except (AilexiaError, pymysql.MySQLError) as exc:
        return error_response(request, exc)
    log.info("zadanie %s: pilot - %s (%s%s)", id_task, action, name, f", model {model}" if model else "")
    return RedirectResponse(f"/tasks/{id_task}?status=processed", status_code=303)
