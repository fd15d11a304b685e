/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "wg-backend.h"

static const char *const mode_names[] = {
        [WG_MODE_AUTO] = "auto",
        [WG_MODE_KERNEL] = "kernel",
        [WG_MODE_USERSPACE] = "userspace",
};

const char *wg_mode_name(enum wg_mode mode) {
        return mode_names[mode];
}

enum wg_mode wg_get_mode(const struct wg *w) {
        return w->mode;
}

const char *wg_ifname(const struct wg *w) {
        return w->ifname;
}

int wg_open(struct wg **ret, const char *ifname, enum wg_mode mode) {
        struct wg *w;

        if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/'))
                return -EINVAL;
        if (mode == WG_MODE_AUTO)
                mode = wg_kernel_available() ? WG_MODE_KERNEL : WG_MODE_USERSPACE;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        strcpy(w->ifname, ifname);
        w->mode = mode;
        w->backend = mode == WG_MODE_KERNEL ? &wg_backend_kernel : &wg_backend_userspace;
        *ret = w;
        return 0;
}

void wg_free(struct wg *w) {
        if (!w)
                return;
        if (w->backend->close)
                w->backend->close(w);
        free(w);
}

int wg_create(struct wg *w) {
        return w->backend->create(w);
}

int wg_delete(struct wg *w) {
        return w->backend->delete(w);
}

int wg_set(struct wg *w, const struct wg_device *dev, struct wg_stats *stats) {
        struct wg_stats ignored;
        if (!stats)
                stats = &ignored;
        *stats = (struct wg_stats) {};
        return w->backend->set(w, dev, stats);
}

int wg_get(struct wg *w, struct wg_device **ret) {
        return w->backend->get(w, ret);
}

void wg_device_free_shallow(struct wg_device *d) {
        if (d->peers)   /* preshared keys */
                sodium_memzero(d->peers, d->n_peers * sizeof(*d->peers));
        free(d->peers);
        d->peers = NULL;
        d->n_peers = 0;
}

void wg_device_free(struct wg_device *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n_peers; i++)
                free(d->peers[i].allowedips);
        if (d->peers)   /* preshared keys */
                sodium_memzero(d->peers, d->n_peers * sizeof(*d->peers));
        free(d->peers);
        sodium_memzero(d, sizeof(*d));
        free(d);
}

/* ---- Diff ---------------------------------------------------------------------------- */

static int cmp_peer_ptr(const void *a, const void *b) {
        const struct wg_peer *const *x = a, *const *y = b;
        return memcmp((*x)->public_key, (*y)->public_key, WG_KEY_LEN);
}

static int cmp_allowedip(const void *a, const void *b) {
        const struct wg_allowedip *x = a, *y = b;
        if (x->family != y->family)
                return x->family < y->family ? -1 : 1;
        if (x->cidr != y->cidr)
                return x->cidr < y->cidr ? -1 : 1;
        return memcmp(&x->ip6, &y->ip6, x->family == AF_INET ? 4 : 16);
}

static int sorted_ptrs(const struct wg_device *d, const struct wg_peer ***ret) {
        const struct wg_peer **v = calloc(d->n_peers ? d->n_peers : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_peers; i++)
                v[i] = &d->peers[i];
        qsort(v, d->n_peers, sizeof(*v), cmp_peer_ptr);
        *ret = v;
        return 0;
}

/* The kernel masks host bits of allowed IPs; compare what it would store. */
static void mask_allowedip(struct wg_allowedip *a) {
        uint8_t *b = (uint8_t *) &a->ip6;
        size_t len = a->family == AF_INET ? 4 : 16;
        for (size_t i = 0; i < len; i++) {
                unsigned bits = a->cidr > i * 8 ? a->cidr - (unsigned) i * 8 : 0;
                if (bits < 8)
                        b[i] &= (uint8_t) (0xff << (8 - bits));
        }
}

static int same_allowedips(const struct wg_peer *a, const struct wg_peer *b, bool *ret) {
        if (a->n_allowedips != b->n_allowedips) {
                *ret = false;
                return 0;
        }
        size_t n = a->n_allowedips;
        if (n == 0) {
                *ret = true;   /* and no NULL array reaches memcpy */
                return 0;
        }
        struct wg_allowedip *x = calloc(2 * n, sizeof(*x));
        if (!x)
                return -ENOMEM;
        memcpy(x, a->allowedips, n * sizeof(*x));
        memcpy(x + n, b->allowedips, n * sizeof(*x));
        for (size_t i = 0; i < 2 * n; i++)
                mask_allowedip(&x[i]);
        qsort(x, n, sizeof(*x), cmp_allowedip);
        qsort(x + n, n, sizeof(*x), cmp_allowedip);
        *ret = true;
        for (size_t i = 0; i < n && *ret; i++)
                *ret = cmp_allowedip(&x[i], &x[n + i]) == 0;
        free(x);
        return 0;
}

