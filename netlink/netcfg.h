/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Links, addresses, routes and policy rules over rtnetlink (libnl-route-3).
 * Plain values in, plain values out; every call returns 0 (or a count) or -errno.
 * Only what codervpnd owns is touched: callers name the link, table and rule
 * priorities they manage.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_prefix {
        uint8_t family;      /* AF_INET or AF_INET6 */
        uint8_t len;         /* prefix length */
        union {
                struct in_addr in;
                struct in6_addr in6;
                uint8_t bytes[16];
        };
};

/* "10.0.0.1/24", "fd00::1/64"; without "/len" a host prefix. 0 or -EINVAL (then *ret is untouched). */
int net_prefix_parse(struct net_prefix *ret, const char *s);
/* Writes "addr/len" into @buf (INET6_ADDRSTRLEN + 5 is enough). */
void net_prefix_format(const struct net_prefix *p, char *buf, size_t size);
/* Same family, length and address bytes (host bits count; bytes past an IPv4 address do not). */
bool net_prefix_equal(const struct net_prefix *a, const struct net_prefix *b);
/* Zeroes the host bits, as the kernel does for a route destination. */
void net_prefix_mask(struct net_prefix *p);

enum {
        NET_ROUTE_UNICAST,   /* via the link */
        NET_ROUTE_THROW,     /* stop the lookup in this table: an excluded route */
};

struct net_route {
        struct net_prefix dst;
        uint32_t table;
        uint8_t type;        /* NET_ROUTE_* */
        int ifindex;         /* unicast routes: the output link */
        uint32_t metric;
};

struct net_rule {
        uint8_t family;
        uint32_t priority;
        uint32_t table;
        uint32_t fwmark, fwmask;        /* fwmask 0: no fwmark match */
        bool invert;                    /* "not fwmark ..." */
        int suppress_prefixlen;         /* -1: none */
};

struct netcfg;

/*
 * Lists return 0 and a malloc()ed array in *ret (NULL when empty) for the
 * caller to free(). Deletes fail with the kernel's own errno for "absent":
 * -EADDRNOTAVAIL for addresses, -ESRCH for routes, -ENOENT for rules.
 * Calls that act on a link need its ifindex > 0 (else -EINVAL).
 */
int netcfg_open(struct netcfg **ret);
void netcfg_close(struct netcfg *n);
static inline void netcfg_closep(struct netcfg **n) {
        if (*n)
                netcfg_close(*n);
}

/* Links. */
int netcfg_link_index(struct netcfg *n, const char *ifname);          /* > 0, or -ENODEV (-EINVAL: bad name) */
int netcfg_link_set_mtu(struct netcfg *n, int ifindex, uint32_t mtu);
int netcfg_link_get_mtu(struct netcfg *n, int ifindex, uint32_t *ret);
int netcfg_link_set_up(struct netcfg *n, int ifindex, bool up);
int netcfg_link_is_up(struct netcfg *n, int ifindex);                 /* 1, 0 or -errno */
int netcfg_link_delete(struct netcfg *n, int ifindex);

/* Addresses on one link (permanent ones; link-local IPv6 excluded from lists). Add: -EEXIST if present. */
int netcfg_addr_list(struct netcfg *n, int ifindex, struct net_prefix **ret, size_t *n_ret);
int netcfg_addr_add(struct netcfg *n, int ifindex, const struct net_prefix *p);
int netcfg_addr_del(struct netcfg *n, int ifindex, const struct net_prefix *p);

/*
 * Routes in one table (all links, or only @ifindex when > 0).
 * Routes added here carry protocol RTPROT_STATIC, unicast ones scope link, and
 * their destination is masked first (net_prefix_mask); delete matches on that
 * protocol, so it never removes a route someone else made. A metric of 0 is the
 * kernel's default (IPv6 turns it into 1024, and lists show that).
 * Lists: @family AF_UNSPEC means both, @table 0 every table. Only unicast and
 * throw routes are listed (a gateway is not reported); a throw route has
 * ifindex 0 and is left out when listing by @ifindex.
 */
int netcfg_route_list(struct netcfg *n, uint8_t family, uint32_t table, int ifindex,
                      struct net_route **ret, size_t *n_ret);
int netcfg_route_add(struct netcfg *n, const struct net_route *r);   /* -EEXIST if present */
int netcfg_route_del(struct netcfg *n, const struct net_route *r);   /* -ESRCH if absent */
/*
 * Adds @count routes, pipelining requests and collecting the ACKs after: far
 * fewer round trips than one at a time. Stops at the first failure and
 * returns it; *@done (may be NULL) says how many were added: @r[0 .. *done)
 * are in place, and any later route already sent is taken back out. Only when
 * the socket itself fails do routes after *@done stay unknown.
 */
int netcfg_route_add_many(struct netcfg *n, const struct net_route *r, size_t count, size_t *done);

/*
 * Policy rules, all with action "lookup @table". Add uses NLM_F_EXCL: -EEXIST
 * for an identical rule. Lists: @family AF_UNSPEC means both; rules that
 * struct net_rule cannot express (from, to, iif, other actions, ...) are left out.
 */
int netcfg_rule_list(struct netcfg *n, uint8_t family, struct net_rule **ret, size_t *n_ret);
int netcfg_rule_add(struct netcfg *n, const struct net_rule *r);
int netcfg_rule_del(struct netcfg *n, const struct net_rule *r);

/* /proc/sys/net knobs. */
/* No such file (no IPv6 in the kernel, or no such link) reads as 0. */
int netcfg_ipv6_enabled(const char *ifname);                          /* 1, 0 or -errno */
int netcfg_set_src_valid_mark(bool on);
