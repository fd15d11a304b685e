/* SPDX-License-Identifier: MIT */
/* NetworkSettingsRequest: partial merges, field-named validation, conversion. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "netsettings.h"

typedef Vpn__NetworkSettingsRequest Req;
typedef Vpn__NetworkSettingsRequest__IPv4Settings V4;
typedef Vpn__NetworkSettingsRequest__IPv6Settings V6;
typedef Vpn__NetworkSettingsRequest__IPv4Settings__IPv4Route R4;
typedef Vpn__NetworkSettingsRequest__IPv6Settings__IPv6Route R6;
typedef Vpn__NetworkSettingsRequest__DNSSettings Dns;

static void assert_prefix(const struct net_prefix *p, const char *want) {
        char buf[64];
        net_prefix_format(p, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

/* The spec's router conversion vector, read the other way: what we receive. */
static void test_router_vector(void **state) {
        Req req = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        V4 s4 = VPN__NETWORK_SETTINGS_REQUEST__IPV4_SETTINGS__INIT;
        V6 s6 = VPN__NETWORK_SETTINGS_REQUEST__IPV6_SETTINGS__INIT;
        R4 inc4 = VPN__NETWORK_SETTINGS_REQUEST__IPV4_SETTINGS__IPV4_ROUTE__INIT, exc4 = inc4;
        R6 inc6 = VPN__NETWORK_SETTINGS_REQUEST__IPV6_SETTINGS__IPV6_ROUTE__INIT, exc6 = inc6;
        R4 *inc4p[] = { &inc4 }, *exc4p[] = { &exc4 };
        R6 *inc6p[] = { &inc6 }, *exc6p[] = { &exc6 };
        char *a4[] = { (char *) "100.64.0.1" }, *m4[] = { (char *) "255.255.255.255" };
        char *a6[] = { (char *) "fd7a:115c:a1e0::1" };
        uint32_t l6[] = { 128 };
        struct net_desired d;
        char *error;

        inc4.destination = (char *) "192.168.0.0", inc4.mask = (char *) "255.255.255.0";
        exc4.destination = (char *) "10.0.0.0", exc4.mask = (char *) "255.0.0.0";
        inc6.destination = (char *) "fd00::", inc6.prefix_length = 64;
        exc6.destination = (char *) "2001:db8::", exc6.prefix_length = 32;
        s4.n_addrs = 1, s4.addrs = a4, s4.n_subnet_masks = 1, s4.subnet_masks = m4;
        s4.n_included_routes = 1, s4.included_routes = inc4p, s4.n_excluded_routes = 1, s4.excluded_routes = exc4p;
        s6.n_addrs = 1, s6.addrs = a6, s6.n_prefix_lengths = 1, s6.prefix_lengths = l6;
        s6.n_included_routes = 1, s6.included_routes = inc6p, s6.n_excluded_routes = 1, s6.excluded_routes = exc6p;
        req.ipv4_settings = &s4, req.ipv6_settings = &s6, req.mtu = 1500;

        assert_int_equal(netsettings_to_desired(&req, &d, &error), 0);
        assert_null(error);
        assert_int_equal(d.mtu, 1500);
        assert_int_equal(d.n_addrs, 2);
        assert_prefix(&d.addrs[0], "100.64.0.1/32");
        assert_prefix(&d.addrs[1], "fd7a:115c:a1e0::1/128");
        assert_int_equal(d.n_routes, 2);
        assert_prefix(&d.routes[0], "192.168.0.0/24");
        assert_prefix(&d.routes[1], "fd00::/64");
        assert_int_equal(d.n_excluded, 2);
        assert_prefix(&d.excluded[0], "10.0.0.0/8");
        assert_prefix(&d.excluded[1], "2001:db8::/32");
        net_desired_free(&d);
}

static void expect_error(const Req *req, const char *want) {
        struct net_desired d = { .n_addrs = 99 };
        char *error = NULL;

        assert_int_equal(netsettings_to_desired(req, &d, &error), -EINVAL);
        assert_non_null(error);
        if (!strstr(error, want))
                fail_msg("error \"%s\" lacks \"%s\"", error, want);
        assert_int_equal(d.n_addrs, 99);   /* untouched on failure */
        free(error);
}

