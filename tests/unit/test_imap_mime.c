/*
 * test_imap_mime - imapd's MIME layer: BODYSTRUCTURE, BODY and ENVELOPE
 * for real-world-shaped and malformed messages compared with the
 * answers of Dovecot 2.3.19 (run on the same files), BODY[section]
 * contents, and the SEARCH helpers (RFC 2047, charsets, case folding,
 * dates).  Messages are written with LF line ends as in a Maildir and
 * converted to CRLF as imapd does before parsing.
 *
 * Where this server deliberately answers differently from Dovecot the
 * Dovecot answer is kept in a comment next to ours:
 *   - 06-rfc2231: an extended parameter "title*=" stays "title*" (Dovecot
 *     renames it "title*1*").
 *   - 07-badtype: "Content-Type: image/" is unusable, so the RFC 2045
 *     default text/plain; charset=us-ascii applies (Dovecot sends "" "").
 *   - 08-addrs: unfolding only removes CRLF (RFC 5322 2.2.3), so the
 *     folded subject keeps both blanks; strings with '"' are sent quoted
 *     with backslashes instead of as literals (both are valid IMAP).
 *   - 09-weirdaddr: "quoted name"@host is an address (Dovecot drops it).
 *   - 10-nested: a part that ends with a nested multipart's close
 *     delimiter ends before the CRLF that starts the next delimiter
 *     (RFC 2046 5.1.1); Dovecot counts that CRLF into the part (2 bytes,
 *     1 line more).
 *   - 19-dupfrom: only the first From: field is used (RFC 5322 allows one);
 *     Dovecot joins all of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_mime.c"
#include "imapd/imap_mime_decode.c"
#include "imapd/imap_mime_search.c"
#include "imapd/imap_mime_struct.c"

struct mime_case {
    const char *name;
    const char *msg;
    const char *bodystructure;
    const char *body;
    const char *envelope;
};

/* Generated from Dovecot 2.3.19 answers; see the comments on deviations. */
static const struct mime_case mime_cases[] = {
    {"01-nonl",
     "Subject: nobody\n"
    "\n"
    "hello",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)",
     "(NIL \"nobody\" NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"02-mp-noboundary",
     "Content-Type: multipart/mixed\n"
    "\n"
    "hello\n"
    "",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"03-mp-nopart",
     "Content-Type: multipart/mixed; boundary=zz\n"
    "\n"
    "hello\n"
    "",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"zz\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"04-html",
     "Content-Type: TEXT/HTML; CHARSET=\"UTF-8\"; Format=flowed\n"
    "Content-Transfer-Encoding: QUOTED-PRINTABLE\n"
    "Content-ID: <a@b>\n"
    "Content-Description: desc\n"
    "Content-Language: en, de\n"
    "Content-Location: http://x/\n"
    "Content-Disposition: inline; filename=\"a b.txt\"\n"
    "\n"
    "hi\n"
    "there\n"
    "",
     "(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\" \"Format\" \"flowed\") \"<a@b>\" \"desc\" \"QUOTED-PRINTABLE\" 11 2 NIL (\"inline\" (\"filename\" \"a b.txt\")) (\"en\" \"de\") \"http://x/\")",
     "(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\" \"Format\" \"flowed\") \"<a@b>\" \"desc\" \"QUOTED-PRINTABLE\" 11 2)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"05-plain-nocharset",
     "Content-Type: text/plain\n"
    "\n"
    "x\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"06-rfc2231",
     "Content-Type: application/octet-stream; name*0=\"foo\"; name*1=\"bar.txt\"; title*=us-ascii%27en-us%27This%20is%20%2A%2A%2Afun%2A%2A%2A\n"
    "\n"
    "abc\n"
    "",
     /* Dovecot: ("application" "octet-stream" ("name" "foobar.txt" "title*1*" "us-ascii%27en-us%27This%20is%20%2A%2A%2Afun%2A%2A%2A") NIL NIL "7bit" 5 NIL NIL NIL NIL) */
     "(\"application\" \"octet-stream\" (\"name\" \"foobar.txt\" \"title*\" \"us-ascii%27en-us%27This%20is%20%2A%2A%2Afun%2A%2A%2A\") NIL NIL \"7bit\" 5 NIL NIL NIL NIL)",
     /* Dovecot: ("application" "octet-stream" ("name" "foobar.txt" "title*1*" "us-ascii%27en-us%27This%20is%20%2A%2A%2Afun%2A%2A%2A") NIL NIL "7bit" 5) */
     "(\"application\" \"octet-stream\" (\"name\" \"foobar.txt\" \"title*\" \"us-ascii%27en-us%27This%20is%20%2A%2A%2Afun%2A%2A%2A\") NIL NIL \"7bit\" 5)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"07-badtype",
     "Content-Type: image/\n"
    "\n"
    "abc\n"
    "",
     /* Dovecot: ("" "" NIL NIL NIL "7bit" 5 NIL NIL NIL NIL) */
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)",
     /* Dovecot: ("" "" NIL NIL NIL "7bit" 5) */
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"08-addrs",
     "From: \"Joe Q. Public\" <john.q.public@example.com>\n"
    "To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n"
    "Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\n"
    "Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\n"
    "Reply-To: Undisclosed recipients:;\n"
    "Sender: =?utf-8?q?J=C3=B6rg?= <j@x> (comment)\n"
    "Subject: =?utf-8?B?w6TDtsO8?=\n"
    "  folded\n"
    "Date: Fri, 21 Nov 1997 09:55:06 -0600\n"
    "Message-ID: <1234@local.machine.example>\n"
    "In-Reply-To: <3456@example.net>\n"
    "\n"
    "body\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)",
     /* Dovecot: ("Fri, 21 Nov 1997 09:55:06 -0600" {27}\r\n=?utf-8?B?w6TDtsO8?= folded (("Joe Q. Public" NIL "john.q.public" "example.com")) (("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) ((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) (("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test")) ((NIL NIL "boss" "nil.test")({16}\r\nGiant; "Big" Box NIL "sysservices" "example.net")) ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)) "<3456@example.net>" "<1234@local.machine.example>") */
     "(\"Fri, 21 Nov 1997 09:55:06 -0600\" \"=?utf-8?B?w6TDtsO8?=  folded\" ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\")) ((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) ((\"Mary Smith\" NIL \"mary\" \"x.test\")(NIL NIL \"jdoe\" \"example.org\")(\"Who?\" NIL \"one\" \"y.test\")) ((NIL NIL \"boss\" \"nil.test\")(\"Giant; \\\"Big\\\" Box\" NIL \"sysservices\" \"example.net\")) ((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")(\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)) \"<3456@example.net>\" \"<1234@local.machine.example>\")",
    },
    {"09-weirdaddr",
     "From: user\n"
    "To: @route,@r2:foo@bar, \"quoted name\"@host, (only comment)\n"
    "Subject: x\n"
    "\n"
    "b\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)",
     /* Dovecot: (NIL "x" ((NIL NIL "user" "MISSING_DOMAIN")) ((NIL NIL "user" "MISSING_DOMAIN")) ((NIL NIL "user" "MISSING_DOMAIN")) ((NIL NIL "MISSING_MAILBOX" "route")(NIL NIL "MISSING_MAILBOX" "r2")) NIL NIL NIL NIL) */
     "(NIL \"x\" ((NIL NIL \"user\" \"MISSING_DOMAIN\")) ((NIL NIL \"user\" \"MISSING_DOMAIN\")) ((NIL NIL \"user\" \"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" \"route\")(NIL NIL \"MISSING_MAILBOX\" \"r2\")(NIL NIL \"quoted name\" \"host\")) NIL NIL NIL NIL)",
    },
    {"10-nested",
     "From: a@b\n"
    "Subject: outer\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "preamble\n"
    "--outer\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "first\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "\n"
    "alt text\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<b>x</b>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "Content-Disposition: attachment\n"
    "\n"
    "From: c@d\n"
    "Subject: inner msg\n"
    "Content-Type: multipart/mixed; boundary=deep\n"
    "\n"
    "--deep\n"
    "Content-Type: text/plain\n"
    "\n"
    "deep1\n"
    "--deep\n"
    "Content-Type: application/pdf; name=x.pdf\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAAA\n"
    "--deep--\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: single\n"
    "\n"
    "single body\n"
    "--outer--\n"
    "epilogue\n"
    "",
     /* Dovecot: (("text" "plain" ("charset" "iso-8859-1") NIL NIL "8bit" 5 0 NIL NIL NIL NIL)(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 226 (NIL "inner msg" ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) NIL NIL NIL NIL NIL) (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)("application" "pdf" ("name" "x.pdf") NIL NIL "base64" 4 NIL NIL NIL NIL) "mixed" ("boundary" "deep") NIL NIL NIL) 14 NIL ("attachment" NIL) NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 30 (NIL "single" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL) */
     "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"8bit\" 5 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 224 (NIL \"inner msg\" ((NIL NIL \"c\" \"d\")) ((NIL NIL \"c\" \"d\")) ((NIL NIL \"c\" \"d\")) NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"x.pdf\") NIL NIL \"base64\" 4 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"deep\") NIL NIL NIL) 13 NIL (\"attachment\" NIL) NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 30 (NIL \"single\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)",
     /* Dovecot: (("text" "plain" ("charset" "iso-8859-1") NIL NIL "8bit" 5 0)(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 0)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0) "alternative")("message" "rfc822" NIL NIL NIL "7bit" 226 (NIL "inner msg" ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) NIL NIL NIL NIL NIL) (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)("application" "pdf" ("name" "x.pdf") NIL NIL "base64" 4) "mixed") 14)("message" "rfc822" NIL NIL NIL "7bit" 30 (NIL "single" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0) 2) "mixed") */
     "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"8bit\" 5 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 0) \"alternative\")(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 224 (NIL \"inner msg\" ((NIL NIL \"c\" \"d\")) ((NIL NIL \"c\" \"d\")) ((NIL NIL \"c\" \"d\")) NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)(\"application\" \"pdf\" (\"name\" \"x.pdf\") NIL NIL \"base64\" 4) \"mixed\") 13)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 30 (NIL \"single\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0) 2) \"mixed\")",
     "(NIL \"outer\" ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)",
    },
    {"11-digest",
     "Content-Type: multipart/digest; boundary=d\n"
    "\n"
    "--d\n"
    "\n"
    "Subject: dig1\n"
    "\n"
    "digest one\n"
    "--d\n"
    "Content-Type: text/plain\n"
    "\n"
    "not msg\n"
    "--d--\n"
    "",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 27 (NIL \"dig1\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)",
     "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 27 (NIL \"dig1\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0) 2)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 0) \"digest\")",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"12-unterminated",
     "Content-Type: multipart/mixed; boundary=b\n"
    "\n"
    "--b\n"
    "Content-Type: text/plain\n"
    "\n"
    "unterminated part\n"
    "",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 1) \"mixed\")",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"13-headeronly",
     "Subject: no body",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
     "(NIL \"no body\" NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"14-bodyonly",
     "\n"
    "body only\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"15-emptyrfc822",
     "Content-Type: message/rfc822\n"
    "\n"
    "",
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL)",
     "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 0)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"16-8bit",
     "Content-Type: text/plain; charset=utf-8\n"
    "Subject: caf\xc3""\xa9""\n"
    "\n"
    "caf\xc3""\xa9""\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 7 1)",
     "(NIL {5}\r\n"
    "caf\xc3""\xa9"" NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"17-mixedcrlf",
     "Content-Type: multipart/mixed; boundary=b\n"
    "\n"
    "--b\n"
    "no header line\n"
    "--b\r\n"
    "\r\n"
    "crlf part\r\n"
    "--b--\n"
    "",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0) \"mixed\")",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"18-spaces",
     "Content-type: text/plain; charset = \"us-ascii\" (comment) ; foo=bar\n"
    "Content-Disposition: attachment\n"
    "\n"
    "x\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"foo\" \"bar\") NIL NIL \"7bit\" 3 1 NIL (\"attachment\" NIL) NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"foo\" \"bar\") NIL NIL \"7bit\" 3 1)",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    },
    {"19-dupfrom",
     "From: \"A\" <a@b>\n"
    "From: second@b\n"
    "To: \n"
    "Cc: undisclosed-recipients:;\n"
    "Subject: \n"
    "Message-Id: <x@y>\n"
    "In-Reply-To: <a@b> <c@d>\n"
    "\n"
    "x\n"
    "",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)",
     /* Dovecot: (NIL "" (("A" NIL "a" "b")(NIL NIL "second" "b")) (("A" NIL "a" "b")(NIL NIL "second" "b")) (("A" NIL "a" "b")(NIL NIL "second" "b")) NIL ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL "<a@b> <c@d>" "<x@y>") */
     "(NIL \"\" ((\"A\" NIL \"a\" \"b\")) ((\"A\" NIL \"a\" \"b\")) ((\"A\" NIL \"a\" \"b\")) NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL \"<a@b> <c@d>\" \"<x@y>\")",
    },
    {"20-thunderbird",
     "Message-ID: <5f2d1c3e-1a2b-4c5d-9e8f-0123456789ab@example.org>\n"
    "Date: Tue, 14 Mar 2023 10:15:42 +0100\n"
    "MIME-Version: 1.0\n"
    "User-Agent: Mozilla Thunderbird\n"
    "Content-Language: en-US\n"
    "To: Bob Example <bob@example.net>\n"
    "From: Alice Example <alice@example.org>\n"
    "Subject: Quarterly report\n"
    "Content-Type: multipart/mixed;\n"
    " boundary=\"------------0aB1cD2eF3gH4iJ5kL6mN7oP\"\n"
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--------------0aB1cD2eF3gH4iJ5kL6mN7oP\n"
    "Content-Type: multipart/alternative;\n"
    " boundary=\"------------qR8sT9uV0wX1yZ2aB3cD4eF5\"\n"
    "\n"
    "--------------qR8sT9uV0wX1yZ2aB3cD4eF5\n"
    "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
    "Content-Transfer-Encoding: 7bit\n"
    "\n"
    "Hi Bob,\n"
    "\n"
    "the report is attached.\n"
    "\n"
    "Alice\n"
    "\n"
    "--------------qR8sT9uV0wX1yZ2aB3cD4eF5\n"
    "Content-Type: text/html; charset=UTF-8\n"
    "Content-Transfer-Encoding: 7bit\n"
    "\n"
    "<!DOCTYPE html>\n"
    "<html>\n"
    "  <body>\n"
    "    <p>Hi Bob,</p>\n"
    "    <p>the report is attached.</p>\n"
    "  </body>\n"
    "</html>\n"
    "\n"
    "--------------qR8sT9uV0wX1yZ2aB3cD4eF5--\n"
    "--------------0aB1cD2eF3gH4iJ5kL6mN7oP\n"
    "Content-Type: application/pdf; name=\"report Q1.pdf\"\n"
    "Content-Disposition: attachment; filename=\"report Q1.pdf\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0\n"
    "ZURlY29kZT4+CnN0cmVhbQp4nDPQM1Qo5ypUMFAw0DMwslAwtTTVMzI2UShKTVUo5ypUMABB\n"
    "\n"
    "--------------0aB1cD2eF3gH4iJ5kL6mN7oP--\n"
    "",
     "(((\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\") NIL NIL \"7bit\" 45 5 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"UTF-8\") NIL NIL \"7bit\" 111 7 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"------------qR8sT9uV0wX1yZ2aB3cD4eF5\") NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"report Q1.pdf\") NIL NIL \"base64\" 148 NIL (\"attachment\" (\"filename\" \"report Q1.pdf\")) NIL NIL) \"mixed\" (\"boundary\" \"------------0aB1cD2eF3gH4iJ5kL6mN7oP\") NIL (\"en-US\") NIL)",
     "(((\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\") NIL NIL \"7bit\" 45 5)(\"text\" \"html\" (\"charset\" \"UTF-8\") NIL NIL \"7bit\" 111 7) \"alternative\")(\"application\" \"pdf\" (\"name\" \"report Q1.pdf\") NIL NIL \"base64\" 148) \"mixed\")",
     "(\"Tue, 14 Mar 2023 10:15:42 +0100\" \"Quarterly report\" ((\"Alice Example\" NIL \"alice\" \"example.org\")) ((\"Alice Example\" NIL \"alice\" \"example.org\")) ((\"Alice Example\" NIL \"alice\" \"example.org\")) ((\"Bob Example\" NIL \"bob\" \"example.net\")) NIL NIL NIL \"<5f2d1c3e-1a2b-4c5d-9e8f-0123456789ab@example.org>\")",
    },
    {"21-bounce",
     "Return-Path: <>\n"
    "Date: Wed, 15 Mar 2023 08:00:01 +0000 (UTC)\n"
    "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "To: alice@example.org\n"
    "Auto-Submitted: auto-replied\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status;\n"
    "\x09""boundary=\"ABC123.1678867201/mx.example.org\"\n"
    "Message-Id: <20230315080001.ABC123@mx.example.org>\n"
    "\n"
    "This is a MIME-encapsulated message.\n"
    "\n"
    "--ABC123.1678867201/mx.example.org\n"
    "Content-Description: Notification\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "I'm sorry to have to inform you that your message could not\n"
    "be delivered to one or more recipients.\n"
    "\n"
    "--ABC123.1678867201/mx.example.org\n"
    "Content-Description: Delivery report\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.example.org\n"
    "\n"
    "Final-Recipient: rfc822; nobody@example.net\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "\n"
    "--ABC123.1678867201/mx.example.org\n"
    "Content-Description: Undelivered Message\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: Alice <alice@example.org>\n"
    "To: nobody@example.net\n"
    "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\n"
    "Date: Wed, 15 Mar 2023 07:59:00 +0000\n"
    "\n"
    "Hello.\n"
    "\n"
    "--ABC123.1678867201/mx.example.org--\n"
    "",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL \"Notification\" \"7bit\" 102 2 NIL NIL NIL NIL)(\"message\" \"delivery-status\" NIL NIL \"Delivery report\" \"7bit\" 114 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL \"Undelivered Message\" \"7bit\" 143 (\"Wed, 15 Mar 2023 07:59:00 +0000\" \"=?ISO-8859-1?Q?Gr=FC=DFe?=\" ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"nobody\" \"example.net\")) NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 1 NIL NIL NIL NIL) 6 NIL NIL NIL NIL) \"report\" (\"report-type\" \"delivery-status\" \"boundary\" \"ABC123.1678867201/mx.example.org\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL \"Notification\" \"7bit\" 102 2)(\"message\" \"delivery-status\" NIL NIL \"Delivery report\" \"7bit\" 114)(\"message\" \"rfc822\" NIL NIL \"Undelivered Message\" \"7bit\" 143 (\"Wed, 15 Mar 2023 07:59:00 +0000\" \"=?ISO-8859-1?Q?Gr=FC=DFe?=\" ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"nobody\" \"example.net\")) NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 1) 6) \"report\")",
     "(\"Wed, 15 Mar 2023 08:00:01 +0000 (UTC)\" \"Undelivered Mail Returned to Sender\" ((\"Mail Delivery System\" NIL \"MAILER-DAEMON\" \"mx.example.org\")) ((\"Mail Delivery System\" NIL \"MAILER-DAEMON\" \"mx.example.org\")) ((\"Mail Delivery System\" NIL \"MAILER-DAEMON\" \"mx.example.org\")) ((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL \"<20230315080001.ABC123@mx.example.org>\")",
    },
    {"22-related",
     "From: =?UTF-8?B?SsO2cmc=?= <joerg@example.de>\n"
    "To: undisclosed-recipients:;\n"
    "Subject: =?UTF-8?Q?Sch=C3=B6ne_Gr=C3=BC=C3=9Fe?=\n"
    "Date: 1 Jan 2024 00:00 +0000\n"
    "Content-Type: multipart/alternative; boundary=\"alt\"\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain; charset=\"iso-8859-1\"\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Sch=F6ne Gr=FC=DFe\n"
    "--alt\n"
    "Content-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\n"
    "\n"
    "--rel\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "PGh0bWw+PGJvZHk+U2Now7ZuZSBHcsO8w59lPGltZyBzcmM9ImNpZDppbWcxIj48L2JvZHk+PC9o\n"
    "dG1sPgo=\n"
    "--rel\n"
    "Content-Type: image/png; name*=UTF-8''%E2%82%AC.png\n"
    "Content-ID: <img1>\n"
    "Content-Disposition: inline; filename*=UTF-8''%E2%82%AC.png\n"
    "\n"
    "iVBORw0KGgo=\n"
    "--rel--\n"
    "\n"
    "--alt--\n"
    "",
     "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"quoted-printable\" 18 0 NIL NIL NIL NIL)((\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"base64\" 86 1 NIL NIL NIL NIL)(\"image\" \"png\" (\"name*\" \"UTF-8''%E2%82%AC.png\") \"<img1>\" NIL \"7bit\" 12 NIL (\"inline\" (\"filename*\" \"UTF-8''%E2%82%AC.png\")) NIL NIL) \"related\" (\"boundary\" \"rel\" \"type\" \"text/html\") NIL NIL NIL) \"alternative\" (\"boundary\" \"alt\") NIL NIL NIL)",
     "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"quoted-printable\" 18 0)((\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"base64\" 86 1)(\"image\" \"png\" (\"name*\" \"UTF-8''%E2%82%AC.png\") \"<img1>\" NIL \"7bit\" 12) \"related\") \"alternative\")",
     "(\"1 Jan 2024 00:00 +0000\" \"=?UTF-8?Q?Sch=C3=B6ne_Gr=C3=BC=C3=9Fe?=\" ((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"joerg\" \"example.de\")) ((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"joerg\" \"example.de\")) ((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"joerg\" \"example.de\")) ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)",
    },
};

