/* SPDX-License-Identifier: MIT */
/* DERP wire layer (agent/derp): the spec's vectors (derp.md §2-§3 "Vectors") and the reader. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "derp.h"
#include "unit-helpers.h"

#define CLIENT_PRIV "40ab1b58e9076c7a4d9d07291f5edf9d1aa017eb949624ba683317f48a640369"
#define CLIENT_PUB "50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765"
#define SERVER_PUB "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
#define CLIENT_INFO_BOX                                                                     \
        "6e0403b1f8ec349df830b4fd805cd9732de9edd84d6b15a937e81ff589e1c42319f8c190728ef2d7e5" \
        "9db029d94548be"

static void assert_hex(const uint8_t *got, size_t len, const char *want_hex) {
        uint8_t want[256];
        char want_s[513], got_s[513];
        size_t want_len = hex_decode(want_hex, want, sizeof(want));

        assert_true(len <= 256);
        hex_encode(want, want_len, want_s);
        hex_encode(got, len, got_s);
        assert_string_equal(got_s, want_s);
}

static void key_from_hex(const char *hex, uint8_t key[static DERP_KEY_LEN]) {
        assert_int_equal(hex_decode(hex, key, DERP_KEY_LEN), DERP_KEY_LEN);
}

/* Feeds all of @data as one frame and checks it is complete. */
static uint8_t read_one(struct derp_reader *r, const uint8_t *data, size_t n,
                        const uint8_t **payload, size_t *len) {
        assert_int_equal(derp_reader_feed(r, &data, &n), 1);
        assert_int_equal(n, 0);
        return derp_reader_frame(r, payload, len);
}

/* ---- vectors --------------------------------------------------------------------------------- */

static void test_vec_send_packet_header(void **state) {
        uint8_t dst[DERP_KEY_LEN], hdr[DERP_HEADER_LEN + DERP_KEY_LEN];

        memset(dst, 0x33, sizeof(dst));
        assert_int_equal(derp_send_packet_header(hdr, dst, 1024 - DERP_KEY_LEN), 0);
        assert_hex(hdr, DERP_HEADER_LEN, "04 00 00 04 00");
        assert_memory_equal(hdr + DERP_HEADER_LEN, dst, DERP_KEY_LEN);

        uint8_t h[DERP_HEADER_LEN];
        derp_put_header(h, DERP_FRAME_SEND_PACKET, 1024);
        assert_hex(h, sizeof(h), "04 00 00 04 00");
}

static void test_vec_keep_alive(void **state) {
        uint8_t out[16];
        size_t n;

        assert_int_equal(derp_write_keep_alive(out, sizeof(out), &n), 0);
        assert_hex(out, n, "06 00 00 00 00");
}

static void test_vec_ping_pong(void **state) {
        const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        struct derp_reader r = {};
        uint8_t out[32], got[8];
        const uint8_t *payload;
        size_t n, len;

        assert_int_equal(derp_write_ping(out, sizeof(out), data, &n), 0);
        assert_hex(out, n, "12 00 00 00 08 01 02 03 04 05 06 07 08");
        assert_int_equal(read_one(&r, out, n, &payload, &len), DERP_FRAME_PING);
        assert_int_equal(derp_parse_ping(payload, len, got), 0);
        assert_memory_equal(got, data, 8);
        derp_reader_reset(&r);

        assert_int_equal(derp_write_pong(out, sizeof(out), data, &n), 0);
        assert_hex(out, n, "13 00 00 00 08 01 02 03 04 05 06 07 08");
        assert_int_equal(read_one(&r, out, n, &payload, &len), DERP_FRAME_PONG);
        assert_int_equal(derp_parse_ping(payload, len, got), 0);
        assert_memory_equal(got, data, 8);
        assert_int_equal(derp_parse_ping(payload, 7, got), -EBADMSG);
        derp_reader_done(&r);
}

