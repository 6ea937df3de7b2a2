#!/bin/sh
# make run: create a self-contained demo instance under ./run/ and start it
# in the foreground on unprivileged loopback ports.  Ctrl-C stops it.
#
#   domain  example.test             user  demo@example.test
#   SMTP         127.0.0.1:2525      STARTTLS offered
#   submission   127.0.0.1:5870      STARTTLS required, then AUTH
#   submissions  127.0.0.1:4650      implicit TLS, AUTH
#   POP3         127.0.0.1:1100      STLS offered;  POP3S 127.0.0.1:9950
#   IMAP         127.0.0.1:1430      STARTTLS offered;  IMAPS 127.0.0.1:9930
#   mail  run/mail/example.test/demo/new/
#   log   run/log/maillog (and on this terminal)
#
# An existing run/ keeps its queue, mailboxes, certificate and the demo
# user's password (run/etc/demo-password); its configuration is rewritten
# each time so it matches this build.  A new service is one more port
# variable, one more master.cf block and one more line in the summary.
set -eu
build=${1:?usage: run-demo.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
run=$top/run
posthorn="$build/bin/posthorn"
smtp_port=${POSTHORN_SMTP_PORT:-2525}
submission_port=${POSTHORN_SUBMISSION_PORT:-5870}
submissions_port=${POSTHORN_SUBMISSIONS_PORT:-4650}
pop3_port=${POSTHORN_POP3_PORT:-1100}
pop3s_port=${POSTHORN_POP3S_PORT:-9950}
imap_port=${POSTHORN_IMAP_PORT:-1430}
imaps_port=${POSTHORN_IMAPS_PORT:-9930}
demo_user=demo@example.test

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
    gid=$(id -g)
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

# Accounts (docs/accounts.md) and TLS (docs/tls.md).
passdb = passwd-file:$run/etc/users
smtpd_tls_cert_file = $run/etc/tls/cert.pem
smtpd_tls_key_file = $run/etc/tls/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
CF

cat >"$run/etc/master.cf" <<CF
# service        type  private unpriv chroot wakeup maxproc command
127.0.0.1:$smtp_port inet  n       -      n      -      -       smtpd
cleanup          unix  n       -      n      -      0       cleanup
qmgr             unix  n       -      n      300    1       qmgr
local            unix  -       n      n      -      -       local
auth             unix  -       -      n      -      1       auth
anvil            unix  -       -      n      -      1       anvil
# Submission: STARTTLS, then AUTH, then mail to anywhere.
127.0.0.1:$submission_port inet  n       -      n      -      -       smtpd
  -o syslog_name=posthorn/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
# Submissions: the same over implicit TLS.
127.0.0.1:$submissions_port inet  n       -      n      -      -       smtpd
  -o syslog_name=posthorn/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
# Mailbox access (docs/pop3.md, docs/imap.md).  pop3d switches to the
# mailbox owner after login (unpriv n); imapd serves many sessions per
# process as mail_owner.
127.0.0.1:$pop3_port inet  n       n      n      -      -       pop3d
127.0.0.1:$pop3s_port inet  n       n      n      -      -       pop3d
  -o pop3d_tls_wrappermode=yes
127.0.0.1:$imap_port inet  n       -      n      -      -       imapd
127.0.0.1:$imaps_port inet  n       -      n      -      -       imapd
  -o imapd_tls_wrappermode=yes
CF

cat >"$run/etc/vmailbox" <<CF
# address              Maildir under virtual_mailbox_base (trailing / = Maildir)
$demo_user      example.test/demo/
CF

cat >"$run/etc/virtual" <<CF
# alias                  target(s)
postmaster@example.test  $demo_user
info@example.test        $demo_user
CF

# The demo user's password: made once, kept in run/etc/demo-password.
if [ ! -s "$run/etc/demo-password" ]; then
    (umask 077 && head -c 12 /dev/urandom | base64 | tr '/+' 'xy' \
        >"$run/etc/demo-password")
fi
password=$(cat "$run/etc/demo-password")
hash=$("$posthorn" -c "$run/etc" passwd -p "$password")
(umask 027 && printf '# demo accounts (scripts/run-demo.sh)\n%s:%s\n' \
    "$demo_user" "$hash" >"$run/etc/users")
# Only auth (running as mail_owner) reads it.
chgrp "$gid" "$run/etc/users"
chmod 0640 "$run/etc/users"

# A self-signed certificate for mail.example.test, made once.
if [ ! -s "$run/etc/tls/cert.pem" ] || [ ! -s "$run/etc/tls/key.pem" ]; then
    "$posthorn" -c "$run/etc" tls new-cert --force >/dev/null
fi

cat <<MSG

posthorn demo instance in $run
  SMTP         127.0.0.1:$smtp_port   (STARTTLS offered)
  submission   127.0.0.1:$submission_port   (STARTTLS required, then AUTH)
  submissions  127.0.0.1:$submissions_port   (implicit TLS, AUTH)
  POP3         127.0.0.1:$pop3_port   (STLS offered)   POP3S 127.0.0.1:$pop3s_port
  IMAP         127.0.0.1:$imap_port   (STARTTLS offered)   IMAPS 127.0.0.1:$imaps_port
  user         $demo_user   password  $password
  certificate  $run/etc/tls/cert.pem   (self-signed for mail.example.test)

Send a first message from another terminal:
  swaks --server 127.0.0.1:$smtp_port --to $demo_user --from you@example.test

Authenticated, as a mail program would (relaying allowed):
  swaks --server 127.0.0.1:$submission_port --tls --auth PLAIN \\
        --auth-user $demo_user --auth-password '$password' \\
        --from $demo_user --to $demo_user
  swaks --server 127.0.0.1:$submissions_port --tls-on-connect --auth LOGIN \\
        --auth-user $demo_user --auth-password '$password' \\
        --from $demo_user --to $demo_user

Look at the TLS side:
  openssl s_client -starttls smtp -connect 127.0.0.1:$submission_port

It lands in:
  $run/mail/example.test/demo/new/

Read it (plain logins are allowed from loopback only):
  python3 -c "import imaplib; m = imaplib.IMAP4('127.0.0.1', $imap_port); \\
    m.login('$demo_user', '$password'); print(m.select('INBOX'))"
  openssl s_client -quiet -connect 127.0.0.1:$pop3s_port   (then USER/PASS/LIST)
  mutt -f imaps://demo%40example.test@127.0.0.1:$imaps_port/INBOX

Queue:  $posthorn -c $run/etc queue -p
Stop:   Ctrl-C

MSG
exec "$posthorn" -c "$run/etc" start-fg
