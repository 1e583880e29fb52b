"""Pierwsza synchronizacja zadania bez pozycji: strumień źródła -> gotowe ``INSERT`` i kilku pisarzy.

Zadanie bez żadnej pozycji nie ma czego porównywać: każdy wiersz źródła jest nową pozycją.
Wątek czytający bierze całą tabelę w porządku źródła - z PostgreSQL jednym strumieniem
``COPY (SELECT klucz, tekst ... ORDER BY klucz) TO STDOUT``, z innych źródeł stronami keyset
(``db_remote.iter_pages``) - liczy ``remote_key``, ``source_ord`` i hash każdego tekstu i składa
wielowierszowe ``INSERT`` (``task_item.new_items_statement``), oddawane partiami po ``COMMIT_ROWS``
wierszy (albo co ~2 s). Partie wstawia ``SYNC_WRITERS`` połączeń naraz (``load_chunks``), a
zatwierdza je wątek główny ściśle po kolei, każdą razem z pozycją w źródle: zatwierdzone partie
są zawsze początkiem źródła, więc wznowienie po SIGKILL działa jak w skanie stronami.

Dlaczego ``INSERT``, a nie ``LOAD DATA``: MariaDB/MySQL wykonuje ``LOAD DATA`` do tabeli
z ``AUTO_INCREMENT`` pod blokadą tabeli ``AUTO-INC`` (``innodb_autoinc_lock_mode=1``, domyślne
w MariaDB), więc dwa ładowania naraz idą jedno po drugim i wstawianie zajmuje jeden rdzeń.
Wielowierszowe ``INSERT`` (liczba wierszy znana) tej blokady nie biorą: dwa połączenia
wstawiają równolegle (zmierzone na 1 000 000 pozycji, 2 rdzenie: ``LOAD DATA`` 15-17 s przy
jednym i dwóch połączeniach, ``INSERT`` po ~4 000 wierszy 17,8 s jednym i 11,4 s dwoma).

Teksty zostają bajt w bajt: pole COPY to tekst w UTF-8 z ucieczkami backslash, które
``db_remote.copy_field_bytes`` odwraca na bajtach (bez dekodowania UTF-8); te bajty idą do hasha
i do literału SQL.
"""

import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, NamedTuple

from lib import db_remote, task_item
from lib.db_local import MySQL, sql_literal
from lib.db_remote import COPY_NULL, canonical_key, copy_field_bytes, copy_unescape, encode_key
from lib.errors import TaskError
from lib.sync.background import background_stream

# Partia jest oddawana najpóźniej po tylu sekundach (postęp, pauza i wznowienie nie czekają na COMMIT_ROWS).
COMMIT_EVERY_S = 2.0
# Ile gotowych partii czeka na pisarza (pamięć ograniczona, niezależna od wielkości tabeli).
_QUEUE_CHUNKS = 2
# Co ile wierszy sprawdzać zegar partii.
_CLOCK_EVERY = 1024
# Rozmiar jednego INSERT w bajtach (mniejsze zapytania wstawiają wolniej, większe nie dają więcej;
# ograniczone też przez połowę max_allowed_packet serwera).
STATEMENT_BYTES = 2 << 20


class Chunk(NamedTuple):
    """Partia gotowa do wstawienia: zapytania ``INSERT`` i pozycja ostatniego wiersza w źródle."""

    statements: list[bytes]
    rows: int
    last_key: Any
    remote_key: str
    remote_id: int | None
    last_ord: int


@dataclasses.dataclass
class _Encoder:
    """Stan zamiany wierszy źródła na zapytania ``INSERT`` oddawane partiami (``Chunk``) przez ``put``.

    Args:
        target: Wynik ``resolve_target``.
        mode: ``key`` (``source_ord`` = klucz całkowity) albo ``assigned`` (pozycje co ``gap``).
        ord: ``source_ord`` ostatniego wiersza (na starcie: ostatniego zatwierdzonego albo 0).
        task: ``id_task`` jako literał SQL.
        hash_of: Konstruktor hashlib metody zadania.
        commit_rows: Najwięcej wierszy w partii.
        statement_bytes: Najwięcej bajtów wartości w jednym ``INSERT``.
        put: Oddaje gotową partię (blokuje, gdy kolejka jest pełna).
        gap: Odstęp pozycji w trybie ``assigned``.
        max_key: Najdłuższy ``remote_key``.
    """

    target: db_remote.Target
    mode: str
    ord: int
    task: bytes
    hash_of: Callable[[bytes], Any]
    commit_rows: int
    statement_bytes: int
    put: Callable[[Chunk], None]
    gap: int
    max_key: int
    width: int
    single_int: bool
    fast: bool
    values: list[bytes] = dataclasses.field(default_factory=list)
    value_bytes: int = 0
    statements: list[bytes] = dataclasses.field(default_factory=list)
    rows: int = 0
    last: tuple[Any, str, int | None] | None = None
    last_int: bytes = b""
    started: float = dataclasses.field(default_factory=time.monotonic)


