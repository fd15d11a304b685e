/* SPDX-License-Identifier: MIT */
/* Handshake header parsing, formatting and version negotiation (spec §2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "handshake.h"
#include "log.h"
#include "message.h"
#include "unit-helpers.h"

/* ---- The spec's handshake vectors, as a tunnel sees them ------------------------------ */

enum stage {
        ACCEPT,          /* handshake completes with the given version */
        REJECT_READ,     /* no '\n' within VPN_HEADER_MAX + 1 bytes: "too large" */
        REJECT_PARSE,    /* vpn_header_parse fails with .parse_error */
        REJECT_ROLE,     /* parses, but the peer is not a manager */
        REJECT_VERSION,  /* no common major */
};

struct vector {
        const char *name;
        const char *header;     /* as sent, with its '\n'; NULL for the generated 'bad' case */
        enum stage stage;
        int parse_error;
        struct vpn_version version;
};

static const struct vector vectors[] = {
        { "1.3", "codervpn manager 1.3\n", ACCEPT, 0, { 1, 3 } },
        { "1.3,2.1", "codervpn manager 1.3,2.1\n", ACCEPT, 0, { 1, 3 } },
        { "1.0", "codervpn manager 1.0\n", ACCEPT, 0, { 1, 0 } },
        { "1.1", "codervpn manager 1.1\n", ACCEPT, 0, { 1, 1 } },
        { "ssh 3 fields", "ssh manager 1.1\n", REJECT_PARSE, -EINVAL, { 0, 0 } },
        { "ssh 2 fields", "ssh manager\n", REJECT_PARSE, -EINVAL, { 0, 0 } },
        { "no common major", "codervpn manager 2.0,3.0\n", REJECT_VERSION, 0, { 0, 0 } },
        { "old order 0.1", "codervpn 0.1 manager\n", REJECT_PARSE, -EPROTO, { 0, 0 } },
        { "old order supervisor", "codervpn 1.1 supervisor\n", REJECT_PARSE, -EPROTO, { 0, 0 } },
        { "old order tunnel", "codervpn 1.1 tunnel\n", REJECT_PARSE, -EPROTO, { 0, 0 } },
        { "768 bytes of bad", NULL, REJECT_READ, 0, { 0, 0 } },
};

/*
 * What a tunnel does with @data from the manager: find the line the way the reader
 * does (never more than VPN_HEADER_MAX bytes before '\n'), parse it, check the role,
 * negotiate against our advertised versions.
 */
static enum stage tunnel_accepts(const char *data, size_t len, int *parse_error, struct vpn_version *v) {
        const char *nl = memchr(data, '\n', len < VPN_HEADER_MAX + 1 ? len : VPN_HEADER_MAX + 1);
        struct vpn_header h;
        const struct vpn_version *ours;
        size_t n_ours;
        int r;

        if (!nl)
                return REJECT_READ;
        r = vpn_header_parse(data, (size_t) (nl - data), &h);
        *parse_error = r;
        if (r < 0)
                return REJECT_PARSE;
        if (h.role != VPN_ROLE_MANAGER)
                return REJECT_ROLE;
        ours = vpn_role_versions(VPN_ROLE_TUNNEL, &n_ours);
        if (vpn_version_negotiate(ours, n_ours, h.versions, h.n_versions, v) < 0)
                return REJECT_VERSION;
        return ACCEPT;
}

static void test_spec_vectors(void **state) {
        char bad[768 + 1];

        for (size_t i = 0; i < 768; i += 3)
                memcpy(bad + i, "bad", 3);
        bad[768] = '\0';

        for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
                const struct vector *t = &vectors[i];
                const char *data = t->header ?: bad;
                struct vpn_version v = { 0, 0 };
                int parse_error = 0;

                enum stage got = tunnel_accepts(data, strlen(data), &parse_error, &v);
                if (got != t->stage)
                        fail_msg("vector \"%s\": stage %d, want %d", t->name, got, t->stage);
                if (t->stage == ACCEPT && (v.major != t->version.major || v.minor != t->version.minor))
                        fail_msg("vector \"%s\": version %u.%u, want %u.%u", t->name, v.major, v.minor,
                                 t->version.major, t->version.minor);
                if (t->stage == REJECT_PARSE && parse_error != t->parse_error)
                        fail_msg("vector \"%s\": parse error %d, want %d", t->name, parse_error, t->parse_error);
        }
}

