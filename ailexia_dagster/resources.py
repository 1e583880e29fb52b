"""Zasób z konfiguracją ailexia (``.env`` + środowisko) dla assetów i sensorów."""

from dagster import ConfigurableResource

from lib.db_utils import setup_logging
from lib.load_config import Settings, load_config
from lib.runtime import control


class AilexiaResource(ConfigurableResource):
    """Ustawienia workera; ``env_file`` = ścieżka pliku .env (domyślnie ``.env`` projektu)."""

    env_file: str | None = None

    def settings(self, script_name: str = "dagster") -> Settings:
        """Wczytuje ustawienia i konfiguruje logowanie (plik ``logs/<script_name>.log``)."""
        loaded = load_config(self.env_file)
        setup_logging(loaded, script_name)
        return loaded

    def stop_check(self, settings: Settings, id_task: int, max_seconds: float | None):
        """Zwraca ``should_stop`` dla runu (pauza/anulowanie operatora, limit czasu, sygnał)."""
        return control.make_stop_check(settings, id_task, max_seconds=max_seconds)
