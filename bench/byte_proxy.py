"""Proxy TCP liczący bajty: stoi przed serwerem bazy i mierzy, ile bajtów klient z niego przeczytał.

Benchmark synchronizacji kieruje przez niego połączenia do źródła (PostgreSQL), żeby pokazać,
ile danych dany przebieg naprawdę pobrał ze źródła (np. resync bez zmian: skróty zamiast tekstów).
Dane przechodzą przez jądro (``os.splice`` gniazdo -> potok -> gniazdo), bez kopiowania do Pythona,
więc proxy prawie nie zabiera procesora mierzonemu procesowi. Każde połączenie obsługują dwa wątki
(po jednym na kierunek); liczniki są osobne dla każdego wątku i sumowane przy odczycie.
"""

import fcntl
import os
import socket
import threading
from typing import Any

_CHUNK = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _pump(src: socket.socket, dst: socket.socket, counter: list[int]) -> None:
    """Przepycha bajty z ``src`` do ``dst`` aż do końca strumienia; dodaje ich liczbę do ``counter[0]``."""
    pipe_r, pipe_w = os.pipe()
    try:
        try:
            fcntl.fcntl(pipe_w, _F_SETPIPE_SZ, _CHUNK)
        except OSError:
            pass  # większy potok to tylko mniej wywołań systemowych
        src_fd, dst_fd = src.fileno(), dst.fileno()
        while True:
            moved = os.splice(src_fd, pipe_w, _CHUNK)
            if moved == 0:
                break
            counter[0] += moved
            left = moved
            while left:
                left -= os.splice(pipe_r, dst_fd, left)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        # Druga strona zamknęła połączenie: zamykamy obie, żeby drugi wątek też się skończył.
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        os.close(pipe_r)
        os.close(pipe_w)


def _serve(state: dict[str, Any]) -> None:
    """Pętla ``accept``: każde połączenie klienta łączy z serwerem docelowym i uruchamia dwie pompy."""
    listener = state["listener"]
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # gniazdo nasłuchujące zamknięte przez stop_proxy
        try:
            upstream = socket.create_connection(state["target"])
        except OSError:
            client.close()
            continue
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down, up = [0], [0]
        with state["lock"]:
            state["down"].append(down)
            state["up"].append(up)
            state["sockets"].extend((client, upstream))
        threading.Thread(target=_relay, args=(client, upstream, down, up), daemon=True).start()


def _relay(client: socket.socket, upstream: socket.socket, down: list[int], up: list[int]) -> None:
    """Obsługuje jedno połączenie w obu kierunkach i zamyka gniazda, gdy oba kierunki się skończą."""
    other = threading.Thread(target=_pump, args=(client, upstream, up), daemon=True)
    other.start()
    _pump(upstream, client, down)
    other.join()
    client.close()
    upstream.close()


def start_proxy(target_host: str, target_port: int) -> dict[str, Any]:
    """Uruchamia proxy na wolnym porcie 127.0.0.1 przed ``target_host:target_port``.

    Args:
        target_host: Adres serwera docelowego (np. ``127.0.0.1``).
        target_port: Port serwera docelowego (np. 5432).

    Returns:
        Stan proxy: ``port`` to port, na który łączą się klienci; przekazywany do ``bytes_read``
        i ``stop_proxy``.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    state: dict[str, Any] = {
        "listener": listener,
        "port": listener.getsockname()[1],
        "target": (target_host, target_port),
        "lock": threading.Lock(),
        "down": [],
        "up": [],
        "sockets": [],
    }
    threading.Thread(target=_serve, args=(state,), daemon=True).start()
    return state


def bytes_read(state: dict[str, Any]) -> tuple[int, int]:
    """Zwraca ``(bajty serwer -> klient, bajty klient -> serwer)`` od startu proxy."""
    with state["lock"]:
        return sum(c[0] for c in state["down"]), sum(c[0] for c in state["up"])


def stop_proxy(state: dict[str, Any]) -> None:
    """Zamyka gniazdo nasłuchujące i przerywa przekazywane połączenia (wątki same zamkną gniazda)."""
    state["listener"].close()
    with state["lock"]:
        for sock in state["sockets"]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
