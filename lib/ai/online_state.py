"""Stan jednego runu AI online: grupy pozycji o tym samym tekście i wspólny stan wątków.

``Run`` dzielą wątek główny (``lib/ai/online.py``) i wątki puli (``lib/ai/online_jobs.py``);
każda funkcja dostaje go jawnie.
"""

import queue
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lib.ai import client as ai_client
from lib.ai import model_cap as model_slots
from lib.ai import packs as ai_pack
from lib.ai import prompts
from lib.ai.stats import AiStats
from lib.db_local import MySQL
from lib.db_utils import hash_function
from lib.load_config import Settings

# Najwięcej połączeń z bazą do zapisu wyników w jednym runie (niezależnie od AI_CONCURRENCY).
STORE_CONNECTIONS = 4


@dataclass
class Group:
    """Pozycje runu z tym samym tekstem (hash): pierwsza (lider) jest wysyłana, reszta czeka na wynik.

    Attributes:
        key: Hash tekstu (klucz w ``Run.groups``).
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
class Run:
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
    groups: dict[str, Group] = field(default_factory=dict)
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


def make_run(
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    client: Any,
    control: MySQL,
    operation: str,
    limit: int | None,
    stats: AiStats,
) -> Run:
    """Buduje stan runu z ustawień i wiersza zadania."""
    action = task.get("ai_action") or "correct"
    concurrency = max(1, settings.ai_concurrency)
    pack_items, pack_chars = ai_pack.pack_limits(settings, model)
    return Run(
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
        max_cost=Decimal(str(settings.ai_max_cost_usd or 0)),
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


Members = list[tuple[dict[str, Any], Group]]
