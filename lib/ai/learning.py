"""Faza nauki (``task.status = 'in_learning'``): pilot zadania, jego liczby i decyzja człowieka.

Zadanie z pilotem (``task.ai_pilot_items``, NULL = ``AI_PILOT_ITEMS``; 0 = bez pilota) w pierwszym
runie AI przetwarza tylko próbkę rozłożoną po zadaniu (``task_item.pilot_hashes``: co k-ty różny
tekst w kolejności źródła), a potem czeka na ocenę: ``review.py pilot`` albo panel na stronie
przeglądu. Wstrzymanie reszty to jedna reguła w ``lib/task_item.py`` (``_PILOT_HOLD``): dopóki
zadanie ma otwartego pilota, AI bierze tylko jego pozycje - w rezerwacjach runu, w batchu,
w sensorze i w trybie cron ``ai.py``.

Cykl pilota (tabela ``ai_pilot``): ``running`` (pozycje w pracy) -> ``in_learning`` (wszystkie
przetworzone albo porzucone, zadanie ``in_learning``) -> ``approved`` (reszta zadania wraca do
zwykłego AI) albo ``redone`` (pozycje wracają do ``pending`` pod nowym pilotem, opcjonalnie z innym
modelem). Wiersze zamkniętych pilotów zostają jako historia z liczbami z chwili decyzji.
"""

import json
from decimal import Decimal
from typing import Any

from lib import task_item
from lib.ai import prompts
from lib.ai.quality import score
from lib.db_local import MySQL
from lib.db_utils import get_logger
from lib.errors import UsageError
from lib.load_config import Settings
from lib.task import get_task, lock_task_row

log = get_logger("ai")

# Status zadania w fazie nauki (``task.status``); ``ai.py`` i sensory niczego wtedy nie wysyłają.
IN_LEARNING = "in_learning"
# Decyzje recenzenta, po których tekst końcowy jest tekstem człowieka (``review_log.action``).
_EDIT_ACTIONS = ("edit", "partial")


def pilot_size(task: dict[str, Any], settings: Settings) -> int:
    """Liczba pozycji pilota zadania: ``task.ai_pilot_items`` albo ``AI_PILOT_ITEMS``."""
    value = task.get("ai_pilot_items")
    if value is None:
        value = settings.ai_pilot_items
    return max(0, int(value))


def open_pilot(db: MySQL, id_task: int) -> dict[str, Any] | None:
    """Otwarty pilot zadania (``running`` albo ``in_learning``) albo ``None``."""
    return db.query_one(
        f"SELECT * FROM ai_pilot WHERE id_task=%s AND status IN ({', '.join(['%s'] * 2)}) "
        "ORDER BY id_ai_pilot DESC LIMIT 1",
        (id_task, *task_item.PILOT_OPEN_STATUSES),
    )


def pilot_history(db: MySQL, id_task: int) -> list[dict[str, Any]]:
    """Wszystkie piloty zadania, od najnowszego."""
    return db.query("SELECT * FROM ai_pilot WHERE id_task=%s ORDER BY id_ai_pilot DESC", (id_task,))


def _insert_pilot(db: MySQL, id_task: int, id_model: int, version: str, texts: int) -> int:
    """Nowy wiersz ``ai_pilot`` w stanie ``running``; zwraca jego id."""
    db.execute(
        "INSERT INTO ai_pilot (id_task, id_ai_model, prompt_version, status, texts) VALUES (%s, %s, %s, 'running', %s)",
        (id_task, id_model, version, texts),
    )
    return int(db.last_insert_id)


