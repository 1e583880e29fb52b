"""Zadania puli wątków runu AI online: wysyłka do modelu (tekst, paczka), budżet i zapisy wyników.

Każdy wynik zapisywany jest od razu, we własnej transakcji, na połączeniu pożyczonym z małej puli
runu; SQL pozycji jest w ``lib/task_item.py``.
"""

import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from lib import faults, task_item
from lib.ai import client as ai_client
from lib.ai import cost as ai_cost
from lib.ai import model_cap as model_slots
from lib.ai import packs as ai_pack
from lib.ai import prompts
from lib.ai.online_state import Group, Members, Run
from lib.ai.quality import guardrails
from lib.db_local import MySQL, connect_local
from lib.db_utils import get_logger, hash_text
from lib.errors import AiError, AiItemError

log = get_logger("ai")

# --- zapisy (wątki puli) ------------------------------------------------------------------


@contextmanager
def _store_db(run: Run) -> Iterator[MySQL]:
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


def _release(run: Run, ids: list[int]) -> None:
    """Zwalnia rezerwacje pozycji przez połączenie z puli zapisu."""
    with _store_db(run) as db:
        task_item.release_claims(db, run.operation, ids)


def _add(run: Run, **values: Any) -> None:
    """Dodaje wartości do statystyk runu (bezpiecznie wątkowo)."""
    with run.lock:
        run.stats.add(**values)


def _group_flags(run: Run, original: str | None, group: Group) -> str | None:
    """Flagi zabezpieczeń wyniku grupy (liczone raz na tekst; duplikaty dostają te same)."""
    if not group.flags_checked and group.text is not None:
        group.flags = guardrails.task_answer_flags(run.task, run.settings, original or "", group.text)
        group.flags_checked = True
        if group.flags:
            _add(run, flagged=1)
    return group.flags


def _store_ok(
    run: Run,
    item: dict[str, Any],
    text: str,
    summary: str | None,
    tokens_input: int,
    tokens_output: int,
    cost: Decimal,
    *,
    group: Group,
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


def _store_error(run: Run, item: dict[str, Any], message: str) -> None:
    """Zapisuje błąd pozycji; rezerwacja zostaje do końca runu (ten run jej nie ponawia)."""
    with _store_db(run) as db:
        task_item.store_ai_error(db, item["id_task_item"], run.operation, item["original_hash"], message)
    _add(run, failed=1)


def _finish_group(run: Run, group: Group) -> list[dict[str, Any]]:
    """Zamyka grupę lidera i zabiera czekające duplikaty."""
    with run.lock:
        followers = group.followers
        group.followers = []
        group.status = "done"
        run.finished_keys.append(group.key)
    return followers


def _store_followers(run: Run, followers: list[dict[str, Any]], group: Group) -> None:
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


def _can_send(run: Run) -> bool:
    """Czy wolno jeszcze wysłać zapytanie: brak błędu runu i blokada operacji na miejscu."""
    return not run.fatal and not run.lock_lost.is_set()


def _reserve(run: Run, estimate: Decimal) -> bool:
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
    run: Run,
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


def _output_limit(run: Run, texts: list[str]) -> tuple[int, int | None]:
    """Ograniczenie odpowiedzi do szacunku i ``max_tokens`` do wysłania (tylko przy budżecie)."""
    bound, must_send = ai_cost.output_tokens_bound(run.model, texts)
    return bound, (bound if must_send and run.max_cost > 0 else None)


def _abandon(run: Run, members: list[tuple[dict[str, Any], Group]]) -> None:
    """Pozycje bez wyniku i bez błędu (zatrzymanie, budżet, błąd runu): rezerwacje zwolnione."""
    for _item, group in members:
        group.abandoned = group.text is None and group.error is None
    _release(run, [item["id_task_item"] for item, _group in members])


def _call_model(run: Run, call: Callable[[], Any]) -> Any:
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
    run: Run, members: Members, estimate: Decimal, call: Callable[[], Any]
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


def _send(run: Run, item: dict[str, Any], group: Group, carry: ai_cost.Share | None = None) -> None:
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


def _send_pack(run: Run, members: list[tuple[dict[str, Any], Group]]) -> None:
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


def leader_job(run: Run, item: dict[str, Any], group: Group) -> None:
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


def pack_job(run: Run, members: list[tuple[dict[str, Any], Group]]) -> None:
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


def follower_job(run: Run, item: dict[str, Any], group: Group) -> None:
    """Zadanie puli dla duplikatu, którego lider już skończył."""
    _store_followers(run, [item], group)
