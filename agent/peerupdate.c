/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "macro.h"
#include "peerupdate.h"

#define ID_LEN 16

static int parse_uuid(const char *s, uint8_t out[ID_LEN]) {
        size_t n = 0;

        for (; *s && n < 2 * ID_LEN; s++) {
                if (*s == '-')
                        continue;
                int v = sodium_hex2bin(out + n / 2, 1, s, 2, NULL, NULL, NULL);
                if (v < 0 || !s[1])
                        return -EINVAL;
                s++;
                n += 2;
        }
        return n == 2 * ID_LEN && !*s ? 0 : -EINVAL;
}

static void derive_id(const char *uuid, const char *salt, const void *data, size_t len, uint8_t out[ID_LEN]) {
        crypto_generichash_state st;

        if (uuid && parse_uuid(uuid, out) == 0)
                return;
        crypto_generichash_init(&st, NULL, 0, ID_LEN);
        crypto_generichash_update(&st, (const uint8_t *) salt, strlen(salt) + 1);
        crypto_generichash_update(&st, data, len);
        crypto_generichash_final(&st, out, ID_LEN);
}

static void workspace_id(const struct config_peer *p, uint8_t out[ID_LEN]) {
        const char *name = p->workspace ?: "";
        derive_id(p->workspace_id, "codervpnd workspace", name, strlen(name), out);
}

static void agent_id(const struct config_peer *p, uint8_t out[ID_LEN]) {
        derive_id(p->agent_id, "codervpnd agent", p->public_key, WG_KEY_LEN, out);
}

static bool is_host(const struct wg_allowedip *a) {
        return a->cidr == (a->family == AF_INET ? 32 : 128);
}

static int set_bytes(ProtobufCBinaryData *b, const uint8_t id[ID_LEN]) {
        if (!(b->data = malloc(ID_LEN)))
                return -ENOMEM;
        memcpy(b->data, id, ID_LEN);
        b->len = ID_LEN;
        return 0;
}

static int push(void ***v, size_t *n, void *item) {
        if (!item)
                return -ENOMEM;
        void **nv = reallocarray(*v, *n + 1, sizeof(void *));
        if (!nv) {
                protobuf_c_message_free_unpacked(item, NULL);
                return -ENOMEM;
        }
        nv[(*n)++] = item;
        *v = nv;
        return 0;
}

static int push_string(char ***v, size_t *n, const char *s) {
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        char **nv = reallocarray(*v, *n + 1, sizeof(char *));
        if (!nv) {
                free(d);
                return -ENOMEM;
        }
        nv[(*n)++] = d;
        *v = nv;
        return 0;
}

static Google__Protobuf__Duration *duration(uint64_t usec) {
        Google__Protobuf__Duration *d = malloc(sizeof(*d));
        if (d) {
                google__protobuf__duration__init(d);
                d->seconds = (int64_t) (usec / 1000000);
                d->nanos = (int32_t) (usec % 1000000) * 1000;
        }
        return d;
}

static int fill_ping(Vpn__Agent *a, const struct peerupdate_path *path) {
        if (!path->known)
                return 0;
        Vpn__LastPing *lp = malloc(sizeof(*lp));
        if (!lp)
                return -ENOMEM;
        vpn__last_ping__init(lp);
        a->last_ping = lp;
        lp->did_p2p = path->direct;
        if (path->derp_region && asprintf(&lp->preferred_derp, "%d", path->derp_region) < 0) {
                lp->preferred_derp = NULL;
                return -ENOMEM;
        }
        /* The relay's round trip is what we measure; it is the latency only when relayed. */
        if (path->derp_latency_usec) {
                if (!(lp->preferred_derp_latency = duration(path->derp_latency_usec)))
                        return -ENOMEM;
                if (!path->direct && !(lp->latency = duration(path->derp_latency_usec)))
                        return -ENOMEM;
        }
        return 0;
}

static Vpn__Agent *new_agent(const struct config_peer *p, const struct peerupdate_path *path) {
        Vpn__Agent *a = malloc(sizeof(*a));
        uint8_t id[ID_LEN];
        char buf[INET6_ADDRSTRLEN];

        if (!a)
                return NULL;
        vpn__agent__init(a);
        agent_id(p, id);
        int r = set_bytes(&a->id, id);
        workspace_id(p, id);
        if (r >= 0)
                r = set_bytes(&a->workspace_id, id);
        if (r >= 0 && !(a->name = strdup(p->agent ?: p->names && p->n_names ? p->names[0] : "peer")))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < p->n_names; i++)
                r = push_string(&a->fqdn, &a->n_fqdn, p->names[i]);
        for (size_t i = 0; r >= 0 && i < p->n_allowed_ips; i++)
                if (is_host(&p->allowed_ips[i]))
                        r = inet_ntop(p->allowed_ips[i].family, &p->allowed_ips[i].ip6, buf, sizeof(buf)) ?
                            push_string(&a->ip_addrs, &a->n_ip_addrs, buf) : -EINVAL;
        if (r >= 0 && path && path->last_handshake_sec) {
                if (!(a->last_handshake = malloc(sizeof(*a->last_handshake))))
                        r = -ENOMEM;
                else {
                        google__protobuf__timestamp__init(a->last_handshake);
                        a->last_handshake->seconds = path->last_handshake_sec;
                }
        }
        if (r >= 0 && path)
                r = fill_ping(a, path);
        if (r < 0) {
                protobuf_c_message_free_unpacked(&a->base, NULL);
                return NULL;
        }
        return a;
}