/* Parse text (LF line ends) the way imapd does: CRLF form first. */
static struct imap_mime *parse(const char *text, struct buf *crlf)
{
    buf_init(crlf);
    imap_mime_crlf(text, strlen(text), crlf);
    return imap_mime_parse(crlf->data ? crlf->data : "", crlf->len);
}

static void test_dovecot_cases(void **state)
{
    for (size_t i = 0; i < sizeof(mime_cases) / sizeof(mime_cases[0]); i++) {
        const struct mime_case *c = &mime_cases[i];
        struct buf crlf, bs = BUF_INIT, b = BUF_INIT, env = BUF_INIT;
        struct imap_mime *m = parse(c->msg, &crlf);

        imap_mime_bodystructure(m, true, &bs);
        imap_mime_bodystructure(m, false, &b);
        imap_mime_envelope(m, &env);
        if (strcmp(buf_cstr(&bs), c->bodystructure) != 0 ||
            strcmp(buf_cstr(&b), c->body) != 0 ||
            strcmp(buf_cstr(&env), c->envelope) != 0)
            print_error("case %s\n", c->name);
        assert_string_equal(buf_cstr(&bs), c->bodystructure);
        assert_string_equal(buf_cstr(&b), c->body);
        assert_string_equal(buf_cstr(&env), c->envelope);
        imap_mime_free(m);
        buf_free(&crlf);
        buf_free(&bs);
        buf_free(&b);
        buf_free(&env);
    }
}

