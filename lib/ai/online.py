"""Run AI online: korekta lub tłumaczenie pozycji zadania modelem zgodnym z OpenAI.

Przebieg runu (``run_online``, wołany przez dyspozytor ``lib.ai.run.run_ai``):

1. Run dostaje identyfikator operacji (UUID) i trzyma blokadę operacji na osobnym połączeniu
   przez cały czas życia (rama ``lib.ai.operation.run_ai_operation``). Rezerwacja, której
   blokada jest wolna (właściciel nie żyje, np. ``kill -9``) albo starsza niż
   ``AI_CLAIM_TIMEOUT_S``, może być przejęta od razu.
2. Wątek główny rezerwuje małe partie (``AI_CLAIM_BATCH``) przez ``SELECT ... FOR UPDATE SKIP
   LOCKED`` w krótkiej transakcji (stempel ``claim_uuid`` + ``claimed_at``) i trzyma pulę
   pełną: w puli jest do ``2 * AI_CONCURRENCY`` zadań, więc wątki nie czekają na rezerwację.
3. Identyczne teksty (ten sam ``original_hash``) wysyłane są raz: gotowy wynik dla tego hasha
   w zadaniu (status processed/accepted/exported; ``rejected`` celowo nie - człowiek go odrzucił)
   jest używany ponownie, a duplikaty w runie czekają na wynik pierwszego (bez zajmowania wątku).
   Pozycje z ponownie użytym wynikiem mają koszt 0 i 0 tokenów.
4. Każdy wynik zapisywany jest od razu (``lib/ai/online_jobs.py``), warunkowo: ``claim_uuid``
   nasz i ``original_hash`` bez zmian; zapis ustawia ``operation_uuid`` = operacja runu (kto
   wytworzył wynik: prowadzi do ``run_log`` i runu Dagstera) i kończy rezerwację. Gdy sync
   zmienił tekst w międzyczasie, odpowiedź jest odrzucana, a pozycja czeka na kolejny run.
5. Błąd pozycji: ``ai_error``, ``ai_attempts + 1``, status bez zmian; rezerwacja trzymana do
   końca runu (ten run nie ponawia tej pozycji w kółko), potem zwalniana. ``AiError`` (401, 404)
   kończy run od razu: niezaczęte pozycje są zwalniane, wyjątek idzie wyżej.

Stan runu trzyma ``lib.ai.online_state.Run``; tu są pętla rezerwacji i rozdziału pracy oraz
początek i koniec runu. Status zadania (``task.status``) nie jest tu zmieniany - robi to
wywołujący na podstawie statystyk.
"""

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from lib import task_item
from lib.ai import client as ai_client
from lib.ai import model_cap as model_slots
from lib.ai import packs as ai_pack
from lib.ai.online_jobs import follower_job, leader_job, pack_job
from lib.ai.online_state import Group, Members, Run, make_run
from lib.ai.operation import LOCK_PREFIX, LOCK_PREFIXES, run_ai_operation
from lib.ai.stats import AiStats
from lib.db_local import MySQL
from lib.db_utils import get_logger, mask_secrets
from lib.errors import TaskError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.locks import operation_lock_held
from lib.runtime.progress import Progress

log = get_logger("ai")

# Ile paczek (po AI_PACK_ITEMS tekstów) rezerwuje naraz jedna rezerwacja (co najmniej; przy dużej
# współbieżności AI_CONCURRENCY / 2 - dwie rezerwacje zapełniają wszystkie miejsca na starcie runu,
# a wątek główny, który je robi, mniej rywalizuje o GIL z wątkami zapytań).
PACKS_PER_CLAIM = 4
# Co ile sekund wątek główny sprawdza, czy sesja z blokadą operacji żyje.
LOCK_CHECK_S = 0.5
# Wątki puli ponad AI_CONCURRENCY: zapis wyniku (commit) idzie równolegle z kolejnym zapytaniem.
SPARE_THREADS = 2


