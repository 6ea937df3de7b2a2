/*
 * smtpd_check - restriction lists (smtpd_relay_restrictions,
 * smtpd_recipient_restrictions) and the recipient checks they run.
 *
 * A list is parsed once at start-up into rows of the restriction table;
 * an unknown name, or a Postfix restriction posthorn does not implement
 * yet, is a configuration error (smtpd refuses to start) rather than a
 * silently skipped rule.  Evaluation follows Postfix: each list runs left
 * to right until a restriction permits, rejects or defers; a permit ends
 * only that list, a reject/defer ends the check; the end of a list
 * permits.  RCPT needs both lists to permit, then (with
 * smtpd_reject_unlisted_recipient) the recipient must exist.
 */
#ifndef SMTPD_CHECK_H
#define SMTPD_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "global/addr.h"
#include "util/argv.h"
#include "util/buf.h"

struct smtpd_config;
struct smtpd_restrictions;

/*
 * Parse one restriction list parameter (its name is used in messages).
 * Returns NULL with err set ("smtpd_recipient_restrictions: unknown
 * restriction 'foo'") on a configuration error.
 */
struct smtpd_restrictions *smtpd_restrictions_parse(const char *param,
                                                    const struct argv *list,
                                                    char *err, size_t errlen);
void smtpd_restrictions_free(struct smtpd_restrictions *r);
/* Does the list hold one of the restrictions that stop open relaying? */
bool smtpd_restrictions_guard_relay(const struct smtpd_restrictions *r);

/* What the checks know about the client. */
struct smtpd_check_client {
    const char *addr;        /* numeric address */
    bool sasl_authenticated; /* always false until AUTH exists */
};

/*
 * Check one recipient (RCPT TO, VRFY).  Returns 0 when it is accepted,
 * or the reply code (4xx/5xx) with the whole reply text in `reply`
 * ("554 5.7.1 <a@b>: Relay access denied").
 */
int smtpd_check_rcpt(const struct smtpd_config *cfg,
                     const struct smtpd_check_client *client,
                     const struct mailaddr *rcpt, struct buf *reply);

/*
 * smtpd_reject_unlisted_sender: a sender in one of our domains must
 * exist.  Same return convention as smtpd_check_rcpt.
 */
int smtpd_check_sender(const struct smtpd_config *cfg,
                       const struct smtpd_check_client *client,
                       const struct mailaddr *sender, struct buf *reply);

#endif
