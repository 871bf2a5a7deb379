#!/usr/bin/env bash
# Packs .svc/services.tar.xz (ignored; about 23 MB): this Debian machine's PostgreSQL 15 server and Redis,
# with the shared libraries they load except glibc's, for bench/device_services.sh on a device machine,
# whose image has neither. Run it here, then carry ".svc" in the device call.
set -euo pipefail
pg=/usr/lib/postgresql/15
redis=$(readlink -f "$(command -v redis-server)")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/bin" "$stage$pg/bin" "$stage/usr/share/postgresql"
cp "$pg"/bin/{postgres,initdb,pg_ctl,psql} "$stage$pg/bin/"
# The server's own modules that initdb loads (PL/pgSQL, text search, encoding conversions); not the JIT.
cp -r "$pg/lib" "$stage$pg/"
rm -rf "$stage$pg"/lib/bitcode "$stage$pg"/lib/llvmjit*
cp -r /usr/share/postgresql/15 "$stage/usr/share/postgresql/"
cp "$redis" "$stage/bin/redis-server"
for binary in "$pg"/bin/{postgres,initdb,psql} "$redis"; do ldd "$binary" | awk '$3 ~ /^\// {print $3}'; done |
  sort -u | grep -v -E '/(libc|libm|libresolv|ld-linux[^/]*)\.so' | xargs -I{} cp -L {} "$stage/lib/"
chmod 755 "$stage"  # mktemp's 0700 would travel as the root's mode: the servers run as nobody
mkdir -p .svc
tar cJf .svc/services.tar.xz -C "$stage" .
du -sh .svc/services.tar.xz
