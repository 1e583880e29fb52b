"""Silnik synchronizacji: skan źródła (etapy init, fetch, compare, update).

Skan czyta źródło stronami po kluczu (keyset, ``BATCH_SIZE``), porównuje każdą stronę z tym
samym zakresem kluczy w ``task_item`` (merge-join dwóch uporządkowanych strumieni) i zapisuje
tylko różnice. Co ``COMMIT_ROWS`` wierszy źródła (albo co ~2 s) jedna transakcja zapisuje
pozycje razem z ``task.last_processed_id`` i licznikami, więc przerwany run wznawia się
dokładnie od zatwierdzonego klucza, a liczniki opisują całą operację synchronizacji.
Weryfikacja (etap verify) jest w ``lib/verify.py``.
"""

import bisect
import contextlib
import hashlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pymysql

# Nowe moduły silnika leżą już w docelowym pakiecie ``lib/sync/`` (issue 25); dopóki ten plik jest
# modułem ``lib.sync``, ``__path__`` czyni z niego pakiet dla nich (po przeniesieniu do
# ``lib/sync/engine.py`` ta linia znika, importy zostają te same).
__path__ = [os.path.join(os.path.dirname(__file__), "sync")]

from lib import db_remote, faults, sync_load, task_item  # noqa: E402
from lib.background import background_stream
from lib.control import StopCheck
from lib.db_local import MySQL, connect_local, error_code, retry_on_deadlock
from lib.db_remote import decode_key, encode_key
from lib.db_utils import get_logger, hash_text
from lib.errors import RemoteError, TaskError
from lib.runs import run_with_task_lock
from lib.source import exports_in_place, hasher, open_source, resolve_task_target
from lib.sync import cursor, leaves, markers  # noqa: E402
from lib.task import (
    get_task,
    lock_task_row,
    mark_paused,
    record_scan_batch,
    record_source_total,
    restart_scan_position,
    resume_sync_operation,
    set_cursor_value,
    set_resume_marker,
    stage_for_progress,
    start_sync_operation,
)
from lib.verify import run_verify  # noqa: E402

log = get_logger("sync")

# Partia jest zatwierdzana najpóźniej po tylu sekundach (postęp i wznowienie nie czekają na COMMIT_ROWS).
_COMMIT_EVERY_S = 2.0
# Ile stron źródła czyta naprzód wątek czytający (pamięć ograniczona).
_PREFETCH_PAGES = 4

Progress = Callable[[dict[str, Any]], None]


def _prefetch(pages: Iterator[list], depth: int) -> Iterator[list]:
    """Czyta strony źródła w osobnym wątku (odczyt źródła nakłada się na zapis lokalny).

    Kolejka ma ograniczoną długość, więc pamięć nie rośnie z rozmiarem tabeli.
    """

    def produce(put: Callable[[Any], None]) -> None:
        try:
            for page in pages:
                put(page)
        finally:
            # Zamknięcie generatora stron w tym wątku: jego wątki i połączenia kończą pracę, zanim
            # wołający zamknie połączenia (``iter_page_fingerprints`` czeka na swoje zapytania).
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    return background_stream(produce, depth, "source-reader", 5)


# Odstęp pozycji w porządku źródła między kolejnymi wierszami przy numeracji (miejsce na wiersze
# dopisane później między sąsiadami). BIGINT mieści 2^31 wierszy po 2^32.
GAP = 1 << 32
# Najdłuższy remote_key, jaki mieści kolumna task_item.remote_key.
MAX_REMOTE_KEY = 700


class _OrderChanged(Exception):
    """Źródło zwraca znane klucze w innej kolejności niż przy poprzednim skanie (np. zmiana sortowania)."""


class _Restarted(Exception):
    """Scalanie części przełączyło skan na nową numerację (``_start_rerank`` już wykonane)."""


class _Row(NamedTuple):
    """Wiersz strony źródła gotowy do porównania."""

    key: Any
    remote_key: str
    remote_id: int | None
    text: str | None
    digest: str | None


@dataclass
class _Batch:
    """Zmiany zebrane od ostatniego commitu (ograniczone przez ``COMMIT_ROWS``)."""

    new: list[tuple] = field(default_factory=list)
    changed: list[tuple] = field(default_factory=list)
    revived: list[int] = field(default_factory=list)
    reordered: list[tuple[int, int]] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    scanned: int = 0
    # Wiersze porównane po jednym (teksty albo hashe); strony równe po odcisku się nie liczą.
    compared: int = 0
    unchanged: int = 0
    # Pierwsza synchronizacja: zapytania INSERT nowych pozycji i ich liczba (``lib.sync_load``).
    load: tuple[list[bytes], int] | None = None

    @property
    def created(self) -> int:
        """Nowe pozycje partii (wstawione, załadowane i przywrócone)."""
        return len(self.new) + len(self.revived) + (self.load[1] if self.load else 0)


class _Window:
    """Pozycje za kotwicą przeczytane jednym zakresem indeksu (strona źródła, która się różni).

    Odpowiada bez zapytań na pytania scalania strony: pozycja po kluczu, aktywne pozycje w zakresie,
    następna aktywna pozycja - gdy zakres okna je obejmuje; inaczej ``None`` i scalanie pyta bazę.

    Args:
        items: Wynik ``task_item.items_after``.
        after: Kotwica, od której czytano.
        complete: Czy okno sięga końca pozycji zadania (zapytanie zwróciło mniej niż limit).
    """

    def __init__(self, items: list[tuple], after: int | None, complete: bool) -> None:
        self.after = after
        self.items = items
        # Pozycje rosnąco: początek zakresu szukany bisekcją (strona hashy ma kilkadziesiąt stron
        # keyset - przeglądanie okna od początku dla każdej byłoby kwadratowe).
        self.ords = [item[2] for item in items]
        self.by_key = {item[0]: item[1:] for item in items}
        self.last = items[-1][2] if items else None
        self.complete = complete

    def covers(self, high: int | None) -> bool:
        """Czy okno zawiera wszystkie pozycje z porządkiem w ``(after, high]`` (``None`` = do końca)."""
        if self.complete:
            return True
        return high is not None and self.last is not None and high <= self.last

    def _valid_from(self, after: int | None) -> bool:
        """Czy okno zaczyna się nie później niż ``after`` (zawiera pozycje tuż za nim)."""
        return self.after is None or (after is not None and after >= self.after)

    def fingerprint(
        self, after: int | None, count: int, in_place: bool
    ) -> tuple[int, str | None, Any] | None:
        """Jak ``task_item.next_fingerprint`` (ten sam format), liczony z okna; ``None``, gdy okno nie wystarcza."""
        if not self._valid_from(after):
            return None
        lines: list[str] = []
        last = None
        start = 0 if after is None else bisect.bisect_right(self.ords, after)
        for remote_key, _id, ordinal, original_hash, local_hash, status, deleted in itertools.islice(
            self.items, start, None
        ):
            if deleted:
                continue
            reference = task_item.reference_hash(status, original_hash, local_hash, in_place)
            lines.append(f"{remote_key}\t{reference or ''}")
            last = ordinal
            if len(lines) == count:
                break
        if len(lines) < count and not self.complete:
            return None
        digest = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest() if lines else None
        return len(lines), digest, last

    def active_in_range(self, low: int | None, high: int) -> dict[int, str] | None:
        """Jak ``task_item.active_in_range`` albo ``None``, gdy okno nie obejmuje zakresu."""
        if not self.covers(high) or not self._valid_from(low):
            return None
        start = 0 if low is None else bisect.bisect_right(self.ords, low)
        end = bisect.bisect_right(self.ords, high)
        return {int(item[1]): item[0] for item in self.items[start:end] if not item[6]}

    def next_active_ord(self, after: int | None) -> int | None | bool:
        """Jak ``task_item.next_active_ord``; ``False``, gdy okno nie wystarcza."""
        if not self._valid_from(after):
            return False
        start = 0 if after is None else bisect.bisect_right(self.ords, after)
        for item in itertools.islice(self.items, start, None):
            if not item[6]:
                return item[2]
        return None if self.complete else False