/* Builds "codervpn manager 1000000000.m,1000000001.m,..." of exactly @len bytes. */
static void build_header_struct(struct vpn_header *h, size_t len) {
        /* 16 versions, 10-digit majors, minors of 1..10 digits. */
        size_t base = strlen("codervpn manager ") + 16 * (10 + 1 + 1) + 15;
        size_t extra;

        assert_true(len >= base);
        extra = len - base;
        assert_true(extra <= 16 * 9);
        *h = (struct vpn_header) { .role = VPN_ROLE_MANAGER, .n_versions = 16 };
        for (size_t i = 0; i < 16; i++) {
                size_t digits = 1 + (extra > 9 ? 9 : extra);
                uint32_t minor = 1;
                extra -= digits - 1;
                for (size_t d = 1; d < digits; d++)
                        minor *= 10;   /* 10^(digits-1) has exactly `digits` digits; 10^9 fits */
                h->versions[i] = (struct vpn_version) { 1000000000u + (uint32_t) i, minor };
        }
}

/* The 'bad' vector at the parser level: a line over VPN_HEADER_MAX is refused outright. */
static void test_parse_too_long(void **state) {
        char buf[768];
        struct vpn_header h;

        for (size_t i = 0; i < sizeof(buf); i += 3)
                memcpy(buf + i, "bad", 3);
        assert_int_equal(vpn_header_parse(buf, sizeof(buf), &h), -EINVAL);

        /* Even an otherwise well-formed header is refused once it exceeds the limit:
         * take a valid 255-byte one and pad a minor with a leading zero. */
        struct vpn_header big;
        char line[VPN_HEADER_MAX + 8];
        build_header_struct(&big, VPN_HEADER_MAX);
        assert_int_equal(vpn_header_format(&big, line, sizeof(line)), VPN_HEADER_MAX + 1);
        assert_int_equal(line[VPN_HEADER_MAX - 1], '1');      /* the last minor is "1" */
        assert_int_equal(line[VPN_HEADER_MAX - 2], '.');
        line[VPN_HEADER_MAX - 1] = '0';
        line[VPN_HEADER_MAX] = '1';                            /* "....01", 256 bytes */
        assert_int_equal(vpn_header_parse(line, VPN_HEADER_MAX, &h), 0);   /* "...0" is valid */
        assert_int_equal(vpn_header_parse(line, VPN_HEADER_MAX + 1, &h), -EINVAL);
}

static void test_parse_exact_limit(void **state) {
        struct vpn_header h, back;
        char buf[512];

        build_header_struct(&h, VPN_HEADER_MAX);
        int n = vpn_header_format(&h, buf, sizeof(buf));
        assert_int_equal(n, VPN_HEADER_MAX + 1);
        assert_int_equal(buf[VPN_HEADER_MAX], '\n');
        assert_int_equal(strlen(buf), (size_t) n);
        assert_int_equal(vpn_header_parse(buf, VPN_HEADER_MAX, &back), 0);
        assert_int_equal(back.role, VPN_ROLE_MANAGER);
        assert_int_equal(back.n_versions, 16);
        for (size_t i = 0; i < 16; i++) {
                assert_int_equal(back.versions[i].major, h.versions[i].major);
                assert_int_equal(back.versions[i].minor, h.versions[i].minor);
        }
}

/* ---- Header parsing details ----------------------------------------------------------- */

