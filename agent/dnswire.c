/* SPDX-License-Identifier: MIT */
/* DNS message parsing and answer building for the built-in responder (see dnswire.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dnswire.h"
#include "macro.h"

struct dns_node {
        uint8_t name[DNS_NAME_MAX];
        size_t name_len;
        struct in_addr *v4;
        size_t n4;
        struct in6_addr *v6;
        size_t n6;
};

struct dns_names {
        struct dns_node *nodes; /* sorted by name_cmp, distinct */
        size_t n_nodes;
        size_t n_given;
};

struct dns_zones {
        uint8_t (*names)[DNS_NAME_MAX];
        size_t *lens;
        size_t n;
};

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint8_t lower(uint8_t c) {
        return c >= 'A' && c <= 'Z' ? (uint8_t) (c + 'a' - 'A') : c;
}

/* ---- names ------------------------------------------------------------------------------ */

int dns_name_from_text(const char *text, uint8_t out[DNS_NAME_MAX]) {
        size_t len = 0;
        const char *p = text;

        if (!text || !*text || (text[0] == '.' && text[1] == 0))
                return -EINVAL;
        while (*p) {
                const char *dot = strchr(p, '.');
                size_t l = dot ? (size_t) (dot - p) : strlen(p);

                if (l == 0 || l > DNS_LABEL_MAX)
                        return -EINVAL;
                if (len + 1 + l + 1 > DNS_NAME_MAX) /* this label, then at least the root */
                        return -EINVAL;
                out[len++] = (uint8_t) l;
                for (size_t i = 0; i < l; i++)
                        out[len++] = lower((uint8_t) p[i]);
                if (!dot)
                        break;
                p = dot + 1;
        }
        out[len++] = 0;
        return (int) len;
}

void dns_name_to_text(const uint8_t *wire, char out[DNS_NAME_MAX + 1]) {
        size_t o = 0, n = 0;

        /* Valid wire names (<= 255 bytes) give at most 254 characters; stop at 255 anyway. */
        while (o < DNS_NAME_MAX && wire[o]) {
                size_t l = wire[o++];
                for (size_t i = 0; i < l && o < DNS_NAME_MAX; i++, o++)
                        if (n < DNS_NAME_MAX)
                                out[n++] = (char) wire[o];
                if (n < DNS_NAME_MAX)
                        out[n++] = '.';
        }
        if (n == 0)
                out[n++] = '.';
        out[n] = 0;
}

static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
        if (alen != blen)
                return alen < blen ? -1 : 1;
        return memcmp(a, b, alen);
}

