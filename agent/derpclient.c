/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define LOG_COMPONENT "derp"
#include "derpclient.h"
#include "derpconn.h"
#include "log.h"
#include "macro.h"

/* What a connection to one node needs, taken from the map when it is set. */
struct dc_node {
        char *name;
        char *url;
        char *connect_host;   /* fixed address, or NULL (resolve the URL's host) */
        char *cert_name;      /* NULL: the URL's host */
        bool insecure;
};

struct dc_region {
        struct derp_client *client;
        int id;
        struct dc_node *nodes;
        size_t n_nodes;

        struct derp_conn *conn;
        sd_event_source *retry;    /* the next connection attempt */
        sd_event_source *idle;     /* non-home: closes the region when unused */
        sd_event_source *ping;

        bool active;               /* a connection is wanted (home, or used lately) */
        bool websocket;            /* the server refused Upgrade: DERP */
        size_t node;               /* the node the next attempt uses */
        unsigned failures;         /* attempts since the last good connection */
        uint64_t ready_since;      /* 0: not ready */
        uint64_t last_used;
        uint64_t latency_usec;
        uint64_t restart_in_usec;  /* from a Restarting frame: the next delay */
};

struct derp_client {
        sd_event *event;
        struct derp_client_config cfg;
        struct derp_client_callbacks cb;
        void *userdata;
        struct dc_region **regions;   /* sorted by id */
        size_t n_regions;
        int home;
};

static uint64_t or_default(uint64_t v, uint64_t def) {
        return v ? v : def;
}

/* ---- nodes ---- */

static void node_clear(struct dc_node *n) {
        free(n->name);
        free(n->url);
        free(n->connect_host);
        free(n->cert_name);
}

static int node_from_map(const struct derp_node *m, struct dc_node *out) {
        char addr[INET6_ADDRSTRLEN] = "", url[DERP_MAP_STRING_MAX + 64];
        const char *scheme = m->force_http ? "http" : "https";
        unsigned def_port = m->force_http ? 80 : 443;
        bool v6_literal = strchr(m->host_name, ':') != NULL;

        if (m->ipv4_mode == DERP_ADDR_FIXED)
                inet_ntop(AF_INET, &m->ipv4, addr, sizeof(addr));
        else if (m->ipv6_mode == DERP_ADDR_FIXED)
                inet_ntop(AF_INET6, &m->ipv6, addr, sizeof(addr));
        else if (m->ipv4_mode == DERP_ADDR_DISABLED && m->ipv6_mode == DERP_ADDR_DISABLED)
                return -EADDRNOTAVAIL;   /* nothing to connect to */
        if (!*m->host_name && !*addr)
                return -EADDRNOTAVAIL;

        /* Without a HostName the address is the URL's host, as upstream dials it. */
        const char *host = *m->host_name ? m->host_name : addr;
        if (!*m->host_name)
                v6_literal = strchr(addr, ':') != NULL;
        char port[8] = "";
        if (m->derp_port != def_port)
                snprintf(port, sizeof(port), ":%u", m->derp_port);
        snprintf(url, sizeof(url), "%s://%s%s%s%s/derp", scheme, v6_literal ? "[" : "", host,
                 v6_literal ? "]" : "", port);

        *out = (struct dc_node) {
                .name = strdup(m->name ? m->name : ""),
                .url = strdup(url),
                .connect_host = *addr && *m->host_name ? strdup(addr) : NULL,
                .cert_name = m->cert_name && *m->cert_name ? strdup(m->cert_name) : NULL,
                .insecure = m->insecure_for_tests,
        };
        if (!out->name || !out->url || (*addr && *m->host_name && !out->connect_host) ||
            (m->cert_name && *m->cert_name && !out->cert_name)) {
                node_clear(out);
                return -ENOMEM;
        }
        return 0;
}

/* The region's usable nodes, in map order. 0 nodes is not an error: the region is skipped. */
static int nodes_from_map(const struct derp_region *g, struct dc_node **ret, size_t *ret_n) {
        struct dc_node *nodes = calloc(g->n_nodes ? g->n_nodes : 1, sizeof(*nodes));
        size_t n = 0;

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_nodes; i++) {
                if (g->nodes[i].stun_only)
                        continue;
                int r = node_from_map(&g->nodes[i], &nodes[n]);
                if (r == -EADDRNOTAVAIL)
                        continue;
                if (r < 0) {
                        while (n > 0)
                                node_clear(&nodes[--n]);
                        free(nodes);
                        return r;
                }
                n++;
        }
        *ret = nodes;
        *ret_n = n;
        return 0;
}