static void test_parse_fields(void **state) {
        struct vpn_header h;
        const char *s;

        s = "codervpn tunnel 1.3";
        assert_int_equal(vpn_header_parse(s, strlen(s), &h), 0);
        assert_int_equal(h.role, VPN_ROLE_TUNNEL);
        assert_int_equal(h.n_versions, 1);
        assert_int_equal(h.versions[0].major, 1);
        assert_int_equal(h.versions[0].minor, 3);

        s = "codervpn client 1.0";
        assert_int_equal(vpn_header_parse(s, strlen(s), &h), 0);
        assert_int_equal(h.role, VPN_ROLE_CLIENT);
        s = "codervpn service 1.0";
        assert_int_equal(vpn_header_parse(s, strlen(s), &h), 0);
        assert_int_equal(h.role, VPN_ROLE_SERVICE);

        static const char *const malformed[] = {
                "",
                "codervpn",
                "codervpn manager",
                "codervpn manager ",
                "codervpn  manager 1.3",      /* double space */
                "codervpn manager  1.3",
                " codervpn manager 1.3",
                "codervpn manager 1.3 ",
                "codervpn manager 1.3 extra",
                "codervpn\tmanager 1.3",
                "CoderVPN manager 1.3",
                "codervpnx manager 1.3",
                "codervpn manager 1.3\r",     /* Go splits strictly: \r\n is an error */
                "codervpn manager 1.3\n",     /* the line is passed without its '\n' */
                "codervpn manager 1",
                "codervpn manager 0.1",
        };
        for (size_t i = 0; i < ELEMENTSOF(malformed); i++) {
                int r = vpn_header_parse(malformed[i], strlen(malformed[i]), &h);
                if (r != -EINVAL)
                        fail_msg("malformed \"%s\": got %d, want -EINVAL", malformed[i], r);
        }

        static const char *const unknown_role[] = {
                "codervpn Manager 1.3",
                "codervpn supervisor 1.3",
                "codervpn manage 1.3",
                "codervpn managers 1.3",
                "codervpn 1.3 manager",
        };
        for (size_t i = 0; i < ELEMENTSOF(unknown_role); i++) {
                int r = vpn_header_parse(unknown_role[i], strlen(unknown_role[i]), &h);
                if (r != -EPROTO)
                        fail_msg("unknown role \"%s\": got %d, want -EPROTO", unknown_role[i], r);
        }

        /* The length is honoured: bytes after @len are not looked at. */
        s = "codervpn manager 1.3,garbage";
        assert_int_equal(vpn_header_parse(s, strlen("codervpn manager 1.3"), &h), 0);
        assert_int_equal(h.n_versions, 1);
}

/* ---- Version lists -------------------------------------------------------------------- */

static void test_versions_invalid(void **state) {
        static const char *const invalid[] = {
                "1", "1.0.0", "a.1", "", "0.1", "0.0",
                "2.0,1.0",         /* descending majors */
                "1.3,2.0,1.5",
                "1.0,1.1",         /* duplicate majors */
                "1.3,2.1,2.1",
                "1.3\r",           /* \r at the end */
                "1.3,2.1\r",
                "1.", ".1", "1..3", "1.3,", ",1.3", "1.3,,2.1", "-1.0", "1.-3",
                " 1.3", "1.3 ", "1,3", "1.a", "1.0x",
                "4294967296.0", "1.4294967296", "99999999999.0",
        };
        struct vpn_version v[VPN_MAX_VERSIONS];
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                int r = vpn_versions_parse(invalid[i], strlen(invalid[i]), v, &n);
                if (r != -EINVAL)
                        fail_msg("versions \"%s\": got %d, want -EINVAL", invalid[i], r);
        }
}

