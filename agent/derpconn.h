/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * DERP client connection (spec derp.md §1-3) on sd-event: HTTP/1.1 `Upgrade: DERP` over
 * a libcurl CONNECT_ONLY handle (TLS if the URL is https), then the DERP handshake
 * (ServerKey, ClientInfo, ServerInfo) and the frame stream.
 *
 * With `websocket`, the upgrade is `Upgrade: websocket` with `Sec-WebSocket-Protocol:
 * derp` (agent/websocket) and the DERP stream travels in binary messages: every DERP
 * frame we send is one masked message; what the server sends is reassembled whatever
 * its message boundaries. Server pings are answered, a close frame ends the connection.
 *
 * A 4xx answer to `Upgrade: DERP` ends the connection with -EPROTONOSUPPORT, so that the
 * caller can retry with `websocket` (Coder's servers may only speak that).
 *
 * One event loop, no threads, nothing blocks it: libcurl resolves the name, connects and
 * does the TLS handshake in its multi interface driven by the loop (agent/curlevent), for
 * at most the connect timeout (10 s); the upgrade and the DERP stream follow on the same
 * connection with curl_easy_send/recv.
 *
 * Callbacks run from the event loop. Only `closed` may free the connection
 * (derp_conn_free); after `closed` the connection does nothing more. Keys are never logged
 * and never appear in error messages.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "derp.h"

#define DERP_CONN_READ_TIMEOUT_USEC (120ULL * 1000000ULL)
/* From the connect to ServerInfo: the upgrade answer and the handshake frames. */
#define DERP_CONN_HANDSHAKE_TIMEOUT_USEC (10ULL * 1000000ULL)
#define DERP_CONN_CONNECT_TIMEOUT_MS 10000L
#define DERP_CONN_HTTP_HEAD_MAX 8192u
/* Bytes of SendPacket frames that may wait for the socket; derp_conn_send beyond: -ENOBUFS. */
#define DERP_CONN_QUEUE_MAX (32u * (DERP_MAX_PACKET_SIZE + DERP_HEADER_LEN + DERP_KEY_LEN))
#define DERP_CONN_PINGS_MAX 16
/* Largest WebSocket frame accepted: a whole DERP frame, and slack for servers that
 * coalesce writes (the DERP stream has no need of more). */
#define DERP_CONN_WS_FRAME_MAX (DERP_HEADER_LEN + DERP_FRAME_MAX + 16384u)

struct derp_conn;

struct derp_conn_config {
        const char *url;                     /* http://host[:port][/path]; path default /derp */
        uint8_t priv[DERP_KEY_LEN];          /* client (node) private key */
        uint32_t fwmark;                     /* SO_MARK on the socket; 0 = none */
        uint64_t read_timeout_usec;          /* 0 = DERP_CONN_READ_TIMEOUT_USEC */
        uint64_t handshake_timeout_usec;     /* 0 = DERP_CONN_HANDSHAKE_TIMEOUT_USEC */
        bool websocket;                      /* the WebSocket variant */
        const char *ca_file;                 /* https: CA bundle; NULL = libcurl's default */
        bool insecure;                       /* https: no certificate check (InsecureForTests) */
        const char *cert_name;               /* https: SNI and expected name; NULL = URL host */
        const char *connect_host;            /* address to connect to; NULL = the URL host's */
};

struct derp_conn_callbacks {
        void (*ready)(struct derp_conn *c, const struct derp_server_info *info, void *userdata);
        void (*recv)(struct derp_conn *c, const uint8_t src[DERP_KEY_LEN], const uint8_t *pkt,
                     size_t len, void *userdata);
        void (*peer_gone)(struct derp_conn *c, const uint8_t key[DERP_KEY_LEN], uint8_t reason,
                          void *userdata);
        /* @text NULL = health cleared. */
        void (*health)(struct derp_conn *c, const char *text, void *userdata);
        void (*restarting)(struct derp_conn *c, uint32_t reconnect_in_ms, uint32_t try_for_ms,
                           void *userdata);
        void (*pong)(struct derp_conn *c, uint64_t rtt_usec, void *userdata);
        void (*keepalive)(struct derp_conn *c, void *userdata);
        /* @error is -errno; @message is human-readable, never contains a key. */
        void (*closed)(struct derp_conn *c, int error, const char *message, void *userdata);
};

/*
 * Starts connecting on @event and returns at once. What cannot even be tried (a bad URL,
 * no memory) fails here: -errno, no callback, a description in @errbuf (of @errlen bytes)
 * when it is non-NULL. A connect that fails later ends in `closed`, like any other end.
 */
int derp_conn_new(sd_event *event, const struct derp_conn_config *config,
                  const struct derp_conn_callbacks *cb, void *userdata,
                  struct derp_conn **ret, char *errbuf, size_t errlen);

/* Queues a SendPacket. -ENOTCONN before ready or after close, -EMSGSIZE over 64 KiB,
 * -ENOBUFS when the queue is full. */
int derp_conn_send(struct derp_conn *c, const uint8_t dst[DERP_KEY_LEN], const void *pkt,
                   size_t len);

/* Sends a Ping; the `pong` callback gets the RTT. -ENOTCONN / -EBUSY (too many pending). */
int derp_conn_ping(struct derp_conn *c);

bool derp_conn_is_ready(const struct derp_conn *c);
const uint8_t *derp_conn_public_key(const struct derp_conn *c);

void derp_conn_free(struct derp_conn *c);
