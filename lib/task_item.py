"""Wiersze pozycji ``task_item``: jedyne miejsce SQL na pozycjach zadania.

Tu są zapisy skanu (nowe, zmienione, przywrócone i usunięte pozycje), odczyty do porównania
i weryfikacji, rezerwacje i zapisy wyników AI, księgowanie eksportu, decyzje przeglądu i liczniki
przeliczane z pozycji. Reguły, których potrzeba w kilku zapytaniach (które pozycje bierze AI,
z którym hashem porównać tekst źródła), są zdefiniowane raz, tutaj, i z nich budowane są
wszystkie zapytania.

Funkcje nie zatwierdzają transakcji, chyba że docstring mówi inaczej: transakcją rządzi wołający
(np. partia skanu zapisuje pozycje i licznik zadania razem).
"""

from decimal import Decimal
from typing import Any

from lib import faults
from lib.db_local import MySQL, retry_on_deadlock, sql_literal
from lib.errors import LocalDbError

# --- reguły -----------------------------------------------------------------------------

# Pozycja, którą AI mogłoby przetworzyć (bez limitu prób): do korekty, nieusunięta, z tekstem.
# Pozycja czekająca w batchu OpenAI (``id_ai_batch``) nie jest kandydatem, dopóki batch jej nie odda.
# Tekst bez hasha (``hash_missing``, stan zgłaszany przez weryfikację; synchronizacja zawsze liczy
# hash) też nie: hash jest kluczem identycznych tekstów (jedno zapytanie na tekst, ``custom_id``
# batcha, liczba różnych tekstów), a zapis wyniku i eksport porównują go ze źródłem.
_AI_WAITING = (
    "{a}status IN ('pending','outdated') AND {a}deleted_at IS NULL "
    "AND {a}text_original IS NOT NULL AND {a}text_original <> '' AND {a}original_hash IS NOT NULL "
    "AND {a}id_ai_batch IS NULL"
)
# Faza nauki: dopóki zadanie ma otwartego pilota (``ai_pilot.status`` running/in_learning), AI bierze
# tylko pozycje tego pilota (``task_item.id_ai_pilot``); reszta czeka na zatwierdzenie pilota.
# Ta sama reguła działa w rezerwacjach, w sensorze i w trybie cron ``ai.py`` (``ai_work_exists_sql``).
PILOT_OPEN_STATUSES = ("running", "in_learning")
_PILOT_HOLD = (
    " AND NOT EXISTS (SELECT 1 FROM ai_pilot p WHERE p.id_task={t}id_task "
    "AND p.status IN (" + ",".join(f"'{status}'" for status in PILOT_OPEN_STATUSES) + ") "
    "AND NOT p.id_ai_pilot <=> {t}id_ai_pilot)"
)
_AI_CANDIDATE = _AI_WAITING + _PILOT_HOLD


def owner_dead_sql(column: str, locks: int) -> str:
    """Warunek SQL "właściciel operacji nie żyje": wszystkie jego blokady (``prefiks + uuid``) są wolne.

    Run AI trzyma ``locks`` blokad na osobnych sesjach; zabicie jednej sesji nie czyni go martwym.
    Parametry ``%s``: prefiksy blokad (``locks`` sztuk).

    Args:
        column: Kolumna z uuid operacji (np. ``i.claim_uuid``, ``operation_uuid``).
        locks: Liczba blokad (prefiksów).
    """
    return " AND ".join([f"IS_FREE_LOCK(CONCAT(%s, {column})) = 1"] * locks)


def claim_free_sql(alias: str, locks: int) -> str:
    """Warunek SQL "rezerwacja pozycji jest wolna": brak, albo cudza i starsza niż limit albo martwa.

    Parametry ``%s`` w kolejności: własny uuid, ``AI_CLAIM_TIMEOUT_S``, prefiksy blokad (``locks``).

    Args:
        alias: Prefiks kolumn (``i.`` albo pusty).
        locks: Liczba blokad właściciela (``owner_dead_sql``).
    """
    return (
        f"({alias}claim_uuid IS NULL OR ({alias}claim_uuid <> %s AND ({alias}claimed_at IS NULL "
        f"OR {alias}claimed_at < NOW() - INTERVAL %s SECOND OR ({owner_dead_sql(alias + 'claim_uuid', locks)}))))"
    )


# Statusy, których wynik AI dla tego samego tekstu można użyć ponownie (``rejected`` celowo nie).
# Ta sama lista jest w wyrażeniu kolumny ``task_item.result_hash`` w ``lib/migrations/`` (indeks
# ``idx_task_item_result``: hash tylko pozycji z wynikiem, więc pierwsza synchronizacja, która
# wstawia same ``pending``, nie płaci za losowe wpisy indeksu hashy); test_schema pilnuje zgodności.
REUSABLE_STATUSES = ("processed", "accepted", "exported")


def ai_eligible_sql(alias: str = "") -> str:
    """Warunek SQL "pozycję może wziąć AI"; jeden parametr ``%s`` = ``AI_MAX_ATTEMPTS``.

    Args:
        alias: Alias tabeli ``task_item`` w zapytaniu (np. ``i``) albo pusty.

    Returns:
        Fragment ``WHERE`` (bez ``AND`` na początku).
    """
    prefix = f"{alias}." if alias else ""
    return _AI_CANDIDATE.format(a=prefix, t=prefix or "task_item.") + f" AND {prefix}ai_attempts < %s"


def ai_waiting_sql(alias: str = "") -> str:
    """Jak ``ai_eligible_sql``, ale bez wstrzymania przez pilota: pozycje, które AI weźmie kiedyś.

    Jeden parametr ``%s`` = ``AI_MAX_ATTEMPTS`` (wybór pozycji pilota, koszt prognozowany).
    """
    prefix = f"{alias}." if alias else ""
    return _AI_WAITING.format(a=prefix) + f" AND {prefix}ai_attempts < %s"


def ai_work_exists_sql(task_alias: str) -> str:
    """Warunek SQL "zadanie ma pozycje dla AI" dla zapytania po ``task``; parametr ``%s`` = ``AI_MAX_ATTEMPTS``.

    Args:
        task_alias: Alias tabeli ``task`` w zapytaniu wołającego.

    Returns:
        ``EXISTS (...)`` z regułą ``ai_eligible_sql``.
    """
    return (
        f"EXISTS (SELECT 1 FROM task_item i WHERE i.id_task={task_alias}.id_task AND {ai_eligible_sql('i')})"
    )


def ai_given_up_sql(alias: str = "") -> str:
    """Warunek SQL "AI się poddało" (ta sama pozycja co w ``ai_eligible_sql``, ale prób >= limit)."""
    prefix = f"{alias}." if alias else ""
    return _AI_WAITING.format(a=prefix) + f" AND {prefix}ai_attempts >= %s"


# Który hash pozycji odpowiada tekstowi w źródle: po eksporcie do synchronizowanej kolumny źródło
# trzyma text_corrected (local_hash), inaczej tekst z ostatniej synchronizacji (original_hash).
# Parametr %s = czy eksport pisze do synchronizowanej kolumny (``lib.source.exports_in_place``).
REFERENCE_HASH_SQL = "IF(status='exported' AND %s, local_hash, original_hash)"


def reference_hash(
    status: str, original_hash: str | None, local_hash: str | None, in_place: bool
) -> str | None:
    """Hash, z którym porównać bieżący tekst źródła (ta sama reguła co ``REFERENCE_HASH_SQL``).

    Args:
        status: Status pozycji.
        original_hash: Hash tekstu z ostatniej synchronizacji.
        local_hash: Hash ``text_corrected``.
        in_place: Czy eksport pisze do synchronizowanej kolumny.

    Returns:
        ``local_hash`` dla pozycji wyeksportowanej do synchronizowanej kolumny, inaczej ``original_hash``.
    """
    return local_hash if status == "exported" and in_place else original_hash


def _marks(values: list[Any] | tuple[Any, ...]) -> str:
    return ", ".join(["%s"] * len(values))


# --- skan -------------------------------------------------------------------------------


def has_items(db: MySQL, id_task: int) -> bool:
    """Czy zadanie ma już jakąkolwiek pozycję (pierwsza synchronizacja czy resync)."""
    return db.query_value("SELECT 1 FROM task_item WHERE id_task=%s LIMIT 1", (id_task,)) is not None


def _ord_range(low: int | None, high: int | None) -> tuple[str, tuple]:
    """Warunek zakresu pozycji w porządku źródła ``(low, high]`` (``None`` = bez ograniczenia)."""
    parts, params = [], []
    if low is not None:
        parts.append("source_ord > %s")
        params.append(low)
    if high is not None:
        parts.append("source_ord <= %s")
        params.append(high)
    return (" AND ".join(parts) or "source_ord IS NOT NULL"), tuple(params)


def items_by_keys(db: MySQL, id_task: int, remote_keys: list[str]) -> dict[str, tuple]:
    """Pozycje zadania o podanych kluczach (dokładnie, bajt po bajcie - sortowanie binarne ``remote_key``).

    Returns:
        Słownik ``remote_key -> (id_task_item, source_ord, original_hash, local_hash, status, deleted)``.
    """
    if not remote_keys:
        return {}
    rows = db.query(
        "SELECT remote_key, id_task_item, source_ord, original_hash, local_hash, status, "
        f"deleted_at IS NOT NULL AS deleted FROM task_item WHERE id_task=%s AND remote_key IN ({_marks(remote_keys)})",
        (id_task, *remote_keys),
    )
    return {r["remote_key"]: tuple(list(r.values())[1:]) for r in rows}


