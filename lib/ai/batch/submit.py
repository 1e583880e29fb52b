"""Tryb batch AI (OpenAI Batch API): rezerwacja pozycji, plik JSONL, wysyłka, odzyskiwanie, anulowanie.

Model (``ai_model.batch_mode``) albo zadanie (``task.ai_batch_mode``, nadpisanie) w trybie batch:
``run_ai`` nie wysyła zapytań po jednym, tylko (``run_submit``):

1. w jednej transakcji zapisuje wiersz ``ai_batch`` (``preparing``, nowy ``claim_uuid``) i rezerwuje
   pozycje (``task_item.claim_uuid`` = ``claim_uuid`` batcha, ``id_ai_batch``) - albo nic;
2. pozycje z gotowym wynikiem dla tego samego tekstu zapisuje od razu (koszt 0), z reszty pisze
   plik JSONL: każdy różny tekst raz, krótkie w paczkach jak online (``ai_pack``), ``custom_id``
   ``h:<original_hash>`` (jeden tekst) albo ``p:<n>`` (paczka), ciało = to samo zapytanie czatu
   co online (``prompts.build_messages`` / ``ai_pack.build_pack_messages`` + ``ai_client.request_body``);
3. wysyła plik (``files.create``, purpose ``batch``) i od razu zapisuje jego id (``uploaded``);
4. tworzy batch (``batches.create`` z ``metadata={"ailexia_batch": claim_uuid}``) i zapisuje jego id
   (``submitted``). Na tym run się kończy; wyniki odbiera ``lib.ai.batch.ingest``.

Odporność na awarie: batch ``preparing``/``uploaded``, którego właściciel (blokada operacji) nie
żyje, przejmuje kolejny run zadania (albo anulowanie): ``preparing`` - plik budowany od nowa
z pozycji wciąż zarezerwowanych; ``uploaded`` - najpierw szukamy batcha z naszym ``claim_uuid``
w metadanych (``batches.list``), bo proces mógł zginąć po utworzeniu batcha, a przed zapisem jego
id; tworzymy nowy tylko, gdy go nie ma. Dwa batche dla tych samych pozycji nie powstają, pozycje
nie giną (wracają do kolejki tylko przez ingest albo porzucenie batcha, który na pewno nie istnieje).
"""

import json
import tempfile
import uuid
from typing import IO, Any

import openai

from lib import faults, task_item
from lib.ai import client as ai_client
from lib.ai import operation as ai_operation
from lib.ai import packs as ai_pack
from lib.ai import prompts
from lib.ai.quality import guardrails
from lib.ai.stats import AiStats
from lib.db_local import MySQL, connect_local, retry_on_deadlock
from lib.db_utils import get_logger, hash_function, hash_text, mask_secrets
from lib.errors import AiError, TaskError, UsageError
from lib.load_config import Settings

log = get_logger("ai_batch")

BATCH_ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
METADATA_KEY = "ailexia_batch"
# Statusy dostawcy, po których batch już się nie zmieni (wyniki albo ich brak są ostateczne).
TERMINAL_STATUSES = ("completed", "failed", "expired", "cancelled")
# Format odpowiedzi linii batcha: Batch API OpenAI zna json_schema (bez sondowania jak online).
BATCH_RESPONSE_FORMAT = "json_schema"
# Ile batchy (najnowszych) przejrzeć, szukając naszego claim_uuid w metadanych.
LIST_LIMIT = 2000
TEXT_CHUNK = 500


def is_batch_mode(task: dict[str, Any], model: dict[str, Any]) -> bool:
    """Czy zadanie pracuje w trybie batch: ``task.ai_batch_mode`` (gdy nie NULL), inaczej ``ai_model.batch_mode``."""
    override = task.get("ai_batch_mode")
    return bool(model.get("batch_mode")) if override is None else bool(override)


def custom_id(original_hash: str | None) -> str:
    """``custom_id`` linii batcha dla tekstu o danym hashu."""
    return f"h:{original_hash or ''}"


# --- wiersze ai_batch ---------------------------------------------------------------------


def get_batch(db: MySQL, id_ai_batch: int) -> dict[str, Any] | None:
    """Wiersz ``ai_batch`` albo ``None``."""
    return db.query_one("SELECT * FROM ai_batch WHERE id_ai_batch=%s", (id_ai_batch,))