def _text_fields(enc: _Encoder, field: bytes) -> tuple[bytes, bytes]:
    """Pole tekstu COPY -> (literał tekstu, literał hasha)."""
    if field == COPY_NULL:
        return b"NULL", b"NULL"
    raw = copy_field_bytes(field)
    return sql_literal(raw), b"'%b'" % enc.hash_of(raw).hexdigest().encode()


def _copy_line(enc: _Encoder, line: bytes) -> None:
    """Jeden wiersz strumienia COPY (``write`` dla ``db_remote.copy_rows``)."""
    if enc.fast:
        key, _tab, field = line.partition(b"\t")
        text, digest = _text_fields(enc, field[:-1])
        enc.last_int = key  # przed _add: partia zamknięta w _add kończy się tym wierszem
        _add(enc, task_item.NEW_ITEM_VALUES % (enc.task, b"'[%b]'" % key, key, key, text, digest))
        return
    fields = line[:-1].split(b"\t")
    key = canonical_key(enc.target, [copy_unescape(value) for value in fields[: enc.width]])
    text, digest = _text_fields(enc, fields[enc.width])
    _keyed(enc, key, text, digest)


def _page_row(enc: _Encoder, key: Any, text: str | None) -> None:
    """Jeden wiersz strony keyset ``(klucz, tekst)``."""
    if text is None:
        field = digest = b"NULL"
    else:
        raw = text.encode("utf-8", "surrogatepass")
        field = sql_literal(raw)
        digest = b"'%b'" % enc.hash_of(raw).hexdigest().encode()
    _keyed(enc, key, field, digest)


def _keyed(enc: _Encoder, key: Any, text: bytes, digest: bytes) -> None:
    remote_key = encode_key(key)
    if len(remote_key) > enc.max_key:
        raise TaskError(
            f"klucz wiersza źródła {remote_key[:80]}… ma {len(remote_key)} znaków w postaci JSON, "
            f"a task_item.remote_key mieści {enc.max_key}; wskaż krótszy klucz w task.key_column"
        )
    remote_id = key if enc.single_int and -(2**63) <= key < 2**63 else None
    if enc.mode == "key":
        if remote_id is None:
            raise TaskError(f"klucz tabeli {enc.target.table!r} nie mieści się w BIGINT; wskaż inny klucz")
        enc.ord = remote_id
    else:
        enc.ord += enc.gap
    shown_id = b"NULL" if remote_id is None else b"%d" % remote_id
    literal_key = sql_literal(remote_key.encode())
    enc.last = (key, remote_key, remote_id)
    _add(enc, task_item.NEW_ITEM_VALUES % (enc.task, literal_key, shown_id, b"%d" % enc.ord, text, digest))


def _add(enc: _Encoder, values: bytes) -> None:
    """Dopisuje wiersz do bieżącego ``INSERT``; zamyka zapytanie i partię, gdy pełne."""
    enc.values.append(values)
    enc.value_bytes += len(values)
    enc.rows += 1
    if enc.value_bytes >= enc.statement_bytes:
        _close_statement(enc)
    if enc.rows >= enc.commit_rows or (
        enc.rows % _CLOCK_EVERY == 0 and time.monotonic() - enc.started >= COMMIT_EVERY_S
    ):
        _flush(enc)


def _close_statement(enc: _Encoder) -> None:
    if enc.values:
        enc.statements.append(task_item.new_items_statement(enc.values))
        enc.values = []
        enc.value_bytes = 0


def _flush(enc: _Encoder) -> None:
    """Oddaje zebrane wiersze jako partię (nic, gdy pusta)."""
    _close_statement(enc)
    if not enc.rows:
        return
    if enc.last_int:  # szybka ścieżka COPY zapamiętuje tylko bajty ostatniego klucza
        key = int(enc.last_int)
        last = (key, f"[{key}]", key)
        enc.ord = key
    else:
        assert enc.last is not None
        last = enc.last
    chunk = Chunk(enc.statements, enc.rows, last[0], last[1], last[2], enc.ord)
    enc.statements = []
    enc.rows = 0
    enc.put(chunk)
    enc.started = time.monotonic()