static Vpn__Workspace *new_workspace(const struct config_peer *p) {
        Vpn__Workspace *w = malloc(sizeof(*w));
        uint8_t id[ID_LEN];

        if (!w)
                return NULL;
        vpn__workspace__init(w);
        workspace_id(p, id);
        w->status = VPN__WORKSPACE__STATUS__RUNNING;
        if (set_bytes(&w->id, id) < 0 || !(w->name = strdup(p->workspace ?: ""))) {
                protobuf_c_message_free_unpacked(&w->base, NULL);
                return NULL;
        }
        return w;
}

static bool has_workspace(Vpn__Workspace *const *ws, size_t n, const struct config_peer *p) {
        uint8_t id[ID_LEN];

        workspace_id(p, id);
        for (size_t i = 0; i < n; i++)
                if (!memcmp(ws[i]->id.data, id, ID_LEN))
                        return true;
        return false;
}

static bool config_has_workspace(const struct config *c, const struct config_peer *p) {
        uint8_t a[ID_LEN], b[ID_LEN];

        workspace_id(p, a);
        for (size_t i = 0; i < c->n_peers; i++) {
                workspace_id(&c->peers[i], b);
                if (!memcmp(a, b, ID_LEN))
                        return true;
        }
        return false;
}

static int build(const struct config *c, const struct peerupdate_path *paths, const struct config *old,
                 Vpn__PeerUpdate *out) {
        int r;

        for (size_t i = 0; i < c->n_peers; i++) {
                const struct config_peer *p = &c->peers[i];
                if ((r = push((void ***) &out->upserted_agents, &out->n_upserted_agents, new_agent(p, &paths[i]))) < 0)
                        return r;
                if (!has_workspace(out->upserted_workspaces, out->n_upserted_workspaces, p) &&
                    (r = push((void ***) &out->upserted_workspaces, &out->n_upserted_workspaces,
                              new_workspace(p))) < 0)
                        return r;
        }
        for (size_t i = 0; old && i < old->n_peers; i++) {
                const struct config_peer *p = &old->peers[i];
                if (config_find_peer(c, p->public_key))
                        continue;
                if ((r = push((void ***) &out->deleted_agents, &out->n_deleted_agents, new_agent(p, NULL))) < 0)
                        return r;
                if (!config_has_workspace(c, p) &&
                    !has_workspace(out->deleted_workspaces, out->n_deleted_workspaces, p) &&
                    (r = push((void ***) &out->deleted_workspaces, &out->n_deleted_workspaces, new_workspace(p))) < 0)
                        return r;
        }
        return 0;
}

int peerupdate_build(const struct config *c, const struct peerupdate_path *paths, const struct config *old,
                     Vpn__PeerUpdate *out) {
        int r = build(c, paths, old, out);
        if (r < 0)
                peerupdate_free_contents(out);
        return r;
}

static void free_all(void **v, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                protobuf_c_message_free_unpacked(v[i], NULL);
        free(v);
        *n = 0;
}

void peerupdate_free_contents(Vpn__PeerUpdate *u) {
        free_all((void **) u->upserted_workspaces, &u->n_upserted_workspaces);
        free_all((void **) u->upserted_agents, &u->n_upserted_agents);
        free_all((void **) u->deleted_workspaces, &u->n_deleted_workspaces);
        free_all((void **) u->deleted_agents, &u->n_deleted_agents);
        u->upserted_workspaces = NULL;
        u->upserted_agents = NULL;
        u->deleted_workspaces = NULL;
        u->deleted_agents = NULL;
}

int peerupdate_names(const struct config *c, struct peerupdate_names *out) {
        size_t n_entries = 0, n_addrs = 0;

        for (size_t i = 0; i < c->n_peers; i++) {
                n_entries += c->peers[i].n_names;
                for (size_t j = 0; j < c->peers[i].n_allowed_ips; j++)
                        n_addrs += is_host(&c->peers[i].allowed_ips[j]);
        }
        *out = (struct peerupdate_names) {};
        if (!n_entries)
                return 0;
        out->entries = calloc(n_entries, sizeof(*out->entries));
        out->addrs = calloc(n_addrs ?: 1, sizeof(*out->addrs));
        if (!out->entries || !out->addrs) {
                peerupdate_names_freep(out);
                return -ENOMEM;
        }
        size_t k = 0;
        for (size_t i = 0; i < c->n_peers; i++) {
                const struct config_peer *p = &c->peers[i];
                struct dns_address *first = out->addrs + k;
                for (size_t j = 0; j < p->n_allowed_ips; j++) {
                        const struct wg_allowedip *a = &p->allowed_ips[j];
                        if (!is_host(a))
                                continue;
                        out->addrs[k].family = a->family;
                        if (a->family == AF_INET)
                                out->addrs[k].in = a->ip4;
                        else
                                out->addrs[k].in6 = a->ip6;
                        k++;
                }
                for (size_t j = 0; j < p->n_names; j++)
                        out->entries[out->n_entries++] = (struct dns_entry) {
                                .fqdn = p->names[j], .addresses = first, .n_addresses = (size_t) (out->addrs + k - first),
                        };
        }
        return 0;
}

void peerupdate_names_freep(struct peerupdate_names *n) {
        free(n->entries);
        free(n->addrs);
        *n = (struct peerupdate_names) {};
}
