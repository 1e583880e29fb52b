"""Które zadania uruchomić: decyzje sensorów i trybu cron skryptów (bez Dagstera).

Sensor (``ailexia_dagster/sensors.py``) woła te funkcje w każdym ticku. Tu żyje cała logika
na tabeli ``task``: wybór kandydatów, rezerwacja (status ``queued`` ustawiany warunkowo, więc
jeden wpis w tabeli daje najwyżej jeden run), klucze runów i kursor sensora AI. O runach
Dagstera ta warstwa wie tylko tyle, ile dostanie w argumencie (zbiór zadań z żywym runem).
"""

import datetime as dt
import json
from typing import Any, NamedTuple

from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.runtime.locks import locked_task_ids
from lib.task import CLOSED_STATUSES
from lib.task_item import ai_work_exists_sql

log = get_logger("scheduling")

# Ile runów najwyżej zleca jeden tick (duży backfill rozkłada się na kolejne ticki). Dagster
# sprawdza partycję każdego RunRequest osobnym zapytaniem do instancji (~3 ms na SQLite), więc
# 200 zleceń mieści tick w ~0.6 s (bench/sensor_bench.py).
MAX_REQUESTS_PER_TICK = 200
# Po ilu sekundach bez zmian wiersza zadanie in_progress/verifying z wolną blokadą i bez żywego
# runu uznajemy za osierocone (przerwa między krokami runu ze skryptu trwa ułamek sekundy).
ORPHAN_GRACE_S = 60
# Zakończenia synchronizacji młodsze niż tyle sekund czekają na następny tick: transakcja z
# ``finished_at`` mogła jeszcze nie zostać zatwierdzona, a kursor AI nie może jej przeskoczyć.
AI_SETTLE_S = 5
# Ile zadań najwyżej ogląda i ile runów AI najwyżej zleca jeden tick sensora AI (runy AI są
# długie; 100 zleceń na tick wystarcza, a tick mieści się w 1 s przy 50 000 partycji).
MAX_AI_SCAN_PER_TICK = 1000
MAX_AI_REQUESTS_PER_TICK = 100

# Statusy kandydatów do synchronizacji: powód podjęcia zależy od statusu.
_REASONS = {
    "new": "new",
    "resync": "resync",
    "paused": "resume",
    "queued": "stale",
    "in_progress": "orphan",
    "verifying": "orphan",
}
_TIME_FMT = "%Y-%m-%d %H:%M:%S"


class SyncClaim(NamedTuple):
    """Zarezerwowane zadanie: jeden run ``sync_job`` do zlecenia.

    Attributes:
        id_task: Zadanie.
        id_connection: Połączenie źródłowe (tag limitu współbieżności).
        reason: ``new``, ``resync``, ``resume`` (pauza time_limit/signal), ``stale`` albo ``orphan``.
        previous_status: Status przed rezerwacją.
        queued_at: Nowa wartość ``task.queued_at`` (ściśle rosnąca dla zadania).
        run_key: Klucz runu unikalny dla tej rezerwacji.
        replaces_dead_run: ``True``, gdy zadanie miało run STARTED uznany za martwy.
    """

    id_task: int
    id_connection: int
    reason: str
    previous_status: str
    queued_at: dt.datetime
    run_key: str
    replaces_dead_run: bool = False


class AiRequest(NamedTuple):
    """Zadanie po udanej synchronizacji, dla którego trzeba zlecić run ``ai_job``.

    Attributes:
        id_task: Zadanie.
        id_connection: Połączenie źródłowe.
        finished_at: Koniec synchronizacji, po której zlecamy AI.
        run_key: Klucz runu unikalny dla tej operacji synchronizacji.
    """

    id_task: int
    id_connection: int
    finished_at: dt.datetime
    run_key: str


def sync_run_key(id_task: int, queued_at: dt.datetime) -> str:
    """Klucz runu synchronizacji: zadanie + moment rezerwacji (każda rezerwacja ma nowy)."""
    return f"sync-{id_task}-{queued_at.strftime('%Y%m%dT%H%M%S')}"


def ai_run_key(id_task: int, finished_at: dt.datetime) -> str:
    """Klucz runu AI: zadanie + koniec synchronizacji (jeden automatyczny run na operację)."""
    return f"ai-{id_task}-{finished_at.strftime('%Y%m%dT%H%M%S')}"