def remembered_format(db: MySQL, model_row: dict[str, Any]) -> str | None:
    """Format odpowiedzi wykryty wcześniej dla serwera i modelu (``ai_model.response_format``).

    Format jest cechą serwera i modelu, nie wiersza ``ai_model``: liczy się każdy wiersz z tym samym
    ``base_url`` i ``model`` (jak limit ``AI_MODEL_CONCURRENCY``), własny wiersz najpierw.

    Returns:
        ``json_schema``, ``json_object``, ``text`` albo ``None`` (nieznany - run go wykryje).
    """
    return db.query_value(
        "SELECT response_format FROM ai_model WHERE model=%s AND base_url <=> %s AND response_format IS NOT NULL "
        "ORDER BY id_ai_model=%s DESC, id_ai_model DESC LIMIT 1",
        (model_row["model"], model_row.get("base_url"), model_row["id_ai_model"]),
    )


def remember_format(db: MySQL, model_row: dict[str, Any], mode: str) -> None:
    """Zapisuje format wykryty przez run we wszystkich wierszach ``ai_model`` tego serwera i modelu."""
    db.execute(
        "UPDATE ai_model SET response_format=%s WHERE model=%s AND base_url <=> %s",
        (mode, model_row["model"], model_row.get("base_url")),
    )
    db.commit()


# --- pętla główna -------------------------------------------------------------------------


def _forget_stored_groups(run: Run) -> None:
    """Usuwa z pamięci runu grupy zakończone, których wynik jest zapisany w bazie.

    Późniejszy duplikat takiej grupy znajdzie wynik w bazie (``task_item.stored_results`` w
    ``_claim_more`` idzie po tym usunięciu, a wynik był zapisany, zanim grupa została zamknięta),
    więc nadal nie idzie drugi raz do modelu. Zostają grupy w toku, z błędem, porzucone i te,
    których wyniku nie zapisano (tekst zmienił się w międzyczasie) - ich duplikaty dostają ten sam
    los co dotąd. Bez tego run trzymał w pamięci grupę z poprawionym tekstem i podsumowaniem dla
    każdego różnego tekstu zadania: pamięć rosła z wielkością zadania. Sprawdzane są tylko grupy
    zamknięte od poprzedniego wywołania (``finished_keys``), nie wszystkie grupy runu.
    """
    with run.lock:
        keys, run.finished_keys = run.finished_keys, []
        for key in keys:
            group = run.groups.get(key)
            if group is not None and group.status == "done" and group.stored:
                del run.groups[key]


