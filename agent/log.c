/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "macro.h"

#define LOG_LINE_MAX 2048
#define LOG_FIELDS_MAX 16

static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_priority = LOG_INFO;
static log_forward_fn log_forwarder;
static void *log_forwarder_userdata;
/* A forwarder that fails and logs must not re-enter itself. */
static bool log_forwarding;

static const char *const priority_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit", [LOG_ERR] = "error",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_open(enum log_target target, int max_priority) {
        if (target == LOG_TARGET_AUTO)
                target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        log_target = target;
        log_max_priority = max_priority;
}

int log_target_from_string(const char *s) {
        if (strcmp(s, "auto") == 0)
                return LOG_TARGET_AUTO;
        if (strcmp(s, "journal") == 0)
                return LOG_TARGET_JOURNAL;
        if (strcmp(s, "stderr") == 0 || strcmp(s, "console") == 0)
                return LOG_TARGET_STDERR;
        return -EINVAL;
}

int log_priority_from_string(const char *s) {
        for (size_t i = 0; i < sizeof(priority_names) / sizeof(priority_names[0]); i++)
                if (strcasecmp(s, priority_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        if (strcasecmp(s, "err") == 0)
                return LOG_ERR;
        return -EINVAL;
}

int log_get_max_priority(void) {
        return log_max_priority;
}

void log_set_forwarder(log_forward_fn fn, void *userdata) {
        log_forwarder = fn;
        log_forwarder_userdata = userdata;
}

static void write_journal(int priority, int error, const char *component, const char *file, int line,
                          const struct log_field *fields, const char *message) {
        char buf[LOG_FIELDS_MAX + 6][LOG_LINE_MAX + 64];
        struct iovec iov[LOG_FIELDS_MAX + 6];
        size_t n = 0;

#define ADD(...) do { \
                int k_ = snprintf(buf[n], sizeof(buf[n]), __VA_ARGS__); \
                iov[n] = (struct iovec) { buf[n], k_ < 0 ? 0 : (size_t) k_ >= sizeof(buf[n]) ? sizeof(buf[n]) - 1 : (size_t) k_ }; \
                n++; \
        } while (0)
        ADD("MESSAGE=%s", message);
        ADD("PRIORITY=%d", priority);
        ADD("SYSLOG_IDENTIFIER=codervpnd");
        ADD("CODERVPN_COMPONENT=%s", component);
        ADD("CODE_FILE=%s:%d", file, line);
        if (error)
                ADD("ERRNO=%d", abs(error));
        for (size_t i = 0; fields && fields[i].name && i < LOG_FIELDS_MAX; i++)
                ADD("CODERVPN_%s=%s", fields[i].name, fields[i].value ? fields[i].value : "");
#undef ADD
        sd_journal_sendv(iov, (int) n);
}

static void write_stderr(int priority, const char *component, const struct log_field *fields,
                         const char *message) {
        char line[LOG_LINE_MAX * 2];
        size_t off = 0;
        int k;

        k = snprintf(line, sizeof(line), "%s: %s: %s", priority_names[priority], component, message);
        off = k < 0 ? 0 : (size_t) k < sizeof(line) ? (size_t) k : sizeof(line) - 1;
        for (size_t i = 0; fields && fields[i].name && off < sizeof(line) - 1; i++) {
                k = snprintf(line + off, sizeof(line) - off, " %s=%s", fields[i].name,
                             fields[i].value ? fields[i].value : "");
                off = k < 0 ? off : off + (size_t) k < sizeof(line) ? off + (size_t) k : sizeof(line) - 1;
        }
        fprintf(stderr, "%s\n", line);
}

int log_emit(int priority, int error, const char *component, const char *file, int line,
             const struct log_field *fields, const char *format, ...) {
        char message[LOG_LINE_MAX];
        int saved_errno = errno;
        va_list ap;
        int k;

        priority &= LOG_PRIMASK;
        if (priority > log_max_priority)
                goto finish;

        va_start(ap, format);
        k = vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);
        if (error && k >= 0 && (size_t) k < sizeof(message))
                snprintf(message + k, sizeof(message) - (size_t) k, ": %s", strerror(abs(error)));

        if (log_target == LOG_TARGET_JOURNAL)
                write_journal(priority, error, component, file, line, fields, message);
        else
                write_stderr(priority, component, fields, message);

        if (log_forwarder && !log_forwarding) {
                size_t n_fields = 0;
                while (fields && fields[n_fields].name)
                        n_fields++;
                log_forwarding = true;
                log_forwarder(priority, component, message, fields, n_fields, log_forwarder_userdata);
                log_forwarding = false;
        }
finish:
        errno = saved_errno;
        return error ? -abs(error) : 0;
}