def start_pilot(db: MySQL, task: dict[str, Any], model: dict[str, Any], settings: Settings) -> int | None:
    """Zakłada pilota przy pierwszym runie AI zadania (gdy ma go mieć); zatwierdza transakcję.

    Pilot powstaje raz: gdy liczba pozycji pilota > 0, zadanie nie miało jeszcze pilota i żadna
    jego pozycja nie ma wyniku AI. Wiersz zadania jest blokowany na czas wyboru, więc dwa runy
    naraz nie założą dwóch pilotów.

    Returns:
        Id otwartego pilota (nowego albo istniejącego) albo ``None``, gdy zadanie go nie ma.
    """
    id_task = int(task["id_task"])
    size = pilot_size(task, settings)
    max_attempts = settings.ai_max_attempts
    try:
        db.begin()
        lock_task_row(db, id_task)
        current = open_pilot(db, id_task)
        if current is not None:
            db.commit()
            return int(current["id_ai_pilot"])
        if size < 1 or db.query_value("SELECT 1 FROM ai_pilot WHERE id_task=%s LIMIT 1", (id_task,)):
            db.commit()
            return None
        # Zadanie z wynikami AI (albo decyzjami o nich) nie dostaje pilota; indeks (id_task, status).
        if db.query_value(
            "SELECT 1 FROM task_item WHERE id_task=%s AND status IN "
            "('processed','accepted','rejected','exported','conflict') LIMIT 1",
            (id_task,),
        ):
            db.commit()
            return None
        hashes, distinct = task_item.pilot_hashes(db, id_task, size, max_attempts)
        if not hashes:
            db.commit()
            return None
        version = prompts.prompt_version(
            task.get("ai_action") or "correct", model, task.get("source_lang"), task.get("target_lang")
        )
        id_pilot = _insert_pilot(db, id_task, int(model["id_ai_model"]), version, len(hashes))
        items = task_item.mark_pilot_items(db, id_task, id_pilot, hashes, max_attempts)
        db.execute("UPDATE ai_pilot SET items=%s WHERE id_ai_pilot=%s", (items, id_pilot))
        db.commit()
    except BaseException:
        db.rollback()
        raise
    log.info(
        "zadanie %s: pilot %s - %s pozycji, %s z %s różnych tekstów; reszta czeka na ocenę pilota",
        id_task,
        id_pilot,
        items,
        len(hashes),
        distinct,
    )
    return id_pilot


def finish_pilot(db: MySQL, id_task: int, settings: Settings) -> str | None:
    """Po runie AI: gdy pozycje otwartego pilota są gotowe, zadanie przechodzi do ``in_learning``.

    Gotowe = żadna pozycja pilota nie czeka już na AI (przetworzona albo porzucona po
    ``AI_MAX_ATTEMPTS``). Status zadania zmienia się tylko z ``completed`` (synchronizacja w toku
    kończy się sama w ``in_learning``: ``lib.task.finish_sync``). Zatwierdza transakcję.

    Returns:
        ``running`` (pilot w toku), ``in_learning`` (czeka na ocenę) albo ``None`` (bez pilota).
    """
    pilot = open_pilot(db, id_task)
    if pilot is None:
        db.commit()
        return None
    if pilot["status"] == "running":
        waiting = task_item.count_pilot_waiting(
            db, id_task, int(pilot["id_ai_pilot"]), settings.ai_max_attempts
        )
        if waiting:
            db.commit()
            return "running"
        figures = pilot_figures(db, id_task, settings, pilot)
        db.execute(
            "UPDATE ai_pilot SET status='in_learning', finished_at=NOW(), cost_usd=%s, projected_cost_usd=%s, "
            "flagged=%s WHERE id_ai_pilot=%s AND status='running'",
            (figures["cost_usd"], figures["projected_cost_usd"], figures["flagged"], pilot["id_ai_pilot"]),
        )
    db.execute("UPDATE task SET status=%s WHERE id_task=%s AND status='completed'", (IN_LEARNING, id_task))
    db.commit()
    log.info(
        "zadanie %s: pilot %s gotowy - zadanie czeka na ocenę (in_learning)", id_task, pilot["id_ai_pilot"]
    )
    return IN_LEARNING


def _reviewer_edits(db: MySQL, ids: list[int], since: Any) -> dict[int, str]:
    """Tekst AI pozycji poprawionych przez recenzenta: ``id -> text_before`` pierwszej poprawki od ``since``."""
    if not ids:
        return {}
    rows = db.query(
        "SELECT id_task_item, text_before FROM review_log WHERE id_task_item IN "
        f"({', '.join(['%s'] * len(ids))}) AND action IN ('edit','partial') AND undone_at IS NULL "
        "AND text_before IS NOT NULL AND created_at >= %s ORDER BY id_review_log",
        (*ids, since),
    )
    found: dict[int, str] = {}
    for row in rows:
        found.setdefault(int(row["id_task_item"]), row["text_before"])
    return found


