"""Zawężanie różnic resyncu: zakres kluczy, który się różni, dzielony aż do wierszy, które się zmieniły.

Zakres kluczy ``(low, high]``, którego odcisk w źródle różni się od odcisku pozycji lokalnych, jest
dzielony na ``SPLIT`` części po równej liczbie pozycji lokalnych. Granice części to klucze samych
pozycji w porządku źródła (``source_ord``), więc podział działa dla każdego rodzaju klucza
(liczba, UUID, tekst), a źródło liczy odciski wszystkich części jednym zapytaniem
(``db_remote.range_fingerprints``). Dalej schodzą tylko części, które się różnią; część o najwyżej
``LEAF_ROWS`` pozycjach (albo taka, w której zmiany są gęste) jest czytana jako wiersze
``(klucz, hash)`` i scalana jak strona hashy.
Bajty ze źródła i porównane wiersze rosną więc z liczbą zmian, a nie z rozmiarem tabeli.

Odcisk ma format ``task_item.next_fingerprint`` (sha256 z linii ``remote_key<TAB>hash``): równe
liczby i odciski znaczą te same klucze w tej samej kolejności z tymi samymi hashami. Różnica, której
nie ma (np. źródło zapisało klucz JSON inaczej), kosztuje tylko odczyt wierszy części - nigdy nie
daje fałszywej równości.
"""

import hashlib
import math
from typing import Any, NamedTuple

from lib import db_remote, task_item

# Na ile części dzielony jest zakres, który się różni (jedno zapytanie do źródła na podział).
SPLIT = 20
# Część o tylu pozycjach lokalnych (lub mniej) jest czytana wierszami ``(klucz, hash)``.
LEAF_ROWS = 25
# Strona z większą liczbą zmian jest gęsta: następne strony czyta się wierszami ``(klucz, hash)``
# bez odcisków części (przy zmianach w prawie każdej części odciski to dodatkowe przejście po źródle).
DENSE = 20


class Span(NamedTuple):
    """Zakres kluczy źródła z pozycjami lokalnymi, które do niego należą.

    Attributes:
        low: Klucz przed zakresem (``None``: od początku źródła).
        high: Ostatni klucz zakresu (``None``: do końca źródła).
        items: Aktywne pozycje zakresu - krotki ``task_item.items_after``, rosnąco po ``source_ord``.
    """

    low: Any
    high: Any
    items: list[tuple]


# Wyrażenie hasha dla odcisków samych kluczy (tryb kursora): linie ``klucz<TAB>``.
KEYS_ONLY = "NULL"


def local_fingerprint(items: list[tuple], in_place: bool, keys_only: bool = False) -> tuple[int, str | None]:
    """Liczba i odcisk pozycji (ten sam format, co odcisk liczony przez źródło; ``keys_only``: bez hashy)."""
    if not items:
        return 0, None
    if keys_only:
        lines = "\n".join(f"{item[0]}\t" for item in items)
    else:
        lines = "\n".join(
            f"{item[0]}\t{task_item.reference_hash(item[5], item[3], item[4], in_place) or ''}"
            for item in items
        )
    return len(items), hashlib.sha256(lines.encode("utf-8")).hexdigest()


def split(span: Span, parts: int) -> list[Span]:
    """Dzieli zakres na najwyżej ``parts`` kolejnych części po równej liczbie pozycji lokalnych.

    Granicą części jest klucz jej ostatniej pozycji; ostatnia część kończy się tam, gdzie zakres
    (także ``None`` - wiersze źródła za ostatnią pozycją należą do niej).
    """
    size = max(1, math.ceil(len(span.items) / parts))
    groups = [span.items[i : i + size] for i in range(0, len(span.items), size)]
    result, low = [], span.low
    for index, group in enumerate(groups):
        high = span.high if index == len(groups) - 1 else db_remote.decode_key(group[-1][0])
        result.append(Span(low, high, group))
        low = high
    return result


def _differing(
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    hash_sql: str,
    parts: list[Span],
    in_place: bool,
    stats: dict[str, Any],
) -> list[bool]:
    """Które z kolejnych części różnią się od źródła (odciski wszystkich jednym zapytaniem)."""
    theirs = db_remote.range_fingerprints(
        rconn, target, hash_sql, parts[0].low, [part.high for part in parts]
    )
    stats["ranges_compared"] = stats.get("ranges_compared", 0) + len(parts)
    return [
        remote != local_fingerprint(part.items, in_place) for part, remote in zip(parts, theirs, strict=True)
    ]


def _coalesce(segments: list[tuple[Span, bool]]) -> list[tuple[Span, bool]]:
    """Skleja sąsiednie części o tym samym wyniku porównania w jeden zakres."""
    merged: list[tuple[Span, bool]] = []
    for span, differs in segments:
        if merged and merged[-1][1] == differs:
            previous = merged[-1][0]
            merged[-1] = (Span(previous.low, span.high, previous.items + span.items), differs)
        else:
            merged.append((span, differs))
    return merged


def plan(
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    hash_sql: str,
    span: Span,
    in_place: bool,
    stats: dict[str, Any],
    dense: bool = False,
) -> list[tuple[Span, bool]]:
    """Dzieli zakres, który się różni, na kolejne części bez zmian i części do przeczytania wierszami.

    Dwa poziomy podziału po ``SPLIT`` części (strona 10 000 pozycji -> 500 -> 25): na drugi poziom
    schodzi tylko część, która się różni, i tylko wtedy, gdy różni się najwyżej połowa jej
    podczęści (gęste zmiany taniej przeczytać całą częścią niż pytać o odciski). Sąsiednie części
    o tym samym wyniku są sklejane, więc wiersze do przeczytania tworzą możliwie mało zakresów.

    Args:
        rconn: Połączenie ze źródłem (``db_remote.can_fingerprint_ranges``).
        target: Wynik ``resolve_target``.
        hash_sql: Wyrażenie ``source_hash_sql`` albo ``KEYS_ONLY`` (odciski samych kluczy).
        span: Zakres, który się różni.
        in_place: Czy eksport pisze do synchronizowanej kolumny (``task_item.reference_hash``).
        stats: Statystyki runu (``ranges_compared``: ile odcisków części porównano).
        dense: Zmiany są gęste (poprzednia strona miała ich więcej niż ``DENSE``): cały zakres do
            przeczytania od razu - przy zmianach w prawie każdej części odciski części kosztują
            dodatkowe przejście po źródle, a nie oszczędzają odczytu.

    Returns:
        Kolejne ``(część, czy_się_różni)`` pokrywające ``span`` bez przerw, od ``span.low`` do ``span.high``.
    """
    if dense or len(span.items) <= LEAF_ROWS:
        return [(span, True)]
    segments: list[tuple[Span, bool]] = []
    nodes = split(span, SPLIT)
    for node, differs in zip(nodes, _differing(rconn, target, hash_sql, nodes, in_place, stats), strict=True):
        if not differs or len(node.items) <= LEAF_ROWS:
            segments.append((node, differs))
            continue
        parts = split(node, SPLIT)
        flags = _differing(rconn, target, hash_sql, parts, in_place, stats)
        if sum(flags) * 2 > len(flags):
            segments.append((node, True))
        else:
            segments.extend(zip(parts, flags, strict=True))
    return _coalesce(segments)
