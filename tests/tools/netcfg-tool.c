/* SPDX-License-Identifier: MIT */
/*
 * netcfg-tool: drives netlink/netcfg.h from the command line for the
 * integration tests, one call per run.
 *
 * Lists print one JSON object per line. A failed call prints
 * "netcfg-tool: COMMAND: ENAME: message" on stderr and exits with the errno;
 * a usage error exits 255.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "macro.h"
#include "netcfg.h"

#define RT_TABLE_MAIN_ID 254

static const char *command;

static _Noreturn void usage(void) {
        fprintf(stderr,
                "usage: netcfg-tool COMMAND ARGS\n"
                "  index IF | mtu IF N | get-mtu IF | up IF | down IF | is-up IF | link-del IF\n"
                "  addr-add IF PREFIX | addr-del IF PREFIX | addr-list IF\n"
                "  route-add TABLE IF PREFIX [METRIC] | route-del TABLE IF PREFIX [METRIC]\n"
                "  route-throw TABLE PREFIX | route-throw-del TABLE PREFIX\n"
                "  route-list FAMILY TABLE [IF] | route-add-many TABLE IF COUNT BASEADDR\n"
                "  rule-add|rule-del FAMILY PRIO TABLE [not] [fwmark MARK/MASK] [suppress N]\n"
                "  rule-list FAMILY | ipv6-enabled IF | src-valid-mark 0|1\n"
                "FAMILY: inet, inet6 or all; TABLE: a number or main\n");
        exit(255);
}

static int fail(int r) {
        const char *name = strerrorname_np(-r);

        fprintf(stderr, "netcfg-tool: %s: %s: %s\n", command, name ? name : "?", strerror(-r));
        return -r > 0 && -r < 255 ? -r : 254;
}

static unsigned long parse_ulong(const char *s, unsigned long max) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || end == s || *end || v > max || *s == '-')
                usage();
        return v;
}

static uint32_t parse_table(const char *s) {
        return strcmp(s, "main") == 0 ? RT_TABLE_MAIN_ID : (uint32_t) parse_ulong(s, UINT32_MAX);
}

static uint8_t parse_family(const char *s) {
        if (strcmp(s, "inet") == 0 || strcmp(s, "4") == 0)
                return AF_INET;
        if (strcmp(s, "inet6") == 0 || strcmp(s, "6") == 0)
                return AF_INET6;
        if (strcmp(s, "all") == 0)
                return AF_UNSPEC;
        usage();
}

static struct net_prefix parse_prefix(const char *s) {
        struct net_prefix p;

        if (net_prefix_parse(&p, s) < 0)
                usage();
        return p;
}

static int link_index(struct netcfg *n, const char *ifname) {
        int r = netcfg_link_index(n, ifname);

        if (r < 0)
                exit(fail(r));
        return r;
}

static int cmd_addr_list(struct netcfg *n, const char *ifname) {
        _cleanup_free_ struct net_prefix *p = NULL;
        size_t count = 0;
        int r = netcfg_addr_list(n, link_index(n, ifname), &p, &count);

        if (r < 0)
                return fail(r);
        for (size_t i = 0; i < count; i++) {
                char buf[INET6_ADDRSTRLEN + 5];
                net_prefix_format(&p[i], buf, sizeof(buf));
                printf("{\"prefix\": \"%s\"}\n", buf);
        }
        return 0;
}

static void print_route(const struct net_route *r) {
        char buf[INET6_ADDRSTRLEN + 5];

        net_prefix_format(&r->dst, buf, sizeof(buf));
        printf("{\"type\": \"%s\", \"dst\": \"%s\", \"table\": %u, \"ifindex\": %d, \"metric\": %u}\n",
               r->type == NET_ROUTE_THROW ? "throw" : "unicast", buf, r->table, r->ifindex, r->metric);
}

static int cmd_route_list(struct netcfg *n, int argc, char **argv) {
        _cleanup_free_ struct net_route *routes = NULL;
        size_t count = 0;
        int ifindex = argc > 4 ? link_index(n, argv[4]) : 0;
        int r = netcfg_route_list(n, parse_family(argv[2]), parse_table(argv[3]), ifindex, &routes, &count);

        if (r < 0)
                return fail(r);
        for (size_t i = 0; i < count; i++)
                print_route(&routes[i]);
        return 0;
}

static int cmd_route(struct netcfg *n, int argc, char **argv, bool add) {
        struct net_route r = {
                .table = parse_table(argv[2]),
                .type = NET_ROUTE_UNICAST,
                .ifindex = link_index(n, argv[3]),
                .dst = parse_prefix(argv[4]),
                .metric = argc > 5 ? (uint32_t) parse_ulong(argv[5], UINT32_MAX) : 0,
        };
        int k = add ? netcfg_route_add(n, &r) : netcfg_route_del(n, &r);

        return k < 0 ? fail(k) : 0;
}

static int cmd_throw(struct netcfg *n, char **argv, bool add) {
        struct net_route r = {
                .table = parse_table(argv[2]),
                .type = NET_ROUTE_THROW,
                .dst = parse_prefix(argv[3]),
        };
        int k = add ? netcfg_route_add(n, &r) : netcfg_route_del(n, &r);

        return k < 0 ? fail(k) : 0;
}

/* Adds @i to the address, as one big-endian number. */
static void prefix_add(struct net_prefix *p, size_t i) {
        size_t size = p->family == AF_INET ? 4 : 16;
        unsigned carry = 0;

        for (size_t b = size; b-- > 0;) {
                unsigned v = p->bytes[b] + (unsigned) (i & 0xff) + carry;
                p->bytes[b] = (uint8_t) v;
                carry = v >> 8;
                i >>= 8;
        }
}

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmd_route_add_many(struct netcfg *n, char **argv) {
        uint32_t table = parse_table(argv[2]);
        int ifindex = link_index(n, argv[3]);
        size_t count = parse_ulong(argv[4], 1000000), done = 0;
        struct net_prefix base = parse_prefix(argv[5]);
        _cleanup_free_ struct net_route *routes = calloc(count ? count : 1, sizeof(*routes));
        double start;
        int r;

        if (!routes)
                return fail(-ENOMEM);
        base.len = base.family == AF_INET ? 32 : 128;
        for (size_t i = 0; i < count; i++) {
                routes[i] = (struct net_route) { .dst = base, .table = table, .ifindex = ifindex };
                prefix_add(&routes[i].dst, i);
        }
        start = now_ms();
        r = netcfg_route_add_many(n, routes, count, &done);
        fprintf(stderr, "netcfg-tool: %zu routes in %.1f ms\n", done, now_ms() - start);
        printf("{\"done\": %zu}\n", done);
        return r < 0 ? fail(r) : 0;
}

