/* The inbound receiver's messages: DATA, Maildir delivery, logs, events. */
#include "smtpin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static char scratch[SMTPIN_INBUF]; /* stored bytes of one feed (one loop) */

void smtpin_event(struct smtpin_session *s, const char *address,
                  const struct inbound_decision *d, const char *status,
                  const char *reply)
{
    struct eng_event ev;
    const char *at = strrchr(s->sender, '@');

    if (!s->srv->eng)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.kind = EV_DELIVERY;
    ev.time = (int64_t)time(NULL);
    snprintf(ev.id, sizeof(ev.id), "%s", s->msgid);
    snprintf(ev.tenant, sizeof(ev.tenant), "%s", d ? d->tenant : "");
    snprintf(ev.peer_domain, sizeof(ev.peer_domain), "%s", at ? at + 1 : "");
    snprintf(ev.address, sizeof(ev.address), "%s", s->sender);
    snprintf(ev.mailbox, sizeof(ev.mailbox), "%s",
             d && d->mailbox[0] ? d->mailbox : address);
    snprintf(ev.relay, sizeof(ev.relay), "%.200s[%s]", s->helo, s->peer);
    snprintf(ev.status, sizeof(ev.status), "%s", status);
    snprintf(ev.reply, sizeof(ev.reply), "%s", reply);
    if (s->tls_active) {
        snprintf(ev.tls_protocol, sizeof(ev.tls_protocol), "%s",
                 s->tlsrep.protocol);
        snprintf(ev.tls_cipher, sizeof(ev.tls_cipher), "%s", s->tlsrep.cipher);
    }
    snprintf(ev.level, sizeof(ev.level), "%s",
             s->tls_active ? "tls" : "plaintext");
    snprintf(ev.rule, sizeof(ev.rule), "%s", d ? d->rule : "");
    ev.generation = d ? d->generation : 0;
    eng_send_event(s->srv->eng, &ev);
}

/* The TLS part of the Received header. */
static void received_tls(const struct smtpin_session *s, char *buf, size_t n)
{
    if (s->tls_active)
        snprintf(buf, n, "(using %s with cipher %s)", s->tlsrep.protocol,
                 s->tlsrep.cipher);
    else
        snprintf(buf, n, "(without TLS)");
}

/* Return-Path and Received, as the first lines of the stored message
 * (each field is bounded, so the buffer always holds them). */
static void write_headers(struct smtpin_session *s, size_t accepted,
                          const char *for_rcpt)
{
    char date[64], tls[160], hdr[4096];
    time_t now = time(NULL);
    struct tm tm;
    int n;

    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    received_tls(s, tls, sizeof(tls));
    n = snprintf(hdr, sizeof(hdr),
                 "Return-Path: <%s>\n"
                 "Received: from %s ([%s%s])\n"
                 "\tby %s (tlsgate) with %s id %s\n"
                 "\t%s\n"
                 "\t%s%s%s; %s\n",
                 s->sender, s->helo, strchr(s->peer, ':') ? "IPv6:" : "",
                 s->peer, s->srv->cfg->hostname,
                 s->tls_active ? "ESMTPS" : (s->esmtp ? "ESMTP" : "SMTP"),
                 s->msgid, tls, accepted == 1 ? "for <" : "",
                 accepted == 1 ? for_rcpt : "", accepted == 1 ? ">" : "", date);
    if (n > 0)
        smtpin_delivery_write(&s->dlv, hdr,
                              (size_t)n < sizeof(hdr) ? (size_t)n
                                                      : sizeof(hdr) - 1);
}

/* Maildirs of the accepted recipients, each once. Returns how many, or -1
 * (reason logged) when one cannot be made. */
static long collect_dirs(struct smtpin_session *s, char (*dirs)[PATH_MAX],
                         const char **first)
{
    long n = 0;

    for (size_t i = 0; i < s->nrcpts; i++) {
        const struct inbound_decision *d = &s->rcpts[i].d;
        char path[PATH_MAX];
        bool dup = false;
        int r;

        if (d->action != IN_ACCEPT)
            continue;
        r = smtpin_maildir_make(s->srv->cfg->mail_dir, d->mailbox_dir, path,
                                sizeof(path));
        if (r < 0) {
            log_err("id=%s smtpin maildir_error dir=%s error=\"%s\"", s->msgid,
                    d->mailbox_dir, strerror(-r));
            return -1;
        }
        for (long j = 0; j < n && !dup; j++)
            dup = strcmp(dirs[j], path) == 0;
        if (!dup) {
            snprintf(dirs[n++], PATH_MAX, "%s", path);
            *first = s->rcpts[i].address;
        }
    }
    return n;
}