static void test_vec_health(void **state) {
        struct derp_reader r = {};
        const uint8_t *payload;
        uint8_t out[32];
        size_t n, len;
        char *text = NULL;

        assert_int_equal(derp_write_health(out, sizeof(out), "BAD", &n), 0);
        assert_hex(out, n, "14 00 00 00 03 42 41 44");
        assert_int_equal(read_one(&r, out, n, &payload, &len), DERP_FRAME_HEALTH);
        assert_int_equal(derp_parse_health(payload, len, &text), 0);
        assert_string_equal(text, "BAD");
        free(text);
        derp_reader_reset(&r);

        assert_int_equal(derp_write_health(out, sizeof(out), "", &n), 0);
        assert_hex(out, n, "14 00 00 00 00");
        assert_int_equal(read_one(&r, out, n, &payload, &len), DERP_FRAME_HEALTH);
        assert_int_equal(len, 0);
        text = (char *) 1;
        assert_int_equal(derp_parse_health(payload, len, &text), 0);
        assert_null(text);

        assert_int_equal(derp_parse_health((const uint8_t *) "a\0b", 3, &text), -EBADMSG);
        derp_reader_done(&r);
}

static void test_vec_restarting(void **state) {
        struct derp_reader r = {};
        const uint8_t *payload;
        uint8_t out[32];
        size_t n, len;
        uint32_t reconnect, try_for;

        assert_int_equal(derp_write_restarting(out, sizeof(out), 1, 2, &n), 0);
        assert_hex(out, n, "15 00 00 00 08 00 00 00 01 00 00 00 02");
        assert_int_equal(read_one(&r, out, n, &payload, &len), DERP_FRAME_RESTARTING);
        assert_int_equal(derp_parse_restarting(payload, len, &reconnect, &try_for), 0);
        assert_int_equal(reconnect, 1);
        assert_int_equal(try_for, 2);
        assert_int_equal(derp_parse_restarting(payload, 7, &reconnect, &try_for), -EBADMSG);
        derp_reader_done(&r);
}

static void test_vec_key_pair(void **state) {
        uint8_t priv[DERP_KEY_LEN], pub[DERP_KEY_LEN];

        key_from_hex(CLIENT_PRIV, priv);
        assert_int_equal(derp_key_public(priv, pub), 0);
        assert_hex(pub, sizeof(pub), CLIENT_PUB);

        memset(priv, 0x01, sizeof(priv));
        assert_int_equal(derp_key_public(priv, pub), 0);
        assert_hex(pub, sizeof(pub), SERVER_PUB);
}

static void test_key_text(void **state) {
        uint8_t key[DERP_KEY_LEN], back[DERP_KEY_LEN];
        char text[DERP_KEY_TEXT_MAX];

        key_from_hex(CLIENT_PUB, key);
        assert_int_equal(derp_nodekey_format(key, text, sizeof(text)), 0);
        assert_string_equal(text, "nodekey:" CLIENT_PUB);
        assert_int_equal(derp_nodekey_parse(text, back), 0);
        assert_memory_equal(back, key, DERP_KEY_LEN);
        assert_int_equal(derp_key_parse("discokey:" CLIENT_PUB, "discokey:", back), 0);
        assert_memory_equal(back, key, DERP_KEY_LEN);

        assert_int_equal(derp_nodekey_format(key, text, 8 + 64), -ENOBUFS);
        assert_int_equal(derp_nodekey_parse(CLIENT_PUB, back), -EINVAL);           /* no prefix */
        assert_int_equal(derp_nodekey_parse("discokey:" CLIENT_PUB, back), -EINVAL);
        assert_int_equal(derp_nodekey_parse("nodekey:" CLIENT_PUB "0", back), -EINVAL);
        assert_int_equal(derp_nodekey_parse("nodekey:50d2", back), -EINVAL);
        assert_int_equal(derp_nodekey_parse("nodekey:", back), -EINVAL);
        assert_int_equal(derp_nodekey_parse(
                "nodekey:x0d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765", back),
                -EINVAL);
        assert_int_equal(derp_nodekey_parse(
                "nodekey:50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f7 5", back),
                -EINVAL);
}

