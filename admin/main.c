/*
 * tlsgate-admin: edits the policy store while the gateway runs. This file
 * holds the command table and the command-line parser; each command lives
 * in its own cmd_*.c file.
 */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"

#define ADM_WORDS_MAX 3
#define ADM_POS_MAX   (ADM_WORDS_MAX + ADM_ARGS_MAX + 1)

const struct adm_cmd adm_cmds[] = {
    {"init", "--platform-domain DOMAIN", 0, 0, OPT_PLATFORM, adm_cmd_init,
     "Creates the store (when missing) and sets the platform mail domain."},
    {"tenant add", "NAME [--from ADDRESS]", 1, 1, OPT_FROM, adm_cmd_tenant_add,
     "Adds a tenant; From defaults to noreply@NAME.<platform domain>."},
    {"tenant remove", "NAME", 1, 1, 0, adm_cmd_tenant_remove,
     "Removes a tenant and everything that belongs to it."},
    {"tenant list", "", 0, 0, 0, adm_cmd_tenant_list,
     "Lists the tenants with their outbound mode and inbound settings."},
    {"tenant show", "NAME", 1, 1, 0, adm_cmd_tenant_show,
     "Shows everything of one tenant."},
    {"tenant set", "NAME --from ADDRESS | --default-from", 1, 1,
     OPT_FROM | OPT_DEFAULT_FROM, adm_cmd_tenant_set,
     "Changes a tenant's From address, or sets it back to the default."},
    {"outbound mode", "NAME off|all|domains [--level encrypt|verify|secure]", 2,
     2, OPT_LEVEL, adm_cmd_outbound_mode,
     "Sets the outbound mode; --level is the default level under all "
     "(encrypt unless given)."},
    {"outbound add", "NAME DOMAIN [--level none|may|encrypt|verify|secure]", 2,
     2, OPT_LEVEL, adm_cmd_outbound_add,
     "Adds or changes a domain entry (.DOMAIN: every subdomain); the level "
     "defaults to encrypt."},
    {"outbound remove", "NAME DOMAIN", 2, 2, 0, adm_cmd_outbound_remove,
     "Removes a domain entry."},
    {"outbound list", "NAME", 1, 1, 0, adm_cmd_outbound_list,
     "Lists a tenant's outbound domain entries with their levels."},
    {"inbound mailbox add", "NAME ADDRESS", 2, 2, 0, adm_cmd_mailbox_add,
     "Registers a monitored mailbox of the tenant."},
    {"inbound mailbox remove", "NAME ADDRESS", 2, 2, 0, adm_cmd_mailbox_remove,
     "Removes a monitored mailbox."},
    {"inbound mailbox list", "NAME", 1, 1, 0, adm_cmd_mailbox_list,
     "Lists a tenant's monitored mailboxes."},
    {"inbound allowlist", "NAME on|off [--action reject|discard]", 2, 2,
     OPT_ACTION, adm_cmd_allowlist,
     "Turns the sender allow-list on or off; --action keeps its current "
     "value (reject at first) unless given."},
    {"inbound trust", "NAME DOMAIN", 2, 2, 0, adm_cmd_trust,
     "Adds a trusted sender domain (.DOMAIN: every subdomain)."},
    {"inbound untrust", "NAME DOMAIN", 2, 2, 0, adm_cmd_untrust,
     "Removes a trusted sender domain."},
    {"inbound tls", "NAME may|require", 2, 2, 0, adm_cmd_inbound_tls,
     "Sets whether the tenant's mailboxes take mail only over TLS."},
    {"route add", "DOMAIN HOST:PORT", 2, 2, 0, adm_cmd_route_add,
     "Sends mail for DOMAIN (.DOMAIN: its subdomains) to HOST:PORT "
     "([IPv6]:PORT) instead of its MX."},
    {"route remove", "DOMAIN", 1, 1, 0, adm_cmd_route_remove,
     "Removes a route override."},
    {"route list", "", 0, 0, 0, adm_cmd_route_list, "Lists route overrides."},
    {"settings show", "", 0, 0, 0, adm_cmd_settings_show,
     "Shows the global settings."},
    {"settings set", "KEY VALUE", 2, 2, 0, adm_cmd_settings_set,
     "Changes a global setting (platform_domain...)."},
    {"explain outbound", "NAME RECIPIENT", 2, 2, 0, adm_cmd_explain_outbound,
     "Shows the TLS level for NAME sending to RECIPIENT and the rule that "
     "chose it."},
    {"explain inbound", "SENDER RECIPIENT [--tls]", 2, 2, OPT_TLS,
     adm_cmd_explain_inbound,
     "Shows what the gateway answers to RCPT TO:<RECIPIENT> from SENDER "
     "(--tls: in a TLS session)."},
    {"status", "", 0, 0, 0, adm_cmd_status,
     "Shows the store folder, its policy generation and what it holds."},
    {"show", "", 0, 0, 0, adm_cmd_show,
     "Shows the whole policy (--json: the export document)."},
    {"export", "[FILE]", 0, 1, 0, adm_cmd_export,
     "Writes the whole policy as JSON to FILE, or to stdout."},
    {"import", "FILE|-", 1, 1, 0, adm_cmd_import,
     "Replaces the whole policy with FILE (- for stdin), all or nothing."},
    {"outbound shadow", "NAME off|all|domains [--level encrypt|verify|secure]",
     2, 2, OPT_LEVEL, adm_cmd_outbound_shadow,
     "Sets the shadow policy: evaluated beside the live one, it counts "
     "what it would defer without deferring (docs/operator-tls.md)."},
    {"probe", "DOMAIN [--host HOST:PORT] [--ca-file FILE] [--wait SECONDS]", 1,
     1, OPT_HOST | OPT_CA_FILE | OPT_WAIT, adm_cmd_probe,
     "Connects to DOMAIN's next hops, STARTTLS, and reports TLS, the "
     "certificate and which levels would deliver; sends no mail."},
    {"test send", "NAME RECIPIENT [--wait SECONDS] [--state-dir DIR]", 2, 2,
     OPT_WAIT | OPT_STATE, adm_cmd_test_send,
     "Queues a test message from tenant NAME and reports its outcome."},
    {"test receive", "NAME [--from DOMAIN] [--last N] [--state-dir DIR]", 1, 1,
     OPT_FROM | OPT_LAST | OPT_STATE, adm_cmd_test_receive,
     "Shows the TLS details of the latest messages in NAME's mailboxes."},
    {"report readiness", "NAME [--since WHEN] [--until WHEN] [--state-dir DIR]",
     1, 1, OPT_SINCE | OPT_UNTIL | OPT_STATE, adm_cmd_report_readiness,
     "Per recipient domain: messages, TLS, verified TLS, and what would "
     "fail under all (encrypt) or verify."},
    {"report tlsrpt", "NAME [--since WHEN] [--until WHEN] [--state-dir DIR]", 1,
     1, OPT_SINCE | OPT_UNTIL | OPT_STATE, adm_cmd_report_tlsrpt,
     "Prints the tenant's TLS report in the RFC 8460 JSON format."},
    {"report audit", "NAME [--since WHEN] [--state-dir DIR]", 1, 1,
     OPT_SINCE | OPT_STATE, adm_cmd_report_audit,
     "Listed domains not under a required level, and required domains "
     "whose recent deliveries failed."},
    {NULL, NULL, 0, 0, 0, NULL, NULL},
};