def items_after(
    db: MySQL, id_task: int, after: int | None, count: int, high: int | None = None
) -> list[tuple]:
    """Do ``count`` kolejnych pozycji (także usuniętych) za pozycją ``after`` (do ``high`` włącznie) w porządku źródła.

    Jeden odczyt zakresu pokrywającego indeksu ``idx_task_item_order`` zamiast wyszukiwania każdego
    klucza strony osobno (``items_by_keys``) i osobnego zapytania o zakres (``active_in_range``).

    Returns:
        Krotki ``(remote_key, id_task_item, source_ord, original_hash, local_hash, status, deleted)``
        rosnąco po ``source_ord`` (od drugiej pozycji: kształt wartości ``items_by_keys``).
    """
    bound, params = _ord_range(after, high)
    # Jeden napis zamiast wierszy: sterownik w Pythonie parsuje każde pole osobno (~10 µs na wiersz),
    # a linie rozdzielone tabulatorem dzieli str.split. remote_key (JSON) nie zawiera tabulatora ani
    # nowej linii; brak hasha to pusty napis (hash nigdy nie jest pusty).
    inner = (
        "SELECT remote_key, id_task_item, source_ord, original_hash, local_hash, status, "
        f"deleted_at IS NOT NULL AS deleted FROM task_item WHERE id_task=%s AND {bound} "
        "ORDER BY source_ord LIMIT %s"
    )
    packed = db.query_one(
        "SELECT COUNT(*) AS n, GROUP_CONCAT(CONCAT_WS('\\t', IFNULL(remote_key, ''), id_task_item, source_ord, "
        "IFNULL(original_hash, ''), IFNULL(local_hash, ''), IFNULL(status, ''), deleted) ORDER BY source_ord "
        f"SEPARATOR '\\n') AS packed FROM ({inner}) page",
        (id_task, *params, count),
    )
    lines = packed["packed"].split("\n") if packed["packed"] else []
    if len(lines) != int(packed["n"]):
        # Napis obcięty przez group_concat_max_len: zwykłe wiersze (wolniej, ale dokładnie).
        rows = db.query(inner, (id_task, *params, count))
        lines = [
            "\t".join("" if v is None else str(int(v) if k == "deleted" else v) for k, v in r.items())
            for r in rows
        ]
    items = []
    for line in lines:
        remote_key, id_item, ordinal, original_hash, local_hash, status, deleted = line.split("\t")
        items.append(
            (
                remote_key,
                int(id_item),
                int(ordinal),
                original_hash or None,
                local_hash or None,
                status,
                deleted == "1",
            )
        )
    return items


def nth_active_after(db: MySQL, id_task: int, after: int | None, count: int) -> tuple[str, int] | None:
    """``(remote_key, source_ord)`` ``count``-tej aktywnej pozycji za ``after`` albo ``None``, gdy jest ich mniej.

    Granica strony resyncu zakresami (``lib.sync``): sam pokrywający indeks ``idx_task_item_order``.
    """
    bound, params = _ord_range(after, None)
    row = db.query_one(
        f"SELECT remote_key, source_ord FROM task_item FORCE INDEX ({ORDER_INDEX}) WHERE id_task=%s "
        f"AND deleted_at IS NULL AND {bound} ORDER BY source_ord LIMIT 1 OFFSET %s",
        (id_task, *params, count - 1),
    )
    return None if row is None else (row["remote_key"], int(row["source_ord"]))


def key_at_ord(db: MySQL, id_task: int, ordinal: int) -> str | None:
    """``remote_key`` pozycji o pozycji ``ordinal`` w porządku źródła."""
    return db.query_value(
        "SELECT remote_key FROM task_item WHERE id_task=%s AND source_ord=%s", (id_task, ordinal)
    )


def active_in_range(db: MySQL, id_task: int, low: int | None, high: int) -> dict[int, str]:
    """Aktywne pozycje z pozycją w porządku źródła w ``(low, high]``: ``id_task_item -> remote_key``."""
    bound, params = _ord_range(low, high)
    rows = db.query(
        f"SELECT id_task_item, remote_key FROM task_item WHERE id_task=%s AND deleted_at IS NULL AND {bound}",
        (id_task, *params),
    )
    return {int(r["id_task_item"]): r["remote_key"] for r in rows}


def next_active_ord(db: MySQL, id_task: int, after: int | None) -> int | None:
    """Najmniejsza pozycja aktywnej pozycji większa niż ``after`` (``None``: brak takiej)."""
    bound, params = _ord_range(after, None)
    return db.query_value(
        f"SELECT MIN(source_ord) FROM task_item WHERE id_task=%s AND deleted_at IS NULL AND {bound}",
        (id_task, *params),
    )


def max_ord(db: MySQL, id_task: int) -> int | None:
    """Największa pozycja w porządku źródła wśród wszystkich pozycji zadania."""
    return db.query_value("SELECT MAX(source_ord) FROM task_item WHERE id_task=%s", (id_task,))


def shift_ords(db: MySQL, id_task: int, start: int, amount: int) -> int:
    """Przesuwa pozycje ``>= start`` o ``amount`` (robi miejsce na nowe wiersze między sąsiadami)."""
    return db.execute(
        "UPDATE task_item SET source_ord=source_ord+%s WHERE id_task=%s AND source_ord >= %s",
        (amount, id_task, start),
    )


def set_ords(db: MySQL, rows: list[tuple[int, int]]) -> None:
    """Zapisuje nowe pozycje w porządku źródła ``(id_task_item, source_ord)``."""
    for id_item, ordinal in rows:
        db.execute("UPDATE task_item SET source_ord=%s WHERE id_task_item=%s", (ordinal, id_item))


# Indeks pozycji w porządku źródła (``lib/migrations/``): pokrywa odciski i strony hashy.
ORDER_INDEX = "idx_task_item_order"
# Odcisk pozycji w porządku źródła: liczba, sha256 z linii ``remote_key<TAB>hash`` rozdzielonych ``\n``
# (ten sam format liczy ``lib.sync.engine`` i źródło, ``db_remote.fetch_page_fingerprint``) i ostatnia pozycja.
# Czyta tylko pokrywający indeks ``idx_task_item_order`` (bez tekstów). ``{order}`` to ``ORDER BY`` w
# ``GROUP_CONCAT`` albo pusty napis, gdy wiersze przychodzą już w porządku indeksu (``range_fingerprint``).
_FINGERPRINT_SQL = (
    "SELECT COUNT(*) AS n, SHA2(GROUP_CONCAT(CONCAT(remote_key, '\\t', IFNULL(ref, '')) "
    "{order}SEPARATOR '\\n'), 256) AS fp, MAX(source_ord) AS last_ord FROM ("
    "SELECT remote_key, source_ord, {ref} AS ref FROM task_item{index} "
    "WHERE id_task=%s AND deleted_at IS NULL AND {bound}{limit}) page"
)
# Odcisk samych kluczy (tryb kursora): ``%s`` zostaje, żeby parametry były te same.
_KEYS_ONLY_REF = "IF(%s, NULL, NULL)"


def next_fingerprint(
    db: MySQL, id_task: int, after: int | None, count: int, in_place: bool
) -> tuple[int, str | None, int | None]:
    """Odcisk ``count`` kolejnych aktywnych pozycji za pozycją ``after`` w porządku źródła.

    Gdy odcisk równa się odciskowi strony źródła o ``count`` wierszach, strona jest bez zmian:
    te same klucze w tej samej kolejności, te same hashe i brak usuniętych pomiędzy
    (``remote_key`` w JSON nie ma znaków sterujących).

    Returns:
        ``(liczba pozycji, odcisk, pozycja ostatniej)``.
    """
    bound, params = _ord_range(after, None)
    sql = _FINGERPRINT_SQL.format(
        order="ORDER BY source_ord ",
        ref=REFERENCE_HASH_SQL,
        index="",
        bound=bound,
        limit=" ORDER BY source_ord LIMIT %s",
    )
    row = db.query_one(sql, (in_place, id_task, *params, count))
    return int(row["n"]), row["fp"], row["last_ord"]


def range_fingerprint(
    db: MySQL, id_task: int, low: int | None, high: int | None, in_place: bool, keys_only: bool = False
) -> tuple[int, str | None, int | None]:
    """Odcisk aktywnych pozycji z pozycją w ``(low, high]`` (jak ``next_fingerprint``, ten sam format).

    Dla klucza całkowitego (pozycja = klucz) strona źródła ``(klucz przed nią, ostatni klucz]``
    jest bez zmian, gdy liczba i odcisk tego zakresu są równe jej liczbie i odciskowi. Zakres bez
    ``ORDER BY ... LIMIT`` MariaDB czyta jednym przejściem indeksu, bez tabeli pośredniej: przy
    1 000 000 pozycji 1,8 s zamiast 3,9 s dla wszystkich stron resyncu bez zmian.

    ``GROUP_CONCAT`` jest tu bez ``ORDER BY``: zakres wymuszonego indeksu ``idx_task_item_order``
    (``id_task``, ``source_ord``, ...) daje wiersze już w porządku pozycji, a sortowanie w
    ``GROUP_CONCAT`` kosztowało ponad połowę czasu zapytania (185 ms wobec 81 ms na 100 000
    pozycji). Gdyby serwer podał wiersze w innej kolejności, odcisk byłby inny niż odcisk źródła -
    strona zostałaby przeczytana wiersz po wierszu (wolniej, ale dokładnie), nigdy uznana za równą.
    ``keys_only``: odcisk samych kluczy (linie ``remote_key<TAB>``) - usunięte wiersze w trybie kursora.

    Returns:
        ``(liczba pozycji, odcisk, pozycja ostatniej)``.
    """
    bound, params = _ord_range(low, high)
    ref = _KEYS_ONLY_REF if keys_only else REFERENCE_HASH_SQL
    sql = _FINGERPRINT_SQL.format(
        order="", ref=ref, index=f" FORCE INDEX ({ORDER_INDEX})", bound=bound, limit=""
    )
    row = db.query_one(sql, (in_place, id_task, *params))
    return int(row["n"]), row["fp"], row["last_ord"]


