/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "message.h"
#include "netsettings.h"

/* Sub-messages are replaced whole, so a copy through the wire format is exact. */
static ProtobufCMessage *copy_message(const ProtobufCMessage *m) {
        size_t len = protobuf_c_message_get_packed_size(m);
        _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return NULL;
        protobuf_c_message_pack(m, buf);
        return protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
}

static int replace(ProtobufCMessage **slot, const ProtobufCMessage *with) {
        ProtobufCMessage *copy = copy_message(with);
        if (!copy)
                return -ENOMEM;
        if (*slot)
                protobuf_c_message_free_unpacked(*slot, NULL);
        *slot = copy;
        return 0;
}

static int merge_into(Vpn__NetworkSettingsRequest *s, const Vpn__NetworkSettingsRequest *update) {
        int r;

        if (update->dns_settings &&
            (r = replace((ProtobufCMessage **) &s->dns_settings, &update->dns_settings->base)) < 0)
                return r;
        if (update->ipv4_settings &&
            (r = replace((ProtobufCMessage **) &s->ipv4_settings, &update->ipv4_settings->base)) < 0)
                return r;
        if (update->ipv6_settings &&
            (r = replace((ProtobufCMessage **) &s->ipv6_settings, &update->ipv6_settings->base)) < 0)
                return r;
        if (update->mtu)
                s->mtu = update->mtu;
        if (update->tunnel_overhead_bytes)
                s->tunnel_overhead_bytes = update->tunnel_overhead_bytes;
        if (update->tunnel_remote_address && *update->tunnel_remote_address) {
                char *a = strdup(update->tunnel_remote_address);
                if (!a)
                        return -ENOMEM;
                /* protobuf-c gives unset strings the shared empty default: never free that. */
                if (s->tunnel_remote_address != protobuf_c_empty_string)
                        free(s->tunnel_remote_address);
                s->tunnel_remote_address = a;
        }
        return 0;
}

int netsettings_merge(const Vpn__NetworkSettingsRequest *state, const Vpn__NetworkSettingsRequest *update,
                      Vpn__NetworkSettingsRequest **ret) {
        ProtobufCMessage *m = state ? copy_message(&state->base) :
                protobuf_c_message_unpack(&vpn__network_settings_request__descriptor, NULL, 0, (const uint8_t *) "");
        if (!m)
                return -ENOMEM;
        int r = merge_into((Vpn__NetworkSettingsRequest *) m, update);
        if (r < 0) {
                protobuf_c_message_free_unpacked(m, NULL);
                return r;
        }
        *ret = (Vpn__NetworkSettingsRequest *) m;
        return 0;
}

__attribute__((format(printf, 2, 3)))
static int fail(char **error, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        if (vasprintf(error, format, ap) < 0)
                *error = NULL;
        va_end(ap);
        return -EINVAL;
}

/* A dotted mask with contiguous ones, as its prefix length. */
static int mask_to_len(const char *mask, uint8_t *ret) {
        struct in_addr a;
        if (inet_pton(AF_INET, mask, &a) != 1)
                return -EINVAL;
        uint32_t m = ntohl(a.s_addr);
        if (m & (~m >> 1))
                return -EINVAL;   /* a one after a zero */
        *ret = (uint8_t) __builtin_popcount(m);
        return 0;
}

static int v4(struct net_prefix *p, const char *field, size_t i, const char *addr, const char *mask, char **error) {
        *p = (struct net_prefix) { .family = AF_INET };
        if (!addr || inet_pton(AF_INET, addr, &p->in) != 1)
                return fail(error, "%s[%zu]: \"%s\" is not an IPv4 address", field, i, addr ?: "");
        if (mask_to_len(mask ?: "", &p->len) < 0)
                return fail(error, "%s[%zu]: \"%s\" is not a contiguous IPv4 netmask", field, i, mask ?: "");
        return 0;
}

static int v6(struct net_prefix *p, const char *field, size_t i, const char *addr, uint32_t len, char **error) {
        *p = (struct net_prefix) { .family = AF_INET6 };
        if (!addr || inet_pton(AF_INET6, addr, &p->in6) != 1)
                return fail(error, "%s[%zu]: \"%s\" is not an IPv6 address", field, i, addr ?: "");
        if (len > 128)
                return fail(error, "%s[%zu]: prefix length %u is above 128", field, i, len);
        p->len = (uint8_t) len;
        return 0;
}

