/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the DERP wire layer (agent/derp). The input is a byte stream from
 * a server: it goes through derp_reader in chunks whose sizes come from the input, and
 * again in one piece; each complete frame goes to the parser for its type (ServerKey,
 * ServerInfo with a fixed key pair, RecvPacket, PeerGone, Ping/Pong, Health, Restarting).
 * Every parser also runs on the raw input. So that the ServerInfo JSON parser is reached,
 * the input is also sealed as a ServerInfo box with the fixed keys and opened.
 *
 * The input is also parsed as a DERP map (agent/derpmap).
 *
 * Invariants (abort on violation): chunked and bulk feeding give the same frames and the
 * same error; no frame exceeds DERP_FRAME_MAX; parsers return only their documented
 * errors; outputs point inside the payload; a frame re-written with derp_write_frame
 * reads back identically; a parsed DERP map is within its bounds, sorted, every region
 * found by derp_map_region, every node in its region, ports defaulted.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "fuzz-check.h"
#include "derp.h"
#include "derpmap.h"


static uint8_t client_priv[DERP_KEY_LEN], client_pub[DERP_KEY_LEN];
static uint8_t server_priv[DERP_KEY_LEN], server_pub[DERP_KEY_LEN];

static void init(void) {
        memset(client_priv, 0x03, sizeof(client_priv));
        memset(server_priv, 0x01, sizeof(server_priv));
        if (sodium_init() < 0 || derp_key_public(client_priv, client_pub) < 0 ||
            derp_key_public(server_priv, server_pub) < 0)
                abort();
}

static void parse_server_info(const uint8_t *p, size_t len) {
        struct derp_server_info info;
        int r = derp_open_server_info(p, len, client_priv, server_pub, &info);
        CHECK(r == 0 || r == -EBADMSG);
        if (r == 0)
                CHECK(info.version >= 0 && info.token_bucket_bytes_per_second >= 0 &&
                      info.token_bucket_bytes_burst >= 0);
}

/* Every parser on @p; the one for @type must be consistent with the frame's rules. */
static void parse_all(const uint8_t *p, size_t len) {
        uint8_t key[DERP_KEY_LEN], ping[DERP_PING_LEN], reason;
        const uint8_t *k, *d;
        size_t dlen;
        uint32_t a, b;
        char *text = NULL;
        int r;

        r = derp_parse_server_key(p, len, key);
        CHECK(r == 0 || r == -EBADMSG || r == -EPROTO || r == -EMSGSIZE);
        CHECK(r != 0 || (len >= DERP_SERVER_KEY_MIN && len <= DERP_SERVER_KEY_MAX &&
                         memcmp(key, p + DERP_MAGIC_LEN, DERP_KEY_LEN) == 0));

        parse_server_info(p, len);

        r = derp_parse_recv_packet(p, len, &k, &d, &dlen);
        CHECK(r == 0 || r == -EBADMSG || r == -EMSGSIZE);
        CHECK(r != 0 || (k == p && d == p + DERP_KEY_LEN && dlen == len - DERP_KEY_LEN &&
                         dlen <= DERP_MAX_PACKET_SIZE));

        r = derp_parse_peer_gone(p, len, &k, &reason);
        CHECK(r == 0 || r == -EBADMSG);
        CHECK(r != 0 || (k == p && (len > DERP_KEY_LEN ? reason == p[DERP_KEY_LEN] : reason == 0)));

        r = derp_parse_ping(p, len, ping);
        CHECK(r == 0 || r == -EBADMSG);

        r = derp_parse_restarting(p, len, &a, &b);
        CHECK(r == 0 || r == -EBADMSG);

        r = derp_parse_health(p, len, &text);
        CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
        if (r == 0) {
                CHECK((len == 0) == (text == NULL));
                CHECK(!text || (strlen(text) == len && memcmp(text, p, len) == 0));
        }
        free(text);
}

/* Re-writes the frame and reads it back. */
static void check_round_trip(uint8_t type, const uint8_t *p, size_t len) {
        static uint8_t buf[DERP_HEADER_LEN + DERP_FRAME_MAX];
        struct derp_reader r = {};
        const uint8_t *q, *got;
        size_t n, got_len;

        CHECK(derp_write_frame(buf, sizeof(buf), type, p, len, &n) == 0);
        CHECK(n == DERP_HEADER_LEN + len);
        q = buf;
        CHECK(derp_reader_feed(&r, &q, &n) == 1 && n == 0);
        CHECK(derp_reader_frame(&r, &got, &got_len) == type);
        CHECK(got_len == len && memcmp(got, p, len) == 0);
        derp_reader_done(&r);
}

#define MAX_FRAMES 64

struct result {
        size_t count;
        uint8_t type[MAX_FRAMES];
        size_t len[MAX_FRAMES];
        uint32_t hash[MAX_FRAMES];
        int error;
};

