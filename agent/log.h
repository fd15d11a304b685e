/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Logging: journald (structured fields) or stderr, plus one optional forwarder
 * that receives every record (codervpnd uses it to send Log messages to the
 * attached managers). A record is emitted where an error is handled, once.
 *
 * Never pass secrets (API tokens, private keys) to these functions.
 */
#include <errno.h>
#include <stddef.h>
#include <syslog.h>

#ifndef LOG_COMPONENT
#define LOG_COMPONENT "codervpnd"
#endif

enum log_target {
        LOG_TARGET_AUTO,     /* journal when stderr is connected to it, else stderr */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
};

struct log_field {
        const char *name;    /* upper-case journal field name, e.g. "PEER_PID" */
        const char *value;
};

typedef void (*log_forward_fn)(int priority, const char *component, const char *message,
                               const struct log_field *fields, size_t n_fields, void *userdata);

void log_open(enum log_target target, int max_priority);
int log_target_from_string(const char *s);      /* enum value or -EINVAL */
int log_priority_from_string(const char *s);    /* LOG_* or -EINVAL */
int log_get_max_priority(void);
void log_set_forwarder(log_forward_fn fn, void *userdata);

/* Returns -abs(error) so that callers can `return log_..._errno(r, ...)`. */
__attribute__((format(printf, 7, 8)))
int log_emit(int priority, int error, const char *component, const char *file, int line,
             const struct log_field *fields, const char *format, ...);

#define log_full_errno_fields(prio, err, fields, ...) \
        log_emit((prio), (err), LOG_COMPONENT, __FILE__, __LINE__, (fields), __VA_ARGS__)
#define log_full_errno(prio, err, ...) log_full_errno_fields(prio, err, NULL, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* A field list is terminated by an entry with a NULL name. */
#define LOG_FIELDS(...) ((const struct log_field[]) { __VA_ARGS__, { NULL, NULL } })
