"""Wypisywanie wyników polecenia ``ailexia``: tabela tekstowa, pary klucz-wartość albo JSON."""

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any


def _plain(value: Any) -> Any:
    """Wartość do JSON: daty jako tekst ISO, Decimal jako liczba."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def print_json(data: Any) -> None:
    """Wypisuje dane jako JSON (UTF-8, wcięcie 2)."""
    print(json.dumps(data, ensure_ascii=False, indent=2, default=_plain))


def cell(value: Any) -> str:
    """Tekst komórki tabeli: pusty dla ``None``, ``tak``/``nie`` dla wartości logicznych."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "tak" if value else "nie"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], empty: str) -> None:
    """Wypisuje wiersze jako tabelę wyrównaną spacjami.

    Args:
        rows: Wiersze (słowniki).
        columns: Pary ``(nagłówek, klucz)``; ostatnia kolumna nie jest dopełniana.
        empty: Komunikat, gdy wierszy nie ma.
    """
    if not rows:
        print(empty)
        return
    table = [[title for title, _key in columns]] + [
        [cell(row.get(key)) for _title, key in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())


def print_fields(data: dict[str, Any], labels: Sequence[tuple[str, str]]) -> None:
    """Wypisuje wybrane pola jako ``etykieta: wartość`` (pomija pola ``None``)."""
    width = max(len(label) for label, _key in labels)
    for label, key in labels:
        if data.get(key) is not None:
            print(f"{(label + ':').ljust(width + 1)} {cell(data[key])}")
