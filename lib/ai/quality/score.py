"""Ocena poprawek i tłumaczeń względem odpowiedzi wzorcowych (jak M2/ERRANT i sacrebleu).

Poprawka (korekta) jest oceniana na poziomie edycji słów: tekst dzielony jest na tokeny
``\\w+|[^\\w\\s]`` (Unicode), a edycja to jeden nierówny opcode ``difflib.SequenceMatcher``
(``autojunk=False``) między tokenami oryginału i tekstu poprawionego, zapisany jako
``(start, end, tokeny zastępujące)`` w pozycjach tokenów oryginału. TP = edycja systemu równa
edycji wzorca, FP = edycja systemu, której wzorzec nie ma, FN = edycja wzorca, której system
nie ma. Tłumaczenie: chrF z sacrebleu. Wyniki korpusowe: suma TP/FP/FN po zestawie, potem
precyzja, czułość i F0.5.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sacrebleu.metrics import CHRF

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
BETA = 0.5

Edit = tuple[int, int, tuple[str, ...]]


def tokenize(text: str) -> list[str]:
    """Dzieli tekst na tokeny ``\\w+|[^\\w\\s]`` (słowa i pojedyncze znaki niebiałe).

    Białe znaki nie są tokenami, więc poprawka samych odstępów nie jest edycją.
    """
    return TOKEN_RE.findall(text)


def edits(original: str, corrected: str) -> list[Edit]:
    """Zwraca edycje zamieniające tokeny oryginału w tokeny tekstu poprawionego.

    Args:
        original: Tekst przed poprawką.
        corrected: Tekst po poprawce (odpowiedź modelu albo wzorzec).

    Returns:
        Lista ``(start, end, tokeny)``: tokeny oryginału ``[start:end]`` zastąpione krotką tokenów
        (wstawienie: ``start == end``; usunięcie: pusta krotka).
    """
    a, b = tokenize(original), tokenize(corrected)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(i1, i2, tuple(b[j1:j2])) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


@dataclass(frozen=True)
class EditCounts:
    """Liczby edycji jednego tekstu (albo sumy po zestawie)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def compare_edits(system: Sequence[Edit], reference: Sequence[Edit]) -> EditCounts:
    """Liczy TP/FP/FN edycji systemu względem edycji jednego wzorca (jako multizbiory)."""
    sys_counts, ref_counts = Counter(system), Counter(reference)
    tp = sum((sys_counts & ref_counts).values())
    return EditCounts(tp=tp, fp=sum(sys_counts.values()) - tp, fn=sum(ref_counts.values()) - tp)


def score_text(original: str, answer: str, references: Sequence[str]) -> tuple[EditCounts, int]:
    """Ocenia jedną poprawkę względem jednego albo kilku wzorców.

    Przy kilku wzorcach liczy się ten, który daje najwięcej TP; remis rozstrzyga mniejsza suma
    FP + FN, a dalej wcześniejszy wzorzec (jak w M2).

    Args:
        original: Tekst przed poprawką.
        answer: Odpowiedź modelu.
        references: Niepusta lista akceptowalnych poprawek.

    Returns:
        Krotka ``(liczby edycji, indeks wybranego wzorca)``.

    Raises:
        ValueError: Gdy lista wzorców jest pusta.
    """
    if not references:
        raise ValueError("brak wzorca (reference)")
    system = edits(original, answer)
    scored = [(compare_edits(system, edits(original, ref)), index) for index, ref in enumerate(references)]
    return max(scored, key=lambda pair: (pair[0].tp, -(pair[0].fp + pair[0].fn), -pair[1]))


def precision_recall_f(counts: EditCounts, beta: float = BETA) -> tuple[float, float, float]:
    """Precyzja, czułość i F-beta z sum TP/FP/FN (konwencja ERRANT dla przypadków 0/0).

    Precyzja = 1.0, gdy system nie zaproponował żadnej edycji (TP + FP = 0: nic złego nie
    zrobił); czułość = 1.0, gdy wzorce nie mają żadnej edycji (TP + FN = 0: nie było czego
    znaleźć); F = 0.0, gdy precyzja i czułość są obie zerowe.
    """
    precision = counts.tp / (counts.tp + counts.fp) if counts.fp else 1.0
    recall = counts.tp / (counts.tp + counts.fn) if counts.fn else 1.0
    b2 = beta * beta
    denominator = b2 * precision + recall
    f = (1 + b2) * precision * recall / denominator if denominator else 0.0
    return precision, recall, f


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float | None:
    """Korpusowy chrF (sacrebleu, skala 0-100); ``None`` dla pustej listy.

    Args:
        hypotheses: Tłumaczenia modelu (pusty napis dla pozycji bez odpowiedzi).
        references: Dla każdej hipotezy lista jej wzorców (liczba wzorców może się różnić).
    """
    if not hypotheses:
        return None
    width = max(len(refs) for refs in references)
    # sacrebleu przyjmuje strumienie wzorców równej długości; brakujące miejsca to None
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return CHRF().corpus_score(list(hypotheses), streams).score


