"""Odczyt ze źródła: liczba wierszy, strony po kluczu (keyset), wiersze po kluczach.

Strony zawsze czyta keyset; ``OFFSET`` jest tylko w ``fetch_page_starts`` (sam indeks klucza), który
planuje granice stron liczonych równolegle.
"""

import codecs
import contextlib
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lib.db_remote.catalog import Target, _normalize_type
from lib.db_remote.dialects import RemoteConn, _describe, _dialect, _driver_errors, _read, _rollback
from lib.db_remote.keys import (
    Key,
    after_key_params,
    after_key_sql,
    canonical_key,
    keys_per_query,
    match_keys_params,
    match_keys_sql,
)
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


def _keys_not_null(target: Target) -> str:
    """Warunek "wszystkie kolumny klucza niepuste" (SQLite dopuszcza NULL w kluczu tabel z rowid)."""
    return " AND ".join(f"{column.quoted} IS NOT NULL" for column in target.key_columns)


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
    if len(target.key_columns) == 1:
        sql = f"SELECT {rconn.dialect['count']}({target.quoted_key}) FROM {target.quoted_table}"
    else:
        sql = f"SELECT {rconn.dialect['count']}(*) FROM {target.quoted_table} WHERE {_keys_not_null(target)}"
    return int(_read(rconn, "liczenie wierszy", sql)[0][0])


def max_key(rconn: RemoteConn, target: Target) -> Key | None:
    """Zwraca największy klucz jednokolumnowy albo ``None`` dla pustej tabeli.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target`` z kluczem jednokolumnowym.

    Returns:
        Największy klucz (w porządku źródła) albo ``None``.

    Raises:
        RemoteError: Klucz złożony albo błąd źródła.
    """
    if len(target.key_columns) != 1:
        raise RemoteError(f"max_key: klucz tabeli {target.table!r} jest złożony ({target.key})")
    sql = f"SELECT MAX({target.quoted_key}) FROM {target.quoted_table}"
    value = _read(rconn, "odczyt największego klucza", sql)[0][0]
    return None if value is None else canonical_key(target, (value,))


def page_sql(
    db_type: str, target: Target, first_page: bool, limit: int, column_sql: str | None = None
) -> str:
    """Buduje zapytanie jednej strony (kolumny klucza, tekst) stronicowanej po kluczu.

    Strona idzie w porządku źródła (``ORDER BY`` kolumn klucza, ich sortowanie i indeks), nigdy
    przez OFFSET.

    Args:
        db_type: mysql, pgsql, mssql albo sqlite.
        target: Wynik ``resolve_target``.
        first_page: ``True`` = bez warunku na klucz (bez parametrów).
        limit: Maksymalna liczba wierszy strony.
        column_sql: Wyrażenie zamiast kolumny tekstowej (np. hash liczony przez źródło).

    Returns:
        SQL z parametrami ``after_key_params`` (``%s`` albo ``?``), chyba że ``first_page``.
    """
    dialect = _dialect(db_type)
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"limit strony musi być dodatni (jest {limit})")
    where = _keys_not_null(target) if first_page else after_key_sql(dialect, target)
    return dialect["page"].format(
        key=target.quoted_key,
        column=target.quoted_column if column_sql is None else column_sql,
        table=target.quoted_table,
        where=where,
        limit=limit,
    )


