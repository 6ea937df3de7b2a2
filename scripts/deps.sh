#!/bin/sh
# Install the Debian packages posthorn needs.  Idempotent: packages already
# present are skipped.  Usage: scripts/deps.sh [build|test|bench|all]
#   build  compiler, libraries (OpenSSL 3, PCRE2, LMDB, libevent, libsasl2,
#          libxcrypt) and pkg-config
#   test   build + cmocka, pytest (+ xdist), swaks (+ Net::SSLeay for --tls), openssl,
#          fetchmail, mutt (the integration suite's clients and test
#          certificates)
#   bench  test + Postfix and Dovecot (the reference pair) -- see bench/
set -eu
group=${1:-test}

build_pkgs="build-essential pkg-config libssl-dev libpcre2-dev liblmdb-dev
 lmdb-utils libevent-dev libsasl2-dev libsasl2-modules libcrypt-dev libc-ares-dev"
test_pkgs="libcmocka-dev python3 python3-pytest python3-pytest-xdist swaks libnet-ssleay-perl clang openssl fetchmail mutt"
bench_pkgs="postfix dovecot-imapd dovecot-pop3d"

case "$group" in
build) pkgs="$build_pkgs" ;;
test) pkgs="$build_pkgs $test_pkgs" ;;
bench | all) pkgs="$build_pkgs $test_pkgs $bench_pkgs" ;;
*) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix must not start or grab port 25 on install; the bench runs its own
# instance.  policy-rc.d keeps services from starting during installation.
if [ "$group" = bench ] || [ "$group" = all ]; then
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
fi
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
