"""Wczytywanie konfiguracji z pliku ``.env`` i środowiska procesu w jeden typowany obiekt ``Settings``.

Kolejność: środowisko procesu, potem ``.env``, potem wartości domyślne. Każda wartość jest
walidowana przez pydantic, a błąd kończy się jednym czytelnym komunikatem z nazwą klucza
(``ConfigError``). Pola ``Settings`` to klucze ``.env`` pisane małymi literami
(``BATCH_SIZE`` -> ``settings.batch_size``); sekrety są typu ``SecretStr``.
"""

import logging
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lib.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"

_TRUE = {"1", "true", "yes", "on", "tak"}
_FALSE = {"0", "false", "no", "off", "nie", ""}
_LEVELS = ("CRITICAL", "DEBUG", "ERROR", "INFO", "WARNING")


def _parse_bool(value: Any) -> Any:
    """Tekst tak/nie z ``.env`` -> bool (jak dotąd: także ``tak``/``nie`` i pusty = fałsz)."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"oczekiwano true/false, jest {value.strip()!r}")


def _parse_level(value: Any) -> Any:
    """Poziom logowania bez względu na wielkość liter; nieznany poziom -> błąd z listą dozwolonych."""
    upper = str(value).strip().upper()
    if upper not in _LEVELS:
        raise ValueError(
            f"nieznany poziom logowania {str(value).strip()!r} (dozwolone: {', '.join(_LEVELS)})"
        )
    return upper


def _project_path(value: str) -> str:
    """Ścieżki względne liczymy od katalogu projektu, nie od bieżącego katalogu."""
    return value if os.path.isabs(value) else str(PROJECT_ROOT / value)


Flag = Annotated[bool, BeforeValidator(_parse_bool)]
Count = Annotated[int, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(ge=0)]
ProjectPath = Annotated[str, AfterValidator(_project_path)]
LogLevel = Annotated[Literal["CRITICAL", "DEBUG", "ERROR", "INFO", "WARNING"], BeforeValidator(_parse_level)]


class Settings(BaseSettings):
    """Ustawienia workera; pole = klucz ``.env`` małymi literami, opis pola = komentarz w ``.env.example``."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, str_strip_whitespace=True, validate_default=True
    )

    db_local_host: str = Field("127.0.0.1", description="Host lokalnej bazy MySQL/MariaDB (TCP)")
    db_local_port: Count = Field(3306, description="Port lokalnej bazy")
    db_local_user: str = Field("root", description="Użytkownik lokalnej bazy")
    db_local_password: SecretStr = Field(SecretStr(""), description="Hasło lokalnej bazy")
    db_local_name: str = Field("ailexia", description="Nazwa lokalnej bazy")
    batch_size: AtLeastOne = Field(500, description="Rozmiar strony odczytu ze źródła (keyset)")
    commit_rows: Count = Field(10000, description="Ile wierszy źródła najwyżej w jednej transakcji lokalnej")
    sync_writers: AtLeastOne = Field(
        2,
        description="Ile połączeń lokalnych wstawia naraz partie pierwszej synchronizacji (zatwierdzane po kolei)",
    )
    sync_fingerprint_readers: AtLeastOne = Field(
        2,
        description="Ile połączeń ze źródłem liczy naraz odciski stron przy resyncu (PostgreSQL; 1 = jedno, po kolei)",
    )
    sync_cursor_lag_s: Seconds = Field(
        60.0,
        description="Tryb kursora (task.cursor_column): resync czyta wiersze z kursorem >= ostatni "
        "minus tyle sekund",
    )
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING, ERROR, CRITICAL")
    log_format: str = Field(DEFAULT_LOG_FORMAT, description="Format linii logu (logging)")
    log_sql_queries: Flag = Field(
        False, description="true = loguj każde zapytanie SQL z parametrami (hasła maskowane)"
    )
    log_dir: ProjectPath = Field("logs", description="Katalog plików logów (sync.log, ai.log)")
    remote_connect_timeout: Count = Field(10, description="Limit czasu połączenia z bazą źródłową (s)")
    mssql_odbc_driver: str = Field(
        "ODBC Driver 18 for SQL Server", description="Nazwa sterownika ODBC dla mssql"
    )
    openai_api_key: SecretStr = Field(
        SecretStr(""), description="Klucz API (domyślna zmienna ai_model.api_key_env)"
    )
    openai_base_url: str = Field(
        "", description="Domyślny adres serwera zgodnego z OpenAI (gdy ai_model.base_url jest NULL)"
    )
    ai_concurrency: AtLeastOne = Field(8, description="Liczba równoległych zapytań do modelu")
    ai_max_attempts: AtLeastOne = Field(
        3, description="Po tylu nieudanych próbach pozycja czeka na człowieka"
    )
    ai_max_cost_usd: Annotated[Decimal, Field(ge=0)] = Field(
        Decimal(0), description="Limit kosztu jednego runu AI w USD (0 = bez limitu)"
    )
    ai_timeout_s: Seconds = Field(60.0, description="Limit czasu jednego zapytania do modelu (s)")
    ai_max_retries: Count = Field(4, description="Ponowienia zapytania przy 429/5xx/timeout")
    ai_backoff_s: Seconds = Field(
        1.0, description="Podstawa wykładniczego odstępu ponowień (s); Retry-After serwera ma pierwszeństwo"
    )
    ai_model_concurrency: Count = Field(
        32,
        description="Najwyżej tyle zapytań naraz do jednego modelu (base_url + model) ze wszystkich runów AI; "
        "0 = bez limitu",
    )
    ai_claim_batch: Count = Field(20, description="Ile pozycji zadania AI rezerwuje naraz")
    ai_claim_timeout_s: Count = Field(
        900, description="Po tylu sekundach niedokończona rezerwacja może być przejęta"
    )
    ai_pack_items: AtLeastOne = Field(
        20,
        description="Najwięcej krótkich tekstów w jednym zapytaniu do modelu (1 = jeden tekst na zapytanie); "
        "ai_model.pack_items nadpisuje",
    )
    ai_pack_chars: AtLeastOne = Field(
        4000,
        description="Najwięcej znaków tekstów w jednym zapytaniu; tekst dłuższy niż połowa limitu jedzie sam; "
        "ai_model.pack_chars nadpisuje",
    )
    ai_pilot_items: Count = Field(
        0, description="Pozycje pilota (faza nauki) zadania bez task.ai_pilot_items; 0 = bez pilota"
    )
    ai_max_edit_ratio: Annotated[float, Field(gt=0)] = Field(
        0.3,
        description="Zabezpieczenie korekty: odpowiedź zmieniająca większy udział słów dostaje flagę edit_ratio",
    )
    ai_batch_max_items: Count = Field(
        20000, description="Tryb batch: najwięcej pozycji w jednym batchu OpenAI"
    )
    dagster_home: ProjectPath = Field(
        ".dagster_home", description="Katalog instancji Dagstera (wspólny dla UI i skryptów)"
    )
    dagster_webserver_url: str = Field(
        "http://127.0.0.1:3000",
        description="Adres webservera Dagstera, przez który sync.py/ai.py --queue wstawiają runy do kolejki",
    )
    sensor_interval_s: Count = Field(30, description="Co ile sekund sensor task_sensor sprawdza tabelę task")
    sensor_stale_queued_s: Count = Field(
        600, description="Po ilu sekundach zadanie queued bez żywego runu jest podejmowane ponownie"
    )
    progress_every_s: Seconds = Field(
        5.0,
        description="Co ile sekund linia postępu (skan, AI, eksport) w logu runu Dagstera i w logu crona (do 10)",
    )
    review_token: SecretStr = Field(
        SecretStr(""),
        description="Token strony przeglądu (review.py serve); pusty = losowy, wypisany przy starcie",
    )
    ailexia_secret_key: SecretStr = Field(
        SecretStr(""),
        description="Klucz Fernet szyfrujący hasła źródeł (database_connection.db_password); "
        "scripts/run.sh zapisuje nowy, gdy brak",
    )
    ailexia_secret_key_old: SecretStr = Field(
        SecretStr(""),
        description="Poprzedni klucz Fernet, tylko na czas: ailexia secrets rotate (przeszyfrowanie haseł nowym kluczem)",
    )

    # Wszystkie wartości z .env (także spoza pól: klucze API innych modeli, DAGSTER_PG_*).
    _env_file_values: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Środowisko procesu przychodzi jawnie jako wartości inicjalne (``load_config``), potem ``.env``."""
        return init_settings, dotenv_settings

    def updated(self, **changes: Any) -> "Settings":
        """Zwraca zwalidowaną kopię z podmienionymi kluczami (np. ``settings.updated(BATCH_SIZE=250)``).

        Args:
            **changes: Klucze ``.env`` (wielkimi literami) i nowe wartości, tekstowe lub już typowane.

        Returns:
            Nowy obiekt ``Settings``; oryginał się nie zmienia.

        Raises:
            ConfigError: Nieznany klucz albo niepoprawna wartość (komunikat z nazwą klucza).
        """
        values = dict(self)
        for key, value in changes.items():
            if key.lower() not in type(self).model_fields:
                raise ConfigError(f"{key}: nieznany klucz ustawień")
            values[key.lower()] = value
        copy = _validated(lambda: type(self).model_validate(values))
        copy._env_file_values = self._env_file_values
        return copy

    def file_value(self, name: str) -> str | None:
        """Wartość zmiennej zapisanej w pliku ``.env`` (bez środowiska) albo ``None``."""
        return self._env_file_values.get(name)


def _validated(build: Callable[[], "Settings"]) -> "Settings":
    """Wywołuje ``build``; błąd walidacji pydantic -> ``ConfigError`` w jednej linii z nazwą klucza."""
    try:
        return build()
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        key = str(first["loc"][0]).upper() if first["loc"] else "?"
        raise ConfigError(f"{key}: {_message(first)}") from None


def _message(error: Mapping[str, Any]) -> str:
    """Polski opis pierwszego błędu walidacji (bez znaków nowej linii)."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    shown = value.strip() if isinstance(value, str) else value
    if kind == "value_error":
        text = str(ctx.get("error", error["msg"]))
    elif kind in ("int_parsing", "int_from_float"):
        text = f"oczekiwano liczby całkowitej, jest {shown!r}"
    elif kind in ("float_parsing", "decimal_parsing", "decimal_type"):
        text = f"oczekiwano liczby, jest {shown!r}"
    elif kind == "greater_than_equal" and ctx.get("ge") == 0:
        text = f"wartość nie może być ujemna ({shown})"
    elif kind == "greater_than_equal":
        text = f"musi być co najmniej {ctx['ge']} (jest {shown})"
    else:
        text = f"{error['msg']} (jest {shown!r})"
    return " ".join(text.split())