static const struct {
    const char *name;
    unsigned flag;
    bool value;
} adm_opts[] = {
    {"--from", OPT_FROM, true},
    {"--level", OPT_LEVEL, true},
    {"--action", OPT_ACTION, true},
    {"--platform-domain", OPT_PLATFORM, true},
    {"--tls", OPT_TLS, false},
    {"--default-from", OPT_DEFAULT_FROM, false},
    {"--host", OPT_HOST, true},
    {"--ca-file", OPT_CA_FILE, true},
    {"--wait", OPT_WAIT, true},
    {"--last", OPT_LAST, true},
    {"--since", OPT_SINCE, true},
    {"--until", OPT_UNTIL, true},
    {"--state-dir", OPT_STATE, true},
};

/* What the parser collected before the command is known. */
struct adm_argv {
    const char *pos[ADM_POS_MAX];
    int npos;
    unsigned seen; /* OPT_* flags given */
    bool help, version;
};

/* Prints one command's usage line. */
static void adm_print_usage(FILE *f, const struct adm_cmd *cmd)
{
    fprintf(f, "  tlsgate-admin [--db DIR] %s%s%s [--json]\n", cmd->words,
            cmd->usage[0] ? " " : "", cmd->usage);
}

/* The tool's help, or a group's ("tenant") when group is not NULL. */
static void adm_help(const char *group)
{
    size_t glen = group ? strlen(group) : 0;

    printf("usage:\n");
    for (const struct adm_cmd *cmd = adm_cmds; cmd->words; cmd++)
        if (!group || (strncmp(cmd->words, group, glen) == 0 &&
                       (cmd->words[glen] == ' ' || !cmd->words[glen])))
            adm_print_usage(stdout, cmd);
    printf("\nThe store is --db DIR, else $TLSGATE_DB, else the policy_dir "
           "setting's default.\n--json prints one JSON document. "
           "Exit status: 0 success, 1 failure, 2 usage error.\n"
           "'tlsgate-admin COMMAND --help' describes one command; "
           "docs/admin.md has the details.\n");
}

