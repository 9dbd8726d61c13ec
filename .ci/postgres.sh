#!/usr/bin/env bash
# Start Debian's PostgreSQL cluster on 127.0.0.1:5432 and create the test role.
set -euo pipefail
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
    pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk '$1=="'"$version"'" && $2=="main" {print $4}' | grep -q online; then
    pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do
    runuser -u postgres -- pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
runuser -u postgres -- psql -q -h /var/run/postgresql -c \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dunning') THEN
       CREATE ROLE dunning LOGIN SUPERUSER PASSWORD 'dunning'; END IF; END \$\$;"
runuser -u postgres -- psql -q -h /var/run/postgresql -tc "SELECT 1 FROM pg_database WHERE datname = 'dunning'" \
    | grep -q 1 || runuser -u postgres -- createdb -h /var/run/postgresql -O dunning dunning
echo "PostgreSQL $version is running on 127.0.0.1:5432"
