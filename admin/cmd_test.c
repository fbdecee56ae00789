/*
 * test send / test receive: a test message through the real outbound path
 * (the queue, as tlsgate-sendmail puts it there) with its outcome from the
 * events store, and the TLS details of the latest messages received (the
 * Received header tlsgate-smtpin wrote in the tenant's Maildirs).
 */
#include "report.h"

#include <dirent.h>
#include <limits.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

#define TEST_WAIT_DEFAULT 60 /* seconds */
#define TEST_WAIT_MAX     3600
#define RECV_LAST_DEFAULT 10
#define RECV_HEAD_MAX     8192 /* bytes of a message read for its header */

/* The test message: headers and a short body, CRLF lines. */
static int test_body(char *out, size_t n, const char *from, const char *rcpt,
                     const char *id)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return snprintf(out, n,
                    "From: <%s>\r\nTo: <%s>\r\nSubject: tlsgate TLS test\r\n"
                    "Date: %s\r\nMessage-ID: <test.%s.%ld@%s>\r\n\r\n"
                    "A test message from tlsgate-admin test send.\r\n",
                    from, rcpt, date, id, (long)now, strchr(from, '@') + 1);
}

/* Queues the message for tenant t to rcpt; fills id. */
static int test_queue(struct adm_ctx *c, const struct tenant_info *t,
                      const char *rcpt, char *id, size_t idlen)
{
    struct queue_rcpt qr = {0};
    struct queue_msg m = {0};
    struct queue *q;
    char dir[4096], body[2048];
    int n, rc;

    if (adm_state_path(c, "queue", dir, sizeof(dir)) != ADM_OK)
        return ADM_FAIL;
    if ((rc = queue_open(dir, &q)) != QUEUE_OK)
        return adm_err("queue %s: %s", dir, queue_strerror(rc));
    snprintf(m.tenant, sizeof(m.tenant), "%s", t->name);
    snprintf(m.sender, sizeof(m.sender), "%s", t->from);
    snprintf(m.tenant_from, sizeof(m.tenant_from), "%s", t->from);
    snprintf(qr.addr, sizeof(qr.addr), "%s", rcpt);
    m.nrcpt = 1;
    m.rcpt = &qr;
    n = test_body(body, sizeof(body), t->from, rcpt, t->name);
    rc = queue_submit(q, &m, body, (size_t)n);
    queue_close(q);
    if (rc != QUEUE_OK)
        return adm_err("queue %s: %s", dir, queue_strerror(rc));
    snprintf(id, idlen, "%s", m.id);
    return ADM_OK;
}

struct find_id {
    const char *id;
    struct eng_event ev;
    bool found;
};

static int find_step(const struct eng_event *e, void *ctx)
{
    struct find_id *f = ctx;

    if (e->kind != EV_DELIVERY || strcmp(e->id, f->id) != 0)
        return 0;
    f->ev = *e;
    f->found = true;
    return !strcmp(e->status, "sent") || !strcmp(e->status, "bounced");
}

/* Prints the outcome of the test message (or that none came in time). */
static int test_report(struct adm_ctx *c, const char *rcpt, const char *id,
                       const struct find_id *f)
{
    const struct eng_event *e = &f->ev;
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "tenant", c->args[0],
                            "recipient", rcpt, "queue_id", id, "status",
                            f->found ? e->status : "queued");

    if (f->found)
        json_object_update_new(
            doc, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, "
                           "s:s}",
                           "reply", e->reply, "relay", e->relay, "tls_protocol",
                           e->tls_protocol, "tls_cipher", e->tls_cipher,
                           "tls_verified", e->tls_verified, "level", e->level,
                           "rule", e->rule, "tls_failure", e->tls_failure,
                           "mx_host", e->mx_host, "mx_ip", e->mx_ip));
    if (c->json)
        adm_json_out(json_incref(doc), stdout, false);
    else
        printf("queue id  %s\nstatus    %s\nrelay     %s\ntls       %s %s "
               "(verified %s)\nlevel     %s (%s)\nreply     %s\n",
               id, f->found ? e->status : "queued (no outcome yet)",
               f->found ? e->relay : "", f->found ? e->tls_protocol : "",
               f->found ? e->tls_cipher : "",
               f->found && e->tls_verified ? "yes" : "no",
               f->found ? e->level : "", f->found ? e->rule : "",
               f->found ? e->reply : "");
    json_decref(doc);
    return f->found && !strcmp(e->status, "sent") ? ADM_OK : ADM_FAIL;
}

