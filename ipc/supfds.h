/*
 * Listening sockets shared by the supervisor with its children.
 *
 * tlsgated binds every listener once, before it starts any child, and
 * passes them down at fixed descriptor numbers named in the environment
 * variable TLSGATE_FDS, e.g. "inbound=3 inbound=4 submission=5". A worker
 * that is restarted inherits the same sockets, so connections queued while
 * it was down are served by its successor.
 */
#ifndef TLSGATE_SUPFDS_H
#define TLSGATE_SUPFDS_H

#include <stddef.h>

/* The environment variable that carries the descriptors. */
#define SUP_FDS_ENV "TLSGATE_FDS"

/* Most listeners of one kind (addresses in inbound_listen, say). */
#define SUP_MAX_LISTENERS 32

/*
 * Fills fds (room for max) with the listening descriptors the supervisor
 * passed for name ("inbound" or "submission"). Returns how many (0 when the
 * program runs standalone, i.e. TLSGATE_FDS is unset or names none), or -1
 * when TLSGATE_FDS is malformed or names a descriptor that is not an open
 * socket. The descriptors are made close-on-exec and left in their blocking
 * mode as passed (non-blocking).
 */
int sup_inherited_fds(const char *name, int *fds, int max);

/*
 * Binds and listens on every address of list (space separated "HOST:PORT",
 * "[V6]:PORT", "*:PORT" for every IPv4 address): SO_REUSEADDR, IPV6_V6ONLY
 * on IPv6, non-blocking, close-on-exec, backlog SOMAXCONN. Fills fds (room
 * for max) and returns how many; an empty list gives 0. On any error closes
 * what it opened and returns -1 with a message naming the address in err
 * (e.g. "127.0.0.1:2525: Address already in use").
 */
int sup_listen_all(const char *list, int *fds, int max, char *err,
                   size_t errlen);

/*
 * Parses one "HOST:PORT" / "[V6]:PORT" address into ss (a struct
 * sockaddr_storage *, passed as void * to keep this header light) and *len.
 * Returns 0, or -1 with err.
 */
int sup_parse_addr(const char *text, void *ss, unsigned *len, char *err,
                   size_t errlen);

/* Writes "HOST:PORT" / "[V6]:PORT" for the local address of fd into buf. */
void sup_fd_name(int fd, char *buf, size_t n);

#endif
