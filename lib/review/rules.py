"""Reguły przeglądu: kiedy decyzja człowieka o pozycji jest dozwolona i kiedy można ją cofnąć.

Jedno miejsce dla powodów odmowy (``refusal_reason``, ``undo_refusal``, ``changed_since_shown``),
wersji pozycji pokazanej człowiekowi (``item_version``), opisu stanu pozycji i sprawdzenia
nazwy recenzenta. Funkcje dostają wiersze ``task_item`` (słowniki) i nie dotykają bazy; terminal
(``review.py``) i strona przeglądu odmawiają tymi samymi zdaniami.
"""

from typing import Any

from lib.errors import UsageError

ITEM_STATUSES = ("pending", "processed", "accepted", "rejected", "exported", "conflict", "outdated")
DECISIONS = ("accepted", "rejected")


def check_reviewer(by: str | None) -> str:
    """Sprawdza nazwę osoby decydującej (``approved_by``) i zwraca ją bez spacji na brzegach.

    Raises:
        UsageError: Gdy nazwa jest pusta albo dłuższa niż 64 znaki.
    """
    by = (by or "").strip()
    if not by or len(by) > 64:
        raise UsageError("--by: podaj, kto decyduje (1-64 znaki)")
    return by


def check_status(status: str | None) -> None:
    """Sprawdza status pozycji podany przez człowieka (``None`` = każdy).

    Raises:
        UsageError: Gdy status nie jest jednym z ``ITEM_STATUSES``.
    """
    if status is not None and status not in ITEM_STATUSES:
        raise UsageError(f"nieznany status pozycji {status!r} (dozwolone: {', '.join(ITEM_STATUSES)})")


def refusal_reason(item: dict[str, Any], decision: str, same_status_ok: bool = False) -> str | None:
    """Sprawdza, czy pozycję można oznaczyć decyzją człowieka; zwraca powód odmowy albo ``None``.

    Akceptacja wymaga aktualnej korekty: pozycja nieusunięta, przetworzona przez AI, bez zmiany
    tekstu w źródle po korekcie. Pozycję w konflikcie można zaakceptować ponownie (eksport
    sprawdzi źródło jeszcze raz). Wyeksportowanej nie można już ani zaakceptować, ani odrzucić.

    Args:
        item: Wiersz ``task_item`` (status, deleted_at, is_changed, text_corrected,
            processed_at, verified_at).
        decision: ``accepted`` albo ``rejected``.
        same_status_ok: ``True`` pozwala na pozycję, która już ma ten status (poprawka tekstu
            pozycji już zaakceptowanej przed eksportem).

    Returns:
        Powód odmowy (po polsku) albo ``None``, gdy decyzja jest dozwolona.
    """
    status = item["status"]
    if item.get("deleted_at") is not None:
        return "wiersz został usunięty ze źródła"
    if status == decision and not same_status_ok:
        return f"pozycja ma już status {status}"
    if status == "exported":
        return "pozycja jest już wyeksportowana do źródła"
    if status == "outdated":
        return "nieaktualna: tekst w źródle zmienił się po korekcie (czeka na ponowne przetworzenie przez AI)"
    if status == "pending" or item.get("text_corrected") is None:
        return "pozycja nie została jeszcze przetworzona przez AI"
    if decision == "accepted" and item.get("is_changed"):
        # is_changed zostaje 1 po zmianie w źródle; korekta zrobiona później dotyczy już nowego tekstu.
        processed, verified = item.get("processed_at"), item.get("verified_at")
        if processed is None or verified is None or processed <= verified:
            return "tekst w źródle zmienił się po korekcie (is_changed=1); zsynchronizuj i przetwórz ponownie"
    return None


def item_version(row: dict[str, Any]) -> str:
    """Wersja wiersza pozycji (``row_updated_at`` z mikrosekundami) pokazana człowiekowi.

    Decyzja podjęta na podstawie starszej wersji jest odmawiana: człowiek nie zatwierdza
    tekstu, którego nie widział.
    """
    value = row.get("row_updated_at")
    return value.isoformat() if value is not None else ""


def describe_state(row: dict[str, Any]) -> str:
    """Krótki opis obecnego stanu pozycji (status i kto zdecydował), np. ``accepted (anna)``."""
    who = f" ({row['approved_by']})" if row.get("approved_by") and row["status"] != "processed" else ""
    return f"{row['status']}{who}"


def changed_since_shown(row: dict[str, Any], shown: str | None) -> str | None:
    """Powód odmowy, gdy pozycja zmieniła się od wyświetlenia (albo nie była wyświetlona)."""
    if shown is None:
        return "pozycja nie była wyświetlona w tej sesji - odśwież stronę"
    if item_version(row) != shown:
        return f"pozycja zmieniła się od wyświetlenia (teraz: {describe_state(row)}) - sprawdź ją jeszcze raz"
    return None


def undo_refusal(entry: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    """Powód, dla którego wpisu dziennika nie można cofnąć, albo ``None``.

    Cofnięcie jest dozwolone tylko wtedy, gdy pozycja jest nadal w stanie, w jakim zostawiła ją
    ta decyzja (status, hash tekstu, kto zdecydował) - inaczej cofnięcie nadpisałoby cudzą
    decyzję, nową korektę AI albo eksport.
    """
    if (
        row is None
        or row["status"] != entry["status_after"]
        or row["local_hash"] != entry["hash_after"]
        or row["approved_by"] != entry["reviewer"]
    ):
        state = describe_state(row) if row else "usunięta"
        return f"nie można cofnąć: pozycja zmieniła się po tej decyzji (teraz: {state})"
    return None