def update_batch(db: MySQL, id_ai_batch: int, **values: Any) -> None:
    """Zapisuje kolumny wiersza ``ai_batch`` i zatwierdza (wartość ``"NOW()"`` = czas serwera)."""
    sets, params = [], []
    for column, value in values.items():
        if value == "NOW()":
            sets.append(f"`{column}`=NOW()")
        else:
            sets.append(f"`{column}`=%s")
            params.append(value)
    db.execute(f"UPDATE ai_batch SET {', '.join(sets)} WHERE id_ai_batch=%s", (*params, id_ai_batch))
    if not db.autocommit:
        db.commit()


def take_over(db: MySQL, id_ai_batch: int, operation: str, statuses: tuple[str, ...]) -> bool:
    """Przejmuje batch dla operacji, gdy jest w jednym z ``statuses`` i jego właściciel nie żyje.

    Właściciel żyje, dopóki trzyma którąkolwiek ze swoich blokad (``ai_operation.LOCK_PREFIXES`` +
    ``operation_uuid``: run AI trzyma dwie, na dwóch sesjach); wołający trzyma blokady swojej
    operacji, więc po przejęciu nikt inny batcha nie ruszy. Zatwierdza.

    Returns:
        ``True``, gdy batch należy teraz do ``operation``.
    """
    marks = ", ".join(["%s"] * len(statuses))
    prefixes = ai_operation.LOCK_PREFIXES
    changed = db.execute(
        f"UPDATE ai_batch SET operation_uuid=%s, attempts=attempts+1 WHERE id_ai_batch=%s AND status IN ({marks}) "
        "AND (operation_uuid IS NULL OR operation_uuid=%s "
        f"OR ({task_item.owner_dead_sql('operation_uuid', len(prefixes))}))",
        (operation, id_ai_batch, *statuses, operation, *prefixes),
    )
    if not db.autocommit:
        db.commit()
    return changed == 1


def load_model(db: MySQL, id_ai_model: int) -> dict[str, Any]:
    """Wiersz ``ai_model`` batcha (ceny i serwer modelu, który batch wykonał).

    Raises:
        TaskError: Model usunięty.
    """
    model = db.query_one("SELECT * FROM ai_model WHERE id_ai_model=%s", (id_ai_model,))
    if model is None:
        raise TaskError(f"model AI {id_ai_model} batcha nie istnieje w tabeli ai_model")
    return model


def api_message(exc: BaseException, client: openai.OpenAI) -> str:
    """Krótki opis błędu API bez klucza."""
    status = getattr(exc, "status_code", None)
    text = " ".join(str(getattr(exc, "message", None) or exc).split())[:300]
    text = mask_secrets(text, [client.api_key or ""])
    return f"HTTP {status}: {text}" if status else f"{exc.__class__.__name__}: {text}"


def _is_definitive(exc: BaseException) -> bool:
    """Błąd, którego ponowienie nic nie da (4xx poza 408/409/429): batch na pewno nie powstał."""
    status = getattr(exc, "status_code", None) if isinstance(exc, openai.APIStatusError) else None
    return status is not None and 400 <= status < 500 and status not in (408, 409, 429)


def find_provider_batch(client: openai.OpenAI, claim: str) -> Any | None:
    """Szuka u dostawcy batcha z ``metadata.ailexia_batch == claim`` (najnowsze ``LIST_LIMIT``).

    Returns:
        Obiekt batcha SDK albo ``None``.
    """
    for seen, batch in enumerate(client.batches.list(limit=100)):
        if (batch.metadata or {}).get(METADATA_KEY) == claim:
            return batch
        if seen + 1 >= LIST_LIMIT:
            break
    return None


def input_file_name(claim: str) -> str:
    """Nazwa pliku JSONL batcha u dostawcy (po niej odzyskiwanie znajduje osierocony upload)."""
    return f"ailexia-{claim}.jsonl"


def delete_orphan_uploads(client: openai.OpenAI, claim: str) -> int:
    """Usuwa u dostawcy pliki tego batcha wysłane przed awarią, zanim ich id zostało zapisane.

    Returns:
        Liczba usuniętych plików.
    """
    name = input_file_name(claim)
    orphans = [f.id for f in client.files.list(purpose="batch") if f.filename == name]
    for file_id in orphans:
        client.files.delete(file_id)
        log.info("usunięto osierocony plik batcha %s (%s)", file_id, name)
    return len(orphans)


