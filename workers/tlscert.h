/*
 * The gateway's own certificate: generated at first start, loaded into
 * GnuTLS credentials, reloaded on SIGHUP.
 */
#ifndef TLSGATE_TLSCERT_H
#define TLSGATE_TLSCERT_H

#include <gnutls/gnutls.h>
#include <stddef.h>

#include "config.h"

/*
 * Makes sure cfg->tls_cert and cfg->tls_key hold a matching pair. When both
 * are missing it creates them: an ECDSA P-256 key (mode 0600) and a
 * self-signed X.509 certificate valid one year, subject CN = hostname, SAN
 * dNSName hostname and localhost, IP 127.0.0.1 and ::1. Each file is
 * written to a temporary name, synced and renamed into place; a missing
 * parent folder is created with mode 0700. Returns 0, or -1 with a message
 * in err when exactly one of the two exists, when they do not match or do
 * not parse, or on an I/O error.
 */
int tlsc_ensure_cert(const struct tg_config *cfg, char *err, size_t errlen);

/*
 * Loaded credentials, reference counted so that a reload (SIGHUP) never
 * pulls them from under a TLS session that still uses them: a session takes
 * a reference when it starts and drops it when it ends.
 */
struct tlsc_creds;

/*
 * Loads the PEM pair cfg->tls_cert / cfg->tls_key (the certificate file may
 * hold a chain) into new credentials with one reference, no OCSP. Returns 0
 * and *out, or -1 with err (unreadable, unparsable, key does not match).
 */
int tlsc_load(const struct tg_config *cfg, struct tlsc_creds **out, char *err,
              size_t errlen);

/*
 * Loads the pair again; on success drops the caller's reference on *current
 * and stores the new credentials there (sessions holding the old ones keep
 * them until they end). On failure *current is untouched and err says why:
 * the gateway goes on with the old certificate.
 */
int tlsc_reload(const struct tg_config *cfg, struct tlsc_creds **current,
                char *err, size_t errlen);

/* The GnuTLS credentials to pass to gnutls_credentials_set(). */
gnutls_certificate_credentials_t tlsc_x509(const struct tlsc_creds *c);

/* Takes one more reference; returns c. */
struct tlsc_creds *tlsc_ref(struct tlsc_creds *c);

/* Drops one reference; the last one frees the credentials. NULL is ok. */
void tlsc_unref(struct tlsc_creds *c);

#endif
