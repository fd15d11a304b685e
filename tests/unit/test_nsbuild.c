/* SPDX-License-Identifier: MIT */
/* The NetworkSettingsRequest a standalone configuration stands for. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "netsettings.h"
#include "nsbuild.h"

static struct net_prefix prefix(const char *s) {
        struct net_prefix p;
        assert_int_equal(net_prefix_parse(&p, s), 0);
        return p;
}

static struct wg_allowedip allowed(const char *s) {
        struct net_prefix p = prefix(s);
        struct wg_allowedip a = { .family = p.family, .cidr = p.len };
        memcpy(&a.ip6, p.bytes, p.family == AF_INET ? 4 : 16);
        return a;
}

static void request_free(Vpn__NetworkSettingsRequest *r) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_full(void **state) {
        struct net_prefix addrs[] = { prefix("100.64.0.1/32"), prefix("fd7a:115c:a1e0::1/128") };
        struct net_prefix dns[] = { prefix("100.100.100.100/32") };
        /* Host bits set, a duplicate across peers, both families. */
        struct wg_allowedip ips1[] = { allowed("100.64.0.2/32"), allowed("10.20.30.40/16"), allowed("fd7a:115c:a1e0::2/128") };
        struct wg_allowedip ips2[] = { allowed("10.20.0.0/16"), allowed("100.64.0.3/32") };
        struct config_peer peers[] = {
                { .allowed_ips = ips1, .n_allowed_ips = 3 },
                { .allowed_ips = ips2, .n_allowed_ips = 2 },
        };
        char *domains[] = { (char *) "me.coder" };
        struct config c = {
                .addrs = addrs, .n_addrs = 2, .mtu = 1280, .dns_mode = CONFIG_DNS_AUTO,
                .dns_addrs = dns, .n_dns_addrs = 1, .dns_domains = domains, .n_dns_domains = 1,
                .peers = peers, .n_peers = 2,
        };
        Vpn__NetworkSettingsRequest *r;

        assert_int_equal(nsbuild_from_config(&c, &r), 0);
        assert_int_equal(r->mtu, 1280);
        Vpn__NetworkSettingsRequest__IPv4Settings *s4 = r->ipv4_settings;
        assert_int_equal(s4->n_addrs, 2);
        assert_string_equal(s4->addrs[0], "100.64.0.1");
        assert_string_equal(s4->subnet_masks[0], "255.255.255.255");
        assert_string_equal(s4->addrs[1], "100.100.100.100");   /* the responder's, local */
        assert_int_equal(s4->n_included_routes, 3);
        assert_string_equal(s4->included_routes[0]->destination, "100.64.0.2");
        assert_string_equal(s4->included_routes[1]->destination, "10.20.0.0");
        assert_string_equal(s4->included_routes[1]->mask, "255.255.0.0");
        assert_string_equal(s4->included_routes[2]->destination, "100.64.0.3");
        Vpn__NetworkSettingsRequest__IPv6Settings *s6 = r->ipv6_settings;
        assert_int_equal(s6->n_addrs, 1);
        assert_string_equal(s6->addrs[0], "fd7a:115c:a1e0::1");
        assert_int_equal(s6->prefix_lengths[0], 128);
        assert_int_equal(s6->n_included_routes, 1);
        assert_int_equal(s6->included_routes[0]->prefix_length, 128);
        assert_non_null(r->dns_settings);
        assert_int_equal(r->dns_settings->n_servers, 1);
        assert_string_equal(r->dns_settings->servers[0], "100.100.100.100");
        assert_int_equal(r->dns_settings->n_match_domains, 1);
        assert_string_equal(r->dns_settings->match_domains[0], "me.coder");
        assert_string_equal(r->dns_settings->domain_name, "me.coder");

        /* What codervpnd (or a manager) accepts: it survives validation and conversion. */
        struct net_desired d;
        char *error = NULL;
        assert_int_equal(netsettings_to_desired(r, &d, &error), 0);
        assert_int_equal(d.n_addrs, 3);
        assert_int_equal(d.n_routes, 4);
        net_desired_free(&d);
        struct dns_config dc;
        assert_int_equal(netsettings_to_dns(r->dns_settings, &dc, &error), 0);
        assert_int_equal(dc.n_match_domains, 1);
        dns_config_free(&dc);

        /* It packs, so it can go to a manager as it is. */
        size_t len = protobuf_c_message_get_packed_size(&r->base);
        assert_true(len > 0);
        request_free(r);
}

static void test_dns_off_and_empty(void **state) {
        struct net_prefix dns[] = { prefix("100.100.100.100/32") };
        struct config c = { .dns_mode = CONFIG_DNS_OFF, .dns_addrs = dns, .n_dns_addrs = 1 };
        Vpn__NetworkSettingsRequest *r;

        assert_int_equal(nsbuild_from_config(&c, &r), 0);
        assert_null(r->dns_settings);
        /* Both families present and empty: a merge replaces what an earlier request set. */
        assert_non_null(r->ipv4_settings);
        assert_non_null(r->ipv6_settings);
        assert_int_equal(r->ipv4_settings->n_addrs, 0);
        assert_int_equal(r->ipv6_settings->n_included_routes, 0);
        request_free(r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_dns_off_and_empty),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
