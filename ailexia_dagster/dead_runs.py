"""Runy skryptów (``sync.py``/``ai.py``) zabite bez sprzątania: zamykane w instancji, żeby UI nie kłamał.

Run ze skryptu wykonuje się w procesie skryptu (``dagster.materialize``); SIGKILL albo utrata
maszyny zostawia go w instancji jako STARTED na zawsze - run monitoring Dagstera obejmuje tylko
runy uruchomione przez run launcher. Runy skryptów mają tag ``ailexia/process``
(``host:pid:start``); następny run skryptu i każdy tick ``task_sensor`` oznaczają jako nieudane
runy STARTED, których proces na tej maszynie już nie żyje.
"""

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ailexia_dagster.constants import TAG_PROCESS
from lib.runtime.process import process_alive


def close_dead_script_runs(instance: DagsterInstance) -> list[str]:
    """Oznacza jako nieudane runy skryptów w statusie STARTED, których proces nie żyje.

    Args:
        instance: Instancja Dagstera.

    Returns:
        Identyfikatory zamkniętych runów.
    """
    closed = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        token = run.tags.get(TAG_PROCESS)
        if not token or process_alive(token) is not False:
            continue
        host, pid, _start = token.rsplit(":", 2)
        instance.report_run_failed(
            run,
            f"ailexia: proces runu skryptu (pid {pid} na {host}) nie żyje - run zamknięty jako nieudany; "
            "stan zadania jest w tabeli task, następny run go wznowi",
        )
        closed.append(run.run_id)
    return closed
