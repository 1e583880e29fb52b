"""Punkty awarii (failpointy) do testów niezawodności - w produkcji nic nie robią.

Kod silników woła ``checkpoint("nazwa")`` w miejscach, w których nagła śmierć procesu jest
najgroźniejsza (np. po commicie w źródle, a przed zapisem lokalnym). Testy ustawiają zmienną
środowiska ``AILEXIA_FAULT`` i sprawdzają, że ponowny run kończy się tym samym stanem co run
nieprzerwany.

Format ``AILEXIA_FAULT``:

* ``nazwa`` - proces zabija się sygnałem SIGKILL przy pierwszym przejściu przez punkt;
* ``nazwa:N`` - dopiero przy N-tym przejściu (liczone w obrębie procesu, N >= 1).

Testy, które muszą złapać run w trakcie pracy (pauza na limicie czasu, SIGKILL w połowie), mogą
go spowolnić: ``AILEXIA_DELAY=nazwa:sekundy`` usypia proces przy każdym przejściu przez punkt.

Bez zmiennych (produkcja) ``checkpoint`` tylko odczytuje ``os.environ`` i wraca - nie ma
żadnego innego kosztu ani efektu. SIGKILL zamiast wyjątku, bo to jedyne przerwanie, którego
kod nie może obsłużyć (bez ``finally``, bez rollbacku po stronie klienta) - tak jak ``kill -9``
albo OOM killer.
"""

import os
import signal
import threading
import time
from collections import Counter

ENV_VAR = "AILEXIA_FAULT"
DELAY_VAR = "AILEXIA_DELAY"

_passes: Counter = Counter()
_lock = threading.Lock()


def checkpoint(name: str) -> None:
    """Zabija bieżący proces (SIGKILL), gdy ``AILEXIA_FAULT`` wskazuje ten punkt i to przejście.

    Args:
        name: Nazwa punktu, np. ``sync.fetch`` albo ``export.source_committed``.
    """
    delay = os.environ.get(DELAY_VAR)
    if delay:
        point, _sep, seconds = delay.partition(":")
        if point == name:
            time.sleep(float(seconds or 0))
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    target, _sep, nth = spec.partition(":")
    if target != name:
        return
    wanted = int(nth) if nth else 1
    with _lock:
        _passes[name] += 1
        hit = _passes[name] == wanted
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
