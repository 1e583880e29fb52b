"""Ocena poprawek (lib.ai.quality.score): przypadki z TP/FP/FN policzonymi ręcznie."""

import json
from pathlib import Path

import pytest

from lib.ai.quality.evalset import load_eval_set
from lib.ai.quality.score import (
    EditCounts,
    ItemOutcome,
    aggregate,
    chrf,
    edits,
    eval_report,
    percentile,
    precision_recall_f,
    score_text,
    tokenize,
)


def test_tokens_are_words_and_single_marks():
    assert tokenize("Żółw, „szedł”  —  powoli...") == [
        "Żółw",
        ",",
        "„",
        "szedł",
        "”",
        "—",
        "powoli",
        ".",
        ".",
        ".",
    ]


def test_insertion_deletion_replacement_in_original_positions():
    # Tokeny: Wiem(0) że(1) masz(2) rację(3) .(4)
    assert edits("Wiem że masz rację.", "Wiem, że masz rację.") == [(1, 1, (",",))]
    # Mam(0) ,(1) dwa(2) psy(3) .(4)
    assert edits("Mam, dwa psy.", "Mam dwa psy.") == [(1, 2, ())]
    assert edits("Poszłem do domu.", "Poszedłem do domu.") == [(0, 1, ("Poszedłem",))]
    assert edits("Wogóle nie wiem.", "W ogóle nie wiem.") == [(0, 1, ("W", "ogóle"))]
    assert edits("Bez zmian.", "Bez   zmian.") == []  # same odstępy nie są edycją


def test_tp_fp_fn_by_hand():
    # Wzorzec: przecinek po "Wiem" (1,1) i "poszłem" -> "poszedłem" (2,3).
    # System: "poszedłem" (TP) i "!" na końcu (FP); przecinka brak (FN).
    counts, chosen = score_text("Wiem że poszłem tam", "Wiem że poszedłem tam!", ["Wiem, że poszedłem tam"])
    assert (counts, chosen) == (EditCounts(tp=1, fp=1, fn=1), 0)
    # Odpowiedź bez zmian: same FN; odpowiedź równa wzorcowi: same TP.
    assert score_text("Wiem że poszłem tam", "Wiem że poszłem tam", ["Wiem, że poszedłem tam"])[
        0
    ] == EditCounts(0, 0, 2)
    assert score_text("Wiem że poszłem tam", "Wiem, że poszedłem tam", ["Wiem, że poszedłem tam"])[
        0
    ] == EditCounts(2, 0, 0)
    # Poprawny tekst zmieniony przez model: same FP.
    assert score_text("Dobrze.", "Dobrze!", ["Dobrze."])[0] == EditCounts(0, 1, 0)


def test_adjacent_changes_form_one_edit():
    # Dwa sąsiednie słowa to jeden opcode: poprawienie tylko jednego z nich nie jest trafieniem.
    assert edits("Zolw szedl powoli", "Żółw szedł powoli") == [(0, 2, ("Żółw", "szedł"))]
    assert score_text("Zolw szedl powoli", "Żółw szedl powoli", ["Żółw szedł powoli"])[0] == EditCounts(
        0, 1, 1
    )


def test_several_references_most_tp_then_fewer_fp_fn():
    text = "Sprawdź proszę czy drzwi są zamknięte."
    refs = ["Sprawdź, proszę, czy drzwi są zamknięte.", "Sprawdź proszę, czy drzwi są zamknięte."]
    # Wzorzec 0: TP1 FN1, wzorzec 1: TP1 FN0 -> remis TP, mniej FP+FN wygrywa.
    assert score_text(text, "Sprawdź proszę, czy drzwi są zamknięte.", refs) == (EditCounts(1, 0, 0), 1)
    # Wzorzec 0: TP2, wzorzec 1: TP1 FP1 -> więcej TP wygrywa.
    assert score_text(text, "Sprawdź, proszę, czy drzwi są zamknięte.", refs) == (EditCounts(2, 0, 0), 0)
    # Więcej TP wygrywa nawet przy większej sumie FP+FN (jak M2).
    original = "raz dwa trzy cztery pięć sześć siedem"
    ref_a = "Raz dwa Trzy cztery Pięć sześć Siedem"  # 4 osobne edycje
    ref_b = "Raz dwa trzy cztery pięć sześć siedem"  # 1 edycja
    answer = "Raz dwa Trzy cztery pięć sześć siedem"
    assert score_text(original, answer, [ref_b, ref_a]) == (EditCounts(2, 0, 2), 1)
    with pytest.raises(ValueError):
        score_text(original, answer, [])


