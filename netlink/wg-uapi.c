/* SPDX-License-Identifier: MIT */
/*
 * Userspace WireGuard: a wireguard-go process per interface, configured over its
 * UAPI socket /var/run/wireguard/<ifname>.sock (the protocol wg(8) speaks).
 *
 * Process model. wireguard-go is started in the foreground mode
 * (WG_PROCESS_FOREGROUND=1) behind a double fork with setsid(), so it is
 * nobody's child: no zombie is left for the caller to reap, a caller's SIGCHLD
 * handling cannot interfere, and the interface outlives a short-lived creator
 * (wgtool create) like a kernel link does. Foreground mode, rather than
 * wireguard-go's own daemonizing, matters for cleanup: the process that listens
 * on the UAPI socket is then the long-lived one, so SO_PEERCRED on a connection
 * names the live wireguard-go, and any process — a restarted codervpnd
 * removing leftovers, `wgtool delete` — can find and wait for it. (Daemonized,
 * the socket is created by the launcher that exits, and SO_PEERCRED names a dead
 * or reused pid.) It stays in the caller's cgroup, so stopping the service stops
 * it; when it dies, its TUN link goes with it. A socket file left behind by a
 * killed process is removed by the next create (connect: ECONNREFUSED).
 *
 * wireguard-go's stdout/stderr go to the journal when our stderr is the journal
 * (JOURNAL_STREAM), else to /dev/null: never to a pipe, which would keep a
 * reader of ours waiting for EOF, and whose closing would kill it with SIGPIPE.
 *
 * Errors of create beyond wg.h's: -ENODEV /dev/net/tun is missing (containers:
 * `mknod /dev/net/tun c 10 200` and allow the device); -ENOENT the wireguard-go
 * binary is missing; -EIO wireguard-go exited while starting (run
 * `WG_PROCESS_FOREGROUND=1 wireguard-go IFNAME` to see why); -ETIMEDOUT its
 * socket did not come up within START_TIMEOUT_MS.
 * $WG_QUICK_USERSPACE_IMPLEMENTATION names another implementation, as for
 * wg-quick(8).
 *
 * Keys travel as hex in the UAPI text; every buffer that held them is zeroed
 * before it is freed, and nothing here logs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <linux/rtnetlink.h>
#include <sodium.h>

#include "macro.h"
#include "wg-backend.h"

#define SOCKET_DIR "/var/run/wireguard"
#define TUN_PATH "/dev/net/tun"
#define DEFAULT_IMPLEMENTATION "wireguard-go"

#define START_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 5000
#define STOP_TERM_AFTER_MS 2500      /* then SIGTERM, then SIGKILL at ... */
#define STOP_KILL_AFTER_MS 4000
#define POLL_STEP_MS 10
/* No progress on the socket for this long fails the transaction. */
#define IO_TIMEOUT_SEC 30

#define READ_CHUNK 65536
#define MAX_LINE 4096
#define MAX_REPLY (256u << 20)

extern char **environ;

/* ---- Small helpers ------------------------------------------------------------------- */

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void socket_path(const struct wg *w, struct sockaddr_un *sun) {
        *sun = (struct sockaddr_un) { .sun_family = AF_UNIX };
        /* IFNAMSIZ keeps this far below sizeof(sun_path). */
        snprintf(sun->sun_path, sizeof(sun->sun_path), SOCKET_DIR "/%s.sock", w->ifname);
}

/* A connected UAPI socket in *@ret, or -errno of connect (-ENOENT: none, -ECONNREFUSED: stale). */
static int uapi_connect(const struct wg *w, int *ret) {
        struct sockaddr_un sun;
        struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        socket_path(w, &sun);
        if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        *ret = TAKE_FD(fd);
        return 0;
}

/* Removes the socket file if nothing listens on it any more. Returns whether it was stale. */
static bool remove_stale_socket(const struct wg *w) {
        struct sockaddr_un sun;
        int fd = -1;
        int r = uapi_connect(w, &fd);

        if (r == 0) {
                close(fd);
                return false;
        }
        if (r != -ECONNREFUSED)
                return false;
        socket_path(w, &sun);
        return unlink(sun.sun_path) == 0;
}