def load_config(
    env_file: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Wczytuje ustawienia: wartości domyślne, potem ``.env``, potem środowisko procesu.

    Args:
        env_file: Ścieżka pliku .env; domyślnie ``ENV_FILE`` ze środowiska albo ``.env`` w katalogu projektu.
        environ: Środowisko (domyślnie ``os.environ``); parametr ułatwia testy.

    Returns:
        Obiekt ``Settings`` (typy już skonwertowane, ścieżki bezwzględne).

    Raises:
        ConfigError: Gdy któraś wartość jest niepoprawna (komunikat zawiera nazwę klucza).
    """
    environ = os.environ if environ is None else environ
    path = Path(env_file or environ.get("ENV_FILE") or PROJECT_ROOT / ".env")
    has_file = path.is_file()
    # Środowisko jako wartości inicjalne: ma pierwszeństwo przed .env, a ``environ`` z testów
    # zastępuje os.environ w całości.
    from_environment = {
        name: environ[name.upper()] for name in Settings.model_fields if name.upper() in environ
    }
    settings = _validated(lambda: Settings(_env_file=path if has_file else None, **from_environment))
    file_values = dotenv_values(path) if has_file else {}
    # Klucze API innych modeli (ai_model.api_key_env) czytamy z tego samego źródła.
    settings._env_file_values = {k: v for k, v in file_values.items() if v is not None}
    return settings


def get_env_value(settings: Settings, name: str, environ: Mapping[str, str] | None = None) -> str:
    """Zwraca wartość dowolnej zmiennej (np. klucza API): środowisko, potem ustawienia i ``.env``.

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
    # Pole ustawień tylko pod dokładną nazwą klucza (wielkie litery), jak zmienna środowiska.
    field = name.lower() if name == name.upper() else None
    value = getattr(settings, field) if field in Settings.model_fields else None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, str):
        return value
    return settings.file_value(name) or ""


def secret_values(settings: Settings) -> list[str]:
    """Zwraca listę sekretów z konfiguracji (do maskowania w logach).

    Args:
        settings: Wynik ``load_config``.

    Returns:
        Niepuste wartości ustawień typu ``SecretStr``.
    """
    values = (getattr(settings, name) for name in Settings.model_fields)
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]


logging.getLogger(__name__).addHandler(logging.NullHandler())
