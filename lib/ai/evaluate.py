"""Ewaluacja modeli na zestawie JSONL (``python ai.py --eval FILE.jsonl --model NAME``).

Zestaw idzie tą samą drogą co zadanie: ten sam klient (``lib.ai.client``: wykrywanie formatu
odpowiedzi, ponowienia, naprawa), te same prompty, paczki (``lib.ai.packs``: limity
``AI_PACK_*``/``ai_model.pack_*``, pozycja zła w paczce wysyłana sama) i ta sama walidacja
odpowiedzi. Nic nie jest zapisywane w ``task`` ani ``task_item``; każdy przebieg modelu trafia do
tabeli ``ai_eval``. Liczby liczy ``lib.ai.quality.score``.
"""

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from lib.ai import client as ai_client
from lib.ai import cost as ai_cost
from lib.ai import packs as ai_pack
from lib.ai import prompts
from lib.ai.quality import score
from lib.ai.quality.evalset import EvalItem, load_eval_set
from lib.db_local import MySQL, connect_local
from lib.db_utils import get_logger
from lib.errors import AiItemError, UsageError
from lib.load_config import Settings

log = get_logger("ai")


@dataclass
class _Answer:
    """Odpowiedź na jedną pozycję zestawu: tekst (``None`` = błąd), koszt i czas odpowiedzi."""

    text: str | None
    cost: Decimal
    latency_s: float


def _group_key(item: EvalItem) -> tuple[str, str | None, str | None]:
    """Pozycje z tą samą akcją i językami mają ten sam prompt - tylko takie jadą w jednej paczce."""
    return item.action, item.source_lang, item.target_lang


def _send_alone(client: Any, model: dict, settings: Settings, state: dict, item: EvalItem) -> _Answer:
    """Jeden tekst jednym zapytaniem (``ai_client.complete``, z próbą naprawy)."""
    messages = prompts.build_messages(
        item.text, item.action, model.get("system_prompt"), item.source_lang, item.target_lang
    )
    started = time.monotonic()
    try:
        result = ai_client.complete(client, model, messages, settings, state, item.text)
    except AiItemError as exc:
        log.info("eval %s: %s", item.id, exc)
        return _Answer(None, Decimal(0), time.monotonic() - started)
    cost = ai_cost.compute_cost(result.tokens_input, result.tokens_cached, result.tokens_output, model)
    return _Answer(result.text, cost, time.monotonic() - started)


def _send_pack(
    client: Any, model: dict, settings: Settings, state: dict, pack: list[EvalItem]
) -> list[_Answer]:
    """Paczka tekstów jednym zapytaniem; rachunek dzielony po znakach, złe pozycje wysyłane same."""
    if len(pack) == 1:
        return [_send_alone(client, model, settings, state, pack[0])]
    first = pack[0]
    texts = [item.text for item in pack]
    messages = ai_pack.build_pack_messages(
        texts, first.action, model.get("system_prompt"), first.source_lang, first.target_lang
    )
    started = time.monotonic()
    try:
        raw = ai_client.request_pack(client, model, messages, settings, state)
    except AiItemError as exc:
        log.info("eval: paczka %s pozycji: %s - wysyłam pojedynczo", len(pack), exc)
        return [_send_alone(client, model, settings, state, item) for item in pack]
    latency = time.monotonic() - started
    cost = ai_cost.compute_cost(raw.tokens_input, raw.tokens_cached, raw.tokens_output, model)
    answers, problems = ai_pack.parse_pack(raw.content, texts)
    shares = ai_cost.split_bill(
        raw.tokens_input, raw.tokens_cached, raw.tokens_output, cost, [len(t) for t in texts]
    )
    results = []
    for position, item in enumerate(pack):
        if position in answers:
            results.append(_Answer(answers[position]["text"], shares[position].cost, latency))
            continue
        alone = _send_alone(client, model, settings, state, item)
        results.append(_Answer(alone.text, alone.cost + shares[position].cost, latency + alone.latency_s))
    return results


def _prompt_version(model: dict, items: list[EvalItem]) -> str:
    """Wersja promptu przebiegu: jedna kombinacja akcji i języków - jej wersja, kilka - hash ich wersji."""
    versions = sorted({prompts.prompt_version(a, model, s, t) for a, s, t in {_group_key(i) for i in items}})
    if len(versions) == 1:
        return versions[0]
    return prompts.prompt_version("correct", {**model, "system_prompt": "|".join(versions)})


def evaluate_model(
    settings: Settings,
    model: dict[str, Any],
    items: list[EvalItem],
    progress: Callable[[int, int], None] | None = None,
) -> score.ModelResult:
    """Przepuszcza zestaw przez model i liczy jego wynik.

    Args:
        settings: Ustawienia (``AI_CONCURRENCY``, ``AI_PACK_*``, ponowienia, klucze).
        model: Wiersz ``ai_model``.
        items: Pozycje zestawu.
        progress: Wołana ``(gotowe, wszystkie)`` po każdej paczce.

    Returns:
        ``score.ModelResult`` (nazwa modelu = ``ai_model.name``).

    Raises:
        AiError: Błąd całego przebiegu (klucz odrzucony, nieznany model).
    """
    base_url, api_key = ai_client.resolve_endpoint(settings, model)
    client = ai_client.make_client(base_url, api_key, float(settings.ai_timeout_s))
    state = ai_client.make_capability_state(None)
    max_items, max_chars = ai_pack.pack_limits(settings, model)
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(_group_key(item), []).append(index)
    packs = [
        pack
        for indexes in groups.values()
        for pack in ai_pack.plan_packs(indexes, lambda i: items[i].text, max_items, max_chars)
    ]
    answers: dict[int, _Answer] = {}
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, settings.ai_concurrency)) as pool:
        futures = [
            (pack, pool.submit(_send_pack, client, model, settings, state, [items[i] for i in pack]))
            for pack in packs
        ]
        for pack, future in futures:
            for index, answer in zip(pack, future.result(), strict=True):
                answers[index] = answer
            done += len(pack)
            if progress is not None:
                progress(done, len(items))
    outcomes = [
        score.ItemOutcome(
            text=item.text,
            references=item.references,
            answer=answers[index].text,
            categories=item.categories,
            action=item.action,
            cost_usd=float(answers[index].cost),
            latency_s=round(answers[index].latency_s, 4),
        )
        for index, item in enumerate(items)
    ]
    result = score.aggregate(model["name"], _prompt_version(model, items), outcomes)
    # Suma kosztów pozycji (float) bez szumu zaokrągleń: kwoty pozycji mają 6 miejsc (jak task_item.cost_usd).
    result.cost_usd = round(result.cost_usd, 6)
    for name in ("latency_p50_s", "latency_p95_s"):
        value = getattr(result, name)
        setattr(result, name, None if value is None else round(value, 4))
    return result


