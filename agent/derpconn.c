/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "curlevent.h"
#include "derpconn.h"
#include "macro.h"
#include "websocket.h"

#define WS_READ_CHUNK 16384u

enum derp_conn_state {
        ST_CONNECTING,    /* libcurl: TCP connect and TLS handshake */
        ST_HTTP,          /* request going out, response head coming in */
        ST_SERVER_KEY,
        ST_SERVER_INFO,
        ST_READY,
        ST_CLOSED,
};

struct derp_ping {
        uint8_t data[DERP_PING_LEN];
        uint64_t sent_usec;
        bool used;
};

struct derp_conn {
        sd_event *event;
        sd_event_source *io;
        sd_event_source *timer;
        CURL *curl;
        struct curl_event *connector;       /* drives the connect; keeps the connection */
        struct curl_slist *connect_to;      /* libcurl keeps this pointer */
        char curl_error[CURL_ERROR_SIZE];
        int fd;
        enum derp_conn_state state;
        uint8_t priv[DERP_KEY_LEN];
        uint8_t pub[DERP_KEY_LEN];
        uint8_t server_pub[DERP_KEY_LEN];
        uint32_t fwmark;
        uint64_t read_timeout_usec;
        uint64_t handshake_timeout_usec;

        char head[DERP_CONN_HTTP_HEAD_MAX];
        size_t head_len;

        struct derp_reader reader;

        bool websocket;
        char ws_key[WS_KEY_SIZE];
        struct ws_parser ws;
        uint8_t *ws_in;        /* raw bytes from the socket, before unframing */
        bool ws_close_sent;

        uint8_t *out;          /* pending bytes: out[out_pos .. out_len) */
        size_t out_pos, out_len, out_cap;

        struct derp_ping pings[DERP_CONN_PINGS_MAX];

        struct derp_conn_callbacks cb;
        void *userdata;
        bool in_dispatch;
        bool free_requested;
};

static void conn_teardown(struct derp_conn *c) {
        /* Our watch goes before libcurl closes the socket. */
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        curl_event_remove(c->connector, c->curl);
        c->connector = curl_event_free(c->connector);
        if (c->curl) {
                curl_easy_cleanup(c->curl);
                c->curl = NULL;
        }
        curl_slist_free_all(c->connect_to);
        c->connect_to = NULL;
        c->fd = -1;
}

static void derp_conn_destroy(struct derp_conn *c) {
        conn_teardown(c);
        derp_reader_done(&c->reader);
        free(c->ws_in);
        free(c->out);
        sodium_memzero(c->priv, sizeof(c->priv));
        sd_event_unref(c->event);
        free(c);
}

void derp_conn_free(struct derp_conn *c) {
        if (!c)
                return;
        if (c->in_dispatch) {          /* freed from inside a callback: finish on the way out */
                c->free_requested = true;
                conn_teardown(c);
                c->state = ST_CLOSED;
                return;
        }
        derp_conn_destroy(c);
}

/* The end of an event callback: a free asked for by one of our callbacks happens now. */
static void dispatch_end(struct derp_conn *c) {
        c->in_dispatch = false;
        if (c->free_requested)
                derp_conn_destroy(c);
}

