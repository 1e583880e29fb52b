"""Pierwsza synchronizacja zadania bez pozycji: strumień źródła -> partie TSV dla ``LOAD DATA``.

Zadanie bez żadnej pozycji nie ma czego porównywać: każdy wiersz źródła jest nową pozycją.
Wątek czytający bierze całą tabelę w porządku źródła - z PostgreSQL jednym strumieniem
``COPY (SELECT klucz, tekst ... ORDER BY klucz) TO STDOUT``, z innych źródeł stronami keyset
(``db_remote.iter_pages``) - liczy ``remote_key``, ``source_ord`` i hash każdego tekstu, zapisuje
linie TSV (kolumny ``task_item.LOAD_COLUMNS``) i oddaje je partiami po ``COMMIT_ROWS`` wierszy
(albo co ~2 s). Wątek główny (``lib/sync.py``) ładuje każdą partię jednym ``LOAD DATA LOCAL INFILE``
w transakcji razem z pozycją w źródle, więc odczyt i hashowanie (Python) nakładają się na zapis
MariaDB (drugi rdzeń), a wznowienie działa jak w skanie stronami.

Teksty zostają bajt w bajt: pole COPY bez znaku ``\\`` jest już dokładnie tekstem (tabulator,
nowa linia i CR zawsze są w nim ucieczką), więc idzie do pliku i do hasha bez dekodowania; pole
z ucieczkami jest dekodowane (``db_remote.copy_unescape``) i kodowane na nowo regułą
``db_local.tsv_escape`` (``LOAD DATA`` nie zna np. ``\\f`` z COPY).
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, NamedTuple

from lib import db_remote
from lib.background import background_stream
from lib.db_local import tsv_escape
from lib.db_remote import COPY_NULL, canonical_key, copy_unescape, encode_key
from lib.errors import TaskError

# Partia jest oddawana najpóźniej po tylu sekundach (postęp, pauza i wznowienie nie czekają na COMMIT_ROWS).
COMMIT_EVERY_S = 2.0
# Ile gotowych partii czeka na załadowanie (pamięć ograniczona, niezależna od wielkości tabeli).
_QUEUE_CHUNKS = 2
# Co ile wierszy sprawdzać zegar partii.
_CLOCK_EVERY = 1024


class Chunk(NamedTuple):
    """Partia gotowa do ``task_item.load_items``: plik TSV i pozycja ostatniego wiersza w źródle."""

    path: str
    rows: int
    last_key: Any
    remote_key: str
    remote_id: int | None
    last_ord: int


@dataclasses.dataclass
class _Encoder:
    """Stan zamiany wierszy źródła na linie TSV oddawane partiami (``Chunk``) przez ``put``.

    Args:
        target: Wynik ``resolve_target``.
        mode: ``key`` (``source_ord`` = klucz całkowity) albo ``assigned`` (pozycje co ``gap``).
        anchor: ``source_ord`` ostatniego zatwierdzonego wiersza (wznowienie) albo ``None``.
        hash_of: Konstruktor hashlib metody zadania.
        commit_rows: Najwięcej wierszy w partii.
        directory: Katalog plików partii.
        put: Oddaje gotową partię (blokuje, gdy kolejka jest pełna).
        gap: Odstęp pozycji w trybie ``assigned``.
        max_key: Najdłuższy ``remote_key``.
    """

    target: db_remote.Target
    mode: str
    ord: int
    hash_of: Callable[[bytes], Any]
    commit_rows: int
    directory: str
    put: Callable[[Chunk], None]
    gap: int
    max_key: int
    width: int
    single_int: bool
    fast: bool
    lines: list[bytes] = dataclasses.field(default_factory=list)
    last: tuple[Any, str, int | None] | None = None
    last_int: bytes = b""
    started: float = dataclasses.field(default_factory=time.monotonic)
    count: int = 0


def _new_encoder(
    target: db_remote.Target,
    mode: str,
    anchor: int | None,
    hash_of: Callable[[bytes], Any],
    commit_rows: int,
    directory: str,
    put: Callable[[Chunk], None],
    gap: int,
    max_key: int,
) -> _Encoder:
    """Stan kodera partii (argumenty jak pola ``_Encoder``; ``anchor`` = ostatnia zatwierdzona pozycja)."""
    return _Encoder(
        target=target,
        mode=mode,
        ord=0 if anchor is None else anchor,
        hash_of=hash_of,
        commit_rows=commit_rows,
        directory=directory,
        put=put,
        gap=gap,
        max_key=max_key,
        width=len(target.key_columns),
        single_int=target.single_integer_key,
        fast=mode == "key" and target.single_integer_key,
    )


def _text_fields(enc: _Encoder, field: bytes) -> tuple[bytes, bytes]:
    """Pole tekstu COPY -> (pole TSV, hash TSV)."""
    if field == COPY_NULL:
        return COPY_NULL, COPY_NULL
    if b"\\" not in field:
        return field, enc.hash_of(field).hexdigest().encode()
    text = copy_unescape(field)
    assert text is not None
    return tsv_escape(text).encode(), enc.hash_of(text.encode()).hexdigest().encode()


def _copy_line(enc: _Encoder, line: bytes) -> None:
    """Jeden wiersz strumienia COPY (``write`` dla ``db_remote.copy_rows``)."""
    if enc.fast:
        key, _tab, field = line.partition(b"\t")
        text, digest = _text_fields(enc, field[:-1])
        enc.lines.append(b"[%b]\t%b\t%b\t%b\t%b\n" % (key, key, key, text, digest))
        enc.last_int = key
        _tick(enc)
        return
    fields = line[:-1].split(b"\t")
    key = canonical_key(enc.target, [copy_unescape(value) for value in fields[: enc.width]])
    text, digest = _text_fields(enc, fields[enc.width])
    _keyed(enc, key, text, digest)


def _page_row(enc: _Encoder, key: Any, text: str | None) -> None:
    """Jeden wiersz strony keyset ``(klucz, tekst)``."""
    if text is None:
        field = digest = COPY_NULL
    else:
        field = tsv_escape(text).encode()
        digest = enc.hash_of(text.encode("utf-8", "surrogatepass")).hexdigest().encode()
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
    shown_id = COPY_NULL if remote_id is None else str(remote_id).encode()
    enc.lines.append(
        b"%b\t%b\t%d\t%b\t%b\n" % (tsv_escape(remote_key).encode(), shown_id, enc.ord, text, digest)
    )
    enc.last = (key, remote_key, remote_id)
    _tick(enc)


def _tick(enc: _Encoder) -> None:
    if len(enc.lines) >= enc.commit_rows or (
        len(enc.lines) % _CLOCK_EVERY == 0 and time.monotonic() - enc.started >= COMMIT_EVERY_S
    ):
        _flush(enc)


def _flush(enc: _Encoder) -> None:
    """Zapisuje zebrane linie do pliku i oddaje partię (nic, gdy pusta)."""
    if not enc.lines:
        return
    if enc.last_int:  # szybka ścieżka COPY zapamiętuje tylko bajty ostatniego klucza
        key = int(enc.last_int)
        last = (key, f"[{key}]", key)
        enc.ord = key
    else:
        assert enc.last is not None
        last = enc.last
    enc.count += 1
    path = os.path.join(enc.directory, f"part{enc.count}.tsv")
    with open(path, "wb") as handle:
        handle.write(b"".join(enc.lines))
    chunk = Chunk(path, len(enc.lines), last[0], last[1], last[2], enc.ord)
    enc.lines = []
    enc.put(chunk)
    enc.started = time.monotonic()


def stream_chunks(
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    after_key: Any,
    mode: str,
    anchor: int | None,
    hash_of: Callable[[bytes], Any],
    page_size: int,
    commit_rows: int,
    gap: int,
    max_key: int,
    directory_name: str,
) -> Iterator[Chunk]:
    """Partie nowych pozycji całej tabeli za ``after_key``, czytane i kodowane w osobnym wątku.

    Plik partii jest usuwany, gdy wołający poprosi o następną (albo zamknie iterator), więc ma
    zakończyć z nią pracę (``LOAD DATA`` i commit) przed kolejnym krokiem pętli.

    Args:
        rconn: Połączenie ze źródłem (używa go tylko wątek czytający).
        target: Wynik ``resolve_target``.
        after_key: Ostatni zatwierdzony klucz (wznowienie) albo ``None``.
        mode: ``key`` albo ``assigned`` (jak ``lib.sync``).
        anchor: ``source_ord`` ostatniego zatwierdzonego wiersza albo ``None``.
        hash_of: Konstruktor hashlib metody zadania.
        page_size: Rozmiar strony keyset (źródła bez COPY).
        commit_rows: Najwięcej wierszy w partii.
        gap: Odstęp pozycji w trybie ``assigned``.
        max_key: Najdłuższy ``remote_key``.
        directory_name: Katalog plików partii w katalogu tymczasowym, stały dla zadania: pliki
            runu zabitego SIGKILL (bez sprzątania) usuwa następny run tego zadania.

    Yields:
        ``Chunk`` w porządku źródła.

    Raises:
        RemoteError, TaskError: Błąd odczytu albo klucza (z wątku czytającego).
    """
    directory = os.path.join(tempfile.gettempdir(), directory_name)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)

    def produce(put: Callable[[Any], None]) -> None:
        encoder = _new_encoder(target, mode, anchor, hash_of, commit_rows, directory, put, gap, max_key)
        if db_remote.can_copy(rconn, target):
            db_remote.copy_rows(rconn, target, after_key, partial(_copy_line, encoder))
        else:
            for page in db_remote.iter_pages(rconn, target, after_key, page_size):
                for key, text in page:
                    _page_row(encoder, key, text)
        _flush(encoder)

    # Najpierw zatrzymanie wątku (zamknięcie strumienia), potem usunięcie katalogu jego plików.
    try:
        with contextlib.closing(background_stream(produce, _QUEUE_CHUNKS, "source-loader", 10)) as chunks:
            for chunk in chunks:
                yield chunk
                os.unlink(chunk.path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
