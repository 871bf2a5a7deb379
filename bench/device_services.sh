# Sourced on a device machine: PostgreSQL and Redis from .svc/services.tar.xz, which bench/services_carry.sh
# packs here (Debian's binaries and the libraries they load, less glibc). The device image has neither
# server and no registry. The servers run as `nobody` (PostgreSQL refuses root) on loopback.
#   source bench/device_services.sh && start_services /tmp/svc.log   # exports SHOAL_PG_URL, SHOAL_REDIS_URL
start_services() {  # LOG
  local root=/tmp/svcroot data=/tmp/pgdata pg=${PG_PORT:-5432} redis=${REDIS_PORT:-6379}
  mkdir -p $root && tar xJf .svc/services.tar.xz -C $root && chmod 755 $root || return 1
  local lib=$root/lib bin=$root/usr/lib/postgresql/15/bin
  mkdir -p $data && chown nobody $data && chmod 700 $data
  as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_LIBRARY_PATH=$lib "$@"; }
  as_nobody $bin/initdb -D $data -U postgres --auth=trust -E UTF8 --locale=C >> "$1" 2>&1 || return 1
  as_nobody $bin/pg_ctl -D $data -l /tmp/pg.log -w -o "-k /tmp -h 127.0.0.1 -p $pg" start >> "$1" 2>&1 || return 1
  LD_LIBRARY_PATH=$lib $root/bin/redis-server --daemonize yes --bind 127.0.0.1 --port $redis --save "" \
    --appendonly no --logfile /tmp/redis.log >> "$1" 2>&1 || return 1
  export SHOAL_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$pg SHOAL_REDIS_URL=redis://127.0.0.1:$redis
}