static void test_vec_client_info(void **state) {
        uint8_t client_priv[DERP_KEY_LEN], server_priv[DERP_KEY_LEN], server_pub[DERP_KEY_LEN];
        uint8_t nonce[DERP_NONCE_LEN], out[256];
        size_t n;

        key_from_hex(CLIENT_PRIV, client_priv);
        memset(server_priv, 0x01, sizeof(server_priv));
        assert_int_equal(derp_key_public(server_priv, server_pub), 0);
        assert_hex(server_pub, sizeof(server_pub), SERVER_PUB);
        memset(nonce, 0x02, sizeof(nonce));

        assert_int_equal(derp_write_client_info(out, sizeof(out), client_priv, server_pub, nonce, &n), 0);
        assert_int_equal(n, DERP_CLIENT_INFO_FRAME_LEN);
        assert_int_equal(n, 5 + 0x68);
        assert_hex(out, n, "0200000068" CLIENT_PUB
                   "020202020202020202020202020202020202020202020202" CLIENT_INFO_BOX);

        /* The server opens it with its private key and finds the JSON. */
        uint8_t plain[64];
        assert_int_equal(crypto_box_open_easy(plain, out + 5 + 32 + 24, n - 5 - 32 - 24, out + 5 + 32,
                                              out + 5, server_priv), 0);
        assert_memory_equal(plain, DERP_CLIENT_INFO_JSON, DERP_CLIENT_INFO_JSON_LEN);

        /* Random nonces differ; buffers that are too small are refused. */
        uint8_t out2[256];
        size_t n2;
        assert_int_equal(derp_write_client_info(out2, sizeof(out2), client_priv, server_pub, NULL, &n2), 0);
        assert_int_equal(n2, n);
        assert_memory_not_equal(out2 + 5 + 32, out + 5 + 32, DERP_NONCE_LEN);
        assert_int_equal(derp_write_client_info(out2, n - 1, client_priv, server_pub, nonce, &n2),
                         -ENOBUFS);
}

static void test_vec_server_key(void **state) {
        uint8_t frame[DERP_HEADER_LEN + DERP_SERVER_KEY_MIN], key[DERP_KEY_LEN], got[DERP_KEY_LEN];
        struct derp_reader r = {};
        const uint8_t *payload;
        size_t len;

        key_from_hex(SERVER_PUB, key);
        size_t n = hex_decode("01 00 00 00 28 44 45 52 50 f0 9f 94 91", frame, sizeof(frame));
        assert_int_equal(n, 13);
        memcpy(frame + n, key, DERP_KEY_LEN);

        assert_int_equal(read_one(&r, frame, sizeof(frame), &payload, &len), DERP_FRAME_SERVER_KEY);
        assert_int_equal(len, 40);
        assert_memory_equal(payload, DERP_MAGIC, DERP_MAGIC_LEN);
        assert_int_equal(derp_parse_server_key(payload, len, got), 0);
        assert_memory_equal(got, key, DERP_KEY_LEN);
        derp_reader_done(&r);
}

/* ---- ServerKey errors ------------------------------------------------------------------------- */

static void test_server_key_bad(void **state) {
        uint8_t p[DERP_SERVER_KEY_MAX + 1], got[DERP_KEY_LEN];

        memset(p, 0x55, sizeof(p));
        memcpy(p, DERP_MAGIC, DERP_MAGIC_LEN);
        assert_int_equal(derp_parse_server_key(p, 39, got), -EBADMSG);          /* truncated */
        assert_int_equal(derp_parse_server_key(p, 0, got), -EBADMSG);
        assert_int_equal(derp_parse_server_key(p, 40, got), 0);
        assert_int_equal(derp_parse_server_key(p, DERP_SERVER_KEY_MAX, got), 0);  /* future bytes */
        assert_int_equal(derp_parse_server_key(p, DERP_SERVER_KEY_MAX + 1, got), -EMSGSIZE);
        p[7] ^= 1;
        memset(got, 0, sizeof(got));
        assert_int_equal(derp_parse_server_key(p, 40, got), -EPROTO);            /* bad magic */
}

/* ---- reader ----------------------------------------------------------------------------------- */

static size_t build_stream(uint8_t *buf, size_t size) {
        const uint8_t ping[8] = { 9, 8, 7, 6, 5, 4, 3, 2 };
        uint8_t dst[DERP_KEY_LEN];
        uint8_t data[300];
        size_t off = 0, n;

        memset(dst, 0xab, sizeof(dst));
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) i;
        assert_int_equal(derp_write_keep_alive(buf + off, size - off, &n), 0);
        off += n;
        assert_int_equal(derp_write_send_packet(buf + off, size - off, dst, data, sizeof(data), &n), 0);
        off += n;
        assert_int_equal(derp_write_ping(buf + off, size - off, ping, &n), 0);
        off += n;
        assert_int_equal(derp_write_frame(buf + off, size - off, 0x7f, "xyz", 3, &n), 0);  /* unknown */
        off += n;
        assert_int_equal(derp_write_note_preferred(buf + off, size - off, true, &n), 0);
        off += n;
        return off;
}

struct seen {
        uint8_t type;
        size_t len;
        uint8_t first;
};