@dataclass
class _Scan:
    """Stan jednego skanu: zadanie, pozycja w źródle i w porządku źródła, partia, statystyki runu.

    Attributes:
        mode: ``key`` - pozycja w porządku źródła to sam klucz całkowity; ``assigned`` - pozycje
            nadawane z odstępem ``GAP``; ``rerank`` - nowa numeracja całej tabeli od ``base``.
        initial: Zadanie nie miało pozycji na starcie operacji (same nowe wiersze, bez porównań).
        anchor: ``source_ord`` ostatniego przetworzonego wiersza źródła (``None`` przed pierwszym).
        base: Początek nowej numeracji (tylko ``rerank``).
    """

    db: MySQL
    id_task: int
    total: int
    last_key: Any
    last_row: _Row | None
    scanned: int
    stats: dict[str, Any]
    in_place: bool
    mode: str
    initial: bool
    anchor: int | None
    base: int | None = None
    # Okno pozycji bieżącej strony hashy, która się różni (``None``: pytaj bazę).
    window: _Window | None = None
    # Teksty przeczytane naprzód dla całej strony hashy, która się różni: klucz -> (tekst, hash).
    texts: dict[Any, tuple[str | None, str | None]] | None = None
    # Pozycje spoza okna dla kluczy zawężanej strony (``_preload``); ``None``: pytaj bazę.
    known: dict[str, tuple] | None = None
    # Ostatnia zawężana strona miała gęste zmiany (``leaves.plan(dense=...)``).
    dense: bool = False
    # Przesunięcia pozycji (``task_item.shift_ords``) w tym skanie: ``(od pozycji, o ile)``; pozycje
    # przeczytane wcześniej (części zawężanego zakresu) są przez nie poprawiane (``_moved``).
    shifts: list[tuple[int, int]] = field(default_factory=list)
    batch: _Batch = field(default_factory=_Batch)
    mark: float = field(default_factory=time.monotonic)
    last_commit: float = field(default_factory=time.monotonic)


# Tekst wiersza strony hashy, którego nie czytaliśmy (nigdy nie trafia do zapisu: nowe i zmienione
# wiersze dostają tekst w ``_with_texts``).
_UNREAD: Any = object()


def _prepare_page(
    page: list[tuple[Any, str | None]], hash_of, single_int: bool, hashed: bool = False
) -> list[_Row]:
    """Liczy ``remote_key`` i hash tekstu każdego wiersza strony.

    ``hashed``: strona ``(klucz, hash liczony przez źródło)`` - tekst nieprzeczytany (``_UNREAD``),
    poza tekstem NULL (hash ``None``), który jest znany bez czytania.
    """
    rows = []
    for key, text in page:
        remote_key = encode_key(key)
        if len(remote_key) > MAX_REMOTE_KEY:
            raise TaskError(
                f"klucz wiersza źródła {remote_key[:80]}… ma {len(remote_key)} znaków w postaci JSON, "
                f"a task_item.remote_key mieści {MAX_REMOTE_KEY}; wskaż krótszy klucz w task.key_column"
            )
        remote_id = key if single_int and -(2**63) <= key < 2**63 else None
        if hashed:
            rows.append(_Row(key, remote_key, remote_id, None if text is None else _UNREAD, text))
        else:
            rows.append(_Row(key, remote_key, remote_id, text, hash_text(text, hash_of)))
    return rows


# Strona hashy liczonych przez źródło ma tyle stron keyset (mało zapytań przy resync bez zmian).
_HASH_PAGE_FACTOR = 20


class _TextReader:
    """Teksty wierszy po kluczach, osobnym połączeniem ze źródłem (główne czyta wątek stron)."""

    def __init__(
        self, conn_row: dict[str, Any], settings: dict[str, Any], target: db_remote.Target, hash_of
    ) -> None:
        self.conn_row, self.settings, self.target, self.hash_of = conn_row, settings, target, hash_of
        self.rconn: db_remote.RemoteConn | None = None

    def conn(self) -> db_remote.RemoteConn:
        """Połączenie czytelnika (otwierane przy pierwszym użyciu)."""
        if self.rconn is None:
            self.rconn = db_remote.connect(self.conn_row, self.settings)
        return self.rconn

    def read(self, keys: list[Any]) -> dict[Any, tuple[str | None, str | None]]:
        """``klucz -> (tekst, hash)`` dla wierszy, które są w źródle."""
        found = db_remote.fetch_by_keys(self.conn(), self.target, keys)
        return {key: (values[0], hash_text(values[0], self.hash_of)) for key, values in found.items()}

    def hash_range(self, after: Any, last: Any, limit: int, hash_sql: str) -> list[tuple[Any, str | None]]:
        """Wiersze ``(klucz, hash ze źródła)`` z zakresu ``(after, last]`` (klucz całkowity)."""
        return db_remote.fetch_hash_range(self.conn(), self.target, after, last, limit, hash_sql)

    def close(self) -> None:
        if self.rconn is not None:
            db_remote.close(self.rconn)


def _source_hashes(
    rconn: db_remote.RemoteConn, target: db_remote.Target, task_row: dict[str, Any], after: Any, limit: int
) -> str | None:
    """Wyrażenie hasha liczonego przez źródło, jeśli daje te same hashe co ``hash_text``; inaczej ``None``.

    Sprawdzenie na prawdziwych danych: pierwsza strona skanu czytana raz z tekstami, raz z hashami
    źródła - muszą się zgadzać co do wiersza (stary MS SQL bez sortowań UTF-8, nietypowe kodowanie
    kolumny). Błąd zapytania albo różnica = skan czyta teksty, jak przy SQLite.
    """
    method = task_row.get("hash_method") or "sha256"
    expression = db_remote.source_hash_sql(rconn, target, method)
    if expression is None:
        return None
    hash_of = hasher(task_row)
    try:
        hashed = db_remote.fetch_hash_page(rconn, target, after, limit, expression)
    except RemoteError as exc:
        log.info("zadanie %s: źródło nie liczy hashy (%s) - skan czyta teksty", task_row["id_task"], exc)
        return None
    texts = db_remote.fetch_page(rconn, target, after, limit)
    if hashed != [(key, hash_text(text, hash_of)) for key, text in texts]:
        log.info(
            "zadanie %s: hash liczony przez źródło różni się od hasha tekstu - skan czyta teksty",
            task_row["id_task"],
        )
        return None
    return expression


def _page_fingerprint(rows: list[_Row]) -> str:
    """Odcisk strony: sha256 z linii ``remote_key<TAB>hash`` (format ``task_item.local_fingerprint``)."""
    joined = "\n".join(f"{row.remote_key}\t{row.digest or ''}" for row in rows)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _page_unchanged(scan: _Scan, rows: list[_Row]) -> bool:
    """Czy strona źródła jest bez zmian: odcisk równy odciskowi kolejnych pozycji z indeksu.

    Tak: te same klucze w tej samej kolejności, te same hashe, bez usuniętych pomiędzy; wtedy
    wiersze są liczone jako niezmienione i kotwica przechodzi na ostatnią pozycję.
    """
    known = None if scan.window is None else scan.window.fingerprint(scan.anchor, len(rows), scan.in_place)
    if known is None:
        known = task_item.next_fingerprint(scan.db, scan.id_task, scan.anchor, len(rows), scan.in_place)
    count, fingerprint, last_ord = known
    if count != len(rows) or fingerprint != _page_fingerprint(rows):
        return False
    scan.batch.unchanged += len(rows)
    scan.anchor = last_ord
    return True


def _with_texts(scan: _Scan, rows: list[_Row], local: dict[str, tuple], fill: "_TextReader") -> list[_Row]:
    """Strona hashy z tekstami wierszy nowych i zmienionych (reszty teksty nie są potrzebne).

    Tekst jest czytany po kluczu osobnym połączeniem; hash liczony od nowa z przeczytanego tekstu
    (źródło mogło się zmienić między odczytami - pozycja dostaje tekst i hash zgodne ze sobą).
    """
    wanted = []
    for row in rows:
        if row.text is not _UNREAD:
            continue
        item = local.get(row.remote_key)
        if item is None or row.digest != task_item.reference_hash(item[4], item[2], item[3], scan.in_place):
            wanted.append(row.key)
    if not wanted:
        return rows
    ahead = scan.texts or {}
    unread = [key for key in wanted if key not in ahead]
    found = fill.read(unread) if unread else {}
    scan.stats["texts_read"] += len(found)
    found.update((key, ahead[key]) for key in wanted if key in ahead)
    wanted_set = set(wanted)
    result = []
    for row in rows:
        if row.key in wanted_set:
            if row.key not in found:
                continue
            text, digest = found[row.key]
            row = row._replace(text=text, digest=digest)
        result.append(row)
    return result