def fetch_page(
    rconn: RemoteConn, target: Target, after_key: Key | None, limit: int
) -> list[tuple[Key, str | None]]:
    """Pobiera jedną stronę wierszy (klucz, tekst) z tabeli źródłowej.

    Stronicowanie po kluczu (keyset): tylko wiersze z kluczem większym niż ``after_key``
    w porządku źródła, co najwyżej ``limit`` wierszy.

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        after_key: Ostatni przetworzony klucz albo ``None`` dla pierwszej strony.
        limit: Maksymalna liczba wierszy (``BATCH_SIZE``).

    Returns:
        Lista krotek ``(klucz, text)``; klucz kanoniczny (skalar albo krotka); pusta, gdy nie ma
        więcej wierszy.

    Raises:
        RemoteError: Gdy źródło zwróci błąd połączenia lub zapytania.
    """
    first = after_key is None
    sql = page_sql(rconn.db_type, target, first, limit)
    params = () if first else after_key_params(rconn.dialect, target, after_key)
    width = len(target.key_columns)
    with _driver_errors(rconn, "odczyt strony"):
        rows = _read(rconn, "odczyt strony", sql, params)
        return [(canonical_key(target, row[:width]), _to_text(row[width])) for row in rows]


def iter_pages(
    rconn: RemoteConn, target: Target, after_key: Key | None, limit: int, hash_sql: str | None = None
) -> Iterator[list[tuple[Key, str | None]]]:
    """Iteruje po stronach tabeli źródłowej (keyset, nigdy OFFSET).

    Każda strona to osobne zapytanie, więc pamięć nie rośnie z rozmiarem tabeli. Kończy po
    stronie pustej albo krótszej niż ``limit`` (pusta strona nie jest zwracana).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        after_key: Klucz, od którego (wyłącznie) zacząć, albo ``None`` od początku.
        limit: Rozmiar strony.
        hash_sql: Wyrażenie ``source_hash_sql``: strony ``(klucz, hash)`` zamiast ``(klucz, tekst)``.

    Yields:
        Listy krotek ``(klucz, text)`` w porządku źródła.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    while True:
        if hash_sql is None:
            page = fetch_page(rconn, target, after_key, limit)
        else:
            page = fetch_hash_page(rconn, target, after_key, limit, hash_sql)
        if page:
            yield page
        if len(page) < limit:
            return
        after_key = page[-1][0]


def _column_map(target: Target) -> dict[str, str]:
    """Kolumny sprawdzone w katalogu: nazwa -> identyfikator zacytowany."""
    mapping = {column.name: column.quoted for column in target.key_columns}
    mapping[target.column] = target.quoted_column
    mapping.update(target.quoted_extra)
    return mapping


def quoted_columns(target: Target, columns: Sequence[str]) -> list[str]:
    """Zamienia nazwy kolumn na identyfikatory; tylko kolumny z ``Target``.

    Raises:
        RemoteError: Kolumna spoza ``Target`` (niesprawdzona w katalogu).
    """
    mapping = _column_map(target)
    unknown = [name for name in columns if name not in mapping]
    if unknown:
        raise RemoteError(
            f"kolumny {', '.join(map(repr, unknown))} nie zostały sprawdzone w katalogu tabeli "
            f"{target.table!r}; podaj je w extra_columns przy resolve_target"
        )
    return [mapping[name] for name in columns]


def unique_keys(keys: Sequence[Key]) -> list[Key]:
    """Klucze bez powtórzeń, w kolejności pierwszego wystąpienia."""
    return list(dict.fromkeys(keys))


def fetch_by_keys(
    rconn: RemoteConn, target: Target, keys: Sequence[Key], columns: Sequence[str] | None = None
) -> dict[Key, tuple]:
    """Pobiera wskazane wiersze po kluczach (porcjami po ``KEYS_PER_QUERY`` kluczy).

    Wynik jest indeksowany kluczem tak, jak zwróciło go źródło: pod sortowaniem bez rozróżniania
    wielkości liter zapytanie o ``'apple'`` może zwrócić wiersz ``'Apple'`` - ten nie trafi pod
    klucz ``'apple'`` (klucze porównujemy bajt po bajcie).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        keys: Klucze wierszy (skalary albo krotki).
        columns: Kolumny z ``target`` (kolumna, klucz lub ``extra_columns``); domyślnie
            ``(target.column,)``.

    Returns:
        Słownik ``klucz -> krotka wartości kolumn``; wierszy, których nie ma, brak w słowniku.
        Wartości tekstowe (także BLOB/bytea) jako ``str``.

    Raises:
        RemoteError: Nieznana kolumna albo błąd źródła.
    """
    names = list(columns) if columns is not None else [target.column]
    selected = ", ".join(quoted_columns(target, names))
    width = len(target.key_columns)
    result: dict[Key, tuple] = {}
    wanted = unique_keys(keys)
    step = keys_per_query(target, KEYS_PER_QUERY)
    with _driver_errors(rconn, "odczyt wierszy po kluczach"):
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            sql = (
                f"SELECT {target.quoted_key}, {selected} FROM {target.quoted_table} "
                f"WHERE {match_keys_sql(rconn.dialect, target, len(chunk))}"
            )
            for row in _read(rconn, "odczyt wierszy po kluczach", sql, match_keys_params(chunk)):
                result[canonical_key(target, row[:width])] = tuple(_to_text(value) for value in row[width:])
    return result


# --- hash tekstu liczony przez źródło ------------------------------------------------------


def source_hash_sql(rconn: RemoteConn, target: Target, method: str) -> str | None:
    """Wyrażenie SQL hasha tekstu kolumny liczonego przez źródło albo ``None``, gdy źródło nie umie.

    Hash ma być tym samym co ``db_utils.hash_text`` (metoda zadania nad bajtami UTF-8, szesnastkowo
    małymi literami, NULL dla NULL). ``None``: dialekt bez funkcji skrótu (SQLite), metoda, której
    dialekt nie ma (np. sha1 w PostgreSQL), albo typ kolumny, dla którego hash źródła widziałby
    inne bajty niż sterownik (BLOB, bytea, char(n) w PostgreSQL). Czy wynik naprawdę się zgadza,
    sprawdza wołający na pierwszej stronie (np. stary MS SQL bez sortowań UTF-8).

    Args:
        rconn: Połączenie zwrócone przez ``connect``.
        target: Wynik ``resolve_target``.
        method: ``task.hash_method``.

    Returns:
        Wyrażenie z zacytowaną kolumną albo ``None``.
    """
    template = rconn.dialect["text_hash"].get(method)
    if template is None or _normalize_type(target.column_type) not in rconn.dialect["hash_types"]:
        return None
    return template.format(column=target.quoted_column)


def fetch_hash_page(
    rconn: RemoteConn, target: Target, after_key: Key | None, limit: int, hash_sql: str
) -> list[tuple[Key, str | None]]:
    """Jak ``fetch_page``, ale zamiast tekstu hash liczony przez źródło (``source_hash_sql``).

    Ta sama strona keyset w porządku źródła; ze źródła idzie klucz i 64 znaki hasha zamiast tekstu.

    Returns:
        Lista krotek ``(klucz, hash albo None dla tekstu NULL)``.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    first = after_key is None
    sql = page_sql(rconn.db_type, target, first, limit, column_sql=hash_sql)
    params = () if first else after_key_params(rconn.dialect, target, after_key)
    width = len(target.key_columns)
    with _driver_errors(rconn, "odczyt hashy strony"):
        rows = _read(rconn, "odczyt hashy strony", sql, params)
        return [
            (canonical_key(target, row[:width]), None if row[width] is None else str(row[width]).lower())
            for row in rows
        ]