static void nodes_free(struct dc_node *nodes, size_t n) {
        for (size_t i = 0; i < n; i++)
                node_clear(&nodes[i]);
        free(nodes);
}

/* ---- regions ---- */

static struct dc_region *find_region(const struct derp_client *c, int id) {
        size_t lo = 0, hi = c->n_regions;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (c->regions[mid]->id == id)
                        return c->regions[mid];
                if (c->regions[mid]->id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static bool region_ready(const struct dc_region *g) {
        return g->conn && g->ready_since;
}

/* Drops the connection (if any) and tells the user when it had been ready. */
static void region_disconnect(struct dc_region *g) {
        struct derp_client *c = g->client;
        bool was_ready = region_ready(g);

        g->ping = sd_event_source_disable_unref(g->ping);
        if (g->conn) {
                derp_conn_free(g->conn);
                g->conn = NULL;
        }
        g->ready_since = 0;
        if (was_ready && c->cb.region_changed)
                c->cb.region_changed(c, g->id, false, c->userdata);
}

static void region_free(struct dc_region *g) {
        if (!g)
                return;
        g->retry = sd_event_source_disable_unref(g->retry);
        g->idle = sd_event_source_disable_unref(g->idle);
        g->ping = sd_event_source_disable_unref(g->ping);
        if (g->conn)
                derp_conn_free(g->conn);
        nodes_free(g->nodes, g->n_nodes);
        free(g);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata);
static int on_idle(sd_event_source *s, uint64_t usec, void *userdata);

/* Arms (creating it on first use) a one-shot CLOCK_MONOTONIC timer. */
static int arm_timer(struct dc_region *g, sd_event_source **s, uint64_t when,
                     sd_event_time_handler_t handler) {
        int r;
        if (!*s)
                return sd_event_add_time(g->client->event, s, CLOCK_MONOTONIC, when, 0, handler, g);
        r = sd_event_source_set_time(*s, when);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
}

static void schedule_connect(struct dc_region *g, uint64_t delay) {
        int r = arm_timer(g, &g->retry, monotonic_usec() + delay, on_retry);
        if (r < 0)
                log_error_errno(r, "DERP region %d: cannot arm the reconnect timer", g->id);
}

/* The next delay: a Restarting frame's, else exponential with +-25 % jitter. */
static uint64_t backoff_delay(struct dc_region *g) {
        const struct derp_client_config *cfg = &g->client->cfg;
        uint64_t min = or_default(cfg->backoff_min_usec, DERP_CLIENT_BACKOFF_MIN_USEC);
        uint64_t max = or_default(cfg->backoff_max_usec, DERP_CLIENT_BACKOFF_MAX_USEC);
        uint64_t d = min;

        if (g->restart_in_usec) {
                d = g->restart_in_usec;
                g->restart_in_usec = 0;
                return d;
        }
        for (unsigned i = 0; i < g->failures && d < max; i++)
                d *= 2;
        if (d > max)
                d = max;
        g->failures++;
        /* 75 % .. 125 %, so that clients do not come back in lockstep. */
        return d / 100 * (75 + randombytes_uniform(51));
}

static void reconnect_later(struct dc_region *g, uint64_t delay) {
        log_info("DERP region %d: reconnecting in %.3f s (attempt %u)", g->id, (double) delay / 1e6,
                 g->failures + 1);
        schedule_connect(g, delay);
}

/* An attempt failed before the connection was ready: next node, or back off. */
static void region_attempt_failed(struct dc_region *g) {
        g->node = g->n_nodes ? (g->node + 1) % g->n_nodes : 0;
        reconnect_later(g, g->node == 0 ? backoff_delay(g) : 0);
}

static int on_ping(sd_event_source *s, uint64_t usec, void *userdata) {
        struct dc_region *g = userdata;
        uint64_t every = or_default(g->client->cfg.ping_usec, DERP_CLIENT_PING_USEC);
        int r;

        if (!region_ready(g))
                return 0;
        r = derp_conn_ping(g->conn);
        if (r < 0 && r != -EBUSY)      /* -EBUSY: pongs overdue; the read deadline decides */
                log_debug_errno(r, "DERP region %d: ping", g->id);
        r = arm_timer(g, &g->ping, usec + every, on_ping);
        if (r < 0)
                log_warning_errno(r, "DERP region %d: cannot arm the ping timer", g->id);
        return 0;
}

static void on_conn_ready(struct derp_conn *conn, const struct derp_server_info *info, void *ud) {
        struct dc_region *g = ud;
        struct derp_client *c = g->client;
        int r;

        g->ready_since = monotonic_usec();
        g->restart_in_usec = 0;
        log_info("DERP region %d: connected to node %s (%s%s)", g->id, g->nodes[g->node].name,
                 g->nodes[g->node].url, g->websocket || c->cfg.force_websocket ? ", WebSocket" : "");
        /* Ping at once, so that the latency is known early. */
        r = arm_timer(g, &g->ping, g->ready_since, on_ping);
        if (r < 0)
                log_warning_errno(r, "DERP region %d: cannot arm the ping timer", g->id);
        if (c->cb.region_changed)
                c->cb.region_changed(c, g->id, true, c->userdata);
}

static void on_conn_recv(struct derp_conn *conn, const uint8_t src[DERP_KEY_LEN],
                         const uint8_t *pkt, size_t len, void *ud) {
        struct dc_region *g = ud;
        struct derp_client *c = g->client;

        g->last_used = monotonic_usec();
        if (c->cb.recv)
                c->cb.recv(c, g->id, src, pkt, len, c->userdata);
}

static void on_conn_peer_gone(struct derp_conn *conn, const uint8_t key[DERP_KEY_LEN],
                              uint8_t reason, void *ud) {
        struct dc_region *g = ud;
        struct derp_client *c = g->client;

        if (c->cb.peer_gone)
                c->cb.peer_gone(c, g->id, key, reason, c->userdata);
}

static void on_conn_health(struct derp_conn *conn, const char *text, void *ud) {
        struct dc_region *g = ud;
        if (text)
                log_warning("DERP region %d: server health: %s", g->id, text);
        else
                log_info("DERP region %d: server health problem cleared", g->id);
}

static void on_conn_restarting(struct derp_conn *conn, uint32_t reconnect_in_ms,
                               uint32_t try_for_ms, void *ud) {
        struct dc_region *g = ud;
        g->restart_in_usec = (uint64_t) reconnect_in_ms * 1000;
        log_info("DERP region %d: server restarting, reconnecting in %u ms", g->id, reconnect_in_ms);
}

static void on_conn_pong(struct derp_conn *conn, uint64_t rtt_usec, void *ud) {
        struct dc_region *g = ud;
        g->latency_usec = rtt_usec ? rtt_usec : 1;   /* 0 means "none yet" */
}

static void on_conn_closed(struct derp_conn *conn, int error, const char *message, void *ud) {
        struct dc_region *g = ud;
        const struct derp_client_config *cfg = &g->client->cfg;
        bool was_ready = region_ready(g);
        uint64_t lived = was_ready ? monotonic_usec() - g->ready_since : 0;

        region_disconnect(g);
        if (error == -EPROTONOSUPPORT && !g->websocket && !cfg->force_websocket) {
                g->websocket = true;
                log_notice("DERP region %d: %s; switching to WebSocket", g->id, message);
                schedule_connect(g, 0);
                return;
        }
        log_warning("DERP region %d: node %s (%s): %s", g->id, g->nodes[g->node].name,
                    g->nodes[g->node].url, message);
        if (!g->active)
                return;
        if (!was_ready) {
                region_attempt_failed(g);
                return;
        }
        if (lived >= or_default(cfg->backoff_reset_usec, DERP_CLIENT_BACKOFF_RESET_USEC))
                g->failures = 0;
        g->node = 0;    /* back to the preferred node */
        reconnect_later(g, backoff_delay(g));
}

static const struct derp_conn_callbacks conn_callbacks = {
        .ready = on_conn_ready,
        .recv = on_conn_recv,
        .peer_gone = on_conn_peer_gone,
        .health = on_conn_health,
        .restarting = on_conn_restarting,
        .pong = on_conn_pong,
        .closed = on_conn_closed,
};

/* One attempt with the current node; a connect that fails later ends in on_conn_closed. */
static void region_connect(struct dc_region *g) {
        struct derp_client *c = g->client;
        const struct dc_node *n;
        char err[512] = "";

        if (!g->active || g->conn || g->n_nodes == 0)
                return;
        if (g->node >= g->n_nodes)
                g->node = 0;
        n = &g->nodes[g->node];
        struct derp_conn_config cfg = {
                .url = n->url,
                .fwmark = c->cfg.fwmark,
                .websocket = g->websocket || c->cfg.force_websocket,
                .ca_file = c->cfg.ca_file,
                .insecure = n->insecure,
                .cert_name = n->cert_name,
                .connect_host = n->connect_host,
        };
        memcpy(cfg.priv, c->cfg.priv, DERP_KEY_LEN);
        log_debug("DERP region %d: connecting to node %s (%s)", g->id, n->name, n->url);
        int r = derp_conn_new(c->event, &cfg, &conn_callbacks, g, &g->conn, err, sizeof(err));
        sodium_memzero(cfg.priv, sizeof(cfg.priv));
        if (r < 0) {
                g->conn = NULL;
                log_warning_errno(r, "DERP region %d: node %s (%s): %s", g->id, n->name, n->url,
                                  err[0] ? err : "cannot connect");
                region_attempt_failed(g);
        }
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        region_connect(userdata);
        return 0;
}

static uint64_t idle_usec(const struct derp_client *c) {
        return or_default(c->cfg.idle_usec, DERP_CLIENT_IDLE_USEC);
}

/* Wants a connection to @g: at once, if there is none and no attempt is pending. */
static void region_activate(struct dc_region *g) {
        struct derp_client *c = g->client;
        int r;

        g->last_used = monotonic_usec();
        if (g->id != c->home) {
                r = arm_timer(g, &g->idle, g->last_used + idle_usec(c), on_idle);
                if (r < 0)
                        log_warning_errno(r, "DERP region %d: cannot arm the idle timer", g->id);
        }
        if (g->active)
                return;
        g->active = true;
        g->failures = 0;
        g->node = 0;
        schedule_connect(g, 0);
}

static void region_deactivate(struct dc_region *g) {
        g->active = false;
        if (g->retry)
                (void) sd_event_source_set_enabled(g->retry, SD_EVENT_OFF);
        if (g->idle)
                (void) sd_event_source_set_enabled(g->idle, SD_EVENT_OFF);
        region_disconnect(g);
}

static int on_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        struct dc_region *g = userdata;
        struct derp_client *c = g->client;
        uint64_t idle = idle_usec(c);

        if (g->id == c->home || !g->active)
                return 0;
        /* Used since the timer was armed: wait for the rest of the idle time. */
        if (g->last_used + idle > monotonic_usec()) {
                int r = arm_timer(g, &g->idle, g->last_used + idle, on_idle);
                if (r < 0)
                        log_warning_errno(r, "DERP region %d: cannot arm the idle timer", g->id);
                return 0;
        }
        log_info("DERP region %d: idle for %.1f s, closing", g->id, (double) idle / 1e6);
        region_deactivate(g);
        return 0;
}

/* ---- the map ---- */

static double region_score(const struct derp_map *m, int id) {
        for (size_t i = 0; i < m->n_scores; i++)
                if (m->scores[i].region_id == id && m->scores[i].score > 0)
                        return m->scores[i].score;
        return 1.0;
}

static int choose_home(const struct derp_client *c, const struct derp_map *m) {
        const struct derp_region *best = NULL;
        double best_score = 0;

        if (c->cfg.home_region && find_region(c, c->cfg.home_region))
                return c->cfg.home_region;
        for (size_t i = 0; i < m->n_regions; i++) {
                const struct derp_region *g = &m->regions[i];
                if (!find_region(c, g->region_id))
                        continue;
                double s = region_score(m, g->region_id);
                /* Avoid regions only when nothing else is there: ranks them after all others. */
                if (g->avoid)
                        s += 1e9;
                if (!best || s < best_score) {   /* ties: the lower RegionID, seen first */
                        best = g;
                        best_score = s;
                }
        }
        return best ? best->region_id : 0;
}

/* New regions from @m, reusing the existing region state of the same IDs. */
static int apply_map(struct derp_client *c, const struct derp_map *m) {
        struct dc_region **regions = calloc(m->n_regions ? m->n_regions : 1, sizeof(*regions));
        size_t n = 0;
        int r;

        if (!regions)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_regions; i++) {
                struct dc_node *nodes;
                size_t n_nodes;
                r = nodes_from_map(&m->regions[i], &nodes, &n_nodes);
                if (r < 0)
                        goto fail;
                if (n_nodes == 0) {
                        log_warning("DERP region %d has no node to connect to; ignored",
                                    m->regions[i].region_id);
                        free(nodes);
                        continue;
                }
                struct dc_region *g = calloc(1, sizeof(*g));
                if (!g) {
                        nodes_free(nodes, n_nodes);
                        r = -ENOMEM;
                        goto fail;
                }
                g->client = c;
                g->id = m->regions[i].region_id;
                g->nodes = nodes;
                g->n_nodes = n_nodes;
                regions[n++] = g;
        }
        if (n == 0) {
                r = -EINVAL;
                goto fail;
        }

