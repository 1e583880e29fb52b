"""Eksport zaakceptowanych pozycji do źródła (compare-and-set; konflikt zamiast nadpisania).

Run eksportu pisze do źródła każdą pozycję ``accepted`` (nieusuniętą), partiami po
``BATCH_SIZE`` pozycji rosnąco po ``id_task_item``, adresując wiersz źródła wszystkimi kolumnami
klucza (``remote_key``). Dla każdej partii:

1. odczyt bieżących wartości źródła (kolumna synchronizowana i kolumna zapisu) - pozycje,
   których tekst już jest w źródle (np. run zginął między commitem w źródle a zapisem
   lokalnym), są oznaczane ``exported`` bez ponownego zapisu;
2. ``db_remote.compare_and_set``: w transakcji źródła wiersz jest blokowany, tekst porównywany
   bajt po bajcie z ``text_original`` (tekst z ostatniej synchronizacji) i dopiero wtedy
   nadpisywany ``text_corrected``; inny tekst w źródle to ``conflict`` z powodem;
3. ponowny odczyt zapisanych wierszy i porównanie hasha z ``local_hash``;
4. jedna lokalna transakcja: ``exported`` / ``conflict`` dla pozycji partii.

Status zadania się nie zmienia (poza ``error`` po błędzie i ``paused`` po zatrzymaniu).
"""

import time
import unicodedata
from typing import Any

from lib import db_remote, faults, task_item
from lib.db_local import MySQL, retry_on_deadlock
from lib.db_remote import discovery
from lib.db_utils import compute_hash, get_logger
from lib.errors import RemoteError
from lib.load_config import Settings
from lib.runtime.control import StopCheck
from lib.runtime.frames import run_with_task_lock
from lib.runtime.progress import Progress
from lib.source import open_source, resolve_task_target
from lib.task import lock_task_row, mark_paused

log = get_logger("export")

CONFLICT_PREFIX = "tekst w źródle zmienił się od synchronizacji"


def describe_difference(expected: str | None, actual: str | None) -> str:
    """Opisuje po polsku, czym tekst w źródle różni się od tekstu z synchronizacji.

    Rozróżnia tanie przypadki, które baza z porównaniem bez rozróżniania wielkości liter
    (``*_general_ci``) albo z dopełnianiem spacjami (PAD SPACE) uznałaby za równe.

    Args:
        expected: Tekst z ostatniej synchronizacji (``text_original``).
        actual: Bieżący tekst w źródle.

    Returns:
        Powód konfliktu do ``task_item.export_error``.
    """
    if expected is None and actual is not None:
        detail = "w źródle jest tekst, a przy synchronizacji było NULL"
    elif actual is None:
        detail = "w źródle jest NULL"
    elif expected.rstrip() == actual.rstrip():
        detail = "różnica spacji/białych znaków na końcu"
    elif expected.strip() == actual.strip():
        detail = "różnica spacji/białych znaków na początku lub końcu"
    elif expected.lower() == actual.lower() or expected.casefold() == actual.casefold():
        detail = "różnica wielkości liter"
    elif unicodedata.normalize("NFC", expected) == unicodedata.normalize("NFC", actual):
        detail = "różnica normalizacji Unicode (te same znaki, inne kody)"
    elif " ".join(expected.split()) == " ".join(actual.split()):
        detail = "różnica białych znaków wewnątrz tekstu"
    elif expected.casefold().strip() == actual.casefold().strip():
        detail = "różnica wielkości liter i białych znaków na brzegach"
    else:
        detail = f"inna treść ({len(expected)} -> {len(actual)} znaków)"
    return f"{CONFLICT_PREFIX} ({detail}); źródło nie zostało zmienione"


def _skip_reason(item: dict[str, Any], hash_method: str) -> str | None:
    """Zwraca powód pominięcia pozycji (nie ma czego pisać albo hash nie pasuje) albo ``None``."""
    if item["text_corrected"] is None:
        return "eksport pominięty: pozycja nie ma tekstu poprawionego (text_corrected jest NULL)"
    if item["local_hash"] != compute_hash(item["text_corrected"], hash_method):
        return (
            "eksport pominięty: local_hash nie odpowiada text_corrected (pozycja do ponownego przetworzenia)"
        )
    return None


