/* SPDX-License-Identifier: MIT */
/* toolcmd: see toolcmd.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "macro.h"
#include "toolcmd.h"

static int line_reader_io(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct line_reader *lr = ud;
        ssize_t n = read(fd, lr->buf + lr->len, lr->size - 1 - lr->len);

        if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                if (lr->flags & LINE_READER_EXIT_AT_EOF)
                        return sd_event_exit(sd_event_source_get_event(s), 0);
                return 0;
        }
        lr->len += (size_t) n;
        for (;;) {
                char *nl = memchr(lr->buf, '\n', lr->len);
                if (!nl)
                        break;
                *nl = 0;
                size_t used = (size_t) (nl - lr->buf) + 1;
                lr->on_line(lr->buf, lr->userdata);
                memmove(lr->buf, lr->buf + used, lr->len - used);
                lr->len -= used;
        }
        if (lr->len == lr->size - 1) {
                if (lr->flags & LINE_READER_REPORT_OVERLONG) {
                        printf("error: line too long\n");
                        fflush(stdout);
                }
                lr->len = 0;
        }
        return 0;
}

int line_reader_start(struct line_reader *lr, sd_event *event, int fd, size_t size,
                      unsigned flags, line_reader_fn on_line, void *userdata) {
        if (size < 2 || !on_line)
                return -EINVAL;
        *lr = (struct line_reader) {
                .on_line = on_line, .userdata = userdata, .flags = flags, .size = size,
        };
        lr->buf = malloc(size);
        if (!lr->buf)
                return -ENOMEM;
        int r = sd_event_add_io(event, &lr->source, fd, EPOLLIN, line_reader_io, lr);
        if (r < 0) {
                free(lr->buf);
                lr->buf = NULL;
                return r;
        }
        return 0;
}

void line_reader_done(struct line_reader *lr) {
        lr->source = sd_event_source_disable_unref(lr->source);
        free(lr->buf);
        lr->buf = NULL;
        lr->len = 0;
}

void tool_print_hex(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                printf("%02x", p[i]);
}

int tool_unhex(const char *s, uint8_t *out, size_t max, size_t *ret) {
        size_t n = strlen(s), bin_len;
        if (n % 2 || n / 2 > max)
                return -EINVAL;
        if (sodium_hex2bin(out, max, s, n, NULL, &bin_len, NULL) < 0 || bin_len != n / 2)
                return -EINVAL;
        *ret = bin_len;
        return 0;
}

int tool_read_file(const char *path, char **ret, size_t *ret_len) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        if (!f)
                return -errno;
        for (;;) {
                if (cap - len < 4096) {
                        cap = cap ? cap * 2 : 8192;
                        if (cap > (64u << 20))
                                return -EFBIG;
                        char *p = realloc(buf, cap);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                }
                size_t n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(f))
                return -EIO;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int tool_read_key(const char *path, uint8_t *key, size_t len) {
        _cleanup_free_ char *text = NULL;
        size_t n, kl;
        int r = tool_read_file(path, &text, &n);
        if (r < 0)
                return r;
        text[strcspn(text, " \t\r\n")] = 0;
        const char *h = strncmp(text, "privkey:", 8) == 0 ? text + 8 : text;
        r = tool_unhex(h, key, len, &kl);
        sodium_memzero(text, n);
        if (r < 0 || kl != len)
                return -EINVAL;
        return 0;
}
