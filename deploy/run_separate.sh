#!/usr/bin/env bash
# Webserver, demon i serwer kodu Dagstera jako TRZY OSOBNE procesy na jednej maszynie (jak jednostki
# systemd z deploy/systemd/, tylko w jednym terminalu). Ctrl-C albo SIGTERM zatrzymuje wszystkie trzy.
#
# Zmienne (środowisko procesu): DAGSTER_HOME (instancja; brak = jak w skryptach: .env, potem
# <projekt>/.dagster_home), DAGSTER_HOST / DAGSTER_PORT (webserver, 127.0.0.1:3000),
# DAGSTER_CODE_HOST / DAGSTER_CODE_PORT (serwer kodu, 127.0.0.1:4266), DAGSTER_PG_* dla magazynu
# PostgreSQL z deploy/dagster.yaml. Ustawienia workera (DB_LOCAL_*, klucze API) jak zawsze: .env + środowisko.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.venv/bin"
[ -x "$bin/dagster" ] || { echo "brak $bin/dagster: uruchom najpierw bash scripts/setup_venv.sh" >&2; exit 2; }
cd "$root"
DAGSTER_HOME="${DAGSTER_HOME:-$("$bin/python" -c 'from lib.load_config import load_config; print(load_config().dagster_home)')}"
export DAGSTER_HOME
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml.example "$DAGSTER_HOME/dagster.yaml"
code_host="${DAGSTER_CODE_HOST:-127.0.0.1}"
code_port="${DAGSTER_CODE_PORT:-4266}"
# Workspace z adresem serwera kodu (jak deploy/workspace.yaml, z portem z tego uruchomienia).
workspace="$DAGSTER_HOME/workspace.grpc.yaml"
cat > "$workspace" <<YAML
load_from:
  - grpc_server:
      host: $code_host
      port: $code_port
      location_name: ailexia
YAML
# CLI Dagstera wczytuje .env z bieżącego katalogu i nadpisuje nim środowisko; start z katalogu
# instancji zachowuje zasadę "środowisko wygrywa" (.env i tak czyta lib/load_config.py).
cd "$DAGSTER_HOME"
export DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD="${DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD:-5}"

pids=()
# Czy grupa procesów jeszcze żyje (serwer kodu ma potomków: `dagster api grpc`, procesy runów).
alive() { kill -0 -- "-$1" 2>/dev/null; }
wait_groups() {  # wait_groups DZIESIĄTE_SEKUNDY PGID...
  local tenths=$1; shift
  for _ in $(seq 1 "$tenths"); do
    local any=0
    for pid in "$@"; do alive "$pid" && any=1; done
    [ "$any" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
stop_all() {
  trap - INT TERM
  echo "run_separate: zatrzymuję procesy ${pids[*]}" >&2
  # Najpierw webserver i demon: bez ich otwartych wywołań gRPC serwer kodu kończy się od razu
  # (inaczej czeka na nie DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD sekund).
  for pid in "${pids[@]:1}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait_groups 60 "${pids[@]:1}" || true
  kill -TERM -- "-${pids[0]}" 2>/dev/null || true
  if ! wait_groups 40 "${pids[@]}"; then
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  fi
  exit 0
}
trap stop_all INT TERM

# Każdy proces we własnej grupie (setsid): sygnał z terminala trafia tylko do tego skryptu,
# a skrypt zatrzymuje całe grupy (serwer kodu ma proces potomny `dagster api grpc`, runy też).
setsid "$bin/dagster" code-server start -h "$code_host" -p "$code_port" \
  -m ailexia_dagster.definitions -d "$root" --location-name ailexia &
pids+=($!)
# Demon i webserver startują, gdy serwer kodu odpowiada (inaczej pierwsze ładowanie kończy się błędem lokacji).
for _ in $(seq 1 600); do
  "$bin/dagster" api grpc-health-check -h "$code_host" -p "$code_port" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "run_separate: serwer kodu nie wystartował" >&2; stop_all; }
  sleep 0.5
done
setsid "$bin/dagster-daemon" run -w "$workspace" &
pids+=($!)
setsid "$bin/dagster-webserver" -w "$workspace" -h "${DAGSTER_HOST:-127.0.0.1}" -p "${DAGSTER_PORT:-3000}" &
pids+=($!)
echo "run_separate: serwer kodu ${pids[0]} ($code_host:$code_port), demon ${pids[1]}, webserver ${pids[2]} (http://${DAGSTER_HOST:-127.0.0.1}:${DAGSTER_PORT:-3000})" >&2
# Gdy któryś proces padnie, zatrzymujemy pozostałe (systemd w produkcji restartuje każdy osobno).
wait -n "${pids[@]}" || true
echo "run_separate: jeden z procesów zakończył się - zatrzymuję resztę" >&2
stop_all