def _compare(batch: _Batch, row: _Row, item: tuple, in_place: bool) -> None:
    """Porównuje wiersz źródła z jego pozycją: zmiana tekstu, powrót usuniętego wiersza."""
    id_item, _ord, original_hash, local_hash, status, deleted = item
    if deleted:
        batch.revived.append(id_item)
    if row.digest != task_item.reference_hash(status, original_hash, local_hash, in_place):
        batch.changed.append((id_item, row.text, row.digest))
    elif not deleted:
        batch.unchanged += 1


def _spaced(low: int | None, high: int | None, count: int, half: bool) -> list[int] | None:
    """``count`` rosnących pozycji ściśle między ``low`` i ``high`` (``None`` = bez granicy).

    ``half`` = wiersze przed nieznanym jeszcze następnikiem: zajmują tylko dolną połowę przedziału,
    żeby kolejne strony też miały miejsce. ``None``, gdy liczby całkowite się nie mieszczą.
    """
    if high is None:
        start = 0 if low is None else low
        return [start + GAP * (i + 1) for i in range(count)]
    if low is None:
        return [high - GAP * (count - i) for i in range(count)]
    span = (high - low) // 2 if half else high - low
    step = span // (count + 1)
    if step < 1:
        return None
    return [low + step * (i + 1) for i in range(count)]


def _place(
    scan: _Scan, run: list[tuple[_Row, tuple | None]], high: int | None, half: bool, local: dict
) -> int | None:
    """Nadaje pozycje w porządku źródła wierszom bez pozycji (nowe i przywrócone) przed ``high``.

    Gdy między sąsiadami brakuje liczb, pozycje od ``high`` w górę są przesuwane (rzadkie: tysiące
    wierszy dopisanych w jednym miejscu); zapamiętane pozycje strony (``local``) przesuwają się też.

    Returns:
        ``high`` po ewentualnym przesunięciu.
    """
    if not run:
        return high
    ords = _spaced(scan.anchor, high, len(run), half)
    if ords is None:
        assert high is not None
        amount = GAP * (len(run) + 1) * 2
        task_item.shift_ords(scan.db, scan.id_task, high, amount)
        scan.shifts.append((high, amount))
        scan.window = None  # pozycje w oknie są już nieaktualne
        for remote_key, item in list(local.items()):
            if item[1] is not None and item[1] >= high:
                local[remote_key] = (item[0], item[1] + amount, *item[2:])
        high += amount
        ords = _spaced(scan.anchor, high, len(run), half)
        assert ords is not None
    for (row, item), ordinal in zip(run, ords, strict=True):
        if item is None:
            scan.batch.new.append((row.remote_key, row.remote_id, ordinal, row.text, row.digest))
        else:
            scan.batch.reordered.append((item[0], ordinal))
            _compare(scan.batch, row, item, scan.in_place)
        scan.anchor = ordinal
    return high


def _merge_page(scan: _Scan, rows: list[_Row], fill: "_TextReader | None" = None) -> None:
    """Porównuje stronę źródła (w porządku źródła) z pozycjami zadania i dopisuje różnice do partii.

    Strona hashy (wiersze bez tekstu, ``_UNREAD``) dostaje teksty z ``fill`` tylko dla wierszy nowych
    i zmienionych; wiersz, który zniknął ze źródła między odczytami, jest pomijany (tak, jakby go
    nie było na stronie - następna strona albo następny skan oznaczy go jako usunięty).

    Pozycje w porządku źródła (``source_ord``) są zgodne z tym porządkiem dla wszystkich znanych
    kluczy, więc aktywne pozycje z przedziału ``(anchor, pozycja ostatniego dopasowanego wiersza]``,
    których klucza nie ma na stronie, zniknęły ze źródła - bez porównywania kluczy sortowaniem
    lokalnej bazy (źródło może sortować inaczej niż bajty: ``_ci``, ICU, ``uniqueidentifier``).

    Raises:
        _OrderChanged: Znany klucz przyszedł w innej kolejności niż jego pozycja (tylko ``assigned``).
    """
    db, id_task, batch = scan.db, scan.id_task, scan.batch
    if scan.mode != "rerank" and _page_unchanged(scan, rows):
        return
    window = scan.window if scan.mode != "rerank" else None
    if window is None:
        local = task_item.items_by_keys(db, id_task, [row.remote_key for row in rows])
    else:
        local = {
            row.remote_key: window.by_key[row.remote_key] for row in rows if row.remote_key in window.by_key
        }
        # Klucze spoza okna: nowe wiersze albo pozycje z porządkiem przed kotwicą (powrót usuniętego, zmiana
        # porządku) - szukane dokładnie.
        missing = [row.remote_key for row in rows if row.remote_key not in local]
        if scan.known is None:
            local.update(task_item.items_by_keys(db, id_task, missing))
        else:
            local.update((key, scan.known[key]) for key in missing if key in scan.known)
    if fill is not None:
        rows = _with_texts(scan, rows, local, fill)
        if not rows:
            return
    last = rows[-1]
    if scan.mode == "rerank":
        for row in rows:
            item = local.get(row.remote_key)
            ordinal = scan.anchor + GAP if scan.anchor is not None else scan.base
            if item is None:
                batch.new.append((row.remote_key, row.remote_id, ordinal, row.text, row.digest))
            else:
                batch.reordered.append((item[0], ordinal))
                _compare(batch, row, item, scan.in_place)
            scan.anchor = ordinal
        return
    if scan.mode == "key":
        matched = [local[r.remote_key][1] for r in rows if r.remote_key in local]
        high = last.key
    else:
        matched = [
            local[r.remote_key][1] for r in rows if r.remote_key in local and not local[r.remote_key][5]
        ]
        if any(b <= a for a, b in zip(matched, matched[1:], strict=False)) or (
            matched and scan.anchor is not None and matched[0] <= scan.anchor
        ):
            raise _OrderChanged
        high = matched[-1] if matched else None
    if high is not None:
        seen = {local[r.remote_key][0] for r in rows if r.remote_key in local}
        active = None if scan.window is None else scan.window.active_in_range(scan.anchor, high)
        if active is None:
            active = task_item.active_in_range(db, id_task, scan.anchor, high)
        batch.deleted.extend(i for i in active if i not in seen)
    if scan.mode == "key":
        for row in rows:
            item = local.get(row.remote_key)
            if item is None:
                batch.new.append((row.remote_key, row.remote_id, row.key, row.text, row.digest))
            else:
                _compare(batch, row, item, scan.in_place)
        scan.anchor = last.key
        return
    run: list[tuple[_Row, tuple | None]] = []
    for row in rows:
        item = local.get(row.remote_key)
        if item is not None and not item[5]:
            # Znana, aktywna pozycja: kotwica porządku; wiersze przed nią dostają pozycje między kotwicami.
            placed = _place(scan, run, item[1], False, local)
            run = []
            _compare(batch, row, local[row.remote_key], scan.in_place)
            scan.anchor = placed
        else:
            run.append((row, item))
    if run:
        following = False if scan.window is None else scan.window.next_active_ord(scan.anchor)
        if following is False:
            following = task_item.next_active_ord(db, id_task, scan.anchor)
        _place(scan, run, following, True, local)


