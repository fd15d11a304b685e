/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * toolcmd: what the command-line test tools in tests/tools share.
 *
 * - struct line_reader: commands one a line from a file descriptor (stdin) on an sd-event
 *   loop. Every complete line ('\n' replaced by NUL, nothing else stripped) goes to the
 *   callback, which may modify it (strtok) but not keep it. A line that does not fit the
 *   buffer is dropped (with LINE_READER_REPORT_OVERLONG after printing
 *   "error: line too long" on stdout). At EOF or a read error the reader disables its
 *   event source; with LINE_READER_EXIT_AT_EOF it also exits the event loop with 0.
 * - hex and key files: tool_print_hex() writes lowercase hex on stdout; tool_unhex()
 *   takes exactly an even number of hex digits; tool_read_key() reads a key file
 *   holding 2 * len hex digits, optionally prefixed "privkey:" and followed by white
 *   space (anything after the first white space is ignored).
 *
 * Functions returning int give 0 or a negative errno.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

enum {
        LINE_READER_EXIT_AT_EOF = 1u << 0,      /* EOF or read error: sd_event_exit(event, 0) */
        LINE_READER_REPORT_OVERLONG = 1u << 1,  /* print "error: line too long" when dropping */
};

typedef void (*line_reader_fn)(char *line, void *userdata);

struct line_reader {
        sd_event_source *source;
        line_reader_fn on_line;
        void *userdata;
        unsigned flags;
        char *buf;
        size_t size;    /* bytes in buf, the longest line is size - 2 (then '\n', NUL) */
        size_t len;
};

/* Starts reading @fd (non-blocking or not; EAGAIN and EINTR are waited out) on @event,
 * with a buffer of @size bytes (>= 2). @lr must stay where it is until line_reader_done(). */
int line_reader_start(struct line_reader *lr, sd_event *event, int fd, size_t size,
                      unsigned flags, line_reader_fn on_line, void *userdata);
/* Stops reading and frees the buffer; safe on a zeroed or already done reader. */
void line_reader_done(struct line_reader *lr);

void tool_print_hex(const uint8_t *p, size_t n);
/* @s: 2 * n hex digits (either case), n <= @max; stores n bytes and *@ret = n. */
int tool_unhex(const char *s, uint8_t *out, size_t max, size_t *ret);
/* The whole file, NUL-terminated (*@ret_len without the NUL), at most 64 MiB; free() it. */
int tool_read_file(const char *path, char **ret, size_t *ret_len);
/* A key of exactly @len bytes from @path (see above); -EINVAL when it holds none. The
 * file's text is wiped from memory. */
int tool_read_key(const char *path, uint8_t *key, size_t len);
