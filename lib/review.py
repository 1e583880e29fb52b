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
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TextIO

from lib.db_local import MySQL, retry_on_deadlock
from lib.db_utils import compute_hash
from lib.errors import UsageError
from lib.task import get_task, lock_task_row
from lib.task_item import refresh_review_counters

ITEM_STATUSES = ("pending", "processed", "accepted", "rejected", "exported", "conflict", "outdated")
DECISIONS = ("accepted", "rejected")
DUMP_FORMATS = ("csv", "json")

# Kolumny zrzutu (kolejność kolumn CSV i kluczy JSON).
DUMP_COLUMNS = (
    "id_task_item",
    "id_task",
    "remote_id",
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

# Kolumny pozycji czytane pod blokadą przy decyzji: reguły (refusal_reason), wersja i stan
# "przed" do review_log.
_DECISION_COLUMNS = (
    "id_task_item, id_task, status, deleted_at, is_changed, text_corrected, processed_at, verified_at, "
    "approved_by, approved_at, export_error, local_hash, row_updated_at"
)


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


def check_reviewer(by: str | None) -> str:
    """Sprawdza nazwę osoby decydującej (``approved_by``) i zwraca ją bez spacji na brzegach.

    Raises:
        UsageError: Gdy nazwa jest pusta albo dłuższa niż 64 znaki.
    """
    by = (by or "").strip()
    if not by or len(by) > 64:
        raise UsageError("--by: podaj, kto decyduje (1-64 znaki)")
    return by


def _check_status(status: str | None) -> None:
    if status is not None and status not in ITEM_STATUSES:
        raise UsageError(f"nieznany status pozycji {status!r} (dozwolone: {', '.join(ITEM_STATUSES)})")


def list_items(
    db: MySQL, id_task: int, status: str | None = "processed", limit: int = 20
) -> list[dict[str, Any]]:
    """Zwraca pozycje zadania do przeglądu (nieusunięte), rosnąco po ``remote_id``.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        status: Status pozycji albo ``None`` = wszystkie.
        limit: Maksymalna liczba pozycji.

    Returns:
        Lista słowników z kolumnami pozycji (``id_task_item``, ``remote_id``, ``status``,
        teksty, ``change_summary``, ``is_changed``, ``approved_by``, ``export_error``...).

    Raises:
        UsageError: Nieznane zadanie, status albo ujemny limit.
    """
    _check_status(status)
    if limit < 1:
        raise UsageError(f"--limit musi być dodatni (jest {limit})")
    get_task(db, id_task)
    where = "id_task=%s AND deleted_at IS NULL"
    params: list[Any] = [id_task]
    if status is not None:
        where += " AND status=%s"
        params.append(status)
    params.append(limit)
    rows = db.query(
        "SELECT id_task_item, id_task, remote_id, status, text_original, text_corrected, change_summary, is_changed, "
        "processed_at, approved_by, approved_at, exported_at, export_error "
        f"FROM task_item WHERE {where} ORDER BY remote_id LIMIT %s",
        params,
    )
    db.commit()
    return rows


def get_item(db: MySQL, id_item: int) -> dict[str, Any]:
    """Zwraca jedną pozycję (wszystkie kolumny).

    Raises:
        UsageError: Gdy pozycja nie istnieje.
    """
    row = db.query_one("SELECT * FROM task_item WHERE id_task_item=%s", (id_item,))
    db.commit()
    if row is None:
        raise UsageError(f"pozycja {id_item} nie istnieje w tabeli task_item")
    return row


def refusal_reason(item: dict[str, Any], decision: str, same_status_ok: bool = False) -> str | None:
    """Sprawdza, czy pozycję można oznaczyć decyzją człowieka; zwraca powód odmowy albo ``None``.

    Akceptacja wymaga aktualnej korekty: pozycja nieusunięta, przetworzona przez AI, bez zmiany
    tekstu w źródle po korekcie. Pozycję w konflikcie można zaakceptować ponownie (eksport
    sprawdzi źródło jeszcze raz). Wyeksportowanej nie można już ani zaakceptować, ani odrzucić.

    Args:
        item: Wiersz ``task_item`` (status, deleted_at, is_changed, text_corrected,
            processed_at, verified_at).
        decision: ``accepted`` albo ``rejected``.
        same_status_ok: ``True`` pozwala na pozycję, która już ma ten status (poprawka tekstu
            pozycji już zaakceptowanej przed eksportem).

    Returns:
        Powód odmowy (po polsku) albo ``None``, gdy decyzja jest dozwolona.
    """
    status = item["status"]
    if item.get("deleted_at") is not None:
        return "wiersz został usunięty ze źródła"
    if status == decision and not same_status_ok:
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
    session: str | None = None,
    expected: dict[int, str] | None = None,
) -> tuple[list[int], list[tuple[int, str]]]:
    """Zapisuje decyzję człowieka (akceptacja albo odrzucenie) dla pozycji zadania.

    Każda transakcja blokuje najpierw wiersz zadania, potem pozycje (``FOR UPDATE``) - ta sama
    kolejność co w runach synchronizacji i eksportu, więc nie ma zakleszczeń. Pozycje, których
    nie można oznaczyć, są pomijane z powodem; pozostałe dostają status, ``approved_by``
    i ``approved_at`` (a ``export_error`` jest czyszczony), a każda zmiana trafia do
    ``review_log`` (stan przed, do cofnięcia). Na końcu liczniki zadania są przeliczane.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        item_ids: Identyfikatory pozycji (``id_task_item``) albo ``None`` = wszystkie pozycje
            zadania o statusie ``status_filter``.
        decision: ``accepted`` albo ``rejected``.
        by: Kto decyduje (``approved_by``, najwyżej 64 znaki).
        status_filter: Status pozycji wybieranych przy ``item_ids=None``; ``None`` = każdy.
        session: Sesja strony przeglądu (``review_log.session``, cofanie); ``None`` = CLI.
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
    _check_status(status_filter)
    get_task(db, id_task)
    db.commit()
    changed: list[int] = []
    refused: list[tuple[int, str]] = []
    columns = _DECISION_COLUMNS

    def apply(rows: list[dict[str, Any]]) -> None:
        allowed = []
        for row in rows:
            reason = refusal_reason(row, decision)
            if reason is None and expected is not None:
                reason = _changed_since_shown(row, expected.get(int(row["id_task_item"])))
            if reason is None:
                allowed.append(row)
            else:
                refused.append((int(row["id_task_item"]), reason))
        if allowed:
            ids = [int(r["id_task_item"]) for r in allowed]
            marks = ", ".join(["%s"] * len(ids))
            db.execute(
                f"UPDATE task_item SET status=%s, approved_by=%s, approved_at=NOW(), export_error=NULL "
                f"WHERE id_task_item IN ({marks})",
                [decision, by, *ids],
            )
            action = "accept" if decision == "accepted" else "reject"
            _log_decisions(db, [(r, action, decision, None) for r in allowed], by, session)
            changed.extend(ids)

    if item_ids is not None:
        wanted = list(dict.fromkeys(int(i) for i in item_ids))
        for start in range(0, len(wanted), _DECISION_CHUNK):
            chunk = wanted[start : start + _DECISION_CHUNK]

            def work(chunk: list[int] = chunk) -> None:
                db.begin()
                lock_task_row(db, id_task)
                marks = ", ".join(["%s"] * len(chunk))
                rows = db.query(
                    f"SELECT {columns} FROM task_item WHERE id_task=%s AND id_task_item IN ({marks}) FOR UPDATE",
                    [id_task, *chunk],
                )
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
                where = "id_task=%s AND deleted_at IS NULL AND id_task_item > %s"
                params: list[Any] = [id_task, after]
                if status_filter is not None:
                    where += " AND status=%s"
                    params.append(status_filter)
                rows = db.query(
                    f"SELECT {columns} FROM task_item WHERE {where} ORDER BY id_task_item LIMIT %s FOR UPDATE",
                    [*params, _DECISION_CHUNK],
                )
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
    refresh_review_counters(db, id_task)
    return changed, refused


def _iter_dump_rows(db: MySQL, id_task: int, statuses: list[str] | None) -> Iterator[dict[str, Any]]:
    """Czyta pozycje do zrzutu stronami po ``id_task_item`` (pamięć nie rośnie z rozmiarem zadania)."""
    last_id = 0
    while True:
        where = "id_task=%s AND deleted_at IS NULL AND id_task_item > %s"
        params: list[Any] = [id_task, last_id]
        if statuses:
            where += f" AND status IN ({', '.join(['%s'] * len(statuses))})"
            params.extend(statuses)
        else:
            where += " AND text_corrected IS NOT NULL"
        rows = db.query(
            f"SELECT {', '.join(DUMP_COLUMNS)} FROM task_item WHERE {where} ORDER BY id_task_item LIMIT %s",
            [*params, _DUMP_PAGE],
        )
        db.commit()
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


# --- Zapytania pozycji strony przeglądu -------------------------------------------------------
# Wiersze task_item czytane i zmieniane przez stronę przeglądu i ``review.py edit``: strona
# pozycji (keyset), poprawka przed akceptacją, akceptacja części zmian, cofnięcie decyzji
# i dziennik decyzji ``review_log``. Do przeniesienia do ``lib/task_item.py`` (issue 11).

PAGE_LIMIT_MAX = 200

# Kolumny pozycji pokazywane na stronie przeglądu.
_PAGE_COLUMNS = (
    "id_task_item, id_task, remote_id, status, text_original, text_corrected, change_summary, is_changed, "
    "processed_at, verified_at, approved_by, approved_at, exported_at, export_error, deleted_at, row_updated_at, "
    "tokens_input, tokens_output, cost_usd"
)

_LOG_COLUMNS = (
    "id_task, id_task_item, action, reviewer, session, status_before, status_after, approved_by_before, "
    "approved_at_before, export_error_before, hash_before, hash_after, text_before, text_after, hunks, undoes"
)
_LOG_MARKS = ", ".join(["%s"] * len(_LOG_COLUMNS.split(",")))


class Page(NamedTuple):
    """Strona pozycji: wiersze rosnąco po ``id_task_item`` i czy istnieją strony obok."""

    items: list[dict[str, Any]]
    has_prev: bool
    has_next: bool


class Outcome(NamedTuple):
    """Wynik decyzji o jednej pozycji: czy coś zmieniono, powód odmowy, której pozycji dotyczy."""

    changed: bool
    reason: str | None
    id_item: int | None = None


def item_version(row: dict[str, Any]) -> str:
    """Wersja wiersza pozycji (``row_updated_at`` z mikrosekundami) pokazana człowiekowi.

    Decyzja podjęta na podstawie starszej wersji jest odmawiana: człowiek nie zatwierdza
    tekstu, którego nie widział.
    """
    value = row.get("row_updated_at")
    return value.isoformat() if value is not None else ""


def describe_state(row: dict[str, Any]) -> str:
    """Krótki opis obecnego stanu pozycji (status i kto zdecydował), np. ``accepted (anna)``."""
    who = f" ({row['approved_by']})" if row.get("approved_by") and row["status"] != "processed" else ""
    return f"{row['status']}{who}"


def _changed_since_shown(row: dict[str, Any], shown: str | None) -> str | None:
    """Powód odmowy, gdy pozycja zmieniła się od wyświetlenia (albo nie była wyświetlona)."""
    if shown is None:
        return "pozycja nie była wyświetlona w tej sesji - odśwież stronę"
    if item_version(row) != shown:
        return f"pozycja zmieniła się od wyświetlenia (teraz: {describe_state(row)}) - sprawdź ją jeszcze raz"
    return None


def _log_decisions(
    db: MySQL,
    entries: list[tuple[dict[str, Any], str, str, dict[str, Any] | None]],
    by: str,
    session: str | None,
) -> None:
    """Dopisuje decyzje do ``review_log`` w bieżącej transakcji (jedno wielowierszowe INSERT).

    Args:
        db: Połączenie w transakcji, która zmienia pozycje.
        entries: ``(wiersz przed zmianą, akcja, status po, zmiana tekstu albo None)``; zmiana
            tekstu to słownik ``text``, ``hash`` i opcjonalnie ``hunks``.
        by: Kto decyduje.
        session: Sesja strony przeglądu albo ``None`` (CLI).
    """
    rows = []
    for row, action, status_after, text_change in entries:
        text_change = text_change or {}
        rows.append(
            (
                row["id_task"],
                row["id_task_item"],
                action,
                by,
                session,
                row["status"],
                status_after,
                row.get("approved_by"),
                row.get("approved_at"),
                row.get("export_error"),
                row.get("local_hash"),
                text_change.get("hash", row.get("local_hash")),
                row.get("text_corrected") if text_change else None,
                text_change.get("text"),
                json.dumps(text_change["hunks"]) if text_change.get("hunks") is not None else None,
                None,
            )
        )
    db.executemany(f"INSERT INTO review_log ({_LOG_COLUMNS}) VALUES ({_LOG_MARKS})", rows)


def page_items(
    db: MySQL,
    id_task: int,
    status: str,
    after: int | None = None,
    before: int | None = None,
    limit: int = 20,
) -> Page:
    """Zwraca jedną stronę nieusuniętych pozycji zadania o danym statusie (keyset, bez OFFSET).

    Zapytanie czyta indeks ``(id_task, status)`` od klucza strony (InnoDB dokleja do niego
    klucz główny), więc koszt strony nie zależy od tego, jak daleko jest ona w zadaniu.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        status: Status pozycji (jeden z ``ITEM_STATUSES``).
        after: Pozycje o ``id_task_item`` większym niż ten (następna strona).
        before: Pozycje o ``id_task_item`` mniejszym niż ten (poprzednia strona).
        limit: Liczba pozycji na stronie (1..``PAGE_LIMIT_MAX``).

    Returns:
        ``Page`` z pozycjami rosnąco po ``id_task_item``.

    Raises:
        UsageError: Nieznany status albo limit spoza zakresu.
    """
    if status not in ITEM_STATUSES:
        raise UsageError(f"nieznany status pozycji {status!r} (dozwolone: {', '.join(ITEM_STATUSES)})")
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise UsageError(f"liczba pozycji na stronie musi być w zakresie 1..{PAGE_LIMIT_MAX} (jest {limit})")
    backwards = before is not None
    sql, params = page_query(id_task, status, before if backwards else after, backwards, limit + 1)
    rows = db.query(sql, params)
    db.commit()
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return Page(rows, more, True)
    return Page(rows, after is not None, more)


def page_query(
    id_task: int, status: str, key: int | None, backwards: bool, limit: int
) -> tuple[str, list[Any]]:
    """Buduje zapytanie strony pozycji (też do sprawdzenia planu przez ``EXPLAIN`` w testach).

    Returns:
        Krotka ``(sql, parametry)``.
    """
    where = "id_task=%s AND status=%s AND deleted_at IS NULL"
    params: list[Any] = [id_task, status]
    if key is not None:
        where += " AND id_task_item < %s" if backwards else " AND id_task_item > %s"
        params.append(int(key))
    order = "DESC" if backwards else "ASC"
    # FORCE INDEX: przy ORDER BY klucza głównego z LIMIT optymalizator potrafi wybrać skan PRIMARY
    # przez całą tabelę (wszystkie zadania) zamiast zakresu indeksu (id_task, status, id).
    sql = (
        f"SELECT {_PAGE_COLUMNS} FROM task_item FORCE INDEX (idx_task_item_task_status) "
        f"WHERE {where} ORDER BY id_task_item {order} LIMIT %s"
    )
    return sql, [*params, limit]


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
    head = db.query_one("SELECT id_task FROM task_item WHERE id_task_item=%s", (id_item,))
    db.commit()
    if head is None:
        raise UsageError(f"pozycja {id_item} nie istnieje w tabeli task_item")
    id_task = int(head["id_task"])

    def work() -> Outcome:
        db.begin()
        lock_task_row(db, id_task)
        row = db.query_one(
            f"SELECT {_DECISION_COLUMNS}, text_original FROM task_item WHERE id_task_item=%s FOR UPDATE",
            (id_item,),
        )
        text, reason = make_text(row)
        if reason is None and row["status"] == "accepted" and row["text_corrected"] == text:
            # Drugie kliknięcie albo drugi recenzent z tym samym tekstem: nic do zrobienia.
            db.commit()
            return Outcome(False, None, id_item)
        if reason is None and expected_version is not None:
            reason = _changed_since_shown(row, expected_version)
        if reason is None:
            reason = refusal_reason(row, "accepted", same_status_ok=True)
        if reason is not None:
            db.commit()
            return Outcome(False, reason, id_item)
        method = db.query_value("SELECT hash_method FROM task WHERE id_task=%s", (id_task,)) or "sha256"
        new_hash = compute_hash(text, method)
        db.execute(
            "UPDATE task_item SET text_corrected=%s, local_hash=%s, status='accepted', approved_by=%s, "
            "approved_at=NOW(), export_error=NULL WHERE id_task_item=%s",
            (text, new_hash, by, id_item),
        )
        change = {"text": text, "hash": new_hash, "hunks": hunks} if text != row["text_corrected"] else None
        _log_decisions(db, [(row, action if change else "accept", "accepted", change)], by, session)
        db.commit()
        return Outcome(True, None, id_item)

    return _run_decision(db, id_task, work)


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


def _run_decision(db: MySQL, id_task: int, work: Callable[[], Outcome]) -> Outcome:
    """Wykonuje transakcję decyzji (ponowienie po zakleszczeniu); po zmianie przelicza liczniki zadania."""
    outcome = retry_on_deadlock(work, db=db)
    if outcome.changed:
        refresh_review_counters(db, id_task)
    return outcome


def undo_last(db: MySQL, id_task: int, session: str, by: str) -> Outcome:
    """Cofa ostatnią niecofniętą decyzję tej sesji w zadaniu (przywraca stan sprzed niej).

    Cofnięcie udaje się tylko wtedy, gdy pozycja jest nadal w stanie, w jakim zostawiła ją ta
    decyzja (status, hash tekstu, kto zdecydował); inaczej odmowa z opisem obecnego stanu
    (np. pozycja została już wyeksportowana albo zmieniona przez drugiego recenzenta).
    Cofnięcie samo też trafia do ``review_log`` (akcja ``undo``).

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
        entry = db.query_one(
            "SELECT * FROM review_log WHERE session=%s AND id_task=%s AND undone_at IS NULL AND action<>'undo' "
            "ORDER BY id_review_log DESC LIMIT 1 FOR UPDATE",
            (session, id_task),
        )
        if entry is None:
            db.commit()
            return Outcome(False, "nie ma decyzji do cofnięcia w tej sesji")
        id_item = int(entry["id_task_item"])
        row = db.query_one(
            f"SELECT {_DECISION_COLUMNS} FROM task_item WHERE id_task_item=%s FOR UPDATE", (id_item,)
        )
        if (
            row is None
            or row["status"] != entry["status_after"]
            or row["local_hash"] != entry["hash_after"]
            or row["approved_by"] != entry["reviewer"]
        ):
            db.commit()
            state = describe_state(row) if row else "usunięta"
            return Outcome(
                False, f"nie można cofnąć: pozycja zmieniła się po tej decyzji (teraz: {state})", id_item
            )
        text_changed = entry["text_after"] is not None
        assignments = "status=%s, approved_by=%s, approved_at=%s, export_error=%s"
        params: list[Any] = [
            entry["status_before"],
            entry["approved_by_before"],
            entry["approved_at_before"],
            entry["export_error_before"],
        ]
        if text_changed:
            assignments += ", text_corrected=%s, local_hash=%s"
            params += [entry["text_before"], entry["hash_before"]]
        db.execute(f"UPDATE task_item SET {assignments} WHERE id_task_item=%s", [*params, id_item])
        db.execute(
            f"INSERT INTO review_log ({_LOG_COLUMNS}) VALUES ({_LOG_MARKS})",
            (
                id_task,
                id_item,
                "undo",
                by,
                session,
                row["status"],
                entry["status_before"],
                row["approved_by"],
                row["approved_at"],
                row["export_error"],
                row["local_hash"],
                entry["hash_before"],
                row["text_corrected"] if text_changed else None,
                entry["text_before"] if text_changed else None,
                None,
                entry["id_review_log"],
            ),
        )
        db.execute("UPDATE review_log SET undone_at=NOW(3) WHERE id_review_log=%s", (entry["id_review_log"],))
        db.commit()
        return Outcome(True, None, id_item)

    return _run_decision(db, id_task, work)


def last_export_run(db: MySQL, id_task: int) -> dict[str, Any] | None:
    """Ostatni run eksportu zadania z ``run_log`` (status, czasy, statystyki JSON) albo ``None``."""
    row = db.query_one(
        "SELECT id_run_log, run_id, status, started_at, finished_at, duration_ms, stats, message FROM run_log "
        "WHERE id_task=%s AND kind='export' ORDER BY id_run_log DESC LIMIT 1",
        (id_task,),
    )
    db.commit()
    return row


def export_problems(db: MySQL, id_task: int, limit: int = 100) -> list[dict[str, Any]]:
    """Pozycje z powodem w ``export_error``: konflikty i zaakceptowane pominięte przez eksport.

    Czyta indeks ``(id_task, status)`` dla dwóch statusów, najwyżej ``limit`` pozycji każdego.
    """
    rows = []
    for status in ("conflict", "accepted"):
        rows += db.query(
            "SELECT id_task_item, remote_id, status, export_error FROM task_item "
            "WHERE id_task=%s AND status=%s AND deleted_at IS NULL AND export_error IS NOT NULL "
            "ORDER BY id_task_item LIMIT %s",
            (id_task, status, limit),
        )
    db.commit()
    return rows
