"""Narzędzia wspólne bez dostępu do bazy (nazwa ze specyfikacji): logowanie z maskowaniem sekretów,
reguła hasha tekstu, czas i skracanie tekstu do logów.
"""

import datetime as dt
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from lib.load_config import Settings, secret_values

HASH_METHODS = {"sha256": hashlib.sha256, "md5": hashlib.md5, "sha1": hashlib.sha1}

_MASK = "***"


class SecretMaskFilter(logging.Filter):
    """Filtr logowania, który zastępuje znane sekrety gwiazdkami w każdej linii."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D401 - API logging
        if self.secrets:
            message = record.getMessage()
            masked = mask_secrets(message, self.secrets)
            if masked != message:
                record.msg = masked
                record.args = None
        return True


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Zastępuje w tekście każde wystąpienie sekretu napisem ``***``.

    Args:
        text: Tekst (komunikat, log, wyjątek).
        secrets: Hasła i klucze do ukrycia; puste pomijane.

    Returns:
        Tekst bez sekretów.
    """
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, _MASK)
    return text


_masking_filter = SecretMaskFilter([])


def register_secrets(secrets: Iterable[str]) -> None:
    """Dopisuje sekrety do globalnego filtra maskującego logi (hasła źródeł, klucze API).

    Args:
        secrets: Wartości, które nigdy nie mogą trafić do logu.
    """
    merged = set(_masking_filter.secrets) | {s for s in secrets if s and len(s) >= 3}
    _masking_filter.secrets = sorted(merged, key=len, reverse=True)


def setup_logging(settings: Settings, script_name: str) -> logging.Logger:
    """Konfiguruje logowanie na konsolę i do pliku ``<LOG_DIR>/<script_name>.log``.

    Wywoływana raz, na brzegu programu (skrypt albo zasób Dagstera). Ponowne wywołanie
    nie dubluje handlerów.

    Args:
        settings: Wynik ``load_config`` (LOG_LEVEL, LOG_FORMAT, LOG_DIR i sekrety).
        script_name: Nazwa pliku logu bez rozszerzenia, np. ``sync`` albo ``ai``.

    Returns:
        Logger ``ailexia``.
    """
    register_secrets(secret_values(settings))
    logger = logging.getLogger("ailexia")
    logger.setLevel(settings.log_level)
    # Bez tego log trafiałby drugi raz przez root logger (np. w Dagsterze).
    logger.propagate = False
    formatter = logging.Formatter(settings.log_format)
    wanted_file = os.path.abspath(os.path.join(settings.log_dir, f"{script_name}.log"))
    current = [h for h in logger.handlers if getattr(h, "_ailexia", False)]
    files = [getattr(h, "baseFilename", None) for h in current]
    if wanted_file in files and all(h.formatter and h.formatter._fmt == settings.log_format for h in current):
        # Już skonfigurowane (np. kolejny tick sensora) - bez ponownego otwierania pliku.
        return logger
    for handler in list(logger.handlers):
        if getattr(handler, "_ailexia", False):
            logger.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler()
    console.setFormatter(formatter)
    console.addFilter(_masking_filter)
    console._ailexia = True  # type: ignore[attr-defined]
    logger.addHandler(console)
    os.makedirs(settings.log_dir, exist_ok=True)
    file_handler = logging.FileHandler(wanted_file, encoding="utf-8")
    file_handler.setFormatter(formatter)
    file_handler.addFilter(_masking_filter)
    file_handler._ailexia = True  # type: ignore[attr-defined]
    logger.addHandler(file_handler)
    return logger


def get_logger(name: str) -> logging.Logger:
    """Zwraca logger w przestrzeni ``ailexia`` (np. ``ailexia.sync``) z filtrem maskującym.

    Args:
        name: Krótka nazwa modułu.

    Returns:
        Logger potomny ``ailexia.<name>``.
    """
    logger = logging.getLogger(f"ailexia.{name}")
    if _masking_filter not in logger.filters:
        logger.addFilter(_masking_filter)
    return logger


def hash_function(method: str) -> Callable[[bytes], Any]:
    """Zwraca konstruktor hashlib dla metody (do szybkich pętli).

    Args:
        method: ``sha256``, ``md5`` albo ``sha1``.

    Returns:
        Funkcja ``hashlib``.

    Raises:
        ValueError: Dla nieznanej metody.
    """
    try:
        return HASH_METHODS[method]
    except KeyError:
        raise ValueError(
            f"nieznana metoda hashowania {method!r} (dozwolone: {', '.join(HASH_METHODS)})"
        ) from None


def hash_text(text: str | None, hash_of: Callable[[bytes], Any]) -> str | None:
    """Reguła hasha tekstu (``original_hash``, ``local_hash``): hash bajtów UTF-8, szesnastkowo.

    Args:
        text: Tekst albo ``None``.
        hash_of: Konstruktor hashlib z ``hash_function``.

    Returns:
        Hash szesnastkowy małymi literami; ``None`` dla ``None`` (pusty napis ma swój hash).
    """
    return None if text is None else hash_of(text.encode("utf-8", "surrogatepass")).hexdigest()


def compute_hash(text: str | None, method: str = "sha256") -> str | None:
    """Liczy hash tekstu metodą o podanej nazwie (``hash_text`` z ``hash_function``).

    Args:
        text: Tekst albo ``None``.
        method: ``sha256`` (domyślnie), ``md5`` albo ``sha1`` (``task.hash_method``).

    Returns:
        Hash szesnastkowy małymi literami; ``None`` dla ``None``.

    Raises:
        ValueError: Dla nieznanej metody.
    """
    if text is None:
        return None
    return hash_text(text, hash_function(method))


def now() -> dt.datetime:
    """Zwraca bieżący czas lokalny bez mikrosekund (zgodny z kolumnami DATETIME)."""
    return dt.datetime.now().replace(microsecond=0)


def monotonic_ms() -> int:
    """Zwraca czas monotoniczny w milisekundach (do pomiaru czasu pracy)."""
    return int(time.monotonic() * 1000)


def shorten(text: str | None, limit: int = 200) -> str:
    """Skraca tekst do podglądu w logach i tabelach (jedna linia).

    Args:
        text: Tekst albo ``None``.
        limit: Maksymalna liczba znaków wyniku.

    Returns:
        Tekst w jednej linii, z wielokropkiem gdy przycięty.
    """
    if text is None:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
