/* SPDX-License-Identifier: MIT */
/* Kernel WireGuard over generic netlink (libmnl). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/wireguard.h>
#include <sodium.h>

#include "wg-backend.h"

/*
 * A nested attribute's length is 16 bits, and WGDEVICE_A_PEERS holds all of a
 * message's peers: stay under that, well above a page so that large configs
 * take few round trips.
 */
#define WG_MSG_MAX 65000
/* Receive buffer: a dump message is at most 32 KiB; room for one of ours besides. */
#define WG_BUF_SIZE 65536
#define DUMP_RETRIES 16

struct kernel {
        struct mnl_socket *genl;
        uint16_t family;
        uint32_t seq;
        uint8_t *buf;        /* WG_BUF_SIZE: requests are built and replies read here */
};

static void kernel_close(struct wg *w) {
        struct kernel *k = w->data;
        if (!k)
                return;
        if (k->genl)
                mnl_socket_close(k->genl);
        free(k->buf);
        free(k);
        w->data = NULL;
}

static int family_cb(const struct nlattr *attr, void *data) {
        if (mnl_attr_get_type(attr) == CTRL_ATTR_FAMILY_ID && mnl_attr_validate(attr, MNL_TYPE_U16) >= 0)
                *(uint16_t *) data = mnl_attr_get_u16(attr);
        return MNL_CB_OK;
}

static int family_msg_cb(const struct nlmsghdr *nlh, void *data) {
        mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_cb, data);
        return MNL_CB_OK;
}

static int resolve_family(struct mnl_socket *nl, uint8_t *buf, size_t size, uint16_t *ret) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        struct genlmsghdr *g;
        uint32_t seq = (uint32_t) time(NULL);

        nlh->nlmsg_type = GENL_ID_CTRL;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        nlh->nlmsg_seq = seq;
        g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
        g->cmd = CTRL_CMD_GETFAMILY;
        g->version = 1;
        mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        *ret = 0;
        int r = wg_nl_run_replies(nl, seq, buf, size, family_msg_cb, ret);
        if (r < 0)
                return r;
        return *ret ? 0 : -ENOENT;
}

/* The family appears once the module is loaded, which creating a link does. */
static int kernel_connect(struct wg *w, struct kernel **ret) {
        struct kernel *k = w->data;
        int r;

        if (!k) {
                k = calloc(1, sizeof(*k));
                if (!k)
                        return -ENOMEM;
                k->buf = malloc(WG_BUF_SIZE);
                if (!k->buf) {   /* not kept half made: the next call would use a NULL buffer */
                        free(k);
                        return -ENOMEM;
                }
                k->seq = (uint32_t) time(NULL);
                w->data = k;
        }
        if (!k->genl && (r = wg_nl_open(NETLINK_GENERIC, &k->genl)) < 0)
                return r;
        if (!k->family && (r = resolve_family(k->genl, k->buf, WG_BUF_SIZE, &k->family)) < 0)
                return r == -ENOENT ? -EOPNOTSUPP : r;
        *ret = k;
        return 0;
}

bool wg_kernel_available(void) {
        struct utsname u;
        char path[512];
        struct stat st;

        if (stat("/sys/module/wireguard", &st) == 0)
                return true;
        /* Not loaded: is it loadable? (creating a link loads it) */
        if (uname(&u) < 0)
                return false;
        snprintf(path, sizeof(path), "/lib/modules/%s/modules.dep", u.release);
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        char line[1024];
        bool found = false;
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, "/wireguard.ko") != NULL;
        fclose(f);
        return found;
}

/* ---- Links (rtnetlink, netlink/link.c) ------------------------------------------------ */

static int kernel_create(struct wg *w) {
        int r = wg_rtnl_link_request(w->ifname, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, "wireguard");
        /* "Unknown device type": the module is absent. */
        return r == -EOPNOTSUPP ? -EOPNOTSUPP : r;
}

static int kernel_delete(struct wg *w) {
        return wg_rtnl_link_request(w->ifname, RTM_DELLINK, 0, NULL);
}

/* ---- SET_DEVICE ---------------------------------------------------------------------- */

static struct nlmsghdr *start_message(struct kernel *k, const char *ifname, uint8_t cmd, uint16_t flags) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(k->buf);
        struct genlmsghdr *g;

        nlh->nlmsg_type = k->family;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = ++k->seq;
        g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
        g->cmd = cmd;
        g->version = WG_GENL_VERSION;
        mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
        return nlh;
}

/*
 * After a failed exchange the socket may still hold (or, for a dump, go on producing)
 * replies to the old sequence number, which the next request would read as -EPROTO
 * (and a new dump is refused with -EBUSY while one runs): start over on a fresh socket.
 */
static void kernel_reset(struct kernel *k) {
        if (k->genl)
                mnl_socket_close(k->genl);
        k->genl = NULL;
}

