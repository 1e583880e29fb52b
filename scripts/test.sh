#!/usr/bin/env bash
# Polecenie "testy": serwery baz, venv + instalacja, ruff (lint i format), podręcznik (mkdocs), kontrakty importów, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_services.sh
bash scripts/setup_venv.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Podręcznik z docs/: zepsuty link, kotwica albo strona spoza nawigacji przerywa testy. Bez -q:
# -q ukrywa ostrzeżenia i wtedy --strict ich nie liczy.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
