"""Bazy źródłowe: połączenie, katalog, stronicowanie po kluczu i zapis z kontrolą zmian.

Pakiet dzieli się według zadań (jak ``sql_database`` w dlt):

* ``dialects`` - tabela ``DIALECTS`` (cytowanie, parametry, szablony SQL, połączenie) i łączenie;
* ``catalog`` - tabela, kolumny i klucz sprawdzone w katalogu źródła (``resolve_target``);
* ``keys`` - wartości kluczy (postać kanoniczna, ``remote_key`` jako JSON) i warunki SQL po kluczu;
* ``reads`` - liczba wierszy, strony po kluczu, odczyt wierszy po kluczach;
* ``cas`` - zapis z kontrolą zmian (``compare_and_set``);
* ``encodings`` - zestawy znaków kolumn: czy tekst zapisze się bez zmiany (``unstorable_reason``).

Identyfikatory od użytkownika nigdy nie trafiają do SQL wprost: do zapytań idą wyłącznie nazwy
zwrócone przez katalog, zacytowane według dialektu. Pakiet nic nie wie o zadaniach ani o Dagsterze.
Wołający używają nazw z tego modułu (``db_remote.connect``, ``db_remote.iter_pages``...).
"""

from lib.db_remote.cas import CasResult, compare_and_set, lock_sql, update_sql
from lib.db_remote.catalog import INTEGER_TYPES, KeyColumn, Target, build_target, key_kind, resolve_target
from lib.db_remote.dialects import (
    DIALECTS,
    RemoteConn,
    close,
    connect,
    connection_label,
    mssql_connection_string,
    quote_identifier,
)
from lib.db_remote.encodings import unstorable_reason
from lib.db_remote.keys import Key, canonical_key, decode_key, encode_key, key_values
from lib.db_remote.reads import (
    COPY_NULL,
    KEYS_PER_QUERY,
    can_copy,
    can_fingerprint,
    can_fingerprint_ranges,
    copy_field_bytes,
    copy_rows,
    copy_unescape,
    count_rows,
    fetch_by_keys,
    fetch_cursor_page,
    fetch_hash_between,
    fetch_hash_page,
    fetch_hash_range,
    fetch_hash_ranges,
    fetch_page,
    fetch_page_fingerprint,
    fetch_page_starts,
    iter_page_fingerprints,
    iter_pages,
    max_cursor,
    max_key,
    page_sql,
    range_fingerprints,
    source_hash_sql,
)

__all__ = [
    "COPY_NULL",
    "DIALECTS",
    "INTEGER_TYPES",
    "KEYS_PER_QUERY",
    "CasResult",
    "Key",
    "KeyColumn",
    "RemoteConn",
    "Target",
    "build_target",
    "can_copy",
    "can_fingerprint",
    "can_fingerprint_ranges",
    "copy_rows",
    "copy_field_bytes",
    "copy_unescape",
    "canonical_key",
    "decode_key",
    "encode_key",
    "key_kind",
    "key_values",
    "close",
    "compare_and_set",
    "connect",
    "connection_label",
    "count_rows",
    "fetch_by_keys",
    "fetch_cursor_page",
    "fetch_hash_page",
    "fetch_hash_ranges",
    "fetch_hash_between",
    "fetch_hash_range",
    "fetch_page_fingerprint",
    "fetch_page_starts",
    "range_fingerprints",
    "iter_page_fingerprints",
    "fetch_page",
    "iter_pages",
    "lock_sql",
    "max_cursor",
    "max_key",
    "mssql_connection_string",
    "page_sql",
    "quote_identifier",
    "resolve_target",
    "source_hash_sql",
    "unstorable_reason",
    "update_sql",
]