static int node_cmp(const void *x, const void *y) {
        const struct dns_node *a = x, *b = y;
        return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* An item before grouping: a name and the entry whose addresses it carries (or none). */
struct item {
        uint8_t name[DNS_NAME_MAX];
        size_t name_len;
        const struct dns_entry *entry; /* NULL: an ancestor of a name (empty non-terminal) */
};

static int item_cmp(const void *x, const void *y) {
        const struct item *a = x, *b = y;
        return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

void dns_names_free(struct dns_names *names) {
        if (!names)
                return;
        for (size_t i = 0; i < names->n_nodes; i++) {
                free(names->nodes[i].v4);
                free(names->nodes[i].v6);
        }
        free(names->nodes);
        free(names);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dns_names *, dns_names_free);

size_t dns_names_count(const struct dns_names *names) {
        return names ? names->n_given : 0;
}

static int node_add_addresses(struct dns_node *node, const struct dns_entry *e) {
        for (size_t k = 0; k < e->n_addresses; k++) {
                const struct dns_address *a = &e->addresses[k];
                bool dup = false;

                if (a->family == AF_INET) {
                        for (size_t j = 0; j < node->n4 && !dup; j++)
                                dup = memcmp(&node->v4[j], &a->in, sizeof(a->in)) == 0;
                        if (dup)
                                continue;
                        struct in_addr *v = realloc(node->v4, (node->n4 + 1) * sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        node->v4 = v;
                        v[node->n4++] = a->in;
                } else {
                        for (size_t j = 0; j < node->n6 && !dup; j++)
                                dup = memcmp(&node->v6[j], &a->in6, sizeof(a->in6)) == 0;
                        if (dup)
                                continue;
                        struct in6_addr *v = realloc(node->v6, (node->n6 + 1) * sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        node->v6 = v;
                        v[node->n6++] = a->in6;
                }
        }
        return 0;
}

int dns_names_new(const struct dns_entry *entries, size_t n, struct dns_names **ret) {
        _cleanup_(dns_names_freep) struct dns_names *names = calloc(1, sizeof(*names));
        _cleanup_free_ struct item *items = NULL;
        size_t n_items = 0, cap = 0;

        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                uint8_t wire[DNS_NAME_MAX];
                int len = dns_name_from_text(entries[i].fqdn, wire);

                if (len < 0)
                        return len;
                for (size_t k = 0; k < entries[i].n_addresses; k++)
                        if (entries[i].addresses[k].family != AF_INET &&
                            entries[i].addresses[k].family != AF_INET6)
                                return -EINVAL;
                /* The name and each ancestor but the root. */
                for (size_t o = 0; wire[o]; o += wire[o] + 1) {
                        if (n_items == cap) {
                                size_t ncap = cap ? cap * 2 : 16;
                                struct item *t = realloc(items, ncap * sizeof(*t));
                                if (!t)
                                        return -ENOMEM;
                                items = t;
                                cap = ncap;
                        }
                        struct item *it = &items[n_items++];
                        it->name_len = (size_t) len - o;
                        memcpy(it->name, wire + o, it->name_len);
                        it->entry = o == 0 ? &entries[i] : NULL;
                }
        }
        if (n_items > 0)
                qsort(items, n_items, sizeof(*items), item_cmp);

        names->nodes = calloc(n_items ? n_items : 1, sizeof(*names->nodes));
        if (!names->nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n_items; i++) {
                struct dns_node *node;

                if (names->n_nodes > 0 &&
                    name_cmp(names->nodes[names->n_nodes - 1].name,
                             names->nodes[names->n_nodes - 1].name_len,
                             items[i].name, items[i].name_len) == 0)
                        node = &names->nodes[names->n_nodes - 1];
                else {
                        node = &names->nodes[names->n_nodes++];
                        memcpy(node->name, items[i].name, items[i].name_len);
                        node->name_len = items[i].name_len;
                }
                if (items[i].entry) {
                        int r = node_add_addresses(node, items[i].entry);
                        if (r < 0)
                                return r;
                }
        }
        /* Count distinct given names: nodes that some entry named. */
        for (size_t i = 0, j = 0; i < names->n_nodes; i++) {
                bool given = false;
                while (j < n_items && name_cmp(items[j].name, items[j].name_len,
                                               names->nodes[i].name, names->nodes[i].name_len) == 0) {
                        given = given || items[j].entry;
                        j++;
                }
                names->n_given += given;
        }
        *ret = TAKE_PTR(names);
        return 0;
}

static const struct dns_node *names_lookup(const struct dns_names *names, const uint8_t *name,
                                           size_t len) {
        struct dns_node key = { .name_len = len };

        if (!names || names->n_nodes == 0)
                return NULL;
        memcpy(key.name, name, len);
        return bsearch(&key, names->nodes, names->n_nodes, sizeof(key), node_cmp);
}

void dns_zones_free(struct dns_zones *zones) {
        if (!zones)
                return;
        free(zones->names);
        free(zones->lens);
        free(zones);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dns_zones *, dns_zones_free);

int dns_zones_new(const char *const *list, size_t n, struct dns_zones **ret) {
        _cleanup_(dns_zones_freep) struct dns_zones *zones = calloc(1, sizeof(*zones));

        if (!zones)
                return -ENOMEM;
        zones->names = calloc(n ? n : 1, sizeof(*zones->names));
        zones->lens = calloc(n ? n : 1, sizeof(*zones->lens));
        if (!zones->names || !zones->lens)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int len = dns_name_from_text(list[i], zones->names[zones->n]);
                if (len < 0)
                        return len;
                zones->lens[zones->n++] = (size_t) len;
        }
        *ret = TAKE_PTR(zones);
        return 0;
}

/* 1: @name is @zones' apex itself; 2: strictly under one; 0: outside every zone. */
static int zones_match(const struct dns_zones *zones, const uint8_t *name, size_t len) {
        int best = 0;

        if (!zones)
                return 0;
        for (size_t z = 0; z < zones->n; z++)
                for (size_t o = 0; o < len; o += name[o] + 1) {
                        if (len - o == zones->lens[z] && memcmp(name + o, zones->names[z], len - o) == 0) {
                                if (o == 0)
                                        return 1;
                                best = 2;
                                break;
                        }
                        if (name[o] == 0)
                                break;
                }
        return best;
}

/* ---- parsing ---------------------------------------------------------------------------- */

/* Skips a name outside the question (a pointer ends it). Returns the offset past it, or 0. */
static size_t skip_name(const uint8_t *pkt, size_t len, size_t o) {
        for (size_t wire = 0;;) {
                if (o >= len)
                        return 0;
                uint8_t c = pkt[o];
                if (c == 0)
                        return o + 1;
                if ((c & 0xc0) == 0xc0)
                        return o + 2 <= len ? o + 2 : 0;
                if (c & 0xc0)
                        return 0;
                wire += (size_t) c + 1;
                if (wire + 1 > DNS_NAME_MAX)
                        return 0;
                o += (size_t) c + 1;
        }
}

int dns_query_parse(const uint8_t *pkt, size_t len, struct dns_query *q) {
        size_t o = DNS_HEADER_SIZE;
        uint16_t arcount;

        memset(q, 0, sizeof(*q));
        if (!pkt || len < DNS_HEADER_SIZE)
                return -EINVAL;
        q->id = get16(pkt);
        q->flags = get16(pkt + 2);
        if (q->flags & DNS_FLAG_QR)
                return -EINVAL;
        if (DNS_OPCODE(q->flags) != 0)
                return -EOPNOTSUPP;
        if (get16(pkt + 4) != 1 || get16(pkt + 6) != 0 || get16(pkt + 8) != 0)
                return -EBADMSG;
        arcount = get16(pkt + 10);

        /* The question's name: labels only, no pointers. */
        for (;;) {
                if (o >= len)
                        return -EBADMSG;
                uint8_t c = pkt[o++];
                if (c & 0xc0)
                        return -EBADMSG; /* pointer or reserved label type */
                if (q->name_len + 1 + c > DNS_NAME_MAX)
                        return -EBADMSG;
                q->name[q->name_len++] = c;
                if (c == 0)
                        break;
                if (c > len - o)
                        return -EBADMSG;
                for (size_t i = 0; i < c; i++)
                        q->name[q->name_len++] = lower(pkt[o++]);
        }
        if (len - o < 4)
                return -EBADMSG;
        q->qtype = get16(pkt + o);
        q->qclass = get16(pkt + o + 2);
        o += 4;
        q->question_end = o;

        /* The additional section: find OPT, skip the rest. Each record takes at least 11
         * bytes, so this loop is bounded by the message length. */
        for (uint16_t i = 0; i < arcount; i++) {
                size_t start = o;
                o = skip_name(pkt, len, o);
                if (o == 0 || len - o < 10)
                        return -EBADMSG;
                uint16_t type = get16(pkt + o), rdlen = get16(pkt + o + 8);
                if (type == DNS_TYPE_OPT) {
                        if (q->edns || o != start + 1 || pkt[start] != 0)
                                return -EBADMSG;
                        q->edns = true;
                        q->edns_udp_size = get16(pkt + o + 2);
                        q->edns_version = pkt[o + 5];
                }
                o += 10;
                if (rdlen > len - o)
                        return -EBADMSG;
                o += rdlen;
        }
        /* Bytes after the last record are ignored. */
        return 0;
}

/* ---- answering -------------------------------------------------------------------------- */

static size_t header_only(const struct dns_query *q, int rcode, uint8_t *out, size_t out_size) {
        if (out_size < DNS_HEADER_SIZE)
                return 0;
        memset(out, 0, DNS_HEADER_SIZE);
        put16(out, q->id);
        put16(out + 2, (uint16_t) (DNS_FLAG_QR | (q->flags & (0x7800 | DNS_FLAG_RD | DNS_FLAG_CD)) |
                                   (rcode & 0xf)));
        return DNS_HEADER_SIZE;
}

static size_t put_opt(uint8_t *p, int rcode) {
        p[0] = 0;
        put16(p + 1, DNS_TYPE_OPT);
        put16(p + 3, DNS_EDNS_UDP_MAX);
        put32(p + 5, (uint32_t) (rcode >> 4) << 24); /* extended rcode, version 0, flags 0 */
        put16(p + 9, 0);
        return 11;
}

#define OPT_SIZE 11

size_t dns_respond(const struct dns_names *names, const struct dns_zones *zones,
                   const uint8_t *pkt, size_t len, uint8_t *out, size_t out_size) {
        struct dns_query q;
        int r = dns_query_parse(pkt, len, &q);
        size_t limit, pos, opt = 0;
        uint16_t flags = 0, ancount = 0;
        int rcode;
        bool aa = true;

        if (r == -EBADMSG)
                return header_only(&q, DNS_RCODE_FORMERR, out, out_size);
        if (r == -EOPNOTSUPP)
                return header_only(&q, DNS_RCODE_NOTIMP, out, out_size);
        if (r < 0)
                return 0;

        limit = DNS_UDP_MAX;
        if (q.edns) {
                opt = OPT_SIZE;
                if (q.edns_udp_size > limit)
                        limit = q.edns_udp_size < DNS_EDNS_UDP_MAX ? q.edns_udp_size : DNS_EDNS_UDP_MAX;
        }
        if (limit > out_size)
                limit = out_size;
        if (q.question_end + opt > limit) {
                /* Only with a tiny @out: say so rather than send a cut question. */
                size_t n = header_only(&q, DNS_RCODE_SERVFAIL, out, out_size);
                if (n)
                        put16(out + 2, get16(out + 2) | DNS_FLAG_TC);
                return n;
        }

        memcpy(out, pkt, q.question_end); /* header (rewritten below) and question, as sent */
        pos = q.question_end;

        if (q.edns && q.edns_version != 0) {
                rcode = DNS_RCODE_BADVERS;
                aa = false;
        } else if (q.qclass != DNS_CLASS_IN && q.qclass != DNS_CLASS_ANY) {
                rcode = DNS_RCODE_REFUSED;
                aa = false;
        } else {
                const struct dns_node *node = names_lookup(names, q.name, q.name_len);
                int zm = zones_match(zones, q.name, q.name_len);

                if (node || zm == 1) {
                        bool want4 = q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_ANY;
                        bool want6 = q.qtype == DNS_TYPE_AAAA || q.qtype == DNS_TYPE_ANY;
                        size_t n4 = node && want4 ? node->n4 : 0, n6 = node && want6 ? node->n6 : 0;

                        rcode = DNS_RCODE_NOERROR;
                        for (size_t i = 0; i < n4 + n6; i++) {
                                bool v4 = i < n4;
                                size_t rdlen = v4 ? 4 : 16;
                                if (pos + 12 + rdlen + opt > limit) {
                                        flags = DNS_FLAG_TC;
                                        goto truncated;
                                }
                                put16(out + pos, 0xc000 | DNS_HEADER_SIZE);
                                put16(out + pos + 2, v4 ? DNS_TYPE_A : DNS_TYPE_AAAA);
                                put16(out + pos + 4, DNS_CLASS_IN);
                                put32(out + pos + 6, DNS_TTL);
                                put16(out + pos + 10, (uint16_t) rdlen);
                                memcpy(out + pos + 12, v4 ? (const void *) &node->v4[i]
                                                          : (const void *) &node->v6[i - n4], rdlen);
                                pos += 12 + rdlen;
                                ancount++;
                        }
                } else if (zm == 2)
                        rcode = DNS_RCODE_NXDOMAIN;
                else {
                        rcode = DNS_RCODE_REFUSED;
                        aa = false;
                }
        }
truncated:
        flags |= DNS_FLAG_QR | (q.flags & (0x7800 | DNS_FLAG_RD | DNS_FLAG_CD)) | (rcode & 0xf);
        if (aa)
                flags |= DNS_FLAG_AA;
        put16(out + 2, flags);
        put16(out + 4, 1);
        put16(out + 6, ancount);
        put16(out + 8, 0);
        put16(out + 10, q.edns ? 1 : 0);
        if (q.edns)
                pos += put_opt(out + pos, rcode);
        return pos;
}
