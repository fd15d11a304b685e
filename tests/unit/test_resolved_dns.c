/* SPDX-License-Identifier: MIT */
/* DNSSettings -> struct dns_config (netsettings_to_dns), and resolved's error texts. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "macro.h"
#include "netsettings.h"
#include "resolved.h"
#include "unit-helpers.h"

typedef Vpn__NetworkSettingsRequest__DNSSettings Dns;

/* The spec's DNS request vector (codervpn-protocol.md): decoded, then converted. */
static void test_dns_vector(void **state) {
        uint8_t buf[256];
        size_t n = hex_decode("0a02080222241a220a12666436303a363237613a613432623a3a35331a05636f6465722205636f646572",
                              buf, sizeof(buf));
        Vpn__TunnelMessage *m = vpn__tunnel_message__unpack(NULL, n, buf);
        struct dns_config c;
        char *error = NULL;
        uint8_t want[16];

        assert_non_null(m);
        assert_int_equal(m->msg_case, VPN__TUNNEL_MESSAGE__MSG_NETWORK_SETTINGS);
        const Dns *d = m->network_settings->dns_settings;
        assert_non_null(d);
        assert_string_equal(d->domain_name, "coder");

        assert_int_equal(netsettings_to_dns(d, &c, &error), 0);
        assert_null(error);
        assert_int_equal(c.n_servers, 1);
        assert_int_equal(c.servers[0].family, AF_INET6);
        assert_int_equal(c.servers[0].port, 0);
        assert_int_equal(inet_pton(AF_INET6, "fd60:627a:a42b::53", want), 1);
        assert_memory_equal(c.servers[0].addr, want, 16);
        assert_int_equal(c.n_search_domains, 0);
        assert_int_equal(c.n_match_domains, 1);
        assert_string_equal(c.match_domains[0], "coder");
        assert_false(c.match_domains_no_search);
        dns_config_free(&c);
        vpn__tunnel_message__free_unpacked(m, NULL);
}

static void test_dns_mixed(void **state) {
        Dns d = VPN__NETWORK_SETTINGS_REQUEST__DNSSETTINGS__INIT;
        char *servers[] = { (char *) "100.100.100.100", (char *) "fd60:627a:a42b::53" };
        char *search[] = { (char *) "example.com.", (char *) "corp" };
        char *match[] = { (char *) "coder.", (char *) "my_host.internal" };
        struct dns_config c;
        char *error = NULL;

        d.n_servers = 2, d.servers = servers;
        d.n_search_domains = 2, d.search_domains = search;
        d.n_match_domains = 2, d.match_domains = match;
        d.match_domains_no_search = true;
        assert_int_equal(netsettings_to_dns(&d, &c, &error), 0);
        assert_int_equal(c.n_servers, 2);
        assert_int_equal(c.servers[0].family, AF_INET);
        assert_memory_equal(c.servers[0].addr, "\x64\x64\x64\x64", 4);
        assert_int_equal(c.servers[1].family, AF_INET6);
        assert_string_equal(c.search_domains[0], "example.com");
        assert_string_equal(c.search_domains[1], "corp");
        assert_string_equal(c.match_domains[0], "coder");
        assert_string_equal(c.match_domains[1], "my_host.internal");
        assert_true(c.match_domains_no_search);
        dns_config_free(&c);
        dns_config_free(&c); /* idempotent */
}

static void test_dns_absent(void **state) {
        struct dns_config c = { .n_servers = 99 };
        char *error = NULL;
        assert_int_equal(netsettings_to_dns(NULL, &c, &error), 0);
        assert_int_equal(c.n_servers, 0);
        assert_null(c.servers);
}

static void expect_error(Dns *d, const char *want) {
        struct dns_config c = { .n_servers = 42 };
        char *error = NULL;
        assert_int_equal(netsettings_to_dns(d, &c, &error), -EINVAL);
        assert_non_null(error);
        if (!strstr(error, want))
                fail_msg("error \"%s\" does not contain \"%s\"", error, want);
        assert_int_equal(c.n_servers, 42); /* untouched */
        free(error);
}

