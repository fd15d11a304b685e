/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "websocket.h"

/* ---- SHA-1 (FIPS 180-4 §6.1) ---- */

static uint32_t rol32(uint32_t x, unsigned n) {
        return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t b[64]) {
        uint32_t w[80], a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];

        for (unsigned t = 0; t < 16; t++)
                w[t] = (uint32_t) b[4 * t] << 24 | (uint32_t) b[4 * t + 1] << 16 |
                       (uint32_t) b[4 * t + 2] << 8 | b[4 * t + 3];
        for (unsigned t = 16; t < 80; t++)
                w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
        for (unsigned t = 0; t < 80; t++) {
                uint32_t f, k;
                if (t < 20) {
                        f = (bb & c) | (~bb & d);
                        k = 0x5a827999;
                } else if (t < 40) {
                        f = bb ^ c ^ d;
                        k = 0x6ed9eba1;
                } else if (t < 60) {
                        f = (bb & c) | (bb & d) | (c & d);
                        k = 0x8f1bbcdc;
                } else {
                        f = bb ^ c ^ d;
                        k = 0xca62c1d6;
                }
                uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
                e = d;
                d = c;
                c = rol32(bb, 30);
                bb = a;
                a = tmp;
        }
        h[0] += a;
        h[1] += bb;
        h[2] += c;
        h[3] += d;
        h[4] += e;
}

void ws_sha1(const void *data, size_t len, uint8_t out[static WS_SHA1_LEN]) {
        uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
        const uint8_t *p = data;
        uint8_t last[128] = {};
        size_t full = len / 64 * 64, rest = len - full;
        uint64_t bits = (uint64_t) len * 8;

        for (size_t i = 0; i < full; i += 64)
                sha1_block(h, p + i);
        /* The tail, 0x80, zeros, and the 64-bit bit length: one or two blocks. */
        if (rest)
                memcpy(last, p + full, rest);
        last[rest] = 0x80;
        size_t n = rest < 56 ? 64 : 128;
        for (unsigned i = 0; i < 8; i++)
                last[n - 1 - i] = (uint8_t) (bits >> (8 * i));
        sha1_block(h, last);
        if (n == 128)
                sha1_block(h, last + 64);
        for (unsigned i = 0; i < 5; i++) {
                out[4 * i] = (uint8_t) (h[i] >> 24);
                out[4 * i + 1] = (uint8_t) (h[i] >> 16);
                out[4 * i + 2] = (uint8_t) (h[i] >> 8);
                out[4 * i + 3] = (uint8_t) h[i];
        }
}

/* ---- handshake ---- */

void ws_make_key(char key[static WS_KEY_SIZE]) {
        uint8_t nonce[16];
        randombytes_buf(nonce, sizeof(nonce));
        sodium_bin2base64(key, WS_KEY_SIZE, nonce, sizeof(nonce), sodium_base64_VARIANT_ORIGINAL);
}

int ws_accept_for_key(const char *key, char out[static WS_ACCEPT_SIZE]) {
        char buf[64 + sizeof(WS_GUID)];
        uint8_t digest[WS_SHA1_LEN];
        size_t kl = strlen(key);

        if (kl > 64)
                return -EINVAL;
        memcpy(buf, key, kl);
        memcpy(buf + kl, WS_GUID, sizeof(WS_GUID) - 1);
        ws_sha1(buf, kl + sizeof(WS_GUID) - 1, digest);
        sodium_bin2base64(out, WS_ACCEPT_SIZE, digest, sizeof(digest),
                          sodium_base64_VARIANT_ORIGINAL);
        return 0;
}

/* The value of header @name in @head (trimmed, into @val), or false. */
static bool find_header(const char *head, size_t len, const char *name, char *val, size_t vlen) {
        size_t nl = strlen(name);
        const char *p = memchr(head, '\n', len), *end = head + len;

        while (p && p < end) {
                const char *line = p + 1;
                const char *eol = memchr(line, '\n', (size_t) (end - line));
                if (!eol)
                        eol = end;
                size_t ll = (size_t) (eol - line);
                if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
                        const char *v = line + nl + 1, *ve = eol;
                        while (v < ve && (*v == ' ' || *v == '\t'))
                                v++;
                        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                                ve--;
                        size_t n = (size_t) (ve - v);
                        if (n >= vlen)
                                n = vlen - 1;
                        memcpy(val, v, n);
                        val[n] = 0;
                        return true;
                }
                p = eol;
        }
        return false;
}

/* Whether the comma-separated list @list has @token (case-insensitive). */
static bool has_token(const char *list, const char *token) {
        size_t tl = strlen(token);
        for (const char *p = list; *p;) {
                p += strspn(p, " \t,");
                size_t n = strcspn(p, ",");
                size_t m = n;
                while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
                        m--;
                if (m == tl && strncasecmp(p, token, tl) == 0)
                        return true;
                p += n;
        }
        return false;
}

