#!/bin/sh
# README's first quick-start command. Installs the Debian packages that are
# missing, builds tlsgate in ./build, creates a demo policy store in
# ./var/policy on the first run, says how to try it, then runs the
# supervisor in the foreground on loopback. Ctrl-C stops everything.
# Extra arguments go to tlsgated, e.g. ./scripts/run.sh --inbound-workers 2
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p build
echo "run: building in ./build (log: build/build.log)"
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    cmake --build build -j "$jobs"; } >build/build.log 2>&1; then
    tail -n 40 build/build.log >&2
    echo "run: the build failed; the whole log is build/build.log" >&2
    exit 1
fi

admin=build/bin/tlsgate-admin
domain=mail.example.net
mailbox=globalmobility@acme.$domain
# The state folder is private to the gateway (docs/operations.md).
mkdir -p -m 0750 var
if [ -e var/policy/data.mdb ]; then
    echo "run: keeping the policy store in var/policy"
elif [ ! -x "$admin" ]; then
    echo "run: tlsgate-admin is not built yet: no demo store created"
else
    echo "run: creating a demo policy store in var/policy"
    "$admin" --db var/policy init --platform-domain "$domain" >/dev/null
    "$admin" --db var/policy tenant add acme >/dev/null
    "$admin" --db var/policy inbound mailbox add acme "$mailbox" >/dev/null
    "$admin" --db var/policy outbound mode acme off >/dev/null
    echo "run: tenant acme, monitored mailbox $mailbox, outbound mode off"
fi

echo "run: programs built ($(build/bin/tlsgated --version 2>/dev/null ||
    echo "tlsgated not built")):"
for p in tlsgated tlsgate-engine tlsgate-smtpin tlsgate-smtpout \
    tlsgate-queue tlsgate-admin tlsgate-sendmail tlsgate-bench; do
    if [ -x "build/bin/$p" ]; then
        echo "       $p"
    else
        echo "       $p (not built yet)"
    fi
done
# The addresses in effect, with the extra arguments applied.
settings=$(build/bin/tlsgated --state-dir ./var "$@" --print-settings)
setting() {
    printf '%s\n' "$settings" | sed -n "s/^$1 = //p"
}
inbound=$(setting inbound_listen)
server=${inbound%% *}
cat <<HELP
run: starting build/bin/tlsgated --state-dir ./var $*
     inbound SMTP on $inbound
     submission on $(setting submission_listen)
     engine socket $(setting engine_socket)
     Try it from another terminal:
       swaks --server $server --from alice@example.org \\
             --to $mailbox
       swaks --server $server --tls --from alice@example.org \\
             --to $mailbox
       swaks --server $server --to nobody@acme.$domain   # 550 5.1.1
       ls -R $(setting mail_dir)/acme
       TLSGATE_DB=$(setting policy_dir) $admin tenant show acme
       TLSGATE_DB=$(setting policy_dir) $admin explain inbound \\
             alice@example.org $mailbox
     Log lines follow; Ctrl-C stops everything.
HELP
exec build/bin/tlsgated --state-dir ./var "$@"