def abandon(db: MySQL, batch: dict[str, Any], message: str) -> int:
    """Porzuca batch, który na pewno nie istnieje u dostawcy: pozycje wracają do kolejki. Zatwierdza.

    Returns:
        Liczba oddanych pozycji.
    """
    released = task_item.release_batch_items(db, batch["id_ai_batch"], batch["claim_uuid"], message)
    update_batch(db, batch["id_ai_batch"], status="abandoned", error=message[:4000], finished_at="NOW()")
    log.warning(
        "batch %s porzucony (%s pozycji wraca do kolejki): %s", batch["id_ai_batch"], released, message
    )
    return released


# --- wysyłka ------------------------------------------------------------------------------


def _open_batch(
    db: MySQL,
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    operation: str,
    run_id: str | None,
    count: int,
) -> dict[str, Any] | None:
    """Zapisuje wiersz ``ai_batch`` (``preparing``) i rezerwuje pozycje w jednej transakcji.

    Returns:
        Wiersz batcha albo ``None``, gdy nie było czego zarezerwować (nic nie zostaje zapisane).
    """
    claim = str(uuid.uuid4())
    version = prompts.prompt_version(
        task.get("ai_action") or "correct", model, task.get("source_lang"), task.get("target_lang")
    )

    def work() -> int | None:
        db.rollback()
        db.execute(
            "INSERT INTO ai_batch (id_task, id_ai_model, claim_uuid, operation_uuid, run_id, status, prompt_version) "
            "VALUES (%s, %s, %s, %s, %s, 'preparing', %s)",
            (task["id_task"], model["id_ai_model"], claim, operation, run_id, version),
        )
        id_ai_batch = int(db.last_insert_id)
        claimed = task_item.claim_for_batch(
            db,
            int(task["id_task"]),
            id_ai_batch,
            claim,
            count,
            settings.ai_max_attempts,
            settings.ai_claim_timeout_s,
            ai_operation.LOCK_PREFIXES,
        )
        if not claimed:
            db.rollback()
            return None
        db.execute("UPDATE ai_batch SET item_count=%s WHERE id_ai_batch=%s", (claimed, id_ai_batch))
        db.commit()
        return id_ai_batch

    id_ai_batch = retry_on_deadlock(work, db=db)
    if id_ai_batch is None:
        return None
    faults.checkpoint("ai_batch.prepared")
    return get_batch(db, id_ai_batch)


def _store_reused(
    db: MySQL,
    settings: Settings,
    task: dict[str, Any],
    batch: dict[str, Any],
    operation: str,
    stats: AiStats,
) -> None:
    """Pozycje, których tekst ma już wynik w zadaniu, dostają go od razu (koszt 0) i wychodzą z batcha."""
    by_hash = task_item.batch_items_by_hash(db, batch["id_ai_batch"], batch["claim_uuid"])
    hashes = sorted(h for h in by_hash if h)
    reusable: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(hashes), TEXT_CHUNK):
        reusable.update(
            task_item.stored_results(db, int(task["id_task"]), hashes[start : start + TEXT_CHUNK])
        )
    hash_of = hash_function(task.get("hash_method") or "sha256")
    for original_hash, (text, summary) in reusable.items():
        ids = by_hash[original_hash]
        original = task_item.item_texts(db, ids[:1]).get(ids[0]) or ""
        changed = task_item.store_ai_result(
            db,
            ids,
            operation,
            original_hash,
            text,
            hash_text(text, hash_of),
            summary,
            0,
            0,
            0,
            claim=batch["claim_uuid"],
            prompt_version=batch.get("prompt_version"),
            flags=guardrails.task_answer_flags(task, settings, original, text),
        )
        stats.reused += changed
        stats.skipped += changed
    db.commit()