def db_now(db: MySQL) -> dt.datetime:
    """Zwraca bieżący czas serwera MySQL (ten sam zegar co ``NOW()`` w runach)."""
    value = db.query_value("SELECT NOW()")
    if not db.autocommit:
        db.commit()
    return value


def sync_candidates(
    db: MySQL, stale_queued_s: int, orphan_grace_s: int = ORPHAN_GRACE_S
) -> list[dict[str, Any]]:
    """Zwraca zadania, które mogą wymagać runu synchronizacji (jedno zapytanie po indeksie statusu).

    Kandydaci: ``new``, ``resync``; ``paused`` z powodu ``time_limit``/``signal`` (nigdy
    ``manual``); ``queued`` zarezerwowane dawniej niż ``stale_queued_s`` sekund temu (albo bez
    ``queued_at``); ``in_progress``/``verifying`` bez zmian od ``orphan_grace_s`` sekund.
    Żywotność runów (blokada, runy Dagstera) sprawdza wołający (``claim_sync_tasks``, ``tasks_for_cron``).

    Args:
        db: Połączenie lokalne.
        stale_queued_s: Po ilu sekundach rezerwacja ``queued`` bez runu jest zgubiona.
        orphan_grace_s: Po ilu sekundach bez zmian wiersz ``in_progress``/``verifying`` może być sierotą.

    Returns:
        Wiersze (id_task, id_database_connection, status, pause_reason, queued_at, updated_at),
        najpierw nowe i resync, potem wznowienia i odzyskiwane, w obrębie grupy rosnąco po id.
    """
    rows = db.query(
        "SELECT id_task, id_database_connection, status, pause_reason, queued_at, updated_at FROM task "
        "WHERE status IN ('new','resync','paused','queued','in_progress','verifying') "
        "AND (status IN ('new','resync') "
        "OR (status='paused' AND pause_reason IN ('time_limit','signal')) "
        "OR (status='queued' AND (queued_at IS NULL OR queued_at <= NOW() - INTERVAL %s SECOND)) "
        "OR (status IN ('in_progress','verifying') AND (updated_at IS NULL OR updated_at <= NOW() - INTERVAL %s SECOND))) "
        "ORDER BY FIELD(status,'new','resync','paused','queued','in_progress','verifying'), id_task",
        (int(stale_queued_s), int(orphan_grace_s)),
    )
    if not db.autocommit:
        db.commit()
    return rows


def tasks_for_cron(db: MySQL) -> list[int]:
    """Zadania do podjęcia przez tryb cron (``python sync.py`` bez id).

    Ci sami kandydaci co dla sensora (``sync_candidates``), bez okresów karencji: ``new``,
    ``resync``, ``paused`` z powodu limitu czasu albo sygnału (nigdy ręczna pauza) i osierocone
    ``queued``/``in_progress``/``verifying``, których blokada jest wolna (run, który je trzymał, nie żyje).

    Returns:
        Lista id zadań rosnąco.
    """
    rows = sync_candidates(db, 0, 0)
    ids = sorted(int(row["id_task"]) for row in rows)
    running = [int(r["id_task"]) for r in rows if r["status"] in ("queued", "in_progress", "verifying")]
    locked = locked_task_ids(db, running)
    return [id_task for id_task in ids if id_task not in locked]


def _dead_run_suspect(
    row: dict[str, Any],
    id_task: int,
    suspects: set[int] | frozenset[int],
    dead_after_s: int,
    now: dt.datetime,
) -> bool:
    """Czy żywy według Dagstera run zadania jest w rzeczywistości martwy (patrz ``claim_sync_tasks``)."""
    if id_task not in suspects or row["status"] not in ("queued", "in_progress", "verifying"):
        return False
    updated = row["updated_at"]
    return updated is None or (now - updated).total_seconds() >= dead_after_s


