"""Strumień produkowany w osobnym wątku: odczyt źródła nakłada się na zapis lokalny.

Jedna implementacja dla stron skanu (``lib.sync.engine``) i partii pierwszej synchronizacji
(``lib.sync.initial_load``): ograniczona kolejka (pamięć nie rośnie z rozmiarem tabeli), błąd wątku
przekazany do wątku głównego, a zamknięcie iteratora zatrzymuje producenta.
"""

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any


class _Stopped(Exception):
    """Wątek główny przestał odbierać (pauza, błąd): producent ma skończyć."""


def background_stream(
    produce: Callable[[Callable[[Any], None]], None], depth: int, name: str, join_s: float
) -> Iterator[Any]:
    """Uruchamia ``produce(put)`` w wątku i oddaje kolejno to, co przekazał do ``put``.

    Args:
        produce: Funkcja producenta; ``put`` blokuje, gdy kolejka jest pełna, i przerywa
            producenta, gdy wołający zamknął iterator.
        depth: Najwięcej elementów czekających w kolejce.
        name: Nazwa wątku.
        join_s: Ile czekać na wątek po zamknięciu iteratora.

    Yields:
        Elementy w kolejności ``put``.

    Raises:
        BaseException: Błąd producenta, w wątku głównym.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run() -> None:
        try:
            produce(put)
            put(end)
        except _Stopped:
            return
        except BaseException as exc:  # błąd producenta przekazujemy do wątku głównego
            try:
                put(exc)
            except _Stopped:
                return

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=join_s)
