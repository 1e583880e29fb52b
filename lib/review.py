"""Przegląd wyników AI przez człowieka: różnice słów, akceptacja i odrzucenie, zrzut do CSV/JSON.

Funkcje dostają połączenie ``MySQL`` i zwracają zwykłe wartości; wypisywaniem na ekran
zajmuje się skrypt ``review.py``. Decyzja człowieka (``accepted``/``rejected``) trafia do
``task_item.status`` razem z ``approved_by`` i ``approved_at``; eksport zapisuje do źródła
tylko pozycje ``accepted``.
"""

import csv
import datetime as dt
import decimal
import difflib
import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

from lib import task_item
from lib.db_local import MySQL, retry_on_deadlock
from lib.errors import UsageError
from lib.task import get_task, lock_task_row

ITEM_STATUSES = ("pending", "processed", "accepted", "rejected", "exported", "conflict", "outdated")
DECISIONS = ("accepted", "rejected")
DUMP_FORMATS = ("csv", "json")

# Kolumny zrzutu (kolejność kolumn CSV i kluczy JSON).
DUMP_COLUMNS = (
    "id_task_item",
    "id_task",
    "remote_id",
    "remote_key",
    "status",
    "text_original",
    "text_corrected",
    "change_summary",
    "is_changed",
    "processed_at",
    "approved_by",
    "approved_at",
    "exported_at",
    "export_error",
)

# Słowa, ciągi białych znaków i pojedyncze znaki interpunkcji - jednostki porównania.
_TOKEN_RE = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)

_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_RESET = "\x1b[0m"

_DECISION_CHUNK = 1000
_DUMP_PAGE = 1000


def _tokens(text: str | None) -> list[str]:
    """Dzieli tekst na słowa, białe znaki i interpunkcję (konkatenacja daje tekst wejściowy)."""
    return _TOKEN_RE.findall(text or "")


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
    old, new = _tokens(a), _tokens(b)
    # autojunk=False: przy długich tekstach heurystyka "śmieci" psuje dopasowanie częstych słów.
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    parts: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append("".join(old[i1:i2]))
            continue
        if op in ("delete", "replace"):
            mark = "[-" + "".join(old[i1:i2]) + "-]"
            parts.append(f"{_RED}{mark}{_RESET}" if color else mark)
        if op in ("insert", "replace"):
            mark = "{+" + "".join(new[j1:j2]) + "+}"
            parts.append(f"{_GREEN}{mark}{_RESET}" if color else mark)
    return "".join(parts)


def parse_summary(raw: str | None) -> dict[str, Any]:
    """Odczytuje ``change_summary`` (JSON) w postaci ``{"edits": [...], "counts": {...}}``.

    Args:
        raw: Zawartość kolumny ``change_summary`` albo ``None``.

    Returns:
        Słownik z kluczami ``edits`` i ``counts`` (puste, gdy brak lub niepoprawny JSON;
        wtedy dodatkowo ``invalid`` z surowym tekstem).
    """
    if not raw:
        return {"edits": [], "counts": {}}
    try:
        data = json.loads(raw)
    except ValueError:
        return {"edits": [], "counts": {}, "invalid": raw}
    if not isinstance(data, dict):
        return {"edits": [], "counts": {}, "invalid": raw}
    edits = data.get("edits") if isinstance(data.get("edits"), list) else []
    counts = data.get("counts") if isinstance(data.get("counts"), dict) else {}
    return {"edits": edits, "counts": counts}


def _check_status(status: str | None) -> None:
    if status is not None and status not in ITEM_STATUSES:
        raise UsageError(f"nieznany status pozycji {status!r} (dozwolone: {', '.join(ITEM_STATUSES)})")


def list_items(
    db: MySQL, id_task: int, status: str | None = "processed", limit: int = 20
) -> list[dict[str, Any]]:
    """Zwraca pozycje zadania do przeglądu (nieusunięte) w porządku źródła.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        status: Status pozycji albo ``None`` = wszystkie.
        limit: Maksymalna liczba pozycji.

    Returns:
        Lista słowników z kolumnami pozycji (``id_task_item``, ``remote_key``, ``status``,
        teksty, ``change_summary``, ``is_changed``, ``approved_by``, ``export_error``...).

    Raises:
        UsageError: Nieznane zadanie, status albo ujemny limit.
    """
    _check_status(status)
    if limit < 1:
        raise UsageError(f"--limit musi być dodatni (jest {limit})")
    get_task(db, id_task)
    return task_item.list_for_review(db, id_task, status, limit)


