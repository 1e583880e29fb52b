"""Silnik AI: korekta lub tłumaczenie pozycji zadania modelem zgodnym z OpenAI.

Przebieg runu (``run_ai``):

1. Run dostaje identyfikator operacji (UUID) i trzyma ``GET_LOCK('ailexia_ai_op_<uuid>')`` na
   osobnym połączeniu przez cały czas życia. Rezerwacja, której blokada jest wolna (właściciel
   nie żyje, np. ``kill -9``) albo starsza niż ``AI_CLAIM_TIMEOUT_S``, może być przejęta od razu.
2. Wątek główny rezerwuje małe partie (``AI_CLAIM_BATCH``) przez ``SELECT ... FOR UPDATE SKIP
   LOCKED`` w krótkiej transakcji (stempel ``operation_uuid`` + ``claimed_at``) i trzyma pulę
   pełną: w puli jest do ``2 * AI_CONCURRENCY`` zadań, więc wątki nie czekają na rezerwację.
3. Identyczne teksty (ten sam ``original_hash``) wysyłane są raz: gotowy wynik dla tego hasha
   w zadaniu (status processed/accepted/exported; ``rejected`` celowo nie - człowiek go odrzucił)
   jest używany ponownie, a duplikaty w runie czekają na wynik pierwszego (bez zajmowania wątku).
   Pozycje z ponownie użytym wynikiem mają koszt 0 i 0 tokenów.
4. Każdy wynik zapisywany jest od razu, we własnej transakcji (autocommit) na połączeniu
   pożyczonym z małej puli (``STORE_CONNECTIONS``), warunkowo: ``operation_uuid`` nasz
   i ``original_hash`` bez zmian. Gdy sync zmienił tekst w międzyczasie, odpowiedź jest
   odrzucana, a pozycja czeka na kolejny run.
5. Błąd pozycji: ``ai_error``, ``ai_attempts + 1``, status bez zmian; rezerwacja trzymana do
   końca runu (ten run nie ponawia tej pozycji w kółko), potem zwalniana. ``AiError`` (401, 404)
   kończy run od razu: niezaczęte pozycje są zwalniane, wyjątek idzie wyżej.

Status zadania (``task.status``) nie jest tu zmieniany - robi to wywołujący na podstawie statystyk.
"""

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from lib import ai_client, faults, prompts
from lib.db_local import MySQL, connect_local, retry_on_deadlock
from lib.db_utils import compute_hash, get_logger, mask_secrets, register_secrets
from lib.errors import AiError, TaskError, UsageError
from lib.load_config import get_env_value
from lib.task import close_abandoned_runs, log_run_end, log_run_start

log = get_logger("ai")

LOCK_PREFIX = "ailexia_ai_op_"
# Najwięcej połączeń z bazą do zapisu wyników w jednym runie (niezależnie od AI_CONCURRENCY).
STORE_CONNECTIONS = 4
# Statusy, których wynik AI dla tego samego tekstu można użyć ponownie.
REUSABLE_STATUSES = ("processed", "accepted", "exported")
# Narzut promptu systemowego i formatu JSON na jedno zapytanie (szacunek dla dry_run).
PROMPT_OVERHEAD_TOKENS = 250
OUTPUT_OVERHEAD_TOKENS = 40

_ELIGIBLE = (
    "i.status IN ('pending','outdated') AND i.deleted_at IS NULL "
    "AND i.text_original IS NOT NULL AND i.text_original <> '' AND i.ai_attempts < %s"
)