/* Same as the kernel's view: absent, stale and unreachable all mean "no such device". */
static int connect_or_nodev(const struct wg *w, int *fd) {
        int r = uapi_connect(w, fd);
        if (r == -ENOENT || r == -ECONNREFUSED)
                return -ENODEV;
        return r;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* ---- A growing text buffer that never leaves copies of its contents behind ----------- */

struct text {
        char *p;
        size_t len, cap;
        bool oom;
};

static void text_free(struct text *t) {
        if (t->p) {
                sodium_memzero(t->p, t->cap);
                free(t->p);
        }
        *t = (struct text) {};
}

static bool text_reserve(struct text *t, size_t more) {
        if (t->oom)
                return false;
        if (t->len + more <= t->cap)
                return true;
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + more)
                cap *= 2;
        /* Not realloc: it could leave key material in the freed block. */
        char *p = malloc(cap);
        if (!p) {
                t->oom = true;
                return false;
        }
        if (t->p) {
                memcpy(p, t->p, t->len);
                sodium_memzero(t->p, t->cap);
                free(t->p);
        }
        t->p = p;
        t->cap = cap;
        return true;
}

__attribute__((format(printf, 2, 3)))
static void text_printf(struct text *t, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!text_reserve(t, 128))
                return;
        va_start(ap, fmt);
        n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
                t->oom = true;
                return;
        }
        if ((size_t) n >= t->cap - t->len) {
                if (!text_reserve(t, (size_t) n + 1))
                        return;
                va_start(ap, fmt);
                vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
                va_end(ap);
        }
        t->len += (size_t) n;
}

static void text_key(struct text *t, const char *name, const uint8_t key[static WG_KEY_LEN]) {
        static const char digits[] = "0123456789abcdef";
        size_t n = strlen(name);

        if (!text_reserve(t, n + 2 + 2 * WG_KEY_LEN))
                return;
        memcpy(t->p + t->len, name, n);
        t->len += n;
        t->p[t->len++] = '=';
        for (size_t i = 0; i < WG_KEY_LEN; i++) {
                t->p[t->len++] = digits[key[i] >> 4];
                t->p[t->len++] = digits[key[i] & 15];
        }
        t->p[t->len++] = '\n';
}

/* ---- Endpoints and addresses as UAPI text -------------------------------------------- */

static int format_endpoint(char *buf, size_t size, const union wg_endpoint *e) {
        char host[INET6_ADDRSTRLEN];

        if (e->sa.sa_family == AF_INET) {
                inet_ntop(AF_INET, &e->in.sin_addr, host, sizeof(host));
                snprintf(buf, size, "%s:%u", host, ntohs(e->in.sin_port));
        } else if (e->sa.sa_family == AF_INET6) {
                inet_ntop(AF_INET6, &e->in6.sin6_addr, host, sizeof(host));
                if (e->in6.sin6_scope_id)
                        snprintf(buf, size, "[%s%%%" PRIu32 "]:%u", host, e->in6.sin6_scope_id,
                                 ntohs(e->in6.sin6_port));
                else
                        snprintf(buf, size, "[%s]:%u", host, ntohs(e->in6.sin6_port));
        } else
                return -EINVAL;
        return 0;
}

/* wg_endpoint_parse, plus the zone wireguard-go prints for link-local peers: "[fe80::1%eth0]:51820". */
static int parse_endpoint(union wg_endpoint *ret, const char *s) {
        char buf[INET6_ADDRSTRLEN + IFNAMSIZ + 16];
        const char *pct = s[0] == '[' ? strchr(s, '%') : NULL;
        const char *close = pct ? strchr(pct, ']') : NULL;
        uint32_t scope = 0;

        if (!pct)
                return wg_endpoint_parse(ret, s);
        if (!close || strlen(s) >= sizeof(buf) || close == pct + 1)
                return -EINVAL;
        char zone[IFNAMSIZ + 12];
        size_t zlen = (size_t) (close - pct - 1);
        if (zlen >= sizeof(zone))
                return -EINVAL;
        memcpy(zone, pct + 1, zlen);
        zone[zlen] = '\0';
        if (zone[0] >= '0' && zone[0] <= '9') {
                char *end;
                unsigned long v;
                errno = 0;
                v = strtoul(zone, &end, 10);
                if (errno || *end || v > UINT32_MAX)
                        return -EINVAL;
                scope = (uint32_t) v;
        } else if (!(scope = if_nametoindex(zone)))
                return -EINVAL;
        /* The same text without the zone. */
        size_t head = (size_t) (pct - s);
        memcpy(buf, s, head);
        strcpy(buf + head, close);
        int r = wg_endpoint_parse(ret, buf);
        if (r < 0)
                return r;
        if (ret->sa.sa_family != AF_INET6)
                return -EINVAL;
        ret->in6.sin6_scope_id = scope;
        return 0;
}

