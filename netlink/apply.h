/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Makes the tunnel link's addresses, MTU, routes and policy rules match a
 * desired state, as a diff, rolling back every step already taken when one
 * fails. Routes live in a dedicated table consulted by a rule for traffic not
 * carrying the tunnel's fwmark (so WireGuard's own UDP never loops back in);
 * excluded routes are throw routes in that table; a /0 route also adds
 * `lookup main suppress_prefixlength 0` ahead of it, as wg-quick does.
 */
#include <stdbool.h>
#include <stdint.h>

#include "netcfg.h"

#define NET_DEFAULT_TABLE 7477
#define NET_DEFAULT_RULE_PRIORITY 5270   /* the suppress rule takes one less */
#define NET_DEFAULT_FWMARK 0x1d4         /* WireGuard's fwmark: its own UDP (and DERP) bypasses the table */
#define NET_MAX_ADDRS 256
#define NET_MAX_ROUTES 65536

struct net_policy {
        uint32_t table;
        uint32_t fwmark;             /* WireGuard's fwmark; must be non-zero */
        uint32_t rule_priority;
};

struct net_desired {
        uint32_t mtu;                /* 0: leave as it is */
        struct net_prefix *addrs;
        size_t n_addrs;
        struct net_prefix *routes;   /* through the tunnel */
        size_t n_routes;
        struct net_prefix *excluded; /* never through the tunnel */
        size_t n_excluded;
};

/* What an apply did, for the caller's log. */
struct net_result {
        size_t added, removed;       /* addresses, routes and rules */
        bool ipv6_skipped;           /* IPv6 is disabled on the link (or MTU < 1280) */
};

/*
 * Checks @d without touching the system: families, prefix lengths, counts.
 * Returns 0, or -EINVAL with a message in @error (static storage).
 */
int net_desired_validate(const struct net_desired *d, const char **error);

/*
 * Applies @d to @ifname (which must exist). On failure the link, routes and
 * rules are as they were before the call, and *@error says which step failed.
 */
int net_apply(struct netcfg *n, const char *ifname, const struct net_policy *policy,
              const struct net_desired *d, struct net_result *result, const char **error);

/* Removes our rules and every route in our table (the link goes with wg_delete). */
int net_teardown(struct netcfg *n, const struct net_policy *policy);

/* Re-adds any of our rules that someone deleted; returns how many. */
int net_restore_rules(struct netcfg *n, const struct net_policy *policy, const struct net_desired *d);

void net_desired_free(struct net_desired *d);