static size_t drain(struct derp_reader *r, const uint8_t *p, size_t n, size_t chunk,
                    struct seen *seen, size_t max) {
        size_t count = 0;

        while (n > 0) {
                size_t take = n < chunk ? n : chunk, left = take;
                while (left > 0) {
                        int k = derp_reader_feed(r, &p, &left);
                        assert_true(k >= 0);
                        if (k == 1) {
                                const uint8_t *payload;
                                size_t len;
                                assert_true(count < max);
                                seen[count].type = derp_reader_frame(r, &payload, &len);
                                seen[count].len = len;
                                seen[count].first = len ? payload[0] : 0;
                                count++;
                                derp_reader_reset(r);
                        }
                }
                n -= take;
        }
        return count;
}

static void test_reader_bytewise_equals_bulk(void **state) {
        uint8_t buf[1024];
        struct seen a[8], b[8];
        struct derp_reader r1 = {}, r2 = {};
        size_t n = build_stream(buf, sizeof(buf));

        size_t ca = drain(&r1, buf, n, n, a, 8);
        size_t cb = drain(&r2, buf, n, 1, b, 8);
        assert_int_equal(ca, 5);
        assert_int_equal(cb, 5);
        for (size_t i = 0; i < ca; i++) {
                assert_int_equal(a[i].type, b[i].type);
                assert_int_equal(a[i].len, b[i].len);
                assert_int_equal(a[i].first, b[i].first);
        }
        assert_int_equal(a[0].type, DERP_FRAME_KEEP_ALIVE);
        assert_int_equal(a[0].len, 0);
        assert_int_equal(a[1].type, DERP_FRAME_SEND_PACKET);
        assert_int_equal(a[1].len, 332);
        assert_int_equal(a[1].first, 0xab);
        assert_int_equal(a[2].type, DERP_FRAME_PING);
        assert_int_equal(a[3].type, 0x7f);                /* unknown types come through */
        assert_int_equal(a[3].len, 3);
        assert_int_equal(a[4].type, DERP_FRAME_NOTE_PREFERRED);
        assert_int_equal(a[4].first, 1);
        derp_reader_done(&r1);
        derp_reader_done(&r2);
}

static void test_reader_oversize(void **state) {
        struct derp_reader r = {};
        uint8_t hdr[DERP_HEADER_LEN];
        const uint8_t *p = hdr;
        size_t n = sizeof(hdr);

        derp_put_header(hdr, DERP_FRAME_RECV_PACKET, DERP_FRAME_MAX + 1);
        assert_int_equal(derp_reader_feed(&r, &p, &n), -EMSGSIZE);
        derp_reader_done(&r);

        derp_put_header(hdr, DERP_FRAME_RECV_PACKET, 0xffffffff);
        p = hdr;
        n = sizeof(hdr);
        assert_int_equal(derp_reader_feed(&r, &p, &n), -EMSGSIZE);
        derp_reader_done(&r);

        /* The bound itself is accepted. */
        derp_put_header(hdr, DERP_FRAME_FORWARD_PACKET, DERP_FRAME_MAX);
        p = hdr;
        n = sizeof(hdr);
        assert_int_equal(derp_reader_feed(&r, &p, &n), 0);
        assert_int_equal(r.len, DERP_FRAME_MAX);
        derp_reader_done(&r);
}

static void test_send_packet_limit(void **state) {
        const size_t size = DERP_HEADER_LEN + DERP_KEY_LEN + DERP_MAX_PACKET_SIZE + 1;
        uint8_t *out = malloc(size), *data = malloc(DERP_MAX_PACKET_SIZE + 1);
        uint8_t dst[DERP_KEY_LEN], hdr[DERP_HEADER_LEN + DERP_KEY_LEN];
        struct derp_reader r = {};
        const uint8_t *payload, *src, *pkt;
        size_t n, len, pkt_len;

        assert_non_null(out);
        assert_non_null(data);
        memset(dst, 0x44, sizeof(dst));
        for (size_t i = 0; i <= DERP_MAX_PACKET_SIZE; i++)
                data[i] = (uint8_t) (i * 31);

        assert_int_equal(derp_write_send_packet(out, size, dst, data, DERP_MAX_PACKET_SIZE, &n), 0);
        assert_int_equal(n, size - 1);
        assert_int_equal(derp_write_send_packet(out, size, dst, data, DERP_MAX_PACKET_SIZE + 1, &n),
                         -EMSGSIZE);
        assert_int_equal(derp_send_packet_header(hdr, dst, DERP_MAX_PACKET_SIZE + 1), -EMSGSIZE);
        assert_int_equal(derp_write_send_packet(out, 36, dst, data, 0, &n), -ENOBUFS);

        /* A full-size frame passes the reader; as RecvPacket it parses back. */
        assert_int_equal(derp_write_send_packet(out, size, dst, data, DERP_MAX_PACKET_SIZE, &n), 0);
        out[0] = DERP_FRAME_RECV_PACKET;
        assert_int_equal(read_one(&r, out, n, &payload, &len), DERP_FRAME_RECV_PACKET);
        assert_int_equal(derp_parse_recv_packet(payload, len, &src, &pkt, &pkt_len), 0);
        assert_memory_equal(src, dst, DERP_KEY_LEN);
        assert_int_equal(pkt_len, DERP_MAX_PACKET_SIZE);
        assert_memory_equal(pkt, data, DERP_MAX_PACKET_SIZE);
        derp_reader_done(&r);
        free(out);
        free(data);
}

