"""Zestawy znaków kolumn źródła: czy tekst da się zapisać bez zmiany i co powiedzieć operatorowi.

Odczyt jest zawsze w Unicode: MySQL/MariaDB przekodowuje kolumnę do ``utf8mb4`` połączenia,
PostgreSQL do ``client_encoding=UTF8``, SQL Server i SQLite oddają tekst Pythona. Zapis w drugą
stronę może się nie udać: kolumna ``latin1`` nie przechowa ``ą``, ``utf8mb3`` ani ``ucs2`` - emoji.
Zamiast pozwolić serwerowi odrzucić wiersz (tryb ścisły) albo - w SQL Server - po cichu zapisać
``?``, eksport sprawdza tekst wcześniej (``unstorable_reason``) i zostawia źródło bez zmian.

Baza PostgreSQL ``SQL_ASCII`` nie przekodowuje niczego: bajty idą w obie strony bez zmian, więc
tekst UTF-8 wraca bajt w bajt, a bajty, które nie są UTF-8, kończą odczyt błędem z jednym zdaniem
(``SQL_ASCII_HINT``).
"""

import codecs

# Zestaw znaków ze źródła (małe litery) -> kodek Pythona, osobno dla dialektu (``utf8`` w MySQL to
# utf8mb3, a w PostgreSQL pełne UTF-8); ``None`` = pełny Unicode. ``bmp`` = tylko znaki z BMP
# (najwyżej 3 bajty UTF-8 na znak, UCS-2). Zestaw spoza tabeli: decyduje serwer.
_CODECS: dict[str, dict[str, str | None]] = {
    "mysql": {
        "utf8mb4": None,
        "utf16": None,
        "utf16le": None,
        "utf32": None,
        "utf8mb3": "bmp",
        "utf8": "bmp",
        "ucs2": "bmp",
        "latin1": "cp1252",  # latin1 w MySQL to w praktyce cp1252
        "latin2": "iso8859_2",
        "latin5": "iso8859_9",
        "latin7": "iso8859_13",
        "ascii": "ascii",
        "cp1250": "cp1250",
        "cp1251": "cp1251",
        "cp1256": "cp1256",
        "cp1257": "cp1257",
        "cp850": "cp850",
        "cp852": "cp852",
        "cp866": "cp866",
        "greek": "iso8859_7",
        "hebrew": "iso8859_8",
        "koi8r": "koi8_r",
        "koi8u": "koi8_u",
        "macroman": "mac_roman",
        "macce": "mac_latin2",
        "sjis": "shift_jis",
        "cp932": "cp932",
        "ujis": "euc_jp",
        "eucjpms": "euc_jp",
        "euckr": "euc_kr",
        "gb2312": "gb2312",
        "gbk": "gbk",
        "gb18030": "gb18030",
        "big5": "big5",
        "tis620": "tis_620",
    },
    "pgsql": {
        "utf8": None,
        "sql_ascii": None,  # bajty bez zmian w obie strony
        "latin1": "latin_1",
        "latin2": "iso8859_2",
        "latin3": "iso8859_3",
        "latin4": "iso8859_4",
        "latin5": "iso8859_9",
        "latin6": "iso8859_10",
        "latin7": "iso8859_13",
        "latin8": "iso8859_14",
        "latin9": "iso8859_15",
        "latin10": "iso8859_16",
        "win1250": "cp1250",
        "win1251": "cp1251",
        "win1252": "cp1252",
        "win1253": "cp1253",
        "win1254": "cp1254",
        "win1255": "cp1255",
        "win1256": "cp1256",
        "win1257": "cp1257",
        "win1258": "cp1258",
        "win866": "cp866",
        "win874": "cp874",
        "koi8r": "koi8_r",
        "koi8u": "koi8_u",
        "iso_8859_5": "iso8859_5",
        "iso_8859_6": "iso8859_6",
        "iso_8859_7": "iso8859_7",
        "iso_8859_8": "iso8859_8",
        "euc_jp": "euc_jp",
        "euc_kr": "euc_kr",
        "euc_cn": "gb2312",
    },
    # SQL Server: strona kodowa sortowania kolumny varchar/char (``cp1252``); 65001 = UTF-8.
    "mssql": {"cp65001": None},
    "sqlite": {},
}

SQL_ASCII_HINT = (
    "baza PostgreSQL ma kodowanie SQL_ASCII (bez kontroli znaków), a kolumna zawiera bajty, które nie są "
    "poprawnym UTF-8; przekoduj te teksty w źródle do UTF-8 albo przenieś tabelę do bazy z kodowaniem UTF8"
)


def _codec(db_type: str, charset: str | None) -> str | None:
    """Kodek Pythona dla zestawu znaków źródła; ``None`` = każdy tekst się zmieści albo zestaw nieznany."""
    if not charset:
        return None
    name = charset.lower()
    known = _CODECS.get(db_type, {})
    if name in known:
        return known[name]
    if db_type == "mssql" and name.startswith("cp") and name[2:].isdigit():
        try:
            return codecs.lookup(name).name
        except LookupError:
            return None
    return None


def unstorable_chars(db_type: str, charset: str | None, text: str | None) -> list[str]:
    """Znaki tekstu, których kolumna o zestawie ``charset`` nie zapisze (bez powtórzeń, najwyżej 5).

    Args:
        db_type: Dialekt źródła (nazwy zestawów znaczą w nich co innego).
        charset: Zestaw znaków kolumny z katalogu źródła (``Target.charsets``); pusty = Unicode.
        text: Tekst do zapisu.

    Returns:
        Lista znaków; pusta, gdy tekst się zmieści albo zestaw znaków jest nieznany (wtedy
        decyduje serwer, a eksport i tak sprawdza hash po zapisie).
    """
    codec = _codec(db_type, charset)
    if codec is None or not text:
        return []
    bad: list[str] = []
    for char in dict.fromkeys(text):
        if codec == "bmp":
            fits = ord(char) <= 0xFFFF
        else:
            try:
                char.encode(codec)
                fits = True
            except UnicodeEncodeError:
                fits = False
        if not fits:
            bad.append(char)
            if len(bad) == 5:
                break
    return bad


def unstorable_reason(db_type: str, column: str, charset: str | None, text: str | None) -> str | None:
    """Jedno zdanie dla operatora, gdy kolumna nie zapisze tekstu bez zmiany; ``None``, gdy zapisze.

    Args:
        db_type: Dialekt źródła.
        column: Nazwa kolumny zapisu.
        charset: Jej zestaw znaków.
        text: Tekst do zapisu.
    """
    bad = unstorable_chars(db_type, charset, text)
    if not bad:
        return None
    shown = ", ".join(repr(char) for char in bad)
    return (
        f"kolumna {column!r} w źródle ma zestaw znaków {charset}, który nie zapisze znaków {shown}; "
        "zmień zestaw znaków kolumny na utf8mb4 (UTF-8) albo popraw tekst w przeglądzie - źródło nie zostało zmienione"
    )
