"""Różnica słów między oryginałem a korektą: tokeny, zmiany (hunki), fragmenty, tekst z wybranych zmian.

To jedyna implementacja różnicy w projekcie: terminal (``word_diff``), strona przeglądu
(``diff_segments``, ``show_whitespace``) i akceptacja części poprawek (``apply_hunks``) korzystają
z tych samych fragmentów. Tu jest też dopasowanie końców linii tekstu z edytora
(``restore_line_endings``). Funkcje są czyste: tekst na wejściu, tekst albo fragmenty na wyjściu.
"""

import difflib
import re
from collections.abc import Iterable
from typing import NamedTuple

from lib.errors import UsageError

# Słowa, ciągi białych znaków i pojedyncze znaki interpunkcji - jednostki porównania.
_TOKEN_RE = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)

_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_RESET = "\x1b[0m"


def _tokens(text: str | None) -> list[str]:
    """Dzieli tekst na słowa, białe znaki i interpunkcję (konkatenacja daje tekst wejściowy)."""
    return _TOKEN_RE.findall(text or "")


class Hunk(NamedTuple):
    """Jedna zmiana modelu w różnicy słów: kolejny numer, tekst usunięty i wstawiony."""

    index: int
    old: str
    new: str


class Segment(NamedTuple):
    """Fragment różnicy: wspólny tekst (``hunk`` = ``None``) albo zmiana (``hunk`` = ``Hunk``)."""

    text: str
    hunk: Hunk | None


# Białe znaki pokazywane wewnątrz zmian jako widoczne znaki (np. podwójna spacja, nowa linia).
WHITESPACE_MARKS = {" ": "·", "\t": "→", "\n": "↵", "\r": "␍", "\u00a0": "⍽", "\u202f": "⍽"}


def diff_segments(a: str | None, b: str | None) -> list[Segment]:
    """Dzieli różnicę słów tekstów ``a`` i ``b`` na fragmenty wspólne i zmiany (hunki).

    To jedyna implementacja różnicy w projekcie: ``word_diff`` (terminal), strona przeglądu
    i akceptacja części poprawek (``apply_hunks``) korzystają z tych samych fragmentów.
    Zmiany są numerowane od 0 w kolejności w tekście; sąsiednie usunięcie i wstawienie
    tworzą jedną zmianę (zamianę).

    Args:
        a: Tekst oryginalny (``None`` traktowany jak pusty).
        b: Tekst poprawiony (``None`` traktowany jak pusty).

    Returns:
        Lista ``Segment``; sklejenie ``old`` wszystkich zmian i tekstów wspólnych daje ``a``,
        sklejenie ``new`` i tekstów wspólnych daje ``b``.
    """
    old, new = _tokens(a), _tokens(b)
    # autojunk=False: przy długich tekstach heurystyka "śmieci" psuje dopasowanie częstych słów.
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    segments: list[Segment] = []
    count = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(Segment("".join(old[i1:i2]), None))
            continue
        segments.append(Segment("", Hunk(count, "".join(old[i1:i2]), "".join(new[j1:j2]))))
        count += 1
    return segments


def diff_hunks(a: str | None, b: str | None) -> list[Hunk]:
    """Zwraca same zmiany (hunki) różnicy słów ``a`` -> ``b`` w kolejności w tekście."""
    return [s.hunk for s in diff_segments(a, b) if s.hunk is not None]


def apply_hunks(a: str | None, b: str | None, chosen: Iterable[int]) -> str:
    """Buduje tekst z oryginału ``a``, w którym zastosowano tylko wybrane zmiany z ``b``.

    Args:
        a: Tekst oryginalny.
        b: Tekst poprawiony przez model.
        chosen: Numery zmian (``Hunk.index``) do zastosowania; pozostałe zostają jak w ``a``.

    Returns:
        Tekst wynikowy: wszystkie zmiany -> ``b``, żadna -> ``a``.

    Raises:
        UsageError: Gdy numer zmiany nie istnieje w tej różnicy.
    """
    segments = diff_segments(a, b)
    wanted = set(chosen)
    known = {s.hunk.index for s in segments if s.hunk is not None}
    unknown = sorted(wanted - known)
    if unknown:
        raise UsageError(f"nie ma zmian o numerach {unknown} (ta różnica ma {len(known)} zmian)")
    parts = []
    for segment in segments:
        if segment.hunk is None:
            parts.append(segment.text)
        else:
            parts.append(segment.hunk.new if segment.hunk.index in wanted else segment.hunk.old)
    return "".join(parts)


def show_whitespace(text: str) -> list[tuple[str, bool]]:
    """Dzieli tekst zmiany na kawałki zwykłe i białe znaki zamienione na widoczne symbole.

    Nowa linia zostaje też prawdziwą nową linią (za symbolem ``↵``), żeby układ tekstu się
    nie zmieniał.

    Args:
        text: Tekst usunięty albo wstawiony w jednej zmianie.

    Returns:
        Lista ``(kawałek, czy_biały_znak)``; sklejone kawałki zwykłe i symbole dają tekst
        do wyświetlenia.
    """
    parts: list[tuple[str, bool]] = []
    plain = []
    for char in text:
        mark = WHITESPACE_MARKS.get(char)
        if mark is None:
            plain.append(char)
            continue
        if plain:
            parts.append(("".join(plain), False))
            plain = []
        parts.append((mark + ("\n" if char == "\n" else ""), True))
    if plain:
        parts.append(("".join(plain), False))
    return parts


def word_diff(a: str | None, b: str | None, color: bool = False) -> str:
    """Zwraca różnicę słów między tekstem ``a`` i ``b`` w jednej linii tekstu.

    Usunięcia oznaczane są ``[-stare-]``, wstawienia ``{+nowe+}`` (jak ``git diff --word-diff``);
    z ``color=True`` znaczniki są dodatkowo kolorowane ANSI (usunięcia na czerwono, wstawienia
    na zielono), więc różnica jest czytelna także bez rozróżniania kolorów.

    Args:
        a: Tekst oryginalny (``None`` traktowany jak pusty).
        b: Tekst poprawiony (``None`` traktowany jak pusty).
        color: ``True`` dodaje kody ANSI (tylko dla terminala).

    Returns:
        Tekst ``b`` z zaznaczonymi usunięciami i wstawieniami względem ``a``.
    """
    parts: list[str] = []
    for segment in diff_segments(a, b):
        if segment.hunk is None:
            parts.append(segment.text)
            continue
        if segment.hunk.old:
            mark = "[-" + segment.hunk.old + "-]"
            parts.append(f"{_RED}{mark}{_RESET}" if color else mark)
        if segment.hunk.new:
            mark = "{+" + segment.hunk.new + "+}"
            parts.append(f"{_GREEN}{mark}{_RESET}" if color else mark)
    return "".join(parts)


def restore_line_endings(stored: str | None, edited: str) -> str:
    """Przywraca w tekście z edytora końce linii CRLF/CR, jeśli zapisany tekst używał tylko ich.

    Args:
        stored: Tekst przed edycją (``text_corrected``).
        edited: Tekst z pola edycji (z samymi LF).

    Returns:
        ``edited`` z końcami linii jak w ``stored`` (gdy były jednolite) albo bez zmian.
    """
    if not stored or "\r" in edited or "\n" not in edited:
        return edited
    crlf = stored.count("\r\n")
    if crlf and crlf == stored.count("\n") == stored.count("\r"):
        return edited.replace("\n", "\r\n")
    if "\n" not in stored and stored.count("\r"):
        return edited.replace("\n", "\r")
    return edited
