/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * What codervpnd created on the system, written down before it is created, so
 * that whatever a crashed instance left (link, routes, rules) is removed by the
 * next start or by `codervpnd cleanup` (the unit's ExecStopPost).
 */
#include <net/if.h>

#include "apply.h"
#include "wg.h"

#define NET_STATE_DEFAULT_PATH "/run/codervpnd/network.state"

struct net_state {
        char ifname[IFNAMSIZ];
        enum wg_mode mode;
        struct net_policy policy;
};

/* Written atomically, mode 0600. */
int net_state_save(const char *path, const struct net_state *s);
/* -ENOENT when there is none; -EBADMSG when it is not ours to trust. */
int net_state_load(const char *path, struct net_state *s);
/*
 * Removes what the state file at @path describes, then the file. Returns 1 if
 * there was something to clean, 0 if there was no state file, or -errno.
 */
int net_state_cleanup(const char *path);