def _write_batch(
    scan: _Scan, final: bool, progress: float, work_ms: int, db: MySQL | None = None, inserted: bool = False
) -> int:
    """Zapisuje partię w jednej transakcji razem z pozycją w źródle i licznikami.

    Args:
        scan: Stan skanu (partia w ``scan.batch``).
        final: Ostatnia partia (ogon usuniętych pozycji).
        progress: Postęp zadania.
        work_ms: Czas pracy partii.
        db: Połączenie partii (domyślnie ``scan.db``; pisarz pierwszej synchronizacji).
        inserted: Transakcja na ``db`` jest otwarta i ma już wstawione ``batch.load`` (pisarz);
            po zakleszczeniu cała partia jest zapisywana od nowa.

    Returns:
        Liczba pozycji oznaczonych jako usunięte (z ogonem po ostatniej stronie).
    """
    id_task, batch = scan.id_task, scan.batch
    db = scan.db if db is None else db
    last = scan.last_row
    position = (last.remote_key, last.remote_id, scan.anchor) if last is not None else (None, None, None)

    def work() -> int:
        # Wstawione przez pisarza są tylko przy pierwszej próbie: ponowienie po zakleszczeniu
        # (gdziekolwiek w transakcji, także na blokadzie zadania) zaczyna od wycofanej transakcji.
        nonlocal inserted
        reuse, inserted = inserted, False
        if not reuse:
            db.begin()
        lock_task_row(db, id_task)
        with _duplicate_keys_are_task_errors():
            task_item.insert_items(db, id_task, batch.new)
            if batch.load is not None and not reuse:
                task_item.insert_statements(db, *batch.load)
        task_item.revive_items(db, batch.revived)
        task_item.set_ords(db, batch.reordered)
        task_item.update_changed_items(db, batch.changed)
        deleted = task_item.mark_items_deleted(db, batch.deleted)
        if final:
            # Ogon: pozycje za ostatnim wierszem źródła (albo bez nowej numeracji) zniknęły ze źródła.
            if scan.mode == "rerank":
                deleted += task_item.mark_unseen_deleted(db, id_task, scan.base)
            else:
                deleted += task_item.mark_tail_deleted(db, id_task, scan.anchor)
        record_scan_batch(
            db,
            id_task,
            position,
            scanned=batch.scanned,
            new=batch.created,
            updated=len(batch.changed),
            deleted=deleted,
            progress=progress,
            stage="update" if final else stage_for_progress(progress),
            work_ms=work_ms,
        )
        faults.checkpoint("sync.update")
        db.commit()
        return deleted

    return retry_on_deadlock(work, db=db)


@contextlib.contextmanager
def _duplicate_keys_are_task_errors() -> Iterator[None]:
    """Powtórzony klucz źródła przy wstawianiu pozycji (MySQL 1062) -> błąd zadania z jednym zdaniem."""
    try:
        yield
    except pymysql.err.IntegrityError as exc:
        if error_code(exc) != 1062:
            raise
        raise TaskError(
            f"klucz wiersza źródła występuje więcej niż raz ({exc.args[1]}); kolumny klucza "
            "(task.key_column) muszą jednoznacznie wskazywać wiersz"
        ) from None


def _flush(
    scan: _Scan, final: bool, progress: Progress | None, db: MySQL | None = None, inserted: bool = False
) -> None:
    """Zatwierdza bieżącą partię skanu i dopisuje ją do statystyk runu (``db``, ``inserted``: ``_write_batch``)."""
    batch = scan.batch
    if final:
        percent = 90.0
    else:
        percent = min(89.99, 5.0 + 85.0 * (scan.scanned / scan.total if scan.total else 1.0))
    now = time.monotonic()
    deleted = _write_batch(scan, final, percent, int((now - scan.mark) * 1000), db, inserted)
    faults.checkpoint("sync.fetch")
    stats = scan.stats
    stats["fetched"] += batch.scanned
    stats["new"] += batch.created
    stats["updated"] += len(batch.changed)
    stats["deleted"] += deleted
    stats["unchanged"] += batch.unchanged
    scan.batch = _Batch()
    scan.mark = scan.last_commit = now
    if progress is not None:
        progress({**stats, "scanned": scan.scanned, "records_total": scan.total, "sync_progress": percent})


def _start_operation(db: MySQL, task_row: dict[str, Any], run_id: str | None) -> tuple[bool, str]:
    """Zaczyna nową operację synchronizacji albo wznawia przerwaną.

    Znacznik operacji (``resume_marker``): ``scan:init:<uuid>`` (zadanie bez pozycji na starcie),
    ``scan:diff:<uuid>`` albo ``scan:rerank:<base>:<uuid>`` (nowa numeracja porządku źródła).

    Returns:
        Krotka ``(resuming, marker)``.
    """
    id_task = task_row["id_task"]
    marker = task_row.get("resume_marker") or ""
    if markers.parse(marker).stage == "scan":
        resume_sync_operation(db, id_task, run_id)
        return True, marker
    marker = markers.scan(not task_item.has_items(db, id_task))
    start_sync_operation(db, id_task, marker, run_id)
    return False, marker


def _order_mode(target: db_remote.Target) -> str:
    """``key`` dla jednej kolumny całkowitej mieszczącej się w BIGINT, inaczej ``assigned``."""
    if not target.single_integer_key:
        return "assigned"
    type_name = target.key_columns[0].type_name.lower()
    return "assigned" if "unsigned" in type_name and "bigint" in type_name else "key"


def _start_rerank(scan: _Scan) -> str:
    """Przełącza operację na nową numerację porządku źródła i zaczyna skan od początku źródła.

    Źródło podało znane klucze w innej kolejności niż zapamiętana (np. zmiana sortowania kolumny
    klucza): zapisane pozycje nie opisują już porządku źródła. Bieżąca partia jest zatwierdzana,
    potem każda pozycja widziana w źródle dostaje pozycję od ``base`` w górę, a na końcu aktywne
    pozycje bez nowej pozycji są oznaczane jako usunięte.
    """
    _flush(scan, False, None)
    scan.base = (task_item.max_ord(scan.db, scan.id_task) or 0) + GAP
    scan.mode, scan.anchor, scan.last_key, scan.last_row, scan.initial = "rerank", None, None, None, False
    marker = markers.rerank(scan.base)
    restart_scan_position(scan.db, scan.id_task, marker)
    log.warning(
        "zadanie %s: źródło zwraca klucze w innej kolejności niż przy poprzednim skanie - skan od początku "
        "z nową numeracją porządku źródła",
        scan.id_task,
    )
    return marker


