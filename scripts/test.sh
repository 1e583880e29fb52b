#!/usr/bin/env bash
# Polecenie "testy": serwery baz, venv + instalacja, ruff (lint i format), podręcznik (mkdocs), kontrakty importów, pytest.
# pytest idzie dwa razy: równolegle (pytest-xdist, PYTEST_WORKERS workerów, domyślnie 3) wszystko
# poza testami ``global_settings``, potem szeregowo same testy ``global_settings`` (SET GLOBAL
# zmienia serwer dla wszystkich sesji, więc nie mogą iść obok innych testów).
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
parallel=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-3}" --dist worksteal -m "not global_settings" --durations=20 "$@" || parallel=$?
serial=0
.venv/bin/python -m pytest -m global_settings "$@" || serial=$?
# 5 = pytest nic nie wybrał (np. "$@" wskazuje plik bez testów jednej z grup): błąd tylko, gdy w obu.
for code in "$parallel" "$serial"; do
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then
    exit "$code"
  fi
done
if [ "$parallel" -eq 5 ] && [ "$serial" -eq 5 ]; then
  exit 5
fi