static void test_versions_valid(void **state) {
        struct vpn_version v[VPN_MAX_VERSIONS];
        size_t n = 0;
        const char *s;

        s = "1.3";
        assert_int_equal(vpn_versions_parse(s, strlen(s), v, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].major, 1);
        assert_int_equal(v[0].minor, 3);

        s = "1.3,2.1";
        assert_int_equal(vpn_versions_parse(s, strlen(s), v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].major, 1);
        assert_int_equal(v[0].minor, 3);
        assert_int_equal(v[1].major, 2);
        assert_int_equal(v[1].minor, 1);

        s = "1.0,3.7,10.0,4294967295.4294967295";
        assert_int_equal(vpn_versions_parse(s, strlen(s), v, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(v[1].major, 3);
        assert_int_equal(v[1].minor, 7);
        assert_int_equal(v[2].major, 10);
        assert_int_equal(v[2].minor, 0);
        assert_int_equal(v[3].major, UINT32_MAX);
        assert_int_equal(v[3].minor, UINT32_MAX);

        /* Majors need not be consecutive; minors need not ascend. */
        s = "2.9,5.0";
        assert_int_equal(vpn_versions_parse(s, strlen(s), v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].major, 2);
        assert_int_equal(v[1].major, 5);

        /* As many versions as a 255-byte header holds: all accepted. */
        char buf[VPN_HEADER_MAX + 32] = "";
        size_t room = VPN_HEADER_MAX - strlen("codervpn manager "), count = 0;
        for (unsigned i = 1;; i++) {
                char item[16];
                snprintf(item, sizeof(item), "%s%u.%u", i > 1 ? "," : "", i, i % 10);
                if (strlen(buf) + strlen(item) > room)
                        break;
                strcat(buf, item);
                count++;
        }
        assert_true(count > 16);
        assert_int_equal(vpn_versions_parse(buf, strlen(buf), v, &n), 0);
        assert_int_equal(n, count);
        assert_int_equal(v[count - 1].major, count);
        assert_int_equal(v[count - 1].minor, count % 10);

        /* Only @len bytes are parsed. */
        s = "1.3,x";
        assert_int_equal(vpn_versions_parse(s, 3, v, &n), 0);
        assert_int_equal(n, 1);
}

/* ---- Negotiation ---------------------------------------------------------------------- */

struct nego {
        struct vpn_version ours[4];
        size_t n_ours;
        struct vpn_version theirs[4];
        size_t n_theirs;
        int ret;
        struct vpn_version want;
};

static void test_negotiate(void **state) {
        static const struct nego cases[] = {
                /* spec: ours 1.2 vs theirs 1.3 -> 1.2 */
                { { { 1, 2 } }, 1, { { 1, 3 } }, 1, 0, { 1, 2 } },
                /* minor = min, whichever side has the lower */
                { { { 1, 3 } }, 1, { { 1, 1 } }, 1, 0, { 1, 1 } },
                { { { 1, 3 } }, 1, { { 1, 3 } }, 1, 0, { 1, 3 } },
                { { { 1, 3 } }, 1, { { 1, 0 } }, 1, 0, { 1, 0 } },
                /* highest common major */
                { { { 1, 3 }, { 2, 1 } }, 2, { { 1, 5 }, { 2, 0 }, { 3, 0 } }, 3, 0, { 2, 0 } },
                { { { 1, 3 }, { 2, 1 }, { 3, 4 } }, 3, { { 1, 1 }, { 3, 9 } }, 2, 0, { 3, 4 } },
                { { { 1, 3 }, { 2, 1 }, { 3, 4 } }, 3, { { 2, 7 }, { 4, 0 } }, 2, 0, { 2, 1 } },
                { { { 1, 3 }, { 5, 2 } }, 2, { { 1, 9 }, { 4, 0 } }, 2, 0, { 1, 3 } },
                /* no common major */
                { { { 1, 3 } }, 1, { { 2, 0 }, { 3, 0 } }, 2, -EPROTONOSUPPORT, { 0, 0 } },
                { { { 1, 3 }, { 3, 0 } }, 2, { { 2, 0 }, { 4, 0 } }, 2, -EPROTONOSUPPORT, { 0, 0 } },
                { { { 1, 3 } }, 1, { { 1, 0 } }, 0, -EPROTONOSUPPORT, { 0, 0 } },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct nego *c = &cases[i];
                struct vpn_version v = { 77, 77 };
                int r = vpn_version_negotiate(c->ours, c->n_ours, c->theirs, c->n_theirs, &v);
                if (r != c->ret || (r == 0 && (v.major != c->want.major || v.minor != c->want.minor)))
                        fail_msg("negotiation case %zu: r=%d %u.%u, want r=%d %u.%u", i, r, v.major, v.minor,
                                 c->ret, c->want.major, c->want.minor);
                /* Symmetric: both ends agree on the outcome. */
                struct vpn_version w = { 77, 77 };
                assert_int_equal(vpn_version_negotiate(c->theirs, c->n_theirs, c->ours, c->n_ours, &w), c->ret);
                if (c->ret == 0) {
                        assert_int_equal(w.major, v.major);
                        assert_int_equal(w.minor, v.minor);
                }
        }
}

static void test_role_versions(void **state) {
        size_t n;
        const struct vpn_version *v = vpn_role_versions(VPN_ROLE_TUNNEL, &n);

        assert_int_equal(n, 1);
        assert_int_equal(v[0].major, 1);
        assert_int_equal(v[0].minor, 3);
        v = vpn_role_versions(VPN_ROLE_MANAGER, &n);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].minor, 3);

        assert_true(vpn_version_at_least((struct vpn_version) { 1, 3 }, 1, 3));
        assert_true(vpn_version_at_least((struct vpn_version) { 1, 4 }, 1, 3));
        assert_false(vpn_version_at_least((struct vpn_version) { 1, 2 }, 1, 3));
        assert_false(vpn_version_at_least((struct vpn_version) { 2, 5 }, 1, 3));

        assert_string_equal(vpn_role_name(VPN_ROLE_MANAGER), "manager");
        assert_string_equal(vpn_role_name(VPN_ROLE_TUNNEL), "tunnel");
        assert_string_equal(vpn_role_name(VPN_ROLE_CLIENT), "client");
        assert_string_equal(vpn_role_name(VPN_ROLE_SERVICE), "service");
        assert_int_equal(vpn_role_peer(VPN_ROLE_MANAGER), VPN_ROLE_TUNNEL);
        assert_int_equal(vpn_role_peer(VPN_ROLE_TUNNEL), VPN_ROLE_MANAGER);
        assert_int_equal(vpn_role_peer(VPN_ROLE_CLIENT), VPN_ROLE_SERVICE);
        assert_int_equal(vpn_role_peer(VPN_ROLE_SERVICE), VPN_ROLE_CLIENT);
}

