/* SPDX-License-Identifier: MIT */
/*
 * Relay sockets and per-peer path switching (pathmgr.h). The decisions are in pathsel.c;
 * this file does the I/O: one loopback UDP socket per peer, the tick that samples
 * WireGuard, and the endpoint changes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sodium.h>

#include "derp.h"
#include "log.h"
#include "macro.h"
#include "pathmgr.h"
#include "pathsel.h"

/* Datagrams per recvmmsg, and per wakeup of one relay socket: a busy peer must not
 * starve the others (or the DERP connection) on the one loop. */
#define RELAY_BATCH 16
#define RELAY_READ_MAX 64
/* Room for what DERP can carry, plus one byte to see what it cannot (MSG_TRUNC). */
#define RELAY_BUF (DERP_MAX_PACKET_SIZE + 1)
/* Bursts of WireGuard's packets must fit while the loop is busy elsewhere. */
#define RELAY_SOCKBUF (4 * 1024 * 1024)
#define TICK_ACCURACY_USEC 1000ULL
/* Where a check goes on the peer's tunnel address: the discard port, so that nothing is
 * expected to listen and the peer's kernel answers with an ICMP port unreachable. */
#define CHECK_PORT 9

struct peer {
        struct pathmgr *pm;
        uint8_t key[WG_KEY_LEN];
        union wg_endpoint direct;       /* sa_family 0: none known */
        int region;
        int fd;
        sd_event_source *io;
        union wg_endpoint relay;        /* 127.0.0.1:<fd's port> */
        struct pathsel sel;
        int64_t last_handshake_sec;
        uint64_t rx_bytes, tx_bytes;
        uint64_t relayed_in, relayed_out, relayed_in_bytes, dropped;
};

struct pathmgr {
        sd_event *event;
        struct wg *wg;
        struct pathmgr_callbacks cb;
        void *userdata;
        sd_event_source *tick;
        uint16_t listen_port;           /* WireGuard's; 0: not known yet */
        struct peer **peers;            /* sorted by key, for the per-packet lookup */
        size_t n_peers, cap;
        struct mmsghdr msgs[RELAY_BATCH];
        struct iovec iov[RELAY_BATCH];
        uint8_t *bufs;                  /* RELAY_BATCH * RELAY_BUF */
        int check_fd[2];                /* IPv4, IPv6; -1: not open yet */
};

static uint32_t random_uniform(uint32_t upper) {
        return randombytes_uniform(upper);
}

static uint64_t now_usec(struct pathmgr *pm) {
        uint64_t now;
        if (sd_event_now(pm->event, CLOCK_MONOTONIC, &now) < 0)
                return 0;
        return now;
}

static bool is_loopback(const union wg_endpoint *e) {
        if (e->sa.sa_family == AF_INET)
                return (ntohl(e->in.sin_addr.s_addr) >> 24) == 127;
        if (e->sa.sa_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&e->in6.sin6_addr) ||
                       (IN6_IS_ADDR_V4MAPPED(&e->in6.sin6_addr) && e->in6.sin6_addr.s6_addr[12] == 127);
        return false;
}

static enum pathsel_endpoint classify(const struct peer *p, const union wg_endpoint *e) {
        if (wg_endpoint_equal(e, &p->relay))
                return PATHSEL_EP_RELAY;
        if (p->direct.sa.sa_family && wg_endpoint_equal(e, &p->direct))
                return PATHSEL_EP_DIRECT;
        /* Loopback that is not our socket (none, or a stale relay port) says nothing about
         * a direct path: have it pointed where it belongs. */
        if (!e->sa.sa_family || is_loopback(e))
                return PATHSEL_EP_NONE;
        return PATHSEL_EP_OTHER;
}

static int key_cmp(const void *key, const void *elem) {
        const struct peer *const *p = elem;
        return memcmp(key, (*p)->key, WG_KEY_LEN);
}