        /* Commit: move the live state of regions that stay; close the others. */
        for (size_t i = 0; i < c->n_regions; i++) {
                struct dc_region *old = c->regions[i], *g = NULL;
                for (size_t j = 0; j < n && !g; j++)
                        if (regions[j]->id == old->id)
                                g = regions[j];
                if (!g) {
                        region_deactivate(old);
                        region_free(old);
                        continue;
                }
                /* Swap the nodes in, keep the old struct (timers and callbacks point at it). */
                nodes_free(old->nodes, old->n_nodes);
                old->nodes = g->nodes;
                old->n_nodes = g->n_nodes;
                if (old->node >= old->n_nodes)
                        old->node = 0;
                g->nodes = NULL;
                g->n_nodes = 0;
                for (size_t j = 0; j < n; j++)
                        if (regions[j] == g)
                                regions[j] = old;
                free(g);
        }
        free(c->regions);
        c->regions = regions;
        c->n_regions = n;

        int old_home = c->home;
        c->home = choose_home(c, m);
        struct dc_region *h = find_region(c, c->home);
        if (old_home != c->home) {
                log_info("DERP home region: %d", c->home);
                struct dc_region *o = find_region(c, old_home);
                if (o && o->active)
                        region_activate(o);   /* now an ordinary region: the idle clock runs */
                if (h->idle)
                        (void) sd_event_source_set_enabled(h->idle, SD_EVENT_OFF);
        }
        region_activate(h);
        return 0;
fail:
        for (size_t i = 0; i < n; i++)
                region_free(regions[i]);
        free(regions);
        return r;
}