def get_item(db: MySQL, id_item: int) -> dict[str, Any]:
    """Zwraca jedną pozycję (wszystkie kolumny).

    Raises:
        UsageError: Gdy pozycja nie istnieje.
    """
    row = task_item.get_item_row(db, id_item)
    if row is None:
        raise UsageError(f"pozycja {id_item} nie istnieje w tabeli task_item")
    return row


def refusal_reason(item: dict[str, Any], decision: str) -> str | None:
    """Sprawdza, czy pozycję można oznaczyć decyzją człowieka; zwraca powód odmowy albo ``None``.

    Akceptacja wymaga aktualnej korekty: pozycja nieusunięta, przetworzona przez AI, bez zmiany
    tekstu w źródle po korekcie. Pozycję w konflikcie można zaakceptować ponownie (eksport
    sprawdzi źródło jeszcze raz). Wyeksportowanej nie można już ani zaakceptować, ani odrzucić.

    Args:
        item: Wiersz ``task_item`` (status, deleted_at, is_changed, text_corrected,
            processed_at, verified_at).
        decision: ``accepted`` albo ``rejected``.

    Returns:
        Powód odmowy (po polsku) albo ``None``, gdy decyzja jest dozwolona.
    """
    status = item["status"]
    if item.get("deleted_at") is not None:
        return "wiersz został usunięty ze źródła"
    if status == decision:
        return f"pozycja ma już status {status}"
    if status == "exported":
        return "pozycja jest już wyeksportowana do źródła"
    if status == "outdated":
        return "nieaktualna: tekst w źródle zmienił się po korekcie (czeka na ponowne przetworzenie przez AI)"
    if status == "pending" or item.get("text_corrected") is None:
        return "pozycja nie została jeszcze przetworzona przez AI"
    if decision == "accepted" and item.get("is_changed"):
        # is_changed zostaje 1 po zmianie w źródle; korekta zrobiona później dotyczy już nowego tekstu.
        processed, verified = item.get("processed_at"), item.get("verified_at")
        if processed is None or verified is None or processed <= verified:
            return "tekst w źródle zmienił się po korekcie (is_changed=1); zsynchronizuj i przetwórz ponownie"
    return None