/* ---- Formatting ----------------------------------------------------------------------- */

static void test_format_round_trip(void **state) {
        struct vpn_header h = { .role = VPN_ROLE_TUNNEL, .n_versions = 1, .versions = { { 1, 3 } } };
        struct vpn_header back;
        char buf[VPN_HEADER_MAX + 2];
        int n;

        n = vpn_header_format(&h, buf, sizeof(buf));
        assert_int_equal(n, strlen("codervpn tunnel 1.3\n"));
        assert_string_equal(buf, "codervpn tunnel 1.3\n");

        h = (struct vpn_header) { .role = VPN_ROLE_MANAGER, .n_versions = 3,
                                  .versions = { { 1, 3 }, { 2, 1 }, { 17, 0 } } };
        n = vpn_header_format(&h, buf, sizeof(buf));
        assert_string_equal(buf, "codervpn manager 1.3,2.1,17.0\n");
        assert_int_equal(n, strlen(buf));
        assert_int_equal(vpn_header_parse(buf, (size_t) n - 1, &back), 0);
        assert_int_equal(back.role, h.role);
        assert_int_equal(back.n_versions, h.n_versions);
        for (size_t i = 0; i < h.n_versions; i++) {
                assert_int_equal(back.versions[i].major, h.versions[i].major);
                assert_int_equal(back.versions[i].minor, h.versions[i].minor);
        }

        for (enum vpn_role r = 0; r < _VPN_ROLE_MAX; r++) {
                h = (struct vpn_header) { .role = r, .n_versions = 1, .versions = { { 1, 0 } } };
                n = vpn_header_format(&h, buf, sizeof(buf));
                assert_true(n > 0);
                assert_int_equal(vpn_header_parse(buf, (size_t) n - 1, &back), 0);
                assert_int_equal(back.role, r);
        }

        /* Nothing to format. */
        h = (struct vpn_header) { .role = VPN_ROLE_TUNNEL, .n_versions = 0 };
        assert_true(vpn_header_format(&h, buf, sizeof(buf)) < 0);
}

static void test_format_limit(void **state) {
        struct vpn_header h;
        char buf[512];

        /* 255 bytes of content: fine. */
        build_header_struct(&h, VPN_HEADER_MAX);
        assert_int_equal(vpn_header_format(&h, buf, sizeof(buf)), VPN_HEADER_MAX + 1);

        /* 256 bytes of content: refused, whatever the buffer size. */
        build_header_struct(&h, VPN_HEADER_MAX + 1);
        assert_int_equal(vpn_header_format(&h, buf, sizeof(buf)), -ENOBUFS);

        /* Far above. */
        build_header_struct(&h, VPN_HEADER_MAX + 40);
        assert_int_equal(vpn_header_format(&h, buf, sizeof(buf)), -ENOBUFS);

        /* A buffer too small for a short header. */
        h = (struct vpn_header) { .role = VPN_ROLE_TUNNEL, .n_versions = 1, .versions = { { 1, 3 } } };
        assert_int_equal(vpn_header_format(&h, buf, strlen("codervpn tunnel 1.3\n")), -ENOBUFS);
        assert_int_equal(vpn_header_format(&h, buf, strlen("codervpn tunnel 1.3\n") + 1),
                         (int) strlen("codervpn tunnel 1.3\n"));
        assert_int_equal(vpn_header_format(&h, buf, 5), -ENOBUFS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec_vectors),
                cmocka_unit_test(test_parse_too_long),
                cmocka_unit_test(test_parse_exact_limit),
                cmocka_unit_test(test_parse_fields),
                cmocka_unit_test(test_versions_invalid),
                cmocka_unit_test(test_versions_valid),
                cmocka_unit_test(test_negotiate),
                cmocka_unit_test(test_role_versions),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_format_limit),
        };

        log_open(LOG_TARGET_STDERR, LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
