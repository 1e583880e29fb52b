#!/usr/bin/env bash
# Upewnia się, że MariaDB (127.0.0.1:3306) i PostgreSQL (127.0.0.1:5432) działają, a Chromium jest zainstalowany.
# Uruchamia je, gdy stoją; instaluje przez apt-get, gdy ich brak. Nie pomija testów bazodanowych:
# jeśli serwera nie da się uruchomić, kończy się błędem.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

wait_port() {
  local port=$1
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  return 1
}

apt_install() {
  if [ "$(id -u)" != "0" ]; then echo "ensure_services: need root to apt-get install $*" >&2; return 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$@"
}

ensure_mariadb() {
  if port_open 3306; then return 0; fi
  if [ ! -x /usr/sbin/mariadbd ]; then echo "ensure_services: installing MariaDB"; apt_install mariadb-server; fi
  echo "ensure_services: starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql >/dev/null 2>&1 \
    || (/usr/sbin/mariadbd --user=mysql >/dev/null 2>&1 &)
  wait_port 3306 || { echo "ensure_services: MariaDB did not start on 127.0.0.1:3306" >&2; exit 1; }
  # Świeża instalacja: root bez hasła przez TCP.
  mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')" 2>/dev/null || true
}

ensure_postgres() {
  if port_open 5432; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then echo "ensure_services: installing PostgreSQL"; apt_install postgresql; fi
  echo "ensure_services: starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Testy łączą się jako postgres bez hasła przez TCP (trust tylko na loopbacku).
  if ! grep -q "ailexia-trust" "$hba" 2>/dev/null; then
    sed -i '1i host all all 127.0.0.1/32 trust # ailexia-trust\nhost all all ::1/128 trust # ailexia-trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 || { echo "ensure_services: PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
}

# Testy strony przeglądu: Chromium z Debiana, sterowany przez Playwright (bez pobierania przeglądarek).
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  echo "ensure_services: installing chromium"
  apt_install chromium chromium-driver
  [ -x /usr/bin/chromium ] || { echo "ensure_services: chromium was not installed as /usr/bin/chromium" >&2; exit 1; }
}

ensure_mariadb
ensure_postgres
ensure_chromium
echo "ensure_services: MariaDB and PostgreSQL are up on 127.0.0.1; chromium is installed"