def test_precision_recall_f05_by_hand_and_zero_cases():
    p, r, f = precision_recall_f(EditCounts(tp=2, fp=1, fn=3))
    assert (p, r) == pytest.approx((2 / 3, 2 / 5))
    assert f == pytest.approx(10 / 17)  # 1.25*P*R / (0.25*P + R) = (1/3) / (17/30)
    assert precision_recall_f(EditCounts(0, 0, 0)) == (1.0, 1.0, 1.0)  # nic do zrobienia, nic nie zrobione
    assert precision_recall_f(EditCounts(0, 0, 4)) == (1.0, 0.0, 0.0)  # nic nie poprawił
    assert precision_recall_f(EditCounts(0, 3, 0)) == (0.0, 1.0, 0.0)  # tylko psuł
    assert precision_recall_f(EditCounts(0, 2, 2)) == (0.0, 0.0, 0.0)


def test_aggregate_corpus_sums_categories_failed_and_rates():
    outcomes = [
        # 2 edycje wzorca, znaleziona jedna: TP1 FN1; exact nie
        ItemOutcome(
            "Wiem że poszłem tam",
            ("Wiem, że poszedłem tam",),
            "Wiem że poszedłem tam",
            ("comma", "common_forms"),
            latency_s=1.0,
            cost_usd=0.01,
        ),
        # TP1
        ItemOutcome("Muj dom.", ("Mój dom.",), "Mój dom.", ("o_u", "comma"), latency_s=2.0, cost_usd=0.01),
        # tekst poprawny zmieniony: FP1, unchanged_changed
        ItemOutcome("Dobrze.", ("Dobrze.",), "Dobrze!", ("correct",), latency_s=3.0, cost_usd=0.01),
        # tekst poprawny zostawiony: exact
        ItemOutcome("Tak.", ("Tak.",), "Tak.", ("correct",), latency_s=4.0, cost_usd=0.01),
        # nieudana: liczy się jak tekst bez zmian -> FN1, nie exact, bez opóźnienia
        ItemOutcome("Hleb.", ("Chleb.",), None, ("ch_h",)),
    ]
    result = aggregate("model-a", "abc123", outcomes)
    assert (result.items, result.tp, result.fp, result.fn, result.failed) == (5, 2, 1, 2, 1)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(1 / 2)
    assert result.f05 == pytest.approx(1.25 * (2 / 3) * 0.5 / (0.25 * (2 / 3) + 0.5))
    assert result.exact_match == pytest.approx(2 / 5)
    assert result.unchanged_changed_rate == pytest.approx(1 / 2)
    assert result.chrf is None
    assert result.cost_usd == pytest.approx(0.04)
    assert (result.latency_p50_s, result.latency_p95_s) == pytest.approx((2.5, 3.85))
    cats = {name: (c.n, c.recall) for name, c in result.per_category.items()}
    assert cats == {
        "ch_h": (1, 0.0),
        "comma": (2, pytest.approx(2 / 3)),
        "common_forms": (1, 0.5),
        "correct": (2, 1.0),
        "o_u": (1, 1.0),
    }