def set_decision(
    db: MySQL,
    id_task: int,
    item_ids: list[int] | None,
    decision: str,
    by: str,
    status_filter: str | None = "processed",
) -> tuple[list[int], list[tuple[int, str]]]:
    """Zapisuje decyzję człowieka (akceptacja albo odrzucenie) dla pozycji zadania.

    Każda transakcja blokuje najpierw wiersz zadania, potem pozycje (``FOR UPDATE``) - ta sama
    kolejność co w runach synchronizacji i eksportu, więc nie ma zakleszczeń. Pozycje, których
    nie można oznaczyć, są pomijane z powodem; pozostałe dostają status, ``approved_by``
    i ``approved_at`` (a ``export_error`` jest czyszczony). Na końcu liczniki zadania są przeliczane.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        item_ids: Identyfikatory pozycji (``id_task_item``) albo ``None`` = wszystkie pozycje
            zadania o statusie ``status_filter``.
        decision: ``accepted`` albo ``rejected``.
        by: Kto decyduje (``approved_by``, najwyżej 64 znaki).
        status_filter: Status pozycji wybieranych przy ``item_ids=None``; ``None`` = każdy.

    Returns:
        Krotka ``(zmienione id, [(id, powód odmowy), ...])``.

    Raises:
        UsageError: Nieznane zadanie, decyzja, status albo pusty/za długi ``by``.
    """
    if decision not in DECISIONS:
        raise UsageError(f"nieznana decyzja {decision!r} (dozwolone: {', '.join(DECISIONS)})")
    by = (by or "").strip()
    if not by or len(by) > 64:
        raise UsageError("--by: podaj, kto decyduje (1-64 znaki)")
    _check_status(status_filter)
    get_task(db, id_task)
    db.commit()
    changed: list[int] = []
    refused: list[tuple[int, str]] = []

    def apply(rows: list[dict[str, Any]]) -> None:
        allowed = []
        for row in rows:
            reason = refusal_reason(row, decision)
            if reason is None:
                allowed.append(int(row["id_task_item"]))
            else:
                refused.append((int(row["id_task_item"]), reason))
        task_item.set_decisions(db, allowed, decision, by)
        changed.extend(allowed)

    if item_ids is not None:
        wanted = list(dict.fromkeys(int(i) for i in item_ids))
        for start in range(0, len(wanted), _DECISION_CHUNK):
            chunk = wanted[start : start + _DECISION_CHUNK]

            def work(chunk: list[int] = chunk) -> None:
                db.begin()
                lock_task_row(db, id_task)
                rows = task_item.lock_items_by_id(db, id_task, chunk)
                found = {int(r["id_task_item"]) for r in rows}
                mark_changed, mark_refused = len(changed), len(refused)
                try:
                    apply(rows)
                    for id_item in chunk:
                        if id_item not in found:
                            refused.append((id_item, f"nie ma takiej pozycji w zadaniu {id_task}"))
                    db.commit()
                except BaseException:
                    # Ponowienie po zakleszczeniu nie może dublować wyników.
                    del changed[mark_changed:], refused[mark_refused:]
                    raise

            retry_on_deadlock(work, db=db)
    else:
        last_id = 0
        while True:
            state: dict[str, Any] = {}

            def work(after: int = last_id, state: dict[str, Any] = state) -> None:
                db.begin()
                lock_task_row(db, id_task)
                rows = task_item.lock_items_page(db, id_task, after, status_filter, _DECISION_CHUNK)
                mark_changed, mark_refused = len(changed), len(refused)
                try:
                    apply(rows)
                    db.commit()
                except BaseException:
                    del changed[mark_changed:], refused[mark_refused:]
                    raise
                state["rows"] = len(rows)
                state["last"] = int(rows[-1]["id_task_item"]) if rows else after

            retry_on_deadlock(work, db=db)
            if state["rows"] < _DECISION_CHUNK:
                break
            last_id = state["last"]
    task_item.refresh_review_counters(db, id_task)
    return changed, refused


def _iter_dump_rows(db: MySQL, id_task: int, statuses: list[str] | None) -> Iterator[dict[str, Any]]:
    """Czyta pozycje do zrzutu stronami po ``id_task_item`` (pamięć nie rośnie z rozmiarem zadania)."""
    last_id = 0
    while True:
        rows = task_item.dump_page(db, id_task, DUMP_COLUMNS, statuses, last_id, _DUMP_PAGE)
        yield from rows
        if len(rows) < _DUMP_PAGE:
            return
        last_id = int(rows[-1]["id_task_item"])


def _plain(value: Any) -> Any:
    """Zamienia wartości z bazy na typy JSON (daty ISO, Decimal jako liczba)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def dump_items(db: MySQL, id_task: int, fmt: str, out: TextIO, statuses: list[str] | None = None) -> int:
    """Zapisuje pozycje zadania do CSV albo JSON (dla osób, które przeglądają poza systemem).

    Bez ``statuses`` zrzut obejmuje każdą nieusuniętą pozycję z korektą (``text_corrected``).
    W JSON ``change_summary`` jest obiektem, w CSV - tekstem JSON. Plik powstaje strumieniowo.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        fmt: ``csv`` albo ``json``.
        out: Otwarty plik tekstowy (albo ``sys.stdout``).
        statuses: Statusy pozycji do zrzutu albo ``None``.

    Returns:
        Liczba zapisanych pozycji.

    Raises:
        UsageError: Nieznane zadanie, format albo status.
    """
    if fmt not in DUMP_FORMATS:
        raise UsageError(f"nieznany format {fmt!r} (dozwolone: {', '.join(DUMP_FORMATS)})")
    for status in statuses or []:
        _check_status(status)
    get_task(db, id_task)
    db.commit()
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(DUMP_COLUMNS)
        for row in _iter_dump_rows(db, id_task, statuses):
            writer.writerow(["" if row[c] is None else _plain(row[c]) for c in DUMP_COLUMNS])
            count += 1
        return count
    out.write("[")
    for row in _iter_dump_rows(db, id_task, statuses):
        record = {c: _plain(row[c]) for c in DUMP_COLUMNS}
        if row["change_summary"]:
            record["change_summary"] = parse_summary(row["change_summary"])
        out.write(("\n" if count == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
