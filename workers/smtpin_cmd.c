/* The inbound receiver's SMTP commands: one function per verb. */
#include "smtpin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

void smtpin_reset_envelope(struct smtpin_session *s)
{
    s->has_mail = false;
    s->sender[0] = '\0';
    s->msgid[0] = '\0';
    s->nrcpts = 0;
}

bool smtpin_error(struct smtpin_session *s)
{
    if (++s->errors < s->srv->cfg->max_errors)
        return false;
    smtpin_reply(s, "421 4.7.0 %s Too many errors, closing",
                 s->srv->cfg->hostname);
    smtpin_end(s, "too-many-errors");
    return true;
}

/* Whether a HELO/EHLO argument is a domain (letters, digits, hyphens,
 * underscores and dots, labels of 1 to 63) or an address literal
 * ("[" printable ASCII without brackets or backslash "]"). */
static bool hello_name_ok(const char *name)
{
    size_t len = strlen(name), label = 0;

    if (len == 0 || len > 255)
        return false;
    if (name[0] == '[') {
        if (len < 3 || name[len - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < len; i++)
            if (name[i] <= ' ' || name[i] > '~' || strchr("[]\\", name[i]))
                return false;
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];

        if (ch == '.' && label > 0 && i + 1 < len)
            label = 0;
        else if ((isalnum(ch) || ch == '-' || ch == '_') && ch < 0x80 &&
                 ++label <= 63)
            continue;
        else if (!(ch == '.' && i + 1 == len && label > 0))
            return false; /* a trailing dot is tolerated */
    }
    return true;
}

/* HELO/EHLO: forgets the envelope, lists the extensions for EHLO. A name
 * that is neither a domain nor an address literal gets 501 5.5.4 (it goes
 * into the Received header). */
static void cmd_hello(struct smtpin_session *s, const struct smtpin_cmd *c)
{
    const struct tg_config *cfg = s->srv->cfg;

    if (!hello_name_ok(c->arg)) {
        smtpin_reply(s,
                     "501 5.5.4 Syntax: %s hostname (a domain or an "
                     "address literal)",
                     c->verb == SV_EHLO ? "EHLO" : "HELO");
        smtpin_error(s);
        return;
    }

    smtpin_reset_envelope(s);
    snprintf(s->helo, sizeof(s->helo), "%s", c->arg);
    s->greeted = true;
    s->esmtp = c->verb == SV_EHLO;
    if (!s->esmtp) {
        smtpin_reply(s, "250 %s", cfg->hostname);
        return;
    }
    smtpin_reply(s, "250-%s Hello %s [%s]", cfg->hostname, c->arg, s->peer);
    smtpin_reply(s, "250-PIPELINING");
    smtpin_reply(s, "250-SIZE %lu", cfg->max_message_size);
    smtpin_reply(s, "250-8BITMIME");
    if (!s->tls_active && s->srv->tls)
        smtpin_reply(s, "250-STARTTLS");
    smtpin_reply(s, "250 ENHANCEDSTATUSCODES");
}

/* MAIL: one sender per transaction; SIZE= over the limit is refused. */
static void cmd_mail(struct smtpin_session *s, const struct smtpin_cmd *c)
{
    if (!s->greeted) {
        smtpin_reply(s, "503 5.5.1 Send EHLO or HELO first");
        smtpin_error(s);
        return;
    }
    if (s->has_mail) {
        smtpin_reply(s, "503 5.5.1 Sender already given");
        smtpin_error(s);
        return;
    }
    if (c->has_size && c->size > s->srv->cfg->max_message_size) {
        smtpin_reply(s, "552 5.3.4 Message size exceeds the limit of %lu",
                     s->srv->cfg->max_message_size);
        return;
    }
    s->has_mail = true;
    snprintf(s->sender, sizeof(s->sender), "%s", c->path.full);
    smtpin_new_id(s->srv, s->msgid, sizeof(s->msgid), "M");
    smtpin_reply(s, "250 2.1.0 Ok");
}

