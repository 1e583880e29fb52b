#!/usr/bin/env bash
# Tworzy .venv (jeśli brak) i instaluje projekt z przypiętymi zależnościami.
# Użycie: bash scripts/setup_venv.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"
stamp=".venv/.installed$extra"
# Instalacja z [dev] zawiera zwykłą: run.sh po testach nie instaluje drugi raz.
[ -z "$extra" ] && [ -f ".venv/.installed[dev]" ] && [ ! pyproject.toml -nt ".venv/.installed[dev]" ] && exit 0
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e ".$extra"
  touch "$stamp"
fi