def claim_sync_tasks(
    db: MySQL,
    candidates: list[dict[str, Any]],
    live_task_ids: set[int],
    limit: int = MAX_REQUESTS_PER_TICK,
    suspect_task_ids: set[int] | frozenset[int] = frozenset(),
    dead_after_s: int = 0,
) -> list[SyncClaim]:
    """Rezerwuje kandydatów: ``status='queued'`` i nowe ``queued_at`` warunkowo (compare-and-set).

    Zadanie z żywym runem Dagstera (``live_task_ids``) albo z zajętą blokadą jest pomijane
    (czeka na następny tick). ``UPDATE`` zmienia wiersz tylko wtedy, gdy status, ``queued_at``
    i ``updated_at`` są takie, jak przy odczycie - inny sensor, operator albo run, który właśnie
    ożył, sprawia, że rezerwacja się nie udaje i runu nie zlecamy. ``queued_at`` rośnie ściśle
    dla zadania (co najmniej o sekundę), więc klucz runu z niego jest nowy przy każdej rezerwacji.

    Args:
        db: Połączenie lokalne (wszystkie rezerwacje w jednej transakcji).
        candidates: Wynik ``sync_candidates``.
        live_task_ids: Zadania, które mają run QUEUED/NOT_STARTED/STARTING/STARTED/CANCELING.
        limit: Najwięcej rezerwacji w jednym wywołaniu.
        suspect_task_ids: Zadania, których jedynymi żywymi runami są runy synchronizacji w statusie
            STARTED. Domyślny run launcher Dagstera nie wykrywa śmierci procesu runu (run zostaje
            STARTED na zawsze), więc taki run uznajemy za martwy, gdy blokada zadania jest wolna,
            a wiersz ``queued``/``in_progress``/``verifying`` nie zmienił się od ``dead_after_s``
            sekund (żywy run synchronizacji trzyma blokadę i co partię zapisuje postęp).
        dead_after_s: Próg bezczynności wiersza dla ``suspect_task_ids``.

    Returns:
        Lista udanych rezerwacji w kolejności kandydatów.
    """
    now = db_now(db).replace(microsecond=0)
    waiting = []
    for row in candidates:
        id_task = int(row["id_task"])
        if id_task in live_task_ids and not _dead_run_suspect(
            row, id_task, suspect_task_ids, dead_after_s, now
        ):
            continue
        waiting.append(row)
        if len(waiting) >= limit * 2:
            break
    if not waiting:
        return []
    locked = locked_task_ids(db, [int(row["id_task"]) for row in waiting])
    claims: list[SyncClaim] = []
    db.begin()
    try:
        for row in waiting:
            if len(claims) >= limit:
                break
            id_task = int(row["id_task"])
            if id_task in locked:
                continue
            previous = row["queued_at"]
            queued_at = now if previous is None or previous < now else previous + dt.timedelta(seconds=1)
            changed = db.execute(
                "UPDATE task SET status='queued', queued_at=%s "
                "WHERE id_task=%s AND status=%s AND queued_at <=> %s AND updated_at <=> %s",
                (queued_at, id_task, row["status"], previous, row["updated_at"]),
            )
            if changed != 1:
                continue
            claims.append(
                SyncClaim(
                    id_task=id_task,
                    id_connection=int(row["id_database_connection"]),
                    reason=_REASONS[row["status"]],
                    previous_status=row["status"],
                    queued_at=queued_at,
                    run_key=sync_run_key(id_task, queued_at),
                    replaces_dead_run=id_task in live_task_ids,
                )
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    for claim in claims:
        log.info(
            "zadanie %s: zarezerwowane do synchronizacji (%s, było %s)",
            claim.id_task,
            claim.reason,
            claim.previous_status,
        )
    return claims


def archived_task_ids(db: MySQL) -> set[int]:
    """Zwraca id zadań ``archived`` (ich partycje Dagstera są usuwane; dane zostają w MySQL)."""
    rows = db.query("SELECT id_task FROM task WHERE status='archived'")
    if not db.autocommit:
        db.commit()
    return {int(r["id_task"]) for r in rows}


def parse_ai_cursor(cursor: str | None) -> tuple[dt.datetime, int] | None:
    """Odczytuje kursor sensora AI: ostatnie obejrzane ``(finished_at, id_task)`` albo ``None``."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        return dt.datetime.strptime(data["finished_at"], _TIME_FMT), int(data["id_task"])
    except (ValueError, KeyError, TypeError):
        log.warning("nieczytelny kursor sensora AI %r - zaczynam od początku", cursor)
        return None


def format_ai_cursor(position: tuple[dt.datetime, int] | None) -> str | None:
    """Zapisuje pozycję ``(finished_at, id_task)`` jako kursor sensora AI (JSON)."""
    if position is None:
        return None
    return json.dumps({"finished_at": position[0].strftime(_TIME_FMT), "id_task": position[1]})


def completed_since(
    db: MySQL,
    after: tuple[dt.datetime, int] | None,
    max_attempts: int,
    settle_s: int = AI_SETTLE_S,
    limit: int = MAX_AI_SCAN_PER_TICK,
) -> list[dict[str, Any]]:
    """Zwraca zadania ``completed`` z modelem AI, zakończone po pozycji kursora, z oceną kwalifikacji.

    Każdy wiersz ma ``eligible`` = 1, gdy model jest ``active`` i zadanie ma pozycje do AI
    (``task_item.ai_eligible_sql``).

    Args:
        db: Połączenie lokalne.
        after: Ostatnia obejrzana pozycja ``(finished_at, id_task)`` albo ``None`` (od początku).
        max_attempts: ``AI_MAX_ATTEMPTS``.
        settle_s: Zakończenia młodsze niż tyle sekund zostają na następny tick.
        limit: Najwięcej wierszy.

    Returns:
        Wiersze (id_task, id_database_connection, finished_at, eligible) rosnąco po (finished_at, id_task).
    """
    where, params = "", []
    if after is not None:
        where = "AND (t.finished_at > %s OR (t.finished_at = %s AND t.id_task > %s)) "
        params = [after[0], after[0], after[1]]
    rows = db.query(
        "SELECT t.id_task, t.id_database_connection, t.finished_at, "
        f"(m.status='active' AND {ai_work_exists_sql('t')}) AS eligible "
        "FROM task t JOIN ai_model m ON m.id_ai_model=t.id_ai_model "
        "WHERE t.status='completed' AND t.finished_at IS NOT NULL "
        "AND t.finished_at <= NOW() - INTERVAL %s SECOND "
        f"{where}ORDER BY t.finished_at, t.id_task LIMIT %s",
        (int(max_attempts), int(settle_s), *params, int(limit)),
    )
    if not db.autocommit:
        db.commit()
    return rows


def plan_ai_requests(
    rows: list[dict[str, Any]],
    live_task_ids: set[int],
    after: tuple[dt.datetime, int] | None,
    limit: int = MAX_AI_REQUESTS_PER_TICK,
) -> tuple[list[AiRequest], tuple[dt.datetime, int] | None]:
    """Wybiera z ``completed_since`` zadania do runu AI i przesuwa kursor za obejrzane wiersze.

    Zadanie z żywym runem (np. AI uruchomione ręcznie) nie dostaje drugiego: trwający run i tak
    podejmie nowe pozycje. Kursor przechodzi za każdy obejrzany wiersz, więc jedna operacja
    synchronizacji daje najwyżej jedno automatyczne zlecenie AI. Po ``limit`` zleceniach kursor
    zatrzymuje się na ostatnim zleconym wierszu; resztę obejrzy następny tick.

    Returns:
        Krotka ``(zlecenia, nowa pozycja kursora)``.
    """
    requests: list[AiRequest] = []
    position = after
    for row in rows:
        if len(requests) >= limit:
            break
        id_task = int(row["id_task"])
        position = (row["finished_at"], id_task)
        if not row["eligible"] or id_task in live_task_ids:
            continue
        requests.append(
            AiRequest(
                id_task=id_task,
                id_connection=int(row["id_database_connection"]),
                finished_at=row["finished_at"],
                run_key=ai_run_key(id_task, row["finished_at"]),
            )
        )
    return requests, position


def tasks_with_pending_ai(db: MySQL, max_attempts: int) -> list[int]:
    """Zwraca zadania (nie anulowane/archiwalne) z aktywnym modelem i pozycjami do przetworzenia.

    Args:
        db: Połączenie lokalne.
        max_attempts: ``AI_MAX_ATTEMPTS`` - pozycje z tyloma próbami się nie liczą.

    Returns:
        Lista ``id_task`` rosnąco (tryb cron ``ai.py``).
    """
    rows = db.query(
        "SELECT t.id_task FROM task t JOIN ai_model m ON m.id_ai_model=t.id_ai_model AND m.status='active' "
        f"WHERE t.status NOT IN ({', '.join(['%s'] * len(CLOSED_STATUSES))}) "
        f"AND {ai_work_exists_sql('t')} "
        "ORDER BY t.id_task",
        (*CLOSED_STATUSES, max_attempts),
    )
    if not db.autocommit:
        db.commit()
    return [int(row["id_task"]) for row in rows]
