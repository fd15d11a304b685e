/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the WebSocket client side (agent/websocket). The input is what a
 * server sends after the 101: it goes through ws_parse in chunks whose sizes come from
 * the input's first bytes, and again in one piece. The input is also checked as a 101
 * response head.
 *
 * Invariants (abort on violation): chunked and bulk parsing give the same data bytes,
 * the same events and the same final error; errors are only -EPROTO or -EMSGSIZE, each
 * with a message, and sticky; data and control payloads point inside the input or the
 * parser and respect the limits; every WS_EV_DATA is inside a message whose opcode is
 * TEXT or BINARY; nothing is parsed after a close.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "fuzz-check.h"
#include "websocket.h"

#define MAX_FRAME 70000u

struct trace {
        uint8_t data[1 << 16];    /* data bytes seen (the first 64 KiB) */
        size_t data_len;
        uint64_t data_total;
        uint32_t events_hash;
        unsigned events;
        int error;
};

/* Events but data pieces (whose cuts follow the chunking) go into a hash. */
static void trace_event(struct trace *t, int ev, const struct ws_event_data *d) {
        if (ev == WS_EV_DATA)
                return;
        t->events_hash = t->events_hash * 31 + (uint32_t) ev;
        t->events++;
        if (ev == WS_EV_CLOSE)
                t->events_hash = t->events_hash * 31 + d->close_code;
        if (ev == WS_EV_PING || ev == WS_EV_PONG || ev == WS_EV_CLOSE) {
                CHECK(d->len <= WS_CONTROL_MAX);
                for (size_t i = 0; i < d->len; i++)
                        t->events_hash = t->events_hash * 31 + d->data[i];
        }
}

/* Feeds @in in chunks (sizes from @sizes, cycling; 0 = all at once). */
static void run(const uint8_t *in, size_t n, const uint8_t *sizes, size_t n_sizes,
                struct trace *t) {
        struct ws_parser p;
        struct ws_event_data ev;
        size_t used = 0, si = 0;
        bool in_message = false, closed = false;

        memset(t, 0, sizeof(*t));
        ws_parser_init(&p, MAX_FRAME);
        while (used < n) {
                size_t k = n - used;
                if (n_sizes) {
                        size_t want = (size_t) sizes[si++ % n_sizes] + 1;
                        if (want < k)
                                k = want;
                }
                const uint8_t *d = in + used, *end = in + used + k;
                size_t left = k;
                used += k;
                for (;;) {
                        int r = ws_parse(&p, &d, &left, &ev);
                        CHECK(d + left == end);
                        if (r < 0) {
                                CHECK(r == -EPROTO || r == -EMSGSIZE);
                                CHECK(p.error != NULL);
                                t->error = r;
                                CHECK(ws_parse(&p, &d, &left, &ev) == r);
                                return;
                        }
                        if (r == WS_EV_NONE) {
                                CHECK(left == 0);
                                break;
                        }
                        CHECK(!closed);
                        trace_event(t, r, &ev);
                        switch (r) {
                        case WS_EV_DATA:
                                CHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
                                CHECK(ev.len > 0 && ev.len <= MAX_FRAME);
                                CHECK(ev.data >= in && ev.data + ev.len <= end);
                                in_message = true;
                                for (size_t i = 0; i < ev.len && t->data_len < sizeof(t->data); i++)
                                        t->data[t->data_len++] = ev.data[i];
                                t->data_total += ev.len;
                                break;
                        case WS_EV_MESSAGE_END:
                                CHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
                                in_message = false;
                                break;
                        case WS_EV_CLOSE:
                                closed = true;
                                CHECK(ev.close_code == 0 || (ev.close_code >= 1000 && ev.close_code < 5000));
                                break;
                        case WS_EV_PING:
                        case WS_EV_PONG:
                                break;
                        default:
                                CHECK(false);
                        }
                }
        }
        (void) in_message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct trace a, b;
        static bool inited;
        char err[128];

        if (!inited) {
                if (sodium_init() < 0)
                        abort();
                inited = true;
        }
        if (size < 1)
                return 0;
        size_t n_sizes = data[0] % 8;
        if (size < 1 + n_sizes)
                return 0;
        const uint8_t *sizes = data + 1, *in = data + 1 + n_sizes;
        size_t n = size - 1 - n_sizes;

        run(in, n, sizes, n_sizes, &a);
        run(in, n, NULL, 0, &b);
        CHECK(a.error == b.error);
        CHECK(a.data_total == b.data_total && a.data_len == b.data_len);
        CHECK(memcmp(a.data, b.data, a.data_len) == 0);
        CHECK(a.events == b.events && a.events_hash == b.events_hash);
        CHECK(a.data_total <= n);

        int r = ws_check_response((const char *) in, n, "dGhlIHNhbXBsZSBub25jZQ==", "derp", err,
                                  sizeof(err));
        CHECK(r == 0 || r == -EPROTO);
        return 0;
}
