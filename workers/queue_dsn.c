/* Delivery status notifications (RFC 3464) for bounced recipients. */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEADERS_MAX 65536

/* RFC 5322 date of t into buf. */
static void rfc5322_date(char *buf, size_t n, time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* The enhanced status code at the start of reply ("4.7.5 ..." or
 * "451 4.7.5 ..."), else fallback. */
static void status_of(const char *reply, const char *fallback, char *out,
                      size_t n)
{
    unsigned a, b, c;
    const char *p = reply;

    if (strlen(p) > 4 && p[3] == ' ' && p[0] >= '2' && p[0] <= '5')
        p += 4;
    if (sscanf(p, "%1u.%3u.%3u", &a, &b, &c) == 3 && (a == 4 || a == 5))
        snprintf(out, n, "%u.%u.%u", a, b, c);
    else
        snprintf(out, n, "%s", fallback);
}

/* The original header block (up to the empty line) from body_fd, with
 * every line ending in CRLF; NULL when unreadable. */
static char *read_headers(int body_fd, size_t *len)
{
    char *buf = malloc(HEADERS_MAX + 1);
    ssize_t n;
    char *end;

    if (!buf)
        return NULL;
    n = pread(body_fd, buf, HEADERS_MAX, 0);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    end = strstr(buf, "\r\n\r\n");
    *len = end ? (size_t)(end - buf) + 2 : (size_t)n;
    if (*len >= 2 && memcmp(buf + *len - 2, "\r\n", 2) != 0)
        *len = (size_t)(strrchr(buf, '\n') ? strrchr(buf, '\n') - buf + 1 : 0);
    return buf;
}

/* Writes the per-recipient fields of the delivery-status part. */
static void put_recipients(FILE *f, const struct queue_msg *m,
                           const size_t *idx, size_t n)
{
    char date[64], status[16];

    rfc5322_date(date, sizeof(date), time(NULL));
    for (size_t i = 0; i < n; i++) {
        const struct queue_rcpt *r = &m->rcpt[idx[i]];
        status_of(r->reply, "5.4.7", status, sizeof(status));
        fprintf(f,
                "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\n"
                "Status: %s\r\nDiagnostic-Code: smtp; %s\r\n"
                "Last-Attempt-Date: %s\r\n",
                r->addr, status, r->reply[0] ? r->reply : "delivery expired",
                date);
    }
}

/* Writes the whole DSN message into f. */
static void put_dsn(FILE *f, const struct queue_msg *m, const size_t *idx,
                    size_t n, const char *hdrs, size_t hlen,
                    const char *hostname, const char *boundary)
{
    const char *dom = strrchr(m->tenant_from, '@');
    char date[64], arrival[64];

    rfc5322_date(date, sizeof(date), time(NULL));
    rfc5322_date(arrival, sizeof(arrival), (time_t)m->created);
    fprintf(f,
            "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nDate: %s\r\n"
            "Message-ID: <%s.dsn@%s>\r\nAuto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
            "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n",
            dom ? dom + 1 : hostname, m->sender, date, m->id, hostname,
            boundary);
    fprintf(f,
            "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is the mail system at %s.\r\n\r\nYour message (queue id "
            "%s) could not be delivered to %zu recipient(s)\r\nwithin the "
            "time allowed, or was refused. Details follow.\r\n\r\n",
            boundary, hostname, m->id, n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<%s>: %s\r\n", m->rcpt[idx[i]].addr, m->rcpt[idx[i]].reply);
    fprintf(f,
            "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; %s\r\nX-Tlsgate-Queue-ID: %s\r\n"
            "Arrival-Date: %s\r\n",
            boundary, hostname, m->id, arrival);
    put_recipients(f, m, idx, n);
    fprintf(f, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n",
            boundary);
    fwrite(hdrs, 1, hlen, f);
    fprintf(f, "\r\n--%s--\r\n", boundary);
}

int queue_bounce(struct queue *q, const struct queue_msg *m, const size_t *idx,
                 size_t n, int body_fd, const char *hostname, char *dsn_id,
                 size_t idlen)
{
    struct queue_msg dsn = {0};
    struct queue_rcpt rcpt = {0};
    char boundary[64], *text = NULL, *hdrs;
    size_t tlen = 0, hlen = 0;
    FILE *f;
    int rc;

    if (n == 0 || queue_is_noreply(m->sender, NULL))
        return QUEUE_EINVAL;
    hdrs = read_headers(body_fd, &hlen);
    f = open_memstream(&text, &tlen);
    if (!hdrs || !f) {
        free(hdrs);
        if (f)
            fclose(f);
        free(text);
        return QUEUE_ENOMEM;
    }
    snprintf(boundary, sizeof(boundary), "%s/%s", m->id, hostname);
    put_dsn(f, m, idx, n, hdrs, hlen, hostname, boundary);
    fclose(f);
    free(hdrs);

    snprintf(dsn.tenant, sizeof(dsn.tenant), "%s", m->tenant);
    snprintf(dsn.tenant_from, sizeof(dsn.tenant_from), "%s", m->tenant_from);
    snprintf(rcpt.addr, sizeof(rcpt.addr), "%s", m->sender);
    dsn.rcpt = &rcpt;
    dsn.nrcpt = 1;
    rc = queue_submit(q, &dsn, text, tlen);
    free(text);
    if (rc == QUEUE_OK)
        snprintf(dsn_id, idlen, "%s", dsn.id);
    return rc;
}