# Kolumny nowej pozycji (``insert_items``, ``new_items_statement``); reszta z wartości domyślnych.
_NEW_ITEM_COLUMNS = "id_task, remote_key, remote_id, source_ord, text_original, original_hash"


def insert_items(
    db: MySQL, id_task: int, rows: list[tuple[str, int | None, int, str | None, str | None]]
) -> None:
    """Wstawia nowe pozycje ``(remote_key, remote_id, source_ord, tekst, hash)`` (status ``pending``).

    Raises:
        pymysql.IntegrityError: Klucz już jest w zadaniu (źródło ma powtórzony klucz).
    """
    if rows:
        db.executemany(
            f"INSERT INTO task_item ({_NEW_ITEM_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
            [(id_task, *row) for row in rows],
        )


# Wartości jednej nowej pozycji w ``new_items_statement``: literały SQL kolumn ``_NEW_ITEM_COLUMNS``.
NEW_ITEM_VALUES = b"(%b,%b,%b,%b,%b,%b)"


def new_items_statement(values: list[bytes]) -> bytes:
    """Wielowierszowy ``INSERT`` nowych pozycji z gotowych wartości (``NEW_ITEM_VALUES``)."""
    return b"INSERT INTO task_item (%b) VALUES %b" % (_NEW_ITEM_COLUMNS.encode(), b",".join(values))


def insert_statements(db: MySQL, statements: list[bytes], rows: int) -> None:
    """Wykonuje zapytania ``new_items_statement`` partii i sprawdza, że wstawiły ``rows`` pozycji.

    Raises:
        pymysql.IntegrityError: Klucz powtórzony (kod 1062) - jak ``insert_items``.
        LocalDbError: Serwer wstawił inną liczbę wierszy albo zgłosił ostrzeżenie (np. obcięcie
            w trybie bez ``STRICT``) - pozycja nie zostałaby zapisana dokładnie.
    """
    inserted = 0
    for statement in statements:
        inserted += db.execute_encoded(statement)
        warnings = db.query("SHOW WARNINGS LIMIT 3")
        if warnings:
            described = "; ".join(f"{w['Code']}: {w['Message']}" for w in warnings)
            raise LocalDbError(f"wstawianie nowych pozycji: ostrzeżenie serwera ({described})")
    if inserted != rows:
        raise LocalDbError(f"wstawianie nowych pozycji: serwer wstawił {inserted} z {rows}")


def revive_items(db: MySQL, ids: list[int]) -> None:
    """Przywraca pozycje, których wiersz wrócił do źródła (``deleted_at`` = NULL)."""
    if ids:
        db.execute(f"UPDATE task_item SET deleted_at=NULL WHERE id_task_item IN ({_marks(ids)})", ids)


def update_changed_items(db: MySQL, rows: list[tuple[int, str | None, str | None]]) -> None:
    """Zapisuje zmieniony tekst źródła ``(id_task_item, tekst, hash)``: ``is_changed=1``, wynik AI nieaktualny.

    Status liczony w SQL: wynik AI zapisany w międzyczasie też staje się nieaktualny (``outdated``).
    """
    # Jedno UPDATE na porcję pozycji (CASE po id) zamiast jednego na pozycję.
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        cases = " ".join(["WHEN %s THEN %s"] * len(chunk))
        ids = [id_item for id_item, _text, _digest in chunk]
        db.execute(
            f"UPDATE task_item SET text_original=CASE id_task_item {cases} END, "
            f"original_hash=CASE id_task_item {cases} END, is_changed=1, verified_at=NOW(), "
            "ai_attempts=0, ai_error=NULL, export_error=NULL, "
            f"status=IF(status='pending','pending','outdated') WHERE id_task_item IN ({_marks(ids)})",
            [
                *(value for id_item, text, _digest in chunk for value in (id_item, text)),
                *(value for id_item, _text, digest in chunk for value in (id_item, digest)),
                *ids,
            ],
        )


def mark_items_deleted(db: MySQL, ids: list[int]) -> int:
    """Oznacza pozycje jako usunięte ze źródła; zwraca liczbę oznaczonych teraz."""
    if not ids:
        return 0
    return db.execute(
        f"UPDATE task_item SET deleted_at=NOW() WHERE deleted_at IS NULL AND id_task_item IN ({_marks(ids)})",
        ids,
    )


def mark_tail_deleted(db: MySQL, id_task: int, last_ord: int | None) -> int:
    """Oznacza jako usunięte aktywne pozycje za ostatnim wierszem źródła (ogon po skanie).

    Args:
        db: Połączenie (transakcja wołającego).
        id_task: Zadanie.
        last_ord: Pozycja ostatniego wiersza źródła albo ``None`` (źródło puste: usunięte są wszystkie).

    Returns:
        Liczba oznaczonych pozycji.
    """
    if last_ord is None:
        return db.execute(
            "UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND deleted_at IS NULL", (id_task,)
        )
    return db.execute(
        "UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND deleted_at IS NULL "
        "AND (source_ord > %s OR source_ord IS NULL)",
        (id_task, last_ord),
    )


def mark_unseen_deleted(db: MySQL, id_task: int, base: int) -> int:
    """Po skanie z nową numeracją: aktywne pozycje bez nowej pozycji (``< base``) zniknęły ze źródła."""
    return db.execute(
        "UPDATE task_item SET deleted_at=NOW() WHERE id_task=%s AND deleted_at IS NULL "
        "AND (source_ord < %s OR source_ord IS NULL)",
        (id_task, base),
    )


# --- weryfikacja ------------------------------------------------------------------------


# Najwęższy indeks z ``deleted_at`` i ``hash_missing`` (``lib/migrations/``): liczenie aktywnych pozycji
# czyta tylko jego wpisy (dla pozycji bez wyniku AI ~20 bajtów zamiast ~170 w ``idx_task_item_order``).
RESULT_INDEX = "idx_task_item_result"


def active_counts(db: MySQL, id_task: int) -> tuple[int, int]:
    """Liczba aktywnych pozycji i pozycji bez hasha (tylko wąski indeks pokrywający, bez tekstów).

    Przy 1 000 000 pozycji 0,15 s przez ``idx_task_item_result`` wobec 0,75 s przez szeroki
    ``idx_task_item_order`` (i po pierwszej synchronizacji nie wypycha z bufora stron tamtego).
    """
    row = db.query_one(
        "SELECT COUNT(*) AS active, COALESCE(SUM(hash_missing),0) AS no_hash "
        f"FROM task_item FORCE INDEX ({RESULT_INDEX}) WHERE id_task=%s AND deleted_at IS NULL",
        (id_task,),
    )
    return int(row["active"]), int(row["no_hash"])


def verify_sample(db: MySQL, id_task: int, samples: int, sample_size: int) -> dict[str, dict[str, Any]]:
    """Próbka aktywnych pozycji rozłożona po porządku źródła: ``samples`` porcji po ``sample_size``.

    Returns:
        Słownik ``remote_key -> wiersz (remote_key, original_hash, local_hash, status)``.
    """
    # Pierwsza i ostatnia aktywna pozycja z indeksu idx_task_item_order, czytanego od końca zakresu
    # do pierwszego trafienia (MIN/MAX z warunkiem na deleted_at czytałyby cały indeks zadania).
    bound = (
        "SELECT source_ord FROM task_item WHERE id_task=%s AND deleted_at IS NULL AND source_ord IS NOT NULL "
        "ORDER BY source_ord {order} LIMIT 1"
    )
    rows: dict[str, dict[str, Any]] = {}
    lo = db.query_value(bound.format(order="ASC"), (id_task,))
    if lo is None:
        return rows
    lo, hi = int(lo), int(db.query_value(bound.format(order="DESC"), (id_task,)))
    for i in range(samples):
        start = lo + (hi - lo) * i // samples
        for row in db.query(
            "SELECT remote_key, original_hash, local_hash, status FROM task_item "
            "WHERE id_task=%s AND deleted_at IS NULL AND source_ord >= %s ORDER BY source_ord LIMIT %s",
            (id_task, start, sample_size),
        ):
            rows[row["remote_key"]] = row
    return rows


def integrity_counts(db: MySQL, id_task: int, active: tuple[int, int] | None = None) -> dict[str, int]:
    """Dane asset checków: zdublowane klucze, pozycje bez hasha, aktywne pozycje.

    Zdublowanych kluczy nie liczy, gdy wyklucza je sama baza: unikalny indeks
    ``idx_task_item_key (id_task, remote_key)`` (sprawdzany w katalogu; bez niego - ``GROUP BY``
    po wszystkich pozycjach zadania, 0,45 s przy 1 000 000).

    Args:
        db: Połączenie.
        id_task: Zadanie.
        active: ``active_counts`` policzone przed chwilą w tym samym runie (weryfikacja) albo
            ``None`` - wtedy liczone tutaj.

    Returns:
        Słownik: duplicates, missing_hash, active_items.
    """
    if unique_key_enforced(db):
        duplicates = 0
    else:
        duplicates = db.query_value(
            "SELECT COUNT(*) FROM (SELECT remote_key FROM task_item WHERE id_task=%s GROUP BY remote_key "
            "HAVING COUNT(*)>1) d",
            (id_task,),
        )
    count, no_hash = active_counts(db, id_task) if active is None else active
    return {"duplicates": int(duplicates or 0), "missing_hash": no_hash, "active_items": count}