static int format_allowedip(char *buf, size_t size, const struct wg_allowedip *a) {
        char host[INET6_ADDRSTRLEN];

        if ((a->family != AF_INET || a->cidr > 32) && (a->family != AF_INET6 || a->cidr > 128))
                return -EINVAL;
        inet_ntop(a->family, &a->ip6, host, sizeof(host));
        snprintf(buf, size, "%s/%u", host, a->cidr);
        return 0;
}

/* ---- Replies ------------------------------------------------------------------------- */

struct reader {
        int fd;
        char *buf;           /* READ_CHUNK bytes */
        size_t start, end;   /* unread bytes */
        size_t total;
};

static int reader_init(struct reader *rd, int fd) {
        *rd = (struct reader) { .fd = fd, .buf = malloc(READ_CHUNK) };
        return rd->buf ? 0 : -ENOMEM;
}

static void reader_done(struct reader *rd) {
        if (rd->buf) {
                sodium_memzero(rd->buf, READ_CHUNK);
                free(rd->buf);
        }
        rd->buf = NULL;
}

/* The next line without its '\n', NUL-terminated in place, into *@line / *@len. */
static int next_line(struct reader *rd, char **line, size_t *len) {
        for (;;) {
                char *nl = memchr(rd->buf + rd->start, '\n', rd->end - rd->start);
                if (nl) {
                        *line = rd->buf + rd->start;
                        *len = (size_t) (nl - *line);
                        *nl = '\0';
                        rd->start += *len + 1;
                        if (*len > MAX_LINE || memchr(*line, '\0', *len))
                                return -EBADMSG;
                        return 0;
                }
                if (rd->end - rd->start > MAX_LINE)
                        return -EBADMSG;
                if (rd->start > 0) {
                        memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
                        /* The moved-from tail may hold key text. */
                        sodium_memzero(rd->buf + (rd->end - rd->start), rd->start);
                        rd->end -= rd->start;
                        rd->start = 0;
                }
                ssize_t n = recv(rd->fd, rd->buf + rd->end, READ_CHUNK - rd->end, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                }
                if (n == 0)
                        return -EBADMSG;   /* the reply stopped before its blank line */
                rd->end += (size_t) n;
                rd->total += (size_t) n;
                if (rd->total > MAX_REPLY)
                        return -EMSGSIZE;
        }
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s)
                return -EBADMSG;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EBADMSG;
                unsigned d = (unsigned) (*s - '0');
                if (v > (max - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

static int parse_hex_key(const char *s, size_t len, uint8_t key[static WG_KEY_LEN]) {
        size_t got;
        const char *end;

        if (len != 2 * WG_KEY_LEN ||
            sodium_hex2bin(key, WG_KEY_LEN, s, len, NULL, &got, &end) != 0 || got != WG_KEY_LEN ||
            end != s + len) {
                sodium_memzero(key, WG_KEY_LEN);
                return -EBADMSG;
        }
        return 0;
}

/* "errno=N": N (either sign, as implementations differ) as a positive errno, 0 = success. */
static int parse_errno(const char *v, int *ret) {
        uint64_t n;
        if (*v == '-')
                v++;
        if (parse_u64(v, 4095, &n) < 0)
                return -EBADMSG;
        *ret = (int) n;
        return 0;
}

/*
 * Reads a reply: "key=value" lines up to a blank one. "errno=N" is the last
 * key; the rest go to @on_line (NULL: ignored). Returns -N, or a parse error.
 */
static int read_reply(int fd, int (*on_line)(void *userdata, const char *key, const char *value, size_t vlen),
                      void *userdata) {
        struct reader rd;
        int r, err = -1;

        if ((r = reader_init(&rd, fd)) < 0)
                return r;
        for (;;) {
                char *line = NULL, *eq;
                size_t len = 0;
                if ((r = next_line(&rd, &line, &len)) < 0)
                        break;
                if (len == 0) {
                        r = err < 0 ? -EBADMSG : -err;
                        break;
                }
                if (!(eq = strchr(line, '=')) || eq == line || err >= 0) {
                        r = -EBADMSG;   /* not key=value, or something after errno= */
                        break;
                }
                *eq = '\0';
                if (strcmp(line, "errno") == 0)
                        r = parse_errno(eq + 1, &err);
                else
                        r = on_line ? on_line(userdata, line, eq + 1, len - (size_t) (eq + 1 - line)) : 0;
                if (r < 0)
                        break;
        }
        reader_done(&rd);
        return r;
}

struct get_state {
        struct wg_device *dev;
        size_t peers_cap, ips_cap;
        struct wg_peer *peer;        /* the one being read, or NULL in the device section */
};

static int push_peer(struct get_state *g, const uint8_t key[static WG_KEY_LEN]) {
        struct wg_device *dev = g->dev;

        if (dev->n_peers == g->peers_cap) {
                size_t cap = g->peers_cap ? g->peers_cap * 2 : 16;
                /* Not realloc: peers hold preshared keys. */
                struct wg_peer *v = calloc(cap, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                if (dev->peers) {
                        memcpy(v, dev->peers, dev->n_peers * sizeof(*v));
                        sodium_memzero(dev->peers, g->peers_cap * sizeof(*v));
                        free(dev->peers);
                }
                dev->peers = v;
                g->peers_cap = cap;
        }
        g->peer = &dev->peers[dev->n_peers++];
        *g->peer = (struct wg_peer) { .flags = WG_PEER_HAS_KEEPALIVE };
        memcpy(g->peer->public_key, key, WG_KEY_LEN);
        g->ips_cap = 0;
        return 0;
}

static int push_allowedip(struct get_state *g, const struct wg_allowedip *a) {
        struct wg_peer *p = g->peer;

        if (p->n_allowedips == g->ips_cap) {
                size_t cap = g->ips_cap ? g->ips_cap * 2 : 4;
                struct wg_allowedip *v = realloc(p->allowedips, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                p->allowedips = v;
                g->ips_cap = cap;
        }
        p->allowedips[p->n_allowedips++] = *a;
        return 0;
}

static bool is_peer_key(const char *key) {
        static const char *const keys[] = {
                "preshared_key", "endpoint", "last_handshake_time_sec", "last_handshake_time_nsec",
                "tx_bytes", "rx_bytes", "persistent_keepalive_interval", "allowed_ip", "protocol_version",
        };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(key, keys[i]) == 0)
                        return true;
        return false;
}

/* One "key=value" of a get reply. Unknown keys are ignored, as wg(8) does. */
static int get_line(void *userdata, const char *key, const char *value, size_t vlen) {
        struct get_state *g = userdata;
        struct wg_device *dev = g->dev;
        struct wg_peer *p = g->peer;
        uint8_t k[WG_KEY_LEN];
        uint64_t n;
        int r;

        if (strcmp(key, "public_key") == 0) {
                if ((r = parse_hex_key(value, vlen, k)) < 0)
                        return r;
                return push_peer(g, k);
        }
        if (!p) {
                if (strcmp(key, "private_key") == 0) {
                        if ((r = parse_hex_key(value, vlen, dev->private_key)) < 0)
                                return r;
                        if (wg_key_is_zero(dev->private_key))
                                dev->flags &= ~(uint32_t) WG_DEVICE_HAS_PRIVATE_KEY;
                        else {
                                dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                                wg_key_public_from_private(dev->public_key, dev->private_key);
                        }
                } else if (strcmp(key, "listen_port") == 0) {
                        if (parse_u64(value, UINT16_MAX, &n) < 0)
                                return -EBADMSG;
                        dev->listen_port = (uint16_t) n;
                } else if (strcmp(key, "fwmark") == 0) {
                        if (parse_u64(value, UINT32_MAX, &n) < 0)
                                return -EBADMSG;
                        dev->fwmark = (uint32_t) n;
                } else if (is_peer_key(key))
                        return -EBADMSG;     /* a peer's key before any public_key */
                return 0;
        }
        if (strcmp(key, "private_key") == 0 || strcmp(key, "listen_port") == 0 || strcmp(key, "fwmark") == 0)
                return -EBADMSG;     /* device keys after the first peer */
        if (strcmp(key, "preshared_key") == 0) {
                if ((r = parse_hex_key(value, vlen, p->preshared_key)) < 0)
                        return r;
                if (wg_key_is_zero(p->preshared_key))
                        p->flags &= ~(uint32_t) WG_PEER_HAS_PRESHARED_KEY;
                else
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
        } else if (strcmp(key, "endpoint") == 0) {
                if (parse_endpoint(&p->endpoint, value) < 0)
                        return -EBADMSG;
        } else if (strcmp(key, "last_handshake_time_sec") == 0) {
                if (parse_u64(value, INT64_MAX, &n) < 0)
                        return -EBADMSG;
                p->last_handshake_sec = (int64_t) n;
        } else if (strcmp(key, "last_handshake_time_nsec") == 0) {
                if (parse_u64(value, 999999999, &n) < 0)
                        return -EBADMSG;
                p->last_handshake_nsec = (int64_t) n;
        } else if (strcmp(key, "tx_bytes") == 0) {
                if (parse_u64(value, UINT64_MAX, &p->tx_bytes) < 0)
                        return -EBADMSG;
        } else if (strcmp(key, "rx_bytes") == 0) {
                if (parse_u64(value, UINT64_MAX, &p->rx_bytes) < 0)
                        return -EBADMSG;
        } else if (strcmp(key, "persistent_keepalive_interval") == 0) {
                if (parse_u64(value, UINT16_MAX, &n) < 0)
                        return -EBADMSG;
                p->persistent_keepalive = (uint16_t) n;
        } else if (strcmp(key, "allowed_ip") == 0) {
                struct wg_allowedip a;
                if (!strchr(value, '/') || wg_allowedip_parse(&a, value) < 0)
                        return -EBADMSG;
                return push_allowedip(g, &a);
        }
        return 0;
}

/* ---- Backend ------------------------------------------------------------------------- */

static int uapi_get(struct wg *w, struct wg_device **ret) {
        _cleanup_close_ int fd = -1;
        struct get_state g = {};
        static const char request[] = "get=1\n\n";
        int r;

        if ((r = connect_or_nodev(w, &fd)) < 0)
                return r;
        if ((r = write_all(fd, request, sizeof(request) - 1)) < 0)
                return r;
        (void) shutdown(fd, SHUT_WR);
        if (!(g.dev = calloc(1, sizeof(*g.dev))))
                return -ENOMEM;
        /* Like the kernel path: these are always reported (absent in UAPI text = 0). */
        g.dev->flags = WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK;
        r = read_reply(fd, get_line, &g);
        if (r < 0) {
                wg_device_free(g.dev);
                return r;
        }
        *ret = g.dev;
        return 0;
}

static int build_set(struct text *t, const struct wg_device *dev, size_t *peers) {
        char buf[INET6_ADDRSTRLEN + 32];

        text_printf(t, "set=1\n");
        if (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY)
                text_key(t, "private_key", dev->private_key);
        if (dev->flags & WG_DEVICE_HAS_LISTEN_PORT)
                text_printf(t, "listen_port=%u\n", dev->listen_port);
        if (dev->flags & WG_DEVICE_HAS_FWMARK)
                text_printf(t, "fwmark=%" PRIu32 "\n", dev->fwmark);
        if (dev->flags & WG_DEVICE_REPLACE_PEERS)
                text_printf(t, "replace_peers=true\n");
        for (size_t i = 0; i < dev->n_peers; i++) {
                const struct wg_peer *p = &dev->peers[i];
                text_key(t, "public_key", p->public_key);
                (*peers)++;
                if (p->flags & WG_PEER_REMOVE) {
                        text_printf(t, "remove=true\n");
                        continue;
                }
                /* Right after public_key: wireguard-go drops the peer it just created. */
                if (p->flags & WG_PEER_UPDATE_ONLY)
                        text_printf(t, "update_only=true\n");
                if (p->flags & WG_PEER_HAS_PRESHARED_KEY)
                        text_key(t, "preshared_key", p->preshared_key);
                if (p->endpoint.sa.sa_family) {
                        if (format_endpoint(buf, sizeof(buf), &p->endpoint) < 0)
                                return -EINVAL;
                        text_printf(t, "endpoint=%s\n", buf);
                }
                if (p->flags & WG_PEER_HAS_KEEPALIVE)
                        text_printf(t, "persistent_keepalive_interval=%u\n", p->persistent_keepalive);
                if (p->flags & WG_PEER_REPLACE_ALLOWEDIPS)
                        text_printf(t, "replace_allowed_ips=true\n");
                for (size_t j = 0; j < p->n_allowedips; j++) {
                        if (format_allowedip(buf, sizeof(buf), &p->allowedips[j]) < 0)
                                return -EINVAL;
                        text_printf(t, "allowed_ip=%s\n", buf);
                }
        }
        text_printf(t, "\n");
        return t->oom ? -ENOMEM : 0;
}

static int uapi_set(struct wg *w, const struct wg_device *dev, struct wg_stats *stats) {
        _cleanup_close_ int fd = -1;
        struct text t = {};
        size_t peers = 0;
        int r;

        /* The whole request first: a bad value fails before anything is sent. */
        if ((r = build_set(&t, dev, &peers)) < 0)
                goto out;
        if ((r = connect_or_nodev(w, &fd)) < 0)
                goto out;
        if ((r = write_all(fd, t.p, t.len)) < 0)
                goto out;
        text_free(&t);
        (void) shutdown(fd, SHUT_WR);
        r = read_reply(fd, NULL, NULL);
        stats->messages = 1;
        stats->peers = peers;
out:
        text_free(&t);
        return r;
}

/* ---- Starting and stopping wireguard-go ---------------------------------------------- */

static const char *implementation(void) {
        const char *e = getenv("WG_QUICK_USERSPACE_IMPLEMENTATION");
        return e && *e ? e : DEFAULT_IMPLEMENTATION;
}

/* @name, or its PATH lookup, in @buf. Done before fork: execvp is not async-signal-safe. */
static int find_executable(const char *name, char *buf, size_t size) {
        if (strchr(name, '/')) {
                if (strlen(name) >= size)
                        return -ENAMETOOLONG;
                strcpy(buf, name);
                return access(buf, X_OK) == 0 ? 0 : -errno;
        }
        const char *path = getenv("PATH");
        if (!path || !*path)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        while (*path) {
                size_t n = strcspn(path, ":");
                if (n > 0 && n + 1 + strlen(name) < size) {
                        memcpy(buf, path, n);
                        buf[n] = '/';
                        strcpy(buf + n + 1, name);
                        if (access(buf, X_OK) == 0)
                                return 0;
                }
                path += n;
                if (*path == ':')
                        path++;
        }
        return -ENOENT;
}

/* Our environment without wireguard-go's own control variables, plus foreground mode. */
static char **child_environment(void) {
        static const char *const drop[] = { "WG_PROCESS_FOREGROUND=", "WG_TUN_FD=", "WG_UAPI_FD=",
                                            "WG_TUN_NAME_FILE=" };
        size_t n = 0, k = 0;

        while (environ && environ[n])
                n++;
        char **env = calloc(n + 2, sizeof(*env));
        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                bool skip = false;
                for (size_t j = 0; j < ELEMENTSOF(drop) && !skip; j++)
                        skip = strncmp(environ[i], drop[j], strlen(drop[j])) == 0;
                if (!skip)
                        env[k++] = environ[i];
        }
        env[k++] = (char *) "WG_PROCESS_FOREGROUND=1";
        env[k] = NULL;
        return env;
}

/*
 * What the intermediate child and the grandchild tell the parent over one pipe. Each
 * message is one write of less than PIPE_BUF, so they never interleave; EOF comes once
 * the intermediate has exited and the grandchild has exec'ed (CLOEXEC) or died.
 */
struct spawn_msg {
        int32_t kind;
        int32_t value;
};
enum {
        SPAWN_PID = 1,       /* value: the grandchild's pid */
        SPAWN_FORK_ERRNO,    /* value: errno of the second fork */
        SPAWN_EXEC_ERRNO,    /* value: errno of execve or of the set-up before it */
};

static void spawn_report(int fd, int32_t kind, int32_t value) {
        struct spawn_msg m = { kind, value };
        (void) !write(fd, &m, sizeof(m));
}

/* In the grandchild, between fork and exec: async-signal-safe calls only. */
_Noreturn static void exec_child(const char *path, char *const argv[], char *const envp[],
                                 int devnull, int out, int report) {
        sigset_t none;
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        int e;

        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &dfl, NULL);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir("/") < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0 ||
            dup2(devnull, STDIN_FILENO) < 0)
                goto fail;
        /* Nothing of ours beyond stdio into the long-lived process. */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = 3; fd < 65536; fd++)
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        execve(path, argv, envp);
fail:
        e = errno;
        spawn_report(report, SPAWN_EXEC_ERRNO, e);
        _exit(127);
}

