"""Zabezpieczenia odpowiedzi AI (guardrails): kody flag i ich powody słowami.

Odpowiedź, która zgubiła liczby, adresy URL, e-maile albo placeholdery oryginału, zmieniła za
dużo słów lub długość tekstu (tylko korekta) albo przyszła w innym języku niż oczekiwany, dostaje
flagi; pozycja i tak jest przetworzona, ale recenzent widzi ją pierwszą z powodem.

Język rozpoznaje py3langid (utrzymywany fork langid.py, model w paczce, bez pobierania).
Krótkich tekstów nie da się rozpoznać pewnie, więc język jest sprawdzany tylko wtedy, gdy tekst
ma co najmniej ``LANG_MIN_LETTERS`` liter (po usunięciu znaczników HTML, URL-i, e-maili, placeholderów i cyfr)
i gdy model jest pewny co najmniej ``LANG_MIN_CONFIDENCE``; inaczej flagi ``language`` nie ma.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from collections import Counter

from lib.ai.prompts import check_preserved
from lib.load_config import Settings

FLAG_CODES = ("numbers", "urls", "emails", "placeholders", "edit_ratio", "length", "language")
DEFAULT_MAX_EDIT_RATIO = 0.3
LENGTH_RATIO_RANGE = (0.5, 2.0)
# Mianownik udziału zmienionych słów to co najmniej tyle słów: jedna czy dwie poprawki
# w krótkim tekście to nie przepisanie go na nowo.
EDIT_RATIO_MIN_WORDS = 10
LANG_MIN_LETTERS = 20
LANG_MIN_CONFIDENCE = 0.9

REASONS = {
    "numbers": "odpowiedź zgubiła albo zmieniła liczbę z oryginału",
    "urls": "odpowiedź zgubiła albo zmieniła adres URL z oryginału",
    "emails": "odpowiedź zgubiła albo zmieniła adres e-mail z oryginału",
    "placeholders": "odpowiedź zgubiła placeholder albo znacznik HTML z oryginału",
    "edit_ratio": "poprawka zmieniła zbyt dużą część słów tekstu",
    "length": "długość odpowiedzi za bardzo różni się od oryginału (poza zakresem od 0,5 do 2 razy)",
    "language": "odpowiedź jest w innym języku niż oczekiwany",
}

_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_TAIL = ".,;:!?)]}'\"»”’"
# Liczba z separatorami: 1 000, 1.5, 2,50 (spacja grupuje tylko po trzy cyfry).
_NUMBER_RE = re.compile(r"\d+(?:(?:[.,]|[ \u00a0\u202f](?=\d{3}(?!\d)))\d+)*")
_WORD_RE = re.compile(r"\w+")
_LETTER_RE = re.compile(r"[^\W\d_]")
_STRIP_FOR_LANG_RE = re.compile(
    r"<[^>]*>|(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\{[^}]*\}|%\w|\d+"
)

# Języki, których rozpoznawacz nie rozróżnia pewnie - traktowane jako jeden.
_SAME_LANGUAGE = {"bs": "hr", "sr": "hr", "nn": "no", "id": "ms", "uzs": "uz", "ary": "ar", "arz": "ar"}
_LANGUAGE_NAMES = {
    "polish": "pl", "polski": "pl", "pol": "pl",
    "english": "en", "angielski": "en", "eng": "en",
    "german": "de", "niemiecki": "de", "deutsch": "de", "deu": "de", "ger": "de",
    "french": "fr", "francuski": "fr", "fra": "fr", "fre": "fr",
    "spanish": "es", "hiszpański": "es", "spa": "es",
    "italian": "it", "włoski": "it", "ita": "it",
    "portuguese": "pt", "portugalski": "pt", "por": "pt",
    "dutch": "nl", "niderlandzki": "nl", "holenderski": "nl", "nld": "nl",
    "czech": "cs", "czeski": "cs", "ces": "cs",
    "slovak": "sk", "słowacki": "sk", "slk": "sk",
    "ukrainian": "uk", "ukraiński": "uk", "ukr": "uk",
    "russian": "ru", "rosyjski": "ru", "rus": "ru",
    "lithuanian": "lt", "litewski": "lt",
    "swedish": "sv", "szwedzki": "sv",
    "norwegian": "no", "norweski": "no", "nb": "no",
    "danish": "da", "duński": "da",
    "hungarian": "hu", "węgierski": "hu",
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _identifier():
    """Ładuje model py3langid raz na proces (ok. 1 s, ok. 60 MB)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_code(name: str | None) -> str | None:
    """Zamienia nazwę albo kod języka (``pl``, ``en-US``, ``English``, ``angielski``) na kod rozpoznawacza.

    Returns:
        Kod ISO 639-1 (albo 639-3, gdy krótszego nie ma) ujednolicony dla bliskich języków;
        ``None``, gdy języka nie da się ustalić (wtedy język nie jest sprawdzany).
    """
    if not name or not name.strip():
        return None
    key = name.strip().lower()
    code = _LANGUAGE_NAMES.get(key) or re.split(r"[-_]", key)[0]
    code = _LANGUAGE_NAMES.get(code, code)
    if code not in _identifier().nb_classes:
        return None
    return _SAME_LANGUAGE.get(code, code)


def detect_language(text: str) -> str | None:
    """Rozpoznaje język tekstu albo zwraca ``None``, gdy tekst jest za krótki lub wynik niepewny."""
    cleaned = _STRIP_FOR_LANG_RE.sub(" ", text)
    if len(_LETTER_RE.findall(cleaned)) < LANG_MIN_LETTERS:
        return None
    code, confidence = _identifier().classify(cleaned)
    if confidence < LANG_MIN_CONFIDENCE:
        return None
    return _SAME_LANGUAGE.get(code, code)


