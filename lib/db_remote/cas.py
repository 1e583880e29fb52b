"""Zapis do źródła z kontrolą zmian (compare-and-set): blokada wierszy, porównanie bajt po bajcie, UPDATE."""

import contextlib
from collections.abc import Sequence
from typing import NamedTuple

from lib.db_remote.catalog import Target
from lib.db_remote.dialects import RemoteConn, _dialect, _driver_errors
from lib.db_remote.reads import KEYS_PER_QUERY, _to_text
from lib.errors import RemoteError


class CasResult(NamedTuple):
    """Wynik ``compare_and_set``: zapisane klucze i konflikty ``(klucz, powód)``."""

    written: list[int]
    conflicts: list[tuple[int, str]]


# --- zapis z kontrolą zmian ---------------------------------------------------------------


def lock_sql(db_type: str, target: Target, count: int) -> str:
    """Buduje SELECT blokujący ``count`` wierszy po kluczach (klucz, kolumna źródłowa).

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        count: Liczba parametrów listy IN.

    Returns:
        SQL z ``FOR UPDATE`` (mysql, pgsql), ``WITH (UPDLOCK, ROWLOCK)`` (mssql) albo bez
        blokady wierszy (sqlite: blokadę daje ``BEGIN IMMEDIATE``).
    """
    dialect = _dialect(db_type)
    marks = ", ".join([dialect["placeholder"]] * count)
    return dialect["lock"].format(
        key=target.quoted_key, column=target.quoted_column, table=target.quoted_table, marks=marks
    )


def update_sql(db_type: str, target: Target, write_column: str | None = None) -> str:
    """Buduje UPDATE jednego wiersza: ``SET kolumna = ? WHERE klucz = ?``.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        write_column: Kolumna zapisu (``target.column`` albo jedna z ``extra_columns``).

    Returns:
        SQL z dwoma parametrami: nowy tekst, klucz.

    Raises:
        RemoteError: Gdy kolumna zapisu nie została sprawdzona w katalogu.
    """
    mark = _dialect(db_type)["placeholder"]
    name = write_column or target.column
    if name != target.column and name not in target.extra_columns:
        raise RemoteError(
            f"kolumna zapisu {name!r} nie została sprawdzona w katalogu tabeli {target.table!r}; "
            "podaj ją w extra_columns przy resolve_target"
        )
    quoted = target.quoted_column if name == target.column else target.quoted_extra[name]
    return f"UPDATE {target.quoted_table} SET {quoted} = {mark} WHERE {target.quoted_key} = {mark}"


def compare_and_set(
    rconn: RemoteConn,
    target: Target,
    updates: Sequence[tuple[int, str | None, str | None]],
    write_column: str | None = None,
) -> CasResult:
    """Zapisuje nowe teksty tylko do wierszy, których tekst źródłowy się nie zmienił.

    W jednej transakcji źródła: blokuje wiersze, porównuje bieżący tekst z oczekiwanym bajt po
    bajcie w Pythonie (więc zmiana samej wielkości liter albo spacji na końcu pod sortowaniem
    ``_ci`` też jest konfliktem), aktualizuje tylko zgodne wiersze i zatwierdza.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        updates: Krotki ``(klucz, oczekiwany tekst target.column, nowy tekst)``.
        write_column: Kolumna zapisu (``target.column`` albo jedna z ``extra_columns``);
            domyślnie ``target.column``. Porównanie zawsze dotyczy ``target.column``.

    Returns:
        ``CasResult``: zapisane klucze i konflikty ``(klucz, powód)``.

    Raises:
        RemoteError: Błąd źródła (transakcja wycofana, nic nie zapisano) albo kolumna zapisu
            spoza ``target``.
    """
    update = update_sql(rconn.db_type, target, write_column)
    conflicts: list[tuple[int, str]] = []
    wanted: dict[int, tuple[str | None, str | None]] = {}
    for key, expected, new_text in updates:
        key = int(key)
        if key in wanted:
            conflicts.append((key, "klucz powtórzony w jednej operacji zapisu"))
            continue
        wanted[key] = (expected, new_text)
    if not wanted:
        return CasResult(written=[], conflicts=conflicts)
    keys = sorted(wanted)
    written: list[int] = []
    with _driver_errors(rconn, "zapis z kontrolą zmian"):
        cursor = rconn.conn.cursor()
        try:
            if rconn.dialect["begin"]:
                cursor.execute(rconn.dialect["begin"])
            current: dict[int, str | None] = {}
            for start in range(0, len(keys), KEYS_PER_QUERY):
                chunk = keys[start : start + KEYS_PER_QUERY]
                cursor.execute(lock_sql(rconn.db_type, target, len(chunk)), tuple(chunk))
                for key, text in cursor.fetchall():
                    current[int(key)] = _to_text(text)
            to_write: list[tuple[str | None, int]] = []
            for key in keys:
                expected, new_text = wanted[key]
                if key not in current:
                    conflicts.append((key, "wiersz nie istnieje w źródle"))
                elif current[key] != expected:
                    conflicts.append((key, "tekst w źródle zmienił się od synchronizacji"))
                else:
                    to_write.append((new_text, key))
                    written.append(key)
            for params in to_write:
                cursor.execute(update, params)
            rconn.conn.commit()
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
    return CasResult(written=written, conflicts=conflicts)