static int fail_check(char *err, size_t errlen, const char *msg) {
        if (err && errlen)
                snprintf(err, errlen, "%s", msg);
        return -EPROTO;
}

int ws_check_response(const char *head, size_t len, const char *key, const char *protocol,
                      char *err, size_t errlen) {
        char val[256], want[WS_ACCEPT_SIZE];

        if (!find_header(head, len, "Upgrade", val, sizeof(val)) || strcasecmp(val, "websocket"))
                return fail_check(err, errlen, "WebSocket upgrade: no Upgrade: websocket header");
        if (!find_header(head, len, "Connection", val, sizeof(val)) || !has_token(val, "upgrade"))
                return fail_check(err, errlen, "WebSocket upgrade: no Connection: upgrade header");
        if (ws_accept_for_key(key, want) < 0)
                return fail_check(err, errlen, "WebSocket upgrade: bad key");
        if (!find_header(head, len, "Sec-WebSocket-Accept", val, sizeof(val)))
                return fail_check(err, errlen, "WebSocket upgrade: no Sec-WebSocket-Accept header");
        if (strcmp(val, want) != 0)
                return fail_check(err, errlen, "WebSocket upgrade: wrong Sec-WebSocket-Accept");
        /* Absent is allowed (RFC 6455 §4.1 only forbids one we did not offer). */
        if (protocol && find_header(head, len, "Sec-WebSocket-Protocol", val, sizeof(val)) &&
            strcasecmp(val, protocol) != 0)
                return fail_check(err, errlen, "WebSocket upgrade: server chose another subprotocol");
        return 0;
}

/* ---- frames out ---- */

size_t ws_header_len(uint64_t len) {
        return 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4;
}

size_t ws_put_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
                     const uint8_t mask[static 4]) {
        size_t i = 0;

        out[i++] = (uint8_t) ((fin ? 0x80 : 0) | (opcode & 0x0f));
        if (len < 126) {
                out[i++] = (uint8_t) (0x80 | len);
        } else if (len <= 0xffff) {
                out[i++] = 0x80 | 126;
                out[i++] = (uint8_t) (len >> 8);
                out[i++] = (uint8_t) len;
        } else {
                out[i++] = 0x80 | 127;
                for (int s = 56; s >= 0; s -= 8)
                        out[i++] = (uint8_t) (len >> s);
        }
        memcpy(out + i, mask, 4);
        return i + 4;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[static 4], uint64_t offset) {
        for (size_t i = 0; i < n; i++)
                p[i] ^= mask[(offset + i) & 3];
}

int ws_write_frame(uint8_t *out, size_t size, uint8_t opcode, const void *payload, size_t len,
                   size_t *ret_len) {
        uint8_t mask[4];

        if (opcode >= WS_OP_CLOSE && len > WS_CONTROL_MAX)
                return -EINVAL;
        size_t hl = ws_header_len(len);
        if (size < hl || size - hl < len)
                return -ENOBUFS;
        randombytes_buf(mask, sizeof(mask));
        ws_put_header(out, opcode, true, len, mask);
        if (len)
                memcpy(out + hl, payload, len);
        ws_mask(out + hl, len, mask, 0);
        *ret_len = hl + len;
        return 0;
}

/* ---- frames in ---- */

void ws_parser_init(struct ws_parser *p, uint64_t max_frame) {
        *p = (struct ws_parser) { .max_frame = max_frame };
}

static int parse_fail(struct ws_parser *p, int err, const char *msg) {
        p->err = err;
        p->error = msg;
        return err;
}

static bool close_code_valid(uint16_t code) {
        /* §7.4: 1004-1006 and 1015 are never sent; 1012-2999 are reserved. */
        return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
               (code >= 3000 && code <= 4999);
}