bool wg_endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b) {
        if (a->sa.sa_family != b->sa.sa_family)
                return false;
        if (a->sa.sa_family == AF_INET)
                return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
        if (a->sa.sa_family == AF_INET6)
                return a->in6.sin6_port == b->in6.sin6_port &&
                       memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
        return true;
}

/*
 * One peer's change, or nothing. A desired peer without an endpoint leaves the
 * current one alone: it was learnt from the peer's own handshakes (roaming),
 * and replacing the peer to clear it would drop the session.
 */
static int diff_peer(const struct wg_peer *cur, const struct wg_peer *want, struct wg_peer *out, bool *changed) {
        bool same_ips;
        int r = same_allowedips(cur, want, &same_ips);
        if (r < 0)
                return r;

        *out = (struct wg_peer) {};
        memcpy(out->public_key, want->public_key, WG_KEY_LEN);
        out->flags = WG_PEER_UPDATE_ONLY;
        if (!same_ips) {
                out->flags |= WG_PEER_REPLACE_ALLOWEDIPS;
                out->allowedips = want->allowedips;
                out->n_allowedips = want->n_allowedips;
        }
        if (want->endpoint.sa.sa_family && !wg_endpoint_equal(&cur->endpoint, &want->endpoint))
                out->endpoint = want->endpoint;
        if ((want->flags & WG_PEER_HAS_KEEPALIVE) && want->persistent_keepalive != cur->persistent_keepalive) {
                out->flags |= WG_PEER_HAS_KEEPALIVE;
                out->persistent_keepalive = want->persistent_keepalive;
        }
        if ((want->flags & WG_PEER_HAS_PRESHARED_KEY) &&
            sodium_memcmp(want->preshared_key, cur->preshared_key, WG_KEY_LEN) != 0) {
                out->flags |= WG_PEER_HAS_PRESHARED_KEY;
                memcpy(out->preshared_key, want->preshared_key, WG_KEY_LEN);
        }
        *changed = out->flags != WG_PEER_UPDATE_ONLY || out->endpoint.sa.sa_family;
        return 0;
}

static struct wg_peer new_peer(const struct wg_peer *want) {
        struct wg_peer p = *want;
        p.flags = (want->flags & (WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_KEEPALIVE)) | WG_PEER_REPLACE_ALLOWEDIPS;
        return p;
}

int wg_diff(const struct wg_device *current, const struct wg_device *desired, struct wg_device *out) {
        const struct wg_peer **cur = NULL, **want = NULL;
        size_t i = 0, j = 0, n = 0;
        int r;

        *out = (struct wg_device) {};
        if ((desired->flags & WG_DEVICE_HAS_PRIVATE_KEY) &&
            sodium_memcmp(desired->private_key, current->private_key, WG_KEY_LEN) != 0) {
                out->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                memcpy(out->private_key, desired->private_key, WG_KEY_LEN);
        }
        if ((desired->flags & WG_DEVICE_HAS_LISTEN_PORT) && desired->listen_port &&
            desired->listen_port != current->listen_port) {
                out->flags |= WG_DEVICE_HAS_LISTEN_PORT;
                out->listen_port = desired->listen_port;
        }
        if ((desired->flags & WG_DEVICE_HAS_FWMARK) && desired->fwmark != current->fwmark) {
                out->flags |= WG_DEVICE_HAS_FWMARK;
                out->fwmark = desired->fwmark;
        }

        out->peers = calloc(current->n_peers + desired->n_peers + 1, sizeof(*out->peers));
        if (!out->peers)
                return -ENOMEM;
        if ((r = sorted_ptrs(current, &cur)) < 0 || (r = sorted_ptrs(desired, &want)) < 0)
                goto fail;

        while (i < current->n_peers || j < desired->n_peers) {
                int c = i == current->n_peers ? 1 : j == desired->n_peers ? -1 :
                        memcmp(cur[i]->public_key, want[j]->public_key, WG_KEY_LEN);
                if (c < 0) {
                        struct wg_peer *p = &out->peers[n++];
                        *p = (struct wg_peer) { .flags = WG_PEER_REMOVE };
                        memcpy(p->public_key, cur[i++]->public_key, WG_KEY_LEN);
                } else if (c > 0) {
                        out->peers[n++] = new_peer(want[j++]);
                } else {
                        bool changed;
                        r = diff_peer(cur[i], want[j], &out->peers[n], &changed);
                        if (r < 0)
                                goto fail;
                        n += changed;
                        i++, j++;
                }
        }
        out->n_peers = n;
        free(cur);
        free(want);
        return 0;
fail:
        free(cur);
        free(want);
        wg_device_free_shallow(out);
        return r;
}