def test_aggregate_empty_and_translation_only_sets():
    empty = aggregate("m", None, [])
    assert (empty.items, empty.precision, empty.exact_match, empty.chrf, empty.latency_p50_s) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert empty.per_category == {}
    tr = [
        ItemOutcome("Dzień dobry.", ("Good morning.",), "Good morning.", action="translate"),
        ItemOutcome("Dziękuję.", ("Thank you.", "Thanks."), None, action="translate"),
    ]
    result = aggregate("m", "v", tr)
    assert (result.tp, result.fp, result.fn, result.precision, result.recall, result.f05) == (
        0,
        0,
        0,
        None,
        None,
        None,
    )
    assert result.unchanged_changed_rate is None
    assert result.failed == 1 and result.exact_match == 0.5
    assert result.chrf == pytest.approx(
        chrf(["Good morning.", ""], [("Good morning.",), ("Thank you.", "Thanks.")])
    )


def test_chrf_sanity():
    assert chrf(["The cat sat on the mat."], [["The cat sat on the mat."]]) == pytest.approx(100.0)
    close = chrf(["The cat sat on a mat."], [["The cat sat on the mat."]])
    far = chrf(["Completely unrelated words here."], [["The cat sat on the mat."]])
    assert 100 > close > 60 > 20 > far
    # Kilka wzorców: liczy się najbliższy; różne liczby wzorców na pozycję.
    assert chrf(["Thanks.", "Yes."], [["Thank you.", "Thanks."], ["Yes."]]) == pytest.approx(100.0)
    assert chrf([], []) is None


def test_percentile_linear_interpolation():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_report_serialises_to_the_eval_json_shape():
    result = aggregate(
        "model-a", "abc123", [ItemOutcome("Muj dom.", ("Mój dom.",), "Mój dom.", ("o_u",), latency_s=1.0)]
    )
    report = json.loads(json.dumps(eval_report("pl_correction", [result])))
    assert list(report) == ["set", "results"]
    assert list(report["results"][0]) == [
        "model", "prompt_version", "items", "tp", "fp", "fn", "precision", "recall", "f05",
        "unchanged_changed_rate", "exact_match", "chrf", "cost_usd", "latency_p50_s", "latency_p95_s",
        "failed", "per_category",
    ]  # fmt: skip
    assert report["results"][0]["per_category"] == {"o_u": {"n": 1, "recall": 1.0}}
    assert report["results"][0]["tp"] == 1 and report["set"] == "pl_correction"


def test_shipped_sets_with_a_perfect_and_a_do_nothing_model():
    evals = Path(__file__).resolve().parent.parent / "evals"
    items = load_eval_set(evals / "pl_correction.jsonl")
    reference_edits = sum(len(edits(i.text, i.references[0])) for i in items)
    fewest_edits = sum(min(len(edits(i.text, r)) for r in i.references) for i in items)
    correct = sum(i.text in i.references for i in items)
    assert (len(items), correct, reference_edits, fewest_edits) == (382, 123, 295, 294)

    def run(answer):
        return aggregate(
            "m", None, [ItemOutcome(i.text, i.references, answer(i), i.categories) for i in items]
        )

    perfect = run(lambda i: i.references[0])
    assert (perfect.tp, perfect.fp, perfect.fn, perfect.f05, perfect.exact_match) == (295, 0, 0, 1.0, 1.0)
    assert perfect.unchanged_changed_rate == 0.0
    # Model, który nic nie zmienia: każdy tekst ocenia wzorzec z najmniejszą liczbą edycji (remis TP=0).
    nothing = run(lambda i: i.text)
    assert (nothing.tp, nothing.fp, nothing.fn, nothing.precision, nothing.recall, nothing.f05) == (
        0,
        0,
        294,
        1.0,
        0.0,
        0.0,
    )
    assert nothing.exact_match == pytest.approx(123 / 382)
    assert nothing.per_category["correct"].recall == 1.0 and nothing.per_category["comma"].recall == 0.0

    translations = load_eval_set(evals / "pl_en_translation.jsonl")
    outcomes = [ItemOutcome(i.text, i.references, i.references[-1], action="translate") for i in translations]
    assert aggregate("m", None, outcomes).chrf == pytest.approx(100.0)
    untranslated = [ItemOutcome(i.text, i.references, i.text, action="translate") for i in translations]
    assert aggregate("m", None, untranslated).chrf < 20