static const char *case_msg(const char *name)
{
    for (size_t i = 0; i < sizeof(mime_cases) / sizeof(mime_cases[0]); i++)
        if (strcmp(mime_cases[i].name, name) == 0)
            return mime_cases[i].msg;
    fail_msg("no case %s", name);
    return NULL;
}

/* BODY[spec] of message name, or NULL when the section does not exist. */
static char *section(const char *name, const char *spec,
                     const char *const *fields, size_t n_fields)
{
    struct buf crlf, out = BUF_INIT;
    struct imap_mime *m = parse(case_msg(name), &crlf);
    struct imap_section s;
    char *r = NULL;

    assert_int_equal(imap_section_parse(spec, strlen(spec), &s), 0);
    s.fields = fields;
    s.n_fields = n_fields;
    if (imap_mime_section(m, &s, &out) == 0)
        r = xstrdup(buf_cstr(&out));
    imap_mime_free(m);
    buf_free(&crlf);
    buf_free(&out);
    return r;
}

#define assert_section(name, spec, want)                                      \
    do {                                                                      \
        char *got_ = section(name, spec, NULL, 0);                            \
        assert_non_null(got_);                                                \
        assert_string_equal(got_, want);                                      \
        free(got_);                                                           \
    } while (0)

#define assert_no_section(name, spec)                                         \
    do {                                                                      \
        char *got_ = section(name, spec, NULL, 0);                            \
        assert_null(got_);                                                    \
    } while (0)