static struct net_rule parse_rule(int argc, char **argv) {
        struct net_rule r = {
                .family = parse_family(argv[2]),
                .priority = (uint32_t) parse_ulong(argv[3], UINT32_MAX),
                .table = parse_table(argv[4]),
                .suppress_prefixlen = -1,
        };

        for (int i = 5; i < argc; i++) {
                char *slash;
                if (strcmp(argv[i], "not") == 0)
                        r.invert = true;
                else if (strcmp(argv[i], "fwmark") == 0 && i + 1 < argc && (slash = strchr(argv[i + 1], '/'))) {
                        *slash = '\0';
                        r.fwmark = (uint32_t) parse_ulong(argv[++i], UINT32_MAX);
                        r.fwmask = (uint32_t) parse_ulong(slash + 1, UINT32_MAX);
                } else if (strcmp(argv[i], "suppress") == 0 && i + 1 < argc)
                        r.suppress_prefixlen = (int) parse_ulong(argv[++i], 128);
                else
                        usage();
        }
        return r;
}

static int cmd_rule(struct netcfg *n, int argc, char **argv, bool add) {
        struct net_rule r = parse_rule(argc, argv);
        int k = add ? netcfg_rule_add(n, &r) : netcfg_rule_del(n, &r);

        return k < 0 ? fail(k) : 0;
}

static int cmd_rule_list(struct netcfg *n, const char *family) {
        _cleanup_free_ struct net_rule *rules = NULL;
        size_t count = 0;
        int r = netcfg_rule_list(n, parse_family(family), &rules, &count);

        if (r < 0)
                return fail(r);
        for (size_t i = 0; i < count; i++)
                printf("{\"family\": \"%s\", \"priority\": %u, \"table\": %u, \"fwmark\": %u, \"fwmask\": %u, "
                       "\"invert\": %s, \"suppress_prefixlen\": %d}\n",
                       rules[i].family == AF_INET ? "inet" : "inet6", rules[i].priority, rules[i].table,
                       rules[i].fwmark, rules[i].fwmask, rules[i].invert ? "true" : "false",
                       rules[i].suppress_prefixlen);
        return 0;
}