static void adm_cmd_help(const struct adm_cmd *cmd)
{
    printf("usage:\n");
    adm_print_usage(stdout, cmd);
    printf("\n%s\n", cmd->help);
}

/* Stores the value of an option of the TLS reporting commands. */
static void adm_set_opt2(struct adm_ctx *c, unsigned flag, const char *v)
{
    const char **slot[] = {&c->host,  &c->ca_file, &c->wait, &c->last,
                           &c->since, &c->until,   &c->state};
    const unsigned flags[] = {OPT_HOST,  OPT_CA_FILE, OPT_WAIT, OPT_LAST,
                              OPT_SINCE, OPT_UNTIL,   OPT_STATE};

    for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
        if (flag == flags[k])
            *slot[k] = v;
}

/* Stores an option's value in c. */
static void adm_set_opt(struct adm_ctx *c, unsigned flag, const char *v)
{
    switch (flag) {
    case OPT_FROM:
        c->from = v;
        break;
    case OPT_LEVEL:
        c->level = v;
        break;
    case OPT_ACTION:
        c->action = v;
        break;
    case OPT_PLATFORM:
        c->platform = v;
        break;
    case OPT_TLS:
        c->tls = true;
        break;
    case OPT_DEFAULT_FROM:
        c->default_from = true;
        break;
    default:
        adm_set_opt2(c, flag, v);
    }
}

/* Takes the options every command has: --json, --help, --version. */
static bool adm_take_flag(struct adm_ctx *c, struct adm_argv *a,
                          const char *arg)
{
    if (!strcmp(arg, "--json"))
        c->json = true;
    else if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
        a->help = true;
    else if (!strcmp(arg, "--version"))
        a->version = true;
    else
        return false;
    return true;
}

/* Takes one "--name[=value]" option at argv[*i]. Returns ADM_OK or
 * ADM_USAGE after a message. */
static int adm_take_opt(struct adm_ctx *c, struct adm_argv *a, int argc,
                        char **argv, int *i)
{
    const char *arg = argv[*i], *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *value = eq ? eq + 1 : NULL;
    bool takes = false;
    unsigned flag = 0;

    if (adm_take_flag(c, a, arg))
        return ADM_OK;
    if (len == 4 && !strncmp(arg, "--db", 4))
        takes = true;
    for (size_t k = 0; k < sizeof(adm_opts) / sizeof(adm_opts[0]); k++)
        if (strlen(adm_opts[k].name) == len &&
            !strncmp(arg, adm_opts[k].name, len)) {
            flag = adm_opts[k].flag;
            takes = adm_opts[k].value;
        }
    if (!takes && flag == 0)
        return adm_usage("unknown option '%.*s'", (int)len, arg);
    if (!takes && value)
        return adm_usage("option '%.*s' takes no value", (int)len, arg);
    if (takes && !value) {
        if (*i + 1 >= argc)
            return adm_usage("option '%s' needs a value", arg);
        value = argv[++*i];
    }
    if (flag == 0)
        c->db = value;
    adm_set_opt(c, flag, value);
    a->seen |= flag;
    return ADM_OK;
}

/* Splits argv into options (anywhere) and positional words. */
static int adm_split(struct adm_ctx *c, struct adm_argv *a, int argc,
                     char **argv)
{
    bool only_pos = false;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!only_pos && !strcmp(argv[i], "--")) {
            only_pos = true;
            continue;
        }
        if (!only_pos && argv[i][0] == '-' && argv[i][1] != '\0') {
            if ((rc = adm_take_opt(c, a, argc, argv, &i)) != ADM_OK)
                return rc;
            continue;
        }
        if (a->npos == ADM_POS_MAX)
            return adm_usage("too many arguments");
        a->pos[a->npos++] = argv[i];
    }
    return ADM_OK;
}

/* How many leading words of pos the command's words match (0: none). */
static int adm_match(const struct adm_cmd *cmd, const char *const *pos,
                     int npos)
{
    const char *w = cmd->words;
    int n = 0;

    while (*w) {
        size_t len = strcspn(w, " ");

        if (n >= npos || strlen(pos[n]) != len || strncmp(pos[n], w, len))
            return 0;
        n++;
        w += len + (w[len] == ' ');
    }
    return n;
}

