"""Podręcznik: README jako krótkie wejście, strony docs/ bez historii, tabela kluczy i układu.

Testy czytają tylko pliki repozytorium (bez baz danych i sieci).
"""

import re
from pathlib import Path

import pytest

from lib import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"

# Skrót commita (7-40 znaków szesnastkowych) jako osobne słowo, z co najmniej jedną cyfrą i jedną
# literą a-f - tak, by nie łapać liczb ani zwykłych słów ("decade", "added"); części UUID (między
# łącznikami) też nie.
_COMMIT = re.compile(
    r"(?<![0-9A-Za-z_/.-])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![0-9A-Za-z_-])"
)
_STOP = re.compile(r"\bstop \d+", re.IGNORECASE)


def _pages() -> list[Path]:
    """README i wszystkie strony Markdown w ``docs/``."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def _config_keys() -> set[str]:
    """Klucze znane ``lib/load_config.py`` (tabela ``SETTINGS_SPEC`` albo pola obiektu ``Settings``)."""
    spec = getattr(load_config, "SETTINGS_SPEC", None)
    if spec is not None:
        return set(spec)
    settings_cls = getattr(load_config, "Settings", None)
    assert settings_cls is not None, "lib/load_config.py nie ma ani SETTINGS_SPEC, ani Settings"
    keys = set()
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        keys.add((alias or name).upper())
    return keys


def test_readme_is_short():
    """README to drzwi wejściowe: najwyżej 200 linii."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README ma {len(lines)} linii (limit 200)"


def test_commit_pattern_finds_hashes_and_spares_words():
    """Wzorzec skrótu commita łapie skróty, a nie liczby ani słowa."""
    assert _COMMIT.search("at commit de4bf08 the run")
    assert _COMMIT.search("(`8b487d0`)")
    assert not _COMMIT.search("1000000 rows, a decade, added, 0.15 s, sha256, utf8mb4")
    assert not _COMMIT.search("remote_key 6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_history_in_docs(page: Path):
    """Dokumentacja to obecny stan: bez skrótów commitów i bez "stop N" z dziennika pracy."""
    text = page.read_text(encoding="utf-8")
    hashes = sorted({m.group(0) for m in _COMMIT.finditer(text)})
    stops = sorted({m.group(0) for m in _STOP.finditer(text)})
    assert not hashes, f"{page.name}: skróty commitów {hashes}"
    assert not stops, f"{page.name}: odwołania do etapów pracy {stops}"


def test_configuration_page_names_every_key():
    """Każdy klucz z ``lib/load_config.py`` i z ``.env.example`` ma wiersz w docs/configuration.md."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    from_example = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    missing = sorted(key for key in _config_keys() | from_example if f"`{key}`" not in text)
    assert not missing, f"docs/configuration.md nie opisuje kluczy: {missing}"


def test_architecture_page_names_every_module():
    """Tabela układu w docs/architecture.md wymienia każdy moduł ``lib/**/*.py`` i każdy pakiet."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for path in sorted((PROJECT_ROOT / "lib").rglob("*.py")):
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        name = rel.removesuffix("__init__.py") if path.name == "__init__.py" else rel
        if name != "lib/" and f"`{name}`" not in text and f"`{name.rstrip('/')}`" not in text:
            missing.append(name)
    assert not missing, f"docs/architecture.md nie wymienia: {missing}"


def test_every_docs_page_is_in_nav():
    """Każda strona ``docs/*.md`` jest w nawigacji ``mkdocs.yml`` (build --strict też to sprawdza)."""
    nav = (PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f": {p.name}" not in nav]
    assert not missing, f"strony spoza nawigacji mkdocs.yml: {missing}"
