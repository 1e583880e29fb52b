"""Postęp długich etapów (skan, AI, eksport): liczby, tempo, ETA i linie dla ludzi - jedno miejsce.

Silniki wołają swój parametr ``progress(stats)`` po każdej partii ze statystykami do tej chwili.
``tracking`` zamienia te statystyki na liczby (``figures``) i linię tekstu (``format_line``)
i przekazuje je dalej najwyżej i co najmniej co ``PROGRESS_EVERY_S`` sekund - także wtedy, gdy
silnik długo nie woła (wolna strona źródła, długie zapytanie do modelu): wątek zegara powtarza
ostatni stan z aktualnym czasem. Pasek skryptu na terminalu dostaje każdy stan.

Moduł nie zna Dagstera: warstwa Dagstera podaje funkcję ``emit`` (log runu), skrypt włącza
pasek (``terminal``).
"""

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

# Domyślny odstęp linii postępu (ustawienie PROGRESS_EVERY_S); wymaganie: co najwyżej 10 s.
DEFAULT_EVERY_S = 5.0

# Rodzaj etapu -> (nazwa dla ludzi, jednostka, jednostka tempa).
KINDS: dict[str, tuple[str, str, str]] = {
    "sync": ("sync", "wierszy", "wierszy/s"),
    "ai": ("AI", "pozycji", "pozycji/s"),
    "export": ("eksport", "pozycji", "pozycji/s"),
    "verify": ("weryfikacja", "pozycji", "pozycji/s"),
    "dump": ("zrzut", "pozycji", "pozycji/s"),
}

Progress = Callable[[dict[str, Any]], None]
Emit = Callable[[str, dict[str, float]], None]


def _int(stats: dict[str, Any], *keys: str) -> int:
    """Suma liczb spod kluczy (brak albo ``None`` = 0)."""
    return sum(int(stats.get(key) or 0) for key in keys)


def figures(kind: str, stats: dict[str, Any], elapsed_s: float) -> dict[str, float]:
    """Liczby postępu ze statystyk silnika: zrobione, wszystkie, procent, tempo, ETA, tokeny, koszt.

    Args:
        kind: ``sync``, ``ai`` albo ``export``.
        stats: Ostatnie statystyki przekazane przez silnik do ``progress``.
        elapsed_s: Czas od startu etapu w tym runie.

    Returns:
        Słownik liczb: ``done``, ``total`` (0 = nieznane), ``percent``, ``rate`` (na sekundę,
        liczone z pracy tego runu), ``eta_s`` (-1 = nieznane), ``elapsed_s``; dla AI także
        ``tokens`` i ``cost_usd``. Bez ``None``: liczby trafiają do metadanych i wykresów.
    """
    if kind == "sync":
        # scanned liczy też wiersze poprzednich runów tej operacji (wznowienie), fetched - tylko ten run.
        done, total, this_run = _int(stats, "scanned"), _int(stats, "records_total"), _int(stats, "fetched")
    elif kind == "ai":
        done = this_run = _int(stats, "processed", "failed", "skipped")
        total = _int(stats, "items_total")
    elif kind == "export":
        done = this_run = _int(stats, "exported", "already_exported", "conflicts", "skipped")
        total = _int(stats, "items_total")
    else:
        done = this_run = _int(stats, "done")
        total = _int(stats, "items_total")
    elapsed_s = max(float(elapsed_s), 1e-6)
    rate = this_run / elapsed_s
    result = {
        "done": float(done),
        "total": float(total),
        "percent": round(100.0 * min(done, total) / total, 1) if total else 0.0,
        "rate": round(rate, 2),
        "eta_s": round(max(total - done, 0) / rate, 1) if total and rate > 0 else -1.0,
        "elapsed_s": round(elapsed_s, 1),
    }
    if kind == "ai":
        result["tokens"] = float(_int(stats, "tokens_input", "tokens_output"))
        result["cost_usd"] = round(float(stats.get("cost_usd") or 0), 6)
    return result


def format_number(value: float, digits: int = 0) -> str:
    """Liczba po polsku: spacja tysięcy, przecinek dziesiętny (``1 234 567``, ``12,5``)."""
    text = f"{value:,.{digits}f}".replace(",", " ").replace(".", ",")
    return text


