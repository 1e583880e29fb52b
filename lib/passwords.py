"""Hasła źródeł w spoczynku: szyfrowanie Fernet, hasło ze zmiennej środowiska, klucz w ``.env``.

``database_connection.db_password`` trzyma szyfrogram z przedrostkiem ``fernet:`` (klucz w
``AILEXIA_SECRET_KEY``) albo - w wierszach zapisanych przez starsze wersje - hasło jawne, które
nadal działa (``ailexia secrets encrypt`` je szyfruje). ``database_connection.password_env`` to
nazwa zmiennej środowiska z hasłem: w bazie nie ma wtedy hasła w żadnej postaci.

Hasło jawne powstaje tylko w jednym miejscu: ``connection_password`` wołane przez
``db_remote.connect`` tuż przed otwarciem połączenia. Nigdzie indziej nie jest przechowywane.
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from dotenv import dotenv_values

from lib.db_utils import register_secrets
from lib.errors import ConfigError
from lib.load_config import PROJECT_ROOT, Settings, get_env_value

PREFIX = "fernet:"
KEY_NAME = "AILEXIA_SECRET_KEY"
OLD_KEY_NAME = "AILEXIA_SECRET_KEY_OLD"
# Nazwa zmiennej środowiska z hasłem (``--password-env``): jak zmienne powłoki.
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def new_key() -> str:
    """Nowy losowy klucz Fernet (32 bajty w base64 url-safe, 44 znaki)."""
    return Fernet.generate_key().decode("ascii")


def is_encrypted(stored: str | None) -> bool:
    """Czy wartość ``db_password`` jest szyfrogramem (przedrostek ``fernet:``)."""
    return bool(stored) and str(stored).startswith(PREFIX)


def _fernet(key: str, name: str) -> Fernet:
    """Obiekt Fernet dla klucza z ustawienia ``name``; zły format klucza to jedno zdanie z nazwą."""
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError(
            f"{name}: niepoprawny klucz Fernet (oczekiwano 44 znaków base64 url-safe); "
            "nowy klucz: python -c 'from lib.passwords import new_key; print(new_key())'"
        ) from None


def secret_key(settings: Settings, name: str = KEY_NAME) -> Fernet:
    """Zwraca szyfr z klucza ``AILEXIA_SECRET_KEY`` (albo ``name``) z ustawień.

    Raises:
        ConfigError: Gdy klucza brak albo ma zły format (jedna linia z nazwą klucza).
    """
    key = str(settings.get(name) or "")
    if not key:
        raise ConfigError(
            f"brak klucza {name}: hasła źródeł są szyfrowane tym kluczem; ustaw {name} w .env albo "
            "w środowisku (scripts/run.sh zapisuje nowy klucz do .env, gdy go nie ma)"
        )
    return _fernet(key, name)


def encrypt(plain: str, settings: Settings) -> str:
    """Szyfruje hasło kluczem ``AILEXIA_SECRET_KEY``; wynik do zapisu w ``db_password``.

    Args:
        plain: Hasło jawne.
        settings: Ustawienia z ``load_config``.

    Returns:
        ``fernet:<token>``.

    Raises:
        ConfigError: Brak klucza albo zły klucz.
    """
    register_secrets([plain])
    return PREFIX + secret_key(settings).encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(stored: str, fernet: Fernet | MultiFernet, key_name: str = KEY_NAME) -> str:
    """Odszyfrowuje wartość ``fernet:<token>``.

    Raises:
        ConfigError: Token nie pasuje do klucza (inny klucz albo uszkodzona wartość).
    """
    try:
        plain = fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise ConfigError(
            f"hasła źródła nie da się odszyfrować kluczem {key_name} (inny klucz niż przy zapisie albo "
            f"uszkodzona wartość); po zmianie klucza uruchom: ailexia secrets rotate z {OLD_KEY_NAME}"
        ) from None
    register_secrets([plain])
    return plain


def connection_password(row: dict[str, Any], settings: Settings) -> str:
    """Hasło jawne połączenia - jedyne miejsce, w którym powstaje (tuż przed połączeniem).

    Kolejność: ``password_env`` (nazwa zmiennej środowiska albo ``.env``), szyfrogram ``fernet:``
    (klucz ``AILEXIA_SECRET_KEY``), wartość jawna ze starszych wersji (bez klucza).

    Args:
        row: Wiersz ``database_connection``.
        settings: Ustawienia z ``load_config``.

    Returns:
        Hasło (pusty napis, gdy połączenie go nie ma).

    Raises:
        ConfigError: Brak zmiennej ``password_env``, brak lub zły klucz ``AILEXIA_SECRET_KEY``.
    """
    alias = row.get("alias") or row.get("id_database_connection") or "?"
    env_name = row.get("password_env")
    if env_name:
        value = get_env_value(settings, str(env_name))
        if not value:
            raise ConfigError(
                f"zmienna {env_name} z hasłem źródła '{alias}' nie jest ustawiona (ani w środowisku, ani w .env)"
            )
        register_secrets([value])
        return value
    stored = str(row.get("db_password") or "")
    if is_encrypted(stored):
        return decrypt(stored, secret_key(settings))
    return stored


def password_state(password_env: str | None, has_password: bool, encrypted: bool) -> str:
    """Opis sposobu przechowania hasła do listy źródeł (nigdy samo hasło).

    Args:
        password_env: ``database_connection.password_env``.
        has_password: Czy ``db_password`` jest niepuste.
        encrypted: Czy ``db_password`` ma przedrostek ``fernet:`` (SQL: ``LIKE 'fernet:%'``).

    Returns:
        ``env:NAZWA``, ``encrypted``, ``plain`` (stary wiersz do zaszyfrowania) albo ``none``.
    """
    if password_env:
        return f"env:{password_env}"
    if not has_password:
        return "none"
    return "encrypted" if encrypted else "plain"


def rotate_value(stored: str, rotator: MultiFernet, new: Fernet) -> str:
    """Szyfrogram pod nowym kluczem: stary szyfrogram przeszyfrowany, hasło jawne zaszyfrowane.

    Args:
        stored: Wartość ``db_password``.
        rotator: ``MultiFernet([nowy, stary])``.
        new: Szyfr nowego klucza (dla haseł jawnych).

    Raises:
        ConfigError: Szyfrogram nie pasuje ani do nowego, ani do starego klucza.
    """
    if not is_encrypted(stored):
        register_secrets([stored])
        return PREFIX + new.encrypt(stored.encode("utf-8")).decode("ascii")
    token = stored[len(PREFIX) :].encode("ascii")
    try:
        return PREFIX + rotator.rotate(token).decode("ascii")
    except InvalidToken:
        raise ConfigError(
            f"hasła źródła nie da się odszyfrować ani kluczem {KEY_NAME}, ani {OLD_KEY_NAME}; nic nie zmieniono"
        ) from None


def ensure_secret_key(
    env_file: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Zapisuje nowy klucz ``AILEXIA_SECRET_KEY`` do ``.env``, gdy nie ma go ani tam, ani w środowisku.

    Wołane przez ``scripts/run.sh``: nowy użytkownik nie musi generować klucza sam. Pusta linia
    ``AILEXIA_SECRET_KEY=`` (z ``.env.example``) jest zastępowana, inaczej klucz jest dopisywany.
    Plik dostaje prawa 600 (zawiera klucz).

    Args:
        env_file: Plik ``.env`` (domyślnie ``ENV_FILE`` ze środowiska albo ``.env`` projektu).
        environ: Środowisko (domyślnie ``os.environ``).

    Returns:
        ``True``, gdy klucz został zapisany.
    """
    environ = os.environ if environ is None else environ
    if environ.get(KEY_NAME):
        return False
    path = Path(env_file or environ.get("ENV_FILE") or PROJECT_ROOT / ".env")
    if path.is_file() and dotenv_values(path).get(KEY_NAME):
        return False
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    line = f"{KEY_NAME}={new_key()}"
    pattern = re.compile(rf"^{KEY_NAME}=\s*$", re.M)
    if pattern.search(text):
        text = pattern.sub(line, text, count=1)
    else:
        text = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return True
