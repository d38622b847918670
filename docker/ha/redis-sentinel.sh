#!/bin/sh
# Starts a Redis Sentinel of docker/compose.ha.yaml. The first start writes
# /data/sentinel.conf (a volume of its own), monitoring the master
# $REDIS_MASTER_HOST as "mymaster" with a quorum of 2; Sentinel keeps its
# state (the current master after a failover, the replicas, the other
# sentinels) in that file, so a restarted sentinel resumes where it was.
# Every address is a Compose service name (Sentinel's hostname support), so
# a container that comes back with another IP address is still found.
set -eu
conf=/data/sentinel.conf
: "${SENTINEL_ANNOUNCE_HOST:?set SENTINEL_ANNOUNCE_HOST to the service name of this sentinel}"
if [ ! -s "$conf" ]; then
  cat >"$conf.new" <<CONF
port 26379
protected-mode no
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SENTINEL_ANNOUNCE_HOST
sentinel monitor mymaster ${REDIS_MASTER_HOST:-redis-1} 6379 2
sentinel down-after-milliseconds mymaster ${REDIS_SENTINEL_DOWN_AFTER_MS:-5000}
sentinel failover-timeout mymaster ${REDIS_SENTINEL_FAILOVER_TIMEOUT_MS:-60000}
sentinel parallel-syncs mymaster 1
CONF
  mv "$conf.new" "$conf"
fi
exec redis-sentinel "$conf"