def format_duration(seconds: float) -> str:
    """Czas dla ludzi: ``45 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_line(kind: str, id_task: int, figs: dict[str, float] | None, elapsed_s: float = 0.0) -> str:
    """Linia postępu dla człowieka (log runu, cron); nigdy ``None`` ani repr Pythona.

    Przykład: ``sync zadania 2: 450 000 / 1 000 000 wierszy (45,0%), 17 520 wierszy/s,
    pozostało ~31 s, minęło 26 s``. Bez liczb (etap jeszcze nie zgłosił partii albo ich nie ma,
    jak weryfikacja): ``weryfikacja zadania 2: w toku, minęło 12 s``.
    """
    name, unit, rate_unit = KINDS[kind]
    if figs is None:
        return f"{name} zadania {id_task}: w toku, minęło {format_duration(elapsed_s)}"
    done, total = figs["done"], figs["total"]
    parts = [
        f"{format_number(done)} / {format_number(total)} {unit} ({format_number(figs['percent'], 1)}%)"
        if total
        else f"{format_number(done)} {unit}"
    ]
    rate = figs["rate"]
    parts.append(f"{format_number(rate, 0 if rate >= 100 else 1)} {rate_unit}")
    if "tokens" in figs:
        parts.append(f"tokeny {format_number(figs['tokens'])}")
        parts.append(f"koszt {format_number(figs['cost_usd'], 4)} USD")
    if figs["eta_s"] >= 0 and done < total:
        parts.append(f"pozostało ~{format_duration(figs['eta_s'])}")
    parts.append(f"minęło {format_duration(figs['elapsed_s'])}")
    return f"{name} zadania {id_task}: " + ", ".join(parts)


# --- ekran skryptu -----------------------------------------------------------------------


@dataclass
class Display:
    """Pasek postępu skryptu na terminalu (tqdm); jeden pasek na etap zadania."""

    stream: TextIO
    bar: Any = None
    bar_key: tuple[str, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    redirect: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


# Ekran jest jeden na proces: skrypt (sync.py/ai.py) uruchamia assety w swoim procesie
# (dagster.materialize), więc asset nie dostaje od skryptu żadnego obiektu - tylko ten punkt.
_display: Display | None = None


def bar_active() -> bool:
    """Czy skrypt pokazuje pasek postępu (wtedy log konsoli Dagstera jest ściszany do WARNING)."""
    return _display is not None


@contextlib.contextmanager
def terminal(stream: TextIO | None = None) -> Iterator[bool]:
    """Pasek postępu dla skryptu, gdy ``stream`` (domyślnie stderr) jest terminalem.

    Na terminalu: pasek tqdm dla każdego etapu, a logi konsoli ``ailexia`` idą w tym czasie
    przez ``tqdm.write`` (``tqdm.contrib.logging.logging_redirect_tqdm``; nie rozrywają paska).
    Poza terminalem (cron, plik) nic się nie zmienia: linie postępu
    przychodzą co ``PROGRESS_EVERY_S`` z logu runu (konsola Dagstera) jak każdy inny log.

    Yields:
        ``True``, gdy pasek jest włączony.
    """
    global _display
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        yield False
        return
    _display = Display(stream=stream)
    try:
        yield True
    finally:
        display, _display = _display, None
        if display is not None:
            _close_bar(display)


def _close_bar(display: Display) -> None:
    if display.bar is not None:
        display.bar.close()
        display.bar, display.bar_key = None, None
        display.redirect.close()


def _show(kind: str, id_task: int, figs: dict[str, float], final: bool) -> None:
    """Pokazuje stan na pasku skryptu (jeśli włączony)."""
    display = _display
    if display is None:
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with display.lock:
        name, unit, _rate_unit = KINDS[kind]
        if display.bar_key != (kind, id_task):
            _close_bar(display)
            display.bar = tqdm(
                total=int(figs["total"]) or None,
                initial=int(figs["done"]),  # wznowienie: tempo liczone od pracy tego runu
                desc=f"{name} zadania {id_task}",
                unit=f" {unit}",
                file=display.stream,
                dynamic_ncols=True,
                mininterval=0.5,
            )
            display.bar_key = (kind, id_task)
            # Logi konsoli ailexia w czasie paska nie rozrywają go: idą linią nad paskiem
            # (tqdm.write); pliki logów bez zmian. Handlery wracają przy zamknięciu paska.
            display.redirect.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger("ailexia")]))
        bar = display.bar
        if figs["total"] and bar.total != int(figs["total"]):
            bar.total = int(figs["total"])
        bar.n = int(figs["done"])
        if "tokens" in figs:
            bar.set_postfix_str(
                f"tokeny {format_number(figs['tokens'])}, koszt {format_number(figs['cost_usd'], 4)} USD",
                refresh=False,
            )
        bar.refresh()
        if final:
            _close_bar(display)


# --- śledzenie etapu --------------------------------------------------------------------


@contextlib.contextmanager
def tracking(
    kind: str, id_task: int, emit: Emit | None = None, every_s: float = DEFAULT_EVERY_S
) -> Iterator[Progress]:
    """Śledzi postęp etapu: daje funkcję ``progress`` dla silnika i co ``every_s`` woła ``emit``.

    ``emit(linia, liczby)`` dostaje stan najwyżej i co najmniej co ``every_s`` sekund (wątek
    zegara powtarza ostatni stan, gdy silnik milczy) oraz raz na końcu. Ekran skryptu
    (``terminal``) dostaje każdy stan.

    Args:
        kind: ``sync``, ``ai`` albo ``export``.
        id_task: Zadanie (do linii).
        emit: Odbiorca linii (np. log runu Dagstera); ``None`` = tylko ekran skryptu.
        every_s: Odstęp linii w sekundach (``PROGRESS_EVERY_S``).

    Yields:
        Funkcja ``progress(stats)`` do przekazania silnikowi.
    """
    started = time.monotonic()
    state: dict[str, Any] = {"stats": None}
    lock = threading.Lock()
    stop = threading.Event()

    def current() -> dict[str, float] | None:
        with lock:
            stats = state["stats"]
        return None if stats is None else figures(kind, stats, time.monotonic() - started)

    def send(final: bool = False) -> None:
        figs = current()
        if final and figs is None:
            return  # etap bez partii (krótki): linia końcowa nic by nie powiedziała
        if emit is not None:
            try:
                emit(format_line(kind, id_task, figs, time.monotonic() - started), figs or {})
            except Exception:  # log postępu nie może przerwać pracy
                pass
        if figs is not None and final:
            _show(kind, id_task, figs, True)

    def progress(stats: dict[str, Any]) -> None:
        with lock:
            state["stats"] = dict(stats)
        figs = current()
        if figs is not None:
            _show(kind, id_task, figs, False)

    def clock() -> None:
        while not stop.wait(every_s):
            send()

    thread = threading.Thread(target=clock, name=f"progress-{kind}-{id_task}", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join(timeout=every_s + 1)
        send(final=True)
