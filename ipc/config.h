/*
 * Settings: one table (name, type, default, meaning) read by every program,
 * by the docs generator and by tests. Sources, later ones winning: built-in
 * defaults, the config file ("key = value"), command-line flags.
 */
#ifndef TLSGATE_CONFIG_H
#define TLSGATE_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#define CFG_STR_MAX 512

struct tg_config {
    /* general */
    char state_dir[PATH_MAX];
    char hostname[256];
    char log_target[16]; /* "stderr" or "syslog" */
    char log_level[16];  /* debug, info, warn, error */

    /* engine */
    char engine_socket[PATH_MAX];
    char policy_dir[PATH_MAX];
    char events_dir[PATH_MAX];
    unsigned long engine_map_size;   /* bytes */
    unsigned long engine_timeout_ms; /* how long workers wait */
    unsigned long events_retention;  /* seconds */

    /* TLS, both directions */
    char tls_dir[PATH_MAX];
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char tls_priority[CFG_STR_MAX];
    char tls_ca_file[PATH_MAX]; /* empty: the system trust store */
    int tls_tickets;

    /* inbound receivers */
    char inbound_listen[CFG_STR_MAX];
    unsigned long inbound_workers; /* 0: one per core */
    char mail_dir[PATH_MAX];
    unsigned long max_message_size; /* bytes */
    unsigned long max_recipients;
    unsigned long max_line_length; /* bytes, CRLF included */
    unsigned long max_connections;
    unsigned long max_connections_per_ip;
    unsigned long max_errors;
    unsigned long command_timeout;   /* seconds */
    unsigned long data_timeout;      /* seconds */
    unsigned long handshake_timeout; /* seconds */
    unsigned long session_timeout;   /* seconds */
    unsigned long shutdown_grace;    /* seconds */

    /* submission and outbound senders */
    char submission_listen[CFG_STR_MAX];
    char queue_dir[PATH_MAX];
    unsigned long outbound_workers; /* 0: one per core */
    unsigned long queue_lifetime;   /* seconds */
    unsigned long retry_min;        /* seconds */
    unsigned long retry_max;        /* seconds */
    unsigned long connect_timeout;  /* seconds */
    unsigned long max_per_destination;
    unsigned long max_per_connection; /* messages sent on one connection */

    /* supervisor */
    unsigned long restart_delay_max; /* seconds */
    unsigned long restart_stable;    /* seconds */
};

enum cfg_type {
    CFG_STR,      /* free text */
    CFG_PATH,     /* a path; a relative default is under state_dir */
    CFG_UINT,     /* a whole number */
    CFG_SIZE,     /* bytes; k, m, g suffixes */
    CFG_DURATION, /* seconds; s, m, h, d suffixes */
    CFG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
};

struct cfg_key {
    const char *name;
    enum cfg_type type;
    size_t offset;
    size_t size;            /* for strings and paths */
    const char *def;        /* built-in default, as text */
    unsigned long min, max; /* for numbers */
    const char *meaning;
};

extern const struct cfg_key cfg_keys[];

/* Fills cfg with the built-in defaults. */
void cfg_defaults(struct tg_config *cfg);

/* Sets one key from text. Returns 0, or -1 with a message in err. */
int cfg_set(struct tg_config *cfg, const char *key, const char *value,
            char *err, size_t errlen);

/* Reads a "key = value" file (# comments). Returns 0, or -1 with err. */
int cfg_load_file(struct tg_config *cfg, const char *path, char *err,
                  size_t errlen);

/*
 * The one command-line parser every program shares: defaults, then
 * --config FILE, then --state-dir DIR and --KEY VALUE / --KEY=VALUE for every
 * key (dashes or underscores). Arguments it does not know are left in place:
 * on return *argc and argv hold only those (argv[0] kept). Then the paths
 * are resolved (cfg_finish). Returns 0, or -1 with a message in err.
 */
int cfg_from_args(struct tg_config *cfg, int *argc, char **argv, char *err,
                  size_t errlen);

/* Resolves relative paths against state_dir (made absolute) and fills the
 * host name when empty. Returns 0, or -1 with err. */
int cfg_finish(struct tg_config *cfg, char *err, size_t errlen);

/* The flags that reproduce cfg for a child process: appends "--key=value"
 * strings (malloc'd) to out (size n). Returns how many, or -1 if n is short. */
int cfg_to_args(const struct tg_config *cfg, char **out, int n);

/* Writes the table as Markdown (docs/config.md is this output). */
void cfg_print_markdown(FILE *out);

/* Number of worker processes for a "0 means one per core" setting. */
unsigned cfg_workers(unsigned long setting);

#endif
