/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <sodium.h>

#include "derp.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_tokener *, json_tokener_free);

static int derp_crypto_init(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

/* ---- reader --------------------------------------------------------------------------------- */

int derp_reader_space(struct derp_reader *r, uint8_t **ret, size_t *room) {
        if (r->hdr_have < DERP_HEADER_LEN) {
                *ret = r->hdr + r->hdr_have;
                *room = DERP_HEADER_LEN - r->hdr_have;
                return 0;
        }
        if (r->capacity < r->len) {
                uint8_t *p = realloc(r->payload, r->len);
                if (!p)
                        return -ENOMEM;
                r->payload = p;
                r->capacity = r->len;
        }
        *ret = r->payload + r->have;
        *room = r->len - r->have;
        return 0;
}

int derp_reader_advance(struct derp_reader *r, size_t n) {
        if (r->hdr_have < DERP_HEADER_LEN) {
                r->hdr_have += n;
                if (r->hdr_have < DERP_HEADER_LEN)
                        return 0;
                r->type = r->hdr[0];
                r->len = derp_get_be32(r->hdr + 1);
                if (r->len > DERP_FRAME_MAX)
                        return -EMSGSIZE;
                return r->len == 0;
        }
        r->have += n;
        return r->have == r->len;
}

int derp_reader_feed(struct derp_reader *r, const uint8_t **data, size_t *n) {
        while (*n > 0) {
                uint8_t *dst;
                size_t room;
                int k = derp_reader_space(r, &dst, &room);
                if (k < 0)
                        return k;
                if (room > *n)
                        room = *n;
                memcpy(dst, *data, room);
                *data += room;
                *n -= room;
                k = derp_reader_advance(r, room);
                if (k != 0)
                        return k;
        }
        return 0;
}

void derp_reader_reset(struct derp_reader *r) {
        r->hdr_have = 0;
        r->type = 0;
        r->len = 0;
        r->have = 0;
}

void derp_reader_done(struct derp_reader *r) {
        free(r->payload);
        *r = (struct derp_reader) {};
}

/* ---- writers -------------------------------------------------------------------------------- */

int derp_write_frame(uint8_t *out, size_t size, uint8_t type, const void *payload, size_t len,
                     size_t *ret_len) {
        if (len > DERP_FRAME_MAX)
                return -EMSGSIZE;
        if (size < DERP_HEADER_LEN + len)
                return -ENOBUFS;
        derp_put_header(out, type, (uint32_t) len);
        if (len > 0)
                memcpy(out + DERP_HEADER_LEN, payload, len);
        *ret_len = DERP_HEADER_LEN + len;
        return 0;
}

int derp_send_packet_header(uint8_t out[static DERP_HEADER_LEN + DERP_KEY_LEN],
                            const uint8_t dst[static DERP_KEY_LEN], size_t len) {
        if (len > DERP_MAX_PACKET_SIZE)
                return -EMSGSIZE;
        derp_put_header(out, DERP_FRAME_SEND_PACKET, (uint32_t) (DERP_KEY_LEN + len));
        memcpy(out + DERP_HEADER_LEN, dst, DERP_KEY_LEN);
        return 0;
}

int derp_write_send_packet(uint8_t *out, size_t size, const uint8_t dst[static DERP_KEY_LEN],
                           const void *data, size_t len, size_t *ret_len) {
        const size_t hdr = DERP_HEADER_LEN + DERP_KEY_LEN;

        if (len > DERP_MAX_PACKET_SIZE)
                return -EMSGSIZE;
        if (size < hdr + len)
                return -ENOBUFS;
        (void) derp_send_packet_header(out, dst, len);
        if (len > 0)
                memcpy(out + hdr, data, len);
        *ret_len = hdr + len;
        return 0;
}

int derp_write_keep_alive(uint8_t *out, size_t size, size_t *ret_len) {
        return derp_write_frame(out, size, DERP_FRAME_KEEP_ALIVE, NULL, 0, ret_len);
}

int derp_write_ping(uint8_t *out, size_t size, const uint8_t data[static DERP_PING_LEN],
                    size_t *ret_len) {
        return derp_write_frame(out, size, DERP_FRAME_PING, data, DERP_PING_LEN, ret_len);
}

int derp_write_pong(uint8_t *out, size_t size, const uint8_t data[static DERP_PING_LEN],
                    size_t *ret_len) {
        return derp_write_frame(out, size, DERP_FRAME_PONG, data, DERP_PING_LEN, ret_len);
}

int derp_write_note_preferred(uint8_t *out, size_t size, bool preferred, size_t *ret_len) {
        uint8_t b = preferred ? 0x01 : 0x00;
        return derp_write_frame(out, size, DERP_FRAME_NOTE_PREFERRED, &b, 1, ret_len);
}

int derp_write_health(uint8_t *out, size_t size, const char *text, size_t *ret_len) {
        size_t len = text ? strlen(text) : 0;
        return derp_write_frame(out, size, DERP_FRAME_HEALTH, text, len, ret_len);
}

int derp_write_restarting(uint8_t *out, size_t size, uint32_t reconnect_in_ms,
                          uint32_t try_for_ms, size_t *ret_len) {
        uint8_t b[8];
        derp_put_be32(b, reconnect_in_ms);
        derp_put_be32(b + 4, try_for_ms);
        return derp_write_frame(out, size, DERP_FRAME_RESTARTING, b, sizeof(b), ret_len);
}

int derp_write_client_info(uint8_t *out, size_t size,
                           const uint8_t client_priv[static DERP_KEY_LEN],
                           const uint8_t server_pub[static DERP_KEY_LEN],
                           const uint8_t *nonce, size_t *ret_len) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        uint8_t *p = out + DERP_HEADER_LEN;
        const char *json;
        size_t json_len;
        int r;

        if ((r = derp_crypto_init()) < 0)
                return r;
        o = json_object_new_object();
        if (!o || json_object_object_add(o, "version", json_object_new_int(DERP_PROTOCOL_VERSION)) < 0 ||
            json_object_object_add(o, "CanAckPings", json_object_new_boolean(1)) < 0)
                return -ENOMEM;
        json = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!json)
                return -ENOMEM;
        json_len = strlen(json);
        if (size < DERP_HEADER_LEN + DERP_KEY_LEN + DERP_NONCE_LEN + DERP_BOX_MAC_LEN + json_len)
                return -ENOBUFS;

        if ((r = derp_key_public(client_priv, p)) < 0)
                return r;
        if (nonce)
                memcpy(p + DERP_KEY_LEN, nonce, DERP_NONCE_LEN);
        else
                randombytes_buf(p + DERP_KEY_LEN, DERP_NONCE_LEN);
        if (crypto_box_easy(p + DERP_KEY_LEN + DERP_NONCE_LEN, (const unsigned char *) json,
                            json_len, p + DERP_KEY_LEN, server_pub, client_priv) != 0)
                return -EINVAL;

        size_t len = DERP_KEY_LEN + DERP_NONCE_LEN + DERP_BOX_MAC_LEN + json_len;
        derp_put_header(out, DERP_FRAME_CLIENT_INFO, (uint32_t) len);
        *ret_len = DERP_HEADER_LEN + len;
        return 0;
}

