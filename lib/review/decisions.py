"""Przegląd wyników AI przez człowieka: różnice słów, decyzje, poprawki, cofanie, zrzut do CSV/JSON.

Tu są reguły przeglądu: kiedy decyzja jest dozwolona (``refusal_reason``), jak różnica słów dzieli
się na zmiany (hunki) i jak z wybranych zmian powstaje tekst, kiedy decyzję można cofnąć. SQL pozycji
jest w ``lib/task_item.py``, dziennik decyzji w ``lib/review/log.py``, runy w ``lib/runtime/frames.py``.
Funkcje dostają połączenie ``MySQL`` i zwracają zwykłe wartości; wypisywaniem zajmuje się skrypt
``review.py``, a stroną przeglądu ``lib/review/web/app.py`` (ten sam zestaw funkcji).

Decyzja człowieka (``accepted``/``rejected``) trafia do ``task_item.status`` razem z ``approved_by``
i ``approved_at``, a w tej samej transakcji do ``review_log`` i do liczników zadania; eksport zapisuje
do źródła tylko pozycje ``accepted``.
"""

import csv
import datetime as dt
import decimal
import difflib
import heapq
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TextIO

from lib import task_item
from lib.db_local import MySQL, retry_on_deadlock
from lib.db_utils import compute_hash
from lib.errors import UsageError
from lib.review import log as review_log
from lib.runtime.run_log import last_run
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

# Największa strona pozycji na stronie przeglądu.
PAGE_LIMIT_MAX = 200
# Ile pozycji z powodem eksportu (każdego statusu) pokazuje strona eksportu.
EXPORT_PROBLEMS_SHOWN = 100


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
    _check_status(status_filter)
    get_task(db, id_task)
    db.commit()
    changed: list[int] = []
    refused: list[tuple[int, str]] = []
    action = "accept" if decision == "accepted" else "reject"

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
        ids = [int(r["id_task_item"]) for r in allowed]
        task_item.set_decisions(db, id_task, ids, decision, by)
        review_log.record_decisions(db, [(r, action, decision, None) for r in allowed], by, session)
        changed.extend(ids)

    def in_transaction(body: Callable[[], None]) -> None:
        """Jedna transakcja decyzji; ponowienie po zakleszczeniu nie dubluje wyników."""

        def work() -> None:
            mark_changed, mark_refused = len(changed), len(refused)
            try:
                db.begin()
                lock_task_row(db, id_task)
                body()
                db.commit()
            except BaseException:
                del changed[mark_changed:], refused[mark_refused:]
                raise

        retry_on_deadlock(work, db=db)

    if item_ids is not None:
        wanted = list(dict.fromkeys(int(i) for i in item_ids))
        for start in range(0, len(wanted), _DECISION_CHUNK):
            chunk = wanted[start : start + _DECISION_CHUNK]

            def by_id(chunk: list[int] = chunk) -> None:
                rows = task_item.lock_items_by_id(db, id_task, chunk)
                apply(rows)
                found = {int(r["id_task_item"]) for r in rows}
                refused.extend(
                    (i, f"nie ma takiej pozycji w zadaniu {id_task}") for i in chunk if i not in found
                )

            in_transaction(by_id)
        return changed, refused
    # Bez filtra: najpierw status samej decyzji (te pozycje są tylko odmawiane), potem pozostałe -
    # pozycja oznaczona w późniejszym przebiegu nie wraca już do przeglądanego statusu.
    if status_filter is None:
        statuses = [decision, *(s for s in ITEM_STATUSES if s != decision)]
    else:
        statuses = [status_filter]
    for status in statuses:
        last_id = 0
        while True:
            state: dict[str, Any] = {}

            def page(status: str = status, after: int = last_id, state: dict[str, Any] = state) -> None:
                rows = task_item.lock_items_page(db, id_task, status, after, _DECISION_CHUNK)
                apply(rows)
                state["rows"] = len(rows)
                state["last"] = int(rows[-1]["id_task_item"]) if rows else after

            in_transaction(page)
            if state["rows"] < _DECISION_CHUNK:
                break
            last_id = state["last"]
    return changed, refused