static int send_and_wait(struct kernel *k, struct nlmsghdr *nlh) {
        if (mnl_socket_sendto(k->genl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        int r = wg_nl_run_replies(k->genl, nlh->nlmsg_seq, k->buf, WG_BUF_SIZE, NULL, NULL);
        if (r < 0)
                kernel_reset(k);
        return r;
}

static bool put_peer_header(struct nlmsghdr *nlh, const struct wg_peer *p) {
        uint32_t flags = 0;

        if (p->flags & WG_PEER_REMOVE)
                flags |= WGPEER_F_REMOVE_ME;
        if (p->flags & WG_PEER_REPLACE_ALLOWEDIPS)
                flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
        if (p->flags & WG_PEER_UPDATE_ONLY)
                flags |= WGPEER_F_UPDATE_ONLY;
        if (flags && !mnl_attr_put_u32_check(nlh, WG_MSG_MAX, WGPEER_A_FLAGS, flags))
                return false;
        if ((p->flags & WG_PEER_HAS_PRESHARED_KEY) &&
            !mnl_attr_put_check(nlh, WG_MSG_MAX, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, p->preshared_key))
                return false;
        if (p->endpoint.sa.sa_family == AF_INET &&
            !mnl_attr_put_check(nlh, WG_MSG_MAX, WGPEER_A_ENDPOINT, sizeof(p->endpoint.in), &p->endpoint.in))
                return false;
        if (p->endpoint.sa.sa_family == AF_INET6 &&
            !mnl_attr_put_check(nlh, WG_MSG_MAX, WGPEER_A_ENDPOINT, sizeof(p->endpoint.in6), &p->endpoint.in6))
                return false;
        if ((p->flags & WG_PEER_HAS_KEEPALIVE) &&
            !mnl_attr_put_u16_check(nlh, WG_MSG_MAX, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p->persistent_keepalive))
                return false;
        return true;
}

/* Adds allowed IPs from *@next on; returns false when the message filled up first. */
static bool put_allowedips(struct nlmsghdr *nlh, const struct wg_peer *p, size_t *next) {
        struct nlattr *list = mnl_attr_nest_start_check(nlh, WG_MSG_MAX, WGPEER_A_ALLOWEDIPS);
        if (!list)
                return false;
        size_t start = *next;
        for (; *next < p->n_allowedips; (*next)++) {
                const struct wg_allowedip *a = &p->allowedips[*next];
                struct nlattr *one = mnl_attr_nest_start_check(nlh, WG_MSG_MAX, 0);
                if (!one ||
                    !mnl_attr_put_u16_check(nlh, WG_MSG_MAX, WGALLOWEDIP_A_FAMILY, a->family) ||
                    !mnl_attr_put_check(nlh, WG_MSG_MAX, WGALLOWEDIP_A_IPADDR,
                                        a->family == AF_INET ? 4 : 16, &a->ip6) ||
                    !mnl_attr_put_u8_check(nlh, WG_MSG_MAX, WGALLOWEDIP_A_CIDR_MASK, a->cidr)) {
                        if (one)
                                mnl_attr_nest_cancel(nlh, one);
                        break;
                }
                mnl_attr_nest_end(nlh, one);
        }
        if (*next == start)
                mnl_attr_nest_cancel(nlh, list);
        else
                mnl_attr_nest_end(nlh, list);
        return *next == p->n_allowedips;
}

static int kernel_set(struct wg *w, const struct wg_device *dev, struct wg_stats *stats) {
        struct kernel *k;
        size_t peer = 0, ip = 0;   /* where the next message resumes */
        bool first = true;
        int r;

        if ((r = kernel_connect(w, &k)) < 0)
                return r;
        do {
                struct nlmsghdr *nlh = start_message(k, w->ifname, WG_CMD_SET_DEVICE, NLM_F_ACK);
                if (first) {
                        if (dev->flags & WG_DEVICE_REPLACE_PEERS)
                                mnl_attr_put_u32(nlh, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
                        if (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY)
                                mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev->private_key);
                        if (dev->flags & WG_DEVICE_HAS_LISTEN_PORT)
                                mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, dev->listen_port);
                        if (dev->flags & WG_DEVICE_HAS_FWMARK)
                                mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, dev->fwmark);
                }
                struct nlattr *peers = peer < dev->n_peers ? mnl_attr_nest_start_check(nlh, WG_MSG_MAX, WGDEVICE_A_PEERS) : NULL;
                size_t in_message = 0;
                while (peers && peer < dev->n_peers) {
                        const struct wg_peer *p = &dev->peers[peer];
                        bool continuation = ip > 0;
                        struct nlattr *nest = mnl_attr_nest_start_check(nlh, WG_MSG_MAX, 0);
                        if (!nest)
                                break;
                        if (!mnl_attr_put_check(nlh, WG_MSG_MAX, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, p->public_key) ||
                            (!continuation && !put_peer_header(nlh, p))) {
                                mnl_attr_nest_cancel(nlh, nest);
                                break;
                        }
                        bool all_ips = p->n_allowedips == 0 || put_allowedips(nlh, p, &ip);
                        mnl_attr_nest_end(nlh, nest);
                        in_message++;
                        if (!all_ips)
                                break;   /* the rest of its allowed IPs go in the next message */
                        peer++;
                        ip = 0;
                }
                if (peers) {
                        if (in_message)
                                mnl_attr_nest_end(nlh, peers);
                        else
                                mnl_attr_nest_cancel(nlh, peers);
                }
                /* A message that fits no peer at all could never make progress. */
                if (!first && in_message == 0)
                        return -EMSGSIZE;
                if ((r = send_and_wait(k, nlh)) < 0)
                        return r;
                stats->messages++;
                stats->peers += in_message;
                first = false;
        } while (peer < dev->n_peers);
        return 0;
}

