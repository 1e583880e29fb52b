"""Wspólny limit zapytań do modelu ze wszystkich runów AI (``AI_MODEL_CONCURRENCY``, ``lib/ai/model_cap.py``).

Dwa runy AI naraz (dwa zadania, ten sam model, każdy z ``AI_CONCURRENCY=6``) przez prawdziwe HTTP
do serwera testowego, który liczy zapytania w toku. Z limitem 4 serwer nigdy nie widzi więcej niż
4 naraz; bez limitu (0) ten sam układ daje więcej niż 4 - inaczej test nie mógłby niczego wykryć.
"""

import threading
import time

import pytest

from lib.ai import model_cap as model_slots
from lib.ai import run as ai_worker
from lib.db_local import connect_local
from tests import test_ai_worker as aiw
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.helpers import add_task

ITEMS = 30


def two_runs(settings, db, fake_openai, cap: int, pack_items: int = 1) -> tuple[list[dict], list[int]]:
    """Dwa zadania z tym samym modelem, dwa runy ``run_ai`` naraz; zwraca statystyki i id zadań."""
    first = aiw.make_task(db, fake_openai["base_url"])
    id_model = db.query_value("SELECT id_ai_model FROM task WHERE id_task=%s", (first,))
    second = add_task(db, 1, id_ai_model=id_model)
    for id_task in (first, second):
        aiw.add_items(db, id_task, [f"Zadanie {id_task}, tekst {n}: bląd." for n in range(ITEMS)])
    conf = aiw.conf(
        settings, AI_CONCURRENCY=6, AI_CLAIM_BATCH=6, AI_MODEL_CONCURRENCY=cap, AI_PACK_ITEMS=pack_items
    )
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def work(id_task: int) -> None:
        try:
            results[id_task] = ai_worker.run_ai(conf, id_task)
        except BaseException as exc:  # błąd wątku ma trafić do asercji testu
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return [results[first], results[second]], [first, second]


def overlap(fake_openai, ids: list[int]) -> bool:
    """Czy zapytania obu zadań przeplatały się w czasie (runy naprawdę szły równolegle)."""
    spans = []
    for id_task in ids:
        times = [
            r["time"]
            for r in fake_openai["requests"]
            if f"Zadanie {id_task}," in str(r["payload"]["messages"])
        ]
        spans.append((min(times), max(times)))
    return spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]


@pytest.mark.parametrize("pack_items", [1, 3], ids=["single", "packs"])
def test_two_ai_runs_never_exceed_model_cap(settings, db, fake_openai, pack_items):
    """Limit obejmuje pojedyncze zapytania i paczki (``AI_PACK_ITEMS`` > 1) tak samo."""
    fake_openai["latency"] = 0.15
    stats, ids = two_runs(settings, db, fake_openai, cap=4, pack_items=pack_items)
    if pack_items > 1:
        assert fake_openai["packs"] > 0
    assert [s["processed"] for s in stats] == [ITEMS, ITEMS]
    assert overlap(fake_openai, ids)
    print(f"\nlimit 4: najwięcej zapytań naraz {fake_openai['max_in_flight']}")
    assert fake_openai["max_in_flight"] <= 4, fake_openai["max_in_flight"]
    assert fake_openai["max_in_flight"] >= 3  # limit był osiągany, nie ominięty przez brak pracy
    assert sum(s["model_slot_wait_s"] for s in stats) > 0
    # Po runach żadne miejsce nie zostaje zajęte.
    model = db.query_one(
        "SELECT * FROM ai_model WHERE id_ai_model=(SELECT id_ai_model FROM task WHERE id_task=%s)", (ids[0],)
    )
    time.sleep(0.3)  # zamknięcie sesji po stronie serwera jest asynchroniczne
    assert model_slots.holders(db, model, 4) == 0


def test_without_cap_the_same_runs_go_above_it(settings, db, fake_openai):
    fake_openai["latency"] = 0.15
    stats, ids = two_runs(settings, db, fake_openai, cap=0)
    assert [s["processed"] for s in stats] == [ITEMS, ITEMS]
    print(f"\nbez limitu: najwięcej zapytań naraz {fake_openai['max_in_flight']}")
    assert fake_openai["max_in_flight"] > 4, fake_openai["max_in_flight"]


