"""Kształt domu: brak cykli importów w ``lib``, rozmiary funkcji i modułów, skrypty CLI na górze warstw.

Kierunki importów między pakietami sprawdza ``lint-imports`` (kontrakty w ``pyproject.toml``);
tu jest to, czego import-linter nie wyraża: cykle między dowolnymi modułami ``lib`` (graf
z grimp), długości z drzewa składni i skrypty w katalogu głównym, które nie są pakietem.
"""

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
CLIS = ("sync.py", "ai.py", "review.py")
MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 800
# Spec: task_item.py to jedyne miejsce SQL pozycji - może być dłuższy.
MODULE_EXEMPT = {"lib/task_item.py"}

# Znani przekraczający limity (do podziału). Test pada, gdy pojawi się nowy albo gdy któryś
# z tej listy już mieści się w limicie (wtedy usuń go stąd).
KNOWN_LONG_FUNCTIONS: set[str] = set()
KNOWN_LONG_MODULES: set[str] = set()


def _python_files() -> list[Path]:
    files = [*sorted((ROOT / "lib").rglob("*.py")), *sorted((ROOT / "ailexia_dagster").rglob("*.py"))]
    return files + [ROOT / name for name in CLIS]


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """Zwraca ``(nazwa kwalifikowana, liczba linii)`` każdej funkcji, także zagnieżdżonej."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            found.append((name, node.end_lineno - node.lineno + 1))
            found += _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
        else:
            found += _functions(node, prefix)
    return found


def test_no_import_cycles_in_lib() -> None:
    graph = grimp.build_graph("lib")
    cycles = set()
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module, as_packages=False):
                cycles.add(" <-> ".join(sorted((module, imported))))
    assert not cycles, "cykle importów w lib: " + "; ".join(sorted(cycles))


def test_function_and_module_sizes() -> None:
    long_functions, long_modules = set(), set()
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES and rel not in MODULE_EXEMPT:
            long_modules.add(rel)
        for name, lines in _functions(ast.parse(text)):
            if lines > MAX_FUNCTION_LINES:
                long_functions.add(f"{rel}::{name}")
    assert long_functions - KNOWN_LONG_FUNCTIONS == set(), "nowe funkcje ponad 100 linii"
    assert KNOWN_LONG_FUNCTIONS - long_functions == set(), "już krótkie: usuń z KNOWN_LONG_FUNCTIONS"
    assert long_modules - KNOWN_LONG_MODULES == set(), "nowe moduły ponad 800 linii"
    assert KNOWN_LONG_MODULES - long_modules == set(), "już krótkie: usuń z KNOWN_LONG_MODULES"


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_clis_are_the_top_layer() -> None:
    """Nikt w ``lib`` ani w ``ailexia_dagster`` nie importuje skryptów CLI (nie są pakietem dla import-linter)."""
    cli_modules = {name.removesuffix(".py") for name in CLIS}
    for path in _python_files():
        imported = {name.split(".")[0] for name in _imported_names(path)}
        assert not imported & cli_modules, f"{path.relative_to(ROOT)} importuje skrypt CLI"
