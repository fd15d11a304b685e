/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the DNS responder's wire code (agent/dnswire): every input is a
 * UDP payload given to dns_query_parse and dns_respond against a fixed small table
 * (two names with A and AAAA, one with 40 AAAA so truncation is reachable, zone "coder").
 * dns_respond runs with the normal output size and with a size taken from the input, in
 * buffers whose bytes around the limit are checked untouched.
 *
 * Invariants (abort on violation): the response fits; dns_respond agrees with
 * dns_query_parse on drop / FORMERR / NOTIMP / answer; a response copies the ID,
 * opcode and RD, has QR set and RA clear; an answered query echoes the question
 * bytes; ANCOUNT answers fit the length; the same input gives the same response.
 * Also: the first bytes as text through dns_name_from_text / dns_name_to_text round-trip.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "fuzz-check.h"
#include "dnswire.h"


static struct dns_names *names;
static struct dns_zones *zones;

static void init(void) {
        static struct dns_address a[2], many[40];
        struct dns_entry e[3];
        const char *z[] = { "coder", "example.internal." };

        a[0].family = AF_INET6;
        inet_pton(AF_INET6, "fd60:627a:a42b::1", &a[0].in6);
        a[1].family = AF_INET;
        inet_pton(AF_INET, "100.64.0.1", &a[1].in);
        for (size_t i = 0; i < 40; i++) {
                many[i].family = AF_INET6;
                inet_pton(AF_INET6, "fd60::", &many[i].in6);
                many[i].in6.s6_addr[15] = (uint8_t) i;
        }
        e[0] = (struct dns_entry) { "main.dev.me.coder.", a, 2 };
        e[1] = (struct dns_entry) { "a.b", a + 1, 1 };
        e[2] = (struct dns_entry) { "many.coder", many, 40 };
        if (dns_names_new(e, 3, &names) < 0 || dns_zones_new(z, 2, &zones) < 0)
                abort();
}

static uint16_t g16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

#define GUARD 64

static size_t respond(const uint8_t *data, size_t size, size_t out_size, uint8_t *buf) {
        memset(buf, 0xa5, out_size + GUARD);
        size_t n = dns_respond(names, zones, data, size, buf, out_size);
        CHECK(n <= out_size);
        for (size_t i = out_size; i < out_size + GUARD; i++)
                CHECK(buf[i] == 0xa5);
        return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t out[DNS_EDNS_UDP_MAX + GUARD], out2[DNS_EDNS_UDP_MAX + GUARD];
        struct dns_query q;

        if (!names)
                init();

        /* The input, copied so that reads past its end are caught by ASan. */
        uint8_t *pkt = malloc(size ? size : 1);
        if (!pkt)
                return 0;
        memcpy(pkt, data, size);

        int r = dns_query_parse(pkt, size, &q);
        CHECK(r == 0 || r == -EINVAL || r == -EBADMSG || r == -EOPNOTSUPP);
        size_t n = respond(pkt, size, DNS_EDNS_UDP_MAX, out);
        if (r == -EINVAL)
                CHECK(n == 0);
        else {
                CHECK(n >= DNS_HEADER_SIZE);
                uint16_t f = g16(out + 2);
                CHECK(g16(out) == g16(pkt));
                CHECK(f & DNS_FLAG_QR);
                CHECK(!(f & DNS_FLAG_RA));
                CHECK((f & DNS_FLAG_RD) == (g16(pkt + 2) & DNS_FLAG_RD));
                CHECK(DNS_OPCODE(f) == DNS_OPCODE(g16(pkt + 2)));
                if (r == -EBADMSG)
                        CHECK(n == DNS_HEADER_SIZE && DNS_RCODE(f) == DNS_RCODE_FORMERR);
                else if (r == -EOPNOTSUPP)
                        CHECK(n == DNS_HEADER_SIZE && DNS_RCODE(f) == DNS_RCODE_NOTIMP);
                else {
                        CHECK(q.name_len >= 1 && q.name_len <= DNS_NAME_MAX);
                        CHECK(q.name[q.name_len - 1] == 0);
                        CHECK(q.question_end <= size);
                        CHECK(n >= q.question_end);
                        CHECK(memcmp(out + DNS_HEADER_SIZE, pkt + DNS_HEADER_SIZE,
                                     q.question_end - DNS_HEADER_SIZE) == 0);
                        CHECK(g16(out + 4) == 1);
                        CHECK(n <= (q.edns ? DNS_EDNS_UDP_MAX : DNS_UDP_MAX));
                        size_t an = g16(out + 6);
                        CHECK(q.question_end + an * 16 + (q.edns ? 11 : 0) <= n);
                        CHECK(g16(out + 10) == (q.edns ? 1 : 0));
                        char text[DNS_NAME_MAX + 1];
                        dns_name_to_text(q.name, text);
                        CHECK(strlen(text) <= DNS_NAME_MAX);
                }
        }
        /* Deterministic. */
        CHECK(respond(pkt, size, DNS_EDNS_UDP_MAX, out2) == n && memcmp(out, out2, n) == 0);
        /* A smaller output buffer, size from the input. */
        if (size > 0)
                respond(pkt, size, (size_t) pkt[size - 1] * 5 % (DNS_EDNS_UDP_MAX + 1), out2);

        /* The input as text. */
        char text[300];
        size_t tl = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
        memcpy(text, data, tl);
        text[tl] = 0;
        uint8_t wire[DNS_NAME_MAX];
        int wl = dns_name_from_text(text, wire);
        if (wl >= 0) {
                char back[DNS_NAME_MAX + 1];
                uint8_t wire2[DNS_NAME_MAX];
                CHECK(wl >= 3 && wl <= DNS_NAME_MAX);
                dns_name_to_text(wire, back);
                CHECK(dns_name_from_text(back, wire2) == wl && memcmp(wire, wire2, (size_t) wl) == 0);
        }
        free(pkt);
        return 0;
}