static void test_validation(void **state) {
        Req req = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        V4 s4 = VPN__NETWORK_SETTINGS_REQUEST__IPV4_SETTINGS__INIT;
        V6 s6 = VPN__NETWORK_SETTINGS_REQUEST__IPV6_SETTINGS__INIT;
        char *a4[] = { (char *) "10.0.0.1", (char *) "10.0.0.300" };
        char *m4[] = { (char *) "255.255.255.0", (char *) "255.255.255.0" };
        char *a6[] = { (char *) "fd00::1" };
        uint32_t l6[] = { 129 };

        req.ipv4_settings = &s4;
        s4.n_addrs = 2, s4.addrs = a4, s4.n_subnet_masks = 1, s4.subnet_masks = m4;
        expect_error(&req, "ipv4_settings: 2 addrs but 1 subnet_masks");
        s4.n_subnet_masks = 2;
        expect_error(&req, "ipv4_settings.addrs[1]: \"10.0.0.300\" is not an IPv4 address");
        a4[1] = (char *) "10.0.0.2";
        m4[1] = (char *) "255.0.255.0";
        expect_error(&req, "ipv4_settings.addrs[1]: \"255.0.255.0\" is not a contiguous IPv4 netmask");
        m4[1] = (char *) "255.255.0.0";

        R4 bad = VPN__NETWORK_SETTINGS_REQUEST__IPV4_SETTINGS__IPV4_ROUTE__INIT, *badp[] = { &bad };
        bad.destination = (char *) "fd00::", bad.mask = (char *) "255.0.0.0";
        s4.n_excluded_routes = 1, s4.excluded_routes = badp;
        expect_error(&req, "ipv4_settings.excluded_routes[0]: \"fd00::\" is not an IPv4 address");
        s4.n_excluded_routes = 0;

        req.ipv6_settings = &s6;
        s6.n_addrs = 1, s6.addrs = a6, s6.n_prefix_lengths = 1, s6.prefix_lengths = l6;
        expect_error(&req, "ipv6_settings.addrs[0]: prefix length 129 is above 128");
        l6[0] = 64;
        a6[0] = (char *) "10.1.1.1";
        expect_error(&req, "ipv6_settings.addrs[0]: \"10.1.1.1\" is not an IPv6 address");
        a6[0] = (char *) "fd00::1";

        req.mtu = 100;
        expect_error(&req, "mtu: 100 is outside 576-65535");
        req.mtu = 1280;

        R4 many = VPN__NETWORK_SETTINGS_REQUEST__IPV4_SETTINGS__IPV4_ROUTE__INIT;
        many.destination = (char *) "10.9.0.0", many.mask = (char *) "255.255.0.0";
        size_t n = NET_MAX_ROUTES + 1;
        R4 **lots = calloc(n, sizeof(*lots));
        assert_non_null(lots);
        for (size_t i = 0; i < n; i++)
                lots[i] = &many;
        s4.n_included_routes = n, s4.included_routes = lots;
        expect_error(&req, "ipv4_settings.included_routes: 65537 entries, at most 65536");
        s4.n_included_routes = 0;
        free(lots);

        struct net_desired d;
        char *error;
        assert_int_equal(netsettings_to_desired(&req, &d, &error), 0);
        assert_int_equal(d.n_addrs, 3);
        assert_prefix(&d.addrs[1], "10.0.0.2/16");
        net_desired_free(&d);
}

/* Each part of a request updates only its own part of the merged view. */
static void test_partial_merge(void **state) {
        Req *merged = NULL, *next;
        Req router = VPN__NETWORK_SETTINGS_REQUEST__INIT, dns = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        Req v4only = VPN__NETWORK_SETTINGS_REQUEST__INIT;
        V6 s6 = VPN__NETWORK_SETTINGS_REQUEST__IPV6_SETTINGS__INIT;
        V4 s4 = VPN__NETWORK_SETTINGS_REQUEST__IPV4_SETTINGS__INIT;
        Dns d = VPN__NETWORK_SETTINGS_REQUEST__DNSSETTINGS__INIT;
        char *a6[] = { (char *) "fd60:627a:a42b:1:2:3:4:5" }, *servers[] = { (char *) "fd60:627a:a42b::53" };
        char *a4[] = { (char *) "100.64.0.2" }, *m4[] = { (char *) "255.255.255.255" };
        uint32_t l6[] = { 128 };

        s6.n_addrs = 1, s6.addrs = a6, s6.n_prefix_lengths = 1, s6.prefix_lengths = l6;
        router.ipv6_settings = &s6, router.mtu = 1280;
        assert_int_equal(netsettings_merge(NULL, &router, &merged), 0);

        d.n_servers = 1, d.servers = servers, d.domain_name = (char *) "coder";
        dns.dns_settings = &d;   /* MTU 0 and no router part: both left as they are */
        assert_int_equal(netsettings_merge(merged, &dns, &next), 0);
        protobuf_c_message_free_unpacked(&merged->base, NULL);
        merged = next;
        assert_int_equal(merged->mtu, 1280);
        assert_non_null(merged->ipv6_settings);
        assert_string_equal(merged->ipv6_settings->addrs[0], "fd60:627a:a42b:1:2:3:4:5");
        assert_non_null(merged->dns_settings);
        assert_string_equal(merged->dns_settings->servers[0], "fd60:627a:a42b::53");

        s4.n_addrs = 1, s4.addrs = a4, s4.n_subnet_masks = 1, s4.subnet_masks = m4;
        v4only.ipv4_settings = &s4, v4only.mtu = 1400;
        v4only.tunnel_remote_address = (char *) "127.0.0.1";
        assert_int_equal(netsettings_merge(merged, &v4only, &next), 0);
        assert_null(merged->ipv4_settings);   /* the old view is left as it was */
        protobuf_c_message_free_unpacked(&merged->base, NULL);
        merged = next;
        assert_int_equal(merged->mtu, 1400);
        assert_non_null(merged->ipv6_settings);   /* IPv6 untouched by an IPv4-only update */
        assert_string_equal(merged->ipv4_settings->addrs[0], "100.64.0.2");
        assert_string_equal(merged->tunnel_remote_address, "127.0.0.1");

        /* A new IPv6 part replaces the old one whole. */
        a6[0] = (char *) "fd60:627a:a42b:9::1";
        s6.n_prefix_lengths = 1;
        assert_int_equal(netsettings_merge(merged, &router, &next), 0);
        protobuf_c_message_free_unpacked(&merged->base, NULL);
        merged = next;
        assert_int_equal(merged->ipv6_settings->n_addrs, 1);
        assert_string_equal(merged->ipv6_settings->addrs[0], "fd60:627a:a42b:9::1");
        assert_int_equal(merged->mtu, 1280);

        struct net_desired des;
        char *error;
        assert_int_equal(netsettings_to_desired(merged, &des, &error), 0);
        assert_int_equal(des.n_addrs, 2);
        assert_prefix(&des.addrs[0], "100.64.0.2/32");
        assert_prefix(&des.addrs[1], "fd60:627a:a42b:9::1/128");
        net_desired_free(&des);
        protobuf_c_message_free_unpacked(&merged->base, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_router_vector),
                cmocka_unit_test(test_validation),
                cmocka_unit_test(test_partial_merge),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
