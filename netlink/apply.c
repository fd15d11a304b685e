/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "apply.h"
#include "macro.h"

#define IPV6_MIN_MTU 1280

enum op_kind {
        OP_ADDR_ADD, OP_ADDR_DEL,
        OP_ROUTE_ADD, OP_ROUTE_DEL,
        OP_RULE_ADD, OP_RULE_DEL,
        OP_MTU, OP_UP,
};

struct op {
        enum op_kind kind;
        union {
                struct net_prefix prefix;
                struct net_route route;
                struct net_rule rule;
                uint32_t mtu;        /* OP_MTU: the value before */
                bool up;             /* OP_UP: the state before */
        };
};

/* Everything done so far, so that a failure can put it back in reverse. */
struct journal {
        struct op *ops;
        size_t n, cap;
};

static int journal_push(struct journal *j, const struct op *op) {
        if (j->n == j->cap) {
                size_t cap = j->cap ? j->cap * 2 : 64;
                struct op *v = realloc(j->ops, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                j->ops = v;
                j->cap = cap;
        }
        j->ops[j->n++] = *op;
        return 0;
}

static void journal_undo(struct netcfg *n, int ifindex, struct journal *j) {
        while (j->n > 0) {
                const struct op *op = &j->ops[--j->n];
                /* Best effort: each step is independent of the others' outcome. */
                switch (op->kind) {
                case OP_ADDR_ADD: netcfg_addr_del(n, ifindex, &op->prefix); break;
                case OP_ADDR_DEL: netcfg_addr_add(n, ifindex, &op->prefix); break;
                case OP_ROUTE_ADD: netcfg_route_del(n, &op->route); break;
                case OP_ROUTE_DEL: netcfg_route_add(n, &op->route); break;
                case OP_RULE_ADD: netcfg_rule_del(n, &op->rule); break;
                case OP_RULE_DEL: netcfg_rule_add(n, &op->rule); break;
                case OP_MTU: netcfg_link_set_mtu(n, ifindex, op->mtu); break;
                case OP_UP: netcfg_link_set_up(n, ifindex, op->up); break;
                }
        }
}

/* ---- Validation ---------------------------------------------------------------------- */

static int check_prefixes(const struct net_prefix *p, size_t n, size_t max, const char *too_many,
                          const char *bad, const char **error) {
        if (n > max) {
                *error = too_many;
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
                if (!(p[i].family == AF_INET && p[i].len <= 32) && !(p[i].family == AF_INET6 && p[i].len <= 128)) {
                        *error = bad;
                        return -EINVAL;
                }
        return 0;
}

int net_desired_validate(const struct net_desired *d, const char **error) {
        int r;

        if (d->mtu && (d->mtu < 576 || d->mtu > 65535)) {
                *error = "MTU out of range (576-65535)";
                return -EINVAL;
        }
        if ((r = check_prefixes(d->addrs, d->n_addrs, NET_MAX_ADDRS, "too many addresses",
                                "address of unknown family or prefix length", error)) < 0 ||
            (r = check_prefixes(d->routes, d->n_routes, NET_MAX_ROUTES, "too many routes",
                                "route of unknown family or prefix length", error)) < 0 ||
            (r = check_prefixes(d->excluded, d->n_excluded, NET_MAX_ROUTES, "too many excluded routes",
                                "excluded route of unknown family or prefix length", error)) < 0)
                return r;
        *error = NULL;
        return 0;
}

/* ---- Desired and current sets -------------------------------------------------------- */

/* A total order on routes, so that route sets are sorted arrays searched in O(log n). */
static int route_cmp(const void *x, const void *y) {
        const struct net_route *a = x, *b = y;
        int ai = a->type == NET_ROUTE_THROW ? 0 : a->ifindex, bi = b->type == NET_ROUTE_THROW ? 0 : b->ifindex;

        if (a->dst.family != b->dst.family)
                return a->dst.family < b->dst.family ? -1 : 1;
        if (a->dst.len != b->dst.len)
                return a->dst.len < b->dst.len ? -1 : 1;
        int c = memcmp(a->dst.bytes, b->dst.bytes, a->dst.family == AF_INET ? 4 : 16);
        if (c)
                return c;
        if (a->type != b->type)
                return a->type < b->type ? -1 : 1;
        if (a->table != b->table)
                return a->table < b->table ? -1 : 1;
        return ai < bi ? -1 : ai > bi;
}

static void route_set_sort(struct net_route *v, size_t *n) {
        size_t kept = 0;

        if (*n == 0)
                return;   /* an empty list may be NULL, which qsort must not see */
        qsort(v, *n, sizeof(*v), route_cmp);
        for (size_t i = 0; i < *n; i++)
                if (kept == 0 || route_cmp(&v[kept - 1], &v[i]) != 0)
                        v[kept++] = v[i];
        *n = kept;
}

static bool rule_same(const struct net_rule *a, const struct net_rule *b) {
        return a->family == b->family && a->priority == b->priority && a->table == b->table &&
               a->fwmark == b->fwmark && a->fwmask == b->fwmask && a->invert == b->invert &&
               a->suppress_prefixlen == b->suppress_prefixlen;
}

static bool family_wanted(uint8_t family, bool ipv6) {
        return family == AF_INET || (family == AF_INET6 && ipv6);
}

/* Routes and rules @d asks for; @ipv6 false drops the IPv6 ones. */
static int desired_routes(const struct net_desired *d, const struct net_policy *policy, int ifindex, bool ipv6,
                          struct net_route **ret, size_t *n_ret) {
        struct net_route *v = calloc(d->n_routes + d->n_excluded + 1, sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_routes + d->n_excluded; i++) {
                bool excluded = i >= d->n_routes;
                const struct net_prefix *p = excluded ? &d->excluded[i - d->n_routes] : &d->routes[i];
                if (!family_wanted(p->family, ipv6))
                        continue;
                struct net_route r = {
                        .dst = *p,
                        .table = policy->table,
                        .type = excluded ? NET_ROUTE_THROW : NET_ROUTE_UNICAST,
                        .ifindex = excluded ? 0 : ifindex,
                };
                net_prefix_mask(&r.dst);
                v[n++] = r;
        }
        route_set_sort(v, &n);
        *ret = v;
        *n_ret = n;
        return 0;
}

static size_t desired_rules(const struct net_desired *d, const struct net_policy *policy, bool ipv6,
                            struct net_rule out[static 4]) {
        static const uint8_t families[] = { AF_INET, AF_INET6 };
        size_t n = 0;

        for (size_t f = 0; f < ELEMENTSOF(families); f++) {
                bool any = false, full = false;
                if (!family_wanted(families[f], ipv6))
                        continue;
                for (size_t i = 0; i < d->n_routes; i++)
                        if (d->routes[i].family == families[f]) {
                                any = true;
                                full |= d->routes[i].len == 0;
                        }
                if (!any)
                        continue;
                if (full)
                        out[n++] = (struct net_rule) {
                                .family = families[f], .priority = policy->rule_priority - 1,
                                .table = RT_TABLE_MAIN, .suppress_prefixlen = 0,
                        };
                out[n++] = (struct net_rule) {
                        .family = families[f], .priority = policy->rule_priority, .table = policy->table,
                        .fwmark = policy->fwmark, .fwmask = 0xffffffff, .invert = true,
                        .suppress_prefixlen = -1,
                };
        }
        return n;
}

static bool is_our_rule(const struct net_rule *r, const struct net_policy *policy) {
        return r->priority == policy->rule_priority || r->priority == policy->rule_priority - 1;
}

/* Our routes in the table: via our link, or throw. Others' routes there are left alone. */
static int current_routes(struct netcfg *n, const struct net_policy *policy, int ifindex,
                          struct net_route **ret, size_t *n_ret) {
        struct net_route *v;
        size_t count, kept = 0;
        int r = netcfg_route_list(n, AF_UNSPEC, policy->table, 0, &v, &count);

        if (r < 0)
                return r;
        for (size_t i = 0; i < count; i++)
                if (v[i].type == NET_ROUTE_THROW || v[i].ifindex == ifindex)
                        v[kept++] = v[i];
        route_set_sort(v, &kept);
        *ret = v;
        *n_ret = kept;
        return 0;
}

/* ---- Apply --------------------------------------------------------------------------- */

struct plan {
        struct net_prefix *cur_addrs;
        size_t n_cur_addrs;
        struct net_route *want_routes, *cur_routes;
        size_t n_want_routes, n_cur_routes;
        struct net_rule *cur_rules;
        size_t n_cur_rules;
        struct net_rule want_rules[4];
        size_t n_want_rules;
        struct journal journal;
};

static void plan_done(struct plan *p) {
        free(p->cur_addrs);
        free(p->want_routes);
        free(p->cur_routes);
        free(p->cur_rules);
        free(p->journal.ops);
}

static bool prefix_in(const struct net_prefix *p, const struct net_prefix *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (net_prefix_equal(p, &v[i]))
                        return true;
        return false;
}

/* @v is sorted by route_set_sort. */
static bool route_in(const struct net_route *r, const struct net_route *v, size_t n) {
        return n > 0 && bsearch(r, v, n, sizeof(*v), route_cmp) != NULL;
}

static bool rule_in(const struct net_rule *r, const struct net_rule *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (rule_same(r, &v[i]))
                        return true;
        return false;
}

static int do_op(struct netcfg *n, int ifindex, struct journal *j, const struct op *op) {
        int r;
        switch (op->kind) {
        case OP_ADDR_ADD: r = netcfg_addr_add(n, ifindex, &op->prefix); break;
        case OP_ADDR_DEL: r = netcfg_addr_del(n, ifindex, &op->prefix); break;
        case OP_ROUTE_ADD: r = netcfg_route_add(n, &op->route); break;
        case OP_ROUTE_DEL: r = netcfg_route_del(n, &op->route); break;
        case OP_RULE_ADD: r = netcfg_rule_add(n, &op->rule); break;
        case OP_RULE_DEL: r = netcfg_rule_del(n, &op->rule); break;
        default: return -EINVAL;
        }
        return r < 0 ? r : journal_push(j, op);
}

/* Route additions in one pipelined batch: thousands of routes in few round trips. */
static int add_routes(struct netcfg *n, struct plan *p, size_t *added) {
        _cleanup_free_ struct net_route *todo = calloc(p->n_want_routes + 1, sizeof(*todo));
        size_t count = 0, done = 0;
        int r;

        if (!todo)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_want_routes; i++)
                if (!route_in(&p->want_routes[i], p->cur_routes, p->n_cur_routes))
                        todo[count++] = p->want_routes[i];
        if (count == 0)
                return 0;
        r = netcfg_route_add_many(n, todo, count, &done);
        for (size_t i = 0; i < done; i++) {
                int k = journal_push(&p->journal, &(struct op) { .kind = OP_ROUTE_ADD, .route = todo[i] });
                if (k < 0)
                        return k;
        }
        *added += done;
        return r;
}

static int run_plan(struct netcfg *n, int ifindex, const struct net_desired *d, struct plan *p,
                    bool ipv6, struct net_result *result, const char **error) {
        struct journal *j = &p->journal;
        int r;

        if (d->mtu) {
                uint32_t old;
                if ((r = netcfg_link_get_mtu(n, ifindex, &old)) < 0) {
                        *error = "reading the link's MTU";
                        return r;
                }
                if (old != d->mtu) {
                        if ((r = netcfg_link_set_mtu(n, ifindex, d->mtu)) < 0) {
                                *error = "setting the MTU";
                                return r;
                        }
                        if ((r = journal_push(j, &(struct op) { .kind = OP_MTU, .mtu = old })) < 0)
                                return r;
                }
        }

        for (size_t i = 0; i < d->n_addrs; i++) {
                if (!family_wanted(d->addrs[i].family, ipv6) || prefix_in(&d->addrs[i], p->cur_addrs, p->n_cur_addrs) ||
                    prefix_in(&d->addrs[i], d->addrs, i))
                        continue;
                if ((r = do_op(n, ifindex, j, &(struct op) { .kind = OP_ADDR_ADD, .prefix = d->addrs[i] })) < 0) {
                        *error = "adding an address";
                        return r;
                }
                result->added++;
        }

        r = netcfg_link_is_up(n, ifindex);
        if (r == 0) {
                if ((r = netcfg_link_set_up(n, ifindex, true)) < 0 ||
                    (r = journal_push(j, &(struct op) { .kind = OP_UP, .up = false })) < 0) {
                        *error = "bringing the link up";
                        return r;
                }
        } else if (r < 0) {
                *error = "reading the link's state";
                return r;
        }

        if ((r = add_routes(n, p, &result->added)) < 0) {
                *error = "adding a route (does a conflicting route exist in the table?)";
                return r;
        }
        for (size_t i = 0; i < p->n_want_rules; i++) {
                if (rule_in(&p->want_rules[i], p->cur_rules, p->n_cur_rules))
                        continue;
                if ((r = do_op(n, ifindex, j, &(struct op) { .kind = OP_RULE_ADD, .rule = p->want_rules[i] })) < 0) {
                        *error = "adding a routing rule";
                        return r;
                }
                result->added++;
        }

        /* Removals last: until the new state is complete, the old one keeps working. */
        for (size_t i = 0; i < p->n_cur_rules; i++) {
                if (rule_in(&p->cur_rules[i], p->want_rules, p->n_want_rules))
                        continue;
                if ((r = do_op(n, ifindex, j, &(struct op) { .kind = OP_RULE_DEL, .rule = p->cur_rules[i] })) < 0) {
                        *error = "removing a stale routing rule";
                        return r;
                }
                result->removed++;
        }
        for (size_t i = 0; i < p->n_cur_routes; i++) {
                if (route_in(&p->cur_routes[i], p->want_routes, p->n_want_routes))
                        continue;
                if ((r = do_op(n, ifindex, j, &(struct op) { .kind = OP_ROUTE_DEL, .route = p->cur_routes[i] })) < 0) {
                        *error = "removing a stale route";
                        return r;
                }
                result->removed++;
        }
        for (size_t i = 0; i < p->n_cur_addrs; i++) {
                if (prefix_in(&p->cur_addrs[i], d->addrs, d->n_addrs) && family_wanted(p->cur_addrs[i].family, ipv6))
                        continue;
                if ((r = do_op(n, ifindex, j, &(struct op) { .kind = OP_ADDR_DEL, .prefix = p->cur_addrs[i] })) < 0) {
                        *error = "removing a stale address";
                        return r;
                }
                result->removed++;
        }
        return 0;
}

static bool wants_ipv6(const struct net_desired *d) {
        for (size_t i = 0; i < d->n_addrs; i++)
                if (d->addrs[i].family == AF_INET6)
                        return true;
        for (size_t i = 0; i < d->n_routes; i++)
                if (d->routes[i].family == AF_INET6)
                        return true;
        return false;
}

static int read_rules(struct netcfg *n, const struct net_policy *policy, struct plan *p) {
        static const uint8_t families[] = { AF_INET, AF_INET6 };

        for (size_t f = 0; f < ELEMENTSOF(families); f++) {
                struct net_rule *v;
                size_t count;
                int r = netcfg_rule_list(n, families[f], &v, &count);
                if (r == -EAFNOSUPPORT)
                        continue;
                if (r < 0)
                        return r;
                struct net_rule *grown = realloc(p->cur_rules, (p->n_cur_rules + count + 1) * sizeof(*grown));
                if (!grown) {
                        free(v);
                        return -ENOMEM;
                }
                p->cur_rules = grown;
                for (size_t i = 0; i < count; i++)
                        if (is_our_rule(&v[i], policy))
                                p->cur_rules[p->n_cur_rules++] = v[i];
                free(v);
        }
        return 0;
}

int net_apply(struct netcfg *n, const char *ifname, const struct net_policy *policy,
              const struct net_desired *d, struct net_result *result, const char **error) {
        struct plan p = {};
        int ifindex, r;

        *result = (struct net_result) {};
        if ((r = net_desired_validate(d, error)) < 0)
                return r;
        if (policy->fwmark == 0 || policy->table == 0 || policy->rule_priority < 2) {
                *error = "invalid routing policy (fwmark, table or rule priority)";
                return -EINVAL;
        }
        ifindex = netcfg_link_index(n, ifname);
        if (ifindex < 0) {
                *error = "the tunnel link does not exist";
                return ifindex;
        }

        uint32_t mtu = d->mtu;
        if (!mtu && netcfg_link_get_mtu(n, ifindex, &mtu) < 0)
                mtu = 0;
        bool ipv6 = netcfg_ipv6_enabled(ifname) == 1 && mtu >= IPV6_MIN_MTU;
        result->ipv6_skipped = !ipv6 && wants_ipv6(d);

        *error = "reading the current addresses, routes and rules";
        if ((r = netcfg_addr_list(n, ifindex, &p.cur_addrs, &p.n_cur_addrs)) < 0 ||
            (r = current_routes(n, policy, ifindex, &p.cur_routes, &p.n_cur_routes)) < 0 ||
            (r = read_rules(n, policy, &p)) < 0 ||
            (r = desired_routes(d, policy, ifindex, ipv6, &p.want_routes, &p.n_want_routes)) < 0)
                goto finish;
        p.n_want_rules = desired_rules(d, policy, ipv6, p.want_rules);

        *error = NULL;
        r = run_plan(n, ifindex, d, &p, ipv6, result, error);
        if (r < 0) {
                journal_undo(n, ifindex, &p.journal);
                *result = (struct net_result) { .ipv6_skipped = result->ipv6_skipped };
        }
finish:
        plan_done(&p);
        return r;
}

int net_restore_rules(struct netcfg *n, const struct net_policy *policy, const struct net_desired *d) {
        struct plan p = {};
        int restored = 0, r;

        if ((r = read_rules(n, policy, &p)) < 0)
                goto finish;
        /* IPv6 rules exist only if they were applied; the current list tells. */
        bool ipv6 = false;
        for (size_t i = 0; i < d->n_routes && !ipv6; i++)
                ipv6 = d->routes[i].family == AF_INET6;
        p.n_want_rules = desired_rules(d, policy, ipv6, p.want_rules);
        for (size_t i = 0; i < p.n_want_rules; i++) {
                if (rule_in(&p.want_rules[i], p.cur_rules, p.n_cur_rules))
                        continue;
                r = netcfg_rule_add(n, &p.want_rules[i]);
                if (r == -EAFNOSUPPORT)
                        continue;
                if (r < 0)
                        goto finish;
                restored++;
        }
        r = restored;
finish:
        plan_done(&p);
        return r;
}

int net_teardown(struct netcfg *n, const struct net_policy *policy) {
        struct plan p = {};
        struct net_route *routes = NULL;
        size_t n_routes = 0;
        int r, first_error = 0;

        if ((r = read_rules(n, policy, &p)) < 0)
                first_error = r;
        for (size_t i = 0; i < p.n_cur_rules; i++)
                if ((r = netcfg_rule_del(n, &p.cur_rules[i])) < 0 && !first_error)
                        first_error = r;
        if ((r = netcfg_route_list(n, AF_UNSPEC, policy->table, 0, &routes, &n_routes)) < 0 && !first_error)
                first_error = r;
        for (size_t i = 0; i < n_routes; i++)
                if ((r = netcfg_route_del(n, &routes[i])) < 0 && r != -ESRCH && !first_error)
                        first_error = r;
        free(routes);
        plan_done(&p);
        return first_error;
}

void net_desired_free(struct net_desired *d) {
        free(d->addrs);
        free(d->routes);
        free(d->excluded);
        *d = (struct net_desired) {};
}