int derp_client_new(sd_event *event, const struct derp_client_config *config,
                    const struct derp_map *map, const struct derp_client_callbacks *cb,
                    void *userdata, struct derp_client **ret) {
        struct derp_client *c;
        int r;

        if (!event || !config || !map || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->cfg = *config;
        c->cfg.ca_file = NULL;
        if (config->ca_file) {
                c->cfg.ca_file = strdup(config->ca_file);
                if (!c->cfg.ca_file) {
                        derp_client_free(c);
                        return -ENOMEM;
                }
        }
        if (cb)
                c->cb = *cb;
        c->userdata = userdata;
        r = apply_map(c, map);
        if (r < 0) {
                derp_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

struct derp_client *derp_client_free(struct derp_client *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_regions; i++)
                region_free(c->regions[i]);
        free(c->regions);
        free((char *) c->cfg.ca_file);
        sodium_memzero(c->cfg.priv, sizeof(c->cfg.priv));
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

int derp_client_set_map(struct derp_client *c, const struct derp_map *map) {
        if (!c || !map)
                return -EINVAL;
        return apply_map(c, map);
}

int derp_client_home_region(const struct derp_client *c) {
        return c ? c->home : 0;
}

int derp_client_send(struct derp_client *c, int region_id, const uint8_t dst[DERP_KEY_LEN],
                     const void *pkt, size_t len) {
        struct dc_region *g;

        if (!c)
                return -EINVAL;
        if (len > DERP_MAX_PACKET_SIZE)
                return -EMSGSIZE;
        g = find_region(c, region_id ? region_id : c->home);
        if (!g)
                return -ENOENT;
        region_activate(g);
        if (!region_ready(g))
                return -EAGAIN;
        return derp_conn_send(g->conn, dst, pkt, len);
}

bool derp_client_region_ready(const struct derp_client *c, int region_id, uint64_t *latency_usec) {
        const struct dc_region *g = c ? find_region(c, region_id) : NULL;

        if (latency_usec)
                *latency_usec = g && region_ready(g) ? g->latency_usec : 0;
        return g && region_ready(g);
}