int wg_sync(struct wg *w, const struct wg_device *current, const struct wg_device *desired,
            struct wg_stats *stats) {
        struct wg_device *read = NULL, change;
        int r;

        if (!current) {
                r = wg_get(w, &read);
                if (r < 0)
                        return r;
                current = read;
        }
        r = wg_diff(current, desired, &change);
        wg_device_free(read);
        if (r < 0)
                return r;
        if (change.flags == 0 && change.n_peers == 0) {
                if (stats)
                        *stats = (struct wg_stats) {};
                wg_device_free_shallow(&change);
                return 0;
        }
        r = wg_set(w, &change, stats);
        sodium_memzero(change.private_key, WG_KEY_LEN);
        wg_device_free_shallow(&change);
        return r;
}

/* ---- Keys and addresses -------------------------------------------------------------- */

int wg_key_from_base64(uint8_t key[static WG_KEY_LEN], const char *s) {
        size_t len;

        if (!s || strlen(s) != 44 || s[43] != '=' ||
            sodium_base642bin(key, WG_KEY_LEN, s, 44, NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            len != WG_KEY_LEN)
                return -EINVAL;
        return 0;
}

void wg_key_to_base64(char out[static 45], const uint8_t key[static WG_KEY_LEN]) {
        sodium_bin2base64(out, 45, key, WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

void wg_key_generate_private(uint8_t key[static WG_KEY_LEN]) {
        randombytes_buf(key, WG_KEY_LEN);
        key[0] &= 248;        /* Curve25519 clamping, as wg genkey does */
        key[31] = (uint8_t) ((key[31] & 127) | 64);
}

void wg_key_public_from_private(uint8_t pub[static WG_KEY_LEN], const uint8_t priv[static WG_KEY_LEN]) {
        crypto_scalarmult_curve25519_base(pub, priv);
}

bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN]) {
        return sodium_is_zero(key, WG_KEY_LEN);
}

int wg_allowedip_parse(struct wg_allowedip *ret, const char *s) {
        char buf[INET6_ADDRSTRLEN + 8];
        const char *slash = strchr(s, '/');
        size_t addr_len = slash ? (size_t) (slash - s) : strlen(s);
        unsigned long cidr;
        char *end;

        if (addr_len >= INET6_ADDRSTRLEN)
                return -EINVAL;
        memcpy(buf, s, addr_len);
        buf[addr_len] = '\0';
        *ret = (struct wg_allowedip) {};
        if (inet_pton(AF_INET, buf, &ret->ip4) == 1)
                ret->family = AF_INET;
        else if (inet_pton(AF_INET6, buf, &ret->ip6) == 1)
                ret->family = AF_INET6;
        else
                return -EINVAL;
        unsigned max = ret->family == AF_INET ? 32 : 128;
        if (!slash) {
                ret->cidr = (uint8_t) max;
                return 0;
        }
        if (slash[1] < '0' || slash[1] > '9')
                return -EINVAL;
        errno = 0;
        cidr = strtoul(slash + 1, &end, 10);
        if (errno || *end || cidr > max)
                return -EINVAL;
        ret->cidr = (uint8_t) cidr;
        return 0;
}

int wg_endpoint_parse(union wg_endpoint *ret, const char *s) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon;
        unsigned long port;
        char *end;

        *ret = (union wg_endpoint) {};
        if (*s == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':' || (size_t) (close - s - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, (size_t) (close - s - 1));
                host[close - s - 1] = '\0';
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || (size_t) (colon - s) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, (size_t) (colon - s));
                host[colon - s] = '\0';
        }
        if (colon[1] < '0' || colon[1] > '9')
                return -EINVAL;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || *end || port == 0 || port > 65535)
                return -EINVAL;
        if (inet_pton(AF_INET, host, &ret->in.sin_addr) == 1) {
                ret->in.sin_family = AF_INET;
                ret->in.sin_port = htons((uint16_t) port);
        } else if (*s == '[' && inet_pton(AF_INET6, host, &ret->in6.sin6_addr) == 1) {
                ret->in6.sin6_family = AF_INET6;
                ret->in6.sin6_port = htons((uint16_t) port);
        } else
                return -EINVAL;
        return 0;
}
