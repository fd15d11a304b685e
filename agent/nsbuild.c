/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "nsbuild.h"

/* The responder's addresses, which the link carries too so that queries to them stay local. */
static size_t dns_addrs(const struct config *c) {
        return c->dns_mode == CONFIG_DNS_OFF ? 0 : c->n_dns_addrs;
}

/* A growable array of pointers, the way protobuf-c wants repeated fields. */
static int push(void ***v, size_t *n, void *item) {
        if (!item)
                return -ENOMEM;
        void **nv = reallocarray(*v, *n + 1, sizeof(void *));
        if (!nv) {
                free(item);
                return -ENOMEM;
        }
        nv[(*n)++] = item;
        *v = nv;
        return 0;
}

static char *addr_string(uint8_t family, const void *bytes) {
        char buf[INET6_ADDRSTRLEN];
        return inet_ntop(family, bytes, buf, sizeof(buf)) ? strdup(buf) : NULL;
}

static char *v4_mask_string(uint8_t len) {
        struct in_addr m = { .s_addr = len ? htonl(~0u << (32 - len)) : 0 };
        return addr_string(AF_INET, &m);
}

static int add_v4_addr(Vpn__NetworkSettingsRequest__IPv4Settings *s, const struct net_prefix *p) {
        int r = push((void ***) &s->addrs, &s->n_addrs, addr_string(AF_INET, &p->in));
        return r < 0 ? r : push((void ***) &s->subnet_masks, &s->n_subnet_masks, v4_mask_string(p->len));
}

static int add_v6_addr(Vpn__NetworkSettingsRequest__IPv6Settings *s, const struct net_prefix *p) {
        int r = push((void ***) &s->addrs, &s->n_addrs, addr_string(AF_INET6, &p->in6));
        if (r < 0)
                return r;
        uint32_t *nv = reallocarray(s->prefix_lengths, s->n_prefix_lengths + 1, sizeof(*nv));
        if (!nv)
                return -ENOMEM;
        nv[s->n_prefix_lengths++] = p->len;
        s->prefix_lengths = nv;
        return 0;
}

static int add_route(Vpn__NetworkSettingsRequest__IPv4Settings *s4, Vpn__NetworkSettingsRequest__IPv6Settings *s6,
                     const struct net_prefix *p) {
        if (p->family == AF_INET) {
                Vpn__NetworkSettingsRequest__IPv4Settings__IPv4Route *rt = malloc(sizeof(*rt));
                if (!rt)
                        return -ENOMEM;
                vpn__network_settings_request__ipv4_settings__ipv4_route__init(rt);
                rt->destination = addr_string(AF_INET, &p->in);
                rt->mask = v4_mask_string(p->len);
                int r = push((void ***) &s4->included_routes, &s4->n_included_routes, rt);
                return r < 0 ? r : rt->destination && rt->mask ? 0 : -ENOMEM;
        }
        Vpn__NetworkSettingsRequest__IPv6Settings__IPv6Route *rt = malloc(sizeof(*rt));
        if (!rt)
                return -ENOMEM;
        vpn__network_settings_request__ipv6_settings__ipv6_route__init(rt);
        rt->destination = addr_string(AF_INET6, &p->in6);
        rt->prefix_length = p->len;
        int r = push((void ***) &s6->included_routes, &s6->n_included_routes, rt);
        return r < 0 ? r : rt->destination ? 0 : -ENOMEM;
}

static struct net_prefix allowedip_prefix(const struct wg_allowedip *a) {
        struct net_prefix p = { .family = (uint8_t) a->family, .len = a->cidr };
        memcpy(p.bytes, a->family == AF_INET ? (const void *) &a->ip4 : (const void *) &a->ip6,
               a->family == AF_INET ? 4 : 16);
        net_prefix_mask(&p);
        return p;
}

static int add_routes(const struct config *c, Vpn__NetworkSettingsRequest__IPv4Settings *s4,
                      Vpn__NetworkSettingsRequest__IPv6Settings *s6) {
        _cleanup_free_ struct net_prefix *seen = NULL;
        size_t n_seen = 0, total = 0;

        for (size_t i = 0; i < c->n_peers; i++)
                total += c->peers[i].n_allowed_ips;
        if (total && !(seen = calloc(total, sizeof(*seen))))
                return -ENOMEM;
        for (size_t i = 0; i < c->n_peers; i++)
                for (size_t j = 0; j < c->peers[i].n_allowed_ips; j++) {
                        struct net_prefix p = allowedip_prefix(&c->peers[i].allowed_ips[j]);
                        bool dup = false;
                        /* Quadratic, but peers are few and this runs on (re)load only. */
                        for (size_t k = 0; k < n_seen && !dup; k++)
                                dup = net_prefix_equal(&seen[k], &p);
                        if (dup)
                                continue;
                        seen[n_seen++] = p;
                        int r = add_route(s4, s6, &p);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static int add_dns(const struct config *c, Vpn__NetworkSettingsRequest *req) {
        if (!dns_addrs(c))
                return 0;
        Vpn__NetworkSettingsRequest__DNSSettings *d = malloc(sizeof(*d));
        if (!d)
                return -ENOMEM;
        vpn__network_settings_request__dnssettings__init(d);
        req->dns_settings = d;
        for (size_t i = 0; i < c->n_dns_addrs; i++) {
                int r = push((void ***) &d->servers, &d->n_servers,
                             addr_string(c->dns_addrs[i].family, c->dns_addrs[i].bytes));
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_dns_domains; i++) {
                int r = push((void ***) &d->match_domains, &d->n_match_domains, strdup(c->dns_domains[i]));
                if (r < 0)
                        return r;
        }
        if (c->n_dns_domains && !(d->domain_name = strdup(c->dns_domains[0])))
                return -ENOMEM;
        return 0;
}

static void request_freep(Vpn__NetworkSettingsRequest **req) {
        if (*req)
                protobuf_c_message_free_unpacked(&(*req)->base, NULL);
}

int nsbuild_from_config(const struct config *c, Vpn__NetworkSettingsRequest **ret) {
        _cleanup_(request_freep) Vpn__NetworkSettingsRequest *req = malloc(sizeof(*req));
        Vpn__NetworkSettingsRequest__IPv4Settings *s4;
        Vpn__NetworkSettingsRequest__IPv6Settings *s6;
        int r;

        if (!req)
                return -ENOMEM;
        vpn__network_settings_request__init(req);
        req->mtu = c->mtu;
        if (!(s4 = req->ipv4_settings = malloc(sizeof(*s4))) || !(s6 = req->ipv6_settings = malloc(sizeof(*s6))))
                return -ENOMEM;
        vpn__network_settings_request__ipv4_settings__init(s4);
        vpn__network_settings_request__ipv6_settings__init(s6);
        for (size_t i = 0; i < c->n_addrs + dns_addrs(c); i++) {
                struct net_prefix p = i < c->n_addrs ? c->addrs[i] : c->dns_addrs[i - c->n_addrs];
                if (i >= c->n_addrs)
                        p.len = p.family == AF_INET ? 32 : 128;
                if ((r = p.family == AF_INET ? add_v4_addr(s4, &p) : add_v6_addr(s6, &p)) < 0)
                        return r;
        }
        if ((r = add_routes(c, s4, s6)) < 0 || (r = add_dns(c, req)) < 0)
                return r;
        *ret = TAKE_PTR(req);
        return 0;
}
