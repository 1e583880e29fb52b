"""Wstawianie runów do kolejki Dagstera ze skryptów (``sync.py --queue``, ``ai.py --queue``).

Run idzie przez API GraphQL webservera (``DagsterGraphQLClient.submit_job_execution``, to samo co
przycisk "Materialize" w UI): webserver zna lokację kodu z workspace (``workspace.yaml`` albo
serwer kodu z ``deploy/workspace.yaml``) i oddaje run koordynatorowi instancji. Przy
QueuedRunCoordinator run czeka w kolejce, a demon uruchamia go z limitami z ``dagster.yaml``
(``ailexia/connection``) - tak samo jak runy sensora. Adres webservera: ``DAGSTER_WEBSERVER_URL``.
"""

import time
from typing import Any
from urllib.parse import urlsplit

from dagster import DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from ailexia_dagster.constants import PARTITION_NAME, TAG_CONNECTION
from ailexia_dagster.sensors import live_runs_by_task
from lib.errors import AilexiaError

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


class QueueError(AilexiaError):
    """Nie udało się wstawić runu do kolejki (webserver nie odpowiada, lokacja bez joba...)."""


class LiveRunError(QueueError):
    """Zadanie ma już żywy run (w kolejce albo w toku) - drugi nie jest wstawiany."""


def make_client(url: str, timeout_s: int = 30) -> DagsterGraphQLClient:
    """Klient GraphQL webservera z adresu ``http(s)://host[:port][/prefiks]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise QueueError(f"DAGSTER_WEBSERVER_URL: oczekiwano adresu http(s)://host:port, jest {url!r}")
    return DagsterGraphQLClient(
        parts.hostname,
        port_number=parts.port,
        use_https=parts.scheme == "https",
        timeout=timeout_s,
        path_prefix=parts.path.rstrip("/"),
    )


def submit_task_run(
    instance: DagsterInstance, url: str, job_name: str, id_task: int, tags: dict[str, str]
) -> str:
    """Wstawia run joba dla partycji zadania do kolejki Dagstera i zwraca jego ``run_id``.

    Partycja zadania jest dodawana do instancji (jak w runach ze skryptu), a zadanie z żywym runem
    (w kolejce albo w toku) nie dostaje drugiego.

    Args:
        instance: Instancja z ``DAGSTER_HOME`` (ta sama, którą widzi webserver).
        url: Adres webservera (``DAGSTER_WEBSERVER_URL``).
        job_name: ``sync_job``, ``ai_job`` albo ``export_job``.
        id_task: Zadanie (klucz partycji).
        tags: Tagi runu (``ailexia/connection`` - limit kolejki per połączenie).

    Returns:
        Identyfikator runu.

    Raises:
        LiveRunError: Zadanie ma już żywy run.
        QueueError: Webserver nie odpowiada albo odrzucił run.
    """
    key = str(id_task)
    live = live_runs_by_task(instance, [id_task]).get(id_task, [])
    if live:
        described = ", ".join(f"{run.run_id} ({run.status.value})" for run in live)
        raise LiveRunError(f"zadanie {id_task} ma już żywy run: {described} - nie wstawiam drugiego")
    instance.add_dynamic_partitions(PARTITION_NAME, [key])
    try:
        return make_client(url).submit_job_execution(job_name, tags={**tags, "dagster/partition": key})
    except DagsterGraphQLClientError as exc:
        detail = " ".join(str(part) for part in exc.args if part) or type(exc).__name__
        raise QueueError(
            f"nie udało się wstawić runu {job_name} przez webserver {url}: {detail.splitlines()[0][:300]} "
            "(czy dagster-webserver działa? adres ustawia DAGSTER_WEBSERVER_URL)"
        ) from None


def wait_for_run(
    url: str, run_id: str, poll_s: float = 1.0, timeout_s: float | None = None
) -> DagsterRunStatus:
    """Czeka, aż run zakończy się (SUCCESS, FAILURE, CANCELED), i zwraca jego status.

    Raises:
        QueueError: Webserver przestał odpowiadać albo minął ``timeout_s``.
    """
    client = make_client(url)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            status = client.get_run_status(run_id)
        except DagsterGraphQLClientError as exc:
            raise QueueError(f"nie można odczytać stanu runu {run_id} z {url}: {exc}") from None
        if status in FINISHED:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise QueueError(f"run {run_id} nie zakończył się w {timeout_s} s (status {status.value})")
        time.sleep(poll_s)


def describe_queued(kind: str, id_task: int, run_id: str, job_name: str, tags: dict[str, Any]) -> str:
    """Linia dla operatora: run w kolejce, jego id i limit, któremu podlega."""
    limit = f", limit kolejki per połączenie {tags[TAG_CONNECTION]}" if TAG_CONNECTION in tags else ""
    return f"{kind}: zadanie {id_task}: run {run_id} ({job_name}) wstawiony do kolejki Dagstera{limit}"