static int read_full(int fd, void *buf, size_t n, uint64_t deadline) {
        uint8_t *p = buf;
        size_t have = 0;

        while (have < n) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                uint64_t now = now_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                int r = poll(&pfd, 1, (int) (deadline - now));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                ssize_t k = read(fd, p + have, n - have);
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k == 0)
                        return (int) have;
                if (k > 0)
                        have += (size_t) k;
        }
        return (int) have;
}

/* Starts the implementation for @w; its pid in *@ret once it has exec'ed. */
static int spawn(const struct wg *w, pid_t *ret, uint64_t deadline) {
        char path[PATH_MAX];
        char *argv[] = { (char *) implementation(), (char *) w->ifname, NULL };
        _cleanup_free_ char **envp = NULL;
        _cleanup_close_ int devnull = -1, report_r = -1, report_w = -1;
        int pipefd[2], out, r;
        pid_t pid, child = 0;

        if ((r = find_executable(argv[0], path, sizeof(path))) < 0)
                return r;
        if (!(envp = child_environment()))
                return -ENOMEM;
        /* Above stdio, so that the dup2()s in the child cannot clobber it. */
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        devnull = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        if (devnull < 0)
                return -errno;
        out = stderr_is_journal() ? STDERR_FILENO : devnull;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        report_r = pipefd[0];
        report_w = pipefd[1];

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Intermediate: a new session, then the real child, then gone. */
                pid_t c;
                (void) setsid();
                c = fork();
                if (c == 0)
                        exec_child(path, argv, envp, devnull, out, report_w);
                if (c < 0)
                        spawn_report(report_w, SPAWN_FORK_ERRNO, errno);
                else
                        spawn_report(report_w, SPAWN_PID, c);
                _exit(0);
        }
        close(TAKE_FD(report_w));
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        /* ECHILD (the caller reaps everything, or ignores SIGCHLD) is fine. */

        int error = 0;
        for (;;) {
                struct spawn_msg m;
                r = read_full(report_r, &m, sizeof(m), deadline);
                if (r < 0)
                        return r;  /* neither exec'ed nor failed in time: bounded anyway */
                if (r == 0)
                        break;     /* EOF */
                if (r != sizeof(m))
                        return -EIO;
                if (m.kind == SPAWN_PID && m.value > 0)
                        child = m.value;
                else if ((m.kind == SPAWN_FORK_ERRNO || m.kind == SPAWN_EXEC_ERRNO) && !error)
                        error = m.value > 0 ? -m.value : -EIO;
        }
        if (error)
                return error;
        if (child <= 0)
                return -EIO;
        *ret = child;
        return 0;
}

