#!/bin/sh
# Installs every Debian package that building, running and testing tlsgate
# needs. Idempotent: prints nothing and touches nothing when all is present.
set -eu

PKGS="build-essential cmake pkgconf clang clang-format libclang-rt-14-dev
liblmdb-dev lmdb-utils libgnutls28-dev gnutls-bin libuv1-dev libmsgpack-dev
libidn2-dev libjansson-dev libinih-dev libc-ares-dev libcmocka-dev
swaks openssl postfix gnuplot-nox procps iproute2 python3"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "deps: installing:$missing" >&2
# Postfix is only a test peer here: never let it configure or start itself.
echo "postfix postfix/main_mailer_type select No configuration" |
    $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