def can_fingerprint(rconn: RemoteConn, target: Target) -> bool:
    """Czy źródło policzy odcisk strony (``fetch_page_fingerprint``): dialekt z szablonem, klucz całkowity."""
    return bool(rconn.dialect.get("page_fingerprint")) and target.single_integer_key


def fetch_page_fingerprint(
    rconn: RemoteConn, target: Target, after_key: Key | None, limit: int, hash_sql: str
) -> tuple[int, Key | None, str | None]:
    """Odcisk strony keyset liczony przez źródło: liczba wierszy, ostatni klucz, sha256 linii ``[klucz]<TAB>hash``.

    Ze źródła idzie jeden wiersz na stronę zamiast wiersza na wiersz. Format odcisku jest ten sam,
    co ``task_item.next_fingerprint`` (linie rozdzielone ``\\n``, hash NULL jako pusty napis), więc
    równe odciski znaczą te same klucze w tej samej kolejności z tymi samymi hashami.

    Args:
        rconn: Połączenie (``can_fingerprint``).
        target: Wynik ``resolve_target`` z jedną kolumną całkowitą klucza.
        after_key: Klucz, za którym zaczyna się strona, albo ``None``.
        limit: Rozmiar strony.
        hash_sql: Wyrażenie ``source_hash_sql``.

    Returns:
        ``(liczba wierszy, ostatni klucz albo None, odcisk albo None dla pustej strony)``.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    first = after_key is None
    dialect = rconn.dialect
    sql = dialect["page_fingerprint"].format(
        key=target.quoted_key,
        hash=hash_sql,
        table=target.quoted_table,
        where=_keys_not_null(target) if first else after_key_sql(dialect, target),
        limit=int(limit),
    )
    params = () if first else after_key_params(dialect, target, after_key)
    count, last, fingerprint = _read(rconn, "odcisk strony", sql, params)[0]
    return int(count), None if last is None else canonical_key(target, (last,)), fingerprint


def fetch_page_starts(
    rconn: RemoteConn, target: Target, after_key: Key | None, limit: int, count: int
) -> list[Key]:
    """Ostatnie klucze kolejnych pełnych stron keyset po ``limit`` wierszy za ``after_key`` (najwyżej ``count``).

    Klucz ``i``-ty kończy ``i``-tą stronę i zaczyna następną; pusta lista, gdy za ``after_key`` jest
    mniej niż ``limit`` wierszy. Tylko dialekty z szablonem ``page_starts`` i klucz całkowity.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    dialect = rconn.dialect
    first = after_key is None
    sql = dialect["page_starts"].format(
        key=target.quoted_key,
        table=target.quoted_table,
        where=_keys_not_null(target) if first else after_key_sql(dialect, target),
        offset=int(limit) - 1,
        count=int(count),
    )
    params = () if first else after_key_params(dialect, target, after_key)
    return [canonical_key(target, (row[0],)) for row in _read(rconn, "podział na strony", sql, params)]


