#!/usr/bin/env bash
# Polecenie "uruchom": venv + instalacja, schemat w lokalnym MySQL z .env, potem Dagster UI + daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/setup_venv.sh
# Plik .env dla operatora (do edycji); testy go nie potrzebują.
[ -f .env ] || cp .env.example .env
# Klucz szyfrujący hasła źródeł (AILEXIA_SECRET_KEY): nowy do .env (albo ENV_FILE), gdy go nie ma ani tam, ani w środowisku.
.venv/bin/python -c 'from lib.passwords import ensure_secret_key; ensure_secret_key() and print("zapisano nowy klucz AILEXIA_SECRET_KEY w .env")'
.venv/bin/python sync.py --init-db
# Instancja jak w skryptach (środowisko, potem .env, potem <projekt>/.dagster_home): jedna dla UI i sync.py/ai.py.
DAGSTER_HOME="$(.venv/bin/python -c 'from lib.load_config import load_config; print(load_config().dagster_home)')"
export DAGSTER_HOME
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml.example "$DAGSTER_HOME/dagster.yaml"
# dagster dev wczytuje .env z bieżącego katalogu i nadpisuje nim środowisko procesu; start z katalogu
# instancji zachowuje zasadę "środowisko wygrywa" (.env i tak czyta lib/load_config.py).
cd "$DAGSTER_HOME"
# Nadzorca: Ctrl-C / SIGTERM zamyka dagster dev i wszystko, co uruchomił (webserver, daemon, serwery
# kodu, runy), najwyżej w ~7 s; drugi Ctrl-C od razu - także gdy SIGINT był ignorowany przy starcie.
exec "$root/.venv/bin/python" "$root/scripts/supervise.py" "$root/.venv/bin/dagster" dev -w "$root/workspace.yaml" -h "${DAGSTER_HOST:-127.0.0.1}" -p "${DAGSTER_PORT:-3000}"