def _finish_batch(
    db: MySQL,
    id_task: int,
    exported: list[int],
    conflicts: list[tuple[int, str]],
    skipped: list[tuple[int, str]],
) -> None:
    """Zapisuje wynik partii lokalnie w jednej transakcji (najpierw wiersz zadania, potem pozycje)."""

    def work() -> None:
        db.begin()
        lock_task_row(db, id_task)
        task_item.record_export(db, exported, conflicts, skipped)
        db.commit()

    retry_on_deadlock(work, db=db)


def _export_batch(
    rconn: db_remote.RemoteConn,
    target: db_remote.Target,
    write_column: str | None,
    items: list[dict[str, Any]],
    hash_method: str,
) -> dict[str, list]:
    """Zapisuje jedną partię do źródła; zwraca listy id pozycji według wyniku (bez zapisu lokalnego)."""
    result: dict[str, list] = {"written": [], "already": [], "conflicts": [], "skipped": []}
    candidates = []
    for item in items:
        reason = _skip_reason(item, hash_method)
        if reason is None:
            candidates.append(item)
        else:
            result["skipped"].append((int(item["id_task_item"]), reason))
    if not candidates:
        return result
    in_place = write_column is None
    column = target.column if in_place else str(write_column)
    storable = []
    for item in candidates:
        reason = db_remote.unstorable_reason(
            target.db_type, column, target.charset_of(column), item["text_corrected"]
        )
        if reason is None:
            storable.append(item)
        else:
            result["conflicts"].append((int(item["id_task_item"]), reason))
    candidates = storable
    if not candidates:
        return result
    columns = [target.column] if in_place else [target.column, write_column]
    keys = {int(i["id_task_item"]): db_remote.decode_key(i["remote_key"]) for i in candidates}
    current = db_remote.fetch_by_keys(rconn, target, list(keys.values()), columns)
    updates = []
    by_key: dict[Any, dict[str, Any]] = {}
    for item in candidates:
        id_item = int(item["id_task_item"])
        key = keys[id_item]
        if key not in current:
            result["conflicts"].append(
                (id_item, "wiersz nie istnieje już w źródle; źródło nie zostało zmienione")
            )
            continue
        values = current[key]
        source_text = values[0]
        written_text = values[0] if in_place else values[1]
        # Tekst już jest w kolumnie zapisu: zapis z przerwanego runu (albo nie ma nic do zmiany).
        if written_text == item["text_corrected"]:
            result["already"].append(id_item)
            continue
        if source_text != item["text_original"]:
            result["conflicts"].append((id_item, describe_difference(item["text_original"], source_text)))
            continue
        updates.append((key, item["text_original"], item["text_corrected"]))
        by_key[key] = item
    if not updates:
        return result
    cas = db_remote.compare_and_set(rconn, target, updates, write_column=write_column)
    for key, reason in cas.conflicts:
        # Źródło zmieniło się między odczytem a blokadą wiersza: opisujemy różnicę, jeśli się da.
        item = by_key[key]
        again = db_remote.fetch_by_keys(rconn, target, [key], [target.column])
        if key in again and again[key][0] != item["text_original"]:
            reason = describe_difference(item["text_original"], again[key][0])
        result["conflicts"].append((int(item["id_task_item"]), reason))
    written = list(cas.written)
    if written:
        check_column = target.column if in_place else write_column
        stored = db_remote.fetch_by_keys(rconn, target, written, [check_column])
        for key in written:
            item = by_key[key]
            text = stored[key][0] if key in stored else None
            if key in stored and compute_hash(text, hash_method) == item["local_hash"]:
                result["written"].append(int(item["id_task_item"]))
            else:
                # Kolumna źródła zmieniła tekst przy zapisie (obcięcie, zestaw znaków): nie udajemy sukcesu.
                result["conflicts"].append(
                    (
                        int(item["id_task_item"]),
                        "po zapisie tekst w źródle różni się od text_corrected (hash inny niż local_hash) - "
                        "kolumna źródła obcina lub zmienia tekst (długość, zestaw znaków?)",
                    )
                )
    return result


