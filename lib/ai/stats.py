"""Statystyki runu AI: jeden kształt dla runu online, wysyłki batcha i odbioru batcha."""

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any


@dataclass
class AiStats:
    """Liczniki jednego runu AI; pieniądze jako ``Decimal`` przez cały run.

    Run online, wysyłka batcha i odbiór batcha wypełniają te same pola (każdy swoje); wynik dla
    ``run_log``, metadanych Dagstera i skryptów daje ``as_dict``.
    """

    mode: str = "online"
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    reused: int = 0
    discarded: int = 0
    released: int = 0
    given_up: int = 0
    claimed: int = 0
    items_total: int | None = None
    tokens_input: int = 0
    tokens_output: int = 0
    tokens_cached: int = 0
    cost_usd: Decimal = Decimal(0)
    requests_sent: int = 0
    packs_sent: int = 0
    items_in_packs: int = 0
    retried_alone: int = 0
    duration_s: float = 0.0
    items_per_s: float = 0.0
    stopped: str | None = None
    budget_reached: bool = False
    response_format: str | None = None
    lock_lost: bool = False
    model_slot_wait_s: float = 0.0
    operation_uuid: str | None = None
    outcome: str | None = None
    # Jakość: teksty z flagami zabezpieczeń w tym runie, stan pilota po runie, liczby zadania
    # (``learning.task_quality``: flagi, akceptacja recenzentów, liczby pilota).
    flagged: int = 0
    pilot: str | None = None
    quality: dict[str, Any] | None = None
    # Batch: wysyłka i odbiór.
    id_ai_batch: int | None = None
    batches_submitted: int = 0
    batches_recovered: int = 0
    batches_found: int = 0
    orphan_files_deleted: int = 0
    batch_cost_usd: Decimal | None = None
    batch_status: str | None = None
    provider_status: str | None = None

    def add(self, **values: Any) -> None:
        """Dodaje wartości do liczników o podanych nazwach."""
        for key, value in values.items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, Any]:
        """Słownik wyniku runu; kwoty jako ``float`` (JSON w ``run_log``, metadane Dagstera)."""
        data = asdict(self)
        for key in ("cost_usd", "batch_cost_usd"):
            if data[key] is not None:
                data[key] = float(data[key])
        return data