def _scan_rows(
    scan: _Scan,
    rows: list[_Row],
    batch_size: int,
    commit_rows: int,
    fill: "_TextReader | None",
    progress: Progress | None,
    should_stop: StopCheck | None,
    whole: bool | None = None,
) -> tuple[str | None, bool]:
    """Porównuje jedną stronę źródła z pozycjami i zatwierdza partie, gdy pora.

    Strona hashy (``fill``) ma ``_HASH_PAGE_FACTOR`` stron keyset: gdy jej odcisk zgadza się
    z lokalnym, cała jest bez zmian; inaczej jest dzielona na strony po ``batch_size`` wierszy,
    porównywane osobno (teksty tylko wierszy, które się różnią).

    Args:
        whole: ``False``, gdy wołający wie już, że cała strona się różni (bez drugiego porównania).

    Returns:
        ``(powód zatrzymania albo None, czy zacząć od nowa z nową numeracją)``.
    """
    if whole is None:
        whole = len(rows) > batch_size and scan.mode != "rerank" and _page_unchanged(scan, rows)
    parts = [rows] if whole else [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    if not whole and scan.mode != "rerank":
        # Strona się różni: pozycje jej zakresu jednym odczytem indeksu (z zapasem na usunięte pozycje).
        limit = len(rows) + len(rows) // 4 + 16
        items = task_item.items_after(scan.db, scan.id_task, scan.anchor, limit)
        scan.window = _Window(items, scan.anchor, len(items) < limit)
        if fill is not None:
            # Teksty całej strony jednym odczytem po kluczach: wiersze spoza okna (nowe) i z innym hashem.
            wanted = []
            for row in rows:
                item = scan.window.by_key.get(row.remote_key)
                if row.text is _UNREAD and (
                    item is None
                    or row.digest != task_item.reference_hash(item[4], item[2], item[3], scan.in_place)
                ):
                    wanted.append(row.key)
            scan.texts = fill.read(wanted) if wanted else {}
            scan.stats["texts_read"] += len(scan.texts)
    try:
        return _scan_parts(scan, parts, whole, commit_rows, fill, progress, should_stop)
    finally:
        scan.window = None
        scan.texts = None


def _scan_parts(
    scan: _Scan,
    parts: list[list[_Row]],
    whole: bool,
    commit_rows: int,
    fill: "_TextReader | None",
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> tuple[str | None, bool]:
    """Scala kolejne części strony (``whole``: cała strona bez zmian) i przesuwa pozycję skanu."""
    for part in parts:
        if not whole:
            try:
                _merge_page(scan, part, fill)
            except _OrderChanged:
                _start_rerank(scan)
                return None, True
        stopped = _advance(scan, part[-1], len(part), commit_rows, progress, should_stop)
        if stopped:
            return stopped, False
    return None, False


def _advance(
    scan: _Scan,
    last: _Row,
    count: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
    compared: bool = True,
) -> str | None:
    """Przesuwa pozycję skanu za ``count`` wierszy kończących się ``last``; zatwierdza partię, gdy pora.

    Partia jest zatwierdzana po ``commit_rows`` wierszach porównanych po jednym (jej zmiany mają
    ograniczony rozmiar) albo co ``_COMMIT_EVERY_S``. Strona równa po odcisku (``compared=False``)
    niczego nie zapisuje, więc przesuwa tylko pozycję: bez osobnego commitu na każdą stronę
    (10 commitów na 1 000 000 wierszy kosztowało ~0,4 s resyncu bez zmian), a po awarii
    wznowienie powtarza najwyżej ``_COMMIT_EVERY_S`` pracy.

    Returns:
        Powód zatrzymania po zatwierdzonej partii albo ``None``.
    """
    scan.batch.scanned += count
    if compared:
        scan.batch.compared += count
    scan.last_key, scan.last_row = last.key, last
    scan.scanned += count
    if scan.batch.compared >= commit_rows or time.monotonic() - scan.last_commit >= _COMMIT_EVERY_S:
        _flush(scan, False, progress)
        return should_stop() if should_stop else None
    return None


def _scan_pages(
    scan: _Scan,
    pages: Iterator[list[_Row]],
    target: db_remote.Target,
    batch_size: int,
    commit_rows: int,
    fill: "_TextReader | None",
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> tuple[str | None, bool]:
    """Strony źródła z tekstami albo z hashami (``fill``) po kolei przez ``_scan_rows``.

    Returns:
        ``(powód zatrzymania albo None, czy zacząć od nowa z nową numeracją)``.
    """
    scan.stats["read_mode"] = "pages" if fill is None else "hashes"
    for rows in pages:
        if scan.mode == "key" and any(row.remote_id is None for row in rows):
            raise TaskError(f"klucz tabeli {target.table!r} nie mieści się w BIGINT; wskaż inny klucz")
        if fill is None:
            scan.stats["texts_read"] += len(rows)
        result = _scan_rows(scan, rows, batch_size, commit_rows, fill, progress, should_stop)
        if result != (None, False):
            return result
    return None, False


def _scan_fingerprints(
    scan: _Scan,
    fingerprints: Iterator[tuple[Any, int, Any, str]],
    batch_size: int,
    commit_rows: int,
    fill: "_TextReader",
    hash_sql: str,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> tuple[str | None, bool]:
    """Resync po odciskach stron liczonych przez źródło (klucz całkowity, tryb ``key``).

    Strona, której liczba i odcisk równają się lokalnym (``range_fingerprint`` pozycji w zakresie
    ``(scan.anchor, ostatni klucz strony]``), jest bez zmian - ze źródła przyszedł jeden wiersz na
    całą stronę. Inna jest czytana jako wiersze ``(klucz, hash)`` z zakresu ``(klucz przed stroną, ostatni klucz]`` drugim połączeniem
    i porównywana jak strona hashy. W trybie ``key`` pozycja to sam klucz, więc nowej numeracji
    (``_OrderChanged``) tu nie ma.

    Returns:
        ``(powód zatrzymania albo None, False)``.
    """
    scan.stats["read_mode"] = "fingerprints"
    for after, count, last, fingerprint in fingerprints:
        local_count, local_fingerprint, last_ord = task_item.range_fingerprint(
            scan.db, scan.id_task, scan.anchor, last, scan.in_place
        )
        if local_count == count and local_fingerprint == fingerprint:
            scan.batch.unchanged += count
            scan.anchor = last_ord
            last_row = _Row(last, encode_key(last), last, None, fingerprint)
            stopped = _advance(scan, last_row, count, commit_rows, progress, should_stop, compared=False)
        else:
            # Strona się różni: zawężanie od pozycji lokalnych jej zakresu (pozycja = klucz).
            items = task_item.items_after(scan.db, scan.id_task, scan.anchor, 1 << 30, high=last)
            span = leaves.Span(after, last, [item for item in items if not item[6]])
            try:
                stopped = _narrow(
                    scan, span, items, fill, hash_sql, batch_size, commit_rows, progress, should_stop
                )
            except _Restarted:
                return None, True
        if stopped:
            return stopped, False
    return None, False


def _moved(scan: _Scan, ordinal: int) -> int:
    """Pozycja ``ordinal`` przeczytana wcześniej, poprawiona o przesunięcia z tego skanu (``scan.shifts``)."""
    for start, amount in scan.shifts:
        if ordinal >= start:
            ordinal += amount
    return ordinal


def _item_row(scan: _Scan, item: tuple) -> _Row:
    """Wiersz pozycji skanu dla pozycji lokalnej (pozycja w źródle po części bez zmian)."""
    key = decode_key(item[0])
    single_int = isinstance(key, int) and scan.mode == "key"
    return _Row(key, item[0], key if single_int else None, None, None)


def _skip_span(
    scan: _Scan, span: leaves.Span, commit_rows: int, progress: Progress | None, should_stop: StopCheck | None
) -> str | None:
    """Część zakresu równa po odcisku: jej pozycje są bez zmian, pozycja skanu przechodzi na ostatnią."""
    if not span.items:
        return None
    last = span.items[-1]
    scan.batch.unchanged += len(span.items)
    scan.anchor = _moved(scan, last[2])
    return _advance(
        scan, _item_row(scan, last), len(span.items), commit_rows, progress, should_stop, compared=False
    )


def _close_span(scan: _Scan, span: leaves.Span) -> None:
    """Po scaleniu wierszy części: jej pozycje za ostatnim scalonym wierszem zniknęły ze źródła."""
    gone = [item for item in span.items if scan.anchor is None or _moved(scan, item[2]) > scan.anchor]
    if gone:
        scan.batch.deleted.extend(item[1] for item in gone)
        scan.anchor = _moved(scan, gone[-1][2])


def _merge_span(
    scan: _Scan,
    span: leaves.Span,
    rows: list[_Row],
    fill: "_TextReader",
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Scala wiersze części, która się różni (po ``batch_size``), i zamyka ją (usunięcia na jej końcu)."""
    if rows:
        parts = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        stopped, restart = _scan_parts(scan, parts, False, commit_rows, fill, progress, should_stop)
        if restart:
            raise _Restarted
        if stopped:
            return stopped
    _close_span(scan, span)
    return None


def _read_tail(
    scan: _Scan,
    span: leaves.Span,
    fill: "_TextReader",
    hash_sql: str,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Część do końca źródła (``span.high is None``): wiersze czytane stronami (dopisanych może być dużo)."""
    low, limit = span.low, batch_size * _HASH_PAGE_FACTOR
    # Wierszy ogona nie było w ``_preload``: pozycje spoza okna i teksty - z bazy i ze źródła.
    scan.known = scan.texts = None
    while True:
        page = db_remote.fetch_hash_between(fill.conn(), fill.target, low, None, limit, hash_sql)
        rows = _prepare_page(page, None, scan.mode == "key", hashed=True)
        last = len(page) < limit
        stopped = _merge_span(
            scan,
            span if last else leaves.Span(None, None, []),
            rows,
            fill,
            batch_size,
            commit_rows,
            progress,
            should_stop,
        )
        if stopped or last:
            return stopped
        low = page[-1][0]


def _preload(scan: _Scan, window: list[tuple], complete: bool, rows: list[_Row], fill: "_TextReader") -> None:
    """Dane lokalne i teksty dla wszystkich wierszy zawężanej strony, kilkoma zapytaniami zamiast kilku na część.

    Okno pozycji strony (``scan.window``), pozycje spoza okna dla kluczy źródła (``scan.known``:
    powrót usuniętego, zmiana porządku) i teksty wierszy nowych i zmienionych (``scan.texts``).
    """
    scan.window = _Window(window, scan.anchor, complete)
    by_key = scan.window.by_key
    scan.known = task_item.items_by_keys(
        scan.db, scan.id_task, [r.remote_key for r in rows if r.remote_key not in by_key]
    )
    wanted = []
    for row in rows:
        item = by_key.get(row.remote_key) or scan.known.get(row.remote_key)
        if row.text is _UNREAD and (
            item is None or row.digest != task_item.reference_hash(item[4], item[2], item[3], scan.in_place)
        ):
            wanted.append(row.key)
    scan.texts = fill.read(wanted) if wanted else {}
    scan.stats["texts_read"] += len(scan.texts)


def _check_order(
    scan: _Scan, segments: list[leaves.Span], rows: list[list[_Row]], fill: "_TextReader"
) -> None:
    """Klucz nienumeryczny: pozycje części bez wiersza w jej zakresie źródła muszą zniknąć ze źródła.

    Klucz, który w źródle jest, leży w innym zakresie - źródło porządkuje klucze inaczej niż przy
    poprzednim skanie (``_OrderChanged``), zanim jakakolwiek pozycja zostanie oznaczona jako usunięta.
    """
    if scan.mode == "key":
        return
    seen = {row.remote_key for part in rows for row in part}
    gone = [decode_key(item[0]) for span in segments for item in span.items if item[0] not in seen]
    if gone and fill.read(gone):
        raise _OrderChanged


def _narrow(
    scan: _Scan,
    span: leaves.Span,
    window: list[tuple],
    fill: "_TextReader",
    hash_sql: str,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
    keys_only: bool = False,
) -> str | None:
    """Strona, która się różni, zawężona do części, które się różnią (``lib.sync.leaves.plan``).

    Wiersze ``(klucz, hash)`` wszystkich części do przeczytania idą jednym zapytaniem
    (``db_remote.fetch_hash_ranges``), dane lokalne i teksty - ``_preload``; części bez zmian
    przesuwają tylko pozycję skanu.

    Args:
        window: Wszystkie pozycje (także usunięte) z zakresu strony, rosnąco po ``source_ord``.
        keys_only: Części porównywane odciskami samych kluczy (tryb kursora); wiersze części, które
            się różnią, i tak idą z hashami (scalenie jak zawsze).

    Returns:
        Powód zatrzymania po zatwierdzonej partii albo ``None``.

    Raises:
        _OrderChanged: Źródło porządkuje klucze inaczej niż przy poprzednim skanie.
        _Restarted: Scalanie przełączyło skan na nową numeracją (``_start_rerank``).
    """
    plan_hash = leaves.KEYS_ONLY if keys_only else hash_sql
    segments = leaves.plan(fill.conn(), fill.target, plan_hash, span, scan.in_place, scan.stats, scan.dense)
    bounded = [seg for seg, differs in segments if differs and seg.high is not None]
    fetched = db_remote.fetch_hash_ranges(
        fill.conn(), fill.target, [(s.low, s.high) for s in bounded], hash_sql
    )
    rows = {
        id(seg): _prepare_page(page, None, scan.mode == "key", hashed=True)
        for seg, page in zip(bounded, fetched, strict=True)
    }
    _check_order(scan, bounded, list(rows.values()), fill)
    _preload(scan, window, span.high is None, [row for part in rows.values() for row in part], fill)
    seen = sum(len(part) for part in rows.values())
    read = sum(len(seg.items) for seg in bounded)
    # Zmiany strony (nowe i zmienione wiersze, pozycje bez wiersza) decydują o podziale następnej.
    scan.dense = len(scan.texts or ()) + max(0, read - seen) > leaves.DENSE
    try:
        for seg, differs in segments:
            if not differs:
                stopped = _skip_span(scan, seg, commit_rows, progress, should_stop)
            elif seg.high is None:
                stopped = _read_tail(
                    scan, seg, fill, hash_sql, batch_size, commit_rows, progress, should_stop
                )
            else:
                scan.stats["rows_compared"] += len(rows[id(seg)])
                stopped = _merge_span(
                    scan, seg, rows[id(seg)], fill, batch_size, commit_rows, progress, should_stop
                )
            if stopped:
                return stopped
    finally:
        scan.window = scan.texts = scan.known = None
    return None


def _scan_ranges(
    scan: _Scan,
    fill: "_TextReader",
    hash_sql: str,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
    keys_only: bool = False,
) -> tuple[str | None, bool | str]:
    """Resync zakresami kluczy wyznaczonymi z porządku kopii lokalnej (każdy rodzaj klucza, każde źródło z odciskami).

    Strona to ``batch_size * _HASH_PAGE_FACTOR`` kolejnych aktywnych pozycji za ``scan.anchor``;
    jej granica to klucz ostatniej z nich (ostatnia strona sięga do końca źródła). Odcisk pozycji
    liczy MySQL (``task_item.range_fingerprint``), odcisk tego samego zakresu kluczy - źródło; strona
    równa przechodzi jednym wierszem z każdej strony, inna jest zawężana (``_narrow``).

    Po stronie z gęstymi zmianami (``scan.dense``) kończy z ``"dense"``: dalej taniej czytać strony
    ``(klucz, hash)`` po kolei (``_scan_source`` przełącza drogę) niż liczyć odciski części.

    Returns:
        ``(powód zatrzymania albo None, True: od nowa z nową numeracją / "dense" / False)``.
    """
    scan.stats["read_mode"] = "cursor" if keys_only else "ranges"
    db, id_task, page = scan.db, scan.id_task, batch_size * _HASH_PAGE_FACTOR
    while True:
        scan.shifts = []
        bound = task_item.nth_active_after(db, id_task, scan.anchor, page)
        high_ord = None if bound is None else bound[1]
        high = None if bound is None else decode_key(bound[0])
        count, fingerprint, last_ord = task_item.range_fingerprint(
            db, id_task, scan.anchor, high_ord, scan.in_place, keys_only
        )
        plan_hash = leaves.KEYS_ONLY if keys_only else hash_sql
        (theirs,) = db_remote.range_fingerprints(fill.conn(), fill.target, plan_hash, scan.last_key, [high])
        try:
            if count and theirs == (count, fingerprint):
                last_key = bound[0] if bound is not None else task_item.key_at_ord(db, id_task, last_ord)
                scan.batch.unchanged += count
                scan.anchor = last_ord
                row = _item_row(scan, (last_key,))
                stopped = _advance(scan, row, count, commit_rows, progress, should_stop, compared=False)
            else:
                items = task_item.items_after(db, id_task, scan.anchor, 1 << 30, high=high_ord)
                span = leaves.Span(scan.last_key, high, [item for item in items if not item[6]])
                stopped = _narrow(
                    scan,
                    span,
                    items,
                    fill,
                    hash_sql,
                    batch_size,
                    commit_rows,
                    progress,
                    should_stop,
                    keys_only,
                )
        except _OrderChanged:
            _start_rerank(scan)
            return None, True
        except _Restarted:
            return None, True
        if stopped:
            return stopped, False
        if bound is None:
            return None, False
        if scan.dense:
            return None, "dense"


def _load_initial(
    scan: _Scan,
    settings: dict[str, Any],
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    hash_of,
    batch_size: int,
    commit_rows: int,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> str | None:
    """Pierwsza synchronizacja: partie ``lib.sync_load`` wstawiane przez ``SYNC_WRITERS`` połączeń.

    Każda partia jest zatwierdzana (po kolei) w transakcji pisarza razem z pozycją w źródle.

    Returns:
        Powód zatrzymania (pauza) albo ``None``, gdy źródło zostało przeczytane do końca.
    """
    scan.stats["read_mode"] = "copy" if db_remote.can_copy(rconn, target) else "pages"
    packet = int(scan.db.query_value("SELECT @@max_allowed_packet"))
    chunks = sync_load.stream_chunks(
        rconn,
        target,
        scan.id_task,
        scan.last_key,
        scan.mode,
        scan.anchor,
        hash_of,
        batch_size,
        commit_rows,
        GAP,
        MAX_REMOTE_KEY,
        min(sync_load.STATEMENT_BYTES, packet // 2),
    )

    def commit(db: MySQL, chunk: sync_load.Chunk) -> str | None:
        scan.batch.load = (chunk.statements, chunk.rows)
        scan.stats["texts_read"] += chunk.rows
        scan.batch.scanned += chunk.rows
        scan.last_key = chunk.last_key
        scan.last_row = _Row(chunk.last_key, chunk.remote_key, chunk.remote_id, None, None)
        scan.anchor = chunk.last_ord
        scan.scanned += chunk.rows
        _flush(scan, False, progress, db, inserted=True)
        return should_stop() if should_stop else None

    writers = [connect_local(settings) for _ in range(settings["SYNC_WRITERS"])]
    try:
        # Błąd wstawiania pisarza wychodzi tutaj (z jego wątku), poza ``_write_batch``.
        with _duplicate_keys_are_task_errors():
            return sync_load.load_chunks(chunks, writers, commit)
    finally:
        chunks.close()
        for db in writers:
            db.close()


@dataclass
class _Reading:
    """Odczyt źródła jednego skanu: połączenia, cel, hash liczony przez źródło i ustawienia stron.

    Attributes:
        hashes: Wyrażenie hasha liczonego przez źródło (``_source_hashes``) albo ``None``: skan czyta teksty.
        fill: Drugie połączenie (teksty po kluczach, zakresy) - tylko z ``hashes``.
        ranges: Czy wolno czytać zakresami z porządku kopii (``_scan_ranges``); ``False`` po gęstych zmianach.
    """

    settings: dict[str, Any]
    rconn: db_remote.RemoteConn
    conn_row: dict[str, Any]
    target: db_remote.Target
    hash_of: Any
    batch_size: int
    commit_rows: int
    progress: Progress | None
    should_stop: StopCheck | None
    hashes: str | None = None
    fill: "_TextReader | None" = None
    ranges: bool = True
    # Tryb kursora: dolna granica odczytu (``cursor.since``); ``cursor`` gaśnie po fazie wierszy z kursorem.
    cursor: bool = False
    cursor_since: Any = None
    spare: list[db_remote.RemoteConn] = field(default_factory=list)


def _verify_only(task_row: dict[str, Any]) -> dict[str, Any]:
    """Statystyki runu, który zastał zatwierdzony skan (run zginął w weryfikacji): została sama weryfikacja."""
    return {
        "fetched": 0,
        "new": 0,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "stopped": None,
        "last_key": task_row["last_processed_key"],
        "records_total": task_row["records_total"],
        "resumed": True,
    }


def _open_scan(
    db: MySQL, reading: _Reading, task_row: dict[str, Any], resuming: bool, marker: str, started: float
) -> _Scan:
    """Stan skanu: nowa operacja (liczba wierszy źródła) albo wznowienie od zatwierdzonej pozycji."""
    id_task = task_row["id_task"]
    state = get_task(db, id_task) if resuming else None
    db.commit()
    # sync_progress >= 5 = liczba wierszy źródła zapisana (ten sam commit co records_total);
    # run zabity przed tym momentem liczy je od nowa.
    if state is not None and float(state["sync_progress"] or 0) >= 5:
        total = int(state["records_total"] or 0)
        after = decode_key(state["last_processed_key"]) if state["last_processed_key"] else None
        anchor, scanned_before = state["scan_ord"], int(state["records_fetched"] or 0)
    else:
        total = db_remote.count_rows(reading.rconn, reading.target)
        after, anchor, scanned_before = None, None, 0
        record_source_total(db, id_task, total, int((time.monotonic() - started) * 1000))
    parsed = markers.parse(marker)
    mode = "rerank" if parsed.kind == "rerank" else _order_mode(reading.target)
    target = reading.target
    log.info(
        "zadanie %s: %s skanu %s.%s po kluczu (%s): %s wierszy w źródle%s",
        id_task,
        "wznowienie" if resuming else "start",
        target.table,
        target.column,
        target.key,
        total,
        "" if after is None else f", od klucza {encode_key(after)}",
    )
    # texts_read: teksty przeczytane ze źródła; read_mode: copy, pages (strony z tekstami), hashes
    # (hashe liczone przez źródło), fingerprints / ranges (odciski stron i zakresów kluczy).
    # ranges_compared / rows_compared: odciski części i pozycje części czytanych wierszami (zawężanie).
    stats = dict.fromkeys(("fetched", "new", "updated", "deleted", "unchanged", "texts_read"), 0)
    stats.update(read_mode="", ranges_compared=0, rows_compared=0)
    # Pozycja wznowienia jako ostatni wiersz: partia zapisana przed pierwszą stroną jej nie cofa.
    last_row = None
    if after is not None:
        remote_id = after if target.single_integer_key and isinstance(after, int) else None
        last_row = _Row(after, encode_key(after), remote_id, None, None)
    return _Scan(
        db=db,
        id_task=id_task,
        total=total,
        last_key=after,
        last_row=last_row,
        scanned=scanned_before,
        stats=stats,
        in_place=exports_in_place(task_row),
        mode=mode,
        initial=parsed.kind == "init",
        anchor=anchor,
        base=parsed.base,
    )


def _read_path(scan: _Scan, reading: _Reading) -> str:
    """Którą drogą czytać źródło w tym skanie.

    ``cursor``: tryb kursora (wiersze z kursorem, potem odciski samych kluczy; klucz całkowity);
    ``fingerprints``: odciski stron keyset liczone przez źródło (PostgreSQL, klucz całkowity);
    ``ranges``: odciski zakresów kluczy z porządku kopii (każdy klucz jednokolumnowy, źródła z
    ``range_fingerprints``); ``hashes``: strony ``(klucz, hash)``; ``texts``: strony z tekstami.
    """
    if reading.hashes is None:
        return "texts"
    ranges = db_remote.can_fingerprint_ranges(reading.rconn, reading.target)
    if reading.cursor and reading.ranges and scan.mode == "key" and ranges:
        return "cursor"
    if scan.mode == "key" and db_remote.can_fingerprint(reading.rconn, reading.target):
        return "fingerprints"
    if (
        reading.ranges
        and scan.mode != "rerank"
        and db_remote.can_fingerprint_ranges(reading.rconn, reading.target)
    ):
        return "ranges"
    return "hashes"


def _pages(scan: _Scan, reading: _Reading, path: str) -> Iterator:
    """Strumień stron źródła dla drogi ``path`` (wątek czyta naprzód, ``_PREFETCH_PAGES`` stron)."""
    rconn, target, size = reading.rconn, reading.target, reading.batch_size * _HASH_PAGE_FACTOR
    single_int = target.single_integer_key
    if path == "fingerprints":
        # Odciski stron liczy źródło (na SYNC_FINGERPRINT_READERS połączeniach naraz).
        while len(reading.spare) < reading.settings["SYNC_FINGERPRINT_READERS"] - 1:
            reading.spare.append(db_remote.connect(reading.conn_row, reading.settings))
        source = db_remote.iter_page_fingerprints(
            rconn, target, scan.last_key, size, reading.hashes, reading.spare
        )
    elif path == "hashes":
        source = (
            _prepare_page(page, None, single_int, hashed=True)
            for page in db_remote.iter_pages(rconn, target, scan.last_key, size, hash_sql=reading.hashes)
        )
    else:
        source = (
            _prepare_page(page, reading.hash_of, single_int)
            for page in db_remote.iter_pages(rconn, target, scan.last_key, reading.batch_size)
        )
    return _prefetch(source, _PREFETCH_PAGES)


def _read_cursor_rows(scan: _Scan, reading: _Reading) -> None:
    """Tryb kursora, faza 1: wiersze z kursorem ``>= reading.cursor_since`` porównane z pozycjami po kluczu.

    Nowe, zmienione i przywrócone są zapisywane partiami (pozycja = klucz, tryb ``key``); pozycja
    skanu się nie zmienia, więc wznowienie powtarza tę fazę (bez skutków: zapisane są już równe)
    i ciągnie dalej fazę 2 (odciski samych kluczy, ``_scan_ranges``) od zatwierdzonej pozycji.
    """
    scan.stats["read_mode"] = "cursor"
    after = None
    while True:
        page = db_remote.fetch_cursor_page(
            reading.rconn, reading.target, reading.cursor_since, after, reading.batch_size
        )
        rows = _prepare_page(page, reading.hash_of, True)
        local = task_item.items_by_keys(scan.db, scan.id_task, [row.remote_key for row in rows])
        for row in rows:
            item = local.get(row.remote_key)
            if item is None:
                scan.batch.new.append((row.remote_key, row.remote_id, row.key, row.text, row.digest))
            else:
                _compare(scan.batch, row, item, scan.in_place)
        scan.stats["texts_read"] += len(rows)
        # Bez zmian policzy faza 2 (każdy wiersz tabeli raz).
        scan.batch.unchanged = 0
        if scan.batch.new or scan.batch.changed or scan.batch.revived:
            _flush(scan, False, reading.progress)
        if len(page) < reading.batch_size:
            return
        after = page[-1][0]


def _scan_source(scan: _Scan, reading: _Reading) -> str | None:
    """Porównanie źródła z pozycjami drogą z ``_read_path``, od nowa po zmianie numeracji lub drogi.

    Returns:
        Powód zatrzymania albo ``None``, gdy źródło zostało przeczytane do końca.
    """
    args = (reading.batch_size, reading.commit_rows)
    callbacks = (reading.progress, reading.should_stop)
    while True:
        path = _read_path(scan, reading)
        if path in ("ranges", "cursor"):
            assert reading.fill is not None and reading.hashes is not None
            keys_only = path == "cursor"
            if keys_only:
                _read_cursor_rows(scan, reading)
            stopped, restart = _scan_ranges(scan, reading.fill, reading.hashes, *args, *callbacks, keys_only)
            reading.cursor = False
            if restart == "dense":
                reading.ranges = False
        else:
            pages = _pages(scan, reading, path)
            try:
                if path == "fingerprints":
                    assert reading.fill is not None and reading.hashes is not None
                    stopped, restart = _scan_fingerprints(
                        scan, pages, *args, reading.fill, reading.hashes, *callbacks
                    )
                else:
                    stopped, restart = _scan_pages(
                        scan, pages, reading.target, *args, reading.fill, *callbacks
                    )
            finally:
                pages.close()
        if not restart:
            return stopped


def _scan(
    db: MySQL,
    settings: dict[str, Any],
    task_row: dict[str, Any],
    run_id: str | None,
    should_stop: StopCheck | None,
    progress: Progress | None,
    started: float,
) -> dict[str, Any]:
    """Jedna operacja skanu (albo jej wznowienie): odczyt źródła, porównanie, zapis różnic."""
    id_task = task_row["id_task"]
    if task_row["status"] == "verifying" and markers.parse(task_row.get("resume_marker")).stage == "verify":
        # Run zginął w weryfikacji: skan tej operacji jest zatwierdzony, zostaje sama weryfikacja
        # (nowy skan wyzerowałby liczniki operacji).
        log.info("zadanie %s: skan zatwierdzony wcześniej - tylko weryfikacja", id_task)
        return _verify_only(task_row)
    resuming, marker = _start_operation(db, task_row, run_id)
    faults.checkpoint("sync.init")
    rconn, conn_row = open_source(db, task_row, settings)
    try:
        batch_size = settings["BATCH_SIZE"]
        reading = _Reading(
            settings=settings,
            rconn=rconn,
            conn_row=conn_row,
            target=resolve_task_target(rconn, task_row),
            hash_of=hasher(task_row),
            batch_size=batch_size,
            commit_rows=max(settings["COMMIT_ROWS"], batch_size),
            progress=progress,
            should_stop=should_stop,
        )
        scan = _open_scan(db, reading, task_row, resuming, marker, started)
        # Kursor: największa wartość na starcie (zapamiętana po skanie); odczyt od poprzedniej minus opóźnienie.
        cursor_top = db_remote.max_cursor(rconn, reading.target) if reading.target.quoted_cursor else None
        reading.cursor = bool(reading.target.quoted_cursor) and task_row.get("cursor_value") is not None
        reading.cursor_since = cursor.since(task_row.get("cursor_value"), settings["SYNC_CURSOR_LAG_S"])
        # GROUP_CONCAT odcisku strony: do BATCH_SIZE * _HASH_PAGE_FACTOR wierszy z kluczem do 700 znaków.
        db.execute(
            "SET SESSION group_concat_max_len = %s", (max(1 << 20, batch_size * _HASH_PAGE_FACTOR * 3200),)
        )
        stopped = None
        if scan.initial and scan.mode != "rerank":
            stopped = _load_initial(
                scan,
                settings,
                rconn,
                reading.target,
                reading.hash_of,
                batch_size,
                reading.commit_rows,
                progress,
                should_stop,
            )
        else:
            reading.hashes = _source_hashes(rconn, reading.target, task_row, scan.last_key, batch_size)
            if reading.hashes:
                reading.fill = _TextReader(conn_row, settings, reading.target, reading.hash_of)
            try:
                stopped = _scan_source(scan, reading)
            finally:
                if reading.fill is not None:
                    reading.fill.close()
                for extra in reading.spare:
                    db_remote.close(extra)
        if stopped:
            mark_paused(db, id_task, stopped)
        else:
            _flush(scan, True, progress)
            if reading.target.quoted_cursor:
                set_cursor_value(db, id_task, cursor.encode(cursor_top))
            set_resume_marker(db, id_task, markers.verify())
        scan.stats.update(
            stopped=stopped,
            last_key=None if scan.last_row is None else scan.last_row.remote_key,
            records_total=scan.total,
            resumed=resuming,
        )
        return scan.stats
    finally:
        db_remote.close(rconn)


def run_scan(
    settings: dict[str, Any],
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Etapy init, fetch, compare i update: skan źródła i zapis różnic w ``task_item``.

    Wznawia przerwaną operację od ``task.last_processed_id``; inaczej zaczyna nową.

    Args:
        settings: Ustawienia.
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera (do ``task.run_id`` i ``run_log``).
        should_stop: Funkcja z ``lib.control``; powód != None kończy run po bieżącej partii.
        progress: Wołana po każdej zatwierdzonej partii ze statystykami do tej chwili
            (``scanned``, ``records_total``, ``sync_progress``, fetched, new, updated...).

    Returns:
        Statystyki runu: fetched, new, updated, deleted, unchanged, stopped, duration_s, rows_per_s...

    Raises:
        UsageError: Nieznane zadanie albo status cancelled/archived.
        TaskBusyError: Zadanie przetwarza inny run.
        TaskError, RemoteError: Błąd zadania (zadanie dostaje status ``error``).
    """

    def body(db: MySQL, task_row: dict[str, Any], started: float) -> dict[str, Any]:
        stats = _scan(db, settings, task_row, run_id, should_stop, progress, started)
        elapsed = max(time.monotonic() - started, 1e-6)
        stats["rows_per_s"] = round(stats["fetched"] / elapsed, 1)
        return stats

    return run_with_task_lock(settings, id_task, "sync", run_id, body)


def sync_task(
    settings: dict[str, Any],
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pełna synchronizacja bez Dagstera (skan + weryfikacja) - dla testów i benchmarków.

    Returns:
        Statystyki skanu uzupełnione o wynik weryfikacji (klucz ``verify``).
    """
    stats = run_scan(settings, id_task, run_id=run_id, should_stop=should_stop, progress=progress)
    if not stats.get("stopped"):
        stats["verify"] = run_verify(settings, id_task, run_id=run_id)
    return stats