def _load_task(db: MySQL, id_task: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Czyta zadanie i jego model; sprawdza, czy da się je przetwarzać.

    Raises:
        UsageError: Nieznane zadanie albo zadanie anulowane/zarchiwizowane.
        TaskError: Brak modelu, model wyłączony, tłumaczenie bez języka docelowego.
    """
    task = db.query_one("SELECT * FROM task WHERE id_task=%s", (id_task,))
    if task is None:
        raise UsageError(f"zadanie {id_task} nie istnieje")
    if task["status"] in ("cancelled", "archived"):
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


def resolve_endpoint(settings: dict[str, Any], model_row: dict[str, Any]) -> tuple[str | None, str]:
    """Ustala adres serwera i klucz API modelu (klucz z ``ai_model.api_key_env``).

    Args:
        settings: Ustawienia (``OPENAI_BASE_URL`` i źródło zmiennych).
        model_row: Wiersz ``ai_model``.

    Returns:
        ``(base_url, api_key)``; ``base_url`` ``None`` = api.openai.com. Dla własnego serwera bez
        klucza zwracany jest ``"not-needed"``.

    Raises:
        AiError: Brak klucza dla api.openai.com.
    """
    base_url = model_row.get("base_url") or settings.get("OPENAI_BASE_URL") or None
    key_env = model_row.get("api_key_env") or "OPENAI_API_KEY"
    api_key = get_env_value(settings, key_env)
    if not api_key:
        if base_url is None:
            raise AiError(
                f"brak klucza API: ustaw zmienną {key_env} (model {model_row['name']!r} używa api.openai.com)"
            )
        api_key = "not-needed"
    register_secrets([api_key])
    return base_url, api_key


def _claim(
    db: MySQL, id_task: int, operation: str, count: int, max_attempts: int, claim_timeout_s: int
) -> list[dict[str, Any]]:
    """Rezerwuje do ``count`` pozycji w krótkiej transakcji (SKIP LOCKED) i zwraca je."""

    def work() -> list[dict[str, Any]]:
        db.begin()
        rows = db.query(
            "SELECT i.id_task_item, i.text_original, i.original_hash FROM task_item i "
            f"WHERE i.id_task=%s AND {_ELIGIBLE} "
            "AND (i.operation_uuid IS NULL OR (i.operation_uuid <> %s AND (i.claimed_at IS NULL "
            "OR i.claimed_at < NOW() - INTERVAL %s SECOND "
            "OR IS_FREE_LOCK(CONCAT(%s, i.operation_uuid)) = 1))) "
            "ORDER BY i.id_task_item LIMIT %s FOR UPDATE SKIP LOCKED",
            (id_task, max_attempts, operation, claim_timeout_s, LOCK_PREFIX, count),
        )
        if rows:
            marks = ", ".join(["%s"] * len(rows))
            db.execute(
                f"UPDATE task_item SET operation_uuid=%s, claimed_at=NOW() WHERE id_task_item IN ({marks})",
                (operation, *[row["id_task_item"] for row in rows]),
            )
        db.commit()
        faults.checkpoint("ai.claimed")
        return rows

    return retry_on_deadlock(work, db=db)


def _release(db: MySQL, operation: str, ids: list[int] | None = None) -> int:
    """Zwalnia rezerwacje operacji (wszystkie albo podane pozycje)."""
    if ids is not None and not ids:
        return 0
    if ids is None:
        sql, params = (
            "UPDATE task_item SET operation_uuid=NULL, claimed_at=NULL WHERE operation_uuid=%s",
            (operation,),
        )
    else:
        marks = ", ".join(["%s"] * len(ids))
        sql = f"UPDATE task_item SET operation_uuid=NULL, claimed_at=NULL WHERE operation_uuid=%s AND id_task_item IN ({marks})"
        params = (operation, *ids)

    def work() -> int:
        changed = db.execute(sql, params)
        if not db.autocommit:
            db.commit()
        return changed

    return retry_on_deadlock(work, db=db)


def _stored_results(db: MySQL, id_task: int, hashes: list[str]) -> dict[str, tuple[str, str | None]]:
    """Zwraca gotowe wyniki zadania dla podanych hashy: ``hash -> (text_corrected, change_summary)``."""
    if not hashes:
        return {}
    marks = ", ".join(["%s"] * len(hashes))
    rows = db.query(
        "SELECT original_hash, text_corrected, change_summary FROM task_item "
        f"WHERE id_task=%s AND status IN ('processed','accepted','exported') AND text_corrected IS NOT NULL "
        f"AND original_hash IN ({marks}) ORDER BY processed_at",
        (id_task, *hashes),
    )
    return {row["original_hash"]: (row["text_corrected"], row["change_summary"]) for row in rows}


def _new_stats() -> dict[str, Any]:
    return {
        "processed": 0,
        "failed": 0,
        "skipped": 0,
        "reused": 0,
        "discarded": 0,
        "given_up": 0,
        "claimed": 0,
        "tokens_input": 0,
        "tokens_output": 0,
        "tokens_cached": 0,
        "cost_usd": Decimal(0),
        "requests_sent": 0,
        "duration_s": 0.0,
        "items_per_s": 0.0,
        "stopped": None,
        "budget_reached": False,
        "response_format": None,
    }


def run_ai(
    settings: dict[str, Any],
    id_task: int,
    limit: int | None = None,
    should_stop: Callable[[], str | None] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Przetwarza modelem AI pozycje pending/outdated zadania.

    Args:
        settings: Ustawienia (``AI_*``, lokalna baza). Opcjonalnie ``AI_BACKOFF_S`` - podstawa
            backoffu ponowień w sekundach (domyślnie 1).
        id_task: Zadanie.
        limit: Najwyżej tyle pozycji w tym runie (``None`` = wszystkie).
        should_stop: Funkcja zwracająca powód zatrzymania (``manual``, ``cancelled``,
            ``time_limit``, ``signal``) albo ``None``; wołana przed każdą rezerwacją.
        run_id: Identyfikator runu Dagstera (do ``run_log``).

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
    started = time.monotonic()
    stats = _new_stats()
    control = connect_local(settings, autocommit=False)
    lock_db: MySQL | None = None
    id_run_log: int | None = None
    operation = str(uuid.uuid4())
    try:
        task, model = _load_task(control, id_task)
        control.rollback()
        base_url, api_key = resolve_endpoint(settings, model)
        lock_db = connect_local(settings, autocommit=True)
        if lock_db.query_value("SELECT GET_LOCK(%s, 0)", (LOCK_PREFIX + operation,)) != 1:
            raise TaskError(f"zadanie {id_task}: nie udało się założyć blokady operacji AI {operation}")
        # Blokada przed wpisem: wpis "running" z wolną blokadą operacji to zawsze martwy run.
        close_abandoned_runs(control, id_task, ("ai",), LOCK_PREFIX)
        id_run_log = log_run_start(control, id_task, "ai", run_id, operation)
        # READ COMMITTED: rezerwacja nie blokuje wierszy, których i tak nie bierze.
        control.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        control.commit()
        client = ai_client.make_client(base_url, api_key, float(settings.get("AI_TIMEOUT_S", 60.0)))
        log.info(
            "zadanie %s: start AI (operacja %s, model %s, współbieżność %s)",
            id_task,
            operation,
            model["model"],
            settings.get("AI_CONCURRENCY", 8),
        )
        try:
            _run_loop(settings, task, model, client, control, operation, limit, should_stop, stats)
        finally:
            with_secret = [api_key]
            try:
                control.rollback()
                _release(control, operation)
            except Exception as exc:  # zwolnienie jest też po śmierci blokady, więc tylko ostrzegamy
                log.warning(
                    "zadanie %s: nie udało się zwolnić rezerwacji: %s",
                    id_task,
                    mask_secrets(str(exc), with_secret),
                )
        _finish_stats(control, settings, id_task, stats, started, operation)
        status = "completed"
        message = None
        if stats["stopped"]:
            status = "cancelled" if stats["stopped"] == "cancelled" else "paused"
            message = f"zatrzymano: {stats['stopped']}"
        elif stats["budget_reached"]:
            status = "paused"
            message = f"osiągnięto limit kosztu AI_MAX_COST_USD={settings.get('AI_MAX_COST_USD')}"
        log_run_end(control, id_run_log, status, stats, message)
        log.info("zadanie %s: koniec AI %s", id_task, stats)
        return stats
    except BaseException as exc:
        if id_run_log is not None:
            _finish_stats(control, settings, id_task, stats, started, operation, quiet=True)
            try:
                log_run_end(control, id_run_log, "error", stats, str(exc)[:2000])
            except Exception as log_exc:
                log.warning("zadanie %s: nie udało się zamknąć run_log: %s", id_task, log_exc)
        raise
    finally:
        if lock_db is not None:
            lock_db.close()  # zamknięcie sesji zwalnia GET_LOCK
        control.close()


def _finish_stats(
    db: MySQL,
    settings: dict[str, Any],
    id_task: int,
    stats: dict[str, Any],
    started: float,
    operation: str,
    quiet: bool = False,
) -> None:
    """Uzupełnia statystyki: czas, tempo, liczba pozycji porzuconych (AI_MAX_ATTEMPTS)."""
    stats["duration_s"] = round(time.monotonic() - started, 3)
    done = stats["processed"] + stats["reused"]
    stats["items_per_s"] = round(done / stats["duration_s"], 2) if stats["duration_s"] > 0 else 0.0
    stats["cost_usd"] = float(stats["cost_usd"])
    stats["operation_uuid"] = operation
    try:
        db.rollback()
        stats["given_up"] = int(
            db.query_value(
                "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND status IN ('pending','outdated') "
                "AND deleted_at IS NULL AND text_original IS NOT NULL AND text_original <> '' AND ai_attempts >= %s",
                (id_task, int(settings.get("AI_MAX_ATTEMPTS", 3))),
            )
            or 0
        )
        db.rollback()
    except Exception:
        if not quiet:
            raise


def _run_loop(
    settings: dict[str, Any],
    task: dict[str, Any],
    model: dict[str, Any],
    client: Any,
    control: MySQL,
    operation: str,
    limit: int | None,
    should_stop: Callable[[], str | None] | None,
    stats: dict[str, Any],
) -> None:
    """Pętla rezerwacji i rozdziału pracy; wraca po wyczerpaniu pozycji, zatrzymaniu albo błędzie."""
    id_task = int(task["id_task"])
    concurrency = max(1, int(settings.get("AI_CONCURRENCY", 8)))
    claim_batch = max(1, int(settings.get("AI_CLAIM_BATCH", 20)))
    max_attempts = int(settings.get("AI_MAX_ATTEMPTS", 3))
    claim_timeout = int(settings.get("AI_CLAIM_TIMEOUT_S", 900))
    max_cost = Decimal(str(settings.get("AI_MAX_COST_USD") or 0))
    hash_method = task.get("hash_method") or "sha256"
    action = task.get("ai_action") or "correct"
    note = (
        f"tłumaczenie {task.get('source_lang') or 'auto'} -> {task.get('target_lang')}"
        if action == "translate"
        else None
    )
    capability = ai_client.make_capability_state()
    lock = threading.Lock()
    groups: dict[str | None, dict[str, Any]] = {}
    connections: list[MySQL] = []
    fatal: list[BaseException] = []
    # Wyniki zapisuje mała pula połączeń (autocommit), pożyczanych na jedno polecenie. Połączenie
    # na wątek kosztowało na starcie ~0,3 s (32 handshake'i naraz po pierwszej fali odpowiedzi),
    # a zapis trwa ~1-2 ms, więc kilka połączeń wystarcza przy każdej współbieżności.
    idle_connections: queue.SimpleQueue[MySQL] = queue.SimpleQueue()
    store_slots = threading.BoundedSemaphore(STORE_CONNECTIONS)

    @contextmanager
    def store_db() -> Iterator[MySQL]:
        with store_slots:
            try:
                db = idle_connections.get_nowait()
            except queue.Empty:
                db = connect_local(settings, autocommit=True)
                with lock:
                    connections.append(db)
            try:
                yield db
            finally:
                idle_connections.put(db)

    def store_execute(sql: str, params: tuple[Any, ...]) -> int:
        with store_db() as db:
            return db.execute(sql, params)

    def release(ids: list[int]) -> None:
        with store_db() as db:
            _release(db, operation, ids)

    def add(**values: Any) -> None:
        with lock:
            for key, value in values.items():
                stats[key] += value

    def store_ok(item: dict[str, Any], text: str, summary: str | None, result: Any, cost: Decimal) -> None:
        changed = store_execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, change_summary=%s, processed_at=NOW(), "
            "status='processed', is_changed=0, tokens_input=%s, tokens_output=%s, cost_usd=%s, ai_error=NULL, "
            "operation_uuid=NULL, claimed_at=NULL "
            "WHERE id_task_item=%s AND operation_uuid=%s AND original_hash <=> %s",
            (
                text,
                compute_hash(text, hash_method),
                summary,
                result.tokens_input if result else 0,
                result.tokens_output if result else 0,
                cost,
                item["id_task_item"],
                operation,
                item["original_hash"],
            ),
        )
        if changed:
            if result is None:
                add(reused=1, skipped=1)
            else:
                add(processed=1)
            return
        # Tekst zmienił się w międzyczasie (sync): odpowiedź nieaktualna, pozycja zostaje na później.
        release([item["id_task_item"]])
        add(discarded=1, skipped=1)

    def store_error(item: dict[str, Any], message: str) -> None:
        # Rezerwacja zostaje do końca runu, żeby ten run nie brał tej pozycji ponownie.
        store_execute(
            "UPDATE task_item SET ai_error=%s, ai_attempts=ai_attempts+1 "
            "WHERE id_task_item=%s AND operation_uuid=%s AND original_hash <=> %s",
            (message[:4000], item["id_task_item"], operation, item["original_hash"]),
        )
        add(failed=1)

    def finish_group(group: dict[str, Any]) -> list[dict[str, Any]]:
        with lock:
            followers = group["followers"]
            group["followers"] = []
            group["status"] = "done"
        return followers

    def store_followers(followers: list[dict[str, Any]], group: dict[str, Any]) -> None:
        """Zapisuje duplikaty jednym UPDATE (ten sam wynik, koszt 0)."""
        if not followers:
            return
        ids = [f["id_task_item"] for f in followers]
        if group["error"] is not None:
            for follower in followers:
                store_error(follower, group["error"])
            return
        if group["abandoned"] or group["text"] is None:
            release(ids)
            return
        marks = ", ".join(["%s"] * len(ids))
        changed = store_execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, change_summary=%s, processed_at=NOW(), "
            "status='processed', is_changed=0, tokens_input=0, tokens_output=0, cost_usd=0, ai_error=NULL, "
            "operation_uuid=NULL, claimed_at=NULL "
            f"WHERE id_task_item IN ({marks}) AND operation_uuid=%s AND original_hash <=> %s",
            (
                group["text"],
                compute_hash(group["text"], hash_method),
                group["summary"],
                *ids,
                operation,
                followers[0]["original_hash"],
            ),
        )
        add(reused=changed, skipped=len(ids))
        if changed < len(ids):
            # Tekst części pozycji zmienił się w międzyczasie: odpowiedź nieaktualna.
            add(discarded=len(ids) - changed)
            release(ids)

    def leader_job(item: dict[str, Any], group: dict[str, Any]) -> None:
        try:
            if fatal:
                group["abandoned"] = True
                release([item["id_task_item"]])
            elif group["text"] is not None:
                store_ok(item, group["text"], group["summary"], None, Decimal(0))
            else:
                messages = prompts.build_messages(
                    item["text_original"],
                    action,
                    model.get("system_prompt"),
                    task.get("source_lang"),
                    task.get("target_lang"),
                )
                result = None
                try:
                    with api_slots:
                        # Run mógł zostać przerwany (401/404), gdy wątek czekał na miejsce: nic nie wysyłamy.
                        if not fatal:
                            faults.checkpoint("ai.request")
                            result = ai_client.complete(
                                client, model, messages, settings, capability, item["text_original"]
                            )
                except AiError as exc:
                    with lock:
                        fatal.append(exc)
                    group["abandoned"] = True
                    release([item["id_task_item"]])
                except ai_client.AiItemError as exc:
                    group["error"] = str(exc)
                    store_error(item, str(exc))
                else:
                    if result is None:
                        group["abandoned"] = True
                        release([item["id_task_item"]])
                        return
                    cost = ai_client.compute_cost(
                        result.tokens_input, result.tokens_cached, result.tokens_output, model
                    )
                    group["text"] = result.text
                    group["summary"] = prompts.build_change_summary(result.edits, note)
                    faults.checkpoint("ai.store")
                    add(
                        tokens_input=result.tokens_input,
                        tokens_output=result.tokens_output,
                        tokens_cached=result.tokens_cached,
                        cost_usd=cost,
                    )
                    store_ok(item, result.text, group["summary"], result, cost)
        except BaseException:
            group["abandoned"] = group["text"] is None and group["error"] is None
            raise
        finally:
            store_followers(finish_group(group), group)

    def follower_job(item: dict[str, Any], group: dict[str, Any]) -> None:
        store_followers([item], group)

    # AI_CONCURRENCY ogranicza zapytania do modelu (semafor); kilka wątków więcej pozwala zapisywać
    # wynik (commit) równolegle z kolejnym zapytaniem, więc zapis nie zajmuje miejsca w limicie.
    api_slots = threading.BoundedSemaphore(concurrency)
    spare = 2
    pool = ThreadPoolExecutor(max_workers=concurrency + spare, thread_name_prefix=f"ai-{id_task}")
    active: dict[Future, tuple[dict[str, Any], dict[str, Any]]] = {}
    # Zakończone zadania puli trafiają do kolejki (callback), więc pętla budzi się w O(1);
    # ``wait(FIRST_COMPLETED)`` na kilkudziesięciu futures kosztował ~10% czasu GIL przy 32 wątkach.
    finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
    exhausted = False
    try:
        while True:
            if fatal:
                break
            if stats["stopped"] is None and should_stop is not None:
                stats["stopped"] = should_stop()
            if max_cost > 0 and not stats["budget_reached"] and stats["cost_usd"] >= max_cost:
                stats["budget_reached"] = True
                log.info("zadanie %s: osiągnięto limit kosztu %s USD - koniec rezerwacji", id_task, max_cost)
            can_claim = (
                not exhausted
                and stats["stopped"] is None
                and not stats["budget_reached"]
                and (limit is None or stats["claimed"] < limit)
            )
            if stats["stopped"] is not None or stats["budget_reached"]:
                # Niezaczęte pozycje wracają do puli zadania; zaczęte kończą się normalnie.
                _cancel_queued(active, control, operation, lock)
            if can_claim and len(active) < 2 * concurrency + spare:
                count = claim_batch if limit is None else min(claim_batch, limit - stats["claimed"])
                items = _claim(control, id_task, operation, count, max_attempts, claim_timeout)
                if not items:
                    exhausted = True
                    continue
                stats["claimed"] += len(items)
                reusable = _stored_results(control, id_task, sorted({i["original_hash"] for i in items}))
                for item in items:
                    key = item["original_hash"]
                    with lock:
                        group = groups.get(key)
                        if group is None:
                            text, summary = reusable.get(key, (None, None))
                            group = {
                                "status": "running",
                                "followers": [],
                                "text": text,
                                "summary": summary,
                                "error": None,
                                "abandoned": False,
                            }
                            groups[key] = group
                            job = leader_job
                        elif group["status"] == "running":
                            group["followers"].append(item)
                            continue
                        else:
                            job = follower_job
                    future = pool.submit(job, item, group)
                    active[future] = (item, group)
                    future.add_done_callback(finished.put)
                continue
            if not active:
                break
            for future in _drain(finished, timeout=0.25):
                if active.pop(future, None) is None:
                    continue  # anulowane wcześniej przez _cancel_queued
                if not future.cancelled() and future.exception() is not None:
                    with lock:
                        fatal.append(future.exception())
        if fatal:
            _cancel_queued(active, control, operation, lock)
            wait(list(active))
            raise fatal[0]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stats["requests_sent"] = capability["requests"]
        stats["response_format"] = capability["mode"]
        for db in connections:
            db.close()


def _drain(finished: queue.SimpleQueue[Future], timeout: float) -> list[Future]:
    """Czeka do ``timeout`` s na pierwsze zakończone zadanie i zabiera wszystkie gotowe."""
    try:
        done = [finished.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            done.append(finished.get_nowait())
        except queue.Empty:
            return done


def _cancel_queued(
    active: dict[Future, tuple[dict[str, Any], dict[str, Any]]],
    control: MySQL,
    operation: str,
    lock: threading.Lock,
) -> None:
    """Anuluje niezaczęte zadania puli i zwalnia ich pozycje (z czekającymi duplikatami)."""
    released: list[int] = []
    for future, (item, group) in list(active.items()):
        if future.cancel():
            active.pop(future)
            released.append(item["id_task_item"])
            with lock:
                if group["status"] == "running" and group["text"] is None:
                    released.extend(f["id_task_item"] for f in group["followers"])
                    group["followers"] = []
                    group["abandoned"] = True
    if released:
        _release(control, operation, released)


def dry_run(settings: dict[str, Any], id_task: int) -> dict[str, Any]:
    """Szacuje pracę AI dla zadania bez wysyłania czegokolwiek do modelu.

    Duplikaty tekstów liczone są raz (tak jak w ``run_ai``).

    Args:
        settings: Ustawienia (lokalna baza, ``AI_MAX_ATTEMPTS``).
        id_task: Zadanie.

    Returns:
        ``items``, ``distinct_texts``, ``characters`` (tekstów różnych), ``estimated_tokens_input``,
        ``estimated_tokens_output``, ``estimated_cost_usd``, ``model``.

    Raises:
        UsageError: Nieznane zadanie.
        TaskError: Brak modelu lub model wyłączony.
    """
    db = connect_local(settings, autocommit=True)
    try:
        task, model = _load_task(db, id_task)
        max_attempts = int(settings.get("AI_MAX_ATTEMPTS", 3))
        row = (
            db.query_one(
                f"SELECT COUNT(*) AS items, COUNT(DISTINCT i.original_hash) AS distinct_texts FROM task_item i "
                f"WHERE i.id_task=%s AND {_ELIGIBLE}",
                (id_task, max_attempts),
            )
            or {}
        )
        characters = db.query_value(
            "SELECT COALESCE(SUM(c), 0) FROM (SELECT MAX(CHAR_LENGTH(i.text_original)) AS c FROM task_item i "
            f"WHERE i.id_task=%s AND {_ELIGIBLE} GROUP BY i.original_hash) t",
            (id_task, max_attempts),
        )
    finally:
        db.close()
    distinct = int(row.get("distinct_texts") or 0)
    characters = int(characters or 0)
    prompt = prompts.system_prompt(
        task.get("ai_action") or "correct",
        model.get("system_prompt"),
        task.get("source_lang"),
        task.get("target_lang"),
    )
    tokens_in = characters // 4 + distinct * (len(prompt) // 4 + 10)
    tokens_out = characters // 4 + distinct * OUTPUT_OVERHEAD_TOKENS
    cost = ai_client.compute_cost(tokens_in, 0, tokens_out, model)
    return {
        "items": int(row.get("items") or 0),
        "distinct_texts": distinct,
        "characters": characters,
        "estimated_tokens_input": tokens_in,
        "estimated_tokens_output": tokens_out,
        "estimated_cost_usd": float(cost),
        "model": model["model"],
    }


def tasks_with_pending_ai(db: MySQL, max_attempts: int = 3) -> list[int]:
    """Zwraca zadania (nie anulowane/archiwalne) z aktywnym modelem i pozycjami do przetworzenia.

    Args:
        db: Połączenie lokalne.
        max_attempts: ``AI_MAX_ATTEMPTS`` - pozycje z tyloma próbami się nie liczą.

    Returns:
        Lista ``id_task`` rosnąco.
    """
    rows = db.query(
        "SELECT t.id_task FROM task t JOIN ai_model m ON m.id_ai_model=t.id_ai_model AND m.status='active' "
        "WHERE t.status NOT IN ('cancelled','archived') "
        f"AND EXISTS (SELECT 1 FROM task_item i WHERE i.id_task=t.id_task AND {_ELIGIBLE}) ORDER BY t.id_task",
        (max_attempts,),
    )
    return [int(row["id_task"]) for row in rows]