def unique_key_enforced(db: MySQL) -> bool:
    """Czy ``task_item`` ma unikalny indeks dokładnie na ``(id_task, remote_key)`` (katalog bazy)."""
    rows = db.query(
        "SELECT NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=DATABASE() "
        "AND TABLE_NAME='task_item' AND INDEX_NAME='idx_task_item_key' ORDER BY SEQ_IN_INDEX"
    )
    return [(int(r["NON_UNIQUE"]), r["COLUMN_NAME"]) for r in rows] == [(0, "id_task"), (0, "remote_key")]


# --- AI: rezerwacje i wyniki ------------------------------------------------------------


def claim_for_ai(
    db: MySQL,
    id_task: int,
    operation: str,
    count: int,
    max_attempts: int,
    claim_timeout_s: int,
    lock_prefix: str | tuple[str, ...],
    after_id: int = 0,
) -> list[dict[str, Any]]:
    """Rezerwuje do ``count`` pozycji dla operacji AI w krótkiej transakcji (SKIP LOCKED) i je zwraca.

    Wolne są pozycje bez rezerwacji albo z rezerwacją innej operacji, która jest starsza niż
    ``claim_timeout_s`` albo której wszystkie blokady (``lock_prefix`` + uuid; run AI trzyma dwie,
    na dwóch sesjach) są wolne - właściciel nie żyje. Zabicie jednej sesji runu nie oddaje więc
    jego pozycji innemu runowi. Transakcja jest zatwierdzana tutaj (ponawiana po zakleszczeniu).

    Pozycje ``pending`` idą przed ``outdated`` (osobne zapytanie na status): równość statusu
    pozwala czytać indeks w kolejności ``id_task_item`` bez sortowania wszystkich czekających
    pozycji (``status IN (...)`` + ``ORDER BY`` sortowało przy każdej rezerwacji całą resztę zadania -
    ~100 ms przy 20 000 pozycjach).

    ``after_id``: tylko pozycje o większym ``id_task_item`` (kursor runu - skan nie przechodzi
    za każdym razem po pozycjach, które run sam trzyma w drodze); 0 = od początku.

    Returns:
        Wiersze ``(id_task_item, text_original, original_hash)``: najpierw ``pending``, potem
        ``outdated``, każde w kolejności ``id_task_item``.
    """

    prefixes = (lock_prefix,) if isinstance(lock_prefix, str) else tuple(lock_prefix)
    # Indeks (id_task, status, deleted_at) + klucz główny: zakres czytany już w kolejności
    # ``id_task_item``. Bez wskazania optymalizator przy ``after_id=0`` wybierał indeks
    # ``id_ai_batch`` (IS NULL = prawie cała tabela) - pierwsza rezerwacja runu trwała ~150 ms
    # przy 80 000 pozycji w bazie (zamiast ~3 ms) i rosła z liczbą pozycji innych zadań.
    sql = (
        "SELECT i.id_task_item, i.text_original, i.original_hash "
        f"FROM task_item i FORCE INDEX ({STATUS_PAGE_INDEX}) "
        f"WHERE i.id_task=%s AND {ai_eligible_sql('i')} AND i.status=%s AND i.id_task_item > %s "
        f"AND {claim_free_sql('i.', len(prefixes))} "
        "ORDER BY i.id_task_item LIMIT %s FOR UPDATE SKIP LOCKED"
    )

    def work() -> list[dict[str, Any]]:
        db.begin()
        rows: list[dict[str, Any]] = []
        for status in ("pending", "outdated"):
            if len(rows) >= count:
                break
            rows += db.query(
                sql,
                (
                    id_task,
                    max_attempts,
                    status,
                    after_id,
                    operation,
                    claim_timeout_s,
                    *prefixes,
                    count - len(rows),
                ),
            )
        if rows:
            ids = [row["id_task_item"] for row in rows]
            db.execute(
                f"UPDATE task_item SET claim_uuid=%s, claimed_at=NOW() WHERE id_task_item IN ({_marks(ids)})",
                (operation, *ids),
            )
        db.commit()
        faults.checkpoint("ai.claimed")
        return rows

    return retry_on_deadlock(work, db=db)


def release_claims(
    db: MySQL, operation: str, ids: list[int] | None = None, id_task: int | None = None
) -> int:
    """Zwalnia rezerwacje operacji (wszystkie w zadaniu ``id_task`` albo podane pozycje); zatwierdza, gdy trzeba.

    Operacja AI pracuje na jednym zadaniu, więc "wszystkie" szuka tylko w jego pozycjach (indeks
    z ``id_task``); bez tego warunku koniec każdego runu czytał całą tabelę ``task_item``.

    Returns:
        Liczba zwolnionych pozycji.
    """
    if ids is not None and not ids:
        return 0
    if ids is None:
        if id_task is None:
            raise ValueError("release_claims: podaj pozycje albo zadanie")
        sql, params = (
            "UPDATE task_item SET claim_uuid=NULL, claimed_at=NULL WHERE id_task=%s AND claim_uuid=%s",
            (id_task, operation),
        )
    else:
        sql = (
            "UPDATE task_item SET claim_uuid=NULL, claimed_at=NULL "
            f"WHERE claim_uuid=%s AND id_task_item IN ({_marks(ids)})"
        )
        params = (operation, *ids)

    def work() -> int:
        changed = db.execute(sql, params)
        if not db.autocommit:
            db.commit()
        return changed

    return retry_on_deadlock(work, db=db)


def stored_results(db: MySQL, id_task: int, hashes: list[str]) -> dict[str, tuple[str, str | None]]:
    """Gotowe wyniki AI zadania dla podanych hashy tekstu: ``hash -> (text_corrected, change_summary)``."""
    if not hashes:
        return {}
    rows = db.query(
        "SELECT original_hash, text_corrected, change_summary FROM task_item "
        f"WHERE id_task=%s AND status IN ({_marks(REUSABLE_STATUSES)}) AND text_corrected IS NOT NULL "
        f"AND result_hash IN ({_marks(hashes)}) ORDER BY processed_at",
        (id_task, *REUSABLE_STATUSES, *hashes),
    )
    return {row["original_hash"]: (row["text_corrected"], row["change_summary"]) for row in rows}


def store_ai_result(
    db: MySQL,
    ids: list[int],
    operation: str,
    original_hash: str | None,
    text: str,
    text_hash: str | None,
    summary: str | None,
    tokens_input: int,
    tokens_output: int,
    cost: Any,
    claim: str | None = None,
    prompt_version: str | None = None,
    flags: str | None = None,
) -> int:
    """Zapisuje wynik AI pozycji (status ``processed``), warunkowo: rezerwacja naszej operacji
    i niezmieniony tekst źródła (``original_hash``). Zapis kończy rezerwację (``claim_uuid``),
    a ``operation_uuid`` zostaje identyfikatorem operacji, która wytworzyła wynik (ślad do
    ``run_log.operation_uuid`` i runu Dagstera).

    Args:
        db: Połączenie (autocommit).
        ids: Pozycje z tym samym tekstem (jedna wysłana albo duplikaty z wynikiem ponownie użytym).
        operation: Identyfikator operacji, która trzyma rezerwację.
        original_hash: Hash tekstu, dla którego jest wynik.
        text: Tekst poprawiony.
        text_hash: Hash ``text`` (``local_hash``).
        summary: ``change_summary`` (JSON).
        tokens_input: Tokeny wejściowe tej pozycji.
        tokens_output: Tokeny wyjściowe tej pozycji.
        cost: Koszt tej pozycji (USD).
        claim: Rezerwacja, pod którą pozycja czeka, gdy inna niż ``operation`` (batch: ``claim_uuid``
            batcha, a ``operation`` to run, który zapisuje wyniki); zapis zwalnia też ``id_ai_batch``.
        prompt_version: Wersja promptu wyniku (``prompts.prompt_version``).
        flags: Flagi zabezpieczeń odpowiedzi (tablica JSON) albo ``None``.

    Returns:
        Liczba zapisanych pozycji (mniej niż ``len(ids)``, gdy tekst części zmienił się w międzyczasie).
    """
    return db.execute(
        "UPDATE task_item SET text_corrected=%s, local_hash=%s, change_summary=%s, processed_at=NOW(), "
        "status='processed', is_changed=0, tokens_input=%s, tokens_output=%s, cost_usd=%s, ai_error=NULL, "
        "prompt_version=%s, ai_flags=%s, operation_uuid=%s, claim_uuid=NULL, claimed_at=NULL, id_ai_batch=NULL "
        f"WHERE id_task_item IN ({_marks(ids)}) AND claim_uuid=%s AND original_hash <=> %s",
        (
            text,
            text_hash,
            summary,
            tokens_input,
            tokens_output,
            cost,
            prompt_version,
            flags,
            operation,
            *ids,
            claim or operation,
            original_hash,
        ),
    )


# Kolumny zapisu paczki (``store_ai_results``) ustawiane osobno dla każdej pozycji: kolumna -> klucz wyniku.
_STORE_COLUMNS = (
    (b"text_corrected", "text"),
    (b"local_hash", "text_hash"),
    (b"change_summary", "summary"),
    (b"tokens_input", "tokens_input"),
    (b"tokens_output", "tokens_output"),
    (b"cost_usd", "cost"),
    (b"prompt_version", "prompt_version"),
    (b"ai_flags", "flags"),
)
_STORE_KEYS = (*(key for _column, key in _STORE_COLUMNS), "original_hash")


def _store_literal(key: str, value: Any) -> bytes:
    """Wartość kolumny zapisu paczki jako literał SQL (bajty)."""
    if value is None:
        return b"NULL"
    if key in ("tokens_input", "tokens_output"):
        return b"%d" % int(value)
    if key == "cost":
        return format(Decimal(value), "f").encode("ascii")
    return sql_literal(value.encode("utf-8"))


