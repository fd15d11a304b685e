/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * CoderVPN framing: a 4-byte big-endian length, then that many payload bytes.
 * Lengths above VPN_FRAME_MAX (16 MiB, inclusive limit) are protocol errors.
 */
#include <stddef.h>
#include <stdint.h>

#define VPN_FRAME_MAX (16u * 1024 * 1024)

struct frame_reader {
        uint8_t len_buf[4];
        size_t len_have;     /* bytes of len_buf filled */
        uint32_t len;        /* payload length, valid once len_have == 4 */
        uint8_t *payload;
        size_t have;         /* payload bytes filled */
        size_t capacity;
};

/*
 * Where the next read() should write, and how much it may write without
 * crossing a frame boundary. Returns -ENOMEM if the buffer cannot grow.
 */
int frame_reader_space(struct frame_reader *r, uint8_t **ret, size_t *room);

/*
 * Accounts @n bytes written into the space. Returns 1 when a whole frame is
 * buffered (read it with frame_reader_payload, then frame_reader_reset),
 * 0 when more is needed, -EMSGSIZE for a length above VPN_FRAME_MAX.
 */
int frame_reader_advance(struct frame_reader *r, size_t n);

static inline const uint8_t *frame_reader_payload(const struct frame_reader *r, size_t *len) {
        *len = r->len;
        return r->payload;
}

/* Forgets the buffered frame, keeping the buffer for the next one. */
void frame_reader_reset(struct frame_reader *r);
void frame_reader_done(struct frame_reader *r);

/* Copies @n bytes through the reader; for tests and fuzzing. Same returns as advance. */
int frame_reader_feed(struct frame_reader *r, const uint8_t **data, size_t *n);

static inline void frame_put_len(uint8_t out[static 4], uint32_t len) {
        out[0] = (uint8_t) (len >> 24);
        out[1] = (uint8_t) (len >> 16);
        out[2] = (uint8_t) (len >> 8);
        out[3] = (uint8_t) len;
}