def write_requests(
    db: MySQL,
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    batch: dict[str, Any],
    out: IO[bytes],
) -> int:
    """Pisze plik JSONL batcha z różnych tekstów pozycji wciąż czekających w batchu.

    Krótkie teksty jadą w paczkach (``ai_pack``: ``AI_PACK_ITEMS`` / ``AI_PACK_CHARS`` albo
    ``ai_model.pack_*``), jak online; linia z jednym tekstem ma ``custom_id`` ``h:<hash>``, linia
    z paczką ``p:<n>`` - jej teksty są w samym pliku wejściowym, z którego korzysta odbiór. Plik
    zależy tylko od pozycji batcha, więc odzyskiwanie buduje go tak samo.

    Args:
        db: Połączenie.
        settings: Ustawienia.
        task: Wiersz zadania (akcja, języki).
        model: Wiersz ``ai_model`` batcha.
        batch: Wiersz ``ai_batch``.
        out: Plik binarny do zapisu.

    Returns:
        Liczba linii (zapytań).
    """
    by_hash = task_item.batch_items_by_hash(db, batch["id_ai_batch"], batch["claim_uuid"])
    leaders = {original_hash: ids[0] for original_hash, ids in by_hash.items()}
    action = task.get("ai_action") or "correct"
    language = (model.get("system_prompt"), task.get("source_lang"), task.get("target_lang"))
    max_items, max_chars = ai_pack.pack_limits(settings, model)
    lines = 0
    entries = list(leaders.items())
    for start in range(0, len(entries), TEXT_CHUNK):
        part = entries[start : start + TEXT_CHUNK]
        texts = task_item.item_texts(db, [id_item for _hash, id_item in part])
        members = [(original_hash, texts[id_item]) for original_hash, id_item in part]
        for pack in ai_pack.plan_packs(members, lambda member: member[1], max_items, max_chars):
            if len(pack) == 1:
                key = custom_id(pack[0][0])
                messages = prompts.build_messages(pack[0][1], action, *language)
                shape = ai_client.SINGLE
            else:
                key = f"p:{lines}"
                messages = ai_pack.build_pack_messages([text for _hash, text in pack], action, *language)
                shape = ai_client.PACK
            line = {
                "custom_id": key,
                "method": "POST",
                "url": BATCH_ENDPOINT,
                "body": ai_client.request_body(model, messages, BATCH_RESPONSE_FORMAT, settings, shape),
            }
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
            lines += 1
    db.commit()
    return lines


def request_texts(line: dict[str, Any]) -> list[str]:
    """Teksty linii pliku wejściowego batcha (jeden albo paczka), w kolejności identyfikatorów paczki."""
    content = line["body"]["messages"][-1]["content"]
    if str(line.get("custom_id", "")).startswith("p:"):
        return [entry["text"] for entry in json.loads(content)]
    return [content]


def _submit(
    db: MySQL,
    client: openai.OpenAI,
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    batch: dict[str, Any],
    operation: str,
    stats: AiStats,
) -> None:
    """Prowadzi batch od ``preparing``/``uploaded`` do ``submitted`` (każdy krok zapisany od razu).

    Raises:
        AiError: Dostawca odrzucił plik albo batch (pozycje wróciły do kolejki) albo jest
            nieosiągalny (batch czeka na odzyskanie w kolejnym runie).
    """
    id_ai_batch = batch["id_ai_batch"]
    # Plik wysłany przez ten run: batcha na pewno jeszcze nie ma, lista u dostawcy zbędna.
    just_uploaded = False
    if batch["status"] == "preparing":
        if int(batch["attempts"] or 0) > 0:
            # Dokończenie po awarii: plik mógł zostać wysłany przed zapisem jego id.
            try:
                stats.orphan_files_deleted += delete_orphan_uploads(client, batch["claim_uuid"])
            except openai.APIError as exc:
                _submit_failed(db, client, batch, exc, "sprzątanie osieroconego pliku")
        _store_reused(db, settings, task, batch, operation, stats)
        with tempfile.TemporaryFile() as handle:
            lines = write_requests(db, settings, task, model, batch, handle)
            if lines == 0:
                update_batch(db, id_ai_batch, status="ingested", ingested_at="NOW()", finished_at="NOW()")
                return
            handle.seek(0)
            try:
                uploaded = client.files.create(
                    file=(f"ailexia-{batch['claim_uuid']}.jsonl", handle, "application/jsonl"),
                    purpose="batch",
                )
            except openai.APIError as exc:
                _submit_failed(db, client, batch, exc, "wysyłka pliku")
                raise AssertionError("nieosiągalne") from exc
        faults.checkpoint("ai_batch.uploaded")
        update_batch(db, id_ai_batch, status="uploaded", input_file_id=uploaded.id, request_count=lines)
        batch = get_batch(db, id_ai_batch) or batch
        db.commit()
        just_uploaded = True
    try:
        found = None if just_uploaded else find_provider_batch(client, batch["claim_uuid"])
        if found is None:
            faults.checkpoint("ai_batch.before_create")
            found = client.batches.create(
                input_file_id=batch["input_file_id"],
                endpoint=BATCH_ENDPOINT,
                completion_window=COMPLETION_WINDOW,
                metadata={METADATA_KEY: batch["claim_uuid"], "id_task": str(task["id_task"])},
            )
            faults.checkpoint("ai_batch.created")
        else:
            stats.batches_found += 1
            log.info("batch %s: znaleziony u dostawcy (%s) - nie tworzę drugiego", id_ai_batch, found.id)
    except openai.APIError as exc:
        _submit_failed(db, client, batch, exc, "utworzenie batcha")
    update_batch(
        db,
        id_ai_batch,
        status="submitted",
        provider_batch_id=found.id,
        provider_status=found.status,
        submitted_at="NOW()",
        error=None,
    )
    stats.batches_submitted += 1
    stats.requests_sent += int(batch["request_count"] or 0)
    log.info(
        "zadanie %s: batch %s wysłany (%s, %s zapytań, %s pozycji)",
        task["id_task"],
        id_ai_batch,
        found.id,
        batch["request_count"],
        batch["item_count"],
    )