def store_ai_results(db: MySQL, operation: str, results: list[dict[str, Any]]) -> list[int]:
    """Zapisuje wyniki kilku pozycji (paczka) w jednej transakcji, każdy jak ``store_ai_result``.

    Jedno polecenie (transakcja): po nagłej śmierci procesu albo cała paczka jest zapisana, albo
    nic - następny run nie może zapłacić drugi raz za część paczki, a za resztę nie.

    Args:
        db: Połączenie w trybie autocommit (każde polecenie to osobna transakcja).
        operation: Identyfikator operacji, która trzyma rezerwacje.
        results: Słowniki z kluczami argumentów ``store_ai_result``: ``ids``, ``original_hash``,
            ``text``, ``text_hash``, ``summary``, ``tokens_input``, ``tokens_output``, ``cost``,
            ``prompt_version``, ``flags``.

    Returns:
        Liczby zapisanych pozycji, w kolejności ``results``.
    """

    if not db.autocommit:
        raise ValueError("store_ai_results: potrzebne połączenie w trybie autocommit")
    if len(results) == 1:
        return [store_ai_result(db, operation=operation, **results[0])]
    # Jedno UPDATE jednej tabeli po kluczu głównym (zamiast polecenia na pozycję: przy paczkach po
    # 20 tekstów zapis był wąskim gardłem runu). Wartość kolumny pozycji wybiera
    # ``ELT(FIELD(id_task_item, <id>, ...), <wartość>, ...)`` - n-ta wartość dla n-tego id.
    # Wcześniejsze UPDATE z JOIN do tabeli pochodnej (SELECT ... UNION ALL) tworzyło przy każdym
    # zapisie dwie tabele tymczasowe, jedną na dysku (kolumny TEXT): ~20% CPU MariaDB w runie z
    # paczkami. Zapytanie składane od razu w bajtach (``sql_literal``): formatowanie parametrów
    # PyMySQL zajmowało ~10% czasu GIL runu z paczkami.
    ids = [int(id_item) for result in results for id_item in result["ids"]]
    id_list = b",".join(b"%d" % id_item for id_item in ids)
    columns: dict[str, list[bytes]] = {key: [] for key in _STORE_KEYS}
    for result in results:
        copies = len(result["ids"])
        for key, values in columns.items():
            values.extend([_store_literal(key, result.get(key))] * copies)
    position = b"FIELD(id_task_item,%b)" % id_list
    operation_literal = sql_literal(operation.encode("ascii"))
    update = (
        b"UPDATE task_item SET %b, processed_at=NOW(), status='processed', is_changed=0, ai_error=NULL, "
        b"operation_uuid=%b, claim_uuid=NULL, claimed_at=NULL "
        b"WHERE id_task_item IN (%b) AND claim_uuid=%b AND original_hash <=> ELT(%b,%b)"
    ) % (
        b", ".join(
            b"%b=ELT(%b,%b)" % (column, position, b",".join(columns[key])) for column, key in _STORE_COLUMNS
        ),
        operation_literal,
        id_list,
        operation_literal,
        position,
        b",".join(columns["original_hash"]),
    )

    def work() -> list[int]:
        # Jedno polecenie UPDATE w trybie autocommit jest samo w sobie transakcją (cała paczka albo
        # nic) i kosztuje jedną wymianę z serwerem zamiast czterech (ping, BEGIN, UPDATE, COMMIT).
        if db.execute_encoded(update) == len(ids):
            return [len(result["ids"]) for result in results]
        # Zapisane mają teraz operation_uuid naszej operacji i nie mają rezerwacji (niezapisane - tekst
        # zmienił się w międzyczasie - wciąż ją mają).
        stored = {
            row["id_task_item"]
            for row in db.query(
                f"SELECT id_task_item FROM task_item WHERE id_task_item IN ({_marks(ids)}) "
                "AND operation_uuid=%s AND claim_uuid IS NULL",
                (*ids, operation),
            )
        }
        return [sum(1 for id_item in result["ids"] if id_item in stored) for result in results]

    return retry_on_deadlock(work, db=db)


def store_ai_error(db: MySQL, id_item: int, operation: str, original_hash: str | None, message: str) -> int:
    """Zapisuje błąd AI pozycji (``ai_error``, ``ai_attempts + 1``); rezerwacja zostaje do końca runu."""
    return db.execute(
        "UPDATE task_item SET ai_error=%s, ai_attempts=ai_attempts+1 "
        "WHERE id_task_item=%s AND claim_uuid=%s AND original_hash <=> %s",
        (message[:4000], id_item, operation, original_hash),
    )


# --- AI: pozycje w batchu OpenAI (lib/ai/batch/submit.py) ----------------------------------------


def claim_for_batch(
    db: MySQL,
    id_task: int,
    id_ai_batch: int,
    claim: str,
    count: int,
    max_attempts: int,
    claim_timeout_s: int,
    lock_prefixes: tuple[str, ...],
) -> int:
    """Rezerwuje do ``count`` pozycji dla batcha: ``claim_uuid`` batcha i ``id_ai_batch``.

    Te same pozycje i ta sama reguła wolnej rezerwacji co ``claim_for_ai``. Nie zatwierdza:
    wołający zapisuje wiersz ``ai_batch`` i rezerwacje w jednej transakcji (albo nic).

    Returns:
        Liczba zarezerwowanych pozycji.
    """
    rows = db.query(
        "SELECT i.id_task_item FROM task_item i "
        f"WHERE i.id_task=%s AND {ai_eligible_sql('i')} AND {claim_free_sql('i.', len(lock_prefixes))} "
        "ORDER BY i.id_task_item LIMIT %s FOR UPDATE SKIP LOCKED",
        (id_task, max_attempts, claim, claim_timeout_s, *lock_prefixes, count),
    )
    ids = [row["id_task_item"] for row in rows]
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        db.execute(
            "UPDATE task_item SET claim_uuid=%s, claimed_at=NOW(), id_ai_batch=%s "
            f"WHERE id_task_item IN ({_marks(part)})",
            (claim, id_ai_batch, *part),
        )
    return len(ids)


def batch_items_by_hash(db: MySQL, id_ai_batch: int, claim: str) -> dict[str | None, list[int]]:
    """Pozycje wciąż czekające w batchu, pogrupowane po ``original_hash``.

    Returns:
        ``original_hash -> [id_task_item, ...]`` rosnąco po id; hashe w kolejności pierwszej
        pozycji (pierwsze id grupy to jej lider).
    """
    rows = db.query(
        "SELECT id_task_item, original_hash FROM task_item WHERE id_ai_batch=%s AND claim_uuid=%s "
        "ORDER BY id_task_item",
        (id_ai_batch, claim),
    )
    by_hash: dict[str | None, list[int]] = {}
    for row in rows:
        by_hash.setdefault(row["original_hash"], []).append(int(row["id_task_item"]))
    return by_hash


def item_texts(db: MySQL, ids: list[int]) -> dict[int, str]:
    """Teksty źródłowe pozycji: ``id_task_item -> text_original``."""
    if not ids:
        return {}
    rows = db.query(
        f"SELECT id_task_item, text_original FROM task_item WHERE id_task_item IN ({_marks(ids)})", tuple(ids)
    )
    return {row["id_task_item"]: row["text_original"] for row in rows}


def store_batch_error(
    db: MySQL, id_ai_batch: int, claim: str, original_hash: str | None, message: str, count_attempt: bool
) -> int:
    """Błąd linii batcha: pozycje z tym tekstem wracają do kolejki z ``ai_error``.

    Zapis zwalnia rezerwację i ``id_ai_batch`` w tym samym poleceniu, więc ponowne przetworzenie
    pliku błędów nie liczy próby drugi raz.

    Args:
        db: Połączenie (transakcją rządzi wołający).
        id_ai_batch: Batch.
        claim: ``claim_uuid`` batcha.
        original_hash: Hash tekstu linii.
        message: Opis błędu.
        count_attempt: ``True`` = ``ai_attempts + 1`` (błąd modelu); ``False`` dla linii, których
            dostawca nie wykonał (batch wygasł albo anulowany).

    Returns:
        Liczba pozycji.
    """
    return db.execute(
        f"UPDATE task_item SET ai_error=%s, ai_attempts=ai_attempts+{1 if count_attempt else 0}, "
        "claim_uuid=NULL, claimed_at=NULL, id_ai_batch=NULL "
        "WHERE id_ai_batch=%s AND claim_uuid=%s AND original_hash <=> %s",
        (message[:4000], id_ai_batch, claim, original_hash),
    )


def release_batch_items(db: MySQL, id_ai_batch: int, claim: str, message: str | None) -> int:
    """Oddaje do kolejki wszystkie pozycje, które wciąż czekają w batchu (bez liczenia próby).

    Args:
        db: Połączenie (transakcją rządzi wołający).
        id_ai_batch: Batch.
        claim: ``claim_uuid`` batcha.
        message: ``ai_error`` dla oddanych pozycji (``None`` = bez zmiany).

    Returns:
        Liczba oddanych pozycji.
    """
    return db.execute(
        "UPDATE task_item SET ai_error=COALESCE(%s, ai_error), claim_uuid=NULL, claimed_at=NULL, id_ai_batch=NULL "
        "WHERE id_ai_batch=%s AND claim_uuid=%s",
        (message[:4000] if message else None, id_ai_batch, claim),
    )


def count_given_up(db: MySQL, id_task: int, max_attempts: int) -> int:
    """Liczba pozycji, na których AI się poddało (``ai_attempts >= AI_MAX_ATTEMPTS``)."""
    return int(
        db.query_value(
            f"SELECT COUNT(*) FROM task_item WHERE id_task=%s AND {ai_given_up_sql()}",
            (id_task, max_attempts),
        )
        or 0
    )


