"""Decyzje człowieka o pozycjach: akceptacja, odrzucenie, poprawka tekstu, część zmian, cofnięcie.

Decyzja (``accepted``/``rejected``) trafia do ``task_item.status`` razem z ``approved_by``
i ``approved_at``, a w tej samej transakcji do ``review_log`` i do liczników zadania; eksport
zapisuje do źródła tylko pozycje ``accepted``. Reguły (kiedy wolno) są w ``lib/review/rules.py``,
SQL pozycji w ``lib/task_item.py``, dziennik w ``lib/review/log.py``. Każda transakcja blokuje
najpierw wiersz zadania, potem pozycje - ta sama kolejność co w runach synchronizacji i eksportu.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, TypeVar

from lib import task_item
from lib.db_local import MySQL, retry_on_deadlock
from lib.db_utils import compute_hash
from lib.errors import UsageError
from lib.review import log as review_log
from lib.review.diff import apply_hunks, restore_line_endings
from lib.review.items import get_item
from lib.review.rules import (
    DECISIONS,
    ITEM_STATUSES,
    changed_since_shown,
    check_reviewer,
    check_status,
    refusal_reason,
    undo_refusal,
)
from lib.task import get_task, lock_task_row

# Najwięcej pozycji blokowanych w jednej transakcji decyzji.
_DECISION_CHUNK = 1000

_T = TypeVar("_T")

# Wynik decyzji o wielu pozycjach: zmienione id i odmowy ``(id, powód)``.
Decided = tuple[list[int], list[tuple[int, str]]]


class Outcome(NamedTuple):
    """Wynik decyzji o jednej pozycji: czy coś zmieniono, powód odmowy, której pozycji dotyczy."""

    changed: bool
    reason: str | None
    id_item: int | None = None


class _Decision(NamedTuple):
    """Jedna decyzja do zapisania: zadanie, decyzja, kto, sesja i wersje pokazane człowiekowi."""

    id_task: int
    decision: str
    by: str
    session: str | None
    expected: dict[int, str] | None


def set_decision(
    db: MySQL,
    id_task: int,
    item_ids: list[int] | None,
    decision: str,
    by: str,
    status_filter: str | None = "processed",
    session: str | None = None,
    expected: dict[int, str] | None = None,
) -> tuple[list[int], list[tuple[int, str]]]:
    """Zapisuje decyzję człowieka (akceptacja albo odrzucenie) dla pozycji zadania.

    Każda transakcja blokuje najpierw wiersz zadania, potem pozycje (``FOR UPDATE``) - ta sama
    kolejność co w runach synchronizacji i eksportu, więc nie ma zakleszczeń. Pozycje, których
    nie można oznaczyć, są pomijane z powodem; pozostałe dostają status, ``approved_by``
    i ``approved_at`` (a ``export_error`` jest czyszczony). W tej samej transakcji każda zmiana
    trafia do ``review_log`` (stan przed, do cofnięcia), a liczniki zadania zmieniają się o różnicę.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        item_ids: Identyfikatory pozycji (``id_task_item``) albo ``None`` = wszystkie pozycje
            zadania o statusie ``status_filter``.
        decision: ``accepted`` albo ``rejected``.
        by: Kto decyduje (``approved_by``, najwyżej 64 znaki).
        status_filter: Status pozycji wybieranych przy ``item_ids=None``; ``None`` = każdy.
        session: Sesja strony przeglądu (``review_log.session``, cofanie); ``None`` = terminal.
        expected: ``{id pozycji: wersja}`` wersji pokazanych człowiekowi (``item_version``);
            pozycja zmieniona od tamtej chwili jest odmawiana z opisem jej obecnego stanu.

    Returns:
        Krotka ``(zmienione id, [(id, powód odmowy), ...])``.

    Raises:
        UsageError: Nieznane zadanie, decyzja, status albo pusty/za długi ``by``.
    """
    if decision not in DECISIONS:
        raise UsageError(f"nieznana decyzja {decision!r} (dozwolone: {', '.join(DECISIONS)})")
    by = check_reviewer(by)
    check_status(status_filter)
    get_task(db, id_task)
    db.commit()
    request = _Decision(id_task, decision, by, session, expected)
    if item_ids is not None:
        return _decide_by_id(db, request, item_ids)
    return _decide_by_status(db, request, status_filter)


def _decide_by_id(db: MySQL, request: _Decision, item_ids: list[int]) -> Decided:
    """Decyzja o wskazanych pozycjach, po ``_DECISION_CHUNK`` w transakcji (kolejność jak podana)."""
    changed: list[int] = []
    refused: list[tuple[int, str]] = []
    wanted = list(dict.fromkeys(int(i) for i in item_ids))
    for start in range(0, len(wanted), _DECISION_CHUNK):
        chunk = wanted[start : start + _DECISION_CHUNK]
        ids, reasons = _in_transaction(db, request.id_task, partial(_decide_chunk, db, request, chunk))
        changed.extend(ids)
        refused.extend(reasons)
    return changed, refused


def _decide_chunk(db: MySQL, request: _Decision, chunk: list[int]) -> Decided:
    """Blokuje i oznacza pozycje o podanych id; id spoza zadania są odmawiane z powodem."""
    rows = task_item.lock_items_by_id(db, request.id_task, chunk)
    ids, refused = _apply(db, request, rows)
    found = {int(r["id_task_item"]) for r in rows}
    refused.extend((i, f"nie ma takiej pozycji w zadaniu {request.id_task}") for i in chunk if i not in found)
    return ids, refused


def _decide_by_status(db: MySQL, request: _Decision, status_filter: str | None) -> Decided:
    """Decyzja o wszystkich pozycjach zadania o danym statusie (``None`` = każdym), stronami."""
    # Bez filtra: najpierw status samej decyzji (te pozycje są tylko odmawiane), potem pozostałe -
    # pozycja oznaczona w późniejszym przebiegu nie wraca już do przeglądanego statusu.
    if status_filter is None:
        statuses = [request.decision, *(s for s in ITEM_STATUSES if s != request.decision)]
    else:
        statuses = [status_filter]
    changed: list[int] = []
    refused: list[tuple[int, str]] = []
    for status in statuses:
        last_id = 0
        while True:
            page = partial(_decide_page, db, request, status, last_id)
            ids, reasons, count, last_id = _in_transaction(db, request.id_task, page)
            changed.extend(ids)
            refused.extend(reasons)
            if count < _DECISION_CHUNK:
                break
    return changed, refused


def _decide_page(
    db: MySQL, request: _Decision, status: str, after: int
) -> tuple[list[int], list[tuple[int, str]], int, int]:
    """Blokuje i oznacza jedną stronę pozycji o statusie ``status`` za ``after``.

    Returns:
        ``(zmienione id, odmowy, liczba wierszy strony, ostatnie id strony)``.
    """
    rows = task_item.lock_items_page(db, request.id_task, status, after, _DECISION_CHUNK)
    ids, refused = _apply(db, request, rows)
    last = int(rows[-1]["id_task_item"]) if rows else after
    return ids, refused, len(rows), last


def _apply(db: MySQL, request: _Decision, rows: list[dict[str, Any]]) -> Decided:
    """Oznacza zablokowane wiersze, którym reguły pozwalają, i zapisuje to w ``review_log``."""
    allowed = []
    refused: list[tuple[int, str]] = []
    for row in rows:
        reason = refusal_reason(row, request.decision)
        if reason is None and request.expected is not None:
            reason = changed_since_shown(row, request.expected.get(int(row["id_task_item"])))
        if reason is None:
            allowed.append(row)
        else:
            refused.append((int(row["id_task_item"]), reason))
    ids = [int(r["id_task_item"]) for r in allowed]
    task_item.set_decisions(db, request.id_task, ids, request.decision, request.by)
    action = "accept" if request.decision == "accepted" else "reject"
    entries = [(r, action, request.decision, None) for r in allowed]
    review_log.record_decisions(db, entries, request.by, request.session)
    return ids, refused


def _in_transaction(db: MySQL, id_task: int, body: Callable[[], _T]) -> _T:
    """Jedna transakcja decyzji: blokada wiersza zadania, ``body``, zatwierdzenie.

    ``body`` zwraca swoje wyniki (zamiast dopisywać je do list wołającego), więc ponowienie
    po zakleszczeniu niczego nie dubluje.
    """

    def work() -> _T:
        db.begin()
        lock_task_row(db, id_task)
        result = body()
        db.commit()
        return result

    return retry_on_deadlock(work, db=db)


def _accept_with_text(
    db: MySQL,
    id_item: int,
    make_text: Callable[[dict[str, Any]], tuple[str | None, str | None]],
    by: str,
    session: str | None,
    expected_version: str | None,
    action: str,
    hunks: list[int] | None = None,
) -> Outcome:
    """Zapisuje tekst człowieka jako ``text_corrected`` i akceptuje pozycję (jedna transakcja).

    Kolejność blokad jak w ``set_decision``: wiersz zadania, potem pozycja. Reguły akceptacji
    są te same (``refusal_reason``); dodatkowo wolno poprawić pozycję już zaakceptowaną.
    ``local_hash`` liczony jest metodą zadania (``task.hash_method``).
    """
    by = check_reviewer(by)
    id_task = int(get_item(db, id_item)["id_task"])
    method = get_task(db, id_task).get("hash_method") or "sha256"
    db.commit()

    def work() -> Outcome:
        db.begin()
        lock_task_row(db, id_task)
        row = task_item.lock_item(db, id_item)
        text, reason = make_text(row)
        if reason is None and row["status"] == "accepted" and row["text_corrected"] == text:
            # Drugie kliknięcie albo drugi recenzent z tym samym tekstem: nic do zrobienia.
            db.commit()
            return Outcome(False, None, id_item)
        if reason is None and expected_version is not None:
            reason = changed_since_shown(row, expected_version)
        if reason is None:
            reason = refusal_reason(row, "accepted", same_status_ok=True)
        if reason is not None:
            db.commit()
            return Outcome(False, reason, id_item)
        new_hash = compute_hash(text, method)
        task_item.store_reviewer_text(db, id_task, id_item, text, new_hash, by)
        change = {"text": text, "hash": new_hash, "hunks": hunks} if text != row["text_corrected"] else None
        review_log.record_decisions(
            db, [(row, action if change else "accept", "accepted", change)], by, session
        )
        db.commit()
        return Outcome(True, None, id_item)

    return retry_on_deadlock(work, db=db)


def edit_and_accept(
    db: MySQL,
    id_item: int,
    text: str,
    by: str,
    session: str | None = None,
    expected_version: str | None = None,
) -> Outcome:
    """Poprawka człowieka przed akceptacją: ``text_corrected`` = ``text``, status ``accepted``.

    Końce linii: pole tekstowe przeglądarki i wiele edytorów zamieniają CRLF na LF; gdy
    zapisany tekst konsekwentnie używał CRLF (albo CR), poprawka dostaje te same końce linii
    (``restore_line_endings``), żeby eksport nie zmieniał ich po cichu.

    Args:
        db: Połączenie lokalne.
        id_item: Pozycja.
        text: Tekst człowieka.
        by: Kto decyduje (``approved_by``).
        session: Sesja strony przeglądu (do cofania) albo ``None``.
        expected_version: Wersja pozycji, którą człowiek edytował (``item_version``);
            ``None`` = bez sprawdzania.

    Returns:
        ``Outcome``; ``changed=False`` bez powodu, gdy pozycja już ma ten tekst i jest zaakceptowana.

    Raises:
        UsageError: Nieznana pozycja albo pusty ``by``.
    """

    def make_text(row: dict[str, Any]) -> tuple[str | None, str | None]:
        return restore_line_endings(row.get("text_corrected"), text), None

    return _accept_with_text(db, id_item, make_text, by, session, expected_version, "edit")


def accept_hunks(
    db: MySQL,
    id_item: int,
    chosen: list[int],
    by: str,
    session: str | None = None,
    expected_version: str | None = None,
) -> Outcome:
    """Akceptuje tylko wybrane zmiany modelu: zapisany tekst = oryginał z tymi zmianami.

    Numery zmian odnoszą się do różnicy ``text_original`` -> ``text_corrected`` w wersji,
    którą człowiek widział, dlatego ``expected_version`` jest tu zwykle podawana.

    Args:
        db: Połączenie lokalne.
        id_item: Pozycja.
        chosen: Numery zmian (``Hunk.index``) do przyjęcia.
        by: Kto decyduje.
        session: Sesja strony przeglądu albo ``None``.
        expected_version: Wersja pozycji pokazana człowiekowi.

    Returns:
        ``Outcome`` (odmowa, gdy nie wybrano żadnej zmiany albo numer nie istnieje).
    """
    wanted = sorted({int(i) for i in chosen})

    def make_text(row: dict[str, Any]) -> tuple[str | None, str | None]:
        if not wanted:
            return None, "nie wybrano żadnej zmiany - odrzuć pozycję albo wybierz zmiany"
        if row.get("text_corrected") is None:
            return None, None  # refusal_reason poda powód
        try:
            return apply_hunks(row["text_original"], row["text_corrected"], wanted), None
        except UsageError as exc:
            return None, str(exc)

    return _accept_with_text(db, id_item, make_text, by, session, expected_version, "partial", wanted)


def undo_last(db: MySQL, id_task: int, session: str, by: str) -> Outcome:
    """Cofa ostatnią niecofniętą decyzję tej sesji w zadaniu (przywraca stan sprzed niej).

    Odmowa (``undo_refusal``), gdy pozycja zmieniła się od tej decyzji (np. została już
    wyeksportowana albo zmieniona przez drugiego recenzenta). Cofnięcie samo też trafia do
    ``review_log`` (akcja ``undo``), a liczniki zadania zmieniają się o różnicę.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        session: Sesja strony przeglądu.
        by: Kto cofa.

    Returns:
        ``Outcome`` z ``id_item`` cofniętej (albo odmówionej) pozycji.
    """
    by = check_reviewer(by)

    def work() -> Outcome:
        db.begin()
        lock_task_row(db, id_task)
        entry = review_log.last_undoable(db, id_task, session)
        if entry is None:
            db.commit()
            return Outcome(False, "nie ma decyzji do cofnięcia w tej sesji")
        id_item = int(entry["id_task_item"])
        row = task_item.lock_item(db, id_item)
        reason = undo_refusal(entry, row)
        if reason is not None:
            db.commit()
            return Outcome(False, reason, id_item)
        before = {
            "status": entry["status_before"],
            "approved_by": entry["approved_by_before"],
            "approved_at": entry["approved_at_before"],
            "export_error": entry["export_error_before"],
        }
        text = (entry["text_before"], entry["hash_before"]) if entry["text_after"] is not None else None
        task_item.restore_decision(db, id_task, id_item, before, text)
        review_log.record_undo(db, entry, row, by, session)
        db.commit()
        return Outcome(True, None, id_item)

    return retry_on_deadlock(work, db=db)