/* The answers below are Dovecot's for the same files. */
static void test_sections(void **state)
{
    const char *const fields[] = {"subject", "FROM"};
    char *got;

    assert_section("10-nested", "1", "first");
    assert_section("10-nested", "1.MIME",
                   "Content-Type: text/plain; charset=iso-8859-1\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n");
    assert_section("10-nested", "2.1", "alt text");
    assert_section("10-nested", "2.2.MIME", "Content-Type: text/html\r\n\r\n");
    assert_section("10-nested", "3.HEADER",
                   "From: c@d\r\nSubject: inner msg\r\nContent-Type: "
                   "multipart/mixed; boundary=deep\r\n\r\n");
    assert_section("10-nested", "3.1", "deep1");
    assert_section("10-nested", "3.2", "AAAA");
    assert_section("10-nested", "3.2.MIME",
                   "Content-Type: application/pdf; name=x.pdf\r\n"
                   "Content-Transfer-Encoding: base64\r\n\r\n");
    assert_section("10-nested", "4", "Subject: single\r\n\r\nsingle body");
    assert_section("10-nested", "4.1", "single body");
    assert_section("10-nested", "4.TEXT", "single body");
    assert_section("10-nested", "4.MIME", "Content-Type: message/rfc822\r\n\r\n");
    assert_section("10-nested", "HEADER",
                   "From: a@b\r\nSubject: outer\r\nContent-Type: "
                   "multipart/mixed; boundary=\"outer\"\r\n\r\n");
    /* A single-part message: part 1 is its body, 1.MIME its header. */
    assert_section("01-nonl", "1", "hello");
    assert_section("01-nonl", "TEXT", "hello");
    assert_section("01-nonl", "1.MIME", "Subject: nobody\r\n\r\n");
    /* All header, no body. */
    assert_section("13-headeronly", "HEADER", "Subject: no body");
    assert_section("13-headeronly", "TEXT", "");
    /* A part whose first line is no header field is all header. */
    assert_section("17-mixedcrlf", "1", "");
    assert_section("17-mixedcrlf", "2", "crlf part");
    /* Not there, or HEADER of a part that is no message. */
    assert_no_section("10-nested", "5");
    assert_section("10-nested", "1.1", "first"); /* as Dovecot */
    assert_no_section("10-nested", "1.HEADER");
    assert_section("10-nested", "3.1.1", "deep1");
    assert_no_section("01-nonl", "2");

    got = section("10-nested", "HEADER.FIELDS", fields, 2);
    assert_string_equal(got, "From: a@b\r\nSubject: outer\r\n\r\n");
    free(got);
    got = section("10-nested", "3.HEADER.FIELDS.NOT", fields, 2);
    assert_string_equal(got,
                        "Content-Type: multipart/mixed; boundary=deep\r\n\r\n");
    free(got);
    /* Folded fields come whole; an unknown name gives the empty line. */
    got = section("08-addrs", "HEADER.FIELDS", fields + 0, 1);
    assert_string_equal(got, "Subject: =?utf-8?B?w6TDtsO8?=\r\n  folded\r\n\r\n");
    free(got);
    {
        const char *const none[] = {"X-Nothing"};

        got = section("08-addrs", "HEADER.FIELDS", none, 1);
        assert_string_equal(got, "\r\n");
        free(got);
    }
}

