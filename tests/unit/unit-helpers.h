/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Small helpers shared by the cmocka unit tests (header only; every function is
 * static inline so that a test which does not use one does not warn).
 *
 * Include after <cmocka.h>.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <protobuf-c/protobuf-c.h>
#include <systemd/sd-event.h>

/* Decodes @hex (pairs of hex digits, spaces ignored) into @out. Returns the byte count. */
static inline size_t hex_decode(const char *hex, uint8_t *out, size_t max) {
        size_t n = 0;
        int hi = -1;

        for (const char *p = hex; *p; p++) {
                int v = 0;
                if (*p == ' ')
                        continue;
                if (*p >= '0' && *p <= '9')
                        v = *p - '0';
                else if (*p >= 'a' && *p <= 'f')
                        v = *p - 'a' + 10;
                else if (*p >= 'A' && *p <= 'F')
                        v = *p - 'A' + 10;
                else
                        fail_msg("bad hex digit '%c' in %s", *p, hex);
                if (hi < 0) {
                        hi = v;
                        continue;
                }
                assert_true(n < max);
                out[n++] = (uint8_t) (hi << 4 | v);
                hi = -1;
        }
        assert_true(hi < 0);
        return n;
}

/* Lower-case hex of @n bytes into @out (at least 2n+1 bytes). */
static inline char *hex_encode(const uint8_t *b, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 15];
        }
        out[2 * n] = '\0';
        return out;
}

/* Packs @m and compares it, as hex, with @want_hex. */
static inline void assert_packs_to(const ProtobufCMessage *m, const char *want_hex) {
        uint8_t want[1024], got[1024];
        char want_s[2049], got_s[2049];
        size_t want_len = hex_decode(want_hex, want, sizeof(want));
        size_t len = protobuf_c_message_get_packed_size(m);

        assert_true(len <= sizeof(got));
        assert_int_equal(protobuf_c_message_pack(m, got), len);
        hex_encode(want, want_len, want_s);
        hex_encode(got, len, got_s);
        assert_string_equal(got_s, want_s);
}

static inline uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * Runs @e until @expr holds, for at most @max_usec. Evaluates to whether it held.
 * Each iteration waits at most 10 ms, so the loop is bounded in time.
 */
#define RUN_UNTIL_USEC(e, max_usec, expr) ({                                   \
        uint64_t deadline_ = now_usec() + (max_usec);                           \
        bool held_ = false;                                                     \
        for (;;) {                                                              \
                if (expr) {                                                     \
                        held_ = true;                                           \
                        break;                                                  \
                }                                                               \
                if (now_usec() >= deadline_)                                    \
                        break;                                                  \
                assert_true(sd_event_run((e), 10 * 1000) >= 0);                 \
        }                                                                       \
        held_;                                                                  \
})
#define RUN_UNTIL(e, expr) RUN_UNTIL_USEC(e, 3ULL * 1000 * 1000, expr)

/*
 * Dispatches whatever is ready until the loop has been idle for a few rounds
 * (bounded), so that "nothing happened" can be asserted afterwards.
 */
static inline void run_idle(sd_event *e) {
        unsigned idle = 0;
        for (unsigned i = 0; i < 2000 && idle < 5; i++) {
                int r = sd_event_run(e, 2 * 1000);
                assert_true(r >= 0);
                idle = r == 0 ? idle + 1 : 0;
        }
        assert_true(idle >= 5);
}

static inline void set_nonblocking(int fd) {
        int flags = fcntl(fd, F_GETFL);
        assert_true(flags >= 0);
        assert_true(fcntl(fd, F_SETFL, flags | O_NONBLOCK) >= 0);
}

/* Blocking write of all of @n bytes to a raw socket end. */
static inline void write_all(int fd, const void *data, size_t n) {
        const uint8_t *p = data;
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                assert_true(k > 0);
                p += k;
                n -= (size_t) k;
        }
}

/*
 * Reads exactly @n bytes from a non-blocking raw end, running @e while waiting.
 * Returns @n, or the number of bytes read before EOF, or -ETIMEDOUT.
 */
static inline ssize_t read_exact_loop(sd_event *e, int fd, void *buf, size_t n) {
        uint8_t *p = buf;
        size_t have = 0;
        uint64_t deadline = now_usec() + 3ULL * 1000 * 1000;

        while (have < n) {
                ssize_t k = read(fd, p + have, n - have);
                if (k == 0 || (k < 0 && errno == ECONNRESET))   /* closed with our bytes unread */
                        return (ssize_t) have;
                if (k > 0) {
                        have += (size_t) k;
                        continue;
                }
                assert_true(errno == EAGAIN || errno == EINTR);
                if (now_usec() >= deadline)
                        return -ETIMEDOUT;
                assert_true(sd_event_run(e, 10 * 1000) >= 0);
        }
        return (ssize_t) have;
}

/* Waits (running @e) until the raw end @fd reads EOF; fails on data or timeout. */
static inline void assert_raw_eof(sd_event *e, int fd) {
        uint8_t b;
        assert_int_equal(read_exact_loop(e, fd, &b, 1), 0);
}
