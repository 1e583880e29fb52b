"""Rama operacji AI (run online, wysyłka i odbiór batcha): blokady operacji i wpis ``run_log``.

Każda operacja trzyma ``LOCK_PREFIX`` + uuid i ``LIVENESS_PREFIX`` + uuid na dwóch sesjach; jej
rezerwacje pozycji są martwe dopiero, gdy obie blokady są wolne (``LOCK_PREFIXES``).
"""

from collections.abc import Callable
from typing import Any

from lib.ai.stats import AiStats
from lib.db_local import MySQL
from lib.load_config import Settings
from lib.runtime.frames import run_with_operation_lock
from lib.runtime.locks import lock_name

# Prefiksy nazw blokad (``ailexia:ai_op:`` + uuid); SQL rezerwacji dokleja do nich ``operation_uuid``.
LOCK_PREFIX = lock_name("ai_op")
# Druga blokada runu (na sesji ``control``): run jest martwy dla innych dopiero, gdy obie są wolne.
LIVENESS_PREFIX = lock_name("ai_live")
LOCK_PREFIXES = (LOCK_PREFIX, LIVENESS_PREFIX)


def run_ai_operation(
    settings: Settings,
    id_task: int,
    run_id: str | None,
    stats: AiStats,
    body: Callable[[MySQL, str], AiStats],
) -> dict[str, Any]:
    """Wykonuje ``body`` w ramie operacji AI i zwraca jej statystyki jako słownik.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        run_id: Run Dagstera (``run_log``).
        stats: Statystyki, które ``body`` wypełnia (przy błędzie trafiają do ``run_log``).
        body: ``body(control, operation)`` wykonuje pracę i zwraca ``stats``.

    Returns:
        ``AiStats.as_dict()`` po zakończeniu ``body``.
    """
    return run_with_operation_lock(
        settings,
        id_task,
        "ai",
        run_id,
        LOCK_PREFIX,
        stats.as_dict,
        lambda control, operation: body(control, operation).as_dict(),
        liveness_prefix=LIVENESS_PREFIX,
    )