static void test_dns_bad(void **state) {
        Dns d = VPN__NETWORK_SETTINGS_REQUEST__DNSSETTINGS__INIT;
        char *servers[] = { (char *) "fd60::53", (char *) "1.2.3" };
        char *servers2[] = { (char *) "[fd60::53]:53" };
        char *servers3[] = { (char *) "" };
        char *names[] = { (char *) "coder", (char *) "" };
        char *names2[] = { (char *) "." };
        char *names3[] = { (char *) "a..b" };
        char *names4[] = { (char *) "a b" };
        char long_label[80];
        char *names5[] = { long_label };

        d.n_servers = 2, d.servers = servers;
        expect_error(&d, "dns_settings.servers[1]: ");
        d.n_servers = 1, d.servers = servers2;
        expect_error(&d, "dns_settings.servers[0]: ");
        d.servers = servers3;
        expect_error(&d, "dns_settings.servers[0]: ");
        d.n_servers = 0;

        d.n_match_domains = 2, d.match_domains = names;
        expect_error(&d, "dns_settings.match_domains[1]: empty domain name");
        d.n_match_domains = 1, d.match_domains = names2;
        expect_error(&d, "dns_settings.match_domains[0]: empty domain name");
        d.match_domains = names3;
        expect_error(&d, "dns_settings.match_domains[0]: empty label");
        d.match_domains = names4;
        expect_error(&d, "dns_settings.match_domains[0]: invalid character");
        memset(long_label, 'a', 64);
        long_label[64] = 0;
        d.match_domains = names5;
        expect_error(&d, "dns_settings.match_domains[0]: label longer than 63");
        d.n_match_domains = 0;

        d.n_search_domains = 2, d.search_domains = names;
        expect_error(&d, "dns_settings.search_domains[1]: empty domain name");
}

static void test_error_messages(void **state) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s;

        sd_bus_error_set_const(&e, "org.freedesktop.resolve1.LinkBusy", "Link tun0 is managed.");
        s = resolved_error_message("SetLinkDomains", "tun0", 7, &e, -EBUSY);
        assert_non_null(strstr(s, "managed by systemd-networkd"));
        assert_non_null(strstr(s, "[Match] Name=tun0"));
        assert_non_null(strstr(s, "[Link] Unmanaged=yes"));
        free(s);

        sd_bus_error_free(&e);
        sd_bus_error_set_const(&e, SD_BUS_ERROR_ACCESS_DENIED, "Access denied");
        s = resolved_error_message("SetLinkDomains", NULL, 7, &e, -EACCES);
        assert_non_null(strstr(s, "on 7: access denied"));
        const char *actions[] = { "set-dns-servers", "set-domains", "set-default-route", "set-llmnr", "set-mdns",
                                  "revert" };
        for (size_t i = 0; i < ELEMENTSOF(actions); i++) {
                char want[128];
                snprintf(want, sizeof(want), "org.freedesktop.resolve1.%s", actions[i]);
                assert_non_null(strstr(s, want));
        }
        free(s);

        s = resolved_error_message("SetLinkDNS", "tun0", 7, NULL, -EPERM);
        assert_non_null(strstr(s, "org.freedesktop.resolve1.set-dns-servers"));
        free(s);

        sd_bus_error_free(&e);
        sd_bus_error_set_const(&e, "org.freedesktop.DBus.Error.ServiceUnknown", "not running");
        s = resolved_error_message("SetLinkDNS", "tun0", 7, &e, -EHOSTDOWN);
        assert_string_equal(s, "systemd-resolved SetLinkDNS on tun0: not running: org.freedesktop.DBus.Error.ServiceUnknown");
        free(s);
        sd_bus_error_free(&e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dns_vector),
                cmocka_unit_test(test_dns_mixed),
                cmocka_unit_test(test_dns_absent),
                cmocka_unit_test(test_dns_bad),
                cmocka_unit_test(test_error_messages),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
