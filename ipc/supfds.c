#include "supfds.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* True when fd is open and a socket. */
static int is_socket(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Reads one "name=fd" word of TLSGATE_FDS; returns the fd or -1. */
static int parse_entry(const char *word, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    char num[16];
    char *end;
    long fd;

    if (len <= nlen || strncmp(word, name, nlen) != 0 || word[nlen] != '=')
        return -2; /* another name: not ours */
    if (len == nlen + 1 || len - nlen - 1 >= sizeof(num))
        return -1;
    memcpy(num, word + nlen + 1, len - nlen - 1);
    num[len - nlen - 1] = '\0';
    errno = 0;
    fd = strtol(num, &end, 10);
    if (errno || *end || end == num || fd < 3 || fd > 65535)
        return -1;
    return (int)fd;
}

int sup_inherited_fds(const char *name, int *fds, int max)
{
    const char *env = getenv(SUP_FDS_ENV), *p;
    int count = 0;

    if (env == NULL)
        return 0;
    for (p = env; *p;) {
        size_t len = strcspn(p, " ");
        int fd;

        if (len > 0) {
            fd = parse_entry(p, len, name);
            if (fd == -1 || (fd >= 0 && (!is_socket(fd) || count >= max)))
                return -1;
            if (fd >= 0) {
                fcntl(fd, F_SETFD, FD_CLOEXEC);
                fds[count++] = fd;
            }
        }
        p += len;
        p += strspn(p, " ");
    }
    return count;
}

/* Splits "host:port" / "[v6]:port" into its two parts. */
static int split_addr(const char *text, char *host, size_t hn, char *port,
                      size_t pn)
{
    const char *colon, *h = text;
    size_t hlen;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - text);
    }
    if (hlen == 0 || hlen >= hn || strlen(colon + 1) >= pn || colon[1] == '\0')
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* True for a decimal port number from 0 to 65535. */
static int valid_port(const char *port)
{
    size_t len = strspn(port, "0123456789");

    return len > 0 && len <= 5 && port[len] == '\0' && atol(port) <= 65535;
}

int sup_parse_addr(const char *text, void *ss, unsigned *len, char *err,
                   size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    char host[INET6_ADDRSTRLEN + 1], port[8];
    int rc;

    if (split_addr(text, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "%s: not HOST:PORT or [IPV6]:PORT", text);
        return -1;
    }
    if (!valid_port(port)) {
        snprintf(err, errlen, "%s: port is not a number from 0 to 65535", text);
        return -1;
    }
    if (strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: not a numeric IPv4 or [IPv6] address (%s)",
                 text, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Opens one listening socket on a parsed address; -1 with err. */
static int listen_one(const char *text, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned len;
    int fd, one = 1;

    if (sup_parse_addr(text, &ss, &len, err, errlen) < 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "%s: %s", text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sup_listen_all(const char *list, int *fds, int max, char *err,
                   size_t errlen)
{
    char word[128];
    int count = 0;

    for (const char *p = list + strspn(list, " \t"); *p;) {
        size_t len = strcspn(p, " \t");

        if (len >= sizeof(word) || count >= max) {
            snprintf(err, errlen, "%.*s: too long or too many listeners",
                     (int)(len < 64 ? len : 64), p);
            goto fail;
        }
        memcpy(word, p, len);
        word[len] = '\0';
        fds[count] = listen_one(word, err, errlen);
        if (fds[count] < 0)
            goto fail;
        count++;
        p += len;
        p += strspn(p, " \t");
    }
    return count;

fail:
    while (count > 0)
        close(fds[--count]);
    return -1;
}

void sup_fd_name(int fd, char *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    const void *a;
    unsigned port;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(buf, n, "fd%d", fd);
        return;
    }
    if (ss.ss_family == AF_INET6) {
        a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        a = &((struct sockaddr_in *)&ss)->sin_addr;
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    inet_ntop(ss.ss_family, a, host, sizeof(host));
    snprintf(buf, n, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
             port);
}