def test_slots_of_a_dead_session_are_free_and_abort_stops_waiting(settings):
    conf = settings.updated(AI_MODEL_CONCURRENCY=2)
    model = {"model": "m", "base_url": "http://slots.test/v1"}
    holder = model_slots.open_slots(conf, model)
    other = model_slots.open_slots(conf, model)
    observer = connect_local(settings, autocommit=True)
    try:
        assert {model_slots.acquire(holder), model_slots.acquire(holder)} == {0, 1}
        assert model_slots.holders(observer, model, 2) == 2
        started = time.monotonic()
        calls = []
        assert model_slots.acquire(other, abort=lambda: calls.append(1) or len(calls) > 3) is None
        assert time.monotonic() - started < 2
        # Proces runu zginął: sesje trzymające blokady znikają, miejsca są wolne.
        for session in list(holder.owner.values()):
            observer.execute("KILL %s", (session.query_value("SELECT CONNECTION_ID()"),))
        deadline = time.monotonic() + 5
        while model_slots.holders(observer, model, 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model_slots.acquire(other) in (0, 1)
    finally:
        model_slots.close_slots(holder)  # połączenia zabite powyżej: zamknięcie bez błędu
        model_slots.close_slots(other)
        observer.close()


def test_cap_zero_is_off(settings):
    slots = model_slots.open_slots(settings.updated(AI_MODEL_CONCURRENCY=0), {"model": "m", "base_url": None})
    assert model_slots.acquire(slots) == -1
    model_slots.release(slots, -1)


def test_one_run_never_counts_one_slot_twice_and_frees_each_after_its_request(settings):
    """Wątki jednego runu biorą miejsca naraz: każdy numer trzyma naraz co najwyżej jeden wątek
    (``GET_LOCK`` jest re-entrant w sesji - sesja trzyma najwyżej jedno miejsce), nigdy więcej niż
    limit, a po zapytaniach żadna blokada nie zostaje zajęta."""
    conf = settings.updated(AI_MODEL_CONCURRENCY=4)
    model = {"model": "m", "base_url": "http://sessions.test/v1"}
    slots = model_slots.open_slots(conf, model)
    observer = connect_local(settings, autocommit=True)
    in_use: set[int] = set()
    guard = threading.Lock()
    problems: list[str] = []

    def work() -> None:
        for _ in range(15):
            slot = model_slots.acquire(slots)
            with guard:
                if slot in in_use:
                    problems.append(f"miejsce {slot} trzymane dwa razy")
                in_use.add(slot)
                if len(in_use) > 4:
                    problems.append(f"{len(in_use)} miejsc naraz")
            time.sleep(0.002)
            with guard:
                in_use.discard(slot)
            model_slots.release(slots, slot)

    threads = [threading.Thread(target=work) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not problems, problems[:5]
        assert model_slots.holders(observer, model, 4) == 0
    finally:
        model_slots.close_slots(slots)
        observer.close()


def test_waiting_run_gets_a_slot_that_another_run_uses_without_pause(settings):
    """Run A pracuje bez przerwy na jedynym miejscu; run B czeka na nie - i je dostaje."""
    conf = settings.updated(AI_MODEL_CONCURRENCY=1)
    model = {"model": "m", "base_url": "http://fair.test/v1"}
    first = model_slots.open_slots(conf, model)
    second = model_slots.open_slots(conf, model)
    got: list[float] = []
    stop = threading.Event()
    problems: list[str] = []
    in_use = [0]
    guard = threading.Lock()

    def use(seconds: float) -> None:
        with guard:
            in_use[0] += 1
            if in_use[0] > 1:
                problems.append("dwa runy w jednym miejscu")
        time.sleep(seconds)
        with guard:
            in_use[0] -= 1

    def busy_run() -> None:
        while not stop.is_set():
            slot = model_slots.acquire(first, abort=stop.is_set)
            if slot is None:
                return
            use(0.01)
            model_slots.release(first, slot)

    worker = threading.Thread(target=busy_run)
    try:
        worker.start()
        time.sleep(0.05)
        started = time.monotonic()
        slot = model_slots.acquire(second, abort=lambda: time.monotonic() - started > 5)
        assert slot is not None, "drugi run nie dostał miejsca w 5 s"
        got.append(time.monotonic() - started)
        use(0.05)
        model_slots.release(second, slot)
        assert got[0] < 1.0, got  # bez kolejki GET_LOCK: 5 s (abort) i błąd
    finally:
        stop.set()
        worker.join(10)
        model_slots.close_slots(first)
        model_slots.close_slots(second)
    assert not problems, problems
