/* outbound shadow: the stricter policy the senders evaluate beside the
 * live one (docs/operator-tls.md). */
#include "report.h"

#include <string.h>

struct shadow_args {
    enum out_mode mode;
    enum tls_level level;
};

static int adm_shadow_write(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    struct shadow_args *a = arg;
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK)
        return ADM_FAIL;
    rc = store_outbound_shadow(txn, c->args[0], a->mode, a->level);
    return rc < 0 ? adm_store_err(rc, c->cmd) : ADM_OK;
}

/* outbound shadow NAME off|all|domains [--level encrypt|verify|secure] */
int adm_cmd_outbound_shadow(struct adm_ctx *c)
{
    struct shadow_args a = {MODE_OFF, TLS_ENCRYPT};

    if (out_mode_parse(c->args[1], &a.mode) < 0)
        return adm_usage("%s: '%s' is not off, all or domains", c->cmd,
                         c->args[1]);
    if (c->level && a.mode != MODE_ALL)
        return adm_usage("%s: --level applies to all only", c->cmd);
    if (c->level &&
        (tls_level_parse(c->level, &a.level) < 0 || a.level < TLS_ENCRYPT))
        return adm_usage("%s: level '%s' is not encrypt, verify or secure",
                         c->cmd, c->level);
    if (adm_tenant_name(c->args[0]) != ADM_OK)
        return ADM_FAIL;
    return adm_write(c, false, adm_shadow_write, &a);
}