/* Keeps a recipient that got 250 (accepted, or to be discarded). */
static bool rcpt_keep(struct smtpin_session *s, const char *address,
                      const struct inbound_decision *d)
{
    if (s->nrcpts == s->rcpts_cap) {
        size_t cap = s->rcpts_cap ? s->rcpts_cap * 2 : 4;
        struct smtpin_rcpt *r = realloc(s->rcpts, cap * sizeof(*r));

        if (!r)
            return false;
        s->rcpts = r;
        s->rcpts_cap = cap;
    }
    snprintf(s->rcpts[s->nrcpts].address, sizeof(s->rcpts[0].address), "%s",
             address);
    s->rcpts[s->nrcpts].d = *d;
    s->nrcpts++;
    return true;
}

/* Whether a recipient that got 250 names a mailbox already kept in this
 * envelope (same tenant and mailbox, or the same address): it is then
 * answered 250 again but counted, logged and delivered once. */
static bool rcpt_is_duplicate(const struct smtpin_session *s,
                              const char *address,
                              const struct inbound_decision *d)
{
    for (size_t i = 0; i < s->nrcpts; i++) {
        const struct smtpin_rcpt *r = &s->rcpts[i];

        if (strcasecmp(r->address, address) == 0)
            return true;
        if (d->mailbox[0] && strcmp(r->d.mailbox, d->mailbox) == 0 &&
            strcmp(r->d.tenant, d->tenant) == 0)
            return true;
    }
    return false;
}

/* One log line per recipient decision, with its rule and generation. */
static void log_rcpt(struct smtpin_session *s, const char *rcpt,
                     const struct inbound_decision *d, const char *action,
                     const char *reply)
{
    char from[ADDR_MAX * 4], to[ADDR_MAX * 4], rule[RULE_MAX * 2];

    log_info("id=%s smtpin rcpt session=%s peer=%s from=<%s> to=<%s> "
             "action=%s reply=\"%s\" tenant=%s mailbox=%s rule=%s "
             "generation=%llu tls=%s",
             s->msgid, s->id, s->peer,
             log_escape(from, sizeof(from), s->sender),
             log_escape(to, sizeof(to), rcpt), action, reply,
             d && d->tenant[0] ? d->tenant : "-",
             d && d->mailbox[0] ? d->mailbox : "-",
             log_escape(rule, sizeof(rule), d ? d->rule : "-"),
             d ? (unsigned long long)d->generation : 0ULL,
             s->tls_active ? s->tlsrep.protocol : "none");
}

/* Replies to one RCPT from the engine's answer (err or d). */
static void rcpt_answer(struct smtpin_session *s, const char *rcpt, int err,
                        const struct inbound_decision *d)
{
    char reply[256];
    const char *action = "reject";
    bool keep = false, unavailable = false;

    if (err == STORE_ENOTFOUND) {
        snprintf(reply, sizeof(reply), "550 5.1.1 Recipient unknown");
        d = NULL;
    } else if (err == STORE_EINVAL) {
        snprintf(reply, sizeof(reply), "501 5.1.3 Bad recipient address");
        d = NULL;
    } else if (err != 0) {
        log_warn("id=%s smtpin engine_error error=\"%s\"", s->msgid,
                 ipc_strerror(err));
        snprintf(reply, sizeof(reply),
                 "451 4.3.0 Policy service unavailable, try later");
        d = NULL;
        unavailable = true;
    } else if (d->action == IN_REJECT && d->code >= 400 && d->code < 600) {
        snprintf(reply, sizeof(reply), "%d %s %s", d->code, d->enhanced,
                 d->text[0] ? d->text : "Recipient refused");
    } else if (d->action == IN_REJECT ||
               !smtpin_mailbox_dir_ok(d->mailbox_dir)) {
        log_err("id=%s smtpin bad_decision mailbox_dir=%s", s->msgid,
                d->mailbox_dir);
        snprintf(reply, sizeof(reply),
                 "451 4.3.0 Policy service error, try later");
        d = NULL;
    } else if (rcpt_is_duplicate(s, rcpt, d)) {
        action = "duplicate";
        snprintf(reply, sizeof(reply), "250 2.1.5 Ok");
        log_rcpt(s, rcpt, d, action, reply);
        smtpin_reply(s, "%s", reply);
        return;
    } else {
        keep = true;
        action = d->action == IN_DISCARD ? "discard" : "accept";
        snprintf(reply, sizeof(reply), "250 2.1.5 Ok");
    }
    if (keep && !rcpt_keep(s, rcpt, d))
        snprintf(reply, sizeof(reply), "452 4.3.1 Out of memory");
    log_rcpt(s, rcpt, d, action, reply);
    if (!keep && !unavailable)
        smtpin_event(s, rcpt, d, "rejected", reply);
    smtpin_reply(s, "%s", reply);
}

