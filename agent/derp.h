/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * DERP wire layer (spec derp.md §2, §3): frames are type(1) | length(4, big-endian) |
 * payload. This module reads and writes frames and parses/builds their payloads; it does
 * no I/O. Every function returns 0 (or a documented positive value) or -errno.
 *
 * Frame bound: DERP_FRAME_MAX = 64 KiB + 64 bytes, the largest legitimate frame
 * (ForwardPacket: src key + dst key + a 64 KiB packet; RecvPacket and SendPacket need
 * 64 KiB + 32; ServerKey is read up to 1 KiB; ClientInfo/ServerInfo carry a few dozen
 * bytes of boxed JSON). Longer frames are protocol errors (-EMSGSIZE) and end the
 * connection.
 *
 * Keys are never logged or printed by this module.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DERP_MAGIC "DERP\xf0\x9f\x94\x91"
#define DERP_MAGIC_LEN 8
#define DERP_PROTOCOL_VERSION 2
#define DERP_KEY_LEN 32
#define DERP_NONCE_LEN 24
#define DERP_BOX_MAC_LEN 16
#define DERP_HEADER_LEN 5
#define DERP_MAX_PACKET_SIZE (64u * 1024)
#define DERP_FRAME_MAX (DERP_MAX_PACKET_SIZE + 2 * DERP_KEY_LEN)
#define DERP_SERVER_KEY_MIN (DERP_MAGIC_LEN + DERP_KEY_LEN)
#define DERP_SERVER_KEY_MAX 1024u
#define DERP_PING_LEN 8

/* The ClientInfo JSON a Go client sends; no "meshKey" (spec §3). */
#define DERP_CLIENT_INFO_JSON "{\"version\":2,\"CanAckPings\":true}"
#define DERP_CLIENT_INFO_JSON_LEN (sizeof(DERP_CLIENT_INFO_JSON) - 1)
#define DERP_CLIENT_INFO_PAYLOAD_LEN \
        (DERP_KEY_LEN + DERP_NONCE_LEN + DERP_BOX_MAC_LEN + DERP_CLIENT_INFO_JSON_LEN)
#define DERP_CLIENT_INFO_FRAME_LEN (DERP_HEADER_LEN + DERP_CLIENT_INFO_PAYLOAD_LEN)

enum derp_frame_type {
        DERP_FRAME_SERVER_KEY = 0x01,
        DERP_FRAME_CLIENT_INFO = 0x02,
        DERP_FRAME_SERVER_INFO = 0x03,
        DERP_FRAME_SEND_PACKET = 0x04,
        DERP_FRAME_RECV_PACKET = 0x05,
        DERP_FRAME_KEEP_ALIVE = 0x06,
        DERP_FRAME_NOTE_PREFERRED = 0x07,
        DERP_FRAME_PEER_GONE = 0x08,
        DERP_FRAME_PEER_PRESENT = 0x09,
        DERP_FRAME_FORWARD_PACKET = 0x0a,
        DERP_FRAME_WATCH_CONNS = 0x10,
        DERP_FRAME_CLOSE_PEER = 0x11,
        DERP_FRAME_PING = 0x12,
        DERP_FRAME_PONG = 0x13,
        DERP_FRAME_HEALTH = 0x14,
        DERP_FRAME_RESTARTING = 0x15,
};

enum derp_peer_gone_reason {
        DERP_PEER_GONE_DISCONNECTED = 0x00,
        DERP_PEER_GONE_NOT_HERE = 0x01,
};

/* ---- incremental frame reader ----------------------------------------------------------- */

struct derp_reader {
        uint8_t hdr[DERP_HEADER_LEN];
        size_t hdr_have;     /* bytes of hdr filled */
        uint8_t type;        /* valid once hdr_have == DERP_HEADER_LEN */
        uint32_t len;        /* payload length, likewise */
        uint8_t *payload;
        size_t have;         /* payload bytes filled */
        size_t capacity;
};

/*
 * Where the next read() should write and how much it may write without crossing a
 * frame boundary. -ENOMEM if the buffer cannot grow.
 */
int derp_reader_space(struct derp_reader *r, uint8_t **ret, size_t *room);

/*
 * Accounts @n bytes written into the space. Returns 1 when a whole frame is buffered
 * (derp_reader_frame, then derp_reader_reset), 0 when more is needed, -EMSGSIZE for a
 * length above DERP_FRAME_MAX. Unknown types are returned like any other.
 */
int derp_reader_advance(struct derp_reader *r, size_t n);

/* Copies bytes from *@data through the reader, advancing it. Same returns as advance. */
int derp_reader_feed(struct derp_reader *r, const uint8_t **data, size_t *n);

/* The buffered frame: its type; payload and length out. Valid until reset. */
static inline uint8_t derp_reader_frame(const struct derp_reader *r, const uint8_t **payload,
                                        size_t *len) {
        *payload = r->len ? r->payload : (const uint8_t *) "";
        *len = r->len;
        return r->type;
}

void derp_reader_reset(struct derp_reader *r);
void derp_reader_done(struct derp_reader *r);

/* ---- frame writers: into @out of @size bytes, frame length in *@ret_len ------------------ */
/* -EMSGSIZE when the payload is over its limit, -ENOBUFS when @out is too small. */

static inline void derp_put_be32(uint8_t out[static 4], uint32_t v) {
        out[0] = (uint8_t) (v >> 24);
        out[1] = (uint8_t) (v >> 16);
        out[2] = (uint8_t) (v >> 8);
        out[3] = (uint8_t) v;
}