static uint32_t hash(const uint8_t *p, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 16777619u;
        return h;
}

/* Feeds @data in chunks of @chunk bytes; parses every complete frame when @deep. */
static void run(const uint8_t *data, size_t size, size_t chunk, bool deep, struct result *res) {
        struct derp_reader r = {};

        *res = (struct result) {};
        while (size > 0) {
                size_t take = chunk < size ? chunk : size, left = take;
                const uint8_t *p = data;
                while (left > 0) {
                        int k = derp_reader_feed(&r, &p, &left);
                        CHECK(k == 0 || k == 1 || k == -EMSGSIZE);
                        if (k < 0) {
                                res->error = k;
                                derp_reader_done(&r);
                                return;
                        }
                        if (k == 0)
                                continue;
                        const uint8_t *payload;
                        size_t len;
                        uint8_t type = derp_reader_frame(&r, &payload, &len);
                        CHECK(len <= DERP_FRAME_MAX);
                        if (res->count < MAX_FRAMES) {
                                res->type[res->count] = type;
                                res->len[res->count] = len;
                                res->hash[res->count] = hash(payload, len);
                        }
                        res->count++;
                        if (deep) {
                                parse_all(payload, len);
                                check_round_trip(type, payload, len);
                        }
                        derp_reader_reset(&r);
                }
                data += take;
                size -= take;
        }
        derp_reader_done(&r);
}

/* The input as the JSON of a ServerInfo box sealed with the fixed keys. */
static void sealed_server_info(const uint8_t *data, size_t size) {
        if (size > 4096)
                return;
        uint8_t *box = malloc(DERP_NONCE_LEN + DERP_BOX_MAC_LEN + size);
        if (!box)
                return;
        memset(box, 0x02, DERP_NONCE_LEN);
        CHECK(crypto_box_easy(box + DERP_NONCE_LEN, data, size, box, client_pub, server_priv) == 0);
        parse_server_info(box, DERP_NONCE_LEN + DERP_BOX_MAC_LEN + size);
        free(box);
}

static void check_map(const struct derp_map *m) {
        CHECK(m->n_regions <= DERP_MAP_REGIONS_MAX && m->n_scores <= DERP_MAP_REGIONS_MAX);
        for (size_t i = 0; i < m->n_regions; i++) {
                const struct derp_region *g = &m->regions[i];
                CHECK(i == 0 || m->regions[i - 1].region_id < g->region_id);
                CHECK(derp_map_region(m, g->region_id) == g);
                CHECK(g->region_code && g->region_name && g->n_nodes <= DERP_MAP_NODES_MAX);
                for (size_t j = 0; j < g->n_nodes; j++) {
                        const struct derp_node *n = &g->nodes[j];
                        CHECK(n->region_id == g->region_id && n->derp_port != 0);
                        CHECK(n->stun_port == -1 || (n->stun_port > 0 && n->stun_port <= 65535));
                        CHECK(n->name && n->host_name && n->cert_name);
                        CHECK(strlen(n->host_name) <= DERP_MAP_STRING_MAX);
                }
        }
}

static void parse_map(const uint8_t *data, size_t size) {
        struct derp_map *m = NULL;
        char err[DERP_MAP_ERROR_MAX];
        int r = derp_map_parse((const char *) data, size, &m, err, sizeof(err));

        CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        CHECK((r == 0) == (m != NULL));
        CHECK(r != -EINVAL || (strlen(err) > 0 && strlen(err) < sizeof(err)));
        if (m)
                check_map(m);
        derp_map_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct result bulk, chunked;

        static bool initialized;
        if (!initialized) {
                init();
                initialized = true;
        }

        /* Copies, so that reads past the end are caught by ASan. */
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);

        run(copy, size, size ? (size_t) copy[0] + 1 : 1, true, &chunked);
        run(copy, size, size ? size : 1, false, &bulk);
        struct result bytewise;
        run(copy, size, 1, false, &bytewise);
        CHECK(bulk.count == chunked.count && bulk.error == chunked.error);
        CHECK(bulk.count == bytewise.count && bulk.error == bytewise.error);
        for (size_t i = 0; i < bulk.count && i < MAX_FRAMES; i++) {
                CHECK(bulk.type[i] == chunked.type[i] && bulk.len[i] == chunked.len[i] &&
                      bulk.hash[i] == chunked.hash[i]);
                CHECK(bulk.type[i] == bytewise.type[i] && bulk.len[i] == bytewise.len[i] &&
                      bulk.hash[i] == bytewise.hash[i]);
        }

        parse_all(copy, size);
        sealed_server_info(copy, size);
        parse_map(copy, size);
        free(copy);
        return 0;
}