def percentile(values: Sequence[float], q: float) -> float | None:
    """Percentyl ``q`` (0-100) z interpolacją liniową między sąsiednimi pozycjami (jak numpy).

    Returns:
        Wartość percentyla albo ``None`` dla pustej listy.
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class ItemOutcome:
    """Wynik jednej pozycji zestawu w jednym przebiegu modelu.

    Attributes:
        text: Tekst wysłany do modelu.
        references: Akceptowalne odpowiedzi (co najmniej jedna).
        answer: Odpowiedź modelu; ``None``, gdy pozycja się nie powiodła.
        categories: Kategorie błędów tekstu (z zestawu).
        action: ``correct`` albo ``translate``.
        cost_usd: Koszt zapytań tej pozycji.
        latency_s: Czas odpowiedzi w sekundach (``None``, gdy nieznany).
    """

    text: str
    references: tuple[str, ...]
    answer: str | None
    categories: tuple[str, ...] = ()
    action: str = "correct"
    cost_usd: float = 0.0
    latency_s: float | None = None


@dataclass
class CategoryResult:
    """Czułość w jednej kategorii: ``n`` tekstów, ``recall`` = TP / (TP + FN) ich edycji."""

    n: int
    recall: float


@dataclass
class ModelResult:
    """Wynik jednego modelu na zestawie; ``to_dict`` daje dokładnie kształt pliku ``--json``."""

    model: str
    prompt_version: str | None
    items: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f05: float | None
    unchanged_changed_rate: float | None
    exact_match: float | None
    chrf: float | None
    cost_usd: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    failed: int
    per_category: dict[str, CategoryResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Słownik gotowy do ``json.dumps`` (kolejność kluczy jak w opisie formatu)."""
        return asdict(self)


def eval_report(set_name: str, results: Sequence[ModelResult]) -> dict[str, Any]:
    """Zawartość pliku ``--json``: ``{"set": ..., "results": [...]}``."""
    return {"set": set_name, "results": [result.to_dict() for result in results]}


def aggregate(model: str, prompt_version: str | None, outcomes: Sequence[ItemOutcome]) -> ModelResult:
    """Składa wyniki pozycji w wynik modelu na zestawie.

    Reguły:
        - Edycje (TP/FP/FN, precyzja, czułość, F0.5, kategorie) liczone są tylko dla korekt;
          chrF tylko dla tłumaczeń. Gdy zestaw nie ma korekt, precyzja/czułość/F0.5 są ``None``;
          gdy nie ma tłumaczeń, chrF jest ``None``.
        - Pozycja nieudana (``answer is None``) liczy się tak, jak zostałaby w zadaniu: tekst bez
          zmian (edycje wzorca to FN), nigdy jako trafienie ``exact_match``; w chrF jako pusta
          hipoteza.
        - ``exact_match``: udział pozycji, których odpowiedź jest równa któremuś wzorcowi
          (porównanie napisów dokładne); ``None`` dla pustego zestawu.
        - ``unchanged_changed_rate``: wśród korekt, których któryś wzorzec jest równy tekstowi
          (tekst już poprawny), udział tych, które model zmienił; ``None``, gdy takich nie ma.
        - Kategorie: dla każdej kategorii ``n`` tekstów i czułość z ich sum TP/FN (0/0 = 1.0).
        - Opóźnienie: p50/p95 z ``latency_s`` pozycji, które je mają; koszt: suma.
    """
    total = EditCounts()
    per_category: dict[str, tuple[int, EditCounts]] = {}
    correct_texts = changed_correct = exact = 0
    hypotheses: list[str] = []
    translation_refs: list[tuple[str, ...]] = []
    corrections = 0
    for item in outcomes:
        if item.answer is not None and item.answer in item.references:
            exact += 1
        if item.action == "translate":
            hypotheses.append(item.answer or "")
            translation_refs.append(item.references)
            continue
        corrections += 1
        answer = item.text if item.answer is None else item.answer
        counts, _ = score_text(item.text, answer, item.references)
        total += counts
        for category in item.categories:
            n, sums = per_category.get(category, (0, EditCounts()))
            per_category[category] = (n + 1, sums + counts)
        if item.text in item.references:
            correct_texts += 1
            changed_correct += answer != item.text
    precision = recall = f05 = None
    if corrections:
        precision, recall, f05 = precision_recall_f(total)
    latencies = [item.latency_s for item in outcomes if item.latency_s is not None]
    return ModelResult(
        model=model,
        prompt_version=prompt_version,
        items=len(outcomes),
        tp=total.tp,
        fp=total.fp,
        fn=total.fn,
        precision=precision,
        recall=recall,
        f05=f05,
        unchanged_changed_rate=changed_correct / correct_texts if correct_texts else None,
        exact_match=exact / len(outcomes) if outcomes else None,
        chrf=chrf(hypotheses, translation_refs),
        cost_usd=sum(item.cost_usd for item in outcomes),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        failed=sum(item.answer is None for item in outcomes),
        per_category={
            name: CategoryResult(n=n, recall=precision_recall_f(sums)[1])
            for name, (n, sums) in sorted(per_category.items())
        },
    )