static size_t lower_bound(const struct pathmgr *pm, const uint8_t key[WG_KEY_LEN]) {
        size_t lo = 0, hi = pm->n_peers;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (memcmp(pm->peers[mid]->key, key, WG_KEY_LEN) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static struct peer *find_peer(const struct pathmgr *pm, const uint8_t key[WG_KEY_LEN]) {
        if (!pm->n_peers)
                return NULL;
        struct peer **p = bsearch(key, pm->peers, pm->n_peers, sizeof(*pm->peers), key_cmp);
        return p ? *p : NULL;
}

static int set_endpoint(struct pathmgr *pm, struct peer *p, const union wg_endpoint *e) {
        /* Only the endpoint: WireGuard's session, keys and allowed IPs stay as they are. */
        struct wg_peer wp = { .flags = WG_PEER_UPDATE_ONLY, .endpoint = *e };
        struct wg_device dev = { .peers = &wp, .n_peers = 1 };

        memcpy(wp.public_key, p->key, WG_KEY_LEN);
        int r = wg_set(pm->wg, &dev, NULL);
        sodium_memzero(&wp, sizeof(wp));
        if (r < 0)
                return log_warning_errno(r, "pathmgr: cannot set a peer's endpoint on %s",
                                         wg_ifname(pm->wg));
        return 0;
}

static void fill_info(const struct peer *p, struct path_info *info) {
        *info = (struct path_info) {
                .kind = pathsel_is_direct(&p->sel) ? PATH_DIRECT : PATH_DERP,
                .derp_region = p->region,
                .endpoint = p->direct,
                .last_handshake_sec = p->last_handshake_sec,
                .rx_bytes = p->rx_bytes,
                .tx_bytes = p->tx_bytes,
                .relayed_in = p->relayed_in,
                .relayed_out = p->relayed_out,
        };
}

static void notify(struct pathmgr *pm, struct peer *p) {
        struct path_info info;

        fill_info(p, &info);
        log_debug("pathmgr: a peer on %s is now %s (%s)", wg_ifname(pm->wg),
                  info.kind == PATH_DIRECT ? "direct" : "relayed through DERP",
                  pathsel_state_name(p->sel.state));
        if (pm->cb.path_changed)
                pm->cb.path_changed(pm, p->key, &info, pm->userdata);
}

/* ---- relay sockets ------------------------------------------------------------------- */

static int relay_connect(struct pathmgr *pm, struct peer *p) {
        struct sockaddr_in wg = {
                .sin_family = AF_INET,
                .sin_port = htons(pm->listen_port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        /* Connected: only WireGuard's own datagrams are read, and writes need no address. */
        if (connect(p->fd, (struct sockaddr *) &wg, sizeof(wg)) < 0)
                return log_warning_errno(errno, "pathmgr: cannot connect a relay socket to port %u",
                                         pm->listen_port);
        return 0;
}

static void relay_drop(struct peer *p, const char *why, int error) {
        /* Dropped datagrams are what UDP does anyway; WireGuard retransmits. One line
         * per thousand keeps a flood out of the log. */
        if (p->dropped++ % 1000 == 0)
                log_debug_errno(error, "pathmgr: relayed packet dropped (%s, %llu so far)", why,
                                (unsigned long long) p->dropped);
}

static int on_relay_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct peer *p = userdata;
        struct pathmgr *pm = p->pm;

        for (unsigned done = 0; done < RELAY_READ_MAX;) {
                for (unsigned i = 0; i < RELAY_BATCH; i++) {
                        pm->iov[i] = (struct iovec) { pm->bufs + (size_t) i * RELAY_BUF, RELAY_BUF };
                        pm->msgs[i].msg_hdr = (struct msghdr) { .msg_iov = &pm->iov[i], .msg_iovlen = 1 };
                }
                int n = recvmmsg(fd, pm->msgs, RELAY_BATCH, MSG_DONTWAIT, NULL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        /* ECONNREFUSED: an ICMP error from WireGuard's port (it was down or
                         * moving); the socket is still good. */
                        if (errno != ECONNREFUSED)
                                relay_drop(p, "read", -errno);
                        return 0;
                }
                for (int i = 0; i < n; i++) {
                        if (pm->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                                relay_drop(p, "larger than DERP carries", -EMSGSIZE);
                                continue;
                        }
                        int r = pm->cb.derp_send(pm, p->region, p->key, pm->iov[i].iov_base,
                                                 pm->msgs[i].msg_len, pm->userdata);
                        if (r < 0)
                                relay_drop(p, "DERP send", r);
                        else
                                p->relayed_out++;
                }
                done += (unsigned) n;
                if (n < RELAY_BATCH)
                        break;
        }
        return 0;
}

static void sockbuf(int fd, int opt_force, int opt) {
        int v = RELAY_SOCKBUF;
        /* FORCE passes rmem_max/wmem_max when we have CAP_NET_ADMIN; else ask politely. */
        if (setsockopt(fd, SOL_SOCKET, opt_force, &v, sizeof(v)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

static int relay_open(struct pathmgr *pm, struct peer *p) {
        struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(local);
        int r;

        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_warning_errno(errno, "pathmgr: cannot open a relay socket");
        sockbuf(fd, SO_RCVBUFFORCE, SO_RCVBUF);
        sockbuf(fd, SO_SNDBUFFORCE, SO_SNDBUF);
        if (bind(fd, (struct sockaddr *) &local, sizeof(local)) < 0 ||
            getsockname(fd, (struct sockaddr *) &local, &len) < 0)
                return log_warning_errno(errno, "pathmgr: cannot bind a relay socket");
        p->relay.in = local;
        p->fd = TAKE_FD(fd);
        if (pm->listen_port && (r = relay_connect(pm, p)) < 0)
                return r;
        r = sd_event_add_io(pm->event, &p->io, p->fd, EPOLLIN, on_relay_io, p);
        if (r < 0)
                return log_warning_errno(r, "pathmgr: cannot watch a relay socket");
        return 0;
}

static void peer_free(struct peer *p) {
        if (!p)
                return;
        sd_event_source_disable_unref(p->io);
        if (p->fd >= 0)
                close(p->fd);
        sodium_memzero(p, sizeof(*p));
        free(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct peer *, peer_free);

/* ---- the tick ------------------------------------------------------------------------ */

/* The peer's own tunnel address: its first single-address allowed IP. */
static bool peer_address(const struct wg_peer *wp, union wg_endpoint *ret) {
        for (size_t i = 0; i < wp->n_allowedips; i++) {
                const struct wg_allowedip *a = &wp->allowedips[i];
                if (a->family == AF_INET && a->cidr == 32) {
                        *ret = (union wg_endpoint) { .in = { .sin_family = AF_INET, .sin_addr = a->ip4,
                                                             .sin_port = htons(CHECK_PORT) } };
                        return true;
                }
                if (a->family == AF_INET6 && a->cidr == 128) {
                        *ret = (union wg_endpoint) { .in6 = { .sin6_family = AF_INET6, .sin6_addr = a->ip6,
                                                              .sin6_port = htons(CHECK_PORT) } };
                        return true;
                }
        }
        return false;
}

/*
 * An empty datagram through the tunnel to the peer's address, which the peer's stack
 * answers (pathsel.h). The socket has no fwmark, so the routes send it into the tunnel;
 * without a single-address allowed IP, or with a peer that answers nothing, the silence
 * rule decides as before.
 */
static void send_check(struct pathmgr *pm, const struct wg_peer *wp) {
        union wg_endpoint to;

        if (!peer_address(wp, &to))
                return;
        int *fd = &pm->check_fd[to.sa.sa_family == AF_INET6];
        if (*fd < 0)
                *fd = socket(to.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (*fd < 0 || sendto(*fd, NULL, 0, 0, &to.sa,
                              to.sa.sa_family == AF_INET6 ? sizeof(to.in6) : sizeof(to.in)) < 0)
                log_debug_errno(errno, "pathmgr: cannot send a check on %s", wg_ifname(pm->wg));
}

static void take_counters(struct peer *p, const struct wg_peer *wp) {
        p->tx_bytes = wp->tx_bytes;
        p->rx_bytes = wp->rx_bytes;
        p->last_handshake_sec = wp->last_handshake_sec;
}

static void peer_sample(struct pathmgr *pm, struct peer *p, const struct wg_peer *wp, uint64_t now) {
        const struct pathsel_sample s = {
                .tx_bytes = wp->tx_bytes,
                .rx_bytes = wp->rx_bytes,
                .relayed_in_bytes = p->relayed_in_bytes,
                .last_handshake_sec = wp->last_handshake_sec,
                .endpoint = classify(p, &wp->endpoint),
        };
        bool was_direct = pathsel_is_direct(&p->sel);
        int r = 0;

        take_counters(p, wp);
        enum pathsel_state before = p->sel.state;
        enum pathsel_action action = pathsel_tick(&p->sel, now, &s);
        if (action != PATHSEL_KEEP || before != p->sel.state)
                log_debug("pathmgr: a peer on %s: %s -> %s, endpoint %s", wg_ifname(pm->wg),
                          pathsel_state_name(before), pathsel_state_name(p->sel.state),
                          action == PATHSEL_POINT_DIRECT ? "to the direct one" :
                          action == PATHSEL_POINT_RELAY ? "to the relay socket" :
                          action == PATHSEL_ADOPT ? "adopted where WireGuard roamed" : "kept");
        switch (action) {
        case PATHSEL_KEEP:
                break;
        case PATHSEL_POINT_DIRECT:
                r = set_endpoint(pm, p, &p->direct);
                break;
        case PATHSEL_POINT_RELAY:
                r = set_endpoint(pm, p, &p->relay);
                break;
        case PATHSEL_ADOPT:
                p->direct = wp->endpoint;
                break;
        }
        if (r < 0)
                pathsel_failed(&p->sel);
        if (pathsel_wants_check(&p->sel))
                send_check(pm, wp);
        if (was_direct != pathsel_is_direct(&p->sel))
                notify(pm, p);
}

static void pathmgr_sample(struct pathmgr *pm) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        uint64_t now = now_usec(pm);
        int r;

        r = wg_get(pm->wg, &dev);
        if (r < 0) {
                log_debug_errno(r, "pathmgr: cannot read %s", wg_ifname(pm->wg));
                return;
        }
        if (dev->listen_port && dev->listen_port != pm->listen_port) {
                pm->listen_port = dev->listen_port;
                for (size_t i = 0; i < pm->n_peers; i++)
                        (void) relay_connect(pm, pm->peers[i]);
        }
        for (size_t i = 0; i < dev->n_peers; i++) {
                struct peer *p = find_peer(pm, dev->peers[i].public_key);
                if (p)
                        peer_sample(pm, p, &dev->peers[i], now);
        }
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct pathmgr *pm = userdata;

        pathmgr_sample(pm);
        /* From now, not from the due time: a loop that fell behind does not tick in bursts. */
        int r = sd_event_source_set_time(s, now_usec(pm) + PATHMGR_TICK_USEC);
        return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* ---- API ----------------------------------------------------------------------------- */

int pathmgr_new(sd_event *event, struct wg *wg, const struct pathmgr_callbacks *cb, void *userdata,
                struct pathmgr **ret) {
        _cleanup_(pathmgr_freep) struct pathmgr *pm = NULL;
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        int r;

        if (!event || !wg || !cb || !cb->derp_send || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -ENOMEM;
        pm = calloc(1, sizeof(*pm));
        if (!pm)
                return -ENOMEM;
        pm->event = sd_event_ref(event);
        pm->wg = wg;
        pm->cb = *cb;
        pm->userdata = userdata;
        pm->check_fd[0] = pm->check_fd[1] = -1;
        pm->bufs = malloc((size_t) RELAY_BATCH * RELAY_BUF);
        if (!pm->bufs)
                return -ENOMEM;

        r = wg_get(wg, &dev);
        if (r < 0)
                return log_warning_errno(r, "pathmgr: cannot read %s", wg_ifname(wg));
        pm->listen_port = dev->listen_port;

        /* A tight accuracy: with sd-event's coalescing the tick would run right after
         * whatever woke the loop — typically a packet WireGuard just sent through the relay,
         * whose answer through DERP then undoes every probe a millisecond after it starts. */
        r = sd_event_add_time_relative(event, &pm->tick, CLOCK_MONOTONIC, PATHMGR_TICK_USEC,
                                       TICK_ACCURACY_USEC, on_tick, pm);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(pm);
        return 0;
}

struct pathmgr *pathmgr_free(struct pathmgr *pm) {
        if (!pm)
                return NULL;
        for (size_t i = 0; i < pm->n_peers; i++)
                peer_free(pm->peers[i]);
        free(pm->peers);
        sd_event_source_disable_unref(pm->tick);
        for (size_t i = 0; i < ELEMENTSOF(pm->check_fd); i++)
                if (pm->check_fd[i] >= 0)
                        close(pm->check_fd[i]);
        sd_event_unref(pm->event);
        free(pm->bufs);
        free(pm);
        return NULL;
}

int pathmgr_set_peer(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN], const union wg_endpoint *direct,
                     int derp_region) {
        static const union wg_endpoint none;
        _cleanup_(peer_freep) struct peer *fresh = NULL;
        int r;

        if (!direct)
                direct = &none;
        if (direct->sa.sa_family && direct->sa.sa_family != AF_INET && direct->sa.sa_family != AF_INET6)
                return -EAFNOSUPPORT;

        struct peer *p = find_peer(pm, key);
        if (p) {
                p->region = derp_region;
                if (wg_endpoint_equal(&p->direct, direct))
                        return 0;
                bool was_direct = pathsel_is_direct(&p->sel);
                p->direct = *direct;
                pathsel_init(&p->sel, direct->sa.sa_family != 0, now_usec(pm), random_uniform);
                r = set_endpoint(pm, p, direct->sa.sa_family ? &p->direct : &p->relay);
                if (r < 0)
                        pathsel_failed(&p->sel);
                if (was_direct != pathsel_is_direct(&p->sel))
                        notify(pm, p);
                return 0;
        }

        if (pm->n_peers == pm->cap) {
                size_t cap = pm->cap ? pm->cap * 2 : 8;
                struct peer **v = reallocarray(pm->peers, cap, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                pm->peers = v;
                pm->cap = cap;
        }
        fresh = calloc(1, sizeof(*fresh));
        if (!fresh)
                return -ENOMEM;
        fresh->pm = pm;
        fresh->fd = -1;
        memcpy(fresh->key, key, WG_KEY_LEN);
        fresh->direct = *direct;
        fresh->region = derp_region;
        r = relay_open(pm, fresh);
        if (r < 0)
                return r;
        pathsel_init(&fresh->sel, direct->sa.sa_family != 0, now_usec(pm), random_uniform);
        r = set_endpoint(pm, fresh, direct->sa.sa_family ? &fresh->direct : &fresh->relay);
        if (r < 0)
                return r;

        size_t at = lower_bound(pm, key);
        memmove(pm->peers + at + 1, pm->peers + at, (pm->n_peers - at) * sizeof(*pm->peers));
        pm->peers[at] = TAKE_PTR(fresh);
        pm->n_peers++;
        return 0;
}

int pathmgr_remove_peer(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN]) {
        struct peer *p = find_peer(pm, key);
        if (!p)
                return -ENOENT;
        size_t at = lower_bound(pm, key);
        memmove(pm->peers + at, pm->peers + at + 1, (pm->n_peers - at - 1) * sizeof(*pm->peers));
        pm->n_peers--;
        peer_free(p);
        return 0;
}

int pathmgr_derp_recv(struct pathmgr *pm, int region_id, const uint8_t src[WG_KEY_LEN], const void *pkt,
                      size_t len) {
        struct peer *p = find_peer(pm, src);
        if (!p)
                return -ENOENT;
        if (!pm->listen_port) {
                relay_drop(p, "WireGuard's port not known yet", -ENOTCONN);
                return -ENOTCONN;
        }
        if (send(p->fd, pkt, len, MSG_DONTWAIT) < 0) {
                int r = -errno;
                relay_drop(p, "write to WireGuard", r);
                return r;
        }
        p->relayed_in++;
        p->relayed_in_bytes += len;
        return 0;
}

int pathmgr_refresh(struct pathmgr *pm) {
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        int r = wg_get(pm->wg, &dev);

        if (r < 0)
                return r;
        for (size_t i = 0; i < dev->n_peers; i++) {
                struct peer *p = find_peer(pm, dev->peers[i].public_key);
                if (p)
                        take_counters(p, &dev->peers[i]);
        }
        return 0;
}

int pathmgr_peer_info(const struct pathmgr *pm, const uint8_t key[WG_KEY_LEN], struct path_info *ret) {
        const struct peer *p = find_peer(pm, key);
        if (!p)
                return -ENOENT;
        fill_info(p, ret);
        return 0;
}
