/* SPDX-License-Identifier: MIT */
/* struct net_prefix: parsing, formatting, comparing and masking. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "macro.h"
#include "netcfg.h"

static struct net_prefix parsed(const char *s) {
        struct net_prefix p;

        memset(&p, 0xaa, sizeof(p));
        assert_int_equal(net_prefix_parse(&p, s), 0);
        return p;
}

static void assert_formats_as(const char *in, const char *want) {
        struct net_prefix p = parsed(in);
        char buf[INET6_ADDRSTRLEN + 5];

        net_prefix_format(&p, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

static void test_parse_v4(_unused_ void **state) {
        struct net_prefix p = parsed("10.1.2.3/24");
        const uint8_t want[4] = { 10, 1, 2, 3 };

        assert_int_equal(p.family, AF_INET);
        assert_int_equal(p.len, 24);
        assert_memory_equal(p.bytes, want, 4);
        assert_int_equal(p.in.s_addr, inet_addr("10.1.2.3"));
        /* The rest of the union is cleared, not left as it was. */
        for (size_t i = 4; i < sizeof(p.bytes); i++)
                assert_int_equal(p.bytes[i], 0);

        assert_int_equal(parsed("0.0.0.0/0").len, 0);
        assert_int_equal(parsed("255.255.255.255/32").len, 32);
        assert_int_equal(parsed("10.0.0.0/08").len, 8);
}

static void test_parse_v6(_unused_ void **state) {
        struct net_prefix p = parsed("fd00::1/64");
        struct in6_addr want;

        assert_int_equal(inet_pton(AF_INET6, "fd00::1", &want), 1);
        assert_int_equal(p.family, AF_INET6);
        assert_int_equal(p.len, 64);
        assert_memory_equal(&p.in6, &want, sizeof(want));

        assert_int_equal(parsed("::/0").len, 0);
        assert_int_equal(parsed("::1/128").len, 128);
        assert_int_equal(parsed("::ffff:10.0.0.1/96").family, AF_INET6);
}

static void test_parse_host_prefix(_unused_ void **state) {
        struct net_prefix v4 = parsed("192.168.7.9"), v6 = parsed("2001:db8::42");

        assert_int_equal(v4.family, AF_INET);
        assert_int_equal(v4.len, 32);
        assert_int_equal(v6.family, AF_INET6);
        assert_int_equal(v6.len, 128);
}

static void test_parse_bad(_unused_ void **state) {
        static const char *const bad[] = {
                "1.2.3.4/33", "::1/129", "abc", "", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/24x",
                "1.2.3.4x", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/ 24", "1.2.3.4/+24", "1.2.3.4//24",
                "1.2.3.4/24/24", "/24", "/", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4/0024",
                "1.2.3.4/4294967320", "fe80::1%eth0", "fe80::1%eth0/64", ":::1", "fd00::1/64x",
                "fd00::1/1000", "1.2.3.4/24\n",
                "0000:0000:0000:0000:0000:0000:0000:0000:0000/64",
        };
        struct net_prefix p, untouched;

        memset(&untouched, 0x5c, sizeof(untouched));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                p = untouched;
                if (net_prefix_parse(&p, bad[i]) != -EINVAL)
                        fail_msg("\"%s\" was accepted", bad[i]);
                assert_memory_equal(&p, &untouched, sizeof(p));
        }
        assert_int_equal(net_prefix_parse(&p, NULL), -EINVAL);
}

static void test_format(_unused_ void **state) {
        assert_formats_as("10.1.2.3/24", "10.1.2.3/24");
        assert_formats_as("10.1.2.3", "10.1.2.3/32");
        assert_formats_as("0.0.0.0/0", "0.0.0.0/0");
        assert_formats_as("FD00:0:0:0::1/64", "fd00::1/64");
        assert_formats_as("::", "::/128");
        assert_formats_as("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
}

static void test_format_small_buffer_and_invalid(_unused_ void **state) {
        struct net_prefix p = parsed("10.1.2.3/24"), none = { .family = AF_UNSPEC };
        char buf[6] = "xxxxx", one = 'x';

        net_prefix_format(&p, buf, sizeof(buf));
        assert_string_equal(buf, "10.1.");
        net_prefix_format(&p, &one, 0);
        assert_int_equal(one, 'x');
        net_prefix_format(&none, buf, sizeof(buf));
        assert_int_equal(buf[sizeof(buf) - 1], '\0');
}

static bool equals(const struct net_prefix *a, const char *s) {
        struct net_prefix b = parsed(s);

        return net_prefix_equal(a, &b);
}

static void test_equal(_unused_ void **state) {
        struct net_prefix a = parsed("10.1.2.3/24"), b = parsed("10.1.2.3/24");

        assert_true(net_prefix_equal(&a, &b));
        assert_false(equals(&a, "10.1.2.3/25"));
        assert_false(equals(&a, "10.1.2.4/24"));
        assert_false(equals(&a, "::ffff:10.1.2.3/24"));
        assert_true(equals(&a, "10.1.2.3/24"));
        /* An IPv4 prefix is its four bytes: the rest of the union does not count. */
        b.bytes[9] = 0x77;
        assert_true(net_prefix_equal(&a, &b));

        a = parsed("fd00::1/64");
        b = parsed("fd00:0::1/64");
        assert_true(net_prefix_equal(&a, &b));
        b.bytes[15] = 2;
        assert_false(net_prefix_equal(&a, &b));
}

static void assert_masks_to(const char *in, const char *want) {
        struct net_prefix p = parsed(in), w = parsed(want);

        net_prefix_mask(&p);
        assert_true(net_prefix_equal(&p, &w));
        assert_memory_equal(&p, &w, sizeof(p));
}

static void test_mask(_unused_ void **state) {
        assert_masks_to("10.1.2.3/24", "10.1.2.0/24");
        assert_masks_to("10.1.255.3/23", "10.1.254.0/23");
        assert_masks_to("10.1.2.3/32", "10.1.2.3/32");
        assert_masks_to("10.1.2.3/0", "0.0.0.0/0");
        assert_masks_to("255.255.255.255/1", "128.0.0.0/1");
        assert_masks_to("fd00::1234:5678/100", "fd00::1000:0/100");
        assert_masks_to("fd00:1:2:3:4:5:6:7/64", "fd00:1:2:3::/64");
        assert_masks_to("ffff::1/128", "ffff::1/128");
        assert_masks_to("ffff::1/0", "::/0");
        assert_masks_to("ffff::/7", "fe00::/7");
}

static void test_mask_clears_past_ipv4(_unused_ void **state) {
        struct net_prefix p = parsed("10.1.2.3/32");

        p.bytes[12] = 0xff;
        net_prefix_mask(&p);
        assert_int_equal(p.bytes[12], 0);
        assert_int_equal(p.bytes[3], 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_v4),
                cmocka_unit_test(test_parse_v6),
                cmocka_unit_test(test_parse_host_prefix),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_format_small_buffer_and_invalid),
                cmocka_unit_test(test_equal),
                cmocka_unit_test(test_mask),
                cmocka_unit_test(test_mask_clears_past_ipv4),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