/* The header in p->hdr is complete: checks it and starts the frame. */
static int start_frame(struct ws_parser *p, size_t hl) {
        uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
        uint64_t len = b1 & 0x7f;

        if (hl == 4) {
                len = (uint64_t) p->hdr[2] << 8 | p->hdr[3];
                if (len < 126)
                        return parse_fail(p, -EPROTO, "non-minimal WebSocket frame length");
        } else if (hl == 10) {
                len = 0;
                for (unsigned i = 0; i < 8; i++)
                        len = len << 8 | p->hdr[2 + i];
                if (len >> 63)
                        return parse_fail(p, -EPROTO, "WebSocket frame length has the top bit set");
                if (len <= 0xffff)
                        return parse_fail(p, -EPROTO, "non-minimal WebSocket frame length");
        }
        p->fin = b0 & 0x80;
        p->opcode = b0 & 0x0f;
        if (p->opcode >= 0x8) {
                if (p->opcode > WS_OP_PONG)
                        return parse_fail(p, -EPROTO, "unknown WebSocket control opcode");
                if (!p->fin)
                        return parse_fail(p, -EPROTO, "fragmented WebSocket control frame");
                if (len > WS_CONTROL_MAX)
                        return parse_fail(p, -EPROTO, "WebSocket control frame over 125 bytes");
        } else if (p->opcode == WS_OP_CONTINUATION) {
                if (!p->in_message)
                        return parse_fail(p, -EPROTO, "WebSocket continuation frame without a message");
        } else if (p->opcode == WS_OP_TEXT || p->opcode == WS_OP_BINARY) {
                if (p->in_message)
                        return parse_fail(p, -EPROTO,
                                          "new WebSocket message inside a fragmented one");
                p->in_message = true;
                p->message_opcode = p->opcode;
        } else {
                return parse_fail(p, -EPROTO, "unknown WebSocket data opcode");
        }
        if (len > p->max_frame)
                return parse_fail(p, -EMSGSIZE, "oversize WebSocket frame");
        p->in_frame = true;
        p->left = len;
        p->ctrl_len = 0;
        p->hdr_len = 0;
        return 0;
}

static int read_header(struct ws_parser *p, const uint8_t **data, size_t *n) {
        while (*n > 0) {
                p->hdr[p->hdr_len++] = *(*data)++;
                (*n)--;
                if (p->hdr_len == 2) {
                        if (p->hdr[0] & 0x70)
                                return parse_fail(p, -EPROTO, "WebSocket RSV bits set");
                        if (p->hdr[1] & 0x80)
                                return parse_fail(p, -EPROTO, "masked WebSocket frame from the server");
                }
                if (p->hdr_len < 2)
                        continue;
                uint8_t l7 = p->hdr[1] & 0x7f;
                size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
                if (p->hdr_len == need)
                        return start_frame(p, need);
        }
        return 0;
}

static int control_event(struct ws_parser *p, struct ws_event_data *ev) {
        *ev = (struct ws_event_data) { .opcode = p->opcode, .data = p->ctrl, .len = p->ctrl_len };
        if (p->opcode == WS_OP_PING)
                return WS_EV_PING;
        if (p->opcode == WS_OP_PONG)
                return WS_EV_PONG;
        if (p->ctrl_len == 1)
                return parse_fail(p, -EPROTO, "WebSocket close frame of 1 byte");
        if (p->ctrl_len >= 2) {
                ev->close_code = (uint16_t) (p->ctrl[0] << 8 | p->ctrl[1]);
                if (!close_code_valid(ev->close_code))
                        return parse_fail(p, -EPROTO, "invalid WebSocket close code");
                ev->data = p->ctrl + 2;
                ev->len = p->ctrl_len - 2;
        }
        p->closed = true;
        return WS_EV_CLOSE;
}

int ws_parse(struct ws_parser *p, const uint8_t **data, size_t *n, struct ws_event_data *ev) {
        int r;

        if (p->err)
                return p->err;
        if (p->closed)
                return parse_fail(p, -EPROTO, "WebSocket data after the close frame");
        for (;;) {
                if (p->end_pending) {
                        p->end_pending = false;
                        p->in_message = false;
                        *ev = (struct ws_event_data) { .opcode = p->message_opcode };
                        return WS_EV_MESSAGE_END;
                }
                if (!p->in_frame) {
                        if (*n == 0)
                                return WS_EV_NONE;
                        r = read_header(p, data, n);
                        if (r < 0)
                                return r;
                        if (!p->in_frame)
                                return WS_EV_NONE;
                }
                if (p->opcode >= 0x8) {
                        size_t k = p->left < *n ? (size_t) p->left : *n;
                        memcpy(p->ctrl + p->ctrl_len, *data, k);
                        p->ctrl_len += k;
                        *data += k;
                        *n -= k;
                        p->left -= k;
                        if (p->left > 0)
                                return WS_EV_NONE;
                        p->in_frame = false;
                        return control_event(p, ev);
                }
                if (p->left == 0) {
                        p->in_frame = false;
                        p->end_pending = p->fin;
                        continue;
                }
                if (*n == 0)
                        return WS_EV_NONE;
                size_t k = p->left < *n ? (size_t) p->left : *n;
                *ev = (struct ws_event_data) { .opcode = p->message_opcode, .data = *data, .len = k };
                *data += k;
                *n -= k;
                p->left -= k;
                if (p->left == 0) {
                        p->in_frame = false;
                        p->end_pending = p->fin;
                }
                return WS_EV_DATA;
        }
}
