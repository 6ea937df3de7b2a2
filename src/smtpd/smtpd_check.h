/*
 * smtpd_check - the restriction lists, at Postfix's stages.
 *
 *   smtpd_client_restrictions       client name and address
 *   smtpd_helo_restrictions         the HELO/EHLO name
 *   smtpd_sender_restrictions       MAIL FROM
 *   smtpd_relay_restrictions        RCPT TO (relay permission), then
 *   smtpd_recipient_restrictions    RCPT TO
 *   smtpd_data_restrictions         DATA (and the first BDAT)
 *   smtpd_end_of_data_restrictions  after the message content
 *
 * With smtpd_delay_reject = yes (the default) the client, helo and
 * sender lists are evaluated at each RCPT TO, so a rejection names the
 * recipient; with no, at connect, HELO/EHLO and MAIL FROM.  Each list
 * runs left to right until a restriction permits (that list is done) or
 * rejects (the command fails); the end of a list permits.
 * smtpd_restriction_classes names parameters whose lists can be used as
 * one restriction, in a list or as an access-table result.
 *
 * Every function that can fail the command has already queued the
 * reply and logged Postfix's "NOQUEUE: reject: ..." line when it returns
 * -1.  The start-up refuses an unknown restriction name or a malformed
 * argument; a table that cannot be opened is logged and makes every
 * check that needs it answer 451 4.3.5.
 */
#ifndef SMTPD_CHECK_H
#define SMTPD_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "global/addr.h"
#include "util/buf.h"

struct config;
struct smtpd_config;
struct smtpd_session;

/* Start-up, before privileges are dropped (tables, DNS).  Fatal on error. */
void smtpd_check_init(struct config *cfg, const struct smtpd_config *c);

/*
 * A new client (s->addr set), before the "connect from" line: the
 * client's name (smtpd_peername_lookup: PTR, then forward-confirmed;
 * "unknown" otherwise) into s->name.  Sets s->check.
 */
void smtpd_check_peer(struct smtpd_session *s);

/* What smtpd_check_connect decided about the greeting. */
enum smtpd_check_greet {
    SMTPD_CHECK_GREET,  /* send the 220 greeting */
    SMTPD_CHECK_DENIED, /* a rejection was sent instead; every command
                           but QUIT now gets 503 */
    SMTPD_CHECK_HANGUP  /* a 421 was queued: end the session */
};

/*
 * Before the greeting (the stream is open): count the connection with
 * anvil, note input sent before the greeting, and with
 * smtpd_delay_reject = no run the client restrictions.
 */
enum smtpd_check_greet smtpd_check_connect(struct smtpd_session *s);
/* The rejection of a denied client (SMTPD_CHECK_DENIED), or NULL. */
const char *smtpd_check_denied(const struct smtpd_session *s);
/* The end of the session: anvil, per-session memory. */
void smtpd_check_disconnect(struct smtpd_session *s);

/* HELO/EHLO with s->helo set: 0, or -1 (replied). */
int smtpd_check_helo(struct smtpd_session *s);
/* MAIL FROM with s->xact filled: rate limit, sender checks; 0 or -1. */
int smtpd_check_mail(struct smtpd_session *s);
/* RCPT TO (where "RCPT") or VRFY (where "VRFY"): 0 or -1 (replied). */
int smtpd_check_rcpt(struct smtpd_session *s, const struct mailaddr *rcpt,
                     const char *where);
/*
 * DATA, or the first BDAT chunk: 0, or -1 with the reply in `reply` (not
 * yet sent: BDAT first reads the chunk it refuses).
 */
int smtpd_check_data(struct smtpd_session *s, struct buf *reply);
/*
 * After the content, before cleanup commits it (size: content bytes).
 * 0, or -1 with the reply in `reply` (not yet sent: the caller first
 * aborts the message in cleanup).
 */
int smtpd_check_eod(struct smtpd_session *s, long long size, struct buf *reply);

/* Forget the transaction's actions (MAIL, RSET, end of message). */
void smtpd_check_xact_reset(struct smtpd_session *s);
/*
 * The transaction's actions for cleanup's envelope frame (hold=1,
 * discard=1, filter=, redirect=, prepend=, and a BCC recipient), and
 * for the end frame (hold=1, discard=1 decided after the content).
 */
void smtpd_check_envelope(struct smtpd_session *s, struct buf *frame);
void smtpd_check_end_frame(struct smtpd_session *s, struct buf *frame);
/* DISCARD fired in this transaction (for the log). */
bool smtpd_check_discarding(const struct smtpd_session *s);

/* Was input waiting before the greeting or the reply (for tests). */
bool smtpd_check_input_pending(struct smtpd_session *s);

#endif
