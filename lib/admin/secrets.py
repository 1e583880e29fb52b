"""Hasła źródeł w bazie: zaszyfrowanie starych wierszy jawnych i przeszyfrowanie nowym kluczem.

Obie operacje działają w jednej transakcji (wiersze zablokowane ``FOR UPDATE``): błąd w którymkolwiek
wierszu (np. szyfrogram spod nieznanego klucza) wycofuje wszystko - nie ma stanu "w połowie".
"""

from typing import Any

from cryptography.fernet import MultiFernet

from lib.db_local import MySQL
from lib.load_config import Settings
from lib.passwords import OLD_KEY_NAME, encrypt, is_encrypted, rotate_value, secret_key


def _locked_passwords(db: MySQL) -> list[dict[str, Any]]:
    """Wiersze z hasłem w bazie, zablokowane do końca transakcji."""
    return db.query(
        "SELECT id_database_connection, db_password FROM database_connection "
        "WHERE db_password IS NOT NULL AND db_password <> '' ORDER BY id_database_connection FOR UPDATE"
    )


def encrypt_plain(db: MySQL, settings: Settings) -> dict[str, int]:
    """Szyfruje kluczem ``AILEXIA_SECRET_KEY`` hasła zapisane jawnie przez starsze wersje.

    Args:
        db: Połączenie lokalne (bez autocommit).
        settings: Ustawienia z kluczem.

    Returns:
        ``{"encrypted": zaszyfrowane teraz, "already": już zaszyfrowane}``.

    Raises:
        ConfigError: Brak albo zły klucz (nic nie zmieniono).
    """
    secret_key(settings)  # brak klucza: jedno zdanie, zanim cokolwiek zablokujemy
    db.begin()
    try:
        rows = _locked_passwords(db)
        plain = [r for r in rows if not is_encrypted(r["db_password"])]
        for row in plain:
            db.execute(
                "UPDATE database_connection SET db_password=%s WHERE id_database_connection=%s",
                (encrypt(row["db_password"], settings), row["id_database_connection"]),
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return {"encrypted": len(plain), "already": len(rows) - len(plain)}


def rotate(db: MySQL, settings: Settings) -> dict[str, int]:
    """Przeszyfrowuje wszystkie hasła nowym kluczem (stary w ``AILEXIA_SECRET_KEY_OLD``), w jednej transakcji.

    Szyfrogramy spod starego klucza (albo już spod nowego - ponowne uruchomienie jest bezpieczne)
    dostają nowy szyfrogram; hasła jawne są przy okazji szyfrowane.

    Returns:
        ``{"rotated": liczba przeszyfrowanych wierszy}``.

    Raises:
        ConfigError: Brak któregoś klucza albo szyfrogram spod nieznanego klucza (nic nie zmieniono).
    """
    new = secret_key(settings)
    old = secret_key(settings, OLD_KEY_NAME)
    rotator = MultiFernet([new, old])
    db.begin()
    try:
        rows = _locked_passwords(db)
        for row in rows:
            db.execute(
                "UPDATE database_connection SET db_password=%s WHERE id_database_connection=%s",
                (rotate_value(row["db_password"], rotator, new), row["id_database_connection"]),
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return {"rotated": len(rows)}