def page_items(
    db: MySQL,
    id_task: int,
    status: str,
    after: int | None = None,
    before: int | None = None,
    limit: int = 20,
) -> Page:
    """Zwraca jedną stronę nieusuniętych pozycji zadania o danym statusie (keyset, bez OFFSET).

    Koszt strony nie zależy od tego, jak daleko jest ona w zadaniu ani od innych zadań
    (``task_item.status_page_query``).

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
    rows = task_item.review_page(db, id_task, status, before if backwards else after, limit + 1, backwards)
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return Page(rows, more, True)
    return Page(rows, after is not None, more)


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
            reason = _changed_since_shown(row, expected_version)
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


def undo_refusal(entry: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    """Powód, dla którego wpisu dziennika nie można cofnąć, albo ``None``.

    Cofnięcie jest dozwolone tylko wtedy, gdy pozycja jest nadal w stanie, w jakim zostawiła ją
    ta decyzja (status, hash tekstu, kto zdecydował) - inaczej cofnięcie nadpisałoby cudzą
    decyzję, nową korektę AI albo eksport.
    """
    if (
        row is None
        or row["status"] != entry["status_after"]
        or row["local_hash"] != entry["hash_after"]
        or row["approved_by"] != entry["reviewer"]
    ):
        state = describe_state(row) if row else "usunięta"
        return f"nie można cofnąć: pozycja zmieniła się po tej decyzji (teraz: {state})"
    return None


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


class ExportReport(NamedTuple):
    """Wynik ostatniego eksportu zadania: wpis ``run_log``, jego liczniki i pozycje z powodem."""

    run: dict[str, Any] | None
    stats: dict[str, Any]
    problems: list[dict[str, Any]]


def export_report(db: MySQL, id_task: int, limit: int = EXPORT_PROBLEMS_SHOWN) -> ExportReport:
    """Zbiera wynik ostatniego eksportu zadania do pokazania człowiekowi.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        limit: Najwięcej pozycji z powodem na status (konflikty, pominięte zaakceptowane).

    Returns:
        ``ExportReport``: ostatni run eksportu (``None``, gdy nie było), jego liczniki (JSON
        z ``run_log.stats``: zapisane, już w źródle, konflikty, pominięte) i pozycje z ``export_error``.
    """
    run = last_run(db, id_task, "export")
    stats: dict[str, Any] = {}
    if run and run.get("stats"):
        try:
            stats = json.loads(run["stats"])
        except ValueError:
            stats = {}
    return ExportReport(run, stats, task_item.export_problems(db, id_task, limit))


def _iter_dump_rows(db: MySQL, id_task: int, statuses: list[str] | None) -> Iterator[dict[str, Any]]:
    """Czyta pozycje do zrzutu rosnąco po ``id_task_item`` (pamięć nie rośnie z rozmiarem zadania).

    Każdy status jest czytany osobno stronami (``task_item.status_page_query``), a strumienie są
    scalane po ``id_task_item``: koszt strony nie zależy od wcześniejszych zadań ani od tego,
    jak daleko jest zrzut. Bez ``statuses``: każda pozycja z korektą (``text_corrected``).
    """

    def stream(status: str) -> Iterator[dict[str, Any]]:
        last_id = None
        while True:
            rows = task_item.dump_page(
                db, id_task, DUMP_COLUMNS, status, last_id, _DUMP_PAGE, corrected_only=not statuses
            )
            yield from rows
            if len(rows) < _DUMP_PAGE:
                return
            last_id = int(rows[-1]["id_task_item"])

    wanted = [s for s in ITEM_STATUSES if s in statuses] if statuses else list(ITEM_STATUSES)
    yield from heapq.merge(*(stream(s) for s in wanted), key=lambda row: row["id_task_item"])


def _plain(value: Any) -> Any:
    """Zamienia wartości z bazy na typy JSON (daty ISO, Decimal jako liczba)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


# Co tyle pozycji zrzut zgłasza postęp.
_DUMP_PROGRESS_ROWS = 1000


def dump_items(
    db: MySQL,
    id_task: int,
    fmt: str,
    out: TextIO,
    statuses: list[str] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Zapisuje pozycje zadania do CSV albo JSON (dla osób, które przeglądają poza systemem).

    Bez ``statuses`` zrzut obejmuje każdą nieusuniętą pozycję z korektą (``text_corrected``).
    W JSON ``change_summary`` jest obiektem, w CSV - tekstem JSON. Plik powstaje strumieniowo.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        fmt: ``csv`` albo ``json``.
        out: Otwarty plik tekstowy (albo ``sys.stdout``).
        statuses: Statusy pozycji do zrzutu albo ``None``.
        progress: Wołana co ``_DUMP_PROGRESS_ROWS`` pozycji z ``{"done": zapisane}`` (pasek skryptu).

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
            if progress is not None and count % _DUMP_PROGRESS_ROWS == 0:
                progress({"done": count})
        return count
    out.write("[")
    for row in _iter_dump_rows(db, id_task, statuses):
        record = {c: _plain(row[c]) for c in DUMP_COLUMNS}
        if row["change_summary"]:
            record["change_summary"] = parse_summary(row["change_summary"])
        out.write(("\n" if count == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        count += 1
        if progress is not None and count % _DUMP_PROGRESS_ROWS == 0:
            progress({"done": count})
    out.write("\n]\n" if count else "]\n")
    return count
