"""Zabezpieczenia odpowiedzi (lib.ai.quality.guardrails): każda flaga i zwykłe poprawki bez flag."""

from pathlib import Path

import pytest

from lib.ai.quality.evalset import load_eval_set
from lib.ai.quality.guardrails import (
    FLAG_CODES,
    LANG_MIN_LETTERS,
    REASONS,
    answer_flags,
    detect_language,
    edit_ratio,
    flag_reasons,
    language_code,
)

EVALS = Path(__file__).resolve().parent.parent / "evals"
PL = "Zamówienie zostanie wysłane jutro rano, a kurier zadzwoni przed dostawą."
EN = "The order will be shipped tomorrow morning and the courier will call before delivery."


def test_numbers():
    assert answer_flags("Cena wynosi 100 zł.", "Cena wynosi 10 zł.") == ["numbers"]
    assert answer_flags("Mamy 3 pokoje i 2 łazienki.", "Mamy trzy pokoje i 2 łazienki.") == ["numbers"]
    # Ten sam zapis innymi separatorami to ta sama liczba.
    assert answer_flags("Cena wynosi 1 000,50 zł.", "Cena wynosi 1000,50 zł.") == []
    assert (
        answer_flags("Waga 5,5 kg, cena 1 299 zł.", "Weight 5.5 kg, price 1,299 zł.", "translate", "en") == []
    )
    assert answer_flags("Sklep jest czynny w godzinach 9-17.", "Sklep jest czynny w godzinach 9–17.") == []


def test_urls_and_emails():
    assert answer_flags("Zobacz https://example.com/a.", "Zobacz https://example.com/b.") == ["urls"]
    assert answer_flags("Zobacz stronę www.example.com teraz", "Zobacz stronę teraz") == ["urls"]
    assert answer_flags("Zobacz https://example.com/a, proszę", "Zobacz https://example.com/a , proszę") == []
    assert answer_flags("Pisz na jan@example.com.", "Pisz na jan@example.pl.") == ["emails"]
    assert answer_flags("Pisz na Jan@Example.com.", "Pisz na jan@example.com.") == []


def test_placeholders_use_the_prompts_rule():
    assert answer_flags("Witaj {name}, masz %d wiadomości.", "Witaj, masz %d wiadomości.") == ["placeholders"]
    assert answer_flags("Witaj {name}, masz %d wiadomości.", "Witaj {name}, masz wiadomości.") == [
        "placeholders"
    ]
    assert answer_flags("<b>Uwaga:</b> promocja trwa.", "Uwaga: promocja trwa.") == ["placeholders"]
    assert answer_flags("Witaj {name}, masz %d wiadomosci.", "Witaj {name}, masz %d wiadomości.") == []


def test_edit_ratio_only_for_correction():
    original = "Wczoraj wieczorem poszliśmy całą rodziną do małego kina na stary film."
    rewritten = "Ubiegłego wieczoru cała nasza rodzina wybrała się na seans dawnego filmu."
    assert "edit_ratio" in answer_flags(original, rewritten)
    assert "edit_ratio" not in answer_flags(original, rewritten, "translate", "pl")
    assert "edit_ratio" in answer_flags(original, rewritten, max_edit_ratio=0.3)
    assert "edit_ratio" not in answer_flags(original, rewritten, max_edit_ratio=1.5)
    # Diakrytyki, wielkość liter i rozdzielenie słów to nie przepisanie tekstu.
    assert edit_ratio("zolw szedl przez lake", "Żółw szedł przez łąkę") == 0.0
    assert edit_ratio("Wogóle napewno", "W ogóle na pewno") == 0.0
    # Mianownik to co najmniej 10 słów: 2 zmiany w 4 słowach to 0,2.
    assert edit_ratio("Poszłem do sklepu wczoraj", "Poszedłem do sklepiku wczoraj") == pytest.approx(0.2)


def test_length_only_for_correction():
    original = "Proszę o kontakt w sprawie zamówienia."
    assert "length" in answer_flags(original, original + " " + original + " Dziękuję.")
    assert "length" in answer_flags(original, "Proszę.")
    assert answer_flags(original, "Proszę o kontakt w sprawie mojego zamówienia.") == []
    long_translation = (
        "Please get in touch with us regarding your order, as soon as you possibly can, thanks."
    )
    assert "length" not in answer_flags(original, long_translation, "translate", "en")


def test_language_correction_answered_in_another_language():
    assert answer_flags(PL, EN) == ["edit_ratio", "language"]
    assert "language" in answer_flags(PL, EN, expected_lang="pl")
    assert "language" not in answer_flags(PL, PL.replace("jutro", "dziś"))


def test_language_translation_left_untranslated():
    assert answer_flags(PL, PL, "translate", "en") == ["language"]
    assert answer_flags(PL, EN, "translate", "en") == []
    assert answer_flags(PL, EN, "translate", "English") == []
    assert answer_flags(PL, EN, "translate", "en-GB") == []
    assert answer_flags(PL, EN, "translate", "de") == ["language"]
    # Język, którego rozpoznawacz nie zna, nie jest sprawdzany.
    assert answer_flags(PL, PL, "translate", "klingoński") == []


def test_short_texts_are_not_judged():
    assert detect_language("Tak") is None
    assert detect_language("OK, dzięki!") is None
    assert answer_flags("Tak", "Tak", "translate", "en") == []
    assert "language" not in answer_flags("Nie wiem.", "I don't know.")
    assert answer_flags("Hej", "Hello there!") == ["length"]
    short = "a" * (LANG_MIN_LETTERS - 1)
    assert detect_language(short) is None


def test_language_codes():
    assert [language_code(n) for n in ("pl", "PL", "pl_PL", "polski", "Polish", "en-US", "angielski")] == [
        "pl", "pl", "pl", "pl", "pl", "en", "en",
    ]  # fmt: skip
    assert language_code("sr") == language_code("hr") == language_code("bs")
    assert language_code(None) is None and language_code("") is None and language_code("xx") is None


def test_codes_order_and_reasons():
    original = "Cena 100 zł na https://example.com, pisz: jan@example.com, {name}."
    flags = answer_flags(
        original, "Zupełnie inna treść bez niczego z oryginału, ale po polsku, długa bardzo."
    )
    assert flags == [c for c in FLAG_CODES if c in flags] and flags[:4] == [
        "numbers",
        "urls",
        "emails",
        "placeholders",
    ]
    assert set(REASONS) == set(FLAG_CODES)
    assert flag_reasons(["numbers", "language"]) == [REASONS["numbers"], REASONS["language"]]
    assert all(reason and reason[0].islower() for reason in flag_reasons(list(FLAG_CODES)))
    assert flag_reasons(["nieznany"]) == ["nieznany"]


@pytest.mark.parametrize("name", ["pl_correction.jsonl", "pl_en_translation.jsonl"])
def test_ordinary_answers_from_the_shipped_sets_raise_no_flag(name):
    # Każdy wzorzec to dobra odpowiedź: żadna nie może dostać flagi (bez wyjątków).
    flagged = []
    for item in load_eval_set(EVALS / name):
        for reference in item.references:
            flags = answer_flags(item.text, reference, item.action, item.target_lang)
            if flags:
                flagged.append((item.id, flags))
    assert flagged == []


def test_markup_is_not_language():
    # Atrybuty znaczników (angielskie słowa) nie przeważają krótkiego polskiego tekstu.
    html = '<a class="button primary" href="https://example.com/checkout" title="checkout">Zapłać teraz</a>'
    assert detect_language(html) is None
    assert answer_flags(html.replace("Zapłać", "Zaplac"), html, "correct") == []