# Ile stron naprzód dzieli jedno zapytanie ``fetch_page_starts`` przy odciskach równoległych
# (~6,5 ms na stronę 100 000 wierszy, czyli mniej niż odcisk jednej strony, z którym się nakłada).
PLANNED_PAGES = 32


def iter_page_fingerprints(
    rconn: RemoteConn,
    target: Target,
    after_key: Key | None,
    limit: int,
    hash_sql: str,
    spare: Sequence[RemoteConn] = (),
) -> Iterator[tuple[Key | None, int, Key, str]]:
    """Kolejne odciski stron (``fetch_page_fingerprint``) do końca tabeli.

    Z połączeniami ``spare`` (i szablonem ``page_starts`` dialektu) strony liczy źródło równolegle
    na wszystkich połączeniach - patrz ``_parallel_page_fingerprints``; wynik jest ten sam.

    Yields:
        ``(klucz przed stroną, liczba wierszy, ostatni klucz, odcisk)``; kończy po stronie krótszej niż ``limit``.
    """
    if spare and rconn.dialect.get("page_starts"):
        yield from _parallel_page_fingerprints([rconn, *spare], target, after_key, limit, hash_sql)
        return
    while True:
        count, last, fingerprint = fetch_page_fingerprint(rconn, target, after_key, limit, hash_sql)
        if count:
            yield after_key, count, last, fingerprint
        if count < limit:
            return
        after_key = last


