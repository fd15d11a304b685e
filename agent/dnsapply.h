/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * The tunnel link's DNS, whichever way this system takes it: systemd-resolved over
 * D-Bus, openresolv's resolvconf, /etc/resolv.conf written in place, or not at all.
 * `auto` picks with dns_mode_detect (resolvconf.h). Creating one first undoes an
 * in-place resolv.conf a crashed instance left; freeing it reverts what it set.
 *
 * The in-place backup is DNSAPPLY_BACKUP_DIR/IFNAME.resolv.conf.orig, so that instances
 * in different network namespaces (each with its own /etc/netns/NS/resolv.conf) do not
 * share one.
 *
 * resolved applies asynchronously: its outcome is logged here (it is where the error is
 * handled: the tunnel keeps running and resolved re-applies when it comes back).
 */
#include <systemd/sd-event.h>

#include "config.h"
#include "dns.h"
#include "resolvconf.h"

#define DNSAPPLY_BACKUP_DIR "/run/codervpnd"

struct dnsapply;

/* On failure *@error (malloc'ed) says why. */
int dnsapply_new(sd_event *event, enum config_dns_mode mode, const char *ifname, int ifindex,
                 struct dnsapply **ret, char **error);
struct dnsapply *dnsapply_free(struct dnsapply *d);
static inline void dnsapply_freep(struct dnsapply **d) {
        if (*d)
                dnsapply_free(*d);
}

enum dns_mode dnsapply_mode(const struct dnsapply *d);

/* After a crash: restores resolv.conf if @ifname's instance left it changed. 1 restored, 0 nothing. */
int dnsapply_restore(const char *ifname, char **error);

/* Sets @c (no servers: removes ours). *@error (malloc'ed) on failure. */
int dnsapply_set(struct dnsapply *d, const struct dns_config *c, char **error);
