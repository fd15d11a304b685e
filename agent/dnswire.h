/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * DNS on the wire (RFC 1035), just what the built-in responder needs: parse one
 * query defensively and build the answer from a table of names.
 *
 * Decisions (the unit tests pin each of them):
 *
 * - A message shorter than the 12-byte header, or with QR=1 (a response: answering it
 *   could start a loop between two responders), is dropped: dns_respond returns 0.
 * - Opcode other than QUERY: NOTIMP, header only (QDCOUNT 0), opcode echoed.
 * - Everything else that is malformed is FORMERR, header only: QDCOUNT != 1, ANCOUNT or
 *   NSCOUNT != 0, a truncated question, a label over 63 bytes, a name over 255 bytes,
 *   reserved label types (0x40/0x80), and any compression pointer in the question (the
 *   question is the first name in the message, so a pointer there can only point into the
 *   header or at itself; rejecting them makes loops impossible). Names of other records
 *   in the additional section are skipped; a pointer ends such a name, so no loop either.
 * - EDNS0: an OPT record in the additional section is understood. The response then carries
 *   a minimal OPT (our UDP payload size DNS_EDNS_UDP_MAX, version 0, no options, DO clear)
 *   and may be up to min(requester's size, DNS_EDNS_UDP_MAX) bytes (never below 512).
 *   Echoing it keeps systemd-resolved at its UDP+EDNS0 feature level instead of logging
 *   "degraded feature set". EDNS version > 0 gets BADVERS (RFC 6891 §6.1.3); two OPT
 *   records or an OPT with a non-root name are FORMERR. Without OPT, responses are at most
 *   512 bytes.
 * - Flags of every response: ID, opcode, RD and CD copied; QR=1; RA=0 (we do not recurse);
 *   AD=0; Z=0; AA=1 for answers about our zones and table (NOERROR, NXDOMAIN, NODATA), AA=0
 *   for REFUSED, FORMERR, NOTIMP.
 * - Lookup order: a name in the table (or an ancestor of one, or a zone apex) exists; a
 *   name that exists answers A/AAAA (ANY gives both) with TTL DNS_TTL, or NODATA (NOERROR,
 *   no answers) for other types or when it has no address of that family. Otherwise a name
 *   at or under a match domain is NXDOMAIN, anything else REFUSED. QCLASS must be IN or ANY,
 *   else REFUSED.
 * - Negative answers carry no SOA. RFC 2308 §5: without an SOA a negative answer is not
 *   cached, which is what we want: a workspace's names appear the moment the engine
 *   learns them, and a cached NXDOMAIN would hide them.
 * - DNS_TTL is 5 s: addresses change when agents come and go and the table is the only
 *   truth; answering is local and cheap, so a short TTL costs nothing and bounds staleness.
 * - Answer names are compression pointers to the question (offset 12), so the case the
 *   client used (0x20 randomisation) is echoed exactly; matching is ASCII case-insensitive.
 * - If not every address fits, as many as fit are included and TC is set (no TCP).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define DNS_HEADER_SIZE 12
#define DNS_NAME_MAX 255      /* wire length, including the root label */
#define DNS_LABEL_MAX 63
#define DNS_UDP_MAX 512       /* response size limit without EDNS0 */
#define DNS_EDNS_UDP_MAX 1232 /* our advertised EDNS0 payload size (DNS flag day 2020) */
#define DNS_TTL 5

enum {
        DNS_RCODE_NOERROR = 0,
        DNS_RCODE_FORMERR = 1,
        DNS_RCODE_SERVFAIL = 2,
        DNS_RCODE_NXDOMAIN = 3,
        DNS_RCODE_NOTIMP = 4,
        DNS_RCODE_REFUSED = 5,
        DNS_RCODE_BADVERS = 16, /* extended, needs OPT */
};

enum {
        DNS_TYPE_A = 1,
        DNS_TYPE_NS = 2,
        DNS_TYPE_SOA = 6,
        DNS_TYPE_AAAA = 28,
        DNS_TYPE_OPT = 41,
        DNS_TYPE_ANY = 255,
};

enum {
        DNS_CLASS_IN = 1,
        DNS_CLASS_ANY = 255,
};

/* Header flag bits (host order of the 16-bit flags word). */
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_AA 0x0400
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_FLAG_RA 0x0080
#define DNS_FLAG_AD 0x0020
#define DNS_FLAG_CD 0x0010
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define DNS_RCODE(flags) ((flags) & 0xf)

struct dns_address {
        int family; /* AF_INET or AF_INET6 */
        union {
                struct in_addr in;
                struct in6_addr in6;
        };
};

/* One name the engine knows. @fqdn: text, trailing dot optional, any case. */
struct dns_entry {
        const char *fqdn;
        const struct dns_address *addresses;
        size_t n_addresses;
};

/* A parsed query. */
struct dns_query {
        uint16_t id;
        uint16_t flags;
        uint8_t name[DNS_NAME_MAX];  /* wire form, lower-cased, ends with the root label */
        size_t name_len;
        size_t question_end;         /* offset just past QCLASS */
        uint16_t qtype;
        uint16_t qclass;
        bool edns;
        uint8_t edns_version;
        uint16_t edns_udp_size;
};

/*
 * Parses @pkt. Returns 0; -EBADMSG when the header is readable but the rest is malformed
 * (id and flags are set: answer FORMERR); -EOPNOTSUPP for an opcode other than QUERY
 * (answer NOTIMP); -EINVAL when the message must be dropped (short header, QR=1).
 */
int dns_query_parse(const uint8_t *pkt, size_t len, struct dns_query *q);

/*
 * Text to lower-cased wire form. Accepts "a.b.c" and "a.b.c." (not "" nor "."), labels of
 * 1..63 bytes, at most DNS_NAME_MAX bytes on the wire. Any byte but '.' may be in a label
 * (no escapes). Returns the wire length or -EINVAL.
 */
int dns_name_from_text(const char *text, uint8_t out[DNS_NAME_MAX]);

/* Wire form (as from dns_name_from_text) to text with a trailing dot. @out: 256 bytes. */
void dns_name_to_text(const uint8_t *wire, char out[DNS_NAME_MAX + 1]);

/* The names and zones to answer from; immutable once built, so a swap is atomic. */
struct dns_names;
struct dns_zones;

/*
 * Builds a table. Entries with the same name (in any case) are merged, duplicate
 * addresses dropped. -EINVAL for a bad name or address family, -ENOMEM.
 */
int dns_names_new(const struct dns_entry *entries, size_t n, struct dns_names **ret);
void dns_names_free(struct dns_names *names);
size_t dns_names_count(const struct dns_names *names); /* distinct names given */

int dns_zones_new(const char *const *zones, size_t n, struct dns_zones **ret);
void dns_zones_free(struct dns_zones *zones);

/*
 * Builds the response to @pkt into @out (@out_size should be at least DNS_EDNS_UDP_MAX).
 * @names or @zones may be NULL (empty). Returns the response length, or 0 to drop.
 * Never reads outside @pkt[0..len) nor writes outside @out[0..out_size).
 */
size_t dns_respond(const struct dns_names *names, const struct dns_zones *zones,
                   const uint8_t *pkt, size_t len, uint8_t *out, size_t out_size);