/* ---- parsers -------------------------------------------------------------------------------- */

int derp_parse_server_key(const uint8_t *p, size_t len, uint8_t server_pub[static DERP_KEY_LEN]) {
        if (len > DERP_SERVER_KEY_MAX)
                return -EMSGSIZE;
        if (len < DERP_SERVER_KEY_MIN)
                return -EBADMSG;
        if (memcmp(p, DERP_MAGIC, DERP_MAGIC_LEN) != 0)
                return -EPROTO;
        memcpy(server_pub, p + DERP_MAGIC_LEN, DERP_KEY_LEN);
        return 0;
}

/* A non-negative integer member, or 0 when absent or null. */
static int json_get_count(struct json_object *o, const char *name, int64_t *ret) {
        struct json_object *v;

        *ret = 0;
        if (!json_object_object_get_ex(o, name, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        errno = 0;
        int64_t n = json_object_get_int64(v);
        if (errno != 0 || n < 0)
                return -EBADMSG;
        *ret = n;
        return 0;
}

static int parse_server_info_json(const char *s, size_t len, struct derp_server_info *ret) {
        _cleanup_(json_tokener_freep) struct json_tokener *tok = json_tokener_new();
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        if (!tok)
                return -ENOMEM;
        if (len > INT32_MAX)
                return -EBADMSG;
        o = json_tokener_parse_ex(tok, s, (int) len);
        if (!o || json_tokener_get_error(tok) != json_tokener_success)
                return -EBADMSG;
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (!strchr(" \t\r\n", s[i]) || s[i] == '\0')
                        return -EBADMSG;
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;

        struct derp_server_info info = {};
        if ((r = json_get_count(o, "version", &info.version)) < 0 ||
            (r = json_get_count(o, "TokenBucketBytesPerSecond", &info.token_bucket_bytes_per_second)) < 0 ||
            (r = json_get_count(o, "TokenBucketBytesBurst", &info.token_bucket_bytes_burst)) < 0)
                return r;
        *ret = info;
        return 0;
}

int derp_open_server_info(const uint8_t *p, size_t len,
                          const uint8_t client_priv[static DERP_KEY_LEN],
                          const uint8_t server_pub[static DERP_KEY_LEN],
                          struct derp_server_info *ret) {
        _cleanup_free_ char *plain = NULL;
        size_t box_len, plain_len;
        int r;

        if ((r = derp_crypto_init()) < 0)
                return r;
        if (len < DERP_NONCE_LEN + DERP_BOX_MAC_LEN || len > DERP_FRAME_MAX)
                return -EBADMSG;
        box_len = len - DERP_NONCE_LEN;
        plain_len = box_len - DERP_BOX_MAC_LEN;
        plain = malloc(plain_len + 1);
        if (!plain)
                return -ENOMEM;
        if (crypto_box_open_easy((unsigned char *) plain, p + DERP_NONCE_LEN, box_len, p,
                                 server_pub, client_priv) != 0)
                return -EBADMSG;
        plain[plain_len] = '\0';
        return parse_server_info_json(plain, plain_len, ret);
}

int derp_parse_recv_packet(const uint8_t *p, size_t len, const uint8_t **src,
                           const uint8_t **data, size_t *data_len) {
        if (len < DERP_KEY_LEN)
                return -EBADMSG;
        if (len - DERP_KEY_LEN > DERP_MAX_PACKET_SIZE)
                return -EMSGSIZE;
        *src = p;
        *data = p + DERP_KEY_LEN;
        *data_len = len - DERP_KEY_LEN;
        return 0;
}

int derp_parse_peer_gone(const uint8_t *p, size_t len, const uint8_t **key, uint8_t *reason) {
        if (len < DERP_KEY_LEN)
                return -EBADMSG;
        *key = p;
        *reason = len > DERP_KEY_LEN ? p[DERP_KEY_LEN] : DERP_PEER_GONE_DISCONNECTED;
        return 0;
}

int derp_parse_ping(const uint8_t *p, size_t len, uint8_t data[static DERP_PING_LEN]) {
        if (len < DERP_PING_LEN)
                return -EBADMSG;
        memcpy(data, p, DERP_PING_LEN);
        return 0;
}

int derp_parse_health(const uint8_t *p, size_t len, char **ret) {
        char *s;

        if (len == 0) {
                *ret = NULL;
                return 0;
        }
        if (memchr(p, '\0', len))
                return -EBADMSG;
        s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, p, len);
        s[len] = '\0';
        *ret = s;
        return 0;
}

int derp_parse_restarting(const uint8_t *p, size_t len, uint32_t *reconnect_in_ms,
                          uint32_t *try_for_ms) {
        if (len < 8)
                return -EBADMSG;
        *reconnect_in_ms = derp_get_be32(p);
        *try_for_ms = derp_get_be32(p + 4);
        return 0;
}

/* ---- keys ----------------------------------------------------------------------------------- */

int derp_key_public(const uint8_t priv[static DERP_KEY_LEN], uint8_t pub[static DERP_KEY_LEN]) {
        int r;

        if ((r = derp_crypto_init()) < 0)
                return r;
        if (crypto_scalarmult_base(pub, priv) != 0)
                return -EINVAL;
        return 0;
}

int derp_key_parse(const char *text, const char *prefix, uint8_t key[static DERP_KEY_LEN]) {
        uint8_t k[DERP_KEY_LEN];
        size_t plen = strlen(prefix), bin_len = 0;
        const char *hex, *end = NULL;

        if (strncmp(text, prefix, plen) != 0)
                return -EINVAL;
        hex = text + plen;
        if (strlen(hex) != 2 * DERP_KEY_LEN)
                return -EINVAL;
        if (sodium_hex2bin(k, sizeof(k), hex, 2 * DERP_KEY_LEN, NULL, &bin_len, &end) != 0 ||
            bin_len != DERP_KEY_LEN || end != hex + 2 * DERP_KEY_LEN) {
                sodium_memzero(k, sizeof(k));
                return -EINVAL;
        }
        memcpy(key, k, DERP_KEY_LEN);
        sodium_memzero(k, sizeof(k));
        return 0;
}

int derp_key_format(const uint8_t key[static DERP_KEY_LEN], const char *prefix, char *out,
                    size_t size) {
        size_t plen = strlen(prefix);

        if (size < plen + 2 * DERP_KEY_LEN + 1)
                return -ENOBUFS;
        memcpy(out, prefix, plen);
        sodium_bin2hex(out + plen, size - plen, key, DERP_KEY_LEN);
        return 0;
}