static void test_recv_packet_and_peer_gone(void **state) {
        uint8_t p[DERP_KEY_LEN + 2];
        const uint8_t *key, *data;
        size_t len;
        uint8_t reason;

        memset(p, 0x11, DERP_KEY_LEN);
        p[DERP_KEY_LEN] = DERP_PEER_GONE_NOT_HERE;
        p[DERP_KEY_LEN + 1] = 0x99;

        assert_int_equal(derp_parse_recv_packet(p, 31, &key, &data, &len), -EBADMSG);
        assert_int_equal(derp_parse_recv_packet(p, 32, &key, &data, &len), 0);
        assert_ptr_equal(key, p);
        assert_int_equal(len, 0);
        assert_int_equal(derp_parse_recv_packet(p, 34, &key, &data, &len), 0);
        assert_ptr_equal(data, p + DERP_KEY_LEN);
        assert_int_equal(len, 2);

        assert_int_equal(derp_parse_peer_gone(p, 31, &key, &reason), -EBADMSG);
        assert_int_equal(derp_parse_peer_gone(p, 32, &key, &reason), 0);       /* older servers */
        assert_int_equal(reason, DERP_PEER_GONE_DISCONNECTED);
        assert_ptr_equal(key, p);
        assert_int_equal(derp_parse_peer_gone(p, 33, &key, &reason), 0);
        assert_int_equal(reason, DERP_PEER_GONE_NOT_HERE);
        assert_int_equal(derp_parse_peer_gone(p, 34, &key, &reason), 0);       /* future bytes */
        assert_int_equal(reason, DERP_PEER_GONE_NOT_HERE);
}

static void test_note_preferred(void **state) {
        uint8_t out[8];
        size_t n;

        assert_int_equal(derp_write_note_preferred(out, sizeof(out), true, &n), 0);
        assert_hex(out, n, "07 00 00 00 01 01");
        assert_int_equal(derp_write_note_preferred(out, sizeof(out), false, &n), 0);
        assert_hex(out, n, "07 00 00 00 01 00");
        assert_int_equal(derp_write_note_preferred(out, 5, false, &n), -ENOBUFS);
}

/* ---- ServerInfo ------------------------------------------------------------------------------- */

struct keys {
        uint8_t client_priv[DERP_KEY_LEN], client_pub[DERP_KEY_LEN];
        uint8_t server_priv[DERP_KEY_LEN], server_pub[DERP_KEY_LEN];
};

static void make_keys(struct keys *k) {
        key_from_hex(CLIENT_PRIV, k->client_priv);
        assert_int_equal(derp_key_public(k->client_priv, k->client_pub), 0);
        memset(k->server_priv, 0x01, DERP_KEY_LEN);
        assert_int_equal(derp_key_public(k->server_priv, k->server_pub), 0);
}

/* What a server sends: nonce + box(json) from the server's key to the client's. */
static size_t seal_server_info(const struct keys *k, const char *json, uint8_t *out) {
        size_t len = strlen(json);

        randombytes_buf(out, DERP_NONCE_LEN);
        assert_int_equal(crypto_box_easy(out + DERP_NONCE_LEN, (const uint8_t *) json, len, out,
                                         k->client_pub, k->server_priv), 0);
        return DERP_NONCE_LEN + DERP_BOX_MAC_LEN + len;
}