static void test_section_parse(void **state)
{
    struct imap_section s;

    assert_int_equal(imap_section_parse("", 0, &s), 0);
    assert_int_equal(s.n_part, 0);
    assert_int_equal(s.text, IMAP_SECTION_ALL);
    assert_int_equal(imap_section_parse("1.2.3", 5, &s), 0);
    assert_int_equal(s.n_part, 3);
    assert_int_equal(s.part[2], 3);
    assert_int_equal(imap_section_parse("header.fields.not", 17, &s), 0);
    assert_int_equal(s.text, IMAP_SECTION_HEADER_FIELDS_NOT);
    assert_int_equal(imap_section_parse("2.MIME", 6, &s), 0);
    assert_int_equal(s.text, IMAP_SECTION_MIME);
    assert_int_equal(imap_section_parse("4.TEXT", 6, &s), 0);
    assert_int_equal(s.text, IMAP_SECTION_TEXT);
    /* Errors: part 0, MIME at the top, trailing dot, junk, overflow. */
    assert_int_equal(imap_section_parse("0", 1, &s), -1);
    assert_int_equal(imap_section_parse("MIME", 4, &s), -1);
    assert_int_equal(imap_section_parse("1.", 2, &s), -1);
    assert_int_equal(imap_section_parse("1.BODY", 6, &s), -1);
    assert_int_equal(imap_section_parse("1x", 2, &s), -1);
    assert_int_equal(imap_section_parse("99999999999", 11, &s), -1);
    {
        /* IMAP_SECTION_PARTS_MAX numbers fit, one more does not. */
        struct buf b = BUF_INIT;

        for (int i = 0; i < IMAP_SECTION_PARTS_MAX; i++)
            buf_puts(&b, i ? ".1" : "1");
        assert_int_equal(imap_section_parse(b.data, b.len, &s), 0);
        buf_puts(&b, ".1");
        assert_int_equal(imap_section_parse(b.data, b.len, &s), -1);
        buf_free(&b);
    }
}