def _submit_failed(
    db: MySQL, client: openai.OpenAI, batch: dict[str, Any], exc: BaseException, step: str
) -> None:
    """Błąd wysyłki: odrzucenie (4xx) porzuca batch, błąd przejściowy zostawia go do odzyskania.

    Raises:
        AiError: Zawsze.
    """
    message = f"batch {batch['id_ai_batch']}: {step} nie powiodła się: {api_message(exc, client)}"
    db.rollback()
    if _is_definitive(exc):
        abandon(db, batch, message)
        raise AiError(f"{message} - pozycje wróciły do kolejki") from None
    update_batch(db, batch["id_ai_batch"], error=message[:4000])
    raise AiError(f"{message} - batch zostanie dokończony przez kolejny run zadania") from None


def _recover(db: MySQL, settings: Settings, task: dict[str, Any], operation: str, stats: AiStats) -> None:
    """Dokańcza batche zadania w ``preparing``/``uploaded``, których właściciel nie żyje."""
    rows = db.query(
        "SELECT id_ai_batch FROM ai_batch WHERE id_task=%s AND status IN ('preparing','uploaded') ORDER BY id_ai_batch",
        (task["id_task"],),
    )
    db.commit()
    for row in rows:
        if not take_over(db, row["id_ai_batch"], operation, ("preparing", "uploaded")):
            continue
        batch = get_batch(db, row["id_ai_batch"])
        assert batch is not None
        model = load_model(db, batch["id_ai_model"])
        db.commit()
        log.info(
            "zadanie %s: dokańczam batch %s (%s)", task["id_task"], batch["id_ai_batch"], batch["status"]
        )
        stats.batches_recovered += 1
        _submit(db, ai_client.model_client(settings, model), settings, task, model, batch, operation, stats)


