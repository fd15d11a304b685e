/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * DNS where systemd-resolved is not the system's resolver: mode detection,
 * openresolv's resolvconf(8), or /etc/resolv.conf written in place.
 *
 * Detection (Tailscale's rule, linux-integration.md §4): resolved is "actually
 * the resolver" when it is on the bus AND (nsswitch.conf's `hosts:` lists
 * `resolve` before `dns`, or every nameserver in resolv.conf is 127.0.0.53).
 * Otherwise resolvconf when an openresolv-style binary exists (systemd's
 * resolvconf, a link to resolvectl, only works with resolved and is not
 * counted), otherwise direct; off when resolv.conf does not exist (nothing to
 * write in place, e.g. a dangling link to resolved's stub).
 *
 * Direct mode: the original resolv.conf is copied to a backup (atomically,
 * before resolv.conf is touched), then resolv.conf is rewritten IN PLACE (no
 * rename: it may be a bind mount) with a marker first line. A file that
 * carries the marker is restored from the backup; without the backup it is
 * left alone with an error. A backup is never overwritten while resolv.conf
 * carries the marker. Callers should call resolvconf_direct_restore() at every
 * start and stop whatever the mode (it only acts on the marker): a crash in
 * direct mode must be undone even if detection picks another mode next time.
 *
 * Every function returns 0 (or a count) / -errno; on failure *error (when
 * error is not NULL) is a malloc'ed message for the caller to log.
 */
#include <stdbool.h>

#include "dns.h"

enum dns_mode { DNS_MODE_RESOLVED, DNS_MODE_RESOLVCONF, DNS_MODE_DIRECT, DNS_MODE_OFF };

#define RESOLVCONF_DEFAULT_RESOLV_CONF "/etc/resolv.conf"
#define RESOLVCONF_DEFAULT_NSSWITCH "/etc/nsswitch.conf"
#define RESOLVCONF_DEFAULT_BACKUP "/run/codervpnd/resolv.conf.orig"
#define RESOLVCONF_MARKER "# Written by codervpnd;"
#define RESOLVCONF_TIMEOUT_MS 10000

struct resolvconf_paths {
        const char *resolv_conf;     /* NULL: /etc/resolv.conf */
        const char *nsswitch_conf;   /* NULL: /etc/nsswitch.conf */
        const char *backup;          /* NULL: /run/codervpnd/resolv.conf.orig */
        const char *resolvconf_bin;  /* NULL: first of /usr/sbin, /sbin, /usr/bin; "" or "none": none */
        int timeout_ms;              /* resolvconf's run time; <= 0: RESOLVCONF_TIMEOUT_MS */
};

const char *dns_mode_to_string(enum dns_mode m);

/* Fills *ret; *reason (optional, malloc'ed) says why. Missing files are not errors. */
int dns_mode_detect(const struct resolvconf_paths *p, bool resolved_on_bus, enum dns_mode *ret,
                    char **reason);

/* The pieces of detection, for tests. */
bool nsswitch_resolve_before_dns(const char *nsswitch_text);
bool resolv_conf_only_stub(const char *resolv_conf_text);    /* >= 1 nameserver, all 127.0.0.53 */
bool resolv_conf_has_marker(const char *resolv_conf_text);
/* The resolvconf binary to use, or NULL (systemd's resolvconf is skipped). Static storage or p's. */
const char *resolvconf_find_binary(const struct resolvconf_paths *p);

/*
 * What direct mode writes: the marker line naming backup_path, our nameservers
 * then the original's (at most 3 in all, as glibc reads no more), one `search`
 * line (search domains, match domains unless match_domains_no_search, then the
 * original's search/domain), and the original's options and sortlist lines.
 * original may be NULL. Ports other than 0/53 are refused (-EINVAL).
 */
int resolvconf_render_direct(const struct dns_config *c, const char *original, const char *backup_path,
                             char **ret, char **error);
/* What resolvconf -a gets on stdin: nameserver and search lines only. */
int resolvconf_render_plain(const struct dns_config *c, char **ret, char **error);

/* Direct mode. apply: back up, then write in place. If resolv.conf already
 * carries the marker (a crash), the backup is the original and is kept. */
int resolvconf_direct_apply(const struct resolvconf_paths *p, const struct dns_config *c, char **error);
/* Returns 1 when resolv.conf was restored, 0 when it did not carry the marker
 * (a stale backup is then removed), -ENOENT when it does but the backup is gone. */
int resolvconf_direct_restore(const struct resolvconf_paths *p, char **error);

/* resolvconf mode: `BIN -a IFNAME -m 0 -x` with the config on stdin; `BIN -f -d IFNAME`.
 * Missing binary: -ENOENT; non-zero exit: -EIO; too slow: -ETIMEDOUT (the child is killed). */
int resolvconf_cmd_apply(const struct resolvconf_paths *p, const char *ifname, const struct dns_config *c,
                         char **error);
int resolvconf_cmd_remove(const struct resolvconf_paths *p, const char *ifname, char **error);
