/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* A peer announcing 16 MiB gets memory as its bytes arrive, not up front. */
#define FRAME_GROW_MIN (64u * 1024)

int frame_reader_space(struct frame_reader *r, uint8_t **ret, size_t *room) {
        if (r->len_have < sizeof(r->len_buf)) {
                *ret = r->len_buf + r->len_have;
                *room = sizeof(r->len_buf) - r->len_have;
                return 0;
        }
        if (r->have == r->capacity) {
                size_t want = r->capacity * 2;
                if (want < FRAME_GROW_MIN)
                        want = FRAME_GROW_MIN;
                if (want > r->len)
                        want = r->len;
                uint8_t *p = realloc(r->payload, want);
                if (!p)
                        return -ENOMEM;
                r->payload = p;
                r->capacity = want;
        }
        *ret = r->payload + r->have;
        *room = (r->capacity < r->len ? r->capacity : r->len) - r->have;
        return 0;
}

int frame_reader_advance(struct frame_reader *r, size_t n) {
        if (r->len_have < sizeof(r->len_buf)) {
                r->len_have += n;
                if (r->len_have < sizeof(r->len_buf))
                        return 0;
                r->len = (uint32_t) r->len_buf[0] << 24 | (uint32_t) r->len_buf[1] << 16 |
                         (uint32_t) r->len_buf[2] << 8 | r->len_buf[3];
                if (r->len > VPN_FRAME_MAX)
                        return -EMSGSIZE;
                return r->len == 0;
        }
        r->have += n;
        return r->have == r->len;
}

void frame_reader_reset(struct frame_reader *r) {
        r->len_have = 0;
        r->len = 0;
        r->have = 0;
        /* Keep small buffers for reuse; give a large one back. */
        if (r->capacity > FRAME_GROW_MIN) {
                free(r->payload);
                r->payload = NULL;
                r->capacity = 0;
        }
}

void frame_reader_done(struct frame_reader *r) {
        free(r->payload);
        *r = (struct frame_reader) {};
}

int frame_reader_feed(struct frame_reader *r, const uint8_t **data, size_t *n) {
        while (*n > 0) {
                uint8_t *dst;
                size_t room;
                int k = frame_reader_space(r, &dst, &room);
                if (k < 0)
                        return k;
                if (room > *n)
                        room = *n;
                memcpy(dst, *data, room);
                *data += room;
                *n -= room;
                k = frame_reader_advance(r, room);
                if (k != 0)
                        return k;
        }
        return 0;
}