def pilot_figures(
    db: MySQL, id_task: int, settings: Settings, pilot: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Liczby pilota: pozycje, decyzje recenzentów, precyzja edycji, flagi, koszt i koszt prognozowany.

    Precyzja: edycje modelu (oryginał -> odpowiedź AI) porównane z edycjami tekstu końcowego
    recenzenta (przyjęta: odpowiedź AI; poprawiona: tekst człowieka; odrzucona: oryginał), sumy
    TP/FP po ocenionych pozycjach (``lib.ai.quality.score``). ``acceptance_rate`` = przyjęte bez
    zmian / ocenione. Koszt prognozowany = koszt pilota na różny tekst x różne teksty zadania,
    które czekają poza pilotem.

    Args:
        db: Połączenie lokalne.
        id_task: Zadanie.
        settings: Ustawienia (``AI_MAX_ATTEMPTS``).
        pilot: Wiersz ``ai_pilot``; ``None`` = otwarty pilot albo ostatni.

    Raises:
        UsageError: Zadanie nie ma pilota.
    """
    if pilot is None:
        pilot = open_pilot(db, id_task) or next(iter(pilot_history(db, id_task)), None)
    if pilot is None:
        raise UsageError(f"zadanie {id_task} nie ma pilota (task.ai_pilot_items / AI_PILOT_ITEMS = 0)")
    id_pilot = int(pilot["id_ai_pilot"])
    rows = task_item.pilot_items(db, id_task, id_pilot)
    reviewed = [row for row in rows if row["status"] in task_item.REVIEWED_STATUSES]
    edited_text = _reviewer_edits(db, [row["id_task_item"] for row in reviewed], pilot["started_at"])
    counts = score.EditCounts()
    accepted = rejected = edited = 0
    for row in reviewed:
        original = row["text_original"] or ""
        if row["status"] == "rejected":
            rejected += 1
            ai_text, final = row["text_corrected"] or original, original
        elif row["id_task_item"] in edited_text:
            edited += 1
            ai_text, final = edited_text[row["id_task_item"]], row["text_corrected"] or original
        else:
            accepted += 1
            ai_text = final = row["text_corrected"] or original
        counts += score.compare_edits(score.edits(original, ai_text), score.edits(original, final))
    flags: dict[str, int] = {}
    for row in rows:
        for code in json.loads(row["ai_flags"]) if row["ai_flags"] else []:
            flags[code] = flags.get(code, 0) + 1
    cost = sum((Decimal(row["cost_usd"] or 0) for row in rows), Decimal(0))
    texts = len({row["original_hash"] for row in rows}) or int(pilot.get("texts") or 0)
    remaining = task_item.count_waiting_texts(db, id_task, settings.ai_max_attempts, id_pilot)
    per_text = cost / texts if texts else Decimal(0)
    model = db.query_one("SELECT name FROM ai_model WHERE id_ai_model=%s", (pilot["id_ai_model"],))
    return {
        "id_task": id_task,
        "id_ai_pilot": id_pilot,
        "status": pilot["status"],
        "model": model["name"] if model else None,
        "prompt_version": pilot["prompt_version"],
        "items": len(rows),
        "texts": texts,
        "processed": sum(1 for row in rows if row["text_corrected"] is not None),
        "reviewed": len(reviewed),
        "accepted": accepted,
        "rejected": rejected,
        "edited": edited,
        "acceptance_rate": round(accepted / len(reviewed), 4) if reviewed else None,
        "precision": round(score.precision_recall_f(counts)[0], 4) if reviewed else None,
        "tp": counts.tp,
        "fp": counts.fp,
        "flagged": sum(1 for row in rows if row["ai_flags"]),
        "flags": dict(sorted(flags.items())),
        "cost_usd": float(cost),
        "cost_per_text_usd": float(round(per_text, 6)),
        "remaining_texts": remaining,
        "projected_cost_usd": float(round(per_text * remaining, 6)),
        "started_at": str(pilot["started_at"]) if pilot.get("started_at") else None,
        "approved_by": pilot.get("approved_by"),
    }


def _snapshot(db: MySQL, figures: dict[str, Any]) -> None:
    """Zapisuje liczby pilota w jego wierszu ``ai_pilot`` (historia po decyzji)."""
    db.execute(
        "UPDATE ai_pilot SET items=%s, texts=%s, reviewed=%s, accepted=%s, rejected=%s, edited=%s, flagged=%s, "
        "`precision`=%s, cost_usd=%s, projected_cost_usd=%s WHERE id_ai_pilot=%s",
        (
            figures["items"],
            figures["texts"],
            figures["reviewed"],
            figures["accepted"],
            figures["rejected"],
            figures["edited"],
            figures["flagged"],
            figures["precision"],
            figures["cost_usd"],
            figures["projected_cost_usd"],
            figures["id_ai_pilot"],
        ),
    )


def _pilot_to_decide(db: MySQL, id_task: int) -> dict[str, Any]:
    """Otwarty pilot zadania, które czeka na ocenę (z zablokowanym wierszem zadania)."""
    lock_task_row(db, id_task)
    pilot = open_pilot(db, id_task)
    if pilot is None:
        raise UsageError(f"zadanie {id_task} nie ma otwartego pilota")
    if pilot["status"] != IN_LEARNING:
        raise UsageError(
            f"zadanie {id_task}: pilot {pilot['id_ai_pilot']} jeszcze pracuje (status {pilot['status']}) - "
            "oceń go, gdy wszystkie jego pozycje będą przetworzone"
        )
    return pilot


def _back_to_ai_flow(db: MySQL, id_task: int) -> None:
    """Zadanie wraca do zwykłego AI: ``completed`` z nowym ``finished_at`` (sensor AI je podejmie)."""
    db.execute(
        "UPDATE task SET status='completed', finished_at=NOW() WHERE id_task=%s AND status=%s",
        (id_task, IN_LEARNING),
    )


def approve_pilot(db: MySQL, id_task: int, by: str, settings: Settings) -> dict[str, Any]:
    """Zatwierdza pilota: reszta zadania idzie do AI (pozycje pilota nie są wysyłane drugi raz).

    Zadanie dostaje ``completed`` i nowe ``finished_at``, więc ``ai_after_sync_sensor`` zleca run AI
    jak po synchronizacji (``python ai.py --id_task N`` działa od razu). Zatwierdza transakcję.

    Returns:
        Liczby pilota z chwili decyzji.

    Raises:
        UsageError: Zadanie nie ma pilota czekającego na ocenę albo brak ``by``.
    """
    if not by or not by.strip():
        raise UsageError("podaj, kto zatwierdza (--by)")
    try:
        db.begin()
        pilot = _pilot_to_decide(db, id_task)
        figures = pilot_figures(db, id_task, settings, pilot)
        _snapshot(db, figures)
        db.execute(
            "UPDATE ai_pilot SET status='approved', approved_by=%s, approved_at=NOW() WHERE id_ai_pilot=%s",
            (by.strip()[:64], pilot["id_ai_pilot"]),
        )
        _back_to_ai_flow(db, id_task)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    figures.update(status="approved", approved_by=by.strip()[:64])
    return figures


def redo_pilot(
    db: MySQL, id_task: int, by: str, settings: Settings, model_name: str | None = None
) -> dict[str, Any]:
    """Pilot od nowa: pozycje pilota wracają do ``pending`` (opcjonalnie z innym modelem zadania).

    Poprzedni pilot zostaje w historii (``redone``, z liczbami z chwili decyzji); nowy pilot ma
    te same pozycje. Zadanie wraca do ``completed`` z nowym ``finished_at``: sensor AI zleca run,
    który przetworzy tylko pozycje nowego pilota i znowu zatrzyma zadanie w ``in_learning``.

    Returns:
        ``{"previous": liczby poprzedniego pilota, "id_ai_pilot": nowy pilot, "items": pozycje
        oddane, "model": nazwa modelu}``.

    Raises:
        UsageError: Brak pilota do oceny, brak ``by``, nieznany albo wyłączony model.
    """
    if not by or not by.strip():
        raise UsageError("podaj, kto zleca pilota od nowa (--by)")
    try:
        db.begin()
        pilot = _pilot_to_decide(db, id_task)
        task = get_task(db, id_task)
        id_model = task["id_ai_model"]
        if model_name:
            row = db.query_one("SELECT * FROM ai_model WHERE name=%s", (model_name,))
            if row is None:
                raise UsageError(f"nieznany model {model_name!r} (ai_model.name)")
            if row["status"] != "active":
                raise UsageError(f"model {model_name!r} jest wyłączony (ai_model.status={row['status']})")
            id_model = row["id_ai_model"]
        model = db.query_one("SELECT * FROM ai_model WHERE id_ai_model=%s", (id_model,))
        if model is None:
            raise UsageError(f"zadanie {id_task} nie ma modelu AI")
        figures = pilot_figures(db, id_task, settings, pilot)
        _snapshot(db, figures)
        db.execute(
            "UPDATE ai_pilot SET status='redone', redone_by=%s, redone_at=NOW() WHERE id_ai_pilot=%s",
            (by.strip()[:64], pilot["id_ai_pilot"]),
        )
        version = prompts.prompt_version(
            task.get("ai_action") or "correct", model, task.get("source_lang"), task.get("target_lang")
        )
        id_new = _insert_pilot(db, id_task, int(model["id_ai_model"]), version, figures["texts"])
        items = task_item.reset_pilot_items(db, id_task, int(pilot["id_ai_pilot"]), id_new)
        db.execute("UPDATE ai_pilot SET items=%s WHERE id_ai_pilot=%s", (items, id_new))
        db.execute("UPDATE task SET id_ai_model=%s WHERE id_task=%s", (model["id_ai_model"], id_task))
        _back_to_ai_flow(db, id_task)
        # Liczniki decyzji od nowa (pozycje pilota straciły decyzje); zatwierdza całą zmianę naraz.
        task_item.refresh_review_counters(db, id_task)
    except BaseException:
        db.rollback()
        raise
    return {"previous": figures, "id_ai_pilot": id_new, "items": items, "model": model["name"]}


def task_quality(db: MySQL, id_task: int, settings: Settings) -> dict[str, Any]:
    """Liczby jakości zadania do metadanych ``ai_corrections``: flagi, akceptacja, pilot.

    Returns:
        ``flagged`` (pozycje z flagami), ``flags_<kod>``, ``reviewed``, ``approval_rate``
        (zatwierdzone, też po poprawce recenzenta / ocenione) i - gdy zadanie ma pilota - ``pilot_*``.
    """
    rows = db.query(
        "SELECT ai_flags, COUNT(*) AS n FROM task_item WHERE id_task=%s AND ai_flags IS NOT NULL "
        "AND deleted_at IS NULL GROUP BY ai_flags",
        (id_task,),
    )
    quality: dict[str, Any] = {"flagged": sum(int(row["n"]) for row in rows)}
    for row in rows:
        for code in json.loads(row["ai_flags"]):
            quality[f"flags_{code}"] = quality.get(f"flags_{code}", 0) + int(row["n"])
    # Liczniki decyzji przeliczane z pozycji przy każdej decyzji (``refresh_review_counters``):
    # zatwierdzone razem z poprawionymi przez recenzenta.
    task = get_task(db, id_task)
    approved, rejected = int(task.get("records_approved") or 0), int(task.get("records_rejected") or 0)
    quality["reviewed"] = approved + rejected
    if approved + rejected:
        quality["approval_rate"] = round(approved / (approved + rejected), 4)
    pilot = open_pilot(db, id_task) or next(iter(pilot_history(db, id_task)), None)
    if pilot is not None:
        # Pilot zamknięty (zatwierdzony, powtórzony): liczby z chwili decyzji, zapisane w ``ai_pilot``.
        figures = (
            pilot_figures(db, id_task, settings, pilot)
            if pilot["status"] in task_item.PILOT_OPEN_STATUSES
            else pilot
        )
        for key in ("status", "items", "reviewed", "accepted", "edited", "rejected", "precision", "flagged",
                    "cost_usd", "projected_cost_usd"):  # fmt: skip
            if figures.get(key) is not None:
                value = figures[key]
                quality[f"pilot_{key}"] = float(value) if isinstance(value, Decimal) else value
        if figures.get("reviewed"):
            quality["pilot_acceptance_rate"] = round(int(figures["accepted"]) / int(figures["reviewed"]), 4)
    db.commit()
    return quality