static inline uint32_t derp_get_be32(const uint8_t p[static 4]) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline void derp_put_header(uint8_t out[static DERP_HEADER_LEN], uint8_t type,
                                   uint32_t len) {
        out[0] = type;
        derp_put_be32(out + 1, len);
}

int derp_write_frame(uint8_t *out, size_t size, uint8_t type, const void *payload, size_t len,
                     size_t *ret_len);

/*
 * The 37 bytes before a SendPacket's data (header + dst key), for writev; -EMSGSIZE
 * for @len over DERP_MAX_PACKET_SIZE.
 */
int derp_send_packet_header(uint8_t out[static DERP_HEADER_LEN + DERP_KEY_LEN],
                            const uint8_t dst[static DERP_KEY_LEN], size_t len);
int derp_write_send_packet(uint8_t *out, size_t size, const uint8_t dst[static DERP_KEY_LEN],
                           const void *data, size_t len, size_t *ret_len);
int derp_write_keep_alive(uint8_t *out, size_t size, size_t *ret_len);
int derp_write_ping(uint8_t *out, size_t size, const uint8_t data[static DERP_PING_LEN],
                    size_t *ret_len);
int derp_write_pong(uint8_t *out, size_t size, const uint8_t data[static DERP_PING_LEN],
                    size_t *ret_len);
int derp_write_note_preferred(uint8_t *out, size_t size, bool preferred, size_t *ret_len);
int derp_write_health(uint8_t *out, size_t size, const char *text, size_t *ret_len);
int derp_write_restarting(uint8_t *out, size_t size, uint32_t reconnect_in_ms,
                          uint32_t try_for_ms, size_t *ret_len);

/*
 * ClientInfo: client pubkey + nonce + crypto_box_easy(DERP_CLIENT_INFO_JSON) from the
 * client's private key to the server's public key. @nonce NULL = random (real use); a
 * fixed nonce is for tests only. -EINVAL if the key pair is unusable.
 */
int derp_write_client_info(uint8_t *out, size_t size,
                           const uint8_t client_priv[static DERP_KEY_LEN],
                           const uint8_t server_pub[static DERP_KEY_LEN],
                           const uint8_t *nonce, size_t *ret_len);

/* ---- payload parsers (payload only, without the 5-byte header) ---------------------------- */
/* -EBADMSG for a payload that is too short or malformed. */

/* ServerKey: magic + server key [+ future bytes]; -EMSGSIZE above 1 KiB, -EPROTO on bad magic. */
int derp_parse_server_key(const uint8_t *p, size_t len, uint8_t server_pub[static DERP_KEY_LEN]);

struct derp_server_info {
        int64_t version;
        int64_t token_bucket_bytes_per_second;   /* 0 = not sent (no rate limit) */
        int64_t token_bucket_bytes_burst;
};

/*
 * ServerInfo: nonce + box from the server's key to the client's. -EBADMSG if too short,
 * if the box does not open (tampered, wrong keys) or the JSON is not an object with
 * integer fields.
 */
int derp_open_server_info(const uint8_t *p, size_t len,
                          const uint8_t client_priv[static DERP_KEY_LEN],
                          const uint8_t server_pub[static DERP_KEY_LEN],
                          struct derp_server_info *ret);

/* RecvPacket: src key + packet; pointers into @p. -EMSGSIZE for a packet over 64 KiB. */
int derp_parse_recv_packet(const uint8_t *p, size_t len, const uint8_t **src,
                           const uint8_t **data, size_t *data_len);

/* PeerGone: key [+ reason]; older servers send the key only (reason = disconnected). */
int derp_parse_peer_gone(const uint8_t *p, size_t len, const uint8_t **key, uint8_t *reason);

/* Ping/Pong: the first 8 bytes (longer payloads are accepted, as upstream does). */
int derp_parse_ping(const uint8_t *p, size_t len, uint8_t data[static DERP_PING_LEN]);

/*
 * Health: the text, NUL-terminated and malloc'd, or NULL when empty (health cleared). The
 * bytes are not checked for UTF-8; -EBADMSG if they contain a NUL.
 */
int derp_parse_health(const uint8_t *p, size_t len, char **ret);

int derp_parse_restarting(const uint8_t *p, size_t len, uint32_t *reconnect_in_ms,
                          uint32_t *try_for_ms);

/* ---- keys ----------------------------------------------------------------------------------- */

#define DERP_NODEKEY_PREFIX "nodekey:"
#define DERP_KEY_TEXT_MAX (16 + 2 * DERP_KEY_LEN + 1)   /* longest prefix we format + hex + NUL */

/* Public key of a (clamped) Curve25519 private key. -EINVAL for a degenerate key. */
int derp_key_public(const uint8_t priv[static DERP_KEY_LEN], uint8_t pub[static DERP_KEY_LEN]);

/* "<prefix><64 hex>", e.g. prefix "nodekey:". -EINVAL on any other form. */
int derp_key_parse(const char *text, const char *prefix, uint8_t key[static DERP_KEY_LEN]);
int derp_key_format(const uint8_t key[static DERP_KEY_LEN], const char *prefix, char *out,
                    size_t size);

static inline int derp_nodekey_parse(const char *text, uint8_t key[static DERP_KEY_LEN]) {
        return derp_key_parse(text, DERP_NODEKEY_PREFIX, key);
}
static inline int derp_nodekey_format(const uint8_t key[static DERP_KEY_LEN], char *out,
                                      size_t size) {
        return derp_key_format(key, DERP_NODEKEY_PREFIX, out, size);
}