def _export(
    db: MySQL,
    settings: Settings,
    task_row: dict[str, Any],
    should_stop: StopCheck | None,
    progress: Progress | None,
) -> dict[str, Any]:
    id_task = task_row["id_task"]
    hash_method = task_row["hash_method"] or "sha256"
    stats: dict[str, Any] = {"exported": 0, "already_exported": 0, "conflicts": 0, "skipped": 0, "batches": 0}
    stopped = None
    rconn, conn_row = open_source(db, task_row, settings)
    try:
        target = resolve_task_target(rconn, task_row)
        write_column = None
        export_column = task_row.get("export_column")
        if export_column and export_column != task_row["column_name"]:
            # Nazwa z katalogu źródła (sprawdzona przez resolve_target), nie surowa wartość z wiersza.
            write_column = target.extra_columns[0]
        stats["items_total"] = task_item.count_for_export(db, id_task)
        if stats["items_total"]:
            # Użytkownik tylko do odczytu: odmowa przed pierwszym zapisem (pozycje zostają accepted).
            refusal = discovery.update_refusal(
                rconn,
                target.quoted_table,
                task_row["table_name"],
                write_column or target.column,
                conn_row["db_user"],
            )
            if refusal:
                raise RemoteError(refusal)
        log.info(
            "zadanie %s: eksport do %s.%s (warunek: %s)",
            id_task,
            target.table,
            write_column or target.column,
            target.column,
        )
        after = 0
        while True:
            items = task_item.export_batch(db, id_task, after, settings.batch_size)
            if not items:
                break
            after = int(items[-1]["id_task_item"])
            result = _export_batch(rconn, target, write_column, items, hash_method)
            faults.checkpoint("export.source_committed")
            _finish_batch(
                db, id_task, result["written"] + result["already"], result["conflicts"], result["skipped"]
            )
            stats["exported"] += len(result["written"])
            stats["already_exported"] += len(result["already"])
            stats["conflicts"] += len(result["conflicts"])
            stats["skipped"] += len(result["skipped"])
            stats["batches"] += 1
            for id_item, reason in result["conflicts"]:
                log.warning("zadanie %s: pozycja %s - konflikt eksportu: %s", id_task, id_item, reason)
            if progress is not None:
                progress(dict(stats))
            stopped = should_stop() if should_stop else None
            if stopped:
                break
    finally:
        db_remote.close(rconn)
    task_item.refresh_review_counters(db, id_task)
    if stopped:
        mark_paused(db, id_task, stopped)
    stats["stopped"] = stopped
    log.info(
        "zadanie %s: eksport - zapisano %s, już w źródle %s, konflikty %s, pominięte %s%s",
        id_task,
        stats["exported"],
        stats["already_exported"],
        stats["conflicts"],
        stats["skipped"],
        f", zatrzymany ({stopped})" if stopped else "",
    )
    return stats


def run_export(
    settings: Settings,
    id_task: int,
    *,
    run_id: str | None = None,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Zapisuje zaakceptowane pozycje zadania do źródła (compare-and-set, partiami).

    Run trzyma blokadę zadania (``GET_LOCK``), więc nie nakłada się na synchronizację; jest
    zapisany w ``run_log`` jako ``export``. Konflikty są wynikiem, nie błędem: run kończy się
    sukcesem, a pozycje dostają ``conflict`` z powodem w ``export_error``. Ponowne uruchomienie
    po przerwaniu (także SIGKILL) nie zapisuje żadnego wiersza dwa razy.

    Args:
        settings: Ustawienia (``BATCH_SIZE``, połączenie lokalne).
        id_task: Zadanie.
        run_id: Identyfikator runu Dagstera (do ``run_log``).
        should_stop: Funkcja z ``lib.runtime.control``; powód != None kończy run po bieżącej partii.
        progress: Wołana po każdej partii ze statystykami do tej chwili.

    Returns:
        Statystyki: exported (zapisane teraz), already_exported (tekst już był w źródle),
        conflicts, skipped (bez tekstu poprawionego / zły hash), batches, duration_s, stopped.

    Raises:
        UsageError: Nieznane zadanie albo status cancelled/archived.
        TaskBusyError: Zadanie przetwarza inny run.
        TaskError, RemoteError: Błąd zadania (zadanie dostaje status ``error``).
    """

    def body(db: MySQL, task_row: dict[str, Any], started: float) -> dict[str, Any]:
        stats = _export(db, settings, task_row, should_stop, progress)
        stats["duration_s"] = round(time.monotonic() - started, 3)
        return stats

    return run_with_task_lock(settings, id_task, "export", run_id, body)
