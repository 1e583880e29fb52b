"""Rodzina wyjątków projektu.

Każdy wyjątek niesie komunikat, na podstawie którego operator może działać. Skrypty łapią
je na najwyższym poziomie i wypisują jedną linię; assety Dagstera pozwalają im zakończyć run
po zapisaniu ``error`` + ``error_log`` w wierszu zadania. Komunikaty nigdy nie zawierają haseł
ani kluczy API.
"""


class AilexiaError(Exception):
    """Bazowy wyjątek projektu (komunikat czytelny dla człowieka)."""

    exit_code = 1


class ConfigError(AilexiaError):
    """Błędna lub brakująca konfiguracja (.env, zmienne środowiska, argumenty)."""

    exit_code = 2


class LocalDbError(AilexiaError):
    """Błąd lokalnej bazy MySQL (brak połączenia, złe hasło, błąd zapytania)."""


class RemoteError(AilexiaError):
    """Błąd bazy źródłowej (połączenie, katalog, zapytanie, identyfikatory)."""


class TaskError(AilexiaError):
    """Błąd dotyczący zadania (nieznane id, zły status, brak klucza)."""


class UsageError(TaskError):
    """Zadanie nie może być uruchomione z tego polecenia (nieznane id, status archived...)."""

    exit_code = 2


class TaskBusyError(TaskError):
    """Zadanie jest właśnie przetwarzane przez inny proces (blokada GET_LOCK zajęta)."""


class AiError(AilexiaError):
    """Błąd po stronie modelu AI, który zatrzymuje cały run (np. 401, nieznany model)."""


class AiItemError(AilexiaError):
    """Błąd jednej pozycji AI (po ponowieniach): zapisywany w ``ai_error``, run idzie dalej."""
