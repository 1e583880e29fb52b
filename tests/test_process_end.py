"""Koniec procesu skryptów (``lib/runtime/process.py``): kod wyjścia, opróżnione wyjście i logi, bez końcowego GC."""

import os
import subprocess
import sys
import textwrap

from lib.load_config import PROJECT_ROOT


def test_exit_process_keeps_the_exit_code_and_flushes_output_and_logs(tmp_path):
    log_file = tmp_path / "run.log"
    code = textwrap.dedent(
        f"""
        import gc, logging, sys
        from lib.runtime.process import exit_process

        handler = logging.FileHandler({str(log_file)!r}, encoding="utf-8")
        logging.getLogger("t").addHandler(handler)
        logging.getLogger("t").warning("ostatnia linia logu żółć")
        sys.stdout.write("bez nowej linii")
        garbage = [[] for _ in range(1000)]
        for item in garbage:
            item.append(item)  # cykle, których nie sprząta nikt przed wyjściem
        del garbage
        # Flaga dla rodzica: po zamrożeniu końcowy GC nie ma czego przechodzić.
        import atexit
        atexit.register(lambda: sys.stderr.write(f"frozen={{gc.get_freeze_count() > 0}}"))
        exit_process(7)
        """
    )
    # Bez PYTHONUNBUFFERED: stdout procesu jest buforowany, więc wyjście bez opróżnienia by go zgubiło.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout == "bez nowej linii"
    assert "frozen=True" in result.stderr
    assert log_file.read_text(encoding="utf-8") == "ostatnia linia logu żółć\n"