def _parallel_page_fingerprints(
    rconns: list[RemoteConn], target: Target, after_key: Key | None, limit: int, hash_sql: str
) -> Iterator[tuple[Key | None, int, Key, str]]:
    """Odciski stron keyset liczone na kilku połączeniach naraz, oddawane po kolei.

    Strona keyset zaczyna się za ostatnim kluczem poprzedniej, więc kolejne strony zależą od siebie.
    Tu granice stron zna się z góry: ``fetch_page_starts`` czyta sam indeks klucza (~3 % kosztu
    odcisku strony) na jednym połączeniu, gdy drugie liczy już pierwszą stronę. Każda strona to
    dalej to samo zapytanie keyset ``fetch_page_fingerprint`` (za kluczem, ``LIMIT``), więc gdy
    źródło się nie zmienia, strony i odciski są identyczne z odczytem po kolei. Gdy ostatni klucz
    strony nie jest początkiem następnej zaplanowanej (wiersze dopisane lub usunięte w międzyczasie),
    dalsze zaplanowane strony są odrzucane i podział liczy się od nowa od tego klucza - oddany ciąg
    stron zawsze się styka, jak przy odczycie po kolei.
    """
    idle: queue.SimpleQueue[RemoteConn] = queue.SimpleQueue()
    for rconn in rconns:
        idle.put(rconn)

    def on_idle(read: Callable[..., Any], *args: Any) -> Any:
        rconn = idle.get()
        try:
            return read(rconn, *args)
        finally:
            idle.put(rconn)

    def page(after: Key | None) -> Future:
        return pool.submit(on_idle, fetch_page_fingerprint, target, after, limit, hash_sql)

    pool = ThreadPoolExecutor(len(rconns), thread_name_prefix="source-fingerprint")
    futures: dict[int, Future] = {}
    try:
        after = after_key
        while True:
            futures = {0: page(after)}
            afters = [after, *on_idle(fetch_page_starts, target, after, limit, PLANNED_PAGES)]
            for index, page_after in enumerate(afters):
                for ahead in range(index + 1, min(len(afters), index + 1 + len(rconns))):
                    if ahead not in futures:
                        futures[ahead] = page(afters[ahead])
                count, last, fingerprint = futures.pop(index).result()
                if count:
                    yield page_after, count, last, fingerprint
                if count < limit:
                    return
                after = last
                if index + 1 < len(afters) and afters[index + 1] != last:
                    break  # źródło zmieniło się między podziałem a odciskiem: podział od nowa
            for future in futures.values():
                future.cancel()
    finally:
        for future in futures.values():
            future.cancel()
        pool.shutdown(wait=True)


def fetch_hash_range(
    rconn: RemoteConn, target: Target, after_key: Key | None, last_key: Key, limit: int, hash_sql: str
) -> list[tuple[Key, str | None]]:
    """Wiersze ``(klucz, hash)`` z kluczem w ``(after_key, last_key]`` (klucz całkowity), stronami po ``limit``."""
    rows: list[tuple[Key, str | None]] = []
    while True:
        page = fetch_hash_page(rconn, target, after_key, limit, hash_sql)
        inside = [row for row in page if row[0] <= last_key]
        rows += inside
        if len(page) < limit or len(inside) < len(page) or page[-1][0] == last_key:
            return rows
        after_key = page[-1][0]


# --- odciski zakresów kluczy (resync zawężany do zmienionych wierszy) ------------------------


def can_fingerprint_ranges(rconn: RemoteConn, target: Target) -> bool:
    """Czy źródło policzy odciski zakresów kluczy (``range_fingerprints``): dialekt z szablonem, klucz jednokolumnowy."""
    return bool(rconn.dialect.get("range_fingerprints")) and len(target.key_columns) == 1


def _range_where(
    dialect: dict[str, Any], target: Target, low: Key | None, high: Key | None
) -> tuple[str, list]:
    """Warunek zakresu kluczy ``(low, high]`` w porządku źródła (``None`` = bez granicy) i jego parametry."""
    mark = dialect["placeholder"]
    parts, params = [_keys_not_null(target)], []
    if low is not None:
        parts.append(f"{target.quoted_key} > {mark}")
        params.append(low)
    if high is not None:
        parts.append(f"{target.quoted_key} <= {mark}")
        params.append(high)
    return " AND ".join(parts), params