static void test_crlf(void **state)
{
    struct buf b = BUF_INIT;
    const char *in = "a\nb\r\nc\rd\n";

    imap_mime_crlf(in, strlen(in), &b);
    assert_string_equal(b.data, "a\r\nb\r\nc\rd\r\n");
    assert_int_equal(imap_mime_crlf_size(in, strlen(in)), b.len);
    assert_int_equal(imap_mime_crlf_size("", 0), 0);
    buf_free(&b);
}

/* The obvious byte loop the memchr() versions must agree with. */
static void crlf_reference(const char *in, size_t len, struct buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            buf_putc(out, '\r');
        buf_putc(out, in[i]);
    }
}

static void test_crlf_random(void **state)
{
    static const char alphabet[] = "\r\n\nab";
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
        struct buf want = BUF_INIT, got = BUF_INIT, inplace = BUF_INIT;
        char in[64];
        size_t len;

        seed = seed * 1103515245 + 12345;
        len = (seed >> 16) % sizeof(in);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        crlf_reference(in, len, &want);
        buf_puts(&got, "prefix\n");
        imap_mime_crlf(in, len, &got);
        /* In place: what is before from stays as it is. */
        buf_puts(&inplace, "prefix\n");
        buf_append(&inplace, in, len);
        imap_mime_crlf_inplace(&inplace, 7);
        assert_int_equal(got.len, want.len + 7);
        assert_memory_equal(got.data + 7, buf_cstr(&want), want.len);
        assert_int_equal(inplace.len, got.len);
        assert_memory_equal(inplace.data, got.data, got.len);
        assert_int_equal(got.data[got.len], 0);
        assert_int_equal(inplace.data[inplace.len], 0);
        assert_int_equal(imap_mime_crlf_size(in, len), want.len);
        buf_free(&want);
        buf_free(&got);
        buf_free(&inplace);
    }
}

/*
 * The SEARCH block keeps exactly what a search of the parsed message
 * compares with; whatever is damaged in it reads as "not cached".
 */
static void test_search_cache(void **state)
{
    static const char *names[] = {"from", "To", "CC", "bcc", "subject"};
    const char *text = "From: =?UTF-8?Q?J=C3=B6rg?= <j@example.org>\n"
                       "To: a@example.org\n"
                       "To: b@example.org,\n  c@example.org\n"
                       "Subject: =?ISO-8859-1?Q?Caf=E9?= menu\n"
                       "Date: Tue, 2 Jan 2024 10:00:00 +0200\n"
                       "\nbody\n";
    struct buf crlf, blk = BUF_INIT;
    struct imap_mime *m = parse(text, &crlf);
    const char *v;
    size_t vlen, count;
    time_t when, when2;
    int zone, zone2;

    imap_mime_search_cache(m, &blk);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct buf raw = BUF_INIT, dec = BUF_INIT;
        size_t n = imap_mime_header_raw(m, names[i], &raw);

        imap_mime_decode_header(buf_cstr(&raw), raw.len, &dec);
        assert_true(imap_mime_search_cached(names[i]));
        assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len,
                                                        names[i], &v, &vlen,
                                                        &count),
                         1);
        assert_int_equal(count, n);
        assert_int_equal(vlen, dec.len);
        assert_memory_equal(v, buf_cstr(&dec), vlen);
        buf_free(&raw);
        buf_free(&dec);
    }
    assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len, "to", &v,
                                                    &vlen, &count),
                     1);
    assert_int_equal(count, 2);
    assert_true(imap_mime_contains(v, vlen, "C@EXAMPLE", 9));
    assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len, "from",
                                                    &v, &vlen, &count),
                     1);
    assert_true(imap_mime_contains(v, vlen, "j\xc3\xb6rg", 5));
    assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len, "cc", &v,
                                                    &vlen, &count),
                     1);
    assert_int_equal(count, 0);
    /* Other fields are not in the block. */
    assert_false(imap_mime_search_cached("message-id"));
    assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len,
                                                    "message-id", &v, &vlen,
                                                    &count),
                     0);
    assert_int_equal(imap_mime_date(m, &when, &zone), 0);
    assert_int_equal(
        imap_mime_search_cached_date(blk.data, blk.len, &when2, &zone2), 1);
    assert_int_equal(when, when2);
    assert_int_equal(zone, zone2);
    /* Every truncation and a bad magic: refused, never read past. */
    for (size_t cut = 0; cut < blk.len; cut++) {
        char *copy = xmalloc(cut + 1);

        memcpy(copy, blk.data, cut);
        (void)imap_mime_search_cached_header(copy, cut, "subject", &v, &vlen,
                                             &count);
        assert_int_equal(
            imap_mime_search_cached_date(copy, cut, &when2, &zone2), -1);
        free(copy);
    }
    blk.data[0] = 'X';
    assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len, "from",
                                                    &v, &vlen, &count),
                     0);
    imap_mime_free(m);
    buf_free(&crlf);
    buf_free(&blk);

    /* No Date:, and a value too long to keep. */
    {
        struct buf big = BUF_INIT;

        buf_puts(&big, "Subject: ");
        for (int i = 0; i < IMAP_SEARCH_CACHE_FIELD_MAX / 8 + 1; i++)
            buf_puts(&big, "wordword");
        buf_puts(&big, "\nFrom: x@example.org\n\nbody\n");
        m = parse(big.data, &crlf);
        imap_mime_search_cache(m, &blk);
        assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len,
                                                        "subject", &v, &vlen,
                                                        &count),
                         0);
        assert_int_equal(imap_mime_search_cached_header(blk.data, blk.len,
                                                        "from", &v, &vlen,
                                                        &count),
                         1);
        assert_int_equal(
            imap_mime_search_cached_date(blk.data, blk.len, &when2, &zone2), 0);
        imap_mime_free(m);
        buf_free(&crlf);
        buf_free(&blk);
        buf_free(&big);
    }
}