def count_ai_eligible(db: MySQL, id_task: int, max_attempts: int) -> int:
    """Ile pozycji zadania może teraz wziąć AI (mianownik postępu runu AI); zatwierdza odczyt."""
    count = db.query_value(
        f"SELECT COUNT(*) FROM task_item i WHERE i.id_task=%s AND {ai_eligible_sql('i')}",
        (id_task, max_attempts),
    )
    db.commit()
    return int(count or 0)


def ai_workload(db: MySQL, id_task: int, max_attempts: int) -> dict[str, int]:
    """Ile pracy czeka na AI: pozycje, różne teksty i suma znaków różnych tekstów.

    Returns:
        Słownik: items, distinct_texts, characters.
    """
    row = (
        db.query_one(
            "SELECT COUNT(*) AS items, COUNT(DISTINCT i.original_hash) AS distinct_texts FROM task_item i "
            f"WHERE i.id_task=%s AND {ai_eligible_sql('i')}",
            (id_task, max_attempts),
        )
        or {}
    )
    characters = db.query_value(
        "SELECT COALESCE(SUM(c), 0) FROM (SELECT MAX(CHAR_LENGTH(i.text_original)) AS c FROM task_item i "
        f"WHERE i.id_task=%s AND {ai_eligible_sql('i')} GROUP BY i.original_hash) t",
        (id_task, max_attempts),
    )
    return {
        "items": int(row.get("items") or 0),
        "distinct_texts": int(row.get("distinct_texts") or 0),
        "characters": int(characters or 0),
    }


# --- eksport ----------------------------------------------------------------------------


# Pozycje do eksportu (parametr ``%s`` = id_task): jedna reguła dla partii i dla licznika postępu.
_EXPORT_WHERE = "id_task=%s AND status='accepted' AND deleted_at IS NULL AND remote_key IS NOT NULL"


def count_for_export(db: MySQL, id_task: int) -> int:
    """Ile pozycji czeka na eksport (mianownik postępu eksportu); zatwierdza odczyt."""
    count = int(db.query_value(f"SELECT COUNT(*) FROM task_item WHERE {_EXPORT_WHERE}", (id_task,)) or 0)
    db.commit()
    return count


def export_batch(db: MySQL, id_task: int, after: int, limit: int) -> list[dict[str, Any]]:
    """Kolejna partia pozycji ``accepted`` do eksportu (keyset po ``id_task_item``); zatwierdza odczyt."""
    rows = db.query(
        "SELECT id_task_item, remote_key, text_original, text_corrected, local_hash FROM task_item "
        f"WHERE {_EXPORT_WHERE} AND id_task_item > %s ORDER BY id_task_item LIMIT %s",
        (id_task, after, limit),
    )
    db.commit()
    return rows


def record_export(
    db: MySQL, exported: list[int], conflicts: list[tuple[int, str]], skipped: list[tuple[int, str]]
) -> None:
    """Zapisuje wynik partii eksportu (w transakcji wołającego).

    Args:
        db: Połączenie.
        exported: Pozycje, których tekst jest w źródle (``exported``).
        conflicts: ``(id, powód)`` - pozycje ``conflict`` z powodem w ``export_error``.
        skipped: ``(id, powód)`` - pozycje pominięte (zostają ``accepted``, powód w ``export_error``).
    """
    if exported:
        # Bez warunku na status: tekst już jest w źródle, więc pozycja jest wyeksportowana.
        db.execute(
            "UPDATE task_item SET status='exported', exported_at=NOW(), export_error=NULL "
            f"WHERE id_task_item IN ({_marks(exported)})",
            exported,
        )
    for id_item, reason in conflicts:
        db.execute(
            "UPDATE task_item SET status='conflict', export_error=%s WHERE id_task_item=%s AND status='accepted'",
            (reason, id_item),
        )
    for id_item, reason in skipped:
        db.execute(
            "UPDATE task_item SET export_error=%s WHERE id_task_item=%s AND status='accepted'",
            (reason, id_item),
        )


# --- przegląd ---------------------------------------------------------------------------

# Kolumny pozycji czytane pod blokadą przy decyzji: reguła odmowy (``lib.review.rules.refusal_reason``),
# wersja pokazana człowiekowi (``row_updated_at``) i stan "przed" zapisywany w ``review_log``.
DECISION_COLUMNS = (
    "id_task_item, id_task, status, deleted_at, is_changed, text_corrected, processed_at, verified_at, "
    "approved_by, approved_at, export_error, local_hash, row_updated_at"
)
# Kolumny listy pozycji do przeglądu (``review.py list``).
REVIEW_COLUMNS = (
    "id_task_item, id_task, remote_id, remote_key, status, text_original, text_corrected, change_summary, is_changed, "
    "processed_at, approved_by, approved_at, exported_at, export_error"
)
# Kolumny pozycji na stronie przeglądu.
PAGE_COLUMNS = (
    "id_task_item, id_task, remote_id, remote_key, status, text_original, text_corrected, change_summary, is_changed, "
    "processed_at, verified_at, approved_by, approved_at, exported_at, export_error, deleted_at, row_updated_at, "
    "tokens_input, tokens_output, cost_usd, ai_flags"
)


# Indeks stron pozycji po statusie: (id_task, status, deleted_at) + doklejony przez InnoDB klucz główny.
# Z deleted_at: pozycje usunięte ze źródła są pomijane w samym indeksie, a liczby pozycji po statusie
# (``task_counts``) czytają tylko indeks.
STATUS_PAGE_INDEX = "idx_task_item_task_status"
# Dodatkowe warunki stron po statusie (stałe, bez parametrów).
ONLY_CORRECTED = "text_corrected IS NOT NULL"
ONLY_EXPORT_ERRORS = "export_error IS NOT NULL"
# Strona przeglądu: pozycje z flagami zabezpieczeń AI najpierw (osobna lista), potem bez flag.
ONLY_FLAGGED = "ai_flags IS NOT NULL"
ONLY_UNFLAGGED = "ai_flags IS NULL"


def status_page_query(
    columns: str,
    id_task: int,
    status: str,
    key: int | None,
    limit: int,
    *,
    backwards: bool = False,
    condition: str | None = None,
    lock: bool = False,
) -> tuple[str, list[Any]]:
    """Zapytanie strony nieusuniętych pozycji zadania o jednym statusie (keyset po ``id_task_item``).

    Jedyny kształt stronicowania pozycji po statusie: strona przeglądu, decyzje ``--all``, zrzut
    i lista problemów eksportu. Czyta indeks ``(id_task, status, deleted_at)``, do którego InnoDB
    dokleja klucz główny, od klucza strony: tylko ``limit`` wpisów, niezależnie od głębokości strony
    i innych zadań.

    ``FORCE INDEX``: bez niego MariaDB 10.11 wybiera przy ``ORDER BY id_task_item LIMIT n`` skan
    ``PRIMARY`` od początku tabeli (zakłada równomierny rozkład zadań; dla późniejszego zadania
    czyta pozycje wszystkich wcześniejszych - 1 000 021 wierszy na stronę przy 1 000 000 pozycji),
    a przy ``ORDER BY id_task, status, id_task_item`` przecięcie indeksów i sortowanie całego
    statusu. Kształt indeksu tego nie zmienia (sprawdzone ``EXPLAIN`` przy 1 300 000 pozycji, także
    z ``deleted_at`` w indeksie): plan pierwszej strony zależy od rozkładu zadań w kluczu głównym,
    którego statystyki nie opisują.

    Args:
        columns: Kolumny wyniku (stała tego modułu).
        id_task: Zadanie.
        status: Status pozycji.
        key: ``id_task_item`` granicy strony albo ``None`` (pierwsza strona).
        limit: Maksymalna liczba wierszy.
        backwards: ``True`` = pozycje przed ``key``, malejąco (poprzednia strona).
        condition: Dodatkowy warunek (``ONLY_CORRECTED``, ``ONLY_EXPORT_ERRORS``) albo ``None``.
        lock: ``FOR UPDATE`` (decyzje).

    Returns:
        Krotka ``(sql, parametry)``.
    """
    op, order = ("<", "DESC") if backwards else (">", "ASC")
    where = "id_task=%s AND status=%s AND deleted_at IS NULL"
    params: list[Any] = [id_task, status]
    if key is not None:
        where += f" AND id_task_item {op} %s"
        params.append(int(key))
    if condition:
        where += f" AND {condition}"
    sql = (
        f"SELECT {columns} FROM task_item FORCE INDEX ({STATUS_PAGE_INDEX}) WHERE {where} "
        f"ORDER BY id_task_item {order} LIMIT %s"
    )
    return sql + (" FOR UPDATE" if lock else ""), [*params, limit]


def review_page(
    db: MySQL,
    id_task: int,
    status: str,
    key: int | None,
    limit: int,
    backwards: bool = False,
    condition: str | None = None,
) -> list[dict[str, Any]]:
    """Strona pozycji do przeglądu w kolejności zapytania (wstecz: malejąco); zatwierdza odczyt.

    ``condition``: ``ONLY_FLAGGED``, ``ONLY_UNFLAGGED`` albo ``None`` (wszystkie).
    """
    sql, params = status_page_query(
        PAGE_COLUMNS, id_task, status, key, limit, backwards=backwards, condition=condition
    )
    rows = db.query(sql, params)
    db.commit()
    return rows


