"""Silnik AI: korekta lub tłumaczenie pozycji zadania modelem zgodnym z OpenAI.

Przebieg runu (``run_ai``):

1. Run dostaje identyfikator operacji (UUID) i trzyma ``GET_LOCK('ailexia_ai_op_<uuid>')`` na
   osobnym połączeniu przez cały czas życia (rama ``lib.ai.operation.run_ai_operation``).
   Rezerwacja, której blokada jest wolna (właściciel nie żyje, np. ``kill -9``) albo starsza niż
   ``AI_CLAIM_TIMEOUT_S``, może być przejęta od razu.
2. Wątek główny rezerwuje małe partie (``AI_CLAIM_BATCH``) przez ``SELECT ... FOR UPDATE SKIP
   LOCKED`` w krótkiej transakcji (stempel ``claim_uuid`` + ``claimed_at``) i trzyma pulę
   pełną: w puli jest do ``2 * AI_CONCURRENCY`` zadań, więc wątki nie czekają na rezerwację.
3. Identyczne teksty (ten sam ``original_hash``) wysyłane są raz: gotowy wynik dla tego hasha
   w zadaniu (status processed/accepted/exported; ``rejected`` celowo nie - człowiek go odrzucił)
   jest używany ponownie, a duplikaty w runie czekają na wynik pierwszego (bez zajmowania wątku).
   Pozycje z ponownie użytym wynikiem mają koszt 0 i 0 tokenów.
4. Każdy wynik zapisywany jest od razu, we własnej transakcji (autocommit) na połączeniu
   pożyczonym z małej puli (``STORE_CONNECTIONS``), warunkowo: ``claim_uuid`` nasz
   i ``original_hash`` bez zmian; zapis ustawia ``operation_uuid`` = operacja runu (kto wytworzył
   wynik: prowadzi do ``run_log`` i runu Dagstera) i kończy rezerwację. Gdy sync zmienił tekst
   w międzyczasie, odpowiedź jest odrzucana, a pozycja czeka na kolejny run.
5. Błąd pozycji: ``ai_error``, ``ai_attempts + 1``, status bez zmian; rezerwacja trzymana do
   końca runu (ten run nie ponawia tej pozycji w kółko), potem zwalniana. ``AiError`` (401, 404)
   kończy run od razu: niezaczęte pozycje są zwalniane, wyjątek idzie wyżej.

Stan runu trzyma ``_Run``; funkcje modułu (rezerwacja, zadania puli wątków, zapisy) dostają go
jawnie. SQL pozycji jest w ``lib/task_item.py``. Status zadania (``task.status``) nie jest tu
zmieniany - robi to wywołujący na podstawie statystyk.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lib import faults, task_item
from lib.ai import client as ai_client
from lib.ai import cost as ai_cost
from lib.ai import learning, prompts
from lib.ai import model_cap as model_slots
from lib.ai import packs as ai_pack
from lib.ai.batch import ingest as ai_batch_ingest
from lib.ai.batch import submit as ai_batch
from lib.ai.operation import LOCK_PREFIX, LOCK_PREFIXES, run_ai_operation
from lib.ai.quality import guardrails
from lib.ai.stats import AiStats
from lib.db_local import MySQL, connect_local
from lib.db_utils import get_logger, hash_function, hash_text, mask_secrets
from lib.errors import AiError, AiItemError, TaskError, UsageError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.locks import operation_lock_held
from lib.runtime.progress import Progress
from lib.task import CLOSED_STATUSES, get_task

log = get_logger("ai")

# Ile paczek (po AI_PACK_ITEMS tekstów) rezerwuje naraz jedna rezerwacja (co najmniej; przy dużej
# współbieżności AI_CONCURRENCY / 2 - dwie rezerwacje zapełniają wszystkie miejsca na starcie runu,
# a wątek główny, który je robi, mniej rywalizuje o GIL z wątkami zapytań).
PACKS_PER_CLAIM = 4
# Co ile sekund wątek główny sprawdza, czy sesja z blokadą operacji żyje.
LOCK_CHECK_S = 0.5
# Najwięcej połączeń z bazą do zapisu wyników w jednym runie (niezależnie od AI_CONCURRENCY).
STORE_CONNECTIONS = 4
# Wątki puli ponad AI_CONCURRENCY: zapis wyniku (commit) idzie równolegle z kolejnym zapytaniem.
SPARE_THREADS = 2
# Narzut promptu systemowego i formatu JSON na jedno zapytanie (szacunek dla dry_run).
OUTPUT_OVERHEAD_TOKENS = 40


def _load_task(db: MySQL, id_task: int) -> tuple[dict[str, Any], dict[str, Any]]:
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


@dataclass
class _Group:
    """Pozycje runu z tym samym tekstem (hash): pierwsza (lider) jest wysyłana, reszta czeka na wynik.

    Attributes:
        key: Hash tekstu (klucz w ``_Run.groups``).
        status: ``running`` (lider pracuje) albo ``done``.
        followers: Duplikaty czekające na wynik lidera.
        text: Wynik (też gotowy wynik z wcześniejszej korekty tego tekstu w zadaniu).
        summary: ``change_summary`` wyniku.
        error: Błąd pozycji lidera (duplikaty dostają ten sam).
        abandoned: Lider nie dał wyniku ani błędu (zatrzymanie, błąd runu) - duplikaty są zwalniane.
        stored: Wynik grupy jest zapisany w bazie przy co najmniej jednej pozycji (późniejszy
            duplikat znajdzie go tam - ``_forget_stored_groups``).
    """

    key: str = ""
    status: str = "running"
    followers: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None
    summary: str | None = None
    error: str | None = None
    abandoned: bool = False
    stored: bool = False
    # Flagi zabezpieczeń wyniku (JSON albo None); ``flags_checked`` = już policzone dla ``text``.
    flags: str | None = None
    flags_checked: bool = False


@dataclass
class _Run:
    """Stan jednego runu AI współdzielony przez wątek główny i wątki puli."""

    settings: Settings
    task: dict[str, Any]
    model: dict[str, Any]
    client: Any
    control: MySQL
    operation: str
    limit: int | None
    stats: AiStats
    id_task: int = 0
    concurrency: int = 1
    claim_batch: int = 1
    max_attempts: int = 1
    claim_timeout_s: int = 0
    pack_items: int = 1
    pack_chars: int = 1
    max_cost: Decimal = Decimal(0)
    # Kursor rezerwacji (``task_item.claim_for_ai(after_id=...)``); 0 = od początku.
    claim_cursor: int = 0
    # Budżet: koszt zarezerwowany przez zapytania w drodze (szacunek z góry, ``lib/ai/cost.py``).
    reserved: Decimal = Decimal(0)
    # Sesja z blokadą operacji zginęła: nic nowego nie jest wysyłane (``_check_lock``).
    lock_lost: threading.Event = field(default_factory=threading.Event)
    # Zapytanie, które nie mieści się w budżecie obok zapytań w drodze, czeka na ich rozliczenie.
    budget: threading.Condition = field(init=False)
    hash_of: Any = None
    action: str = "correct"
    note: str | None = None
    # Wersja promptu zapisywana przy każdym wyniku (``prompts.prompt_version``).
    prompt_version: str | None = None
    capability: dict[str, Any] = field(default_factory=ai_client.make_capability_state)
    lock: threading.Lock = field(default_factory=threading.Lock)
    groups: dict[str, _Group] = field(default_factory=dict)
    # Klucze grup zamkniętych od ostatniej rezerwacji (``_forget_stored_groups`` sprawdza tylko je).
    finished_keys: list[str] = field(default_factory=list)
    fatal: list[BaseException] = field(default_factory=list)
    # Wyniki zapisuje mała pula połączeń (autocommit), pożyczanych na jedno polecenie. Połączenie
    # na wątek kosztowało na starcie ~0,3 s (32 handshake'i naraz po pierwszej fali odpowiedzi),
    # a zapis trwa ~1-2 ms, więc kilka połączeń wystarcza przy każdej współbieżności.
    connections: list[MySQL] = field(default_factory=list)
    idle_connections: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    store_slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(STORE_CONNECTIONS)
    )
    api_slots: threading.BoundedSemaphore | None = None
    # Wspólny limit zapytań do modelu ze wszystkich runów (AI_MODEL_CONCURRENCY, blokady GET_LOCK).
    request_slots: model_slots.ModelSlots = field(default_factory=lambda: model_slots.ModelSlots(names=[]))

    def __post_init__(self) -> None:
        self.budget = threading.Condition(self.lock)


def _make_run(
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    client: Any,
    control: MySQL,
    operation: str,
    limit: int | None,
    stats: AiStats,
) -> _Run:
    """Buduje stan runu z ustawień i wiersza zadania."""
    action = task.get("ai_action") or "correct"
    concurrency = max(1, settings.ai_concurrency)
    pack_items, pack_chars = ai_pack.pack_limits(settings, model)
    return _Run(
        settings=settings,
        task=task,
        model=model,
        client=client,
        control=control,
        operation=operation,
        limit=limit,
        stats=stats,
        id_task=int(task["id_task"]),
        concurrency=concurrency,
        claim_batch=max(1, settings.ai_claim_batch),
        max_attempts=settings.ai_max_attempts,
        claim_timeout_s=settings.ai_claim_timeout_s,
        pack_items=pack_items,
        pack_chars=pack_chars,
        max_cost=settings.ai_max_cost_usd,
        hash_of=hash_function(task.get("hash_method") or "sha256"),
        action=action,
        note=prompts.change_note(task),
        prompt_version=prompts.prompt_version(
            action, model, task.get("source_lang"), task.get("target_lang")
        ),
        # AI_CONCURRENCY ogranicza zapytania do modelu (semafor); kilka wątków więcej pozwala
        # zapisywać wynik (commit) równolegle z kolejnym zapytaniem.
        api_slots=threading.BoundedSemaphore(concurrency),
    )


# --- zapisy (wątki puli) ------------------------------------------------------------------


@contextmanager
def _store_db(run: _Run) -> Iterator[MySQL]:
    """Pożycza połączenie z puli zapisu runu (otwiera nowe, gdy puste i jest miejsce)."""
    with run.store_slots:
        try:
            db = run.idle_connections.get_nowait()
        except queue.Empty:
            db = connect_local(run.settings, autocommit=True)
            with run.lock:
                run.connections.append(db)
        try:
            yield db
        finally:
            run.idle_connections.put(db)


def _release(run: _Run, ids: list[int]) -> None:
    """Zwalnia rezerwacje pozycji przez połączenie z puli zapisu."""
    with _store_db(run) as db:
        task_item.release_claims(db, run.operation, ids)


def _add(run: _Run, **values: Any) -> None:
    """Dodaje wartości do statystyk runu (bezpiecznie wątkowo)."""
    with run.lock:
        run.stats.add(**values)


def _group_flags(run: _Run, original: str | None, group: _Group) -> str | None:
    """Flagi zabezpieczeń wyniku grupy (liczone raz na tekst; duplikaty dostają te same)."""
    if not group.flags_checked and group.text is not None:
        group.flags = guardrails.task_answer_flags(run.task, run.settings, original or "", group.text)
        group.flags_checked = True
        if group.flags:
            _add(run, flagged=1)
    return group.flags


def _store_ok(
    run: _Run,
    item: dict[str, Any],
    text: str,
    summary: str | None,
    tokens_input: int,
    tokens_output: int,
    cost: Decimal,
    *,
    group: _Group,
    reused: bool = False,
) -> None:
    """Zapisuje wynik jednej pozycji grupy ``group`` (``reused`` = wynik ponownie użyty, koszt 0)."""
    with _store_db(run) as db:
        changed = task_item.store_ai_result(
            db,
            [item["id_task_item"]],
            run.operation,
            item["original_hash"],
            text,
            hash_text(text, run.hash_of),
            summary,
            tokens_input,
            tokens_output,
            cost,
            prompt_version=run.prompt_version,
            flags=_group_flags(run, item["text_original"], group),
        )
    if changed:
        group.stored = True
        if reused:
            _add(run, reused=1, skipped=1)
        else:
            _add(run, processed=1)
        return
    # Tekst zmienił się w międzyczasie (sync): odpowiedź nieaktualna, pozycja zostaje na później.
    _release(run, [item["id_task_item"]])
    _add(run, discarded=1, skipped=1)


def _store_error(run: _Run, item: dict[str, Any], message: str) -> None:
    """Zapisuje błąd pozycji; rezerwacja zostaje do końca runu (ten run jej nie ponawia)."""
    with _store_db(run) as db:
        task_item.store_ai_error(db, item["id_task_item"], run.operation, item["original_hash"], message)
    _add(run, failed=1)


def _finish_group(run: _Run, group: _Group) -> list[dict[str, Any]]:
    """Zamyka grupę lidera i zabiera czekające duplikaty."""
    with run.lock:
        followers = group.followers
        group.followers = []
        group.status = "done"
        run.finished_keys.append(group.key)
    return followers


def _store_followers(run: _Run, followers: list[dict[str, Any]], group: _Group) -> None:
    """Zapisuje duplikaty jednym UPDATE (ten sam wynik, koszt 0)."""
    if not followers:
        return
    ids = [f["id_task_item"] for f in followers]
    if group.error is not None:
        for follower in followers:
            _store_error(run, follower, group.error)
        return
    if group.abandoned or group.text is None:
        _release(run, ids)
        return
    with _store_db(run) as db:
        changed = task_item.store_ai_result(
            db,
            ids,
            run.operation,
            followers[0]["original_hash"],
            group.text,
            hash_text(group.text, run.hash_of),
            group.summary,
            0,
            0,
            0,
            prompt_version=run.prompt_version,
            flags=_group_flags(run, followers[0]["text_original"], group),
        )
    if changed:
        group.stored = True
    _add(run, reused=changed, skipped=len(ids))
    if changed < len(ids):
        # Tekst części pozycji zmienił się w międzyczasie: odpowiedź nieaktualna.
        _add(run, discarded=len(ids) - changed)
        _release(run, ids)


# --- budżet i wysyłanie ----------------------------------------------------------------------


def _can_send(run: _Run) -> bool:
    """Czy wolno jeszcze wysłać zapytanie: brak błędu runu i blokada operacji na miejscu."""
    return not run.fatal and not run.lock_lost.is_set()


def _reserve(run: _Run, estimate: Decimal) -> bool:
    """Rezerwuje szacowany koszt zapytania w budżecie ``AI_MAX_COST_USD``; ``False`` = nie stać.

    Wydane + zarezerwowane + ten szacunek nie może przekroczyć limitu - zapytania w drodze
    nigdy razem nie przebiją budżetu (szacunek to górne ograniczenie, ``lib/ai/cost.py``).
    Gdy szacunek nie mieści się obok zapytań w drodze, wątek czeka na ich rozliczenie (zwykle
    kosztują dużo mniej niż szacunek); budżet jest wyczerpany dopiero, gdy nic nie jest w drodze,
    a zapytanie i tak się nie mieści.
    """
    if run.max_cost <= 0:
        return True
    with run.budget:
        while True:
            if run.stats.budget_reached or run.stats.stopped is not None or not _can_send(run):
                return False
            if run.stats.cost_usd + run.reserved + estimate <= run.max_cost:
                run.reserved += estimate
                return True
            if run.reserved <= 0:
                run.stats.budget_reached = True
                run.budget.notify_all()
                return False
            run.budget.wait(timeout=1.0)


def _settle(
    run: _Run,
    estimate: Decimal,
    tokens_input: int = 0,
    tokens_output: int = 0,
    tokens_cached: int = 0,
    cost: Decimal = Decimal(0),
) -> None:
    """Zamienia rezerwację zapytania na jego prawdziwy koszt (niewykorzystana część wraca)."""
    with run.budget:
        if run.max_cost > 0:
            run.reserved -= estimate
            run.budget.notify_all()
        run.stats.tokens_input += tokens_input
        run.stats.tokens_output += tokens_output
        run.stats.tokens_cached += tokens_cached
        run.stats.cost_usd += cost


def _output_limit(run: _Run, texts: list[str]) -> tuple[int, int | None]:
    """Ograniczenie odpowiedzi do szacunku i ``max_tokens`` do wysłania (tylko przy budżecie)."""
    bound, must_send = ai_cost.output_tokens_bound(run.model, texts)
    return bound, (bound if must_send and run.max_cost > 0 else None)


def _abandon(run: _Run, members: list[tuple[dict[str, Any], _Group]]) -> None:
    """Pozycje bez wyniku i bez błędu (zatrzymanie, budżet, błąd runu): rezerwacje zwolnione."""
    for _item, group in members:
        group.abandoned = group.text is None and group.error is None
    _release(run, [item["id_task_item"] for item, _group in members])


def _call_model(run: _Run, call: Callable[[], Any]) -> Any:
    """Wysyła jedno zapytanie do modelu w miejscu runu (``AI_CONCURRENCY``) i wspólnym (``AI_MODEL_CONCURRENCY``).

    Returns:
        Wynik ``call()`` albo ``None``, gdy run przestał móc wysyłać (401/404, utrata blokady),
        zanim wątek dostał miejsce - wtedy nic nie zostało wysłane.
    """
    assert run.api_slots is not None
    with run.api_slots:
        if not _can_send(run):
            return None
        with model_slots.model_slot(run.request_slots, abort=lambda: not _can_send(run)) as got:
            if not got:
                return None
            faults.checkpoint("ai.request")
            return call()


def _billed_call(
    run: _Run, members: "Members", estimate: Decimal, call: Callable[[], Any]
) -> tuple[Any, Decimal] | None:
    """Zapytanie do modelu pod rezerwacją kosztu ``estimate``, rozliczone rzeczywistym rachunkiem.

    Jedna rama dla pojedynczego tekstu i paczki: bez rezerwacji (budżet, zatrzymanie) albo bez
    wysłania pozycje ``members`` wracają do puli; błąd całego runu (``AiError``) trafia do
    ``run.fatal``; zapytanie bez odpowiedzi po ponowieniach (``AiItemError``) to błąd każdej pozycji.

    Returns:
        ``(wynik call, koszt USD)`` albo ``None``, gdy pozycje są już obsłużone.
    """
    if not _can_send(run) or not _reserve(run, estimate):
        _abandon(run, members)
        return None
    try:
        result = _call_model(run, call)
    except AiError as exc:
        _settle(run, estimate)
        with run.lock:
            run.fatal.append(exc)
        _abandon(run, members)
        return None
    except AiItemError as exc:
        _settle(run, estimate)
        for item, group in members:
            group.error = str(exc)
            _store_error(run, item, str(exc))
        return None
    except BaseException:
        _settle(run, estimate)
        raise
    if result is None:
        _settle(run, estimate)
        _abandon(run, members)
        return None
    cost = ai_cost.compute_cost(result.tokens_input, result.tokens_cached, result.tokens_output, run.model)
    _settle(run, estimate, result.tokens_input, result.tokens_output, result.tokens_cached, cost)
    return result, cost


def _send(run: _Run, item: dict[str, Any], group: _Group, carry: ai_cost.Share | None = None) -> None:
    """Wysyła jeden tekst do modelu i zapisuje wynik albo błąd pozycji.

    Args:
        run: Stan runu.
        item: Pozycja (lider grupy).
        group: Grupa tekstu.
        carry: Część rachunku paczki, z której pozycja wraca do ponownej próby (dolicza się do niej).
    """
    messages = prompts.build_messages(
        item["text_original"],
        run.action,
        run.model.get("system_prompt"),
        run.task.get("source_lang"),
        run.task.get("target_lang"),
    )
    bound, max_tokens = _output_limit(run, [item["text_original"]])
    # Zapytanie + jedna próba naprawy (ai_client.complete).
    estimate = ai_cost.reserve_estimate(run.model, messages, bound, requests=2)
    billed = _billed_call(
        run,
        [(item, group)],
        estimate,
        lambda: ai_client.complete(
            run.client,
            run.model,
            messages,
            run.settings,
            run.capability,
            item["text_original"],
            max_tokens=max_tokens,
        ),
    )
    if billed is None:
        return
    result, cost = billed
    tokens_input, tokens_output = result.tokens_input, result.tokens_output
    if carry is not None:
        tokens_input, tokens_output, cost = (
            tokens_input + carry.tokens_input,
            tokens_output + carry.tokens_output,
            cost + carry.cost,
        )
    group.text = result.text
    group.summary = prompts.build_change_summary(result.edits, run.note)
    faults.checkpoint("ai.store")
    _store_ok(run, item, result.text, group.summary, tokens_input, tokens_output, cost, group=group)


def _send_pack(run: _Run, members: list[tuple[dict[str, Any], _Group]]) -> None:
    """Wysyła paczkę tekstów jednym zapytaniem, zapisuje poprawne pozycje, złe ponawia pojedynczo.

    Rachunek zapytania dzielony jest na wszystkie pozycje paczki po znakach (``ai_cost.split_bill``);
    pozycja ponawiana sama dolicza swoją część do rachunku swojego zapytania. Poprawne pozycje
    zapisywane są w jednej transakcji.
    """
    texts = [item["text_original"] for item, _group in members]
    messages = ai_pack.build_pack_messages(
        texts,
        run.action,
        run.model.get("system_prompt"),
        run.task.get("source_lang"),
        run.task.get("target_lang"),
    )
    bound, max_tokens = _output_limit(run, texts)
    estimate = ai_cost.reserve_estimate(run.model, messages, bound)
    billed = _billed_call(
        run,
        members,
        estimate,
        lambda: ai_client.request_pack(
            run.client, run.model, messages, run.settings, run.capability, max_tokens=max_tokens
        ),
    )
    if billed is None:
        return
    raw, cost = billed
    _add(run, packs_sent=1, items_in_packs=len(members))
    answers, problems = ai_pack.parse_pack(raw.content, texts)
    shares = ai_cost.split_bill(
        raw.tokens_input, raw.tokens_cached, raw.tokens_output, cost, [len(t) for t in texts]
    )
    results, stored = [], []
    for position, (item, group) in enumerate(members):
        answer = answers.get(position)
        if answer is None:
            continue
        group.text = answer["text"]
        group.summary = prompts.build_change_summary(answer["edits"], run.note)
        share = shares[position]
        results.append(
            {
                "ids": [item["id_task_item"]],
                "original_hash": item["original_hash"],
                "text": group.text,
                "text_hash": hash_text(group.text, run.hash_of),
                "summary": group.summary,
                "tokens_input": share.tokens_input,
                "tokens_output": share.tokens_output,
                "cost": share.cost,
                "prompt_version": run.prompt_version,
                "flags": _group_flags(run, item["text_original"], group),
            }
        )
        stored.append((item, group))
    if results:
        faults.checkpoint("ai.store")
        with _store_db(run) as db:
            counts = task_item.store_ai_results(db, run.operation, results)
        faults.checkpoint("ai.pack_stored")
        stale = []
        for (item, group), count in zip(stored, counts, strict=True):
            if count:
                group.stored = True
            else:
                stale.append(item["id_task_item"])
        _add(run, processed=len(stored) - len(stale))
        if stale:
            # Tekst zmienił się w międzyczasie (sync): odpowiedź nieaktualna, pozycja na później.
            _release(run, stale)
            _add(run, discarded=len(stale), skipped=len(stale))
    for position in sorted(problems):
        item, group = members[position]
        log.info(
            "zadanie %s: pozycja %s z paczki (%s) - wysyłam ją samą",
            run.id_task,
            item["id_task_item"],
            problems[position],
        )
        _add(run, retried_alone=1)
        _send(run, item, group, carry=shares[position])


def _leader_job(run: _Run, item: dict[str, Any], group: _Group) -> None:
    """Zadanie puli dla pierwszej pozycji z danym tekstem; na końcu zapisuje czekające duplikaty."""
    try:
        if run.fatal:
            _abandon(run, [(item, group)])
        elif group.text is not None:
            _store_ok(run, item, group.text, group.summary, 0, 0, Decimal(0), reused=True, group=group)
        else:
            _send(run, item, group)
    except BaseException:
        group.abandoned = group.text is None and group.error is None
        raise
    finally:
        _store_followers(run, _finish_group(run, group), group)


def _pack_job(run: _Run, members: list[tuple[dict[str, Any], _Group]]) -> None:
    """Zadanie puli dla paczki liderów; na końcu zapisuje czekające duplikaty każdej grupy."""
    try:
        if run.fatal:
            _abandon(run, members)
        else:
            _send_pack(run, members)
    except BaseException:
        for _item, group in members:
            group.abandoned = group.text is None and group.error is None
        raise
    finally:
        for _item, group in members:
            _store_followers(run, _finish_group(run, group), group)


def _follower_job(run: _Run, item: dict[str, Any], group: _Group) -> None:
    """Zadanie puli dla duplikatu, którego lider już skończył."""
    _store_followers(run, [item], group)


# --- pętla główna -------------------------------------------------------------------------

Members = list[tuple[dict[str, Any], _Group]]


def _forget_stored_groups(run: _Run) -> None:
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
    run: _Run, pool: ThreadPoolExecutor, active: dict[Future, Members], finished: queue.SimpleQueue
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
                group = run.groups[key] = _Group(key=key, text=text, summary=summary)
                if text is None:
                    to_send.append((item, group))
                    continue
                job = _leader_job
            elif group.status == "running":
                group.followers.append(item)
                continue
            else:
                job = _follower_job
        _submit(pool, active, finished, [(item, group)], job, run, item, group)
    for pack in ai_pack.plan_packs(
        to_send, lambda m: m[0]["text_original"] or "", run.pack_items, run.pack_chars
    ):
        if len(pack) == 1:
            _submit(pool, active, finished, pack, _leader_job, run, *pack[0])
        else:
            _submit(pool, active, finished, pack, _pack_job, run, pack)
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


def _check_lock(run: _Run) -> None:
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


def _spare_threads(run: _Run) -> int:
    """Wątki puli ponad ``AI_CONCURRENCY``: zapisują wyniki, gdy inne czekają na model.

    Zapis paczki (jedna transakcja na kilkanaście pozycji) trwa pod obciążeniem kilkadziesiąt ms
    wobec ~200 ms zapytania, więc przy paczkach zapasowych wątków jest ``AI_CONCURRENCY / 2``.
    """
    return SPARE_THREADS if run.pack_items <= 1 else max(SPARE_THREADS, run.concurrency // 2)


def _run_loop(run: _Run, should_stop: StopCheck | None, progress: Progress | None) -> None:
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
            # Miejsca limitu modelu, których run nie użył przez IDLE_S, wracają do innych runów.
            model_slots.release_idle(run.request_slots)
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


def _cancel_queued(run: _Run, active: dict[Future, Members]) -> None:
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
    ``lib.ai_batch.run_submit`` (wysyłka batchy OpenAI); ``id_ai_batch`` zleca odbiór wyników
    zakończonego batcha (``lib.ai_batch_ingest.run_ingest``).

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
    started = time.monotonic()
    stats = AiStats()
    if id_ai_batch is not None:
        # Odbiór zapłaconych już wyników: bez warunków na status zadania i modelu (model batcha
        # mógł zostać wyłączony albo zmieniony po wysyłce; ceny i serwer bierze się z ai_batch).
        with connect_local(settings, autocommit=True) as db:
            task = get_task(db, id_task)
        return _after_run(
            settings, id_task, ai_batch_ingest.run_ingest(settings, task, id_ai_batch, run_id=run_id)
        )
    with connect_local(settings, autocommit=True) as db:
        task, model = _load_task(db, id_task)
        if task["status"] == learning.IN_LEARNING:
            # Faza nauki: nic nie jest wysyłane, dopóki człowiek nie oceni pilota (review.py pilot).
            log.info("zadanie %s: faza nauki (in_learning) - czeka na ocenę pilota, nic nie wysyłam", id_task)
            stats.pilot = stats.outcome = learning.IN_LEARNING
            return stats.as_dict()
        learning.start_pilot(db, task, model, settings)
    if ai_batch.is_batch_mode(task, model):
        submitted = ai_batch.run_submit(
            settings, task, model, run_id=run_id, should_stop=should_stop, limit=limit
        )
        return _after_run(settings, id_task, submitted)
    base_url, api_key = ai_client.resolve_endpoint(settings, model)
    # Klient (kontekst TLS: ~20-40 ms) powstaje w tle, gdy run łączy się z bazą i zakłada blokady.
    maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ai-{id_task}-client")
    client_ready = maker.submit(ai_client.make_client, base_url, api_key, settings.ai_timeout_s)
    maker.shutdown(wait=False)

    def body(control: MySQL, operation: str) -> AiStats:
        # READ COMMITTED: rezerwacja nie blokuje wierszy, których i tak nie bierze.
        control.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        control.commit()
        client = client_ready.result()
        log.info(
            "zadanie %s: start AI (operacja %s, model %s, współbieżność %s)",
            id_task,
            operation,
            model["model"],
            settings.ai_concurrency,
        )
        run = _make_run(settings, task, model, client, control, operation, limit, stats)
        # Przed pierwszą rezerwacją: liczone w tle obok niej bywało zaniżone o wyniki zapisane wcześniej.
        eligible = task_item.count_ai_eligible(control, id_task, run.max_attempts)
        stats.items_total = min(eligible, limit) if limit else eligible
        # Format wykryty przez wcześniejszy run: bez próby wstępnej, w której reszta wątków czeka.
        run.capability = ai_client.make_capability_state(remembered_format(control, model))
        control.commit()
        run.request_slots = model_slots.open_slots(settings, model)
        try:
            try:
                _run_loop(run, should_stop, progress)
            finally:
                stats.model_slot_wait_s = round(run.request_slots.wait_s, 3)
                model_slots.close_slots(run.request_slots)
                if run.capability["probed"]:
                    try:
                        control.rollback()
                        remember_format(control, model, run.capability["mode"])
                    except Exception as exc:  # tylko pamięć na później: run i tak się liczy
                        log.warning(
                            "zadanie %s: nie udało się zapamiętać formatu odpowiedzi: %s", id_task, exc
                        )
                try:
                    control.rollback()
                    task_item.release_claims(control, operation, id_task=id_task)
                except Exception as exc:  # zwolnienie jest też po śmierci blokady, więc tylko ostrzegamy
                    log.warning(
                        "zadanie %s: nie udało się zwolnić rezerwacji: %s",
                        id_task,
                        mask_secrets(str(exc), [api_key]),
                    )
        except BaseException:
            _finish_stats(control, settings, id_task, stats, started, operation, quiet=True)
            raise
        _finish_stats(control, settings, id_task, stats, started, operation)
        log.info(
            "zadanie %s: koniec AI - przetworzone %s, błędy %s, pominięte %s, tokeny %s, koszt %.4f USD, %s s%s",
            id_task,
            stats.processed,
            stats.failed,
            stats.skipped,
            stats.tokens_input + stats.tokens_output,
            stats.cost_usd,
            stats.duration_s,
            f", zatrzymany ({stats.stopped})" if stats.stopped else "",
        )
        return stats

    return _after_run(settings, id_task, run_ai_operation(settings, id_task, run_id, stats, body))


def _after_run(settings: dict[str, Any], id_task: int, result: dict[str, Any]) -> dict[str, Any]:
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
        task, model = _load_task(db, id_task)
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