static void test_nstring(void **state)
{
    struct buf b = BUF_INIT;

    imap_mime_nstring(&b, NULL, 0);
    buf_putc(&b, ' ');
    imap_mime_nstring(&b, "a \"q\" \\", 7);
    buf_putc(&b, ' ');
    imap_mime_nstring(&b, "caf\xc3\xa9", 5);
    buf_putc(&b, ' ');
    imap_mime_nstring(&b, "", 0);
    assert_string_equal(b.data, "NIL \"a \\\"q\\\" \\\\\" {5}\r\ncaf\xc3\xa9 \"\"");
    buf_free(&b);
}

static void decoded(const char *in, const char *want)
{
    struct buf b = BUF_INIT;

    imap_mime_decode_header(in, strlen(in), &b);
    assert_string_equal(buf_cstr(&b), want);
    buf_free(&b);
}

static void test_decode_header(void **state)
{
    /* RFC 2047 section 8 examples. */
    decoded("(=?ISO-8859-1?Q?a?=)", "(a)");
    decoded("(=?ISO-8859-1?Q?a?= b)", "(a b)");
    decoded("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)");
    decoded("(=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=)", "(ab)");
    decoded("(=?ISO-8859-1?Q?a_b?=)", "(a b)");
    decoded("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)");
    decoded("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>",
            "Keith Moore <moore@cs.utk.edu>");
    decoded("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=", "Keld J\xc3\xb8rn Simonsen");
    decoded("=?utf-8?B?w6TDtsO8?= folded", "\xc3\xa4\xc3\xb6\xc3\xbc folded");
    decoded("=?UTF-8*en?Q?x?=", "x"); /* RFC 2231 language */
    /* Not encoded words: kept. */
    decoded("=?bogus", "=?bogus");
    decoded("a =?utf-8?X?abc?= b", "a =?utf-8?X?abc?= b");
    decoded("=?no-such-charset?Q?abc?=", "abc");
    /* Raw 8-bit: UTF-8 kept, anything else read as Latin-1. */
    decoded("caf\xc3\xa9", "caf\xc3\xa9");
    decoded("caf\xe9", "caf\xc3\xa9");
}

static void test_contains(void **state)
{
    assert_true(imap_mime_contains("Hello World", 11, "WORLD", 5));
    assert_true(imap_mime_contains("x", 1, "", 0));
    assert_false(imap_mime_contains("Hello", 5, "help", 4));
    /* U+212A KELVIN SIGN lowers to ASCII 'k' and matches it both ways. */
    assert_true(imap_mime_contains("300 \xe2\x84\xaa", 7, "k", 1));
    assert_true(imap_mime_contains("300 K", 5, "\xe2\x84\xaa", 3));
    assert_false(imap_mime_contains("300 \xe2\x84\xaa", 7, "\xc1\xab", 2));
    assert_false(imap_mime_contains("ab", 2, "abc", 3));
    /* Non-ASCII letters fold too. */
    assert_true(imap_mime_contains("Gr\xc3\x9c\xc3\x9f" "e", 6, "gr\xc3\xbc", 4));
    assert_true(imap_mime_contains("\xc3\x84RGER", 6, "\xc3\xa4rger", 6));
    /* Invalid UTF-8 compares as bytes, never crashes. */
    assert_true(imap_mime_contains("a\xff\xfe" "b", 4, "\xff\xfe", 2));
    /* ASCII runs between other letters: folded in bulk, same answers. */
    assert_true(imap_mime_contains("\xc3\x84RGER QUARTERLY \xc3\x9c", 20,
                                   "quarterly \xc3\xbc", 12));
    assert_false(imap_mime_contains("QUARTERL\xc3\x9c", 10, "quarterly", 9));
}

static void test_search_text(void **state)
{
    struct buf crlf, b = BUF_INIT;
    struct imap_mime *m = parse(case_msg("22-related"), &crlf);
    time_t t;
    int zone;

    imap_mime_body_utf8(m, &b, 1 << 20);
    /* quoted-printable Latin-1 and base64 UTF-8 both come out as UTF-8. */
    assert_non_null(strstr(b.data, "Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9f" "e\n"));
    assert_non_null(strstr(b.data, "<html><body>Sch\xc3\xb6ne"));
    /* The PNG is not text. */
    assert_null(strstr(b.data, "iVBOR"));
    buf_reset(&b);
    imap_mime_headers_utf8(m, &b);
    assert_non_null(strstr(b.data, "Subject: Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9f" "e\n"));
    assert_non_null(strstr(b.data, "From: J\xc3\xb6rg <joerg@example.de>\n"));
    buf_reset(&b);
    assert_int_equal(imap_mime_header_raw(m, "SUBJECT", &b), 1);
    assert_string_equal(b.data, "=?UTF-8?Q?Sch=C3=B6ne_Gr=C3=BC=C3=9Fe?=");
    assert_int_equal(imap_mime_date(m, &t, &zone), 0);
    assert_int_equal(t, 1704067200);
    assert_int_equal(zone, 0);
    /* Limit respected. */
    buf_reset(&b);
    imap_mime_body_utf8(m, &b, 5);
    assert_int_equal(b.len, 5);
    imap_mime_free(m);
    buf_free(&crlf);
    buf_free(&b);

    /* Attached messages' text is body text too. */
    m = parse(case_msg("21-bounce"), &crlf);
    buf_init(&b);
    imap_mime_body_utf8(m, &b, 1 << 20);
    assert_non_null(strstr(b.data, "Hello."));
    assert_non_null(strstr(b.data, "could not"));
    imap_mime_free(m);
    buf_free(&crlf);
    buf_free(&b);
}