/* Whether @pid is (still) the implementation we started: never signal a reused pid. */
static bool is_implementation(pid_t pid) {
        char p[64], comm[32] = "";
        const char *name = strrchr(implementation(), '/');
        name = name ? name + 1 : implementation();

        snprintf(p, sizeof(p), "/proc/%d/comm", (int) pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return false;
        bool ok = fgets(comm, sizeof(comm), f) != NULL;
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        /* comm is cut to 15 characters. */
        return ok && *comm && strncmp(comm, name, 15) == 0;
}

/* @pid came from SO_PEERCRED, which names whoever called listen(): check before signalling. */
static void stop_listener(int pidfd, pid_t pid, int sig) {
        if (pidfd >= 0 && is_implementation(pid))
                (void) pidfd_send_signal(pidfd, sig, NULL, 0);
}

static bool process_exited(int pidfd, int timeout_ms) {
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
        if (pidfd < 0) {
                sleep_ms((unsigned) timeout_ms);
                return false;
        }
        return poll(&pfd, 1, timeout_ms) > 0;
}

static int uapi_create(struct wg *w) {
        uint64_t deadline = now_ms() + START_TIMEOUT_MS;
        struct stat st;
        pid_t pid;
        int fd, r;

        if (stat(TUN_PATH, &st) < 0)
                return errno == ENOENT ? -ENODEV : -errno;
        if (!S_ISCHR(st.st_mode))
                return -ENODEV;
        /* What wireguard-go would fail on, told apart while we still can. */
        fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return errno == ENXIO || errno == ENOENT ? -ENODEV : -errno;
        close(fd);
        if (if_nametoindex(w->ifname) > 0)
                return -EEXIST;
        r = uapi_connect(w, &fd);
        if (r == 0) {
                close(fd);
                return -EEXIST;    /* alive, its link in another network namespace */
        }
        if (r == -ECONNREFUSED)
                remove_stale_socket(w);
        else if (r != -ENOENT)
                return r;

        if ((r = spawn(w, &pid, deadline)) < 0)
                return r;
        _cleanup_close_ int pidfd = pidfd_open(pid, 0);
        bool dead = pidfd < 0 && errno == ESRCH;   /* exited and reaped already */
        for (;;) {
                if (uapi_connect(w, &fd) == 0) {
                        close(fd);
                        return 0;
                }
                if (dead || process_exited(pidfd, POLL_STEP_MS))
                        break;
                if (now_ms() >= deadline) {
                        /* Hung while starting: leave nothing half made. */
                        if (pidfd >= 0)   /* our own child's pidfd: no doubt who it is */
                                (void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
                        (void) process_exited(pidfd, 1000);
                        (void) wg_rtnl_link_request(w->ifname, RTM_DELLINK, 0, NULL);
                        remove_stale_socket(w);
                        return -ETIMEDOUT;
                }
        }
        remove_stale_socket(w);
        return -EIO;
}

static int uapi_delete(struct wg *w) {
        uint64_t start = now_ms();
        struct ucred cred = {};
        socklen_t len = sizeof(cred);
        _cleanup_close_ int pidfd = -1;
        bool termed = false, killed = false;
        int fd, r;

        r = uapi_connect(w, &fd);
        if (r == -ECONNREFUSED) {
                remove_stale_socket(w);
                return -ENODEV;
        }
        if (r == -ENOENT)
                return -ENODEV;
        if (r < 0)
                return r;
        /* The listener's process: with foreground mode, wireguard-go itself. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0)
                pidfd = pidfd_open(cred.pid, 0);
        close(fd);

        /* Removing the TUN link makes wireguard-go close its socket and exit. */
        r = wg_rtnl_link_request(w->ifname, RTM_DELLINK, 0, NULL);
        if (r < 0)
                return r;   /* -ENODEV: its link is not in this network namespace: not ours */

        bool exited = pidfd < 0;
        for (;;) {
                uint64_t t = now_ms() - start;
                /* Done when the process has exited (where we could watch it: a socket made by
                 * a daemonizing launcher names that one, maybe exited long ago) and its socket
                 * no longer answers. */
                exited = exited || process_exited(pidfd, POLL_STEP_MS);
                if (exited) {
                        r = uapi_connect(w, &fd);
                        if (r == 0)
                                close(fd);
                        if (r == -ENOENT || r == -ECONNREFUSED)
                                break;
                        sleep_ms(POLL_STEP_MS);
                }
                if (t >= STOP_TIMEOUT_MS)
                        return -ETIMEDOUT;
                if (t >= STOP_KILL_AFTER_MS && !killed) {
                        stop_listener(pidfd, cred.pid, SIGKILL);
                        killed = true;
                } else if (t >= STOP_TERM_AFTER_MS && !termed) {
                        stop_listener(pidfd, cred.pid, SIGTERM);
                        termed = true;
                }
        }
        /* A clean exit removes the socket; a killed process leaves it. */
        remove_stale_socket(w);
        return 0;
}

static void uapi_close(struct wg *w) {
        (void) w;
}

const struct wg_backend wg_backend_userspace = {
        .create = uapi_create,
        .delete = uapi_delete,
        .set = uapi_set,
        .get = uapi_get,
        .close = uapi_close,
};
