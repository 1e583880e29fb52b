"""Ctrl-C na poleceniu z README (``bash scripts/run.sh``) zamyka wszystko, co ono uruchomiło.

Test odtwarza warunki zgłoszenia: polecenie w nowej sesji (``setsid``) z SIGINT ignorowanym przy
starcie (tak dziedziczy proces uruchomiony w tle z nieinteraktywnej powłoki) i SIGINT do grupy
procesów polecenia - to wysyła terminal po Ctrl-C. Liczą się wszystkie procesy sesji
(dagster dev, webserver, daemon, serwery kodu), nie tylko grupa.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_processes(sid: int) -> list[str]:
    """Żywe (nie zombie) procesy sesji ``sid``: ``pid stan polecenie``."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat=,args="], capture_output=True, text=True).stdout
    alive = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and int(parts[1]) == sid and not parts[2].startswith("Z"):
            alive.append(f"{parts[0]} {parts[3][:120]}")
    return alive


def start_run_command(local_env: dict, port: int, log_path) -> subprocess.Popen:
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    env = {**os.environ, **local_env, "DAGSTER_PORT": str(port)}
    return subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        preexec_fn=ignore_sigint,
        stdout=open(log_path, "w"),  # noqa: SIM115 - zamykany przez proces potomny
        stderr=subprocess.STDOUT,
    )


def wait_ui_and_services(process: subprocess.Popen, port: int, log_path) -> None:
    """Czeka na UI i na daemon + serwer kodu (wszystkie procesy, które ma zamknąć Ctrl-C)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        procs = " ".join(session_processes(process.pid))
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            if "dagster._daemon" in procs and "code-server" in procs:
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"UI nie wstało:\n{log_path.read_text()[-3000:]}")


def wait_gone(sid: int, timeout_s: float) -> tuple[float, list[str]]:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        alive = session_processes(sid)
        if not alive:
            return time.monotonic() - started, []
        time.sleep(0.2)
    return time.monotonic() - started, session_processes(sid)


@pytest.fixture
def run_command(local_env, settings, tmp_path):
    port = free_port()
    log_path = tmp_path / "run.log"
    process = start_run_command(local_env, port, log_path)
    try:
        wait_ui_and_services(process, port, log_path)
        yield process, log_path
    finally:
        for line in session_processes(process.pid):
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)


def test_ctrl_c_stops_every_process_within_10_s(run_command):
    process, log_path = run_command
    before = session_processes(process.pid)
    assert len(before) >= 4, before  # nadzorca, dagster dev, webserver, daemon, serwer(y) kodu
    os.killpg(process.pid, signal.SIGINT)
    elapsed, alive = wait_gone(process.pid, 15)
    assert not alive, f"po {elapsed:.1f} s żyją:\n" + "\n".join(alive) + "\n" + log_path.read_text()[-2000:]
    assert elapsed <= 10, elapsed
    assert process.wait(timeout=5) == 128 + signal.SIGINT


def test_second_ctrl_c_stops_at_once(run_command):
    process, log_path = run_command
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)
    elapsed, alive = wait_gone(process.pid, 15)
    assert not alive, "\n".join(alive)
    assert elapsed <= 2, elapsed
    assert "drugi sygnał" in log_path.read_text()
