#!/usr/bin/env bash
# Unpack etcd 3.4 (Debian's etcd-server package) into .etcd34/ at the repo root, for the
# fault tests that also run against 3.4 (tests/integration/test_faults.py finds
# .etcd34/usr/bin/etcd, or $ETCD34_BIN).
#
# `apt-get download` + `dpkg -x` extract the binary without installing the package: its
# postinst would start a daemon on port 2379. Needs Debian's package lists (run
# `apt-get update` first on a fresh machine). Idempotent: does nothing if the binary is there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.etcd34"
binary="$dest/usr/bin/etcd"

if [[ -x "$binary" ]]; then
    echo "already there: $("$binary" --version | head -n 1) at $binary"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt drops privileges to _apt for downloads; it needs a directory that user can write.
chmod 0777 "$work"
(cd "$work" && apt-get download etcd-server)
debs=("$work"/etcd-server_*.deb)
if [[ ! -f "${debs[0]}" ]]; then
    echo "apt-get download etcd-server produced no .deb" >&2
    exit 1
fi
rm -rf "$dest.tmp"
dpkg -x "${debs[0]}" "$dest.tmp"
if [[ ! -x "$dest.tmp/usr/bin/etcd" ]]; then
    echo "the package has no usr/bin/etcd" >&2
    rm -rf "$dest.tmp"
    exit 1
fi
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "unpacked: $("$binary" --version | head -n 1) at $binary"