def range_fingerprints(
    rconn: RemoteConn, target: Target, hash_sql: str, low: Key | None, highs: Sequence[Key | None]
) -> list[tuple[int, str | None]]:
    """Odciski kolejnych zakresów kluczy ``(low, highs[0]]``, ``(highs[0], highs[1]]``, ... jednym zapytaniem.

    Format odcisku jest ten sam, co ``task_item.next_fingerprint`` (sha256 z linii
    ``remote_key<TAB>hash`` rozdzielonych ``\\n``, w porządku klucza źródła), więc równe liczby
    i odciski znaczą te same klucze z tymi samymi hashami. Klucz w linii składa źródło (JSON),
    a gdyby zapisało go inaczej niż ``encode_key``, zakres tylko wyda się różny i zostanie
    przeczytany wierszami - nigdy nie będzie fałszywie równy.

    Args:
        rconn: Połączenie (``can_fingerprint_ranges``).
        target: Wynik ``resolve_target`` z jedną kolumną klucza.
        hash_sql: Wyrażenie ``source_hash_sql``.
        low: Klucz przed pierwszym zakresem albo ``None`` (od początku).
        highs: Ostatnie klucze kolejnych zakresów; ostatni może być ``None`` (do końca tabeli).

    Returns:
        ``(liczba wierszy, odcisk albo None)`` dla każdego zakresu, w kolejności ``highs``.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    dialect = rconn.dialect
    mark = dialect["placeholder"]
    kind = "int" if target.single_integer_key else "other"
    line = dialect["key_line"][kind].format(key=target.quoted_key)
    where, params = _range_where(dialect, target, low, highs[-1])
    inner = list(highs[:-1])
    whens = " ".join(f"WHEN {target.quoted_key} <= {mark} THEN {i}" for i in range(len(inner)))
    bucket = f"CASE {whens} ELSE {len(inner)} END" if inner else "0"
    sql = dialect["range_fingerprints"].format(
        key=target.quoted_key, line=line, hash=hash_sql, bucket=bucket, table=target.quoted_table, where=where
    )
    if rconn.db_type == "mysql":
        # GROUP_CONCAT zakresu: do kilkudziesięciu tysięcy linii po ~100 bajtów.
        with _driver_errors(rconn, "odciski zakresów"):
            with rconn.conn.cursor() as cursor:
                cursor.execute("SET SESSION group_concat_max_len = 1073741824")
    found = {
        int(row[0]): (int(row[1]), row[2]) for row in _read(rconn, "odciski zakresów", sql, [*inner, *params])
    }
    return [found.get(i, (0, None)) for i in range(len(highs))]


def fetch_hash_between(
    rconn: RemoteConn, target: Target, low: Key | None, high: Key | None, limit: int, hash_sql: str
) -> list[tuple[Key, str | None]]:
    """Najwyżej ``limit`` pierwszych wierszy ``(klucz, hash)`` z kluczem w ``(low, high]``, w porządku źródła."""
    dialect = rconn.dialect
    where, params = _range_where(dialect, target, low, high)
    sql = dialect["page"].format(
        key=target.quoted_key, column=hash_sql, table=target.quoted_table, where=where, limit=int(limit)
    )
    with _driver_errors(rconn, "odczyt hashy zakresu"):
        return [
            (canonical_key(target, row[:1]), None if row[1] is None else str(row[1]).lower())
            for row in _read(rconn, "odczyt hashy zakresu", sql, params)
        ]


def max_cursor(rconn: RemoteConn, target: Target) -> Any:
    """Największa wartość kolumny kursora (``target.quoted_cursor``) albo ``None`` dla pustej tabeli."""
    sql = f"SELECT MAX({target.quoted_cursor}) FROM {target.quoted_table}"
    return _read(rconn, "odczyt kursora", sql)[0][0]


def fetch_cursor_page(
    rconn: RemoteConn, target: Target, since: Any, after_key: Key | None, limit: int
) -> list[tuple[Key, str | None]]:
    """Strona keyset wierszy ``(klucz, tekst)`` z kursorem ``>= since`` (``since`` None: wszystkie z kursorem)."""
    dialect = rconn.dialect
    mark = dialect["placeholder"]
    where, params = _range_where(dialect, target, after_key, None)
    if since is None:
        where += f" AND {target.quoted_cursor} IS NOT NULL"
    else:
        where += f" AND {target.quoted_cursor} >= {mark}"
        params.append(since)
    sql = dialect["page"].format(
        key=target.quoted_key,
        column=target.quoted_column,
        table=target.quoted_table,
        where=where,
        limit=int(limit),
    )
    with _driver_errors(rconn, "odczyt wierszy po kursorze"):
        return [
            (canonical_key(target, row[:1]), _to_text(row[1]))
            for row in _read(rconn, "odczyt wierszy po kursorze", sql, params)
        ]


# Ile zakresów najwyżej w jednym zapytaniu ``fetch_hash_ranges`` (parametry: 4 na zakres).
RANGES_PER_QUERY = 200


def fetch_hash_ranges(
    rconn: RemoteConn, target: Target, ranges: Sequence[tuple[Key | None, Key | None]], hash_sql: str
) -> list[list[tuple[Key, str | None]]]:
    """Wiersze ``(klucz, hash)`` kilku rozłącznych zakresów kluczy ``(low, high]`` - jedno zapytanie na ``RANGES_PER_QUERY``.

    Zakresy podaje się rosnąco w porządku źródła; wynik to lista wierszy (w porządku źródła) dla
    każdego zakresu. Numer zakresu wiersza liczy źródło (``CASE``), bo porządek kluczy źródła
    (sortowanie, UUID) nie musi być porządkiem Pythona.
    """
    result: list[list[tuple[Key, str | None]]] = []
    for start in range(0, len(ranges), RANGES_PER_QUERY):
        chunk = ranges[start : start + RANGES_PER_QUERY]
        conditions, params = [], []
        for low, high in chunk:
            where, values = _range_where(rconn.dialect, target, low, high)
            conditions.append(f"({where})")
            params.extend(values)
        whens = " ".join(f"WHEN {condition} THEN {i}" for i, condition in enumerate(conditions))
        sql = (
            f"SELECT {target.quoted_key}, {hash_sql}, CASE {whens} END FROM {target.quoted_table} "
            f"WHERE {' OR '.join(conditions)} ORDER BY {target.quoted_key}"
        )
        found: list[list[tuple[Key, str | None]]] = [[] for _ in chunk]
        with _driver_errors(rconn, "odczyt hashy zakresów"):
            for row in _read(rconn, "odczyt hashy zakresów", sql, [*params, *params]):
                found[int(row[2])].append(
                    (canonical_key(target, row[:1]), None if row[1] is None else str(row[1]).lower())
                )
        result.extend(found)
    return result


# --- strumień całej tabeli (COPY) -----------------------------------------------------------

COPY_NULL = b"\\N"


def copy_field_bytes(field: bytes) -> bytes:
    """Pole wiersza COPY (format tekstowy, nie ``\\N``) -> bajty tekstu w UTF-8, bez dekodowania.

    PostgreSQL w ``COPY ... TO`` poprzedza backslashem tylko ``\\b \\f \\n \\r \\t \\v`` i sam
    backslash (inne znaki sterujące idą wprost, ósemkowych ani szesnastkowych nie wysyła), a każda
    z tych sekwencji znaczy w Pythonie to samo: ``codecs.escape_decode`` (C, ~8x szybciej niż
    wyrażenie regularne z dekodowaniem UTF-8) odwraca je dokładnie.
    """
    return codecs.escape_decode(field)[0] if b"\\" in field else field


def copy_unescape(field: bytes) -> str | None:
    """Pole wiersza COPY (format tekstowy) -> tekst; ``\\N`` -> ``None``.

    Raises:
        UnicodeDecodeError: Bajty nie są poprawnym UTF-8.
    """
    if field == COPY_NULL:
        return None
    return copy_field_bytes(field).decode("utf-8")


def _lost_connection(rconn: RemoteConn) -> str | None:
    """Opis błędu połączenia, gdy nie odpowiada ono na ``SELECT 1``; ``None``, gdy działa."""
    try:
        cursor = rconn.conn.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
    except rconn.dialect["errors"]() as exc:
        return _describe(exc)
    _rollback(rconn)
    return None


def can_copy(rconn: RemoteConn, target: Target) -> bool:
    """Czy źródło umie oddać całą tabelę strumieniem COPY z tekstem takim jak kursor (``copy_rows``)."""
    # Baza SQL_ASCII oddaje w COPY surowe bajty bez kontroli UTF-8; strony przez kursor dekodują je
    # i zatrzymują odczyt zdaniem o kodowaniu (``encodings.SQL_ASCII_HINT``), zamiast zapisać złe bajty.
    if target.charset_of(target.column).upper() == "SQL_ASCII":
        return False
    return bool(rconn.dialect["copy"]) and _normalize_type(target.column_type) in rconn.dialect["copy_types"]


def copy_rows(
    rconn: RemoteConn, target: Target, after_key: Key | None, write: Callable[[bytes], Any]
) -> None:
    """Strumień wierszy ``(kolumny klucza, tekst)`` za ``after_key`` w porządku źródła (PostgreSQL ``COPY``).

    Jedno zapytanie zamiast stron: serwer wysyła wiersze, a ``write`` dostaje każdy wiersz osobno
    jako bajty formatu tekstowego COPY (pola rozdzielone tabulatorem, ``\\n`` na końcu, ucieczki
    odwraca ``copy_unescape``). Wyjątek z ``write`` przerywa strumień i wychodzi z funkcji.
    Wartości klucza idą do SQL jako literały przygotowane przez sterownik (COPY nie ma parametrów).

    Args:
        rconn: Połączenie zwrócone przez ``connect`` (dialekt z ``copy``; patrz ``can_copy``).
        target: Wynik ``resolve_target``.
        after_key: Klucz, za którym zacząć, albo ``None`` od początku.
        write: Wołana z każdym wierszem.

    Raises:
        RemoteError: Gdy źródło zwróci błąd.
    """
    dialect = rconn.dialect
    with _driver_errors(rconn, "odczyt tabeli (COPY)"):
        cursor = rconn.conn.cursor()
        try:
            if after_key is None:
                where = _keys_not_null(target)
            else:
                # Znak NUL nie występuje w identyfikatorach PostgreSQL: bezpieczny znacznik parametru.
                marked = after_key_sql({**dialect, "placeholder": "\0"}, target).split("\0")
                values = after_key_params(dialect, target, after_key)
                literals = [cursor.mogrify("%s", (value,)).decode("utf-8") for value in values]
                where = marked[0] + "".join(
                    lit + part for lit, part in zip(literals, marked[1:], strict=True)
                )
            sql = dialect["copy"].format(
                key=target.quoted_key, column=target.quoted_column, table=target.quoted_table, where=where
            )
            sink = type("CopySink", (), {})()
            sink.write = write
            try:
                cursor.copy_expert(sql, sink)
            except dialect["errors"]() as exc:
                # Zerwane połączenie w trakcie COPY libpq zgłasza bez komunikatu ("no message from the
                # libpq"); przyczynę mówi dopiero następne zapytanie na tym połączeniu.
                lost = _lost_connection(rconn)
                if lost is None:
                    raise
                raise RemoteError(
                    f"odczyt tabeli (COPY) w źródle {rconn.label} nie powiodło się: {lost}"
                ) from exc
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
        _rollback(rconn)
