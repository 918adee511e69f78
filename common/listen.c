#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int listen_prepare(const char *who, const uv_loop_t *loop, const char **host, int port, char *err,
                   size_t errlen)
{
    if (!*host) {
        *host = "0.0.0.0";
    }
    if (!loop || port < 0 || port > 65535) {
        set_err(err, errlen, "%s: invalid arguments (port %d must be 0..65535)", who, port);
        return -1;
    }
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
    return 0;
}

int listen_open(const char *who, const char *host, int port, int *out_port, char *err, size_t errlen)
{
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        set_err(err, errlen, "%s: cannot resolve listen address %s: %s", who, host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot listen on %s:%d: %s", who, host, port, strerror(saved));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    *out_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

int listen_start(uv_loop_t *loop, uv_tcp_t *tcp, int fd, uv_connection_cb on_conn)
{
    /* AF_UNSPEC: no socket is created, so this cannot fail. */
    uv_tcp_init(loop, tcp);
    int rc = uv_tcp_open(tcp, fd);
    if (rc != 0) {
        close(fd); /* not adopted by the handle */
        return rc;
    }
    return uv_listen((uv_stream_t *)tcp, LISTEN_BACKLOG, on_conn);
}
