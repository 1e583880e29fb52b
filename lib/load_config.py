"""Wczytywanie konfiguracji z pliku ``.env`` i środowiska procesu.

Zmienne środowiska mają pierwszeństwo przed ``.env``. Każda wartość jest walidowana, a błąd
kończy się jednym czytelnym komunikatem z nazwą klucza (``ConfigError``).
"""

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from lib.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"

# Klucz -> (typ, wartość domyślna, opis). Ta tabela jest też źródłem dokumentacji .env.example.
SETTINGS_SPEC: dict[str, tuple[str, Any, str]] = {
    "DB_LOCAL_HOST": ("str", "127.0.0.1", "Host lokalnej bazy MySQL/MariaDB (TCP)"),
    "DB_LOCAL_PORT": ("int", 3306, "Port lokalnej bazy"),
    "DB_LOCAL_USER": ("str", "root", "Użytkownik lokalnej bazy"),
    "DB_LOCAL_PASSWORD": ("secret", "", "Hasło lokalnej bazy"),
    "DB_LOCAL_NAME": ("str", "ailexia", "Nazwa lokalnej bazy"),
    "BATCH_SIZE": ("int", 500, "Rozmiar strony odczytu ze źródła (keyset)"),
    "COMMIT_ROWS": ("int", 10000, "Ile wierszy źródła najwyżej w jednej transakcji lokalnej"),
    "SYNC_WRITERS": (
        "int",
        2,
        "Ile połączeń lokalnych wstawia naraz partie pierwszej synchronizacji (zatwierdzane po kolei)",
    ),
    "SYNC_FINGERPRINT_READERS": (
        "int",
        2,
        "Ile połączeń ze źródłem liczy naraz odciski stron przy resyncu (PostgreSQL; 1 = jedno, po kolei)",
    ),
    "LOG_LEVEL": ("loglevel", "INFO", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    "LOG_FORMAT": ("str", DEFAULT_LOG_FORMAT, "Format linii logu (logging)"),
    "LOG_SQL_QUERIES": ("bool", False, "true = loguj każde zapytanie SQL z parametrami (hasła maskowane)"),
    "LOG_DIR": ("str", "logs", "Katalog plików logów (sync.log, ai.log)"),
    "REMOTE_CONNECT_TIMEOUT": ("int", 10, "Limit czasu połączenia z bazą źródłową (s)"),
    "MSSQL_ODBC_DRIVER": ("str", "ODBC Driver 18 for SQL Server", "Nazwa sterownika ODBC dla mssql"),
    "OPENAI_API_KEY": ("secret", "", "Klucz API (domyślna zmienna ai_model.api_key_env)"),
    "OPENAI_BASE_URL": (
        "str",
        "",
        "Domyślny adres serwera zgodnego z OpenAI (gdy ai_model.base_url jest NULL)",
    ),
    "AI_CONCURRENCY": ("int", 8, "Liczba równoległych zapytań do modelu"),
    "AI_MAX_ATTEMPTS": ("int", 3, "Po tylu nieudanych próbach pozycja czeka na człowieka"),
    "AI_MAX_COST_USD": ("float", 0.0, "Limit kosztu jednego runu AI w USD (0 = bez limitu)"),
    "AI_TIMEOUT_S": ("float", 60.0, "Limit czasu jednego zapytania do modelu (s)"),
    "AI_MAX_RETRIES": ("int", 4, "Ponowienia zapytania przy 429/5xx/timeout"),
    "AI_BACKOFF_S": (
        "float",
        1.0,
        "Podstawa wykładniczego odstępu ponowień (s); Retry-After serwera ma pierwszeństwo",
    ),
    "AI_MODEL_CONCURRENCY": (
        "int",
        32,
        "Najwyżej tyle zapytań naraz do jednego modelu (base_url + model) ze wszystkich runów AI; 0 = bez limitu",
    ),
    "AI_CLAIM_BATCH": ("int", 20, "Ile pozycji zadania AI rezerwuje naraz"),
    "AI_CLAIM_TIMEOUT_S": ("int", 900, "Po tylu sekundach niedokończona rezerwacja może być przejęta"),
    "AI_PACK_ITEMS": (
        "int",
        20,
        "Najwięcej krótkich tekstów w jednym zapytaniu do modelu (1 = jeden tekst na zapytanie); "
        "ai_model.pack_items nadpisuje",
    ),
    "AI_PACK_CHARS": (
        "int",
        4000,
        "Najwięcej znaków tekstów w jednym zapytaniu; tekst dłuższy niż połowa limitu jedzie sam; "
        "ai_model.pack_chars nadpisuje",
    ),
    "AI_PILOT_ITEMS": (
        "int",
        0,
        "Pozycje pilota (faza nauki) zadania bez task.ai_pilot_items; 0 = bez pilota",
    ),
    "AI_MAX_EDIT_RATIO": (
        "float",
        0.3,
        "Zabezpieczenie korekty: odpowiedź zmieniająca większy udział słów dostaje flagę edit_ratio",
    ),
    "AI_BATCH_MAX_ITEMS": ("int", 20000, "Tryb batch: najwięcej pozycji w jednym batchu OpenAI"),
    "DAGSTER_HOME": ("str", ".dagster_home", "Katalog instancji Dagstera (wspólny dla UI i skryptów)"),
    "DAGSTER_WEBSERVER_URL": (
        "str",
        "http://127.0.0.1:3000",
        "Adres webservera Dagstera, przez który sync.py/ai.py --queue wstawiają runy do kolejki",
    ),
    "SENSOR_INTERVAL_S": ("int", 30, "Co ile sekund sensor task_sensor sprawdza tabelę task"),
    "SENSOR_STALE_QUEUED_S": (
        "int",
        600,
        "Po ilu sekundach zadanie queued bez żywego runu jest podejmowane ponownie",
    ),
    "PROGRESS_EVERY_S": (
        "float",
        5.0,
        "Co ile sekund linia postępu (skan, AI, eksport) w logu runu Dagstera i w logu crona (do 10)",
    ),
    "REVIEW_TOKEN": (
        "secret",
        "",
        "Token strony przeglądu (review.py serve); pusty = losowy, wypisany przy starcie",
    ),
}

_TRUE = {"1", "true", "yes", "on", "tak"}
_FALSE = {"0", "false", "no", "off", "nie", ""}
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def _convert(key: str, kind: str, raw: str) -> Any:
    """Zamienia surowy tekst na wartość typu z ``SETTINGS_SPEC``.

    Args:
        key: Nazwa klucza (do komunikatu błędu).
        kind: Typ: str, secret, int, float, bool, loglevel.
        raw: Wartość tekstowa z .env lub środowiska.

    Returns:
        Wartość po konwersji.

    Raises:
        ConfigError: Gdy wartości nie da się zinterpretować.
    """
    value = raw.strip()
    if kind in ("str", "secret"):
        return value
    if kind in ("int", "float"):
        convert, expected = (int, "liczby całkowitej") if kind == "int" else (float, "liczby")
        try:
            number = convert(value)
        except ValueError:
            raise ConfigError(f"{key}: oczekiwano {expected}, jest {value!r}") from None
        if number < 0:
            raise ConfigError(f"{key}: wartość nie może być ujemna ({number})")
        return number
    if kind == "bool":
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{key}: oczekiwano true/false, jest {value!r}")
    if kind == "loglevel":
        upper = value.upper()
        if upper not in _LEVELS:
            raise ConfigError(
                f"{key}: nieznany poziom logowania {value!r} (dozwolone: {', '.join(sorted(_LEVELS))})"
            )
        return upper
    raise ConfigError(f"{key}: nieznany typ ustawienia {kind}")


def load_config(
    env_file: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Wczytuje ustawienia: wartości domyślne, potem ``.env``, potem środowisko procesu.

    Args:
        env_file: Ścieżka pliku .env; domyślnie ``ENV_FILE`` ze środowiska albo ``.env`` w katalogu projektu.
        environ: Środowisko (domyślnie ``os.environ``); parametr ułatwia testy.

    Returns:
        Słownik ``{KLUCZ: wartość}`` z kluczami z ``SETTINGS_SPEC`` (typy już skonwertowane).

    Raises:
        ConfigError: Gdy któraś wartość jest niepoprawna (komunikat zawiera nazwę klucza).
    """
    environ = os.environ if environ is None else environ
    path = Path(env_file or environ.get("ENV_FILE") or PROJECT_ROOT / ".env")
    file_values: dict[str, str | None] = dotenv_values(path) if path.is_file() else {}
    settings: dict[str, Any] = {}
    for key, (kind, default, _description) in SETTINGS_SPEC.items():
        raw = environ.get(key)
        if raw is None:
            raw = file_values.get(key)
        settings[key] = default if raw is None else _convert(key, kind, raw)
    if settings["BATCH_SIZE"] < 1:
        raise ConfigError(f"BATCH_SIZE: musi być co najmniej 1 (jest {settings['BATCH_SIZE']})")
    if settings["AI_CONCURRENCY"] < 1:
        raise ConfigError(f"AI_CONCURRENCY: musi być co najmniej 1 (jest {settings['AI_CONCURRENCY']})")
    if settings["AI_MAX_ATTEMPTS"] < 1:
        raise ConfigError(f"AI_MAX_ATTEMPTS: musi być co najmniej 1 (jest {settings['AI_MAX_ATTEMPTS']})")
    if settings["AI_PILOT_ITEMS"] < 0:
        raise ConfigError(f"AI_PILOT_ITEMS: nie może być ujemne (jest {settings['AI_PILOT_ITEMS']})")
    if settings["AI_MAX_EDIT_RATIO"] <= 0:
        raise ConfigError(f"AI_MAX_EDIT_RATIO: musi być dodatnie (jest {settings['AI_MAX_EDIT_RATIO']})")
    for key in ("SYNC_WRITERS", "SYNC_FINGERPRINT_READERS", "AI_PACK_ITEMS", "AI_PACK_CHARS"):
        if settings[key] < 1:
            raise ConfigError(f"{key}: musi być co najmniej 1 (jest {settings[key]})")
    # Ścieżki względne liczymy od katalogu projektu, nie od bieżącego katalogu.
    for key in ("LOG_DIR", "DAGSTER_HOME"):
        if not os.path.isabs(settings[key]):
            settings[key] = str(PROJECT_ROOT / settings[key])
    # Klucze API innych modeli (ai_model.api_key_env) czytamy z tego samego źródła.
    settings["_env_file_values"] = {k: v for k, v in file_values.items() if v is not None}
    return settings


def get_env_value(settings: dict[str, Any], name: str, environ: Mapping[str, str] | None = None) -> str:
    """Zwraca wartość dowolnej zmiennej (np. klucza API) z tą samą kolejnością: środowisko, potem .env.

    Args:
        settings: Wynik ``load_config``.
        name: Nazwa zmiennej, np. ``OPENAI_API_KEY``.
        environ: Środowisko (domyślnie ``os.environ``).

    Returns:
        Wartość albo pusty napis, gdy zmienna nie jest ustawiona.
    """
    environ = os.environ if environ is None else environ
    if name in environ:
        return environ[name]
    if name in settings and isinstance(settings[name], str) and name in SETTINGS_SPEC:
        return settings[name]
    return settings.get("_env_file_values", {}).get(name, "")


def secret_values(settings: dict[str, Any]) -> list[str]:
    """Zwraca listę sekretów z konfiguracji (do maskowania w logach).

    Args:
        settings: Wynik ``load_config``.

    Returns:
        Niepuste wartości ustawień typu ``secret``.
    """
    return [
        settings[k] for k, (kind, _d, _o) in SETTINGS_SPEC.items() if kind == "secret" and settings.get(k)
    ]


logging.getLogger(__name__).addHandler(logging.NullHandler())