/* test send NAME RECIPIENT [--wait SECONDS] */
int adm_cmd_test_send(struct adm_ctx *c)
{
    struct tenant_info t;
    struct store *st;
    struct store_txn *txn;
    struct addr a;
    struct find_id f = {0};
    char id[QUEUE_ID_MAX], dir[4096], *end;
    long wait = c->wait ? strtol(c->wait, &end, 10) : TEST_WAIT_DEFAULT;
    int64_t start = (int64_t)time(NULL) - 1;

    if (c->wait && (*end || wait < 0 || wait > TEST_WAIT_MAX))
        return adm_usage("%s: --wait takes 0 to %d seconds", c->cmd,
                         TEST_WAIT_MAX);
    if (adm_tenant_name(c->args[0]) != ADM_OK ||
        adm_address(c->args[1], &a) != ADM_OK ||
        adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    if (adm_tenant(txn, c->args[0], &t) != ADM_OK) {
        adm_read_end(st, txn);
        return ADM_FAIL;
    }
    adm_read_end(st, txn);
    if (test_queue(c, &t, a.full, id, sizeof(id)) != ADM_OK ||
        adm_state_path(c, "events", dir, sizeof(dir)) != ADM_OK)
        return ADM_FAIL;
    f.id = id;
    for (long ms = 0; ms <= wait * 1000; ms += 200) {
        if (adm_events_scan(dir, t.name, start, INT64_MAX, find_step, &f) !=
            ADM_OK)
            return ADM_FAIL;
        if (f.found)
            break;
        usleep(200 * 1000);
    }
    return test_report(c, a.full, id, &f);
}

/* What the Received header tlsgate wrote says about one message. */
static json_t *recv_parse(const char *path, const char *mailbox,
                          const char *from_dom, int64_t mtime)
{
    char buf[RECV_HEAD_MAX + 1], sender[ADDR_MAX + 3] = "", proto[32] = "",
                                                   cipher[96] = "", id[64] = "";
    const char *p, *at;
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return NULL;
    n = fread(buf, 1, RECV_HEAD_MAX, f);
    fclose(f);
    buf[n] = '\0';
    if (sscanf(buf, "Return-Path: <%320[^>]>", sender) < 0)
        return NULL;
    at = strrchr(sender, '@');
    if (from_dom && (!at || strcasecmp(at + 1, from_dom) != 0))
        return NULL;
    if ((p = strstr(buf, "(using ")))
        sscanf(p, "(using %31s with cipher %95[^)])", proto, cipher);
    if ((p = strstr(buf, ") id ")) || (p = strstr(buf, " id ")))
        sscanf(strstr(p, " id ") + 4, "%63[^ \r\n;]", id);
    return json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:s, s:s}", "mailbox",
                     mailbox, "sender", sender, "id", id, "time",
                     (json_int_t)mtime, "tls", proto[0] != '\0', "tls_protocol",
                     proto, "tls_cipher", cipher, "file", path);
}

/* Adds every message of one Maildir sub-folder (new/ or cur/). */
static void recv_folder(json_t *out, const char *dir, const char *mailbox,
                        const char *from_dom)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat sb;
    char path[PATH_MAX];
    json_t *m;

    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%.255s", dir,
                             de->d_name) >= sizeof(path))
            continue;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
            (m = recv_parse(path, mailbox, from_dom, sb.st_mtime)))
            json_array_append_new(out, m);
    }
    if (d)
        closedir(d);
}

static int recv_cmp(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t **)a, "time"));
    json_int_t y = json_integer_value(json_object_get(*(json_t **)b, "time"));

    return x < y ? 1 : x > y ? -1 : 0;
}

/* Keeps the newest n messages of all, newest first. */
static json_t *recv_latest(json_t *all, size_t n)
{
    size_t k = json_array_size(all);
    json_t **v = calloc(k + 1, sizeof(*v)), *out = json_array();

    for (size_t i = 0; i < k; i++)
        v[i] = json_array_get(all, i);
    qsort(v, k, sizeof(*v), recv_cmp);
    for (size_t i = 0; i < k && i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(all);
    return out;
}

/* test receive NAME [--from DOMAIN] [--last N] */
int adm_cmd_test_receive(struct adm_ctx *c)
{
    char root[1024], dir[1400], dom[ADDR_DOMAIN_MAX + 2];
    long last = RECV_LAST_DEFAULT;
    char *end;
    DIR *d;
    struct dirent *de;
    json_t *all, *v;
    size_t i;

    if (c->last &&
        ((last = strtol(c->last, &end, 10)) < 1 || *end || last > 10000))
        return adm_usage("%s: --last takes 1 to 10000", c->cmd);
    if (adm_tenant_name(c->args[0]) != ADM_OK ||
        (c->from && adm_domain(c->from, false, dom, sizeof(dom)) != ADM_OK) ||
        adm_state_path(c, "mail", root, sizeof(root)) != ADM_OK)
        return ADM_FAIL;
    snprintf(dir, sizeof(dir), "%.1000s/%s", root, c->args[0]);
    all = json_array();
    if ((d = opendir(dir))) {
        while ((de = readdir(d)))
            if (de->d_name[0] != '.')
                for (int k = 0; k < 2; k++) {
                    char sub[1800];
                    snprintf(sub, sizeof(sub), "%s/%.255s/%s", dir, de->d_name,
                             k ? "cur" : "new");
                    recv_folder(all, sub, de->d_name, c->from ? dom : NULL);
                }
        closedir(d);
    }
    all = recv_latest(all, (size_t)last);
    if (c->json)
        return adm_json_out(
            json_pack("{s:s, s:o}", "tenant", c->args[0], "messages", all),
            stdout, false);
    json_array_foreach(all, i, v)
    {
        printf("%s  %-30s  %s  %s\n",
               json_string_value(json_object_get(v, "mailbox")),
               json_string_value(json_object_get(v, "sender")),
               json_is_true(json_object_get(v, "tls"))
                   ? json_string_value(json_object_get(v, "tls_protocol"))
                   : "no-TLS",
               json_string_value(json_object_get(v, "tls_cipher")));
    }
    json_decref(all);
    return ADM_OK;
}