static int cmd_addr(struct netcfg *n, char **argv, bool add) {
        struct net_prefix p = parse_prefix(argv[3]);
        int ifindex = link_index(n, argv[2]);
        int r = add ? netcfg_addr_add(n, ifindex, &p) : netcfg_addr_del(n, ifindex, &p);

        return r < 0 ? fail(r) : 0;
}

static int print_result(int r) {
        if (r < 0)
                return fail(r);
        printf("%d\n", r);
        return 0;
}

static int cmd_get_mtu(struct netcfg *n, const char *ifname) {
        uint32_t mtu;
        int r = netcfg_link_get_mtu(n, link_index(n, ifname), &mtu);

        if (r < 0)
                return fail(r);
        printf("%u\n", mtu);
        return 0;
}

/* Commands that name a link only. */
static int run_link_command(struct netcfg *n, const char *cmd, int argc, char **argv) {
        if (strcmp(cmd, "index") == 0)
                return print_result(link_index(n, argv[2]));
        if (strcmp(cmd, "mtu") == 0 && argc == 4) {
                int r = netcfg_link_set_mtu(n, link_index(n, argv[2]), (uint32_t) parse_ulong(argv[3], UINT32_MAX));
                return r < 0 ? fail(r) : 0;
        }
        if (strcmp(cmd, "get-mtu") == 0)
                return cmd_get_mtu(n, argv[2]);
        if (strcmp(cmd, "up") == 0 || strcmp(cmd, "down") == 0) {
                int r = netcfg_link_set_up(n, link_index(n, argv[2]), strcmp(cmd, "up") == 0);
                return r < 0 ? fail(r) : 0;
        }
        if (strcmp(cmd, "is-up") == 0)
                return print_result(netcfg_link_is_up(n, link_index(n, argv[2])));
        if (strcmp(cmd, "link-del") == 0) {
                int r = netcfg_link_delete(n, link_index(n, argv[2]));
                return r < 0 ? fail(r) : 0;
        }
        if (strcmp(cmd, "addr-list") == 0)
                return cmd_addr_list(n, argv[2]);
        usage();
}

static int run(struct netcfg *n, int argc, char **argv) {
        const char *cmd = argv[1];

        if (argc >= 4 && (strcmp(cmd, "addr-add") == 0 || strcmp(cmd, "addr-del") == 0))
                return cmd_addr(n, argv, strcmp(cmd, "addr-add") == 0);
        if (argc >= 5 && (strcmp(cmd, "route-add") == 0 || strcmp(cmd, "route-del") == 0))
                return cmd_route(n, argc, argv, strcmp(cmd, "route-add") == 0);
        if (argc == 4 && (strcmp(cmd, "route-throw") == 0 || strcmp(cmd, "route-throw-del") == 0))
                return cmd_throw(n, argv, strcmp(cmd, "route-throw") == 0);
        if (argc >= 4 && strcmp(cmd, "route-list") == 0)
                return cmd_route_list(n, argc, argv);
        if (argc == 6 && strcmp(cmd, "route-add-many") == 0)
                return cmd_route_add_many(n, argv);
        if (argc >= 5 && (strcmp(cmd, "rule-add") == 0 || strcmp(cmd, "rule-del") == 0))
                return cmd_rule(n, argc, argv, strcmp(cmd, "rule-add") == 0);
        if (argc == 3 && strcmp(cmd, "rule-list") == 0)
                return cmd_rule_list(n, argv[2]);
        if (argc == 3 && strcmp(cmd, "ipv6-enabled") == 0)
                return print_result(netcfg_ipv6_enabled(argv[2]));
        if (argc == 3 && strcmp(cmd, "src-valid-mark") == 0) {
                int r = netcfg_set_src_valid_mark(parse_ulong(argv[2], 1) == 1);
                return r < 0 ? fail(r) : 0;
        }
        if (argc >= 3)
                return run_link_command(n, cmd, argc, argv);
        usage();
}

int main(int argc, char **argv) {
        _cleanup_(netcfg_closep) struct netcfg *n = NULL;
        int r;

        if (argc < 2)
                usage();
        command = argv[1];
        r = netcfg_open(&n);
        if (r < 0)
                return fail(r);
        return run(n, argc, argv);
}