/* Closes the connection and reports it. The caller must not touch the stream afterwards. */
static void conn_fail(struct derp_conn *c, int error, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void conn_fail(struct derp_conn *c, int error, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        if (c->state == ST_CLOSED)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        conn_teardown(c);
        c->state = ST_CLOSED;
        if (c->cb.closed)
                c->cb.closed(c, error < 0 ? error : -EPROTO, msg, c->userdata);
}

static int out_reserve(struct derp_conn *c, size_t n) {
        if (c->out_pos > 0 && c->out_pos == c->out_len)
                c->out_pos = c->out_len = 0;
        if (c->out_cap - c->out_len >= n)
                return 0;
        if (c->out_pos > 0) {
                memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
                c->out_len -= c->out_pos;
                c->out_pos = 0;
                if (c->out_cap - c->out_len >= n)
                        return 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap - c->out_len < n)
                cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
                return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
        return 0;
}

static int update_events(struct derp_conn *c) {
        if (!c->io)
                return 0;
        return sd_event_source_set_io_events(c->io,
                                             EPOLLIN | (c->out_len > c->out_pos ? EPOLLOUT : 0));
}

/*
 * Appends DERP stream bytes (@a then @b) to the output: as they are, or as one masked
 * WebSocket binary message.
 */
static int emit(struct derp_conn *c, const void *a, size_t alen, const void *b, size_t blen) {
        uint8_t mask[4];
        size_t hl = 0;
        int r;

        if (c->websocket)
                hl = ws_header_len(alen + blen);
        r = out_reserve(c, hl + alen + blen);
        if (r < 0)
                return r;
        uint8_t *p = c->out + c->out_len;
        if (c->websocket) {
                randombytes_buf(mask, sizeof(mask));
                ws_put_header(p, WS_OP_BINARY, true, alen + blen, mask);
        }
        if (alen)
                memcpy(p + hl, a, alen);
        if (blen)
                memcpy(p + hl + alen, b, blen);
        if (c->websocket)
                ws_mask(p + hl, alen + blen, mask, 0);
        c->out_len += hl + alen + blen;
        return update_events(c);
}

/* A WebSocket control frame (pong, close). */
static int emit_ws_control(struct derp_conn *c, uint8_t opcode, const void *p, size_t len) {
        size_t n;
        int r = out_reserve(c, WS_HEADER_MAX + WS_CONTROL_MAX);
        if (r < 0)
                return r;
        r = ws_write_frame(c->out + c->out_len, c->out_cap - c->out_len, opcode, p, len, &n);
        if (r < 0)
                return r;
        c->out_len += n;
        return update_events(c);
}

/* Writes as much as the socket takes. 0 or -errno (after which the caller fails). */
static int flush_out(struct derp_conn *c) {
        while (c->out_len > c->out_pos) {
                size_t n = 0;
                CURLcode r = curl_easy_send(c->curl, c->out + c->out_pos,
                                            c->out_len - c->out_pos, &n);
                if (r == CURLE_AGAIN)
                        break;
                if (r != CURLE_OK) {
                        conn_fail(c, -ECONNRESET, "send failed: %s", curl_easy_strerror(r));
                        return -ECONNRESET;
                }
                c->out_pos += n;
        }
        if (c->out_pos == c->out_len)
                c->out_pos = c->out_len = 0;
        return update_events(c);
}

static int queue_frame(struct derp_conn *c, uint8_t type, const void *payload, size_t len) {
        uint8_t hdr[DERP_HEADER_LEN];
        derp_put_header(hdr, type, (uint32_t) len);
        return emit(c, hdr, sizeof(hdr), payload, len);
}

/* Until ServerInfo the whole handshake has one deadline; then each frame gives more time. */
static int arm_deadline(struct derp_conn *c) {
        return sd_event_source_set_time(c->timer, monotonic_usec() + (c->state == ST_READY ?
                                                                      c->read_timeout_usec :
                                                                      c->handshake_timeout_usec));
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct derp_conn *c = userdata;
        (void) s;
        (void) usec;
        c->in_dispatch = true;
        if (c->state == ST_READY)
                conn_fail(c, -ETIMEDOUT, "no frame from the DERP server for %.1f s",
                          (double) c->read_timeout_usec / 1e6);
        else
                conn_fail(c, -ETIMEDOUT, "no DERP handshake within %.1f s of connecting%s",
                          (double) c->handshake_timeout_usec / 1e6,
                          c->state == ST_HTTP ? " (no HTTP response)" : "");
        dispatch_end(c);
        return 0;
}

static void handle_pong(struct derp_conn *c, const uint8_t data[DERP_PING_LEN]) {
        for (size_t i = 0; i < ELEMENTSOF(c->pings); i++) {
                struct derp_ping *p = &c->pings[i];
                if (p->used && memcmp(p->data, data, DERP_PING_LEN) == 0) {
                        uint64_t rtt = monotonic_usec() - p->sent_usec;
                        p->used = false;
                        if (c->cb.pong)
                                c->cb.pong(c, rtt, c->userdata);
                        return;
                }
        }
        /* An unsolicited pong is ignored. */
}

static const char *frame_name(uint8_t t) {
        switch (t) {
        case DERP_FRAME_SERVER_KEY: return "ServerKey";
        case DERP_FRAME_SERVER_INFO: return "ServerInfo";
        case DERP_FRAME_RECV_PACKET: return "RecvPacket";
        case DERP_FRAME_KEEP_ALIVE: return "KeepAlive";
        case DERP_FRAME_PEER_GONE: return "PeerGone";
        case DERP_FRAME_PING: return "Ping";
        case DERP_FRAME_PONG: return "Pong";
        case DERP_FRAME_HEALTH: return "Health";
        case DERP_FRAME_RESTARTING: return "Restarting";
        default: return "frame";
        }
}

/* One complete frame. 0, or -errno after conn_fail. */
static int handle_frame(struct derp_conn *c, uint8_t type, const uint8_t *p, size_t len) {
        int r;

        if (c->state == ST_SERVER_KEY) {
                if (type != DERP_FRAME_SERVER_KEY) {
                        conn_fail(c, -EPROTO, "expected ServerKey frame, got type 0x%02x", type);
                        return -EPROTO;
                }
                r = derp_parse_server_key(p, len, c->server_pub);
                if (r == -EPROTO) {
                        conn_fail(c, r, "ServerKey frame has bad magic (not a DERP server)");
                        return r;
                }
                if (r < 0) {
                        conn_fail(c, r, "bad ServerKey frame (%zu bytes): %s", len, strerror(-r));
                        return r;
                }
                uint8_t buf[DERP_CLIENT_INFO_FRAME_LEN];
                size_t n;
                r = derp_write_client_info(buf, sizeof(buf), c->priv, c->server_pub, NULL, &n);
                if (r < 0) {
                        conn_fail(c, r, "cannot build ClientInfo: %s", strerror(-r));
                        return r;
                }
                r = emit(c, buf, n, NULL, 0);
                if (r < 0) {
                        conn_fail(c, r, "out of memory");
                        return r;
                }
                c->state = ST_SERVER_INFO;
                return flush_out(c);
        }

        if (c->state == ST_SERVER_INFO) {
                struct derp_server_info info;
                if (type == DERP_FRAME_KEEP_ALIVE)
                        return 0;
                if (type != DERP_FRAME_SERVER_INFO) {
                        conn_fail(c, -EPROTO, "expected ServerInfo frame, got type 0x%02x", type);
                        return -EPROTO;
                }
                r = derp_open_server_info(p, len, c->priv, c->server_pub, &info);
                if (r < 0) {
                        conn_fail(c, r, "bad ServerInfo frame (box does not open or bad JSON)");
                        return r;
                }
                c->state = ST_READY;
                if ((r = arm_deadline(c)) < 0) {
                        conn_fail(c, r, "cannot arm the read deadline: %s", strerror(-r));
                        return r;
                }
                if (c->cb.ready)
                        c->cb.ready(c, &info, c->userdata);
                return 0;
        }

        switch (type) {
        case DERP_FRAME_RECV_PACKET: {
                const uint8_t *src, *data;
                size_t dlen;
                r = derp_parse_recv_packet(p, len, &src, &data, &dlen);
                if (r == -EMSGSIZE) {
                        conn_fail(c, r, "oversize RecvPacket frame (%zu bytes, packet limit %u)",
                                  len, DERP_MAX_PACKET_SIZE);
                        return r;
                }
                if (r < 0) {
                        conn_fail(c, r, "bad RecvPacket frame (%zu bytes)", len);
                        return r;
                }
                if (c->cb.recv)
                        c->cb.recv(c, src, data, dlen, c->userdata);
                return 0;
        }
        case DERP_FRAME_PEER_GONE: {
                const uint8_t *key;
                uint8_t reason;
                r = derp_parse_peer_gone(p, len, &key, &reason);
                if (r < 0) {
                        conn_fail(c, r, "bad PeerGone frame (%zu bytes)", len);
                        return r;
                }
                if (c->cb.peer_gone)
                        c->cb.peer_gone(c, key, reason, c->userdata);
                return 0;
        }
        case DERP_FRAME_KEEP_ALIVE:
                if (c->cb.keepalive)
                        c->cb.keepalive(c, c->userdata);
                return 0;
        case DERP_FRAME_PING: {
                uint8_t data[DERP_PING_LEN];
                r = derp_parse_ping(p, len, data);
                if (r < 0) {
                        conn_fail(c, r, "bad Ping frame (%zu bytes)", len);
                        return r;
                }
                r = queue_frame(c, DERP_FRAME_PONG, data, sizeof(data));
                if (r < 0) {
                        conn_fail(c, r, "cannot queue Pong: %s", strerror(-r));
                        return r;
                }
                return 0;
        }
        case DERP_FRAME_PONG: {
                uint8_t data[DERP_PING_LEN];
                r = derp_parse_ping(p, len, data);
                if (r < 0) {
                        conn_fail(c, r, "bad Pong frame (%zu bytes)", len);
                        return r;
                }
                handle_pong(c, data);
                return 0;
        }
        case DERP_FRAME_HEALTH: {
                _cleanup_free_ char *text = NULL;
                r = derp_parse_health(p, len, &text);
                if (r < 0) {
                        conn_fail(c, r, "bad Health frame (%zu bytes)", len);
                        return r;
                }
                if (c->cb.health)
                        c->cb.health(c, text, c->userdata);
                return 0;
        }
        case DERP_FRAME_RESTARTING: {
                uint32_t a, b;
                r = derp_parse_restarting(p, len, &a, &b);
                if (r < 0) {
                        conn_fail(c, r, "bad Restarting frame (%zu bytes)", len);
                        return r;
                }
                if (c->cb.restarting)
                        c->cb.restarting(c, a, b, c->userdata);
                return 0;
        }
        case DERP_FRAME_SERVER_KEY:
        case DERP_FRAME_SERVER_INFO:
                conn_fail(c, -EPROTO, "unexpected %s frame after the handshake", frame_name(type));
                return -EPROTO;
        default:
                return 0;   /* unknown or mesh-only frames: skipped */
        }
}

/*
 * What the frame reader said (@r from derp_reader_feed/advance): a protocol
 * error closes the connection; a whole frame is handled. Returns 0 or -errno.
 */
static int on_reader_result(struct derp_conn *c, int r) {
        if (r == -EMSGSIZE) {
                conn_fail(c, r, "oversize DERP frame (type 0x%02x, length %u, limit %u)",
                          c->reader.type, c->reader.len, (unsigned) DERP_FRAME_MAX);
                return r;
        }
        if (r < 0) {
                conn_fail(c, r, "frame reader: %s", strerror(-r));
                return r;
        }
        if (r == 0)
                return 0;

        const uint8_t *p;
        size_t len;
        uint8_t type = derp_reader_frame(&c->reader, &p, &len);
        r = c->state == ST_READY ? arm_deadline(c) : 0;
        if (r >= 0)
                r = handle_frame(c, type, p, len);
        if (c->state != ST_CLOSED)
                derp_reader_reset(&c->reader);
        if (r < 0 && c->state != ST_CLOSED)
                conn_fail(c, r, "%s", strerror(-r));
        return r < 0 ? r : 0;
}

/* Runs bytes through the frame reader. */
static int feed_stream(struct derp_conn *c, const uint8_t *data, size_t n) {
        while (n > 0 && c->state != ST_CLOSED && !c->free_requested) {
                int r = on_reader_result(c, derp_reader_feed(&c->reader, &data, &n));
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * Queues a close frame and tries once to get the output out, ignoring failures: the
 * connection is ending anyway, and its error (not a send error) is what gets reported.
 */
static void ws_send_close(struct derp_conn *c, uint16_t code, bool with_code) {
        uint8_t p[2] = { (uint8_t) (code >> 8), (uint8_t) code };
        size_t n = 0;

        if (c->ws_close_sent)
                return;
        c->ws_close_sent = true;
        if (emit_ws_control(c, WS_OP_CLOSE, p, with_code ? 2 : 0) < 0)
                return;
        (void) curl_easy_send(c->curl, c->out + c->out_pos, c->out_len - c->out_pos, &n);
}

/* Unframes WebSocket bytes from the server; the DERP stream goes to feed_stream. */
static int feed_ws(struct derp_conn *c, const uint8_t *data, size_t n) {
        struct ws_event_data ev;
        int r;

        while (c->state != ST_CLOSED && !c->free_requested) {
                r = ws_parse(&c->ws, &data, &n, &ev);
                switch (r) {
                case WS_EV_NONE:
                        return 0;
                case WS_EV_DATA:
                        if (ev.opcode != WS_OP_BINARY) {
                                ws_send_close(c, WS_CLOSE_UNSUPPORTED_DATA, true);
                                conn_fail(c, -EPROTO, "text WebSocket message on the DERP stream");
                                return -EPROTO;
                        }
                        r = feed_stream(c, ev.data, ev.len);
                        if (r < 0)
                                return r;
                        break;
                case WS_EV_MESSAGE_END:
                case WS_EV_PONG:
                        break;
                case WS_EV_PING:
                        r = emit_ws_control(c, WS_OP_PONG, ev.data, ev.len);
                        if (r < 0) {
                                conn_fail(c, r, "cannot queue WebSocket pong: %s", strerror(-r));
                                return r;
                        }
                        break;
                case WS_EV_CLOSE:
                        /* Echo the code, as §5.5.1 asks, then give up on the stream. */
                        ws_send_close(c, ev.close_code, ev.close_code != 0);
                        conn_fail(c, -ECONNRESET, "WebSocket closed by the DERP server (code %u)%s",
                                  ev.close_code, c->state == ST_READY ? "" : " during the handshake");
                        return -ECONNRESET;
                default:
                        /* Tell the server why: it broke the protocol. */
                        ws_send_close(c, r == -EMSGSIZE ? WS_CLOSE_TOO_BIG : WS_CLOSE_PROTOCOL_ERROR,
                                      true);
                        if (r == -EMSGSIZE)
                                conn_fail(c, r, "%s (limit %u bytes)", c->ws.error,
                                          (unsigned) DERP_CONN_WS_FRAME_MAX);
                        else
                                conn_fail(c, r, "%s", c->ws.error ? c->ws.error : strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* Bytes of the upgraded stream, in whichever framing it has. */
static int feed_upgraded(struct derp_conn *c, const uint8_t *data, size_t n) {
        return c->websocket ? feed_ws(c, data, n) : feed_stream(c, data, n);
}

/* The HTTP response head is in c->head[0..end); bytes after it belong to the DERP stream. */
static int finish_http(struct derp_conn *c, size_t end) {
        char line[256];
        size_t ll = strcspn(c->head, "\r\n");
        if (ll >= sizeof(line))
                ll = sizeof(line) - 1;
        memcpy(line, c->head, ll);
        line[ll] = 0;
        for (size_t i = 0; i < ll; i++)
                if ((unsigned char) line[i] < 0x20 || (unsigned char) line[i] > 0x7e)
                        line[i] = '?';

        int code = 0;
        if (sscanf(line, "HTTP/1.%*1[01] %3d", &code) != 1 || code != 101) {
                /* Servers that only speak WebSocket answer 4xx (426) to Upgrade: DERP. */
                if (!c->websocket && code >= 400 && code < 500) {
                        conn_fail(c, -EPROTONOSUPPORT,
                                  "DERP upgrade refused: %s (try the WebSocket variant)", line);
                        return -EPROTONOSUPPORT;
                }
                conn_fail(c, -ECONNREFUSED, "%s upgrade refused: %s",
                          c->websocket ? "WebSocket" : "DERP", line);
                return -ECONNREFUSED;
        }
        if (c->websocket) {
                char err[128];
                int r = ws_check_response(c->head, end, c->ws_key, "derp", err, sizeof(err));
                if (r < 0) {
                        conn_fail(c, r, "%s", err);
                        return r;
                }
        }
        c->state = ST_SERVER_KEY;
        return feed_upgraded(c, (const uint8_t *) c->head + end, c->head_len - end);
}

static int read_some(struct derp_conn *c) {
        for (int rounds = 0; rounds < 64 && c->state != ST_CLOSED && !c->free_requested;
             rounds++) {
                uint8_t *buf;
                size_t room, n = 0;
                CURLcode cr;

                if (c->state == ST_HTTP) {
                        room = sizeof(c->head) - 1 - c->head_len;
                        if (room == 0) {
                                conn_fail(c, -EBADMSG, "HTTP response head over %u bytes",
                                          DERP_CONN_HTTP_HEAD_MAX);
                                return -EBADMSG;
                        }
                        buf = (uint8_t *) c->head + c->head_len;
                } else if (c->websocket) {
                        buf = c->ws_in;
                        room = WS_READ_CHUNK;
                } else {
                        int r = derp_reader_space(&c->reader, &buf, &room);
                        if (r < 0) {
                                conn_fail(c, r, "out of memory");
                                return r;
                        }
                }
                cr = curl_easy_recv(c->curl, buf, room, &n);
                if (cr == CURLE_AGAIN)
                        return 0;
                if (cr != CURLE_OK) {
                        conn_fail(c, -ECONNRESET, "receive failed: %s", curl_easy_strerror(cr));
                        return -ECONNRESET;
                }
                if (n == 0) {
                        conn_fail(c, -ECONNRESET, "connection closed by the DERP server%s",
                                  c->state == ST_HTTP ? " before the HTTP response" :
                                  c->state != ST_READY ? " during the handshake" : "");
                        return -ECONNRESET;
                }
                if (c->state == ST_HTTP) {
                        size_t old = c->head_len;
                        c->head_len += n;
                        c->head[c->head_len] = 0;
                        size_t from = old >= 3 ? old - 3 : 0;
                        char *e = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
                        size_t head_end = e ? (size_t) (e - c->head) : c->head_len;
                        if (memchr(c->head, 0, head_end)) {
                                conn_fail(c, -EBADMSG, "NUL byte in HTTP response head");
                                return -EBADMSG;
                        }
                        if (e) {
                                int r = finish_http(c, head_end + 4);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                int r = c->websocket ? feed_ws(c, buf, n) :
                                       on_reader_result(c, derp_reader_advance(&c->reader, n));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct derp_conn *c = userdata;
        (void) s;
        (void) fd;

        c->in_dispatch = true;
        if ((revents & EPOLLOUT) && c->state != ST_CLOSED)
                (void) flush_out(c);
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != ST_CLOSED &&
            !c->free_requested)
                (void) read_some(c);
        if (c->state != ST_CLOSED && !c->free_requested && c->out_len > c->out_pos)
                (void) flush_out(c);
        dispatch_end(c);
        return 0;
}

static int on_sockopt(void *userdata, curl_socket_t fd, curlsocktype purpose) {
        struct derp_conn *c = userdata;
        if (purpose != CURLSOCKTYPE_IPCXN || c->fwmark == 0)
                return CURL_SOCKOPT_OK;
        if (setsockopt(fd, SOL_SOCKET, SO_MARK, &c->fwmark, sizeof(c->fwmark)) < 0)
                return CURL_SOCKOPT_ERROR;
        return CURL_SOCKOPT_OK;
}

static void set_err(char *buf, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_err(char *buf, size_t len, const char *fmt, ...) {
        va_list ap;
        if (!buf || len == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
}

/* Builds "GET <path> HTTP/1.1 ..." from the URL into c->out. */
static int build_request(struct derp_conn *c, const char *url, char *errbuf, size_t errlen) {
        CURLU *u = curl_url();
        char *host = NULL, *port = NULL, *path = NULL, *scheme = NULL;
        int r = -EINVAL;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
                set_err(errbuf, errlen, "bad DERP URL");
                goto out;
        }
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
                set_err(errbuf, errlen, "DERP URL scheme must be http or https, not %s", scheme);
                goto out;
        }
        (void) curl_url_get(u, CURLUPART_PORT, &port, 0);   /* only when explicit */
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || !path ||
            strcmp(path, "/") == 0 || !*path) {
                curl_free(path);
                path = NULL;
        }
        char req[2048], ws[256] = "";
        if (c->websocket) {
                ws_make_key(c->ws_key);
                snprintf(ws, sizeof(ws),
                         "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Protocol: derp\r\n", c->ws_key);
        }
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nUpgrade: %s\r\n"
                         "Connection: Upgrade\r\n%sUser-Agent: codervpnd\r\n\r\n",
                         path ? path : "/derp", host, port ? ":" : "", port ? port : "",
                         c->websocket ? "websocket" : "DERP", ws);
        if (n < 0 || (size_t) n >= sizeof(req)) {
                set_err(errbuf, errlen, "DERP URL too long");
                goto out;
        }
        r = out_reserve(c, (size_t) n);
        if (r < 0)
                goto out;
        memcpy(c->out + c->out_len, req, (size_t) n);
        c->out_len += (size_t) n;
        r = 0;
out:
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_free(path);
        curl_url_cleanup(u);
        return r;
}

/*
 * What libcurl connects to: the URL, with its host replaced by @cert_name when that is
 * set (libcurl takes SNI and the name to verify from the URL), and a CONNECT_TO entry
 * sending the TCP connection to @connect_host (or to the URL's own host when only the
 * name changed).
 */
static int curl_target(const struct derp_conn_config *config, char **ret_url,
                       struct curl_slist **ret_connect_to) {
        CURLU *u = curl_url();
        char *host = NULL, *url = NULL;
        const char *target = config->connect_host;
        int r = -EINVAL;

        *ret_connect_to = NULL;
        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, config->url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                goto out;
        if (config->cert_name && *config->cert_name) {
                if (!target)
                        target = host;
                if (curl_url_set(u, CURLUPART_HOST, config->cert_name, 0) != CURLUE_OK)
                        goto out;
        }
        if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
                goto out;
        if (target && *target) {
                char entry[512];
                bool v6 = strchr(target, ':') && target[0] != '[';
                int n = snprintf(entry, sizeof(entry), "::%s%s%s:", v6 ? "[" : "", target,
                                 v6 ? "]" : "");
                if (n < 0 || (size_t) n >= sizeof(entry))
                        goto out;
                *ret_connect_to = curl_slist_append(NULL, entry);
                if (!*ret_connect_to) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        *ret_url = strdup(url);
        if (!*ret_url) {
                curl_slist_free_all(*ret_connect_to);
                *ret_connect_to = NULL;
                r = -ENOMEM;
                goto out;
        }
        r = 0;
out:
        curl_free(host);
        curl_free(url);
        curl_url_cleanup(u);
        return r;
}

/* The connect finished: the upgrade request goes out on the connection's socket. */
static void on_connected(CURL *easy, CURLcode result, void *userdata) {
        struct derp_conn *c = userdata;
        curl_socket_t sock = CURL_SOCKET_BAD;
        int r;
        (void) easy;

        c->in_dispatch = true;
        if (result != CURLE_OK) {
                /* The multi interface's message may name no cause; the socket's errno does. */
                long os_errno = 0;
                const char *what = c->curl_error[0] ? c->curl_error : curl_easy_strerror(result);
                const char *cause = "";
                if (result == CURLE_COULDNT_CONNECT &&
                    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0 &&
                    !strstr(what, strerror((int) os_errno)))
                        cause = strerror((int) os_errno);
                conn_fail(c, result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED,
                          "cannot connect to the DERP server: %s%s%s%s", what, *cause ? " (" : "", cause,
                          *cause ? ")" : "");
        } else if (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
                 sock == CURL_SOCKET_BAD)
                conn_fail(c, -ENOTCONN, "no socket from libcurl");
        else if ((r = sd_event_add_io(c->event, &c->io, sock, EPOLLIN | EPOLLOUT, on_io, c)) < 0 ||
                 (r = arm_deadline(c)) < 0)
                conn_fail(c, r, "cannot watch the DERP connection: %s", strerror(-r));
        else {
                c->fd = sock;
                c->state = ST_HTTP;
        }
        dispatch_end(c);
}

int derp_conn_new(sd_event *event, const struct derp_conn_config *config,
                  const struct derp_conn_callbacks *cb, void *userdata,
                  struct derp_conn **ret, char *errbuf, size_t errlen) {
        struct derp_conn *c;
        _cleanup_free_ char *curl_url_str = NULL;
        int r;

        if (!event || !config || !config->url || !ret)
                return -EINVAL;
        if (sodium_init() < 0) {
                set_err(errbuf, errlen, "libsodium init failed");
                return -EIO;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = -1;
        c->event = sd_event_ref(event);
        c->state = ST_CONNECTING;
        memcpy(c->priv, config->priv, DERP_KEY_LEN);
        c->fwmark = config->fwmark;
        c->read_timeout_usec = config->read_timeout_usec ? config->read_timeout_usec
                                                         : DERP_CONN_READ_TIMEOUT_USEC;
        c->handshake_timeout_usec = config->handshake_timeout_usec ? config->handshake_timeout_usec
                                                                   : DERP_CONN_HANDSHAKE_TIMEOUT_USEC;
        if (cb)
                c->cb = *cb;
        c->userdata = userdata;
        c->websocket = config->websocket;
        if (c->websocket) {
                ws_parser_init(&c->ws, DERP_CONN_WS_FRAME_MAX);
                c->ws_in = malloc(WS_READ_CHUNK);
                if (!c->ws_in) {
                        r = -ENOMEM;
                        goto fail;
                }
        }

        r = derp_key_public(c->priv, c->pub);
        if (r < 0) {
                set_err(errbuf, errlen, "unusable private key");
                goto fail;
        }
        r = build_request(c, config->url, errbuf, errlen);
        if (r < 0)
                goto fail;
        r = curl_target(config, &curl_url_str, &c->connect_to);
        if (r < 0) {
                set_err(errbuf, errlen, "bad DERP URL, certificate name or address");
                goto fail;
        }

        c->curl = curl_easy_init();
        if (!c->curl) {
                r = -ENOMEM;
                set_err(errbuf, errlen, "curl_easy_init failed");
                goto fail;
        }
        curl_easy_setopt(c->curl, CURLOPT_URL, curl_url_str);
        if (c->connect_to)
                curl_easy_setopt(c->curl, CURLOPT_CONNECT_TO, c->connect_to);
        if (config->ca_file)
                curl_easy_setopt(c->curl, CURLOPT_CAINFO, config->ca_file);
        if (config->insecure) {
                curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L);
        /* A proxy (libcurl's https_proxy, http_proxy, all_proxy, no_proxy) is always asked to
         * CONNECT, also for http:// URLs: the upgrade and the DERP stream need a byte stream
         * to the server, not a forwarded request. */
        curl_easy_setopt(c->curl, CURLOPT_HTTPPROXYTUNNEL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, DERP_CONN_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_error);
        curl_easy_setopt(c->curl, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
        curl_easy_setopt(c->curl, CURLOPT_SOCKOPTDATA, c);
        curl_easy_setopt(c->curl, CURLOPT_SSL_ENABLE_ALPN, 0L);   /* no h2: the upgrade needs 1.1 */
        curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);

        r = curl_event_new(event, on_connected, c, &c->connector);
        if (r < 0) {
                set_err(errbuf, errlen, "cannot start the connect: %s", strerror(-r));
                goto fail;
        }
        r = curl_event_add(c->connector, c->curl);
        if (r < 0) {
                set_err(errbuf, errlen, "libcurl refused the connect");
                goto fail;
        }
        r = sd_event_add_time(event, &c->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_deadline, c);
        if (r < 0) {
                set_err(errbuf, errlen, "sd_event_add_time: %s", strerror(-r));
                goto fail;
        }
        *ret = c;
        return 0;
fail:
        derp_conn_destroy(c);
        return r;
}

int derp_conn_send(struct derp_conn *c, const uint8_t dst[DERP_KEY_LEN], const void *pkt,
                   size_t len) {
        uint8_t hdr[DERP_HEADER_LEN + DERP_KEY_LEN];
        int r;

        if (!c || c->state != ST_READY)
                return -ENOTCONN;
        r = derp_send_packet_header(hdr, dst, len);
        if (r < 0)
                return r;
        if (c->out_len - c->out_pos + sizeof(hdr) + len > DERP_CONN_QUEUE_MAX)
                return -ENOBUFS;
        return emit(c, hdr, sizeof(hdr), pkt, len);
}

int derp_conn_ping(struct derp_conn *c) {
        if (!c || c->state != ST_READY)
                return -ENOTCONN;
        for (size_t i = 0; i < ELEMENTSOF(c->pings); i++) {
                struct derp_ping *p = &c->pings[i];
                if (p->used)
                        continue;
                randombytes_buf(p->data, sizeof(p->data));
                int r = queue_frame(c, DERP_FRAME_PING, p->data, sizeof(p->data));
                if (r < 0)
                        return r;
                p->sent_usec = monotonic_usec();
                p->used = true;
                return 0;
        }
        return -EBUSY;
}

bool derp_conn_is_ready(const struct derp_conn *c) {
        return c && c->state == ST_READY;
}

const uint8_t *derp_conn_public_key(const struct derp_conn *c) {
        return c->pub;
}
