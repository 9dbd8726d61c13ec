#!/usr/bin/env bash
# Start Debian's redis-server on 127.0.0.1:6379 (no persistence) unless one answers there,
# and wait until it does. .ci/run installs the package (apt: redis-server).
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is not installed (apt-get install redis-server)" >&2
    exit 1
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save "" --appendonly no \
        --dir /tmp --logfile /tmp/redis-6379.log
fi
for _ in $(seq 1 50); do
    if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; then
        echo "Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') is running on 127.0.0.1:6379"
        exit 0
    fi
    sleep 0.2
done
echo "Redis did not answer on 127.0.0.1:6379 within 10 s (see /tmp/redis-6379.log)" >&2
exit 1
