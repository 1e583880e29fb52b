"""Odczyt ze źródła: liczba wierszy, strony po kluczu (keyset, nigdy OFFSET), wiersze po kluczach."""

from collections.abc import Iterator, Sequence
from typing import Any

from lib.db_remote.catalog import Target
from lib.db_remote.dialects import RemoteConn, _dialect, _driver_errors, _read
from lib.errors import RemoteError

# Ile kluczy najwyżej w jednej liście IN (mssql ma limit 2100 parametrów na zapytanie).
KEYS_PER_QUERY = 500


def _to_text(value: Any) -> str | None:
    """Zamienia wartość kolumny tekstowej na ``str`` (bajty dekoduje jako UTF-8)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        # Kolumny BLOB/BINARY/bytea: tekst w UTF-8; błędny UTF-8 zgłasza UnicodeDecodeError.
        return bytes(value).decode("utf-8")
    return str(value)


# --- odczyt -------------------------------------------------------------------------------


def count_rows(rconn: RemoteConn, target: Target) -> int:
    """Liczy wiersze tabeli źródłowej (z niepustym kluczem).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.

    Returns:
        Liczba wierszy.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    sql = f"SELECT {rconn.dialect['count']}({target.quoted_key}) FROM {target.quoted_table}"
    return int(_read(rconn, "liczenie wierszy", sql)[0][0])


def max_key(rconn: RemoteConn, target: Target) -> int | None:
    """Zwraca największy klucz w tabeli źródłowej albo ``None`` dla pustej tabeli.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.

    Returns:
        Największy klucz albo ``None``.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    sql = f"SELECT MAX({target.quoted_key}) FROM {target.quoted_table}"
    value = _read(rconn, "odczyt największego klucza", sql)[0][0]
    return None if value is None else int(value)


def page_sql(db_type: str, target: Target, first_page: bool, limit: int) -> str:
    """Buduje zapytanie jednej strony (klucz, tekst) stronicowanej po kluczu.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        first_page: ``True`` = bez warunku na klucz (bez parametru).
        limit: Maksymalna liczba wierszy strony.

    Returns:
        SQL z jednym parametrem klucza (``%s`` albo ``?``), chyba że ``first_page``.
    """
    dialect = _dialect(db_type)
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"limit strony musi być dodatni (jest {limit})")
    key = target.quoted_key
    where = f"{key} IS NOT NULL" if first_page else f"{key} > {dialect['placeholder']}"
    return dialect["page"].format(
        key=key, column=target.quoted_column, table=target.quoted_table, where=where, limit=limit
    )


def fetch_page(
    rconn: RemoteConn, target: Target, after_key: int | None, limit: int
) -> list[tuple[int, str | None]]:
    """Pobiera jedną stronę wierszy (klucz, tekst) z tabeli źródłowej.

    Stronicowanie po kluczu (keyset): tylko wiersze z kluczem większym niż ``after_key``,
    rosnąco, co najwyżej ``limit`` wierszy.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        after_key: Ostatni przetworzony klucz albo ``None`` dla pierwszej strony.
        limit: Maksymalna liczba wierszy (``BATCH_SIZE``).

    Returns:
        Lista krotek ``(remote_id, text)``; pusta, gdy nie ma więcej wierszy.

    Raises:
        RemoteError: Gdy źródło zwróci błąd połączenia lub zapytania.
    """
    first = after_key is None
    sql = page_sql(rconn.db_type, target, first, limit)
    params = () if first else (int(after_key),)
    with _driver_errors(rconn, "odczyt strony"):
        rows = _read(rconn, "odczyt strony", sql, params)
        return [(int(key), _to_text(text)) for key, text in rows]


def iter_pages(
    rconn: RemoteConn, target: Target, after_key: int | None, limit: int
) -> Iterator[list[tuple[int, str | None]]]:
    """Iteruje po stronach tabeli źródłowej (keyset, nigdy OFFSET).

    Każda strona to osobne zapytanie, więc pamięć nie rośnie z rozmiarem tabeli. Kończy po
    stronie pustej albo krótszej niż ``limit`` (pusta strona nie jest zwracana).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        after_key: Klucz, od którego (wyłącznie) zacząć, albo ``None`` od początku.
        limit: Rozmiar strony.

    Yields:
        Listy krotek ``(remote_id, text)`` rosnąco po kluczu.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    while True:
        page = fetch_page(rconn, target, after_key, limit)
        if page:
            yield page
        if len(page) < limit:
            return
        after_key = page[-1][0]


def _column_map(target: Target) -> dict[str, str]:
    """Kolumny sprawdzone w katalogu: nazwa -> identyfikator zacytowany."""
    mapping = {target.key: target.quoted_key, target.column: target.quoted_column}
    mapping.update(target.quoted_extra)
    return mapping


def _quoted_columns(target: Target, columns: Sequence[str]) -> list[str]:
    """Zamienia nazwy kolumn na identyfikatory; tylko kolumny z ``Target``."""
    mapping = _column_map(target)
    unknown = [name for name in columns if name not in mapping]
    if unknown:
        raise RemoteError(
            f"kolumny {', '.join(map(repr, unknown))} nie zostały sprawdzone w katalogu tabeli "
            f"{target.table!r}; podaj je w extra_columns przy resolve_target"
        )
    return [mapping[name] for name in columns]


def _unique_keys(keys: Sequence[int]) -> list[int]:
    """Klucze jako int, bez powtórzeń, rosnąco."""
    return sorted({int(key) for key in keys})


def fetch_by_keys(
    rconn: RemoteConn, target: Target, keys: Sequence[int], columns: Sequence[str] | None = None
) -> dict[int, tuple]:
    """Pobiera wskazane wiersze po kluczach (porcjami po ``KEYS_PER_QUERY``).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        keys: Klucze wierszy.
        columns: Kolumny z ``target`` (kolumna, klucz lub ``extra_columns``); domyślnie
            ``(target.column,)``.

    Returns:
        Słownik ``klucz -> krotka wartości kolumn``; wierszy, których nie ma, brak w słowniku.
        Wartości tekstowe (także BLOB/bytea) jako ``str``.

    Raises:
        RemoteError: Nieznana kolumna albo błąd źródła.
    """
    names = list(columns) if columns is not None else [target.column]
    selected = ", ".join(_quoted_columns(target, names))
    mark = rconn.dialect["placeholder"]
    result: dict[int, tuple] = {}
    wanted = _unique_keys(keys)
    with _driver_errors(rconn, "odczyt wierszy po kluczach"):
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            chunk = wanted[start : start + KEYS_PER_QUERY]
            sql = (
                f"SELECT {target.quoted_key}, {selected} FROM {target.quoted_table} "
                f"WHERE {target.quoted_key} IN ({', '.join([mark] * len(chunk))})"
            )
            for row in _read(rconn, "odczyt wierszy po kluczach", sql, chunk):
                result[int(row[0])] = tuple(_to_text(value) for value in row[1:])
    return result
