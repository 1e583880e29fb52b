"""Zapis do źródła z kontrolą zmian (compare-and-set): blokada wierszy, porównanie bajt po bajcie, UPDATE."""

import contextlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from lib.db_remote.catalog import Target
from lib.db_remote.dialects import RemoteConn, _describe, _dialect, _driver_errors, _rollback
from lib.db_remote.keys import (
    Key,
    canonical_key,
    equal_key_sql,
    key_values,
    keys_per_query,
    match_keys_params,
    match_keys_sql,
)
from lib.db_remote.reads import KEYS_PER_QUERY, _to_text
from lib.errors import RemoteError


class CasResult(NamedTuple):
    """Wynik ``compare_and_set``: zapisane klucze i konflikty ``(klucz, powód)``."""

    written: list[Key]
    conflicts: list[tuple[Key, str]]


# Punkt zapisu (savepoint) pojedynczego wiersza przy zapisie po jednym wierszu.
_SAVEPOINT = "ax_row"
NUL_REASON = "tekst zawiera znak NUL, którego ta baza nie zapisuje w kolumnie tekstowej"


def lock_sql(db_type: str, target: Target, count: int) -> str:
    """Buduje SELECT blokujący ``count`` wierszy po kluczach (kolumny klucza, kolumna źródłowa).

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        count: Liczba kluczy.

    Returns:
        SQL z ``FOR UPDATE`` (mysql, pgsql), ``WITH (UPDLOCK, ROWLOCK)`` (mssql) albo bez
        blokady wierszy (sqlite: blokadę daje ``BEGIN IMMEDIATE``); parametry ``match_keys_params``.
    """
    dialect = _dialect(db_type)
    return dialect["lock"].format(
        key=target.quoted_key,
        column=target.quoted_column,
        table=target.quoted_table,
        match=match_keys_sql(dialect, target, count),
    )


def update_sql(db_type: str, target: Target, write_column: str | None = None) -> str:
    """Buduje UPDATE jednego wiersza: ``SET kolumna = ? WHERE klucz = ?`` (każda kolumna klucza).

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        write_column: Kolumna zapisu (``target.column`` albo jedna z ``extra_columns``).

    Returns:
        SQL z parametrami: nowy tekst, potem wartości kolumn klucza.

    Raises:
        RemoteError: Gdy kolumna zapisu nie została sprawdzona w katalogu.
    """
    dialect = _dialect(db_type)
    name = write_column or target.column
    if name != target.column and name not in target.extra_columns:
        raise RemoteError(
            f"kolumna zapisu {name!r} nie została sprawdzona w katalogu tabeli {target.table!r}; "
            "podaj ją w extra_columns przy resolve_target"
        )
    quoted = target.quoted_column if name == target.column else target.quoted_extra[name]
    mark = dialect["placeholder"]
    return f"UPDATE {target.quoted_table} SET {quoted} = {mark} WHERE {equal_key_sql(dialect, target)}"


def _lock_current(cursor: Any, rconn: RemoteConn, target: Target, keys: list[Key]) -> dict[Key, str | None]:
    """Blokuje wiersze po kluczach i zwraca ich bieżące teksty (klucz dokładnie jak w źródle)."""
    width = len(target.key_columns)
    current: dict[Key, str | None] = {}
    step = keys_per_query(target, KEYS_PER_QUERY)
    for start in range(0, len(keys), step):
        chunk = keys[start : start + step]
        cursor.execute(lock_sql(rconn.db_type, target, len(chunk)), match_keys_params(chunk))
        for row in cursor.fetchall():
            current[canonical_key(target, row[:width])] = _to_text(row[width])
    return current


def _plan(
    rconn: RemoteConn, current: dict[Key, str | None], wanted: dict[Key, tuple[str | None, str | None]]
) -> tuple[list[tuple[Key, str | None]], list[tuple[Key, str]]]:
    """Dzieli klucze na zapisywalne ``(klucz, nowy tekst)`` i konflikty ``(klucz, powód)``.

    Klucz musi istnieć w źródle dokładnie (bajt po bajcie), a tekst musi być równy oczekiwanemu.
    """
    to_write: list[tuple[Key, str | None]] = []
    conflicts: list[tuple[Key, str]] = []
    for key, (expected, new_text) in wanted.items():
        if key not in current:
            conflicts.append((key, "wiersz nie istnieje w źródle"))
        elif current[key] != expected:
            conflicts.append((key, "tekst w źródle zmienił się od synchronizacji"))
        elif new_text is not None and "\x00" in new_text and not rconn.dialect["text_nul"]:
            conflicts.append((key, NUL_REASON))
        else:
            to_write.append((key, new_text))
    return to_write, conflicts