void smtpin_data_begin(struct smtpin_session *s)
{
    const struct tg_config *cfg = s->srv->cfg;
    char(*dirs)[PATH_MAX] = malloc(s->nrcpts * sizeof(*dirs));
    const char *first = "";
    long n = dirs ? collect_dirs(s, dirs, &first) : -1;
    int r = 0;

    if (n > 0) {
        r = smtpin_delivery_open(&s->dlv, dirs, (size_t)n, cfg->hostname);
        if (r == 0) {
            s->delivering = true;
            write_headers(s, (size_t)n, first);
        } else {
            log_err("id=%s smtpin maildir_error error=\"%s\"", s->msgid,
                    strerror(-r));
            smtpin_delivery_abort(&s->dlv);
            smtpin_delivery_free(&s->dlv);
        }
    }
    free(dirs);
    if (n < 0 || r < 0) {
        smtpin_reply(s, "451 4.3.0 Cannot store the message, try later");
        smtpin_reset_envelope(s);
        return;
    }
    smtpin_data_init(&s->data, cfg->max_line_length, cfg->max_message_size);
    s->mode = SM_DATA;
    smtpin_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

void smtpin_message_abort(struct smtpin_session *s)
{
    if (!s->delivering || s->mode == SM_DISK)
        return;
    smtpin_delivery_abort(&s->dlv);
    smtpin_delivery_free(&s->dlv);
    s->delivering = false;
}

/* One line per message, and the events of its recipients. */
static void message_log(struct smtpin_session *s, const char *status,
                        const char *reply)
{
    char from[ADDR_MAX * 4];
    size_t acc = 0, disc = 0;
    uint64_t gen = 0;

    for (size_t i = 0; i < s->nrcpts; i++) {
        struct smtpin_rcpt *r = &s->rcpts[i];
        bool discard = r->d.action == IN_DISCARD;
        bool ok = strcmp(status, "delivered") == 0;

        acc += !discard, disc += discard;
        gen = r->d.generation > gen ? r->d.generation : gen;
        if (discard)
            log_info("id=%s smtpin discarded from=<%s> to=<%s> reason=%s",
                     s->msgid, log_escape(from, sizeof(from), s->sender),
                     r->d.mailbox, r->d.rule);
        smtpin_event(s, r->address, &r->d,
                     discard ? "discarded"
                     : ok    ? "accepted"
                             : "rejected",
                     reply);
    }
    log_info("id=%s smtpin message session=%s peer=%s from=<%s> size=%zu "
             "accepted=%zu discarded=%zu tls=%s cipher=%s status=%s "
             "reply=\"%s\" generation=%llu",
             s->msgid, s->id, s->peer,
             log_escape(from, sizeof(from), s->sender), s->data.size, acc, disc,
             s->tls_active ? s->tlsrep.protocol : "none",
             s->tls_active ? s->tlsrep.cipher : "none", status, reply,
             (unsigned long long)gen);
}

/* The message ended: say so, forget the envelope, read on. */
static void message_done(struct smtpin_session *s, const char *status,
                         const char *reply)
{
    message_log(s, status, reply);
    smtpin_reply(s, "%s", reply);
    s->messages++;
    smtpin_reset_envelope(s);
    s->mode = SM_CMD;
}

static void commit_work(uv_work_t *w)
{
    struct smtpin_session *s = w->data;

    s->commit_err = smtpin_delivery_commit(&s->dlv);
}

/* Back on the loop after the sync: 250 or 451, then the next command. */
static void after_commit(uv_work_t *w, int status)
{
    struct smtpin_session *s = w->data;
    char reply[128];

    smtpin_delivery_free(&s->dlv);
    s->delivering = false;
    if (s->commit_err == 0) {
        snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", s->msgid);
        message_done(s, "delivered", reply);
    } else {
        log_err("id=%s smtpin maildir_error error=\"%s\"", s->msgid,
                strerror(-s->commit_err));
        message_done(s, "deferred",
                     "451 4.3.0 Cannot store the message, try later");
    }
    if (!s->torn_down)
        smtpin_resume(s);
    smtpin_session_unref(s);
}

/* CRLF.CRLF arrived: refuse, or sync and publish on a work thread. */
static void message_end(struct smtpin_session *s)
{
    char reply[128];

    if (s->data.too_long || s->data.too_big) {
        if (s->data.too_long)
            snprintf(reply, sizeof(reply),
                     "500 5.5.2 Message refused: a line is longer than %lu "
                     "bytes",
                     s->srv->cfg->max_line_length);
        else
            snprintf(reply, sizeof(reply),
                     "552 5.3.4 Message too big (limit %lu bytes)",
                     s->srv->cfg->max_message_size);
        smtpin_message_abort(s);
        message_done(s, "refused", reply);
        return;
    }
    if (!s->delivering) {
        snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", s->msgid);
        message_done(s, "discarded", reply);
        return;
    }
    s->mode = SM_DISK;
    s->work.data = s;
    s->refs++;
    uv_queue_work(s->srv->loop, &s->work, commit_work, after_commit);
}

size_t smtpin_data_input(struct smtpin_session *s, const char *buf, size_t len)
{
    size_t outlen = 0, used = 0;
    enum smtpin_data_status st;

    if (len > sizeof(scratch))
        len = sizeof(scratch);
    st = smtpin_data_feed(&s->data, buf, len, scratch, &outlen, &used);
    if (s->delivering && outlen > 0)
        smtpin_delivery_write(&s->dlv, scratch, outlen);
    if (st == SD_BARE) {
        log_warn("id=%s smtpin bare_cr_lf peer=%s offset=%zu", s->msgid,
                 s->peer, s->data.size);
        smtpin_message_abort(s);
        message_log(s, "refused", "554 5.5.2 Bare CR or LF in data");
        smtpin_reply(s, "554 5.5.2 Bare CR or LF in message data refused, "
                        "closing");
        smtpin_end(s, "bare-cr-lf");
    } else if (st == SD_END) {
        message_end(s);
    }
    return used;
}