def _numbers(text: str) -> Counter:
    """Multizbiór liczb tekstu jako same cyfry (``1 000,50`` i ``1,000.50`` to to samo)."""
    return Counter(re.sub(r"\D", "", match) for match in _NUMBER_RE.findall(text))


def _urls(text: str) -> Counter:
    return Counter(match.rstrip(_URL_TAIL) for match in _URL_RE.findall(text))


def _emails(text: str) -> Counter:
    return Counter(match.lower() for match in _EMAIL_RE.findall(text))


def _lost(original: Counter, answer: Counter) -> bool:
    """Czy czegoś z oryginału (z krotnością) brakuje w odpowiedzi."""
    return bool(original - answer)


def _plain_word(word: str) -> str:
    """Słowo bez wielkości liter i znaków diakrytycznych (``Żółw`` -> ``zolw``)."""
    decomposed = unicodedata.normalize("NFKD", word.casefold().replace("ł", "l"))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def edit_ratio(original: str, answer: str) -> float:
    """Udział zmienionych słów oryginału (0 = bez zmian).

    Słowa porównywane są bez wielkości liter i diakrytyków, a rozdzielenie lub sklejenie słów
    (``wogóle`` -> ``w ogóle``) nie jest zmianą: te poprawki nie przepisują tekstu. Zmiana to
    ``max(usunięte, wstawione)`` słów każdego nierównego fragmentu; mianownik to liczba słów
    oryginału, ale co najmniej ``EDIT_RATIO_MIN_WORDS``.
    """
    a = [_plain_word(word) for word in _WORD_RE.findall(original)]
    b = [_plain_word(word) for word in _WORD_RE.findall(answer)]
    changed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal" and "".join(a[i1:i2]) != "".join(b[j1:j2]):
            changed += max(i2 - i1, j2 - j1)
    return changed / max(len(a), EDIT_RATIO_MIN_WORDS)


def answer_flags(
    original: str,
    answer: str,
    action: str = "correct",
    expected_lang: str | None = None,
    max_edit_ratio: float = DEFAULT_MAX_EDIT_RATIO,
) -> list[str]:
    """Sprawdza odpowiedź modelu i zwraca kody flag (pusta lista = bez zastrzeżeń).

    Args:
        original: Tekst wysłany do modelu.
        answer: Tekst zwrócony przez model.
        action: ``correct`` albo ``translate``; ``edit_ratio`` i ``length`` tylko dla korekty.
        expected_lang: Oczekiwany język odpowiedzi (tłumaczenie: ``target_lang``); dla korekty
            ``None`` oznacza język oryginału rozpoznany z tekstu.
        max_edit_ratio: Próg udziału zmienionych słów (``AI_MAX_EDIT_RATIO``).

    Returns:
        Kody z ``FLAG_CODES`` w ich kolejności.
    """
    flags = []
    if _lost(_numbers(original), _numbers(answer)):
        flags.append("numbers")
    if _lost(_urls(original), _urls(answer)):
        flags.append("urls")
    if _lost(_emails(original), _emails(answer)):
        flags.append("emails")
    if check_preserved(original, answer):
        flags.append("placeholders")
    rewritten = True
    if action != "translate":
        rewritten = edit_ratio(original, answer) > max_edit_ratio
        if rewritten:
            flags.append("edit_ratio")
        size = len(original.strip())
        if size and not LENGTH_RATIO_RANGE[0] <= len(answer.strip()) / size <= LENGTH_RATIO_RANGE[1]:
            flags.append("length")
    if action == "translate" or expected_lang:
        expected = language_code(expected_lang)
    elif rewritten:
        expected = detect_language(original)
    else:
        # Korekta, która zostawiła co najmniej (1 - max_edit_ratio) słów oryginału, jest w jego
        # języku: rozpoznawanie języka (najdroższa kontrola, ~0,1 ms na tekst) tylko, gdy zmieniono więcej.
        expected = None
    if expected:
        found = detect_language(answer)
        if found and found != expected:
            flags.append("language")
    return flags


def stored_flags(
    original: str,
    answer: str,
    action: str = "correct",
    target_lang: str | None = None,
    max_edit_ratio: float = DEFAULT_MAX_EDIT_RATIO,
) -> str | None:
    """Flagi odpowiedzi zadania w postaci zapisywanej w ``task_item.ai_flags``.

    Oczekiwany język: ``target_lang`` dla tłumaczenia, dla korekty język oryginału.

    Returns:
        Tablica JSON kodów (np. ``["numbers"]``) albo ``None``, gdy odpowiedź nie ma flag.
    """
    expected = target_lang if action == "translate" else None
    flags = answer_flags(original, answer, action, expected, max_edit_ratio)
    return json.dumps(flags) if flags else None


def task_answer_flags(task: dict, settings: Settings, original: str, answer: str) -> str | None:
    """``stored_flags`` dla odpowiedzi w zadaniu: akcja i język docelowy zadania, próg ``AI_MAX_EDIT_RATIO``."""
    return stored_flags(
        original,
        answer,
        task.get("ai_action") or "correct",
        task.get("target_lang"),
        settings.ai_max_edit_ratio,
    )


def flag_reasons(flags: list[str]) -> list[str]:
    """Powody flag słowami (po polsku) dla strony recenzji; nieznany kod zostaje, jak jest."""
    return [REASONS.get(code, code) for code in flags]