/* ---- GET_DEVICE ---------------------------------------------------------------------- */

struct dump {
        struct wg_device *dev;
        size_t peers_cap;
        size_t ips_cap;      /* of the last peer's allowed IPs */
        int error;
};

static int push_allowedip(struct dump *d, struct wg_peer *p, const struct wg_allowedip *a) {
        if (p->n_allowedips == d->ips_cap) {
                size_t cap = d->ips_cap ? d->ips_cap * 2 : 4;
                struct wg_allowedip *v = realloc(p->allowedips, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                p->allowedips = v;
                d->ips_cap = cap;
        }
        p->allowedips[p->n_allowedips++] = *a;
        return 0;
}

static int parse_allowedip(const struct nlattr *attr, struct wg_allowedip *a) {
        struct nlattr *x;
        bool have_addr = false, have_cidr = false;

        *a = (struct wg_allowedip) {};
        mnl_attr_for_each_nested(x, attr) {
                switch (mnl_attr_get_type(x)) {
                case WGALLOWEDIP_A_FAMILY:
                        if (mnl_attr_validate(x, MNL_TYPE_U16) >= 0)
                                a->family = mnl_attr_get_u16(x);
                        break;
                case WGALLOWEDIP_A_IPADDR:
                        if (mnl_attr_get_payload_len(x) == 4 || mnl_attr_get_payload_len(x) == 16) {
                                memcpy(&a->ip6, mnl_attr_get_payload(x), mnl_attr_get_payload_len(x));
                                have_addr = true;
                        }
                        break;
                case WGALLOWEDIP_A_CIDR_MASK:
                        if (mnl_attr_validate(x, MNL_TYPE_U8) >= 0) {
                                a->cidr = mnl_attr_get_u8(x);
                                have_cidr = true;
                        }
                        break;
                }
        }
        return (a->family == AF_INET || a->family == AF_INET6) && have_addr && have_cidr ? 0 : -EBADMSG;
}

static int parse_peer(struct dump *d, const struct nlattr *attr) {
        struct wg_device *dev = d->dev;
        struct nlattr *x;
        const uint8_t *key = NULL;

        mnl_attr_for_each_nested(x, attr)
                if (mnl_attr_get_type(x) == WGPEER_A_PUBLIC_KEY && mnl_attr_get_payload_len(x) == WG_KEY_LEN)
                        key = mnl_attr_get_payload(x);
        if (!key)
                return -EBADMSG;

        struct wg_peer *p;
        /* A peer continued from the previous message: same key, more allowed IPs. */
        if (dev->n_peers && memcmp(dev->peers[dev->n_peers - 1].public_key, key, WG_KEY_LEN) == 0)
                p = &dev->peers[dev->n_peers - 1];
        else {
                if (dev->n_peers == d->peers_cap) {
                        size_t cap = d->peers_cap ? d->peers_cap * 2 : 16;
                        struct wg_peer *v = realloc(dev->peers, cap * sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        dev->peers = v;
                        d->peers_cap = cap;
                }
                p = &dev->peers[dev->n_peers++];
                *p = (struct wg_peer) {};
                memcpy(p->public_key, key, WG_KEY_LEN);
                d->ips_cap = 0;
        }

        mnl_attr_for_each_nested(x, attr) {
                size_t len = mnl_attr_get_payload_len(x);
                const void *v = mnl_attr_get_payload(x);
                switch (mnl_attr_get_type(x)) {
                case WGPEER_A_PRESHARED_KEY:
                        if (len == WG_KEY_LEN) {
                                memcpy(p->preshared_key, v, WG_KEY_LEN);
                                if (!wg_key_is_zero(p->preshared_key))
                                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                        }
                        break;
                case WGPEER_A_ENDPOINT:
                        if (len == sizeof(struct sockaddr_in) && ((const struct sockaddr *) v)->sa_family == AF_INET)
                                memcpy(&p->endpoint.in, v, len);
                        else if (len == sizeof(struct sockaddr_in6) &&
                                 ((const struct sockaddr *) v)->sa_family == AF_INET6)
                                memcpy(&p->endpoint.in6, v, len);
                        break;
                case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
                        if (mnl_attr_validate(x, MNL_TYPE_U16) >= 0) {
                                p->persistent_keepalive = mnl_attr_get_u16(x);
                                p->flags |= WG_PEER_HAS_KEEPALIVE;
                        }
                        break;
                case WGPEER_A_LAST_HANDSHAKE_TIME:
                        if (len == 2 * sizeof(int64_t)) {
                                /* Attributes are only 4-byte aligned: no int64_t loads from them. */
                                int64_t ts[2];
                                memcpy(ts, v, sizeof(ts));
                                p->last_handshake_sec = ts[0];
                                p->last_handshake_nsec = ts[1];
                        }
                        break;
                case WGPEER_A_RX_BYTES:
                        if (mnl_attr_validate(x, MNL_TYPE_U64) >= 0)
                                p->rx_bytes = mnl_attr_get_u64(x);
                        break;
                case WGPEER_A_TX_BYTES:
                        if (mnl_attr_validate(x, MNL_TYPE_U64) >= 0)
                                p->tx_bytes = mnl_attr_get_u64(x);
                        break;
                case WGPEER_A_ALLOWEDIPS: {
                        struct nlattr *ipattr;
                        mnl_attr_for_each_nested(ipattr, x) {
                                struct wg_allowedip a;
                                int r = parse_allowedip(ipattr, &a);
                                if (r < 0 || (r = push_allowedip(d, p, &a)) < 0)
                                        return r;
                        }
                        break;
                }
                }
        }
        return 0;
}

static int device_attr_cb(const struct nlattr *attr, void *data) {
        struct dump *d = data;
        struct wg_device *dev = d->dev;
        size_t len = mnl_attr_get_payload_len(attr);

        switch (mnl_attr_get_type(attr)) {
        case WGDEVICE_A_PRIVATE_KEY:
                if (len == WG_KEY_LEN) {
                        memcpy(dev->private_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
                        dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                }
                break;
        case WGDEVICE_A_PUBLIC_KEY:
                if (len == WG_KEY_LEN)
                        memcpy(dev->public_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
                break;
        case WGDEVICE_A_LISTEN_PORT:
                if (mnl_attr_validate(attr, MNL_TYPE_U16) >= 0) {
                        dev->listen_port = mnl_attr_get_u16(attr);
                        dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
                }
                break;
        case WGDEVICE_A_FWMARK:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
                        dev->fwmark = mnl_attr_get_u32(attr);
                        dev->flags |= WG_DEVICE_HAS_FWMARK;
                }
                break;
        case WGDEVICE_A_PEERS: {
                struct nlattr *p;
                mnl_attr_for_each_nested(p, attr) {
                        int r = parse_peer(d, p);
                        if (r < 0) {
                                d->error = r;
                                return MNL_CB_ERROR;
                        }
                }
                break;
        }
        }
        return MNL_CB_OK;
}

static int device_msg_cb(const struct nlmsghdr *nlh, void *data) {
        return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), device_attr_cb, data);
}

static int kernel_get(struct wg *w, struct wg_device **ret) {
        struct kernel *k;
        int r;

        if ((r = kernel_connect(w, &k)) < 0)
                return r;
        for (unsigned attempt = 0; attempt < DUMP_RETRIES; attempt++) {
                struct dump d = { .dev = calloc(1, sizeof(struct wg_device)) };
                if (!d.dev)
                        return -ENOMEM;
                struct nlmsghdr *nlh = start_message(k, w->ifname, WG_CMD_GET_DEVICE, NLM_F_ACK | NLM_F_DUMP);
                if (mnl_socket_sendto(k->genl, nlh, nlh->nlmsg_len) < 0)
                        r = -errno;
                else
                        r = wg_nl_run_replies(k->genl, nlh->nlmsg_seq, k->buf, WG_BUF_SIZE, device_msg_cb, &d);
                if (d.error)
                        r = d.error;
                if (r == 0) {
                        *ret = d.dev;
                        return 0;
                }
                wg_device_free(d.dev);
                kernel_reset(k);
                if (r != -EINTR)   /* the device changed under the dump: read it again */
                        return r;
                if ((r = kernel_connect(w, &k)) < 0)
                        return r;
        }
        return -EINTR;
}

const struct wg_backend wg_backend_kernel = {
        .create = kernel_create,
        .delete = kernel_delete,
        .set = kernel_set,
        .get = kernel_get,
        .close = kernel_close,
};