def _claim_more(
    run: Run, pool: ThreadPoolExecutor, active: dict[Future, Members], finished: queue.SimpleQueue
) -> bool:
    """Rezerwuje kolejną partię i oddaje pracę do puli; ``False``, gdy nie ma już pozycji.

    Teksty do wysłania są dzielone na paczki (``ai_pack.plan_packs``); paczka z jednym tekstem
    to zwykłe zadanie lidera.
    """
    stats = run.stats
    # Przy paczkach jedna rezerwacja wystarcza na kilka paczek: wątek główny robi jedno zapytanie
    # rezerwacji na PACKS_PER_CLAIM zapytań do modelu, a nie na każde.
    packs = max(PACKS_PER_CLAIM, run.concurrency // 2)
    batch = run.claim_batch if run.pack_items <= 1 else max(run.claim_batch, run.pack_items * packs)
    count = batch if run.limit is None else min(batch, run.limit - stats.claimed)
    _forget_stored_groups(run)
    items = task_item.claim_for_ai(
        run.control,
        run.id_task,
        run.operation,
        count,
        run.max_attempts,
        run.claim_timeout_s,
        LOCK_PREFIXES,
        after_id=run.claim_cursor,
    )
    if not items and run.claim_cursor:
        # Koniec przejścia kursorem: jeszcze raz od początku (pozycje zwolnione przez inne runy,
        # wcześniejsze "outdated").
        run.claim_cursor = 0
        return True
    if not items:
        return False
    # Pozycje pominięte za kursorem (zwolnione, zablokowane przez inny run) bierze przejście od 0.
    run.claim_cursor = max(i["id_task_item"] for i in items)
    stats.claimed += len(items)
    reusable = task_item.stored_results(run.control, run.id_task, sorted({i["original_hash"] for i in items}))
    to_send: Members = []
    for item in items:
        key = item["original_hash"]
        with run.lock:
            group = run.groups.get(key)
            if group is None:
                text, summary = reusable.get(key, (None, None))
                group = run.groups[key] = Group(key=key, text=text, summary=summary)
                if text is None:
                    to_send.append((item, group))
                    continue
                job = leader_job
            elif group.status == "running":
                group.followers.append(item)
                continue
            else:
                job = follower_job
        _submit(pool, active, finished, [(item, group)], job, run, item, group)
    for pack in ai_pack.plan_packs(
        to_send, lambda m: m[0]["text_original"] or "", run.pack_items, run.pack_chars
    ):
        if len(pack) == 1:
            _submit(pool, active, finished, pack, leader_job, run, *pack[0])
        else:
            _submit(pool, active, finished, pack, pack_job, run, pack)
    return True


def _submit(
    pool: ThreadPoolExecutor,
    active: dict[Future, Members],
    finished: queue.SimpleQueue,
    members: Members,
    job: Callable[..., None],
    *args: Any,
) -> None:
    """Oddaje zadanie do puli i zapamiętuje jego pozycje (do anulowania)."""
    future = pool.submit(job, *args)
    active[future] = members
    future.add_done_callback(finished.put)


def _check_lock(run: Run) -> None:
    """Sprawdza, czy sesja z blokadą operacji żyje; gdy nie - run przestaje wysyłać.

    Druga blokada (``LIVENESS_PREFIX``, sesja ``control``) nadal chroni rezerwacje, więc żaden
    inny run ich nie przejmie, dopóki ten run nie skończy zapytań w drodze i ich nie zwolni.
    """
    if run.lock_lost.is_set():
        return
    if operation_lock_held(run.control, LOCK_PREFIX, run.operation):
        run.control.commit()
        return
    run.control.commit()
    run.lock_lost.set()
    run.stats.lock_lost = True
    log.error(
        "zadanie %s: sesja z blokadą operacji AI %s zniknęła (np. KILL) - run nie wysyła już nic, "
        "kończy zapytania w drodze i zwalnia pozycje",
        run.id_task,
        run.operation,
    )


def _spare_threads(run: Run) -> int:
    """Wątki puli ponad ``AI_CONCURRENCY``: zapisują wyniki, gdy inne czekają na model.

    Zapis paczki (jedna transakcja na kilkanaście pozycji) trwa pod obciążeniem kilkadziesiąt ms
    wobec ~200 ms zapytania, więc przy paczkach zapasowych wątków jest ``AI_CONCURRENCY / 2``.
    """
    return SPARE_THREADS if run.pack_items <= 1 else max(SPARE_THREADS, run.concurrency // 2)


def _run_loop(run: Run, should_stop: StopCheck | None, progress: Progress | None) -> None:
    """Pętla rezerwacji i rozdziału pracy; wraca po wyczerpaniu pozycji, zatrzymaniu albo błędzie."""
    stats = run.stats
    pool = ThreadPoolExecutor(
        max_workers=run.concurrency + _spare_threads(run), thread_name_prefix=f"ai-{run.id_task}"
    )
    active: dict[Future, Members] = {}
    # Zakończone zadania puli trafiają do kolejki (callback), więc pętla budzi się w O(1);
    # ``wait(FIRST_COMPLETED)`` na kilkudziesięciu futures kosztował ~10% czasu GIL przy 32 wątkach.
    finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
    exhausted = False
    budget_logged = False
    checked = time.monotonic()
    try:
        while True:
            if run.fatal:
                break
            if time.monotonic() - checked >= LOCK_CHECK_S:
                checked = time.monotonic()
                _check_lock(run)
            if stats.stopped is None and should_stop is not None:
                stats.stopped = should_stop()
            if run.max_cost > 0 and not stats.budget_reached and stats.cost_usd >= run.max_cost:
                stats.budget_reached = True
            if stats.budget_reached and not budget_logged:
                budget_logged = True
                log.info(
                    "zadanie %s: osiągnięto limit kosztu %s USD (wydane %s, kolejne zapytanie by go przekroczyło) "
                    "- koniec rezerwacji",
                    run.id_task,
                    run.max_cost,
                    stats.cost_usd,
                )
            halted = stats.stopped is not None or stats.budget_reached or run.lock_lost.is_set()
            can_claim = not exhausted and not halted and (run.limit is None or stats.claimed < run.limit)
            if halted:
                # Niezaczęte pozycje wracają do puli zadania; zaczęte kończą się normalnie.
                _cancel_queued(run, active)
            if can_claim and len(active) < 2 * run.concurrency + _spare_threads(run):
                exhausted = not _claim_more(run, pool, active, finished)
                continue
            if not active:
                break
            done = _drain(finished, timeout=0.25)
            for future in done:
                if active.pop(future, None) is None:
                    continue  # anulowane wcześniej przez _cancel_queued
                if not future.cancelled() and future.exception() is not None:
                    with run.lock:
                        run.fatal.append(future.exception())
            if done and progress is not None:
                with run.lock:
                    snapshot = dict(stats.as_dict(), requests_sent=run.capability["requests"])
                progress(snapshot)
        if run.fatal:
            _cancel_queued(run, active)
            wait(list(active))
            raise run.fatal[0]
        if run.lock_lost.is_set():
            raise TaskError(
                f"zadanie {run.id_task}: utracono sesję z blokadą operacji AI {run.operation} (np. KILL sesji); "
                "zapytania w drodze zapisane, pozostałe pozycje zwolnione - następny run je przetworzy"
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stats.requests_sent = run.capability["requests"]
        stats.response_format = run.capability["mode"]
        for db in run.connections:
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


def _cancel_queued(run: Run, active: dict[Future, Members]) -> None:
    """Anuluje niezaczęte zadania puli i zwalnia ich pozycje (z czekającymi duplikatami)."""
    released: list[int] = []
    for future, members in list(active.items()):
        if future.cancel():
            active.pop(future)
            for item, group in members:
                released.append(item["id_task_item"])
                with run.lock:
                    if group.status == "running" and group.text is None:
                        released.extend(f["id_task_item"] for f in group.followers)
                        group.followers = []
                        group.abandoned = True
    if released:
        task_item.release_claims(run.control, run.operation, released)


def _finish_stats(
    db: MySQL,
    settings: Settings,
    id_task: int,
    stats: AiStats,
    started: float,
    operation: str,
    quiet: bool = False,
) -> None:
    """Uzupełnia statystyki: czas, tempo, liczba pozycji porzuconych (AI_MAX_ATTEMPTS)."""
    stats.duration_s = round(time.monotonic() - started, 3)
    done = stats.processed + stats.reused
    stats.items_per_s = round(done / stats.duration_s, 2) if stats.duration_s > 0 else 0.0
    stats.operation_uuid = operation
    try:
        db.rollback()
        stats.given_up = task_item.count_given_up(db, id_task, settings.ai_max_attempts)
        db.rollback()
    except Exception:
        if not quiet:
            raise


def run_online(
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Przetwarza modelem AI pozycje pending/outdated zadania zapytaniami online.

    Args:
        settings: Ustawienia (``AI_*``, lokalna baza).
        task: Wiersz zadania (sprawdzony przez ``lib.ai.run.load_task``).
        model: Wiersz ``ai_model`` zadania.
        run_id: Identyfikator runu Dagstera (do ``run_log``).
        should_stop: Funkcja zwracająca powód zatrzymania albo ``None``; wołana przed każdą rezerwacją.
        progress: Wołana po zakończeniu kolejnych pozycji ze statystykami do tej chwili.
        limit: Najwyżej tyle pozycji w tym runie (``None`` = wszystkie).

    Returns:
        Statystyki runu (``AiStats.as_dict``).

    Raises:
        AiError: Brak klucza API, klucz odrzucony (401), nieznany model (404) - run przerwany,
            rezerwacje zwolnione.
    """
    started = time.monotonic()
    stats = AiStats()
    base_url, api_key = ai_client.resolve_endpoint(settings, model)
    # Klient (kontekst TLS: ~20-40 ms) powstaje w tle, gdy run łączy się z bazą i zakłada blokady.
    maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ai-{task['id_task']}-client")
    client_ready = maker.submit(ai_client.make_client, base_url, api_key, settings.ai_timeout_s)
    maker.shutdown(wait=False)

    def body(control: MySQL, operation: str) -> AiStats:
        run = _start_run(settings, task, model, client_ready.result(), control, operation, limit, stats)
        try:
            try:
                _run_loop(run, should_stop, progress)
            finally:
                _close_run(run, api_key)
        except BaseException:
            _finish_stats(control, settings, run.id_task, stats, started, operation, quiet=True)
            raise
        _finish_stats(control, settings, run.id_task, stats, started, operation)
        _log_end(run)
        return stats

    return run_ai_operation(settings, int(task["id_task"]), run_id, stats, body)


def _start_run(
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    client: Any,
    control: MySQL,
    operation: str,
    limit: int | None,
    stats: AiStats,
) -> Run:
    """Przygotowuje run w ramie operacji: sesja ``control``, liczba pozycji, format, miejsca modelu."""
    # READ COMMITTED: rezerwacja nie blokuje wierszy, których i tak nie bierze.
    control.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    control.commit()
    log.info(
        "zadanie %s: start AI (operacja %s, model %s, współbieżność %s)",
        task["id_task"],
        operation,
        model["model"],
        settings.ai_concurrency,
    )
    run = make_run(settings, task, model, client, control, operation, limit, stats)
    # Przed pierwszą rezerwacją: liczone w tle obok niej bywało zaniżone o wyniki zapisane wcześniej.
    eligible = task_item.count_ai_eligible(control, run.id_task, run.max_attempts)
    stats.items_total = min(eligible, limit) if limit else eligible
    # Format wykryty przez wcześniejszy run: bez próby wstępnej, w której reszta wątków czeka.
    run.capability = ai_client.make_capability_state(remembered_format(control, model))
    control.commit()
    run.request_slots = model_slots.open_slots(settings, model)
    return run


def _close_run(run: Run, api_key: str) -> None:
    """Koniec runu (też po błędzie): miejsca modelu, zapamiętany format, zwolnienie rezerwacji."""
    control, id_task = run.control, run.id_task
    run.stats.model_slot_wait_s = round(run.request_slots.wait_s, 3)
    model_slots.close_slots(run.request_slots)
    if run.capability["probed"]:
        try:
            control.rollback()
            remember_format(control, run.model, run.capability["mode"])
        except Exception as exc:  # tylko pamięć na później: run i tak się liczy
            log.warning("zadanie %s: nie udało się zapamiętać formatu odpowiedzi: %s", id_task, exc)
    try:
        control.rollback()
        task_item.release_claims(control, run.operation, id_task=id_task)
    except Exception as exc:  # zwolnienie jest też po śmierci blokady, więc tylko ostrzegamy
        log.warning(
            "zadanie %s: nie udało się zwolnić rezerwacji: %s",
            id_task,
            mask_secrets(str(exc), [api_key]),
        )


def _log_end(run: Run) -> None:
    """Zapisuje w logu podsumowanie runu."""
    stats = run.stats
    log.info(
        "zadanie %s: koniec AI - przetworzone %s, błędy %s, pominięte %s, tokeny %s, koszt %.4f USD, %s s%s",
        run.id_task,
        stats.processed,
        stats.failed,
        stats.skipped,
        stats.tokens_input + stats.tokens_output,
        stats.cost_usd,
        stats.duration_s,
        f", zatrzymany ({stats.stopped})" if stats.stopped else "",
    )
