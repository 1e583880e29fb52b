"""Wartości kluczy źródła: postać kanoniczna, ``remote_key`` (JSON) i warunki SQL po kluczu.

Wartość klucza w pakiecie to skalar dla klucza jednokolumnowego i krotka dla złożonego, zawsze
w postaci kanonicznej: liczby całkowite jako ``int``, tekst dokładnie tak, jak zwróciło źródło,
UUID małymi literami z myślnikami. ``remote_key`` to zwarty JSON listy wartości w kolejności
klucza (``[17,"pl"]``, ``["6f1c…"]``) - porównywany bajt po bajcie, nigdy przez sortowanie bazy.

Warunki SQL (strona keyset, dopasowanie listy kluczy) budowane są z identyfikatorów ``Target``
i znaków parametrów dialektu; wartości zawsze idą parametrami.
"""

import json
import uuid
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any

from lib.db_remote.catalog import Target
from lib.errors import RemoteError

Key = Any  # skalar (klucz jednokolumnowy) albo krotka (złożony)


def _canonical_value(value: Any, kind: str) -> Any:
    """Postać kanoniczna jednej wartości kolumny klucza."""
    if value is None:
        raise RemoteError("klucz wiersza źródła ma wartość NULL (kolumny klucza muszą być NOT NULL)")
    if kind == "int":
        return int(value)
    if kind == "uuid":
        text = str(value).lower()
        # PostgreSQL zwraca już postać kanoniczną; inne (wielkie litery MS SQL, nawiasy) przez uuid.UUID.
        if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
            return text
        return str(uuid.UUID(text))
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    return str(value)


def canonical_key(target: Target, values: Sequence[Any]) -> Key:
    """Zamienia wartości kolumn klucza (jak zwrócił sterownik) na wartość klucza.

    Args:
        target: Wynik ``resolve_target``.
        values: Wartości kolumn klucza w kolejności klucza.

    Returns:
        Skalar dla klucza jednokolumnowego albo krotka.
    """
    kinds = target.key_kinds
    if len(kinds) == 1:
        return _canonical_value(values[0], kinds[0])
    return tuple(_canonical_value(value, kind) for value, kind in zip(values, kinds, strict=True))


def key_values(key: Key) -> tuple[Any, ...]:
    """Wartości kolumn klucza jako krotka (skalar klucza jednokolumnowego w krotce jednoelementowej)."""
    return key if isinstance(key, tuple) else (key,)


def _encode_value(value: Any) -> str:
    """JSON jednej wartości: liczba albo napis (jak ``json.dumps(..., ensure_ascii=False)``)."""
    return str(value) if isinstance(value, int) else encode_basestring(value)


def encode_key(key: Key) -> str:
    """``remote_key``: zwarty JSON listy wartości klucza (bez ucieczki znaków spoza ASCII).

    Wynik jest identyczny z ``json.dumps(list(wartości), separators=(",", ":"), ensure_ascii=False)``,
    ale bez tworzenia kodera JSON dla każdego klucza (gorąca ścieżka skanu).
    """
    if isinstance(key, tuple):
        return "[" + ",".join(_encode_value(value) for value in key) + "]"
    return "[" + _encode_value(key) + "]"


def decode_key(remote_key: str) -> Key:
    """Odwrotność ``encode_key``: skalar dla listy jednoelementowej, inaczej krotka."""
    values = json.loads(remote_key)
    return values[0] if len(values) == 1 else tuple(values)


def after_key_sql(dialect: dict[str, Any], target: Target) -> str:
    """Warunek "klucz za ``after``" strony keyset w porządku źródła.

    Jedna kolumna: ``k > ?``. Kilka: porównanie wierszy ``(a, b) > (?, ?)`` tam, gdzie serwer
    używa go jako zakresu indeksu (PostgreSQL, SQLite); inaczej rozpisane tak, by pierwsza kolumna
    zawsze ograniczała zakres: ``a >= ? AND (a > ? OR (b > ?))`` (MySQL/MariaDB, MS SQL).

    Args:
        dialect: Wpis ``DIALECTS``.
        target: Wynik ``resolve_target``.

    Returns:
        Fragment ``WHERE``; parametry daje ``after_key_params``.
    """
    mark = dialect["placeholder"]
    columns = [column.quoted for column in target.key_columns]
    if len(columns) == 1:
        return f"{columns[0]} > {mark}"
    if dialect["row_values"]:
        return f"({', '.join(columns)}) > ({', '.join([mark] * len(columns))})"
    condition = f"{columns[-1]} > {mark}"
    for column in reversed(columns[:-1]):
        condition = f"{column} >= {mark} AND ({column} > {mark} OR ({condition}))"
    return condition


def after_key_params(dialect: dict[str, Any], target: Target, key: Key) -> tuple[Any, ...]:
    """Parametry ``after_key_sql`` dla klucza ``key``."""
    values = key_values(key)
    if len(values) == 1 or dialect["row_values"]:
        return values
    params: list[Any] = []
    for value in values[:-1]:
        params.extend((value, value))
    params.append(values[-1])
    return tuple(params)


def match_keys_sql(dialect: dict[str, Any], target: Target, count: int) -> str:
    """Warunek "klucz jest jednym z ``count`` podanych": ``k IN (...)`` albo ``(a = ? AND b = ?) OR ...``."""
    mark = dialect["placeholder"]
    columns = [column.quoted for column in target.key_columns]
    if len(columns) == 1:
        return f"{columns[0]} IN ({', '.join([mark] * count)})"
    one = "(" + " AND ".join(f"{column} = {mark}" for column in columns) + ")"
    return " OR ".join([one] * count)


def match_keys_params(keys: Sequence[Key]) -> tuple[Any, ...]:
    """Parametry ``match_keys_sql`` (wartości kolumn kolejnych kluczy)."""
    return tuple(value for key in keys for value in key_values(key))


def equal_key_sql(dialect: dict[str, Any], target: Target) -> str:
    """Warunek jednego wiersza: ``k = ?`` albo ``a = ? AND b = ?``."""
    mark = dialect["placeholder"]
    return " AND ".join(f"{column.quoted} = {mark}" for column in target.key_columns)


def keys_per_query(target: Target, limit: int) -> int:
    """Ile kluczy w jednym zapytaniu, by liczba parametrów nie przekroczyła ``limit`` kluczy jednokolumnowych.

    MS SQL przyjmuje najwyżej 2100 parametrów; klucz złożony zużywa ich kilka na wiersz.
    """
    return max(1, limit // len(target.key_columns))
