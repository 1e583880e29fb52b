"""Proces runu: koniec skryptu CLI bez końcowego przebiegu GC i tożsamość procesu (``process_token``).

Na końcu skryptu CLI (``sync.py``, ``ai.py``, ``review.py``) interpreter robi pełny przebieg
odśmiecacza po wszystkich obiektach procesu, a po imporcie Dagstera to setki tysięcy obiektów.
``gc.freeze()`` przenosi je do pokolenia pomijanego przez odśmiecacz; reszta wyjścia jest zwykła
(handlery ``atexit``, opróżnienie ``stdout``/``stderr``, kod wyjścia). Nieuprzątnięte cykle
obiektów i tak znikają razem z procesem.
"""

import gc
import os
import socket
import sys
from typing import NoReturn

import psutil


def exit_process(code: int) -> NoReturn:
    """Kończy proces kodem ``code`` jak ``sys.exit``, bez przebiegu GC po wszystkich obiektach."""
    gc.freeze()
    sys.exit(code)


# --- tożsamość procesu runu (runy skryptów w instancji Dagstera) ------------------------


def _process_started(pid: int) -> str | None:
    """Chwila startu procesu (psutil) jako tekst albo ``None``, gdy procesu nie ma."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:
        return ""  # istnieje, ale nie da się go odczytać


def process_token(pid: int | None = None) -> str:
    """Tożsamość procesu ``host:pid:start`` do tagu runu; start odróżnia proces od późniejszego z tym pid."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_started(pid) or ''}"


def process_alive(token: str) -> bool | None:
    """Czy proces z ``process_token`` jeszcze żyje.

    Returns:
        ``True``/``False`` na tej samej maszynie; ``None``, gdy token jest z innej maszyny albo
        nieczytelny (tego nie da się sprawdzić stąd).
    """
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid_text, start = parts
    if host != socket.gethostname():
        return None
    current = _process_started(int(pid_text))
    if current is None:
        return False
    # Ten sam pid, inna chwila startu = inny (późniejszy) proces: nasz nie żyje.
    return not (start and current and current != start)