/* Replies to the answered lookups at the head of the queue, in order;
 * when none is left the session reads commands again. */
static void calls_drain(struct smtpin_session *s)
{
    size_t n = 0;

    while (n < s->ncalls && s->calls[n]->done) {
        struct smtpin_call *c = s->calls[n++];

        rcpt_answer(s, c->rcpt, c->err, c->err ? NULL : &c->d);
        free(c);
    }
    memmove(s->calls, s->calls + n, (s->ncalls - n) * sizeof(*s->calls));
    s->ncalls -= n;
    if (s->ncalls == 0) {
        s->mode = SM_CMD;
        smtpin_resume(s);
    }
}

/* The engine answered one lookup (or failed): keep it, reply in order. */
static void on_inbound(void *ctx, int err, const struct inbound_decision *d)
{
    struct smtpin_call *call = ctx;
    struct smtpin_session *s = call->s;

    call->done = true;
    call->err = err;
    if (err == 0)
        call->d = *d;
    if (!s->torn_down && s->mode == SM_ENGINE)
        calls_drain(s);
    smtpin_session_unref(s);
}

void smtpin_calls_free(struct smtpin_session *s)
{
    for (size_t i = 0; i < s->ncalls; i++)
        free(s->calls[i]);
    free(s->calls);
    s->calls = NULL;
    s->ncalls = s->calls_cap = 0;
}

bool smtpin_rcpt_joins(struct smtpin_session *s, const char *line, size_t len)
{
    struct smtpin_cmd c;

    return smtpin_parse_cmd(line, len, &c) == SP_OK && c.verb == SV_RCPT &&
           s->nrcpts + s->ncalls < s->srv->cfg->max_recipients;
}

/* Queues a lookup; false when it cannot be asked (out of memory). */
static bool calls_push(struct smtpin_session *s, struct smtpin_call *c)
{
    if (s->ncalls == s->calls_cap) {
        size_t cap = s->calls_cap ? s->calls_cap * 2 : 8;
        struct smtpin_call **n = realloc(s->calls, cap * sizeof(*n));

        if (!n)
            return false;
        s->calls = n;
        s->calls_cap = cap;
    }
    s->calls[s->ncalls++] = c;
    return true;
}