def compare_and_set(
    rconn: RemoteConn,
    target: Target,
    updates: Sequence[tuple[Key, str | None, str | None]],
    write_column: str | None = None,
) -> CasResult:
    """Zapisuje nowe teksty tylko do wierszy, których tekst źródłowy się nie zmienił.

    W jednej transakcji źródła: blokuje wiersze, porównuje bieżący tekst z oczekiwanym bajt po
    bajcie w Pythonie (więc zmiana samej wielkości liter albo spacji na końcu pod sortowaniem
    ``_ci`` też jest konfliktem), sprawdza, że wiersz ma dokładnie ten klucz (nie tylko równy
    według sortowania źródła), aktualizuje tylko zgodne wiersze i zatwierdza. Gdy źródło odrzuci
    zapis któregoś wiersza (np. ograniczenie CHECK, za długi tekst), partia jest powtarzana po
    jednym wierszu z punktami zapisu: odrzucony wiersz staje się konfliktem z powodem, a reszta
    jest zapisana - jeden zły wiersz nie zatrzymuje eksportu.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        updates: Krotki ``(klucz, oczekiwany tekst target.column, nowy tekst)``.
        write_column: Kolumna zapisu (``target.column`` albo jedna z ``extra_columns``);
            domyślnie ``target.column``. Porównanie zawsze dotyczy ``target.column``.

    Returns:
        ``CasResult``: zapisane klucze i konflikty ``(klucz, powód)``.

    Raises:
        RemoteError: Błąd źródła poza zapisem wierszy (połączenie, blokada; transakcja wycofana)
            albo kolumna zapisu spoza ``target``.
    """
    update = update_sql(rconn.db_type, target, write_column)
    duplicates: list[tuple[Key, str]] = []
    wanted: dict[Key, tuple[str | None, str | None]] = {}
    for key, expected, new_text in updates:
        if key in wanted:
            duplicates.append((key, "klucz powtórzony w jednej operacji zapisu"))
            continue
        wanted[key] = (expected, new_text)
    if not wanted:
        return CasResult(written=[], conflicts=duplicates)
    keys = list(wanted)
    try:
        written, conflicts = _write(rconn, target, update, keys, wanted, row_by_row=False)
    except _RowRejected:
        written, conflicts = _write(rconn, target, update, keys, wanted, row_by_row=True)
    return CasResult(written=written, conflicts=duplicates + conflicts)


class _RowRejected(Exception):
    """Źródło odrzuciło zapis wiersza w partii: partia idzie jeszcze raz, wiersz po wierszu."""


def _write(
    rconn: RemoteConn,
    target: Target,
    update: str,
    keys: list[Key],
    wanted: dict[Key, tuple[str | None, str | None]],
    row_by_row: bool,
) -> tuple[list[Key], list[tuple[Key, str]]]:
    """Jedna transakcja compare-and-set; ``row_by_row`` = każdy UPDATE w swoim punkcie zapisu."""
    dialect = rconn.dialect
    errors = dialect["errors"]() + (ValueError,)
    written: list[Key] = []
    with _driver_errors(rconn, "zapis z kontrolą zmian"):
        cursor = rconn.conn.cursor()
        try:
            if dialect["begin"]:
                cursor.execute(dialect["begin"])
            current = _lock_current(cursor, rconn, target, keys)
            to_write, conflicts = _plan(rconn, current, wanted)
            for key, new_text in to_write:
                params = (new_text, *key_values(key))
                if not row_by_row:
                    try:
                        cursor.execute(update, params)
                    except errors as exc:
                        raise _RowRejected from exc
                    written.append(key)
                    continue
                cursor.execute(dialect["savepoint"].format(name=_SAVEPOINT))
                try:
                    cursor.execute(update, params)
                except errors as exc:
                    cursor.execute(dialect["rollback_to"].format(name=_SAVEPOINT))
                    conflicts.append((key, f"źródło odrzuciło zapis wiersza: {_describe(exc)}"))
                    continue
                if dialect["release"]:
                    cursor.execute(dialect["release"].format(name=_SAVEPOINT))
                written.append(key)
            rconn.conn.commit()
        except _RowRejected:
            _rollback(rconn)
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
    return written, conflicts