/* True when word starts some command ("tenant", "inbound mailbox"). */
static bool adm_is_group(const struct adm_argv *a, int nwords)
{
    for (const struct adm_cmd *cmd = adm_cmds; cmd->words; cmd++) {
        const char *w = cmd->words;
        int n = 0;

        while (n < nwords) {
            size_t len = strcspn(w, " ");

            if (strlen(a->pos[n]) != len || strncmp(a->pos[n], w, len) ||
                !w[len])
                break;
            w += len + 1;
            n++;
        }
        if (n == nwords)
            return true;
    }
    return false;
}

/* The command named by the leading words; on failure prints why. */
static const struct adm_cmd *adm_find(struct adm_argv *a, int *used,
                                      int *status)
{
    const struct adm_cmd *best = NULL;
    int n, bestn = 0, g = 0;
    char group[64] = "";

    for (const struct adm_cmd *cmd = adm_cmds; cmd->words; cmd++)
        if ((n = adm_match(cmd, a->pos, a->npos)) > bestn) {
            best = cmd;
            bestn = n;
        }
    *used = bestn;
    if (best)
        return best;
    while (g < a->npos && g < ADM_WORDS_MAX && adm_is_group(a, g + 1))
        g++;
    for (int k = 0; k < g; k++)
        snprintf(group + strlen(group), sizeof(group) - strlen(group), "%s%s",
                 k ? " " : "", a->pos[k]);
    if (a->help && (g > 0 || a->npos == 0)) {
        adm_help(g ? group : NULL);
        *status = ADM_OK;
    } else if (a->npos == 0)
        *status = adm_usage("missing command (try --help)");
    else if (g == a->npos)
        *status =
            adm_usage("%s: missing command (try '%s --help')", group, group);
    else
        *status = adm_usage("unknown command '%s%s%s' (try --help)", group,
                            g ? " " : "", a->pos[g]);
    return NULL;
}

/* Checks the options and arguments given against the command. */
static int adm_check(struct adm_ctx *c, const struct adm_cmd *cmd,
                     const struct adm_argv *a, int used)
{
    unsigned extra = a->seen & ~cmd->opts;

    c->cmd = cmd->words;
    for (size_t k = 0; k < sizeof(adm_opts) / sizeof(adm_opts[0]); k++)
        if (extra & adm_opts[k].flag)
            return adm_usage("%s: option '%s' does not apply", cmd->words,
                             adm_opts[k].name);
    c->nargs = a->npos - used;
    if (c->nargs < cmd->min_args)
        return adm_usage("%s: missing argument (usage: %s%s%s)", cmd->words,
                         cmd->words, cmd->usage[0] ? " " : "", cmd->usage);
    if (c->nargs > cmd->max_args)
        return adm_usage("%s: too many arguments (usage: %s%s%s)", cmd->words,
                         cmd->words, cmd->usage[0] ? " " : "", cmd->usage);
    for (int k = 0; k < c->nargs; k++)
        c->args[k] = a->pos[used + k];
    return ADM_OK;
}

/* The store folder: --db, else $TLSGATE_DB, else the policy_dir default. */
static int adm_default_db(struct adm_ctx *c, struct tg_config *cfg)
{
    const char *env = getenv("TLSGATE_DB");
    char err[256];

    if (c->db && !c->db[0])
        return adm_usage("--db needs a folder");
    if (c->db)
        return ADM_OK;
    if (env && env[0]) {
        c->db = env;
        return ADM_OK;
    }
    cfg_defaults(cfg);
    if (cfg_finish(cfg, err, sizeof(err)) < 0)
        return adm_err("settings: %s", err);
    c->db = cfg->policy_dir;
    return ADM_OK;
}

int main(int argc, char **argv)
{
    static struct tg_config cfg;
    struct adm_ctx c = {0};
    struct adm_argv a = {0};
    const struct adm_cmd *cmd;
    int rc, used, status = ADM_USAGE;

    if ((rc = adm_split(&c, &a, argc, argv)) != ADM_OK)
        return rc;
    if (a.version && a.npos == 0) {
        printf("tlsgate-admin %s\n", TLSGATE_VERSION);
        return ADM_OK;
    }
    if ((cmd = adm_find(&a, &used, &status)) == NULL)
        return status;
    if (a.help) {
        adm_cmd_help(cmd);
        return ADM_OK;
    }
    if ((rc = adm_check(&c, cmd, &a, used)) != ADM_OK)
        return rc;
    if ((rc = adm_default_db(&c, &cfg)) != ADM_OK)
        return rc;
    rc = cmd->run(&c);
    if (fflush(stdout) != 0 || ferror(stdout))
        return adm_err("cannot write to stdout");
    return rc;
}
