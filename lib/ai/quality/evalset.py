"""Zestawy ewaluacyjne JSONL: odczyt i walidacja.

Jedna linia = jeden obiekt JSON::

    {"id": "…", "text": "…", "reference": "…"}
    {"id": "…", "text": "…", "references": ["…", "…"], "categories": ["…"]}
    {"id": "…", "text": "…", "reference": "…", "action": "translate",
     "source_lang": "pl", "target_lang": "en"}

Puste linie są pomijane. Każdy błąd to jedna linia ``plik:nr_linii: problem``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.errors import ConfigError

ACTIONS = ("correct", "translate")
_KEYS = {"id", "text", "reference", "references", "categories", "action", "source_lang", "target_lang"}


@dataclass(frozen=True)
class EvalItem:
    """Jedna pozycja zestawu (po walidacji)."""

    id: str
    text: str
    references: tuple[str, ...]
    categories: tuple[str, ...] = ()
    action: str = "correct"
    source_lang: str | None = None
    target_lang: str | None = None
    line: int = 0


def _problem(row: Any) -> str | None:
    """Zwraca opis pierwszego problemu linii albo ``None``, gdy linia jest poprawna."""
    if not isinstance(row, dict):
        return "linia nie jest obiektem JSON"
    unknown = sorted(set(row) - _KEYS)
    if unknown:
        return f"nieznane pole {unknown[0]!r} (dozwolone: {', '.join(sorted(_KEYS))})"
    if not isinstance(row.get("id"), str) or not row["id"].strip():
        return "brak pola 'id' (niepusty napis)"
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        return "brak pola 'text' (niepusty napis)"
    if ("reference" in row) == ("references" in row):
        return "potrzebne dokładnie jedno z pól 'reference' albo 'references'"
    refs = [row["reference"]] if "reference" in row else row["references"]
    if not isinstance(refs, list) or not refs:
        return "'references' musi być niepustą listą napisów"
    if not all(isinstance(ref, str) and ref.strip() for ref in refs):
        return "wzorzec musi być niepustym napisem"
    categories = row.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        return "'categories' musi być listą niepustych napisów"
    action = row.get("action", "correct")
    if action not in ACTIONS:
        return f"nieznana akcja {action!r} (dozwolone: {', '.join(ACTIONS)})"
    for key in ("source_lang", "target_lang"):
        if key in row and (not isinstance(row[key], str) or not row[key].strip()):
            return f"'{key}' musi być niepustym napisem"
    if action == "translate" and "target_lang" not in row:
        return "tłumaczenie wymaga pola 'target_lang'"
    if action == "correct" and ("source_lang" in row or "target_lang" in row):
        return "'source_lang'/'target_lang' dotyczą tylko akcji 'translate'"
    return None


def parse_line(raw: str, line: int) -> EvalItem:
    """Zamienia jedną linię JSONL w ``EvalItem``.

    Raises:
        ValueError: Z opisem problemu (bez nazwy pliku i numeru linii).
    """
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"niepoprawny JSON ({exc.msg}, kolumna {exc.colno})") from None
    problem = _problem(row)
    if problem:
        raise ValueError(problem)
    refs = [row["reference"]] if "reference" in row else row["references"]
    return EvalItem(
        id=row["id"],
        text=row["text"],
        references=tuple(refs),
        categories=tuple(row.get("categories", [])),
        action=row.get("action", "correct"),
        source_lang=row.get("source_lang"),
        target_lang=row.get("target_lang"),
        line=line,
    )


def load_eval_set(path: str | Path) -> list[EvalItem]:
    """Czyta i sprawdza zestaw JSONL.

    Args:
        path: Ścieżka pliku ``.jsonl`` (UTF-8).

    Returns:
        Pozycje w kolejności pliku.

    Raises:
        ConfigError: Jedna linia ``plik:nr: problem`` przy pierwszym błędzie (brak pliku, zły
            JSON, brakujące lub złe pole, powtórzone ``id``, pusty zestaw).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path}: nie ma takiego pliku") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: plik nie jest w UTF-8 (bajt {exc.start})") from None
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = parse_line(raw, number)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
        if item.id in seen:
            raise ConfigError(
                f"{path}:{number}: powtórzone id {item.id!r} (pierwsze w linii {seen[item.id]})"
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise ConfigError(f"{path}: zestaw jest pusty")
    return items