/* RCPT: starts the engine lookup; the reply comes when it answers. */
static void cmd_rcpt(struct smtpin_session *s, const struct smtpin_cmd *c)
{
    struct smtpin_call *call;

    if (!s->has_mail) {
        smtpin_reply(s, "503 5.5.1 Need MAIL before RCPT");
        smtpin_error(s);
        return;
    }
    if (s->nrcpts + s->ncalls >= s->srv->cfg->max_recipients) {
        smtpin_reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    call = calloc(1, sizeof(*call));
    if (!call || !s->srv->eng || !calls_push(s, call)) {
        free(call);
        rcpt_answer(s, c->path.full, IPC_EUNAVAIL, NULL);
        return;
    }
    call->s = s;
    snprintf(call->rcpt, sizeof(call->rcpt), "%s", c->path.full);
    if (eng_ask_inbound(s->srv->eng, s->sender, c->path.full, s->tls_active,
                        on_inbound, call) != 0) {
        if (s->mode == SM_ENGINE) { /* answered in its turn */
            call->done = true;
            call->err = IPC_EUNAVAIL;
            return;
        }
        s->ncalls--; /* nothing else in flight: answer now */
        free(call);
        rcpt_answer(s, c->path.full, IPC_EUNAVAIL, NULL);
        return;
    }
    s->refs++;
    s->mode = SM_ENGINE;
}

/* DATA: needs a recipient; bytes already sent behind it end the session. */
static void cmd_data(struct smtpin_session *s)
{
    if (!s->has_mail) {
        smtpin_reply(s, "503 5.5.1 Need MAIL and RCPT before DATA");
        smtpin_error(s);
        return;
    }
    if (s->nrcpts == 0) {
        smtpin_reply(s, "554 5.5.1 No valid recipients");
        smtpin_error(s);
        return;
    }
    if (s->in_len > 0) {
        log_warn("id=%s smtpin data_before_354 peer=%s bytes=%zu", s->msgid,
                 s->peer, s->in_len);
        smtpin_reply(s, "554 5.5.0 Data sent before the 354 reply, closing");
        smtpin_end(s, "data-before-354");
        return;
    }
    smtpin_data_begin(s);
}

/* STARTTLS: 220 in plaintext, then the handshake; the session starts over. */
static void cmd_starttls(struct smtpin_session *s)
{
    if (s->tls_active) {
        smtpin_reply(s, "503 5.5.1 TLS already active");
        smtpin_error(s);
        return;
    }
    if (!s->srv->tls) {
        smtpin_reply(s, "454 4.7.0 TLS not available");
        return;
    }
    smtpin_reply(s, "220 2.0.0 Ready to start TLS");
    smtpin_reset_envelope(s);
    s->greeted = s->esmtp = false;
    s->helo[0] = '\0';
    smtpin_starttls(s);
}

static void cmd_help(struct smtpin_session *s)
{
    smtpin_reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP");
    smtpin_reply(s, "214 2.0.0 QUIT VRFY HELP STARTTLS");
}

/* Whether line is "RCPT TO:<postmaster>" (any case, one optional space
 * after the colon, no parameters): the domainless postmaster of RFC 5321
 * section 4.5.1, which the address parser refuses. */
static bool rcpt_is_postmaster(const char *line, size_t len)
{
    static const char head[] = "RCPT TO:", box[] = "<postmaster>";
    size_t i = sizeof(head) - 1;

    if (len < i || strncasecmp(line, head, i) != 0)
        return false;
    if (i < len && line[i] == ' ')
        i++;
    return len - i == sizeof(box) - 1 &&
           strncasecmp(line + i, box, sizeof(box) - 1) == 0;
}

/* RCPT TO:<postmaster>: answered as an unknown mailbox (550 5.1.1), not as
 * a syntax error; the gateway has no platform postmaster mailbox. */
static void cmd_postmaster(struct smtpin_session *s)
{
    if (!s->has_mail) {
        smtpin_reply(s, "503 5.5.1 Need MAIL before RCPT");
        smtpin_error(s);
        return;
    }
    rcpt_answer(s, "postmaster", STORE_ENOTFOUND, NULL);
}

void smtpin_command(struct smtpin_session *s, const char *line, size_t len)
{
    struct smtpin_cmd c;
    int r = smtpin_parse_cmd(line, len, &c);

    if (r == SP_EPATH && c.verb == SV_RCPT && rcpt_is_postmaster(line, len)) {
        cmd_postmaster(s);
        return;
    }
    if (r == SP_ESYNTAX && c.verb == SV_HELO) {
        smtpin_reply(s, "501 5.5.4 Syntax: HELO hostname");
        smtpin_error(s);
        return;
    }
    if (r != SP_OK) {
        smtpin_reply(s, "%s", smtpin_parse_reply(r, c.verb));
        smtpin_error(s);
        return;
    }
    switch (c.verb) {
    case SV_HELO:
    case SV_EHLO:
        cmd_hello(s, &c);
        break;
    case SV_MAIL:
        cmd_mail(s, &c);
        break;
    case SV_RCPT:
        cmd_rcpt(s, &c);
        break;
    case SV_DATA:
        cmd_data(s);
        break;
    case SV_RSET:
        smtpin_reset_envelope(s);
        smtpin_reply(s, "250 2.0.0 Ok");
        break;
    case SV_NOOP:
        smtpin_reply(s, "250 2.0.0 Ok");
        break;
    case SV_QUIT:
        smtpin_reply(s, "221 2.0.0 %s Bye", s->srv->cfg->hostname);
        smtpin_end(s, "quit");
        break;
    case SV_VRFY:
        smtpin_reply(s, "252 2.5.0 Cannot VRFY, but will try delivery");
        break;
    case SV_HELP:
        cmd_help(s);
        break;
    case SV_STARTTLS:
        cmd_starttls(s);
        break;
    case SV_UNKNOWN:
        break;
    }
}
