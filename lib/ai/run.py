"""Dyspozytor AI: jeden punkt wejścia (``ai.py``, asset Dagstera) dla runu online, wysyłki i odbioru batcha.

``run_ai`` sprawdza zadanie i jego model, po czym wybiera: odbiór wyników batcha
(``lib/ai/batch/ingest.py``), wysyłkę batchy (``lib/ai/batch/submit.py``, zadanie w trybie batch)
albo run online (``lib/ai/online.py``). ``dry_run`` szacuje pracę bez wysyłania czegokolwiek.
"""

from typing import Any

from lib import task_item
from lib.ai import cost as ai_cost
from lib.ai import learning, prompts
from lib.ai import packs as ai_pack
from lib.ai.batch import ingest as ai_batch_ingest
from lib.ai.batch import submit as ai_batch
from lib.ai.online import run_online
from lib.ai.stats import AiStats
from lib.db_local import MySQL, connect_local
from lib.db_utils import get_logger
from lib.errors import TaskError, UsageError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.progress import Progress
from lib.task import CLOSED_STATUSES, get_task

log = get_logger("ai")

# Narzut promptu systemowego i formatu JSON na jedno zapytanie (szacunek dla dry_run).
OUTPUT_OVERHEAD_TOKENS = 40


def load_task(db: MySQL, id_task: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Czyta zadanie i jego model; sprawdza, czy da się je przetwarzać.

    Raises:
        UsageError: Nieznane zadanie albo zadanie anulowane/zarchiwizowane.
        TaskError: Brak modelu, model wyłączony, tłumaczenie bez języka docelowego.
    """
    task = get_task(db, id_task)
    if task["status"] in CLOSED_STATUSES:
        raise UsageError(f"zadanie {id_task} ma status {task['status']} - nie jest przetwarzane")
    if task["id_ai_model"] is None:
        raise TaskError(f"zadanie {id_task} nie ma przypisanego modelu AI (task.id_ai_model jest NULL)")
    model = db.query_one("SELECT * FROM ai_model WHERE id_ai_model=%s", (task["id_ai_model"],))
    if model is None:
        raise TaskError(f"zadanie {id_task}: model AI {task['id_ai_model']} nie istnieje w tabeli ai_model")
    if model["status"] != "active":
        raise TaskError(
            f"zadanie {id_task}: model AI {model['name']!r} jest wyłączony (ai_model.status={model['status']})"
        )
    if task.get("ai_action") == "translate" and not task.get("target_lang"):
        raise TaskError(f"zadanie {id_task}: tłumaczenie wymaga języka docelowego (task.target_lang)")
    return task, model


def run_ai(
    settings: Settings,
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    id_ai_batch: int | None = None,
) -> dict[str, Any]:
    """Przetwarza modelem AI pozycje pending/outdated zadania.

    Zadanie w trybie batch (``task.ai_batch_mode``, inaczej ``ai_model.batch_mode``) idzie do
    ``lib.ai.batch.submit.run_submit`` (wysyłka batchy OpenAI); ``id_ai_batch`` zleca odbiór wyników
    zakończonego batcha (``lib.ai.batch.ingest.run_ingest``).

    Args:
        settings: Ustawienia (``AI_*``, lokalna baza).
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera (do ``run_log``).
        should_stop: Funkcja zwracająca powód zatrzymania (``manual``, ``cancelled``,
            ``time_limit``, ``signal``) albo ``None``; wołana przed każdą rezerwacją.
        progress: Wołana po zakończeniu kolejnych pozycji ze statystykami do tej chwili.
        limit: Najwyżej tyle pozycji w tym runie (``None`` = wszystkie).
        id_ai_batch: Odbiór wyników tego batcha zamiast przetwarzania pozycji.

    Returns:
        Statystyki: processed, failed, skipped (reused + discarded), reused, discarded,
        given_up, claimed, tokens_input, tokens_output, tokens_cached, cost_usd (float),
        requests_sent, duration_s, items_per_s, stopped, budget_reached, response_format,
        operation_uuid.

    Raises:
        UsageError: Nieznane zadanie (albo anulowane/zarchiwizowane).
        TaskError: Brak modelu lub model wyłączony.
        AiError: Brak klucza API, klucz odrzucony (401), nieznany model (404) - run przerwany,
            rezerwacje zwolnione.
    """
    if id_ai_batch is not None:
        # Odbiór zapłaconych już wyników: bez warunków na status zadania i modelu (model batcha
        # mógł zostać wyłączony albo zmieniony po wysyłce; ceny i serwer bierze się z ai_batch).
        with connect_local(settings, autocommit=True) as db:
            task = get_task(db, id_task)
        return _after_run(
            settings, id_task, ai_batch_ingest.run_ingest(settings, task, id_ai_batch, run_id=run_id)
        )
    with connect_local(settings, autocommit=True) as db:
        task, model = load_task(db, id_task)
        if task["status"] == learning.IN_LEARNING:
            # Faza nauki: nic nie jest wysyłane, dopóki człowiek nie oceni pilota (review.py pilot).
            log.info("zadanie %s: faza nauki (in_learning) - czeka na ocenę pilota, nic nie wysyłam", id_task)
            stats = AiStats()
            stats.pilot = stats.outcome = learning.IN_LEARNING
            return stats.as_dict()
        learning.start_pilot(db, task, model, settings)
    if ai_batch.is_batch_mode(task, model):
        submitted = ai_batch.run_submit(
            settings, task, model, run_id=run_id, should_stop=should_stop, limit=limit
        )
        return _after_run(settings, id_task, submitted)
    done = run_online(
        settings, task, model, run_id=run_id, should_stop=should_stop, progress=progress, limit=limit
    )
    return _after_run(settings, id_task, done)


def _after_run(settings: Settings, id_task: int, result: dict[str, Any]) -> dict[str, Any]:
    """Po runie: pilot gotowy -> ``in_learning``; do wyniku stan pilota i liczby jakości zadania."""
    with connect_local(settings, autocommit=True) as db:
        result["pilot"] = learning.finish_pilot(db, id_task, settings)
        result["quality"] = learning.task_quality(db, id_task, settings)
    return result


def dry_run(settings: Settings, id_task: int) -> dict[str, Any]:
    """Szacuje pracę AI dla zadania bez wysyłania czegokolwiek do modelu.

    Duplikaty tekstów liczone są raz (tak jak w ``run_ai``).

    Args:
        settings: Ustawienia (lokalna baza, ``AI_MAX_ATTEMPTS``).
        id_task: Zadanie.

    Returns:
        ``items``, ``distinct_texts``, ``characters`` (tekstów różnych), ``estimated_tokens_input``,
        ``estimated_tokens_output``, ``estimated_cost_usd``, ``model``, ``batch_mode`` (koszt po cenach
        batch, gdy ``True``).

    Raises:
        UsageError: Nieznane zadanie.
        TaskError: Brak modelu lub model wyłączony.
    """
    with connect_local(settings, autocommit=True) as db:
        task, model = load_task(db, id_task)
        work = task_item.ai_workload(db, id_task, settings.ai_max_attempts)
    distinct, characters = work["distinct_texts"], work["characters"]
    pack_items, pack_chars = ai_pack.pack_limits(settings, model)
    prompt = prompts.system_prompt(
        task.get("ai_action") or "correct",
        model.get("system_prompt"),
        task.get("source_lang"),
        task.get("target_lang"),
        pack=pack_items > 1,
    )
    # Zapytania: przy paczkach tyle, ile wymusza limit tekstów albo znaków (szacunek bez długich tekstów).
    requests = distinct if pack_items <= 1 else max(-(-distinct // pack_items), -(-characters // pack_chars))
    tokens_in = characters // 4 + requests * (len(prompt) // 4 + 10) + (distinct * 5 if pack_items > 1 else 0)
    tokens_out = characters // 4 + distinct * OUTPUT_OVERHEAD_TOKENS
    batch_mode = ai_batch.is_batch_mode(task, model)
    # Tryb batch: szacunek po cenach Batch API (ai_model.price_batch_*, domyślnie połowa).
    prices = ai_cost.batch_price_row(model) if batch_mode else model
    cost = ai_cost.compute_cost(tokens_in, 0, tokens_out, prices)
    return {
        "items": work["items"],
        "distinct_texts": distinct,
        "characters": characters,
        "estimated_tokens_input": tokens_in,
        "estimated_tokens_output": tokens_out,
        "estimated_cost_usd": float(cost),
        "estimated_requests": requests,
        "model": model["model"],
        "batch_mode": batch_mode,
    }
