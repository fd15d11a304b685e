/* SPDX-License-Identifier: MIT */
/* RFC 6455 client side (agent/websocket): SHA-1 vectors, the handshake, frames. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "websocket.h"
#include "unit-helpers.h"

static void assert_sha1(const void *data, size_t len, const char *want_hex) {
        uint8_t d[WS_SHA1_LEN];
        char hex[2 * WS_SHA1_LEN + 1];
        ws_sha1(data, len, d);
        hex_encode(d, sizeof(d), hex);
        assert_string_equal(hex, want_hex);
}

/* FIPS 180-2 appendix A, and the boundary lengths around the padding. */
static void test_sha1_vectors(void **state) {
        assert_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_sha1(m448, strlen(m448), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        static char million[1000000];
        memset(million, 'a', sizeof(million));
        assert_sha1(million, sizeof(million), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        char a64[64];
        memset(a64, 'a', sizeof(a64));
        assert_sha1(a64, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
        assert_sha1(a64, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
        assert_sha1(a64, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

/* RFC 6455 §1.3 (digest b37a4f2c...c4ea, GUID 258EAFA5-E914-47DA-95CA-C5AB0DC85B11). */
static void test_accept_vector(void **state) {
        char out[WS_ACCEPT_SIZE];
        assert_int_equal(ws_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
        assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_make_key(void **state) {
        char a[WS_KEY_SIZE], b[WS_KEY_SIZE];
        uint8_t raw[32];
        size_t n;
        ws_make_key(a);
        ws_make_key(b);
        assert_int_equal(strlen(a), 24);
        assert_string_not_equal(a, b);
        assert_int_equal(sodium_base642bin(raw, sizeof(raw), a, strlen(a), NULL, &n, NULL,
                                           sodium_base64_VARIANT_ORIGINAL), 0);
        assert_int_equal(n, 16);
}

static void test_check_response(void **state) {
        const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
        char err[128];
        const char *good = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                           "Connection: keep-alive, Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Sec-WebSocket-Protocol: derp\r\n";
        assert_int_equal(ws_check_response(good, strlen(good), key, "derp", err, sizeof(err)), 0);
        const char *no_proto = "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        assert_int_equal(ws_check_response(no_proto, strlen(no_proto), key, "derp", err,
                                           sizeof(err)), 0);
        const char *bad_accept = "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Accept: AAAALMBiTxaQ9kMeAwYxh6ovd+xo=\r\n";
        assert_int_equal(ws_check_response(bad_accept, strlen(bad_accept), key, "derp", err,
                                           sizeof(err)), -EPROTO);
        assert_non_null(strstr(err, "wrong Sec-WebSocket-Accept"));
        const char *no_accept = "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        assert_int_equal(ws_check_response(no_accept, strlen(no_accept), key, "derp", err,
                                           sizeof(err)), -EPROTO);
        const char *derp = "HTTP/1.1 101 x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n";
        assert_int_equal(ws_check_response(derp, strlen(derp), key, "derp", err, sizeof(err)),
                         -EPROTO);
        assert_non_null(strstr(err, "Upgrade: websocket"));
        const char *other = "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                            "Sec-WebSocket-Protocol: chat\r\n";
        assert_int_equal(ws_check_response(other, strlen(other), key, "derp", err, sizeof(err)),
                         -EPROTO);
}

/* RFC 6455 §5.7: the masked "Hello" (and the masked Pong) as a client writes them. */
static void test_rfc_masked_examples(void **state) {
        static const uint8_t want[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f,
                                        0x4d, 0x51, 0x58 };
        static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
        uint8_t out[32];
        size_t hl = ws_put_header(out, WS_OP_TEXT, true, 5, mask);
        assert_int_equal(hl, 6);
        assert_int_equal(ws_header_len(5), 6);
        memcpy(out + hl, "Hello", 5);
        ws_mask(out + hl, 5, mask, 0);
        assert_memory_equal(out, want, sizeof(want));
        hl = ws_put_header(out, WS_OP_PONG, true, 5, mask);
        memcpy(out + hl, "Hello", 5);
        ws_mask(out + hl, 5, mask, 0);
        assert_int_equal(out[0], 0x8a);
        assert_memory_equal(out + 1, want + 1, sizeof(want) - 1);
        /* Masking in pieces equals masking at once. */
        uint8_t a[9] = "abcdefghi", b[9] = "abcdefghi";
        ws_mask(a, 9, mask, 0);
        ws_mask(b, 3, mask, 0);
        ws_mask(b + 3, 6, mask, 3);
        assert_memory_equal(a, b, 9);
}

static void test_header_lengths(void **state) {
        static const uint8_t mask[4] = { 1, 2, 3, 4 };
        uint8_t out[WS_HEADER_MAX];
        assert_int_equal(ws_put_header(out, WS_OP_BINARY, true, 125, mask), 6);
        assert_int_equal(ws_put_header(out, WS_OP_BINARY, true, 256, mask), 8);
        assert_memory_equal(out, ((uint8_t[]) { 0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4 }), 8);
        assert_int_equal(ws_put_header(out, WS_OP_BINARY, true, 65536, mask), 14);
        assert_memory_equal(out, ((uint8_t[]) { 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 }),
                            14);
        assert_int_equal(ws_header_len(65535), 8);
        assert_int_equal(ws_header_len(65536), 14);
        assert_int_equal(ws_put_header(out, WS_OP_BINARY, false, 0, mask), 6);
        assert_int_equal(out[0], 0x02);
}

static void test_write_frame(void **state) {
        uint8_t out[300], payload[200];
        size_t n;
        memset(payload, 0x5a, sizeof(payload));
        assert_int_equal(ws_write_frame(out, sizeof(out), WS_OP_BINARY, payload, 200, &n), 0);
        assert_int_equal(n, 8 + 200);
        assert_int_equal(out[1], 0xfe);
        ws_mask(out + 8, 200, out + 4, 0);
        assert_memory_equal(out + 8, payload, 200);
        assert_int_equal(ws_write_frame(out, 100, WS_OP_BINARY, payload, 200, &n), -ENOBUFS);
        assert_int_equal(ws_write_frame(out, sizeof(out), WS_OP_PING, payload, 126, &n), -EINVAL);
}

/*
 * Everything @in yields, fed in pieces of @chunk bytes, as tokens in @log: "D<hex>" for
 * data (adjacent pieces joined, so every chunking gives the same log), "E<opcode>"
 * message end, "P<len>" ping, "O<len>" pong, "C<code>" close.
 */
static int parse_all(struct ws_parser *p, const uint8_t *in, size_t n, size_t chunk, char *log,
                     size_t loglen) {
        struct ws_event_data ev;
        size_t used = 0;
        bool last_data = false;
        log[0] = 0;
        do {
                size_t left = n - used < chunk ? n - used : chunk;
                const uint8_t *d = in + used;
                int r;
                used += left;
                while ((r = ws_parse(p, &d, &left, &ev)) != WS_EV_NONE) {
                        char tok[600];
                        if (r < 0)
                                return r;
                        if (r == WS_EV_DATA) {
                                char hex[520];
                                assert_true(ev.len <= 256);
                                hex_encode(ev.data, ev.len, hex);
                                if (last_data)
                                        log[strlen(log) - 1] = 0;   /* drop the space */
                                snprintf(tok, sizeof(tok), "%s%s ", last_data ? "" : "D", hex);
                        } else {
                                snprintf(tok, sizeof(tok), "%c%u ", "??EPOC"[r],
                                         r == WS_EV_MESSAGE_END ? ev.opcode :
                                         r == WS_EV_CLOSE ? ev.close_code : (unsigned) ev.len);
                        }
                        last_data = r == WS_EV_DATA;
                        strncat(log, tok, loglen - strlen(log) - 1);
                }
        } while (used < n);
        return 0;
}

/* RFC 6455 §5.7 unmasked examples, as a server sends them; byte by byte and in bulk. */
static void test_rfc_unmasked_examples(void **state) {
        static const uint8_t in[] = {
                0x81, 0x05, 'H', 'e', 'l', 'l', 'o',                 /* single text */
                0x01, 0x03, 'H', 'e', 'l', 0x89, 0x05, 'H', 'e', 'l', 'l', 'o', /* + ping between */
                0x80, 0x02, 'l', 'o',
                0x8a, 0x00,                                          /* empty pong */
        };
        for (size_t chunk = 1; chunk <= sizeof(in); chunk++) {
                struct ws_parser p;
                char log[512];
                ws_parser_init(&p, 1024);
                assert_int_equal(parse_all(&p, in, sizeof(in), chunk, log, sizeof(log)), 0);
                assert_string_equal(log, "D48656c6c6f E1 D48656c P5 D6c6f E1 O0 ");
        }
}

static void test_long_lengths(void **state) {
        static uint8_t in[10 + 65536 + 4 + 256];
        struct ws_parser p;
        struct ws_event_data ev;
        size_t n = 0;
        in[n++] = 0x82;
        in[n++] = 127;
        for (int i = 0; i < 8; i++)
                in[n++] = i == 5 ? 1 : 0;       /* 65536 */
        memset(in + n, 0xab, 65536);
        n += 65536;
        in[n++] = 0x82;
        in[n++] = 126;
        in[n++] = 1;
        in[n++] = 0;
        memset(in + n, 0xcd, 256);
        n += 256;
        ws_parser_init(&p, 65536);
        const uint8_t *d = in;
        size_t left = n, got = 0;
        int r, ends = 0;
        while ((r = ws_parse(&p, &d, &left, &ev)) != WS_EV_NONE) {
                assert_true(r > 0);
                if (r == WS_EV_DATA)
                        got += ev.len;
                if (r == WS_EV_MESSAGE_END)
                        ends++;
        }
        assert_int_equal(got, 65536 + 256);
        assert_int_equal(ends, 2);
        /* One byte over the limit. */
        ws_parser_init(&p, 65535);
        d = in;
        left = n;
        assert_int_equal(ws_parse(&p, &d, &left, &ev), -EMSGSIZE);
        assert_string_equal(p.error, "oversize WebSocket frame");
        assert_int_equal(ws_parse(&p, &d, &left, &ev), -EMSGSIZE);   /* sticky */
}

static void expect_bad(const uint8_t *in, size_t n, int err, const char *msg) {
        struct ws_parser p;
        char log[256];
        ws_parser_init(&p, 1 << 20);
        assert_int_equal(parse_all(&p, in, n, n, log, sizeof(log)), err);
        assert_string_equal(p.error, msg);
}

static void test_bad_frames(void **state) {
        expect_bad((uint8_t[]) { 0x81, 0x85, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e' }, 11, -EPROTO,
                   "masked WebSocket frame from the server");
        expect_bad((uint8_t[]) { 0xc2, 0x00 }, 2, -EPROTO, "WebSocket RSV bits set");
        expect_bad((uint8_t[]) { 0x83, 0x00 }, 2, -EPROTO, "unknown WebSocket data opcode");
        expect_bad((uint8_t[]) { 0x8b, 0x00 }, 2, -EPROTO, "unknown WebSocket control opcode");
        expect_bad((uint8_t[]) { 0x80, 0x01, 'x' }, 3, -EPROTO,
                   "WebSocket continuation frame without a message");
        expect_bad((uint8_t[]) { 0x02, 0x01, 'x', 0x82, 0x01, 'y' }, 6, -EPROTO,
                   "new WebSocket message inside a fragmented one");
        expect_bad((uint8_t[]) { 0x09, 0x00 }, 2, -EPROTO, "fragmented WebSocket control frame");
        expect_bad((uint8_t[]) { 0x89, 0x7e, 0x00, 0x7e }, 4, -EPROTO,
                   "WebSocket control frame over 125 bytes");
        expect_bad((uint8_t[]) { 0x82, 0x7e, 0x00, 0x10 }, 4, -EPROTO,
                   "non-minimal WebSocket frame length");
        expect_bad((uint8_t[]) { 0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff }, 10, -EPROTO,
                   "non-minimal WebSocket frame length");
        expect_bad((uint8_t[]) { 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 10, -EPROTO,
                   "WebSocket frame length has the top bit set");
        expect_bad((uint8_t[]) { 0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0 }, 10, -EMSGSIZE,
                   "oversize WebSocket frame");
        expect_bad((uint8_t[]) { 0x88, 0x01, 0x03 }, 3, -EPROTO, "WebSocket close frame of 1 byte");
        expect_bad((uint8_t[]) { 0x88, 0x02, 0x03, 0xed }, 4, -EPROTO,
                   "invalid WebSocket close code");   /* 1005 is never sent */
        expect_bad((uint8_t[]) { 0x88, 0x00, 0x82, 0x00 }, 4, -EPROTO,
                   "WebSocket data after the close frame");
}

static void test_close(void **state) {
        static const uint8_t in[] = { 0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e' };
        struct ws_parser p;
        struct ws_event_data ev;
        const uint8_t *d = in;
        size_t n = sizeof(in);
        ws_parser_init(&p, 100);
        assert_int_equal(ws_parse(&p, &d, &n, &ev), WS_EV_CLOSE);
        assert_int_equal(ev.close_code, 1000);
        assert_int_equal(ev.len, 3);
        assert_memory_equal(ev.data, "bye", 3);
}

/* Empty fragments and a zero-length message. */
static void test_empty_frames(void **state) {
        static const uint8_t in[] = { 0x02, 0x00, 0x00, 0x01, 'a', 0x00, 0x00, 0x80, 0x00,
                                      0x82, 0x00 };
        struct ws_parser p;
        char log[256];
        ws_parser_init(&p, 100);
        assert_int_equal(parse_all(&p, in, sizeof(in), sizeof(in), log, sizeof(log)), 0);
        assert_string_equal(log, "D61 E2 E2 ");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha1_vectors),
                cmocka_unit_test(test_accept_vector),
                cmocka_unit_test(test_make_key),
                cmocka_unit_test(test_check_response),
                cmocka_unit_test(test_rfc_masked_examples),
                cmocka_unit_test(test_header_lengths),
                cmocka_unit_test(test_write_frame),
                cmocka_unit_test(test_rfc_unmasked_examples),
                cmocka_unit_test(test_long_lengths),
                cmocka_unit_test(test_bad_frames),
                cmocka_unit_test(test_close),
                cmocka_unit_test(test_empty_frames),
        };
        if (sodium_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