static int open_json(const struct keys *k, const char *json, struct derp_server_info *info) {
        uint8_t box[512];
        size_t n = seal_server_info(k, json, box);
        return derp_open_server_info(box, n, k->client_priv, k->server_pub, info);
}

static void test_server_info_round_trip(void **state) {
        struct derp_server_info info;
        struct keys k;

        make_keys(&k);
        assert_int_equal(open_json(&k, "{\"version\":2}", &info), 0);
        assert_int_equal(info.version, 2);
        assert_int_equal(info.token_bucket_bytes_per_second, 0);
        assert_int_equal(info.token_bucket_bytes_burst, 0);

        assert_int_equal(open_json(&k, " {\"version\":2,\"TokenBucketBytesPerSecond\":1000000,"
                                       "\"TokenBucketBytesBurst\":2000000,\"Other\":[1]}\n", &info), 0);
        assert_int_equal(info.version, 2);
        assert_int_equal(info.token_bucket_bytes_per_second, 1000000);
        assert_int_equal(info.token_bucket_bytes_burst, 2000000);

        assert_int_equal(open_json(&k, "{}", &info), 0);
        assert_int_equal(info.version, 0);
        assert_int_equal(open_json(&k, "{\"version\":null}", &info), 0);
}

static void test_server_info_bad_json(void **state) {
        struct derp_server_info info;
        struct keys k;

        make_keys(&k);
        assert_int_equal(open_json(&k, "", &info), -EBADMSG);
        assert_int_equal(open_json(&k, "[2]", &info), -EBADMSG);
        assert_int_equal(open_json(&k, "{\"version\":\"2\"}", &info), -EBADMSG);
        assert_int_equal(open_json(&k, "{\"version\":2.5}", &info), -EBADMSG);
        assert_int_equal(open_json(&k, "{\"version\":2", &info), -EBADMSG);
        assert_int_equal(open_json(&k, "{\"version\":2}x", &info), -EBADMSG);
        assert_int_equal(open_json(&k, "{\"version\":2,\"TokenBucketBytesBurst\":-1}", &info), -EBADMSG);
}

static void test_server_info_tampered(void **state) {
        struct derp_server_info info;
        uint8_t box[128], other[DERP_KEY_LEN], other_pub[DERP_KEY_LEN];
        struct keys k;

        make_keys(&k);
        size_t n = seal_server_info(&k, "{\"version\":2}", box);
        assert_int_equal(derp_open_server_info(box, n, k.client_priv, k.server_pub, &info), 0);

        for (size_t i = 0; i < n; i++) {               /* any flipped bit: nonce, MAC or text */
                box[i] ^= 0x01;
                assert_int_equal(derp_open_server_info(box, n, k.client_priv, k.server_pub, &info),
                                 -EBADMSG);
                box[i] ^= 0x01;
        }
        assert_int_equal(derp_open_server_info(box, n - 1, k.client_priv, k.server_pub, &info), -EBADMSG);
        assert_int_equal(derp_open_server_info(box, DERP_NONCE_LEN + DERP_BOX_MAC_LEN - 1,
                                               k.client_priv, k.server_pub, &info), -EBADMSG);
        assert_int_equal(derp_open_server_info(box, 0, k.client_priv, k.server_pub, &info), -EBADMSG);

        /* The wrong server key does not open it either. */
        memset(other, 0x07, sizeof(other));
        assert_int_equal(derp_key_public(other, other_pub), 0);
        assert_int_equal(derp_open_server_info(box, n, k.client_priv, other_pub, &info), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vec_send_packet_header),
                cmocka_unit_test(test_vec_keep_alive),
                cmocka_unit_test(test_vec_ping_pong),
                cmocka_unit_test(test_vec_health),
                cmocka_unit_test(test_vec_restarting),
                cmocka_unit_test(test_vec_key_pair),
                cmocka_unit_test(test_key_text),
                cmocka_unit_test(test_vec_client_info),
                cmocka_unit_test(test_vec_server_key),
                cmocka_unit_test(test_server_key_bad),
                cmocka_unit_test(test_reader_bytewise_equals_bulk),
                cmocka_unit_test(test_reader_oversize),
                cmocka_unit_test(test_send_packet_limit),
                cmocka_unit_test(test_recv_packet_and_peer_gone),
                cmocka_unit_test(test_note_preferred),
                cmocka_unit_test(test_server_info_round_trip),
                cmocka_unit_test(test_server_info_bad_json),
                cmocka_unit_test(test_server_info_tampered),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
