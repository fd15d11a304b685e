/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Tells when someone deletes routing rules (systemd-networkd does, for rules it
 * does not know). The caller polls the fd in its event loop and drains it.
 */
#include "apply.h"

struct net_monitor;

int net_monitor_open(struct net_monitor **ret);
void net_monitor_close(struct net_monitor *m);
static inline void net_monitor_closep(struct net_monitor **m) {
        if (*m)
                net_monitor_close(*m);
}
int net_monitor_fd(const struct net_monitor *m);
/* Reads what is pending; 1 if a rule at one of @policy's priorities went away, else 0, or -errno. */
int net_monitor_drain(struct net_monitor *m, const struct net_policy *policy);
