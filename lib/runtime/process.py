"""Koniec procesu skryptu CLI (``sync.py``, ``ai.py``, ``review.py``) bez końcowego przebiegu GC.

Przy wyjściu interpreter robi pełny przebieg odśmiecacza po wszystkich obiektach procesu. Po
imporcie Dagstera (definicje, instancja, SQLAlchemy) to setki tysięcy obiektów: ~0,75 s na
koniec każdego ``sync.py`` (py-spy: ``gc_collect_main`` bez ramek Pythona po ``main()``), czyli
~15 % resyncu bez zmian przy 1 000 000 wierszy. ``gc.freeze()`` przenosi je do pokolenia
pomijanego przez odśmiecacz; reszta wyjścia jest zwykła: handlery ``atexit`` (``logging`` zamyka
i opróżnia pliki logów), opróżnienie ``stdout``/``stderr``, kod wyjścia. Nieuprzątnięte cykle
obiektów i tak znikają razem z procesem (gniazda i pliki zamyka system).
"""

import gc
import sys
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Kończy proces kodem ``code`` jak ``sys.exit``, bez przebiegu GC po wszystkich obiektach."""
    gc.freeze()
    sys.exit(code)
