"""Nadzorca polecenia ``dagster dev`` z ``scripts/run.sh``: Ctrl-C zatrzymuje wszystko, co uruchomił.

Użycie: ``python scripts/supervise.py <polecenie> [argumenty...]``.

Dlaczego: proces uruchomiony w tle z nieinteraktywnej powłoki (``setsid bash scripts/run.sh &``,
skrypty, część menedżerów procesów) dziedziczy *ignorowany* SIGINT. Powłoka nie umie tego cofnąć
(``trap`` nie działa na sygnały ignorowane przy starcie), a Dagster kopiuje obsługę SIGINT na
SIGTERM - więc ``dagster dev``, webserver, daemon i serwery kodu ignorowały wtedy i Ctrl-C,
i SIGTERM. Python może podpiąć własną obsługę mimo to; polecenie dostaje po ``exec`` domyślne
reakcje na sygnały.

Polecenie działa we własnej grupie procesów. Pierwszy SIGINT/SIGTERM/SIGHUP do nadzorcy (albo do
całej jego grupy, jak Ctrl-C w terminalu) jest przekazywany raz jako SIGINT do całej grupy
polecenia (łagodne zamknięcie Dagstera, runy kończą bieżącą partię); po ``GRACE_S`` sekundach (7)
grupa dostaje SIGKILL. Drugi sygnał zabija grupę od razu. Po wyjściu polecenia zostałe w jego
grupie procesy (np. osierocone serwery kodu) też są zamykane.
"""

import os
import signal
import subprocess
import sys
import time

# Łagodne zamknięcie musi się zmieścić w 10 s od Ctrl-C; po tym czasie SIGKILL dla grupy.
GRACE_S = float(os.environ.get("AILEXIA_STOP_GRACE_S", "7"))
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _signal_group(pgid: int, signum: int) -> bool:
    """Wysyła sygnał do grupy procesów; ``False``, gdy grupa już nie istnieje."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False


def _group_alive(pgid: int) -> bool:
    """Czy w grupie jest jeszcze jakiś proces (sygnał 0 tylko sprawdza)."""
    return _signal_group(pgid, 0)


def _wait_group(pgid: int, child: subprocess.Popen, deadline: float) -> bool:
    """Czeka do ``deadline`` na koniec wszystkich procesów grupy; ``True``, gdy się udało."""
    while time.monotonic() < deadline:
        child.poll()  # zbiera zombie polecenia, inaczej grupa "żyje"
        if not _group_alive(pgid):
            return True
        time.sleep(0.1)
    child.poll()
    return not _group_alive(pgid)


def main(argv: list[str]) -> int:
    """Uruchamia polecenie, przekazuje sygnały zatrzymania, eskaluje do SIGKILL; zwraca kod wyjścia."""
    if not argv:
        print("użycie: supervise.py <polecenie> [argumenty...]", file=sys.stderr)
        return 2
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    # Własna grupa: terminal nie wysyła Ctrl-C drugi raz bezpośrednio do Dagstera (drugi SIGINT
    # przerwałby jego sprzątanie w połowie), przekazujemy go my - raz.
    child = subprocess.Popen(argv, process_group=0)
    pgid = child.pid
    handled = 0
    deadline: float | None = None
    try:
        while True:
            if len(received) > handled:
                handled = len(received)
                if handled == 1:
                    print(
                        f"supervise: sygnał {signal.Signals(received[0]).name} - zamykam Dagstera "
                        f"(najwyżej {GRACE_S:g} s; ponowny Ctrl-C zamyka od razu)",
                        file=sys.stderr,
                        flush=True,
                    )
                    _signal_group(pgid, signal.SIGINT)
                    deadline = time.monotonic() + GRACE_S
                else:
                    print("supervise: drugi sygnał - zamykam od razu", file=sys.stderr, flush=True)
                    _signal_group(pgid, signal.SIGKILL)
                    deadline = time.monotonic()
            if child.poll() is not None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                if _signal_group(pgid, signal.SIGKILL):
                    print(
                        "supervise: Dagster nie zamknął się w czasie - SIGKILL", file=sys.stderr, flush=True
                    )
                child.wait()
                break
            time.sleep(0.1)
    finally:
        # Polecenie wyszło (albo nadzorca kończy się błędem): nic z jego grupy nie zostaje.
        if _group_alive(pgid):
            # Po eskalacji (drugi sygnał, koniec okna) nie czekamy wcale; polecenie zakończone samo
            # zostawia resztkom grupy czas do końca okna łaski (najmniej 1 s).
            escalated = deadline is not None and time.monotonic() >= deadline
            if escalated or not _wait_group(pgid, child, max(deadline or 0.0, time.monotonic() + 1.0)):
                _signal_group(pgid, signal.SIGKILL)
        if child.poll() is None:
            child.kill()
            child.wait()
    if received:
        return 128 + received[0]
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