static int check_count(const char *field, size_t n, size_t max, char **error) {
        return n > max ? fail(error, "%s: %zu entries, at most %zu", field, n, max) : 0;
}

/* Appends to @v (sized by the caller) at *@n. */
static int add_v4_routes(struct net_prefix *v, size_t *n, const char *field,
                         Vpn__NetworkSettingsRequest__IPv4Settings__IPv4Route **routes, size_t count, char **error) {
        for (size_t i = 0; i < count; i++) {
                int r = v4(&v[(*n)++], field, i, routes[i]->destination, routes[i]->mask, error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_v6_routes(struct net_prefix *v, size_t *n, const char *field,
                         Vpn__NetworkSettingsRequest__IPv6Settings__IPv6Route **routes, size_t count, char **error) {
        for (size_t i = 0; i < count; i++) {
                int r = v6(&v[(*n)++], field, i, routes[i]->destination, routes[i]->prefix_length, error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int convert(const Vpn__NetworkSettingsRequest *req, struct net_desired *d, char **error) {
        const Vpn__NetworkSettingsRequest__IPv4Settings *s4 = req->ipv4_settings;
        const Vpn__NetworkSettingsRequest__IPv6Settings *s6 = req->ipv6_settings;
        size_t n4a = s4 ? s4->n_addrs : 0, n6a = s6 ? s6->n_addrs : 0;
        size_t n4i = s4 ? s4->n_included_routes : 0, n6i = s6 ? s6->n_included_routes : 0;
        size_t n4e = s4 ? s4->n_excluded_routes : 0, n6e = s6 ? s6->n_excluded_routes : 0;
        int r;

        if (req->mtu && (req->mtu < 576 || req->mtu > 65535))
                return fail(error, "mtu: %u is outside 576-65535", req->mtu);
        d->mtu = req->mtu;
        if (s4 && s4->n_subnet_masks != n4a)
                return fail(error, "ipv4_settings: %zu addrs but %zu subnet_masks", n4a, s4->n_subnet_masks);
        if (s6 && s6->n_prefix_lengths != n6a)
                return fail(error, "ipv6_settings: %zu addrs but %zu prefix_lengths", n6a, s6->n_prefix_lengths);
        if ((r = check_count("ipv4_settings.addrs", n4a, NET_MAX_ADDRS, error)) < 0 ||
            (r = check_count("ipv6_settings.addrs", n6a, NET_MAX_ADDRS - n4a, error)) < 0 ||
            (r = check_count("ipv4_settings.included_routes", n4i, NET_MAX_ROUTES, error)) < 0 ||
            (r = check_count("ipv6_settings.included_routes", n6i, NET_MAX_ROUTES - n4i, error)) < 0 ||
            (r = check_count("ipv4_settings.excluded_routes", n4e, NET_MAX_ROUTES, error)) < 0 ||
            (r = check_count("ipv6_settings.excluded_routes", n6e, NET_MAX_ROUTES - n4e, error)) < 0)
                return r;

        d->addrs = calloc(n4a + n6a + 1, sizeof(*d->addrs));
        d->routes = calloc(n4i + n6i + 1, sizeof(*d->routes));
        d->excluded = calloc(n4e + n6e + 1, sizeof(*d->excluded));
        if (!d->addrs || !d->routes || !d->excluded)
                return -ENOMEM;
        for (size_t i = 0; i < n4a; i++)
                if ((r = v4(&d->addrs[d->n_addrs++], "ipv4_settings.addrs", i, s4->addrs[i], s4->subnet_masks[i], error)) < 0)
                        return r;
        for (size_t i = 0; i < n6a; i++)
                if ((r = v6(&d->addrs[d->n_addrs++], "ipv6_settings.addrs", i, s6->addrs[i], s6->prefix_lengths[i], error)) < 0)
                        return r;
        if ((s4 && ((r = add_v4_routes(d->routes, &d->n_routes, "ipv4_settings.included_routes",
                                       s4->included_routes, n4i, error)) < 0 ||
                    (r = add_v4_routes(d->excluded, &d->n_excluded, "ipv4_settings.excluded_routes",
                                       s4->excluded_routes, n4e, error)) < 0)) ||
            (s6 && ((r = add_v6_routes(d->routes, &d->n_routes, "ipv6_settings.included_routes",
                                       s6->included_routes, n6i, error)) < 0 ||
                    (r = add_v6_routes(d->excluded, &d->n_excluded, "ipv6_settings.excluded_routes",
                                       s6->excluded_routes, n6e, error)) < 0)))
                return r;
        return 0;
}

int netsettings_to_desired(const Vpn__NetworkSettingsRequest *req, struct net_desired *out, char **error) {
        struct net_desired d = {};
        const char *problem;

        *error = NULL;
        int r = convert(req, &d, error);
        if (r == 0 && net_desired_validate(&d, &problem) < 0)
                r = fail(error, "%s", problem);
        if (r < 0) {
                net_desired_free(&d);
                return r;
        }
        *out = d;
        return 0;
}

/* A DNS name without its trailing dot, in *@ret; or a reason in *@why. */
static int dns_name(const char *in, char **ret, const char **why) {
        size_t len = strlen(in), label = 0;

        if (len > 0 && in[len - 1] == '.')
                len--;
        if (len == 0) {
                *why = "empty domain name";
                return -EINVAL;
        }
        if (len > 253) {
                *why = "domain name longer than 253 characters";
                return -EINVAL;
        }
        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                if (c == '.') {
                        if (label == 0) {
                                *why = "empty label in domain name";
                                return -EINVAL;
                        }
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_')) {
                        *why = "invalid character in domain name";
                        return -EINVAL;
                }
                if (++label > 63) {
                        *why = "label longer than 63 characters";
                        return -EINVAL;
                }
        }
        *ret = strndup(in, len);
        return *ret ? 0 : -ENOMEM;
}

static int dns_names(char ***ret, size_t *n_ret, char *const *in, size_t n, const char *field, char **error) {
        const char *why = NULL;
        int r;

        if (n > 256)
                return fail(error, "dns_settings.%s: too many entries (%zu, at most 256)", field, n);
        if (n == 0)
                return 0;
        *ret = calloc(n, sizeof(char *));
        if (!*ret)
                return -ENOMEM;
        for (*n_ret = 0; *n_ret < n; (*n_ret)++) {
                r = dns_name(in[*n_ret], &(*ret)[*n_ret], &why);
                if (r == -EINVAL)
                        return fail(error, "dns_settings.%s[%zu]: %s: \"%s\"", field, *n_ret, why, in[*n_ret]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int netsettings_to_dns(const Vpn__NetworkSettingsRequest__DNSSettings *d, struct dns_config *out, char **error) {
        _cleanup_(dns_config_free) struct dns_config c = {};
        int r;

        *error = NULL;
        if (!d) {
                *out = c;
                return 0;
        }
        if (d->n_servers > 256)
                return fail(error, "dns_settings.servers: too many servers (%zu, at most 256)", d->n_servers);
        if (d->n_servers) {
                c.servers = calloc(d->n_servers, sizeof(*c.servers));
                if (!c.servers)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < d->n_servers; i++) {
                struct dns_server *s = &c.servers[c.n_servers++];
                if (inet_pton(AF_INET, d->servers[i], s->addr) == 1)
                        s->family = AF_INET;
                else if (inet_pton(AF_INET6, d->servers[i], s->addr) == 1)
                        s->family = AF_INET6;
                else
                        return fail(error, "dns_settings.servers[%zu]: not an IPv4 or IPv6 address: \"%s\"", i,
                                    d->servers[i]);
        }
        if ((r = dns_names(&c.search_domains, &c.n_search_domains, d->search_domains, d->n_search_domains,
                           "search_domains", error)) < 0)
                return r;
        if ((r = dns_names(&c.match_domains, &c.n_match_domains, d->match_domains, d->n_match_domains,
                           "match_domains", error)) < 0)
                return r;
        c.match_domains_no_search = d->match_domains_no_search;
        *out = c;
        c = (struct dns_config) {};
        return 0;
}