def count_flagged(db: MySQL, id_task: int, status: str) -> int:
    """Nieusunięte pozycje zadania o statusie ``status`` z flagami zabezpieczeń AI; zatwierdza odczyt."""
    count = db.query_value(
        f"SELECT COUNT(*) FROM task_item FORCE INDEX ({STATUS_PAGE_INDEX}) "
        f"WHERE id_task=%s AND status=%s AND deleted_at IS NULL AND {ONLY_FLAGGED}",
        (id_task, status),
    )
    db.commit()
    return int(count or 0)


def list_for_review(db: MySQL, id_task: int, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Nieusunięte pozycje zadania (opcjonalnie o statusie) w porządku źródła; zatwierdza odczyt."""
    where = "id_task=%s AND deleted_at IS NULL"
    params: list[Any] = [id_task]
    if status is not None:
        where += " AND status=%s"
        params.append(status)
    rows = db.query(
        f"SELECT {REVIEW_COLUMNS} FROM task_item WHERE {where} ORDER BY source_ord, id_task_item LIMIT %s",
        [*params, limit],
    )
    db.commit()
    return rows


def get_item_row(db: MySQL, id_item: int) -> dict[str, Any] | None:
    """Cały wiersz pozycji albo ``None``; zatwierdza odczyt."""
    row = db.query_one("SELECT * FROM task_item WHERE id_task_item=%s", (id_item,))
    db.commit()
    return row


def lock_item(db: MySQL, id_item: int) -> dict[str, Any] | None:
    """Blokuje (``FOR UPDATE``) jedną pozycję i zwraca jej kolumny decyzji oraz ``text_original``."""
    return db.query_one(
        f"SELECT {DECISION_COLUMNS}, text_original FROM task_item WHERE id_task_item=%s FOR UPDATE",
        (id_item,),
    )


def lock_items_by_id(db: MySQL, id_task: int, ids: list[int]) -> list[dict[str, Any]]:
    """Blokuje (``FOR UPDATE``) wskazane pozycje zadania i zwraca ich kolumny decyzji."""
    return db.query(
        f"SELECT {DECISION_COLUMNS} FROM task_item WHERE id_task=%s AND id_task_item IN ({_marks(ids)}) FOR UPDATE",
        [id_task, *ids],
    )


def lock_items_page(db: MySQL, id_task: int, status: str, after: int, limit: int) -> list[dict[str, Any]]:
    """Blokuje kolejną porcję nieusuniętych pozycji zadania o statusie (keyset) i ją zwraca."""
    sql, params = status_page_query(DECISION_COLUMNS, id_task, status, after, limit, lock=True)
    return db.query(sql, params)


def set_decisions(db: MySQL, id_task: int, ids: list[int], decision: str, by: str) -> None:
    """Zapisuje decyzję człowieka (w transakcji wołającego, po ``lock_items_*``) i zmienia liczniki zadania."""
    if ids:
        _with_counter_change(
            db,
            id_task,
            ids,
            "UPDATE task_item SET status=%s, approved_by=%s, approved_at=NOW(), export_error=NULL "
            f"WHERE id_task_item IN ({_marks(ids)})",
            [decision, by, *ids],
        )


def store_reviewer_text(
    db: MySQL, id_task: int, id_item: int, text: str, text_hash: str | None, by: str
) -> None:
    """Tekst człowieka jako ``text_corrected`` (z ``local_hash``) i akceptacja, w transakcji wołającego."""
    _with_counter_change(
        db,
        id_task,
        [id_item],
        "UPDATE task_item SET text_corrected=%s, local_hash=%s, status='accepted', approved_by=%s, "
        "approved_at=NOW(), export_error=NULL WHERE id_task_item=%s",
        [text, text_hash, by, id_item],
    )


def restore_decision(
    db: MySQL,
    id_task: int,
    id_item: int,
    state: dict[str, Any],
    text: tuple[str | None, str | None] | None = None,
) -> None:
    """Przywraca stan pozycji sprzed decyzji (cofnięcie), w transakcji wołającego.

    Args:
        db: Połączenie w transakcji (pozycja zablokowana).
        id_task: Zadanie (liczniki).
        id_item: Pozycja.
        state: ``status``, ``approved_by``, ``approved_at``, ``export_error`` sprzed decyzji.
        text: ``(text_corrected, local_hash)`` sprzed decyzji albo ``None``, gdy decyzja nie zmieniła tekstu.
    """
    assignments = "status=%s, approved_by=%s, approved_at=%s, export_error=%s"
    params: list[Any] = [state["status"], state["approved_by"], state["approved_at"], state["export_error"]]
    if text is not None:
        assignments += ", text_corrected=%s, local_hash=%s"
        params += list(text)
    _with_counter_change(
        db,
        id_task,
        [id_item],
        f"UPDATE task_item SET {assignments} WHERE id_task_item=%s",
        [*params, id_item],
    )


def export_problems(db: MySQL, id_task: int, limit: int) -> list[dict[str, Any]]:
    """Pozycje z powodem w ``export_error``: konflikty i zaakceptowane pominięte przez eksport.

    Po jednym zapytaniu na status (``status_page_query``), najwyżej ``limit``
    pozycji każdego; zatwierdza odczyt.
    """
    rows: list[dict[str, Any]] = []
    for status in ("conflict", "accepted"):
        sql, params = status_page_query(
            "id_task_item, remote_key, status, export_error",
            id_task,
            status,
            None,
            limit,
            condition=ONLY_EXPORT_ERRORS,
        )
        rows += db.query(sql, params)
    db.commit()
    return rows


def dump_page(
    db: MySQL,
    id_task: int,
    columns: tuple[str, ...],
    status: str,
    after: int | None,
    limit: int,
    corrected_only: bool,
) -> list[dict[str, Any]]:
    """Strona zrzutu pozycji o jednym statusie (``status_page_query``); zatwierdza odczyt."""
    sql, params = status_page_query(
        ", ".join(columns),
        id_task,
        status,
        after,
        limit,
        condition=ONLY_CORRECTED if corrected_only else None,
    )
    rows = db.query(sql, params)
    db.commit()
    return rows


# --- liczniki przeglądu zadania ---------------------------------------------------------

# Liczniki ``task.records_approved/rejected/exported``: kolumna zadania -> warunek na nieusuniętej
# pozycji. Jedna definicja dla pełnego przeliczenia (po synchronizacji i eksporcie) i dla zmiany
# liczników przy decyzji człowieka. Zatwierdzone liczymy razem z wyeksportowanymi i konfliktami
# (każda z nich była zatwierdzona przez człowieka).
_REVIEW_COUNTERS = (
    ("records_approved", "approved_at IS NOT NULL AND status IN ('accepted','exported','conflict')"),
    ("records_rejected", "status='rejected'"),
    ("records_exported", "status='exported'"),
)
# Statusy, których pozycje mogą wejść do któregoś licznika: pełne przeliczenie czyta tylko ich zakres
# w indeksie (id_task, status, deleted_at), a nie wszystkie pozycje zadania (po synchronizacji
# miliona pozycji ``pending`` nie czyta żadnego wiersza).
_REVIEW_STATUSES = ("accepted", "exported", "conflict", "rejected")
# Pozycje ocenione przez człowieka (przyjęte, wyeksportowane, w konflikcie eksportu, odrzucone).
REVIEWED_STATUSES = _REVIEW_STATUSES
_COUNTER_SUMS = ", ".join(f"COALESCE(SUM({rule}),0) AS {column}" for column, rule in _REVIEW_COUNTERS)


def _counter_sums(db: MySQL, ids: list[int]) -> list[int]:
    """Wkład podanych pozycji w liczniki przeglądu (w kolejności ``_REVIEW_COUNTERS``)."""
    row = db.query_one(
        f"SELECT {_COUNTER_SUMS} FROM task_item WHERE deleted_at IS NULL AND id_task_item IN ({_marks(ids)})",
        ids,
    )
    return [int(row[column]) for column, _rule in _REVIEW_COUNTERS]


def _with_counter_change(db: MySQL, id_task: int, ids: list[int], sql: str, params: list[Any]) -> None:
    """Wykonuje zapis decyzji i zmienia liczniki zadania o różnicę wkładu tych pozycji.

    Koszt zależy od liczby zmienianych pozycji, nie od wielkości zadania (pełne przeliczenie przy
    1 000 000 pozycji to skan całego zadania przy każdym klawiszu). Wołający trzyma blokady wiersza
    zadania i pozycji, więc różnica jest dokładna; pełne przeliczenie daje ten sam wynik.
    """
    before = _counter_sums(db, ids)
    db.execute(sql, params)
    change = [a - b for a, b in zip(_counter_sums(db, ids), before, strict=True)]
    if any(change):
        # GREATEST: licznik nieaktualny sprzed tej wersji nie może zejść poniżej zera (kolumny UNSIGNED).
        assignments = ", ".join(
            f"{column}=GREATEST(CAST({column} AS SIGNED) + %s, 0)" for column, _rule in _REVIEW_COUNTERS
        )
        db.execute(f"UPDATE task SET {assignments} WHERE id_task=%s", [*change, id_task])


def refresh_review_counters(db: MySQL, id_task: int) -> dict[str, int]:
    """Przelicza ``records_approved/rejected/exported`` zadania od nowa ze wszystkich pozycji i zatwierdza.

    Po synchronizacji i eksporcie (zmieniają wiele pozycji naraz); decyzje człowieka zmieniają
    liczniki o różnicę w swojej transakcji.

    Returns:
        Słownik z nowymi wartościami liczników (``approved``, ``rejected``, ``exported``).
    """
    row = db.query_one(
        f"SELECT {_COUNTER_SUMS} FROM task_item FORCE INDEX ({STATUS_PAGE_INDEX}) "
        f"WHERE id_task=%s AND status IN ({_marks(_REVIEW_STATUSES)}) AND deleted_at IS NULL",
        (id_task, *_REVIEW_STATUSES),
    )
    values = [int(row[column]) for column, _rule in _REVIEW_COUNTERS]
    assignments = ", ".join(f"{column}=%s" for column, _rule in _REVIEW_COUNTERS)
    db.execute(f"UPDATE task SET {assignments} WHERE id_task=%s", [*values, id_task])
    db.commit()
    return {
        column.removeprefix("records_"): value
        for (column, _rule), value in zip(_REVIEW_COUNTERS, values, strict=True)
    }


# Statusy pozycji w agregatach widoku stanu (kolumny ``items_<status>`` wyniku ``task_counts``).
_COUNTED_STATUSES = ("pending", "outdated", "processed", "accepted", "rejected", "exported", "conflict")


def task_counts(db: MySQL, task_columns: str, id_task: int | None = None) -> list[dict[str, Any]]:
    """Wiersze zadań z agregatami ich nieusuniętych pozycji (statusy, tokeny, koszt).

    Trzy zapytania zamiast jednego złączenia: liczby pozycji po statusie czyta sam indeks
    ``(id_task, status, deleted_at)`` (0,3 s przy 1 300 000 pozycji), a sumy tokenów i kosztu -
    jeden sekwencyjny skan tabeli (kolumn nie ma w żadnym indeksie). Złączenie ``task`` z pozycjami
    czytało pozycje w kolejności indeksu, z losowym dostępem do wierszy (8-9 s przy 1 300 000).

    Args:
        db: Połączenie.
        task_columns: Kolumny zadania i połączenia do wyniku (aliasy ``t`` i ``c``), ze stałej wołającego.
        id_task: Jedno zadanie albo ``None`` dla wszystkich.

    Returns:
        Wiersze rosnąco po ``id_task``: kolumny ``task_columns`` oraz ``items_*``, ``tokens_*``, ``cost_usd``.
    """
    one = id_task is not None
    rows = db.query(
        f"SELECT {task_columns} FROM task t "
        "LEFT JOIN database_connection c ON c.id_database_connection=t.id_database_connection "
        f"{'WHERE t.id_task=%s ' if one else ''}ORDER BY t.id_task",
        (id_task,) if one else (),
    )
    if not rows:
        return rows
    item_filter, params = (
        ("id_task=%s AND deleted_at IS NULL", (id_task,)) if one else ("deleted_at IS NULL", ())
    )
    counts = db.query(
        f"SELECT id_task, status, COUNT(*) AS n FROM task_item WHERE {item_filter} GROUP BY id_task, status",
        params,
    )
    # Wszystkie zadania: skan po kluczu głównym czyta tabelę po kolei; bez wskazówki optymalizator
    # wybiera kolejność indeksu (id_task, remote_id) z losowym odczytem wierszy - 2-3 razy wolniej.
    usage = db.query(
        f"SELECT id_task, COALESCE(SUM(tokens_input),0) AS tokens_input, "
        "COALESCE(SUM(tokens_output),0) AS tokens_output, COALESCE(SUM(cost_usd),0) AS cost_usd "
        f"FROM task_item{'' if one else ' FORCE INDEX (PRIMARY)'} WHERE {item_filter} GROUP BY id_task",
        params,
    )
    # Pozycje czekające w batchu OpenAI (indeks id_ai_batch: czyta tylko takie pozycje).
    in_batch = db.query(
        f"SELECT id_task, COUNT(*) AS n FROM task_item WHERE id_ai_batch IS NOT NULL AND {item_filter} "
        "GROUP BY id_task",
        params,
    )
    by_task: dict[int, dict[str, Any]] = {}
    for row in rows:
        row.update(
            {f"items_{s}": 0 for s in _COUNTED_STATUSES},
            items_total=0,
            items_in_batch=0,
            tokens_input=0,
            tokens_output=0,
        )
        row["cost_usd"] = Decimal(0)
        by_task[int(row["id_task"])] = row
    for count in counts:
        row = by_task.get(int(count["id_task"]))
        if row is not None:
            row[f"items_{count['status']}"] = int(count["n"])
            row["items_total"] += int(count["n"])
    for count in in_batch:
        row = by_task.get(int(count["id_task"]))
        if row is not None:
            row["items_in_batch"] = int(count["n"])
    for sums in usage:
        row = by_task.get(int(sums["id_task"]))
        if row is not None:
            row.update(
                tokens_input=int(sums["tokens_input"]),
                tokens_output=int(sums["tokens_output"]),
                cost_usd=sums["cost_usd"],
            )
    return rows


# --- faza nauki: pozycje pilota (lib/ai/learning.py) -----------------------------------------


def pilot_hashes(db: MySQL, id_task: int, size: int, max_attempts: int) -> tuple[list[str], int]:
    """Wybiera teksty pilota: co k-ty różny tekst czekający na AI, w kolejności źródła.

    Teksty (``original_hash``) ustawione są według pierwszego wystąpienia (``source_ord``, potem
    ``id_task_item``); przy ``d`` różnych tekstach ``k = max(1, d // size)`` i brane są pozycje
    0, k, 2k, ... - najwyżej ``size``. Wybór jest deterministyczny.

    Returns:
        ``(hashe wybranych tekstów, liczba różnych tekstów czekających)``.
    """
    distinct = int(
        db.query_value(
            f"SELECT COUNT(DISTINCT original_hash) FROM task_item WHERE id_task=%s AND {ai_waiting_sql()}",
            (id_task, max_attempts),
        )
        or 0
    )
    if not distinct or size < 1:
        return [], distinct
    step = max(1, distinct // size)
    rows = db.query(
        "SELECT original_hash FROM (SELECT original_hash, "
        "ROW_NUMBER() OVER (ORDER BY first_ord, first_id) - 1 AS n FROM ("
        "SELECT original_hash, MIN(source_ord) AS first_ord, MIN(id_task_item) AS first_id FROM task_item "
        f"WHERE id_task=%s AND {ai_waiting_sql()} GROUP BY original_hash) g) r "
        "WHERE MOD(n, %s) = 0 ORDER BY n LIMIT %s",
        (id_task, max_attempts, step, size),
    )
    return [row["original_hash"] for row in rows], distinct


def mark_pilot_items(db: MySQL, id_task: int, id_ai_pilot: int, hashes: list[str], max_attempts: int) -> int:
    """Oznacza pozycje czekające z podanymi tekstami jako pozycje pilota; zwraca ich liczbę."""
    if not hashes:
        return 0
    return db.execute(
        f"UPDATE task_item SET id_ai_pilot=%s WHERE id_task=%s AND {ai_waiting_sql()} "
        f"AND original_hash IN ({_marks(hashes)})",
        (id_ai_pilot, id_task, max_attempts, *hashes),
    )


def count_pilot_waiting(db: MySQL, id_task: int, id_ai_pilot: int, max_attempts: int) -> int:
    """Pozycje pilota, które jeszcze czekają na AI (też w batchu albo zarezerwowane przez run)."""
    return int(
        db.query_value(
            "SELECT COUNT(*) FROM task_item WHERE id_task=%s AND id_ai_pilot=%s "
            "AND status IN ('pending','outdated') AND deleted_at IS NULL AND text_original IS NOT NULL "
            "AND text_original <> '' AND ai_attempts < %s",
            (id_task, id_ai_pilot, max_attempts),
        )
        or 0
    )


def pilot_items(db: MySQL, id_task: int, id_ai_pilot: int) -> list[dict[str, Any]]:
    """Pozycje pilota z tekstami, statusem, flagami i kosztem (do liczb pilota)."""
    return db.query(
        "SELECT id_task_item, status, text_original, text_corrected, original_hash, ai_flags, cost_usd, "
        "prompt_version FROM task_item WHERE id_task=%s AND id_ai_pilot=%s ORDER BY id_task_item",
        (id_task, id_ai_pilot),
    )


def count_waiting_texts(db: MySQL, id_task: int, max_attempts: int, id_ai_pilot: int | None) -> int:
    """Różne teksty czekające na AI poza pilotem ``id_ai_pilot`` (bez wstrzymania przez pilota)."""
    return int(
        db.query_value(
            "SELECT COUNT(DISTINCT original_hash) FROM task_item "
            f"WHERE id_task=%s AND {ai_waiting_sql()} AND NOT id_ai_pilot <=> %s",
            (id_task, max_attempts, id_ai_pilot),
        )
        or 0
    )


def reset_pilot_items(db: MySQL, id_task: int, id_ai_pilot: int, new_pilot: int) -> int:
    """Pilot od nowa: pozycje pilota z wynikiem AI wracają do ``pending`` i przechodzą do ``new_pilot``.

    Wynik AI, decyzja recenzenta, flagi, tokeny i koszt pozycji są czyszczone (historia decyzji
    zostaje w ``review_log``, liczby poprzedniego pilota w ``ai_pilot``). Pozycje wyeksportowane
    albo z konfliktem eksportu nie są ruszane (ich tekst jest już w źródle albo w sporze).

    Returns:
        Liczba pozycji oddanych do ponownego przetworzenia.
    """
    changed = db.execute(
        "UPDATE task_item SET status='pending', text_corrected=NULL, local_hash=NULL, change_summary=NULL, "
        "processed_at=NULL, approved_at=NULL, approved_by=NULL, ai_flags=NULL, prompt_version=NULL, "
        "ai_error=NULL, ai_attempts=0, tokens_input=0, tokens_output=0, cost_usd=0, operation_uuid=NULL, "
        "id_ai_pilot=%s WHERE id_task=%s AND id_ai_pilot=%s AND status IN ('pending','outdated','processed',"
        "'accepted','rejected') AND claim_uuid IS NULL AND id_ai_batch IS NULL",
        (new_pilot, id_task, id_ai_pilot),
    )
    return changed