static void test_charsets(void **state)
{
    struct buf b = BUF_INIT;

    assert_int_equal(imap_mime_to_utf8("ISO-8859-1", "\xe4", 1, &b), 0);
    assert_string_equal(b.data, "\xc3\xa4");
    buf_reset(&b);
    assert_int_equal(imap_mime_to_utf8("utf-8", "\xc3\xa4", 2, &b), 0);
    assert_string_equal(b.data, "\xc3\xa4");
    buf_reset(&b);
    assert_int_equal(imap_mime_to_utf8("x-no-such-charset", "a", 1, &b), -1);
    assert_int_equal(imap_mime_to_utf8("utf-8", "\xff", 1, &b), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void date_is(const char *s, time_t want, int want_zone)
{
    time_t t = 0;
    int zone = 99;

    assert_int_equal(imap_mime_parse_date(s, strlen(s), &t, &zone), 0);
    assert_int_equal(t, want);
    assert_int_equal(zone, want_zone);
}

static void test_dates(void **state)
{
    time_t t;
    int z;

    date_is("Fri, 21 Nov 1997 09:55:06 -0600", 880127706, -360);
    date_is("21 Nov 97 09:55:06 GMT", 880106106, 0);
    date_is("Thu, 13 Feb 1969 23:32:54 -0330 (Newfoundland Time)", -27723426,
            -210);
    date_is("Wed, 15 Mar 2023 08:00:01 +0000 (UTC)", 1678867201, 0);
    date_is("1 Jan 2024 00:00 EST", 1704085200, -300);
    assert_int_equal(imap_mime_parse_date("yesterday", 9, &t, &z), -1);
    assert_int_equal(imap_mime_parse_date("32 Jan 2024 00:00", 17, &t, &z), -1);
    assert_int_equal(imap_mime_parse_date("", 0, &t, &z), -1);
}

/* Build a message nested depth levels deep. */
static void nested(struct buf *b, int depth)
{
    for (int i = 0; i < depth; i++)
        buf_printf(b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n",
                   i, i);
    buf_puts(b, "\nleaf\n");
    for (int i = depth; i-- > 0;)
        buf_printf(b, "--b%d--\n", i);
}

static void test_limits(void **state)
{
    struct buf raw = BUF_INIT, crlf = BUF_INIT, out = BUF_INIT;
    struct imap_mime *m;
    struct imap_section s;
    int open_parens = 0;

    /* Deeper than the limit: the structure stops, still valid syntax. */
    nested(&raw, 500);
    imap_mime_crlf(raw.data, raw.len, &crlf);
    m = imap_mime_parse(crlf.data, crlf.len);
    imap_mime_bodystructure(m, true, &out);
    for (size_t i = 0; i < out.len; i++)
        open_parens += out.data[i] == '(' ? 1 : out.data[i] == ')' ? -1 : 0;
    assert_int_equal(open_parens, 0);
    assert_non_null(strstr(out.data, "\"application\" \"octet-stream\""));
    imap_mime_free(m);

    /* Many parts: bounded by IMAP_MIME_PARTS_MAX. */
    buf_reset(&raw);
    buf_reset(&crlf);
    buf_puts(&raw, "Content-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < IMAP_MIME_PARTS_MAX + 500; i++)
        buf_puts(&raw, "--x\n\np\n");
    imap_mime_crlf(raw.data, raw.len, &crlf);
    m = imap_mime_parse(crlf.data, crlf.len);
    assert_true(m->n_parts <= IMAP_MIME_PARTS_MAX + 1);
    assert_int_equal(imap_section_parse("2000", 4, &s), 0);
    buf_reset(&out);
    assert_int_equal(imap_mime_section(m, &s, &out), -1);
    imap_mime_free(m);

    /* A huge header field and many fields. */
    buf_reset(&raw);
    buf_reset(&crlf);
    buf_puts(&raw, "Subject: ");
    for (int i = 0; i < 200000; i++)
        buf_putc(&raw, 'a' + i % 26);
    buf_puts(&raw, "\n");
    for (int i = 0; i < IMAP_MIME_HEADERS_MAX + 10; i++)
        buf_puts(&raw, "X-A: b\n");
    buf_puts(&raw, "Content-Type: text/html\n\nbody\n");
    imap_mime_crlf(raw.data, raw.len, &crlf);
    m = imap_mime_parse(crlf.data, crlf.len);
    buf_reset(&out);
    imap_mime_envelope(m, &out);
    assert_true(out.len < IMAP_MIME_FIELD_MAX + 200);
    buf_reset(&out);
    /* Fields past the count limit are not looked at. */
    imap_mime_bodystructure(m, false, &out);
    assert_string_equal(out.data,
                        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
                        "\"7bit\" 6 1)");
    imap_mime_free(m);
    buf_free(&raw);
    buf_free(&crlf);
    buf_free(&out);
}

/* Mutations of every case: never a crash (run under ASan). */
static void test_mutations(void **state)
{
    unsigned seed = 12345;

    for (size_t i = 0; i < sizeof(mime_cases) / sizeof(mime_cases[0]); i++) {
        size_t len = strlen(mime_cases[i].msg);

        for (int round = 0; round < 200; round++) {
            char *copy = xmalloc(len + 1);
            struct imap_mime *m;
            struct buf out = BUF_INIT;
            struct imap_section s;
            size_t cut;

            memcpy(copy, mime_cases[i].msg, len + 1);
            for (int k = 0; k < 4 && len > 0; k++) {
                seed = seed * 1103515245 + 12345;
                copy[(seed >> 8) % len] = "\n\r-:;\"=<>()@,\\ xB?"[(seed >> 4) % 18];
            }
            seed = seed * 1103515245 + 12345;
            cut = len ? (seed >> 8) % (len + 1) : 0;
            m = imap_mime_parse(copy, cut);
            imap_mime_bodystructure(m, true, &out);
            imap_mime_envelope(m, &out);
            imap_section_parse("1.2", 3, &s);
            imap_mime_section(m, &s, &out);
            imap_section_parse("2.HEADER", 8, &s);
            imap_mime_section(m, &s, &out);
            imap_mime_body_utf8(m, &out, 1 << 16);
            imap_mime_headers_utf8(m, &out);
            assert_true(out.len > 0);
            imap_mime_free(m);
            buf_free(&out);
            free(copy);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dovecot_cases), cmocka_unit_test(test_sections),
        cmocka_unit_test(test_section_parse), cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_crlf_random),   cmocka_unit_test(test_search_cache),
        cmocka_unit_test(test_nstring),       cmocka_unit_test(test_decode_header),
        cmocka_unit_test(test_contains),      cmocka_unit_test(test_search_text),
        cmocka_unit_test(test_charsets),      cmocka_unit_test(test_dates),
        cmocka_unit_test(test_limits),        cmocka_unit_test(test_mutations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
