/* tlsgated on SIGHUP: settings read again and applied, certificate
 * checked, children told or replaced. */
#include "supervisor.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tlscert.h"

int sup_setup_logging(const struct tg_config *cfg)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    int syslog_on, level = -1;

    if (strcmp(cfg->log_target, "stderr") == 0)
        syslog_on = 0;
    else if (strcmp(cfg->log_target, "syslog") == 0)
        syslog_on = 1;
    else
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(cfg->log_level, levels[i]) == 0)
            level = i;
    if (level < 0)
        return -1;
    log_init("tlsgated", syslog_on);
    log_set_level((enum log_level)level);
    return 0;
}

void sup_free_args(struct sup *s)
{
    for (int i = 1; s->args && i <= s->nargs; i++)
        free(s->args[i]);
    free(s->args);
    s->args = NULL;
    s->nargs = 0;
}

int sup_make_args(struct sup *s)
{
    int max = 0;

    sup_free_args(s);
    for (const struct cfg_key *k = cfg_keys; k->name; k++)
        max++;
    s->args = calloc((size_t)max + 2, sizeof(*s->args));
    if (s->args == NULL)
        return -1;
    s->nargs = cfg_to_args(&s->cfg, s->args + 1, max);
    return s->nargs < 0 ? -1 : 0;
}

/* Reads the settings from the saved command line (and so the config file)
 * into fresh. Returns 1 when they differ from the running ones, 0 when
 * they do not, -1 with err when they do not parse. */
static int reread(const struct sup *s, struct tg_config *fresh, char *err,
                  size_t errlen)
{
    char **argv = calloc((size_t)s->argc0 + 1, sizeof(*argv));
    int argc = s->argc0, rc;

    if (argv == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(argv, s->argv0, (size_t)argc * sizeof(*argv));
    rc = cfg_from_args(fresh, &argc, argv, err, errlen);
    free(argv);
    if (rc < 0)
        return -1;
    return memcmp(fresh, &s->cfg, sizeof(*fresh)) != 0;
}

/* Names (comma separated, in out) the settings that differ; returns the
 * first one that only a restart of tlsgated can change, or NULL. */
static const char *compare(const struct tg_config *a, const struct tg_config *b,
                           char *out, size_t n)
{
    static const char *const fixed[] = {"state_dir", "inbound_listen",
                                        "submission_listen", "inbound_workers",
                                        "outbound_workers"};
    char *va[128], *vb[128];
    int na = cfg_to_args(a, va, 128), nb = cfg_to_args(b, vb, 128);
    const char *blocked = NULL;

    out[0] = '\0';
    for (int i = 0; i < na && i < nb; i++) {
        const char *name = cfg_keys[i].name;

        if (strcmp(va[i], vb[i]) == 0)
            continue;
        snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "",
                 name);
        for (size_t f = 0; f < sizeof(fixed) / sizeof(fixed[0]); f++)
            if (blocked == NULL && strcmp(name, fixed[f]) == 0)
                blocked = fixed[f];
    }
    for (int i = 0; i < na; i++)
        free(va[i]);
    for (int i = 0; i < nb; i++)
        free(vb[i]);
    return blocked;
}

/* Applies fresh settings that differ; -1 (nothing applied) when one of
 * them needs a restart of tlsgated, or the certificate or the log setting
 * is wrong. */
static int apply(struct sup *s, const struct tg_config *fresh)
{
    char changed[1024], err[512], esc[800];
    const char *blocked = compare(&s->cfg, fresh, changed, sizeof(changed));

    if (blocked != NULL) {
        log_warn("id=tlsgated reload_refused setting=%s reason=needs_restart",
                 blocked);
        return -1;
    }
    if (tlsc_ensure_cert(fresh, err, sizeof(err)) < 0) {
        log_err("id=tlsgated reload_refused reason=cert_error error=%s",
                log_escape(esc, sizeof(esc), err));
        return -1;
    }
    if (sup_setup_logging(fresh) < 0) {
        log_err("id=tlsgated reload_refused reason=bad_log_setting");
        return -1;
    }
    s->cfg = *fresh;
    if (sup_make_args(s) < 0)
        log_fatal("id=tlsgated out_of_memory");
    log_info("id=tlsgated reload signal=HUP settings_changed=%s", changed);
    return 0;
}

void sup_reload(struct sup *s)
{
    static struct tg_config fresh; /* large: kept off the stack */
    char err[512], esc[800];
    int rc = reread(s, &fresh, err, sizeof(err));

    if (rc < 0)
        log_err("id=tlsgated reload_refused reason=bad_settings error=%s",
                log_escape(esc, sizeof(esc), err));
    if (rc > 0 && !s->stopping && apply(s, &fresh) == 0) {
        sup_children_roll(s);
        return;
    }

    if (tlsc_ensure_cert(&s->cfg, err, sizeof(err)) < 0)
        log_err("id=tlsgated cert_error error=%s",
                log_escape(esc, sizeof(esc), err));
    log_info("id=tlsgated reload signal=HUP children=%u",
             sup_children_signal(s, SIGHUP, 1));
}