def stream_chunks(
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    id_task: int,
    after_key: Any,
    mode: str,
    anchor: int | None,
    hash_of: Callable[[bytes], Any],
    page_size: int,
    commit_rows: int,
    gap: int,
    max_key: int,
    statement_bytes: int = STATEMENT_BYTES,
) -> Iterator[Chunk]:
    """Partie nowych pozycji całej tabeli za ``after_key``, czytane i kodowane w osobnym wątku.

    Args:
        rconn: Połączenie ze źródłem (używa go tylko wątek czytający).
        target: Wynik ``resolve_target``.
        id_task: Zadanie (wartość ``id_task`` wstawianych pozycji).
        after_key: Ostatni zatwierdzony klucz (wznowienie) albo ``None``.
        mode: ``key`` albo ``assigned`` (jak ``lib.sync.engine``).
        anchor: ``source_ord`` ostatniego zatwierdzonego wiersza albo ``None``.
        hash_of: Konstruktor hashlib metody zadania.
        page_size: Rozmiar strony keyset (źródła bez COPY).
        commit_rows: Najwięcej wierszy w partii.
        gap: Odstęp pozycji w trybie ``assigned``.
        max_key: Najdłuższy ``remote_key``.
        statement_bytes: Najwięcej bajtów wartości w jednym ``INSERT``.

    Yields:
        ``Chunk`` w porządku źródła.

    Raises:
        RemoteError, TaskError: Błąd odczytu albo klucza (z wątku czytającego).
    """

    def produce(put: Callable[[Any], None]) -> None:
        encoder = _Encoder(
            target=target,
            mode=mode,
            ord=0 if anchor is None else anchor,
            task=b"%d" % id_task,
            hash_of=hash_of,
            commit_rows=commit_rows,
            statement_bytes=statement_bytes,
            put=put,
            gap=gap,
            max_key=max_key,
            width=len(target.key_columns),
            single_int=target.single_integer_key,
            fast=mode == "key" and target.single_integer_key,
        )
        if db_remote.can_copy(rconn, target):
            db_remote.copy_rows(rconn, target, after_key, partial(_copy_line, encoder))
        else:
            for page in db_remote.iter_pages(rconn, target, after_key, page_size):
                for key, text in page:
                    _page_row(encoder, key, text)
        _flush(encoder)

    with contextlib.closing(background_stream(produce, _QUEUE_CHUNKS, "source-loader", 10)) as chunks:
        yield from chunks


def _raise_first_failure(pending: deque[tuple[Future, MySQL, Chunk]]) -> None:
    """Czeka na najstarszą partię; gdy wcześniej padnie późniejsza, wycofuje ją i zgłasza jej błąd.

    Pisarz późniejszej partii, który skończył się błędem (np. powtórzony klucz), trzyma blokady
    wierszy w otwartej transakcji. Gdyby najstarsza partia na nie czekała, a wątek główny czekał
    tylko na nią, obie stałyby do ``innodb_lock_wait_timeout`` - dlatego błąd którejkolwiek partii
    kończy czekanie, a jej transakcja jest wycofana od razu.
    """
    futures = [future for future, _db, _chunk in pending]
    if futures[0].done():
        return  # jej wynik (albo błąd) odbiera wołający
    # Wraca, gdy któraś partia padnie albo wszystkie się skończą (wtedy także najstarsza).
    done, _rest = wait(futures, return_when=FIRST_EXCEPTION)
    for future, db, _chunk in pending:
        error = future.exception() if future in done else None
        if error is not None:
            db.rollback()
            raise error


def _insert(db: MySQL, chunk: Chunk) -> None:
    """Pisarz: otwiera transakcję i wstawia partię (bez commit - zatwierdza ``load_chunks``)."""
    db.begin()
    task_item.insert_statements(db, chunk.statements, chunk.rows)


def load_chunks(
    chunks: Iterator[Chunk],
    writers: list[MySQL],
    commit: Callable[[MySQL, Chunk], str | None],
) -> str | None:
    """Wstawia partie kilkoma połączeniami naraz i zatwierdza je po kolei w wątku wołającego.

    Pisarz ``i`` wstawia swoją partię w otwartej transakcji, a ``commit(db, chunk)`` (wątek
    wołającego) dopisuje do niej pozycję w źródle i ją zatwierdza - zawsze dla najstarszej
    niezatwierdzonej partii, więc zatwierdzone partie są początkiem źródła. Po błędzie albo
    zatrzymaniu niezatwierdzone partie są wycofywane.

    Args:
        chunks: Partie w porządku źródła (``stream_chunks``).
        writers: Połączenia pisarzy (co najmniej jedno; ich transakcje należą do tej funkcji).
        commit: Zatwierdza partię na połączeniu pisarza; zwraca powód zatrzymania albo ``None``.

    Returns:
        Powód zatrzymania albo ``None``, gdy partie się skończyły.
    """
    free = list(writers)
    pending: deque[tuple[Future, MySQL, Chunk]] = deque()

    def commit_oldest() -> str | None:
        # Partia zostaje w ``pending``, dopóki nie jest zatwierdzona (błąd -> wycofanie w finally).
        future, db, chunk = pending[0]
        _raise_first_failure(pending)
        future.result()
        reason = commit(db, chunk)
        pending.popleft()
        free.append(db)
        return reason

    stopped = None
    with ThreadPoolExecutor(len(writers), thread_name_prefix="sync-writer") as pool:
        try:
            for chunk in chunks:
                if not free:
                    stopped = commit_oldest()
                    if stopped:
                        break
                db = free.pop()
                pending.append((pool.submit(_insert, db, chunk), db, chunk))
            while pending and not stopped:
                stopped = commit_oldest()
        finally:
            for future, db, _chunk in pending:
                with contextlib.suppress(BaseException):
                    future.result()
                db.rollback()
    return stopped
