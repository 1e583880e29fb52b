"""Znacznik operacji synchronizacji (``task.resume_marker``): jedno miejsce, które go składa i czyta.

Postacie: ``scan:init:<uuid>`` (zadanie bez pozycji na starcie operacji), ``scan:diff:<uuid>``,
``scan:rerank:<base>:<uuid>`` (nowa numeracja porządku źródła od ``base``), ``verify:<uuid>``
(skan zatwierdzony, została weryfikacja); pusty - brak operacji w toku.
"""

import uuid
from typing import NamedTuple


class Marker(NamedTuple):
    """Odczytany znacznik.

    Attributes:
        stage: ``scan``, ``verify`` albo ``""`` (brak operacji w toku).
        kind: Dla ``scan``: ``init``, ``diff`` albo ``rerank``; inaczej ``""``.
        base: Początek nowej numeracji (tylko ``rerank``).
    """

    stage: str
    kind: str
    base: int | None


def parse(marker: str | None) -> Marker:
    """Rozkłada ``task.resume_marker`` na etap, rodzaj skanu i początek numeracji."""
    parts = (marker or "").split(":")
    if parts[0] == "scan" and len(parts) >= 3:
        base = int(parts[2]) if parts[1] == "rerank" else None
        return Marker("scan", parts[1], base)
    if parts[0] == "verify":
        return Marker("verify", "", None)
    return Marker("", "", None)


def scan(initial: bool) -> str:
    """Znacznik nowej operacji skanu (``init``: zadanie nie ma jeszcze pozycji)."""
    return f"scan:{'init' if initial else 'diff'}:{uuid.uuid4()}"


def rerank(base: int) -> str:
    """Znacznik skanu z nową numeracją porządku źródła od ``base``."""
    return f"scan:rerank:{base}:{uuid.uuid4()}"


def verify() -> str:
    """Znacznik zatwierdzonego skanu: została weryfikacja."""
    return f"verify:{uuid.uuid4()}"
