/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The client side of RFC 6455 WebSocket, as much as the DERP WebSocket variant needs
 * (spec derp.md §1). Pure code: no I/O, no allocation.
 *
 * - Handshake: ws_make_key() (16 bytes from randombytes, base64) for Sec-WebSocket-Key;
 *   ws_check_response() checks a 101 response head: Upgrade: websocket, Connection:
 *   upgrade, Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), and the subprotocol.
 * - Sending: every client frame is masked with a fresh random mask (§5.3).
 * - Receiving: ws_parse() is a streaming parser of server frames: data comes out in
 *   chunks pointing into the input (no copy), so a message may be larger than any buffer
 *   here; continuation frames are joined into their message; control frames (at most 125
 *   bytes, never fragmented) are buffered whole and may come between fragments. Rejected:
 *   masked server frames, RSV bits, unknown opcodes, continuation without a message, a
 *   new data frame inside a fragmented message, non-minimal or 63-bit-overflowing lengths,
 *   and any frame longer than the parser's limit (-EMSGSIZE); a close frame's payload
 *   must be empty or a valid code (+ reason). Errors leave a static message in
 *   ws_parser.error. Text is not checked for UTF-8: the DERP stream refuses text
 *   messages altogether.
 * - SHA-1 is here because no library the project links exports it (libsodium does not);
 *   it is used for the handshake check only, never for security.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_SHA1_LEN 20
#define WS_KEY_SIZE 25          /* base64 of 16 bytes + NUL */
#define WS_ACCEPT_SIZE 29       /* base64 of 20 bytes + NUL */
#define WS_HEADER_MAX 14        /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_CONTROL_MAX 125

enum ws_opcode {
        WS_OP_CONTINUATION = 0x0,
        WS_OP_TEXT = 0x1,
        WS_OP_BINARY = 0x2,
        WS_OP_CLOSE = 0x8,
        WS_OP_PING = 0x9,
        WS_OP_PONG = 0xa,
};

/* Close status codes used here (RFC 6455 §7.4.1). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_UNSUPPORTED_DATA 1003
#define WS_CLOSE_TOO_BIG 1009

void ws_sha1(const void *data, size_t len, uint8_t out[static WS_SHA1_LEN]);

/* A fresh Sec-WebSocket-Key. */
void ws_make_key(char key[static WS_KEY_SIZE]);
/* The Sec-WebSocket-Accept for @key. -EINVAL if @key is over 64 bytes. */
int ws_accept_for_key(const char *key, char out[static WS_ACCEPT_SIZE]);

/*
 * Checks the headers of a 101 response head (@head, @len bytes, status line first) for
 * @key and @protocol. 0, or -EPROTO with a description in @err.
 */
int ws_check_response(const char *head, size_t len, const char *key, const char *protocol,
                      char *err, size_t errlen);

/* Bytes of the header of a client frame with @len payload bytes (mask included). */
size_t ws_header_len(uint64_t len);
/*
 * Writes a client frame header (FIN set unless !@fin, MASK set, @mask) into @out, which
 * has room for ws_header_len(@len). Returns the header length.
 */
size_t ws_put_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len,
                     const uint8_t mask[static 4]);
/* XORs @n bytes with @mask, as if they started at byte @offset of the payload. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[static 4], uint64_t offset);
/*
 * A whole client frame (fresh random mask) into @out (@size bytes); *@ret_len its length.
 * -ENOBUFS if it does not fit, -EINVAL for a control frame over 125 bytes.
 */
int ws_write_frame(uint8_t *out, size_t size, uint8_t opcode, const void *payload, size_t len,
                   size_t *ret_len);

enum ws_event {
        WS_EV_NONE = 0,     /* the input is used up */
        WS_EV_DATA,         /* ev->data/len: a piece of the current message */
        WS_EV_MESSAGE_END,  /* the current data message is complete */
        WS_EV_PING,         /* ev->data/len: the ping's payload, to echo in a pong */
        WS_EV_PONG,
        WS_EV_CLOSE,        /* ev->close_code (0: none given), ev->data/len: the reason */
};

struct ws_event_data {
        uint8_t opcode;         /* WS_EV_DATA / MESSAGE_END: the message's (TEXT or BINARY) */
        const uint8_t *data;
        size_t len;
        uint16_t close_code;
};

struct ws_parser {
        uint64_t max_frame;     /* payload limit of one frame */
        const char *error;      /* after an error: what was wrong */
        /* internal */
        uint8_t hdr[WS_HEADER_MAX];
        size_t hdr_len;
        bool in_frame;
        uint8_t opcode;
        bool fin;
        uint64_t left;
        bool in_message;
        uint8_t message_opcode;
        bool end_pending;
        uint8_t ctrl[WS_CONTROL_MAX];
        size_t ctrl_len;
        bool closed;
        int err;
};

void ws_parser_init(struct ws_parser *p, uint64_t max_frame);

/*
 * Consumes bytes from *@data (*@n of them), advancing both, until something happens.
 * Returns an enum ws_event (> 0) with @ev filled, WS_EV_NONE when the input is used up,
 * -EPROTO for a protocol violation or -EMSGSIZE for an oversize frame (p->error says
 * which; the stream is unusable then). After WS_EV_CLOSE everything is -EPROTO.
 */
int ws_parse(struct ws_parser *p, const uint8_t **data, size_t *n, struct ws_event_data *ev);
