#!/usr/bin/env bash
# Polecenie "testy": serwery baz, venv + instalacja, ruff (lint i format), kontrakty importów, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_services.sh
bash scripts/setup_venv.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