def run_submit(
    settings: Settings,
    task: dict[str, Any],
    model: dict[str, Any],
    *,
    run_id: str | None = None,
    should_stop: Any = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run AI zadania w trybie batch: dokończenie porzuconych wysyłek i nowe batche z pozycji do zrobienia.

    Args:
        settings: Ustawienia (``AI_BATCH_MAX_ITEMS``, ``AI_MAX_ATTEMPTS``, ``AI_CLAIM_TIMEOUT_S``).
        task: Wiersz zadania.
        model: Wiersz ``ai_model`` zadania.
        run_id: Run Dagstera (``run_log``, ``ai_batch.run_id``).
        should_stop: Funkcja zwracająca powód zatrzymania albo ``None`` (sprawdzana przed każdym batchem).
        limit: Najwyżej tyle pozycji w nowych batchach tego runu.

    Returns:
        Statystyki: claimed, reused, batches_submitted, batches_recovered, batches_found,
        requests_sent, id_ai_batch (ostatni), operation_uuid, ...

    Raises:
        AiError: Dostawca odrzucił wysyłkę albo jest nieosiągalny.
    """
    stats = AiStats(mode="batch")
    id_task = int(task["id_task"])
    max_items = max(1, settings.ai_batch_max_items)

    def body(control: MySQL, operation: str) -> AiStats:
        _recover(control, settings, task, operation, stats)
        client = ai_client.model_client(settings, model)
        while True:
            if should_stop is not None:
                stats.stopped = should_stop()
                if stats.stopped:
                    break
            count = max_items if limit is None else min(max_items, limit - stats.claimed)
            if count <= 0:
                break
            batch = _open_batch(control, settings, task, model, operation, run_id, count)
            if batch is None:
                break
            stats.claimed += int(batch["item_count"])
            stats.id_ai_batch = batch["id_ai_batch"]
            _submit(control, client, settings, task, model, batch, operation, stats)
        stats.operation_uuid = operation
        log.info(
            "zadanie %s: koniec wysyłki batch - pozycje zarezerwowane %s, batch %s",
            id_task,
            stats.claimed,
            stats.id_ai_batch or "żaden",
        )
        return stats

    return ai_operation.run_ai_operation(settings, id_task, run_id, stats, body)


# --- anulowanie ---------------------------------------------------------------------------


def cancel_batch(settings: Settings, id_ai_batch: int) -> str:
    """Anuluje batch na żądanie operatora.

    Batch wysłany: ``batches.cancel`` u dostawcy; gdy anulowanie się skończy, sensor (albo
    ``ai.py --collect``) zapisze wyniki, które zdążyły powstać, a resztę pozycji odda do kolejki.
    Batch jeszcze niewysłany (run wysyłki nie żyje): jeśli mimo to istnieje u dostawcy (metadane),
    jest anulowany tak samo; inaczej porzucony od razu.

    Args:
        settings: Ustawienia.
        id_ai_batch: Batch.

    Returns:
        Komunikat dla operatora.

    Raises:
        UsageError: Nieznany batch albo batch właśnie wysyłany przez żywy run.
        AiError: Dostawca odrzucił anulowanie.
    """
    operation = str(uuid.uuid4())
    lock_db = connect_local(settings, autocommit=True)
    db = connect_local(settings, autocommit=True)
    try:
        lock_db.query_value("SELECT GET_LOCK(%s, 0)", (ai_operation.LOCK_PREFIX + operation,))
        batch = get_batch(db, id_ai_batch)
        if batch is None:
            raise UsageError(f"batch {id_ai_batch} nie istnieje w tabeli ai_batch")
        if batch["status"] in ("ended", "ingested", "abandoned"):
            return f"batch {id_ai_batch} już się skończył ({batch['status']}, {batch['provider_status']}) - nic do anulowania"
        model = load_model(db, batch["id_ai_model"])
        client = ai_client.model_client(settings, model)
        if batch["status"] in ("preparing", "uploaded"):
            if not take_over(db, id_ai_batch, operation, ("preparing", "uploaded")):
                raise UsageError(
                    f"batch {id_ai_batch} jest właśnie wysyłany przez inny run - spróbuj za chwilę"
                )
            found = (
                find_provider_batch(client, batch["claim_uuid"]) if batch["status"] == "uploaded" else None
            )
            if found is None:
                released = abandon(db, batch, "batch anulowany przez operatora przed wysłaniem")
                return f"batch {id_ai_batch} anulowany przed wysłaniem: {released} pozycji wraca do kolejki"
            update_batch(
                db, id_ai_batch, status="submitted", provider_batch_id=found.id, submitted_at="NOW()"
            )
            batch = get_batch(db, id_ai_batch) or batch
        try:
            cancelled = client.batches.cancel(batch["provider_batch_id"])
        except openai.APIError as exc:
            raise AiError(f"batch {id_ai_batch}: anulowanie odrzucone: {api_message(exc, client)}") from None
        update_batch(db, id_ai_batch, cancel_requested=1, provider_status=cancelled.status)
        return (
            f"batch {id_ai_batch} ({batch['provider_batch_id']}): anulowanie zlecone ({cancelled.status}); "
            "pozycje wrócą do kolejki, gdy batch się zakończy i zostanie odebrany"
        )
    finally:
        db.close()
        lock_db.close()
