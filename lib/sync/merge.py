"""Porównanie strony źródła z pozycjami zadania i zapis różnic (stan skanu, okno pozycji, partie).

Strona źródła (teksty albo hashe liczone przez źródło) jest scalana z pozycjami ``task_item`` w
porządku źródła (``source_ord``): nowe, zmienione, przywrócone i usunięte pozycje trafiają do partii
``_Batch``, zapisywanej w jednej transakcji razem z pozycją skanu i licznikami (``_write_batch``).
Drogi odczytu źródła są w ``lib.sync`` (strony, odciski stron) i ``lib.sync.ranges`` (zakresy kluczy).
"""

import bisect
import contextlib
import hashlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pymysql

from lib import db_remote, faults, task_item
from lib.db_local import MySQL, error_code, retry_on_deadlock
from lib.db_remote import encode_key
from lib.db_utils import get_logger, hash_text
from lib.errors import TaskError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.progress import Progress
from lib.sync import markers
from lib.task import lock_task_row, record_scan_batch, restart_scan_position, stage_for_progress

log = get_logger("sync")

# Partia jest zatwierdzana najpóźniej po tylu sekundach (postęp i wznowienie nie czekają na COMMIT_ROWS).
_COMMIT_EVERY_S = 2.0


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
    # Pierwsza synchronizacja: zapytania INSERT nowych pozycji i ich liczba (``lib.sync.initial_load``).
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
        self, conn_row: dict[str, Any], settings: Settings, target: db_remote.Target, hash_of
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
