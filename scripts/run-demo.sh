#!/bin/sh
# make run: create a self-contained demo instance under ./run/ and start it
# in the foreground on unprivileged loopback ports.  Ctrl-C stops it.
#
#   domain  example.test        user  demo@example.test
#   SMTP    127.0.0.1:2525      mail  run/mail/example.test/demo/new/
#   log     run/log/maillog (and on this terminal)
#
# An existing run/ keeps its queue and mailboxes; its configuration is
# rewritten each time so it matches this build.
set -eu
build=${1:?usage: run-demo.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
run=$top/run
smtp_port=${POSTHORN_SMTP_PORT:-2525}

mkdir -p "$run/etc" "$run/queue" "$run/mail" "$run/log"
# As an ordinary user everything runs as that user.  As root, the workers
# drop to an unprivileged account (as in production) and mail is stored
# under that account's uid.
if [ "$(id -u)" -eq 0 ]; then
    user=nobody
    uid=$(id -u nobody) gid=$(id -g nobody)
    chown -R "$uid:$gid" "$run/queue" "$run/mail"
    ownership="virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid"
else
    user=$(id -un)
    ownership=""
fi

cat >"$run/etc/main.cf" <<CF
# Demo instance written by scripts/run-demo.sh (make run).
# Everything lives under $run.
myhostname = mail.example.test
mydomain = example.test
myorigin = \$mydomain
mydestination = localhost
mynetworks = 127.0.0.0/8 [::1]/128
inet_interfaces = 127.0.0.1
mail_owner = $user
queue_directory = $run/queue
daemon_directory = $build/bin
maillog_file = /dev/stderr
virtual_mailbox_domains = example.test
virtual_mailbox_base = $run/mail
virtual_mailbox_maps = texthash:$run/etc/vmailbox
virtual_alias_maps = texthash:$run/etc/virtual
$ownership
CF

cat >"$run/etc/master.cf" <<CF
# service        type  private unpriv chroot wakeup maxproc command
127.0.0.1:$smtp_port inet  n       -      n      -      -       smtpd
cleanup          unix  n       -      n      -      0       cleanup
qmgr             unix  n       -      n      300    1       qmgr
local            unix  -       n      n      -      -       local
CF

cat >"$run/etc/vmailbox" <<CF
# address              Maildir under virtual_mailbox_base (trailing / = Maildir)
demo@example.test      example.test/demo/
CF

cat >"$run/etc/virtual" <<CF
# alias                  target(s)
postmaster@example.test  demo@example.test
info@example.test        demo@example.test
CF

cat <<MSG

posthorn demo instance in $run
  SMTP  127.0.0.1:$smtp_port   (domain example.test, user demo@example.test)

Send a first message from another terminal:
  swaks --server 127.0.0.1:$smtp_port --to demo@example.test --from you@example.test

It lands in:
  $run/mail/example.test/demo/new/

Queue:  $build/bin/posthorn -c $run/etc queue -p
Stop:   Ctrl-C

MSG
exec "$build/bin/posthorn" -c "$run/etc" start-fg
