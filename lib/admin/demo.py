"""Demo bez własnej bazy: plik SQLite z polskimi tekstami z repozytorium, źródło i zadanie na nim.

Teksty (``lib/admin/demo/teksty.txt``, jeden w linii) zawierają typowe błędy do poprawienia.
Źródło i zadanie powstają tymi samymi funkcjami co ``ailexia source add`` i ``ailexia task add``
(z tym samym sprawdzeniem tabeli, kolumny i klucza).
"""

import sqlite3
from pathlib import Path
from typing import Any

from lib.admin.sources import add_source, get_source, remove_source
from lib.admin.tasks import add_task
from lib.db_local import MySQL
from lib.errors import ConfigError
from lib.load_config import PROJECT_ROOT, Settings

TEXTS_FILE = Path(__file__).with_name("demo") / "teksty.txt"
DEFAULT_PATH = PROJECT_ROOT / "data" / "demo.sqlite"
TABLE = "teksty"
COLUMN = "tresc"


def demo_texts() -> list[str]:
    """Teksty demo z pliku w repozytorium (niepuste linie)."""
    lines = TEXTS_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def create_demo_database(path: Path) -> int:
    """Tworzy plik SQLite z tabelą ``teksty(id, tresc)``; istniejącej tabeli z wierszami nie rusza.

    Args:
        path: Ścieżka pliku (katalog tworzony, gdy brak).

    Returns:
        Liczba wierszy tabeli.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, {COLUMN} TEXT NOT NULL)")
        count = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
        if not count:
            texts = demo_texts()
            conn.executemany(
                f"INSERT INTO {TABLE} (id, {COLUMN}) VALUES (?, ?)",
                [(number, text) for number, text in enumerate(texts, start=1)],
            )
            conn.commit()
            count = len(texts)
        return int(count)
    finally:
        conn.close()


def install_demo(
    db: MySQL,
    settings: Settings,
    alias: str = "demo",
    path: Path | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Rejestruje źródło SQLite z tekstami demo i zadanie korekty na nim.

    Args:
        db: Połączenie lokalne.
        settings: Ustawienia.
        alias: Alias źródła.
        path: Plik SQLite (domyślnie ``data/demo.sqlite`` w katalogu projektu).
        model: Model AI zadania (``None``: AI po ``ailexia model add`` i ``UPDATE``/nowym zadaniu).

    Returns:
        Słownik alias, path, rows, id_task.

    Raises:
        ConfigError: Alias już zajęty, nieznany model.
    """
    try:
        existing = get_source(db, alias)
    except ConfigError:
        existing = None
    db.commit()
    if existing is not None:
        raise ConfigError(f"źródło {alias!r} już istnieje (demo zainstalowane?); podaj inny --alias")
    path = (path or DEFAULT_PATH).resolve()
    rows = create_demo_database(path)
    add_source(
        db, settings, alias=alias, db_type="sqlite", host=None, port=None, db_name=str(path), user=None
    )
    try:
        id_task = add_task(db, settings, source=alias, table=TABLE, column=COLUMN, model=model)
    except BaseException:
        db.rollback()
        remove_source(db, alias)
        raise
    return {"alias": alias, "path": str(path), "rows": rows, "id_task": id_task}