def load_models(db: MySQL, names: list[str]) -> list[dict[str, Any]]:
    """Wiersze ``ai_model`` po nazwach (kolejność jak podana).

    Raises:
        UsageError: Nieznana nazwa modelu.
    """
    models = []
    for name in names:
        row = db.query_one("SELECT * FROM ai_model WHERE name=%s", (name,))
        if row is None:
            raise UsageError(f"nieznany model {name!r} (ai_model.name)")
        models.append(row)
    return models


def record_eval(
    db: MySQL, set_name: str, path: str, model: dict[str, Any], result: score.ModelResult, started: Any
) -> int:
    """Zapisuje przebieg w ``ai_eval``; zwraca id wiersza."""
    db.execute(
        "INSERT INTO ai_eval (set_name, set_path, id_ai_model, model_name, model, prompt_version, items, failed, "
        "f05, chrf, cost_usd, figures, started_at, finished_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NOW(3))",
        (
            set_name,
            path[:1024],
            model["id_ai_model"],
            model["name"],
            model["model"],
            result.prompt_version,
            result.items,
            result.failed,
            None if result.f05 is None else round(result.f05, 4),
            None if result.chrf is None else round(result.chrf, 3),
            round(result.cost_usd, 6),
            json.dumps(result.to_dict(), ensure_ascii=False),
            started,
        ),
    )
    return int(db.last_insert_id)


def run_eval(
    settings: Settings,
    path: str,
    model_names: list[str],
    limit: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Ewaluacja zestawu ``path`` na modelach ``model_names``; każdy przebieg zapisany w ``ai_eval``.

    Args:
        settings: Ustawienia.
        path: Plik JSONL zestawu (``lib.ai.quality.evalset``).
        model_names: Nazwy modeli (``ai_model.name``).
        limit: Tylko pierwsze ``limit`` pozycji zestawu.
        progress: Wołana ``(model, gotowe, wszystkie)``.

    Returns:
        Raport ``score.eval_report`` (kształt pliku ``--json``) z dodatkowym ``id_ai_eval`` w wynikach.

    Raises:
        UsageError: Zły plik zestawu albo nieznany model.
        AiError: Błąd całego przebiegu modelu.
    """
    items = load_eval_set(path)
    if limit:
        items = items[:limit]
    set_name = Path(path).name.removesuffix(".jsonl")
    with connect_local(settings, autocommit=True) as db:
        models = load_models(db, model_names)
    results, ids = [], []
    for model in models:
        with connect_local(settings, autocommit=True) as db:
            started = db.query_value("SELECT NOW(3)")
        report = None if progress is None else (lambda done, total, m=model["name"]: progress(m, done, total))
        result = evaluate_model(settings, model, items, report)
        with connect_local(settings, autocommit=True) as db:
            ids.append(record_eval(db, set_name, str(path), model, result, started))
        results.append(result)
    report_dict = score.eval_report(set_name, results)
    for entry, id_eval in zip(report_dict["results"], ids, strict=True):
        entry["id_ai_eval"] = id_eval
    return report_dict


def format_table(report: dict[str, Any]) -> str:
    """Tabela wyników: jeden wiersz na model, potem czułość w kategoriach każdego modelu."""

    def fmt(value: Any, digits: int = 3) -> str:
        return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    head = ["model", "prompt", "items", "tp", "fp", "fn", "P", "R", "F0.5", "unch.chg", "exact", "chrF",
            "cost$", "p50 s", "p95 s", "failed"]  # fmt: skip
    rows = [
        [
            r["model"],
            r["prompt_version"] or "-",
            r["items"],
            r["tp"],
            r["fp"],
            r["fn"],
            fmt(r["precision"]),
            fmt(r["recall"]),
            fmt(r["f05"]),
            fmt(r["unchanged_changed_rate"]),
            fmt(r["exact_match"]),
            fmt(r["chrf"], 1),
            fmt(r["cost_usd"], 4),
            fmt(r["latency_p50_s"], 2),
            fmt(r["latency_p95_s"], 2),
            r["failed"],
        ]  # fmt: skip
        for r in report["results"]
    ]
    widths = [max(len(str(row[n])) for row in [head, *rows]) for n in range(len(head))]
    lines = [f"set: {report['set']}"]
    for row in [head, *rows]:
        lines.append(
            "  ".join(
                str(v).ljust(w) if n < 2 else str(v).rjust(w)
                for n, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in report["results"]:
        if r["per_category"]:
            cats = ", ".join(
                f"{name} {c['recall']:.2f} (n={c['n']})" for name, c in r["per_category"].items()
            )
            lines.append(f"{r['model']} recall per category: {cats}")
    return "\n".join(lines)
