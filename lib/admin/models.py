"""Modele AI (``ai_model``) bez SQL-a operatora: dodanie i lista (test modelu: ``lib.ai.probe``).

Klucz API nigdy nie trafia do bazy: ``api_key_env`` to nazwa zmiennej środowiska z kluczem.
"""

from decimal import Decimal
from typing import Any

from lib.db_local import MySQL
from lib.errors import ConfigError
from lib.passwords import ENV_NAME_RE


def get_model(db: MySQL, name: str) -> dict[str, Any]:
    """Wiersz ``ai_model`` o nazwie ``name``.

    Raises:
        ConfigError: Brak takiego modelu (kod wyjścia 2).
    """
    row = db.query_one("SELECT * FROM ai_model WHERE name=%s", (name,))
    if row is None:
        raise ConfigError(f"model {name!r} nie istnieje (lista: ailexia model list)")
    return row


def add_model(
    db: MySQL,
    *,
    name: str,
    model: str,
    base_url: str | None,
    api_key_env: str,
    price_in: Decimal,
    price_out: Decimal,
    pack_items: int | None = None,
    batch: bool = False,
) -> int:
    """Rejestruje model AI.

    Args:
        db: Połączenie lokalne.
        name: Unikalna nazwa (alias) modelu.
        model: Nazwa modelu u dostawcy, np. ``gpt-4o-mini``.
        base_url: Adres serwera zgodnego z OpenAI albo ``None`` (api.openai.com / ``OPENAI_BASE_URL``).
        api_key_env: Nazwa zmiennej środowiska z kluczem API.
        price_in: USD za milion tokenów wejściowych.
        price_out: USD za milion tokenów wyjściowych.
        pack_items: Najwięcej tekstów w zapytaniu (``None`` = ``AI_PACK_ITEMS``, 1 = bez paczek).
        batch: Tryb OpenAI Batch API.

    Returns:
        ``id_ai_model``.

    Raises:
        ConfigError: Powtórzona nazwa, zła nazwa zmiennej, ujemna cena, zły adres.
    """
    if not name or len(name) > 64:
        raise ConfigError("--name: podaj nazwę modelu (1-64 znaki)")
    if not model or len(model) > 128:
        raise ConfigError("--model: podaj nazwę modelu u dostawcy (1-128 znaków)")
    if not ENV_NAME_RE.match(api_key_env):
        raise ConfigError(f"--api-key-env: {api_key_env!r} nie jest nazwą zmiennej środowiska")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url: oczekiwano adresu http(s)://..., jest {base_url!r}")
    for option, price in (("--price-in", price_in), ("--price-out", price_out)):
        if price < 0 or price >= Decimal("1000000"):
            raise ConfigError(
                f"{option}: cena za milion tokenów musi być w przedziale 0-999999 (jest {price})"
            )
    if pack_items is not None and pack_items < 1:
        raise ConfigError(f"--pack-items: co najmniej 1 (jest {pack_items})")
    if db.query_value("SELECT COUNT(*) FROM ai_model WHERE name=%s", (name,)):
        raise ConfigError(f"model o nazwie {name!r} już istnieje; wybierz inną --name")
    db.execute(
        "INSERT INTO ai_model (name, model, base_url, api_key_env, price_input_per_mtok, price_output_per_mtok, "
        "pack_items, batch_mode) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (name, model, base_url or None, api_key_env, price_in, price_out, pack_items, 1 if batch else 0),
    )
    id_model = int(db.query_value("SELECT LAST_INSERT_ID()"))
    db.commit()
    return id_model


def list_models(db: MySQL) -> list[dict[str, Any]]:
    """Modele z cenami i liczbą zadań (klucz API tylko z nazwy zmiennej)."""
    rows = db.query(
        "SELECT m.id_ai_model, m.name, m.model, m.base_url, m.api_key_env, m.price_input_per_mtok, "
        "m.price_output_per_mtok, m.pack_items, m.batch_mode, m.status, m.response_format, "
        "(SELECT COUNT(*) FROM task t WHERE t.id_ai_model=m.id_ai_model) AS tasks FROM ai_model m ORDER BY m.name"
    )
    db.commit()
    return [
        {
            "id": int(r["id_ai_model"]),
            "name": r["name"],
            "model": r["model"],
            "base_url": r["base_url"],
            "api_key_env": r["api_key_env"],
            "price_in": float(r["price_input_per_mtok"] or 0),
            "price_out": float(r["price_output_per_mtok"] or 0),
            "pack_items": r["pack_items"],
            "batch": bool(r["batch_mode"]),
            "status": r["status"],
            "response_format": r["response_format"],
            "tasks": int(r["tasks"]),
        }
        for r in rows
    ]
