/* listen: the TCP listening socket the servers (http, grpc) open.
 *
 * Opened with plain sockets first, so that every failure (bad address, port
 * in use) is reported before any libuv handle exists, then adopted by a
 * uv_tcp_t.
 */
#ifndef HIVE_LISTEN_H
#define HIVE_LISTEN_H

#include <stddef.h>
#include <uv.h>

#define LISTEN_BACKLOG 128

/* What every server checks before it allocates anything: defaults a NULL
 * `*host` to "0.0.0.0", checks `loop` and `port` (0..65535), and ignores
 * SIGPIPE unless someone installed a handler (a peer that has gone must not
 * kill the process when we write). Returns 0, or -1 with a message in `err`
 * that starts with `who`. */
int listen_prepare(const char *who, const uv_loop_t *loop, const char **host, int port, char *err,
                   size_t errlen);

/* Resolves `host`, binds `port` (0 = any free port) and listens. Returns the
 * fd and sets *out_port to the port actually bound, or returns -1 with a
 * message in `err` that starts with `who` ("http: cannot listen on ..."). */
int listen_open(const char *who, const char *host, int port, int *out_port, char *err, size_t errlen);

/* Initialises `tcp` on `loop`, adopts `fd` and starts accepting with
 * `on_conn`. Returns 0 or a libuv error code. `tcp` is initialised in every
 * case (close it on failure); when adoption itself fails, `fd` is closed. */
int listen_start(uv_loop_t *loop, uv_tcp_t *tcp, int fd, uv_connection_cb on_conn);

#endif
