"""Tryb batch AI: odpytywanie batchy u dostawcy i odbiór wyników (zapis w ``task_item``).

* ``poll_batches`` (sensor ``ai_batch_sensor``, ``ai.py --collect``): ``batches.retrieve`` każdego
  batcha ``submitted``; batch zakończony u dostawcy (completed, failed, expired, cancelled) dostaje
  ``ended``. Zwraca pracę do zlecenia: batche do odbioru i porzucone wysyłki do dokończenia.
* ``run_ingest`` (run ``ai_corrections`` z tagiem ``ailexia/ai_batch``): pobiera plik wyników
  i plik błędów i zapisuje każdą linię tą samą walidacją co online (``ai_client.validate_answer``
  dla jednego tekstu, ``ai_pack.parse_pack`` dla paczki: każda pozycja osobno) i tą samą funkcją
  zapisu (``task_item.store_ai_result``, warunkowo: rezerwacja batcha i niezmieniony tekst).
  Koszt liczony po cenach batch modelu (``ai_cost.batch_price_row``); rachunek paczki dzielony po
  znakach (``ai_cost.split_bill``); udział tekstu dostaje pierwsza zapisana pozycja, duplikaty 0,
  więc suma po zapisanych pozycjach = rachunek ich linii. Linie (i pozycje paczek) błędne albo
  niewykonane wracają do kolejki (``pending``) z ``ai_error``; ich udział zostaje tylko w sumie
  batcha (``ai_batch.cost_usd`` = cały rachunek).

Idempotencja: linie zapisywane są partiami w transakcjach (cała linia albo nic); zapis zdejmuje
rezerwację batcha, więc ponowny odbiór po awarii w połowie pomija zapisane pozycje - każdy wynik
i jego koszt są zapisane raz. Sumy batcha (tokeny, koszt) liczone są z całego pliku od nowa.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai

from lib import faults, task_item
from lib.ai import client as ai_client
from lib.ai import cost as ai_cost
from lib.ai import operation as ai_operation
from lib.ai import packs as ai_pack
from lib.ai import prompts
from lib.ai.batch import submit as ai_batch
from lib.ai.quality import guardrails
from lib.ai.stats import AiStats
from lib.db_local import MySQL, connect_local
from lib.db_utils import get_logger, hash_function, hash_text
from lib.errors import AiItemError, UsageError
from lib.load_config import Settings

log = get_logger("ai_batch")

# Linie zapisywane w jednej transakcji.
COMMIT_LINES = 200
# Kody linii, których dostawca nie wykonał (nie z winy pozycji): bez liczenia próby.
NOT_EXECUTED_CODES = ("batch_expired", "batch_cancelled")


def _refresh(db: MySQL, client: openai.OpenAI, batch: dict[str, Any]) -> str | None:
    """Odpytuje jeden batch u dostawcy i zapisuje jego stan; ``ended``, gdy się skończył.

    Returns:
        Status dostawcy albo ``None`` przy błędzie API (zapisanym w ``ai_batch.error``).
    """
    try:
        remote = client.batches.retrieve(batch["provider_batch_id"])
    except openai.APIError as exc:
        ai_batch.update_batch(
            db, batch["id_ai_batch"], error=f"odpytanie: {ai_batch.api_message(exc, client)}"
        )
        return None
    counts = remote.request_counts
    values: dict[str, Any] = {
        "provider_status": remote.status,
        "output_file_id": remote.output_file_id,
        "error_file_id": remote.error_file_id,
        "completed_count": int(counts.completed) if counts else 0,
        "failed_count": int(counts.failed) if counts else 0,
    }
    if remote.status in ai_batch.TERMINAL_STATUSES:
        values.update(status="ended", finished_at="NOW()")
        errors = getattr(remote, "errors", None)
        data = getattr(errors, "data", None) if errors is not None else None
        if data:
            values["error"] = "; ".join(f"{e.code}: {e.message}" for e in data)[:4000]
    ai_batch.update_batch(db, batch["id_ai_batch"], **values)
    return remote.status


def pending_work(db: MySQL, id_task: int | None = None) -> list[dict[str, Any]]:
    """Batche, dla których trzeba zlecić run: ``ingest`` (zakończone) i ``recover`` (porzucona wysyłka).

    Batch, który właśnie obsługuje żywy run (blokada jego operacji zajęta), jest pomijany. Klucz
    runu zawiera licznik przejęć (``attempts``), więc run, który zginął, zostanie zlecony ponownie.

    Returns:
        Słowniki: id_ai_batch, id_task, action, run_key.
    """
    task_filter, params = ("AND id_task=%s ", (id_task,)) if id_task is not None else ("", ())
    prefixes = ai_operation.LOCK_PREFIXES
    rows = db.query(
        "SELECT id_ai_batch, id_task, status, provider_status, attempts FROM ai_batch "
        f"WHERE status IN ('ended','preparing','uploaded') {task_filter}"
        f"AND (operation_uuid IS NULL OR ({task_item.owner_dead_sql('operation_uuid', len(prefixes))})) "
        "ORDER BY id_ai_batch",
        (*params, *prefixes),
    )
    work = []
    for row in rows:
        action = "ingest" if row["status"] == "ended" else "recover"
        state = row["provider_status"] if action == "ingest" else row["status"]
        work.append(
            {
                "id_ai_batch": int(row["id_ai_batch"]),
                "id_task": int(row["id_task"]),
                "action": action,
                "run_key": f"ai-batch-{row['id_ai_batch']}-{state}-{row['attempts']}",
            }
        )
    return work


def poll_batches(settings: Settings, id_task: int | None = None) -> list[dict[str, Any]]:
    """Odpytuje wysłane batche (``batches.retrieve``) i zwraca pracę do zlecenia (``pending_work``).

    Args:
        settings: Ustawienia.
        id_task: Tylko batche tego zadania (``None`` = wszystkie).

    Returns:
        Lista z ``pending_work``.
    """
    db = connect_local(settings, autocommit=True)
    try:
        task_filter, params = ("AND id_task=%s", (id_task,)) if id_task is not None else ("", ())
        rows = db.query(
            f"SELECT * FROM ai_batch WHERE status='submitted' {task_filter} ORDER BY id_ai_batch", params
        )
        clients: dict[int, openai.OpenAI] = {}
        for batch in rows:
            id_model = int(batch["id_ai_model"])
            try:
                if id_model not in clients:
                    clients[id_model] = ai_client.model_client(settings, ai_batch.load_model(db, id_model))
            except Exception as exc:  # brak klucza, model usunięty - pozostałe batche odpytujemy dalej
                ai_batch.update_batch(db, batch["id_ai_batch"], error=f"odpytanie: {exc}"[:4000])
                continue
            status = _refresh(db, clients[id_model], batch)
            if status in ai_batch.TERMINAL_STATUSES:
                log.info(
                    "batch %s (%s) zakończony u dostawcy: %s",
                    batch["id_ai_batch"],
                    batch["provider_batch_id"],
                    status,
                )
        return pending_work(db, id_task)
    finally:
        db.close()


def _lines(client: openai.OpenAI, file_id: str | None) -> Iterator[dict[str, Any]]:
    """Linie pliku JSONL dostawcy (strumieniowo, bez trzymania całego pliku w pamięci)."""
    if not file_id:
        return
    with client.files.with_streaming_response.content(file_id) as response:
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)


def _line_error(entry: dict[str, Any]) -> tuple[str, bool]:
    """Opis błędu linii i czy liczyć próbę pozycji (linia niewykonana przez dostawcę - nie)."""
    error = entry.get("error") or {}
    if error:
        code = error.get("code")
        return f"batch: {code}: {error.get('message')}"[:4000], code not in NOT_EXECUTED_CODES
    response = entry.get("response") or {}
    body = response.get("body") or {}
    message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
    return f"batch: HTTP {response.get('status_code')}: {message or 'błąd zapytania'}"[:4000], True


@dataclass
class _Ingest:
    """Stan jednego odbioru: batch, pozycje czekające po hashu, ceny, sumy rachunku i statystyki."""

    db: MySQL
    batch: dict[str, Any]
    operation: str
    stats: AiStats
    prices: dict[str, Any]
    hash_of: Any
    note: str | None
    waiting: dict[str | None, list[int]]
    # Zadanie i ustawienia: flagi zabezpieczeń odpowiedzi (``guardrails.task_answer_flags``).
    task: dict[str, Any]
    settings: Settings
    totals: dict[str, Any] = field(
        default_factory=lambda: {"tokens_input": 0, "tokens_output": 0, "cost_usd": Decimal(0)}
    )


def _new_ingest(
    db: MySQL,
    settings: Settings,
    task: dict[str, Any],
    batch: dict[str, Any],
    model: dict[str, Any],
    operation: str,
    stats: AiStats,
) -> _Ingest:
    """Stan odbioru: ceny batch modelu, notatka tłumaczenia i pozycje batcha czekające po hashu tekstu."""
    waiting = task_item.batch_items_by_hash(db, batch["id_ai_batch"], batch["claim_uuid"])
    return _Ingest(
        db=db,
        batch=batch,
        operation=operation,
        stats=stats,
        prices=ai_cost.batch_price_row(model),
        hash_of=hash_function(task.get("hash_method") or "sha256"),
        note=prompts.change_note(task),
        waiting=waiting,
        task=task,
        settings=settings,
    )


def _ingest_line(state: _Ingest, texts: list[str], entry: dict[str, Any]) -> None:
    """Jedna linia wyników albo błędów: teksty linii (z pliku wejściowego) i wpis dostawcy."""
    hashes = [hash_text(text, state.hash_of) for text in texts]
    response = entry.get("response") or {}
    if response.get("status_code") != 200 or entry.get("error"):
        message, count_attempt = _line_error(entry)
        for original_hash in hashes:
            _error_group(state, original_hash, message, count_attempt)
        return
    raw = ai_client.read_response(response.get("body") or {})
    cost = ai_cost.compute_cost(raw.tokens_input, raw.tokens_cached, raw.tokens_output, state.prices)
    state.totals["tokens_input"] += raw.tokens_input
    state.totals["tokens_output"] += raw.tokens_output
    state.totals["cost_usd"] += cost
    answers: dict[int, dict[str, Any]] = {}
    problems: dict[int, str] = {}
    if len(texts) == 1:
        try:
            answers[0] = ai_client.validate_answer(raw.content, texts[0])
        except AiItemError as exc:
            problems[0] = str(exc)
        shares = [ai_cost.Share(raw.tokens_input, raw.tokens_cached, raw.tokens_output, cost)]
    else:
        # Paczka: każda pozycja sprawdzana osobno; rachunek dzielony po znakach (suma = rachunek).
        answers, problems = ai_pack.parse_pack(raw.content, texts)
        shares = ai_cost.split_bill(
            raw.tokens_input, raw.tokens_cached, raw.tokens_output, cost, [len(text) for text in texts]
        )
    for position, original_hash in enumerate(hashes):
        if position in answers:
            _store_group(state, original_hash, answers[position], shares[position], texts[position])
        else:
            _error_group(state, original_hash, f"batch: {problems[position]}", True)


def _store_group(
    state: _Ingest, original_hash: str | None, answer: dict[str, Any], share: ai_cost.Share, original: str
) -> None:
    """Zapisuje wynik pozycjom tego tekstu: pierwsza zapisana dostaje udział w rachunku, duplikaty 0."""
    ids = state.waiting.pop(original_hash, [])
    if not ids:
        return  # pozycje tego tekstu już zapisane (ponowny odbiór) albo tekst zmienił się w międzyczasie
    summary = prompts.build_change_summary(answer["edits"], state.note)
    text_hash = hash_text(answer["text"], state.hash_of)
    claim = state.batch["claim_uuid"]
    marks = {
        "prompt_version": state.batch.get("prompt_version"),
        "flags": guardrails.task_answer_flags(state.task, state.settings, original, answer["text"]),
    }
    if marks["flags"]:
        state.stats.flagged += 1
    for index, id_item in enumerate(ids):
        changed = task_item.store_ai_result(
            state.db, [id_item], state.operation, original_hash, answer["text"], text_hash, summary,
            share.tokens_input, share.tokens_output, share.cost, claim=claim, **marks,
        )  # fmt: skip
        if not changed:
            continue
        state.stats.processed += 1
        state.stats.tokens_input += share.tokens_input
        state.stats.tokens_output += share.tokens_output
        state.stats.tokens_cached += share.tokens_cached
        state.stats.cost_usd += share.cost
        if index + 1 < len(ids):
            # Duplikaty tego samego tekstu: ten sam wynik, koszt 0 (jak online).
            reused = task_item.store_ai_result(
                state.db, ids[index + 1 :], state.operation, original_hash, answer["text"], text_hash,
                summary, 0, 0, 0, claim=claim, **marks,
            )  # fmt: skip
            state.stats.reused += reused
            state.stats.skipped += reused
        return


def _error_group(state: _Ingest, original_hash: str | None, message: str, count_attempt: bool) -> None:
    """Linia (albo pozycja paczki) z błędem: pozycje tego tekstu wracają do kolejki z ``ai_error``."""
    changed = task_item.store_batch_error(
        state.db,
        state.batch["id_ai_batch"],
        state.batch["claim_uuid"],
        original_hash,
        message,
        count_attempt,
    )
    state.stats.add(**{"failed" if count_attempt else "released": changed})
    state.waiting.pop(original_hash, None)


def _ingest(
    db: MySQL,
    settings: Settings,
    task: dict[str, Any],
    batch: dict[str, Any],
    operation: str,
    stats: AiStats,
) -> None:
    """Odbiera wyniki zakończonego batcha (wołający go przejął).

    Teksty każdej linii czytane są z pliku wejściowego batcha (``custom_id`` -> teksty), więc
    odbiór nie zależy od tego, co stało się z pozycjami po wysyłce.
    """
    model = ai_batch.load_model(db, batch["id_ai_model"])
    client = ai_client.model_client(settings, model)
    state = _new_ingest(db, settings, task, batch, model, operation, stats)
    db.commit()
    requests = {
        line["custom_id"]: ai_batch.request_texts(line) for line in _lines(client, batch["input_file_id"])
    }
    done = 0
    for file_key in ("output_file_id", "error_file_id"):
        for entry in _lines(client, batch[file_key]):
            texts = requests.get(str(entry.get("custom_id")))
            if texts is None:
                log.warning(
                    "batch %s: linia z nieznanym custom_id %r pominięta",
                    batch["id_ai_batch"],
                    entry.get("custom_id"),
                )
                continue
            _ingest_line(state, texts, entry)
            done += 1
            if done % COMMIT_LINES == 0:
                db.commit()
                faults.checkpoint("ai_batch.ingest_commit")
    db.commit()
    provider = batch["provider_status"]
    leftover_message = (
        f"batch {batch['id_ai_batch']} zakończony ({provider}) bez wyniku dla tej pozycji - wraca do kolejki"
    )
    stats.released += task_item.release_batch_items(
        db, batch["id_ai_batch"], batch["claim_uuid"], leftover_message
    )
    db.execute(
        "UPDATE ai_batch SET status='ingested', ingested_at=NOW(), tokens_input=%s, tokens_output=%s, cost_usd=%s "
        "WHERE id_ai_batch=%s",
        (
            state.totals["tokens_input"],
            state.totals["tokens_output"],
            state.totals["cost_usd"],
            batch["id_ai_batch"],
        ),
    )
    db.commit()
    stats.batch_cost_usd = Decimal(state.totals["cost_usd"])


def run_ingest(
    settings: Settings, task: dict[str, Any], id_ai_batch: int, *, run_id: str | None = None
) -> dict[str, Any]:
    """Run odbioru batcha: odpytanie (gdy jeszcze ``submitted``), przejęcie i zapis wyników.

    Args:
        settings: Ustawienia.
        task: Wiersz zadania batcha.
        id_ai_batch: Batch.
        run_id: Run Dagstera (``run_log``).

    Returns:
        Statystyki: processed, failed, released, reused, tokens_*, cost_usd (koszt zapisany
        w pozycjach przez ten run), batch_cost_usd (rachunek całego batcha), outcome, operation_uuid.

    Raises:
        UsageError: Nieznany batch albo batch innego zadania.
    """
    stats = AiStats(mode="batch", id_ai_batch=id_ai_batch, outcome="completed")
    id_task = int(task["id_task"])

    def body(control: MySQL, operation: str) -> AiStats:
        stats.operation_uuid = operation
        batch = ai_batch.get_batch(control, id_ai_batch)
        control.commit()
        if batch is None or int(batch["id_task"]) != id_task:
            raise UsageError(f"batch {id_ai_batch} nie istnieje albo nie należy do zadania {id_task}")
        if batch["status"] == "submitted":
            model = ai_batch.load_model(control, batch["id_ai_model"])
            _refresh(control, ai_client.model_client(settings, model), batch)
            batch = ai_batch.get_batch(control, id_ai_batch) or batch
            control.commit()
        stats.provider_status = batch["provider_status"]
        if batch["status"] != "ended":
            stats.batch_status = batch["status"]
            log.info(
                "batch %s: nic do odebrania (%s, %s)", id_ai_batch, batch["status"], batch["provider_status"]
            )
            return stats
        if not ai_batch.take_over(control, id_ai_batch, operation, ("ended",)):
            stats.batch_status = "busy"
            log.info("batch %s: odbiera go właśnie inny run", id_ai_batch)
            return stats
        batch = ai_batch.get_batch(control, id_ai_batch) or batch
        control.commit()
        _ingest(control, settings, task, batch, operation, stats)
        stats.batch_status = "ingested"
        log.info(
            "zadanie %s: batch %s odebrany - zapisane %s, błędy %s, zwrócone do kolejki %s, "
            "koszt pozycji %.4f USD, rachunek batcha %.4f USD",
            id_task,
            id_ai_batch,
            stats.processed,
            stats.failed,
            stats.released,
            float(stats.cost_usd),
            float(stats.batch_cost_usd or 0),
        )
        return stats

    return ai_operation.run_ai_operation(settings, id_task, run_id, stats, body)


# END
