/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "derpclient.h"
#include "derpsource.h"
#include "dnsapply.h"
#include "dnsresponder.h"
#include "engine.h"
#include "log.h"
#include "macro.h"
#include "netsettings.h"
#include "nsbuild.h"
#include "pathmgr.h"
#include "peerupdate.h"
#include "tunnelnet.h"

struct engine {
        sd_event *event;
        struct config *config;
        struct engine_callbacks cb;
        void *userdata;
        uint8_t private_key[WG_KEY_LEN], public_key[WG_KEY_LEN];

        struct tunnelnet *net;
        struct dnsapply *dns;
        struct dns_responder *responder;
        struct derp_client *derp;
        struct pathmgr *paths;
        sd_event_source *refresh;

        Vpn__NetworkSettingsRequest *pending;   /* handed to apply_network, not answered yet */
        bool ready_sent;
};

static int fail(char **error, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **error, int r, const char *format, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&what, format, ap) < 0)
                what = NULL;
        va_end(ap);
        if (asprintf(error, "%s: %s", what ?: "engine", strerror(-r)) < 0)
                *error = NULL;
        return r;
}

static void request_freep(Vpn__NetworkSettingsRequest **req) {
        if (*req)
                protobuf_c_message_free_unpacked(&(*req)->base, NULL);
        *req = NULL;
}

/* ---- PeerUpdate ---------------------------------------------------------------------- */

static const char *path_name(const struct path_info *info) {
        return info->kind == PATH_DIRECT ? "direct" : "derp";
}

static void fill_path(const struct engine *e, const struct config_peer *p, struct peerupdate_path *out) {
        struct path_info info;

        *out = (struct peerupdate_path) {};
        if (!e->paths || pathmgr_peer_info(e->paths, p->public_key, &info) < 0)
                return;
        out->known = true;
        out->direct = info.kind == PATH_DIRECT;
        out->last_handshake_sec = info.last_handshake_sec;
        int region = info.derp_region ?: (e->derp ? derp_client_home_region(e->derp) : 0);
        out->derp_region = region;
        if (e->derp && region)
                derp_client_region_ready(e->derp, region, &out->derp_latency_usec);
}

static int build_update(const struct engine *e, const struct config *old, Vpn__PeerUpdate *out) {
        _cleanup_free_ struct peerupdate_path *paths = calloc(e->config->n_peers ?: 1, sizeof(*paths));

        if (!paths)
                return -ENOMEM;
        for (size_t i = 0; i < e->config->n_peers; i++)
                fill_path(e, &e->config->peers[i], &paths[i]);
        return peerupdate_build(e->config, paths, old, out);
}

static void emit_update(struct engine *e, const struct config *old) {
        Vpn__PeerUpdate u = VPN__PEER_UPDATE__INIT;

        if (!e->cb.peer_update)
                return;
        if (build_update(e, old, &u) < 0) {
                log_warning("Cannot build a PeerUpdate; managers will see the next refresh");
                return;
        }
        e->cb.peer_update(e, &u, e->userdata);
        peerupdate_free_contents(&u);
}

static int on_refresh(sd_event_source *s, uint64_t usec, void *userdata) {
        struct engine *e = userdata;

        emit_update(e, NULL);
        return sd_event_source_set_time(s, usec + ENGINE_REFRESH_USEC);
}

int engine_snapshot(struct engine *e, Vpn__PeerUpdate *out) {
        /* Asked for now (codervpnctl peers): handshakes as they are, not as of the last tick. */
        if (e->paths)
                (void) pathmgr_refresh(e->paths);
        return build_update(e, NULL, out);
}

void engine_snapshot_free(Vpn__PeerUpdate *out) {
        peerupdate_free_contents(out);
}

/* ---- WireGuard, paths and DERP ------------------------------------------------------- */

/* "Peer NAME: @what", with the peer's key, workspace, agent and path as journal fields. */
static void log_peer(int prio, const struct config_peer *p, const char *path, const char *what) {
        char key[45];

        config_key_to_base64(p->public_key, key);
        log_full_errno_fields(prio, 0,
                              LOG_FIELDS({ "PEER", key }, { "WORKSPACE", p->workspace ?: "" },
                                         { "AGENT", p->agent ?: "" }, { "PATH", path ?: "" }),
                              "Peer %s: %s", p->agent ?: key, what);
}

static int on_derp_send(struct pathmgr *pm, int region_id, const uint8_t key[WG_KEY_LEN], const void *pkt,
                        size_t len, void *userdata) {
        struct engine *e = userdata;
        return e->derp ? derp_client_send(e->derp, region_id, key, pkt, len) : -ENETUNREACH;
}

static void on_path_changed(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN], const struct path_info *info,
                            void *userdata) {
        struct engine *e = userdata;
        const struct config_peer *p = config_find_peer(e->config, key);
        char what[64];

        if (!p)
                return;
        if (info->kind == PATH_DIRECT)
                snprintf(what, sizeof(what), "path is now direct");
        else
                snprintf(what, sizeof(what), "path is now DERP region %d", info->derp_region ?:
                         (e->derp ? derp_client_home_region(e->derp) : 0));
        log_peer(LOG_NOTICE, p, path_name(info), what);
        emit_update(e, NULL);
}

static void on_derp_recv(struct derp_client *c, int region_id, const uint8_t src[DERP_KEY_LEN], const uint8_t *pkt,
                         size_t len, void *userdata) {
        struct engine *e = userdata;

        if (e->paths && pathmgr_derp_recv(e->paths, region_id, src, pkt, len) == -ENOENT)
                log_debug("Dropping a DERP packet from a key that is not a peer");
}

static void on_derp_region(struct derp_client *c, int region_id, bool ready, void *userdata) {
        log_full_errno(ready ? LOG_INFO : LOG_WARNING, 0, "DERP region %d %s", region_id,
                       ready ? "connected" : "disconnected; reconnecting");
}

static const struct derp_client_callbacks derp_callbacks = {
        .recv = on_derp_recv,
        .region_changed = on_derp_region,
};

static const struct pathmgr_callbacks path_callbacks = {
        .derp_send = on_derp_send,
        .path_changed = on_path_changed,
};

static int start_derp(struct engine *e, const struct config *c, char **error) {
        _cleanup_derp_map_ struct derp_map *map = NULL;
        int r;

        if (!c->derp_map_file && !c->derp_url)
                return 0;
        if ((r = derpsource_load(c, &map, error)) < 0)
                return r;
        struct derp_client_config dc = {
                .fwmark = c->fwmark ?: NET_DEFAULT_FWMARK,
                .force_websocket = c->derp_force_websocket,
                .ca_file = c->derp_ca_file,
                .home_region = c->derp_home_region,
        };
        memcpy(dc.priv, e->private_key, sizeof(dc.priv));
        r = derp_client_new(e->event, &dc, map, &derp_callbacks, e, &e->derp);
        sodium_memzero(dc.priv, sizeof(dc.priv));
        if (r < 0)
                return fail(error, r, "DERP");
        log_info("DERP: home region %d", derp_client_home_region(e->derp));
        return 0;
}

/* The device @c asks for: key, port and exactly its peers, without endpoints (pathmgr's). */
static int desired_device(const struct engine *e, const struct config *c, struct wg_device *dev) {
        *dev = (struct wg_device) {
                .flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS,
                .listen_port = c->listen_port,
                .n_peers = c->n_peers,
        };
        memcpy(dev->private_key, e->private_key, WG_KEY_LEN);
        if (c->n_peers && !(dev->peers = calloc(c->n_peers, sizeof(*dev->peers))))
                return -ENOMEM;
        for (size_t i = 0; i < c->n_peers; i++) {
                const struct config_peer *p = &c->peers[i];
                dev->peers[i] = (struct wg_peer) {
                        .flags = WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_KEEPALIVE,
                        .persistent_keepalive = p->persistent_keepalive,
                        .allowedips = p->allowed_ips,
                        .n_allowedips = p->n_allowed_ips,
                };
                memcpy(dev->peers[i].public_key, p->public_key, WG_KEY_LEN);
        }
        return 0;
}

static int sync_wireguard(struct engine *e, const struct config *c, char **error) {
        struct wg_device dev;
        struct wg_stats stats = {};
        int r;

        if ((r = desired_device(e, c, &dev)) < 0)
                return fail(error, r, "WireGuard");
        r = wg_sync(tunnelnet_wg(e->net), NULL, &dev, &stats);
        sodium_memzero(dev.private_key, sizeof(dev.private_key));
        free(dev.peers);
        if (r < 0)
                return fail(error, r, "Cannot configure %s", c->ifname);
        log_debug("WireGuard %s: %zu message(s), %zu peer entries", c->ifname, stats.messages, stats.peers);
        return 0;
}

static bool same_route(const struct config_peer *a, const struct config_peer *b) {
        return a->derp_region == b->derp_region && wg_endpoint_equal(&a->endpoint, &b->endpoint);
}

/* Paths for @c's peers, given that @old's (NULL: none) were managed before. */
static int sync_paths(struct engine *e, const struct config *old, const struct config *c, char **error) {
        int r;

        if (old)
                for (size_t i = 0; i < old->n_peers; i++)
                        if (!config_find_peer(c, old->peers[i].public_key))
                                pathmgr_remove_peer(e->paths, old->peers[i].public_key);
        for (size_t i = 0; i < c->n_peers; i++) {
                const struct config_peer *p = &c->peers[i], *was = old ? config_find_peer(old, p->public_key) : NULL;
                if (was && same_route(was, p))
                        continue;
                if ((r = pathmgr_set_peer(e->paths, p->public_key, &p->endpoint, p->derp_region)) < 0)
                        return fail(error, r, "Cannot set up the path to peer %s", p->agent ?: "(unnamed)");
        }
        return 0;
}

/* ---- Network settings and DNS -------------------------------------------------------- */

static int set_names(struct engine *e, const struct config *c) {
        _cleanup_(peerupdate_names_freep) struct peerupdate_names names = {};
        int r;

        if (!e->responder)
                return 0;
        if ((r = peerupdate_names(c, &names)) < 0 ||
            (r = dns_responder_set_names(e->responder, names.entries, names.n_entries)) < 0)
                return r;
        return dns_responder_set_zones(e->responder, (const char *const *) c->dns_domains, c->n_dns_domains);
}

static int start_responder(struct engine *e, const struct config *c, char **error) {
        _cleanup_free_ struct sockaddr_storage *addrs = NULL;
        int r;

        if (c->dns_mode == CONFIG_DNS_OFF || !c->n_dns_addrs)
                return 0;
        if (!(addrs = calloc(c->n_dns_addrs, sizeof(*addrs))))
                return fail(error, -ENOMEM, "DNS");
        for (size_t i = 0; i < c->n_dns_addrs; i++) {
                const struct net_prefix *p = &c->dns_addrs[i];
                if (p->family == AF_INET)
                        *(struct sockaddr_in *) &addrs[i] = (struct sockaddr_in) {
                                .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = p->in };
                else
                        *(struct sockaddr_in6 *) &addrs[i] = (struct sockaddr_in6) {
                                .sin6_family = AF_INET6, .sin6_port = htons(53), .sin6_addr = p->in6,
                                .sin6_scope_id = 0 };
        }
        if ((r = dns_responder_new(e->event, addrs, c->n_dns_addrs, &e->responder)) < 0)
                return fail(error, r, "Cannot start the DNS responder on port 53");
        if ((r = set_names(e, c)) < 0)
                return fail(error, r, "DNS names");
        return 0;
}

static void finish_network(struct engine *e, const char *error) {
        if (e->ready_sent) {
                if (error)
                        log_error("Network settings: %s", error);
                return;
        }
        e->ready_sent = true;
        if (e->cb.ready)
                e->cb.ready(e, error, e->userdata);
}

static int apply_dns(struct engine *e, const Vpn__NetworkSettingsRequest *req, char **error) {
        struct dns_config dns = {};
        int r;

        if (!e->dns)
                return 0;
        if (req->dns_settings && (r = netsettings_to_dns(req->dns_settings, &dns, error)) < 0)
                return r;
        r = dnsapply_set(e->dns, &dns, error);
        dns_config_free(&dns);
        return r;
}

/* Applies @req ourselves, or hands it to the manager that does. */
static int apply_network(struct engine *e, Vpn__NetworkSettingsRequest *req, char **error) {
        int r;

        if (e->cb.apply_network) {
                request_freep(&e->pending);
                e->pending = req;
                if ((r = e->cb.apply_network(e, req, e->userdata)) < 0)
                        return fail(error, r, "Cannot send the network settings to the manager");
                return 0;
        }
        r = tunnelnet_apply(e->net, req, error);
        if (r >= 0)
                r = apply_dns(e, req, error);
        request_freep(&req);
        if (r >= 0)
                finish_network(e, NULL);
        return r;
}

static int apply_settings(struct engine *e, const struct config *c, char **error) {
        Vpn__NetworkSettingsRequest *req = NULL;
        int r;

        if ((r = nsbuild_from_config(c, &req)) < 0)
                return fail(error, r, "Network settings");
        return apply_network(e, req, error);
}

void engine_network_done(struct engine *e, const char *error) {
        request_freep(&e->pending);
        finish_network(e, error);
}

/* ---- Lifecycle ----------------------------------------------------------------------- */

/* So that `codervpnctl pubkey` can answer without reading the private key. */
static void write_public_key(const struct engine *e) {
        _cleanup_free_ char *path = NULL;
        char b64[46];

        config_key_to_base64(e->public_key, b64);
        strcat(b64, "\n");
        _cleanup_close_ int fd = -1;

        if (asprintf(&path, ENGINE_RUNTIME_DIR "/%s.pub", e->config->ifname) < 0) {
                path = NULL;
                return;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 || write(fd, b64, strlen(b64)) != (ssize_t) strlen(b64))
                log_warning("Cannot write %s: %m", path);
}

int engine_new(sd_event *event, struct config *config, const struct engine_callbacks *cb, void *userdata,
               struct engine **ret, char **error) {
        _cleanup_config_ struct config *c = config;
        _cleanup_(engine_freep) struct engine *e = calloc(1, sizeof(*e));
        char keyerr[CONFIG_ERROR_MAX];
        _cleanup_free_ char *state_path = NULL;
        const char *neterr;
        int r;

        if (!e)
                return fail(error, -ENOMEM, "engine");
        e->event = sd_event_ref(event);
        if (cb)
                e->cb = *cb;
        e->userdata = userdata;
        if ((r = config_load_private_key(c->private_key_file, true, e->private_key, keyerr, sizeof(keyerr))) < 0) {
                *error = strdup(keyerr);
                return r;
        }
        crypto_scalarmult_base(e->public_key, e->private_key);
        if (mkdir(ENGINE_RUNTIME_DIR, 0755) < 0 && errno != EEXIST)
                return fail(error, -errno, "Cannot create %s", ENGINE_RUNTIME_DIR);
        if (asprintf(&state_path, ENGINE_RUNTIME_DIR "/%s.state", c->ifname) < 0) {
                state_path = NULL;
                return fail(error, -ENOMEM, "engine");
        }

        struct tunnelnet_config tc = {
                .ifname = c->ifname,
                .mode = c->wg_mode,
                .policy = { .table = NET_DEFAULT_TABLE, .rule_priority = NET_DEFAULT_RULE_PRIORITY,
                            .fwmark = c->fwmark ?: NET_DEFAULT_FWMARK },
                .state_path = state_path,
        };
        if ((r = tunnelnet_new(&e->net, event, &tc, &neterr)) < 0)
                return fail(error, r, "%s", neterr);
        if ((r = sync_wireguard(e, c, error)) < 0)
                return r;
        if ((r = start_derp(e, c, error)) < 0)
                return r;
        if ((r = pathmgr_new(event, tunnelnet_wg(e->net), &path_callbacks, e, &e->paths)) < 0)
                return fail(error, r, "Path selection");
        e->config = c;   /* path callbacks look peers up from here on */
        if ((r = sync_paths(e, NULL, c, error)) < 0) {
                e->config = NULL;
                return r;
        }
        c = NULL;
        if (!e->cb.apply_network) {
                int ifindex = (int) if_nametoindex(e->config->ifname);
                if ((r = dnsapply_new(event, e->config->dns_mode, e->config->ifname, ifindex, &e->dns, error)) < 0)
                        return r;
        }
        if ((r = sd_event_add_time_relative(event, &e->refresh, CLOCK_MONOTONIC, ENGINE_REFRESH_USEC, 0,
                                            on_refresh, e)) < 0)
                return fail(error, r, "timer");
        /* Last: a local apply reports readiness at once, and nothing may fail after it. */
        if ((r = start_responder(e, e->config, error)) < 0 || (r = apply_settings(e, e->config, error)) < 0)
                return r;
        write_public_key(e);
        for (size_t i = 0; i < e->config->n_peers; i++)
                log_peer(LOG_INFO, &e->config->peers[i], NULL, "configured");
        emit_update(e, NULL);
        *ret = TAKE_PTR(e);
        return 0;
}

static const char *needs_restart(const struct config *a, const struct config *b) {
        if (strcmp(a->ifname, b->ifname))
                return "[Interface] Name";
        if (a->wg_mode != b->wg_mode)
                return "[Interface] WireGuard";
        if (strcmp(a->private_key_file, b->private_key_file))
                return "[Interface] PrivateKeyFile";
        if (a->fwmark != b->fwmark)
                return "[Interface] FirewallMark";
        if (a->dns_mode != b->dns_mode)
                return "[DNS] Mode";
        return NULL;
}

static bool same_optional_string(const char *a, const char *b) {
        return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool same_derp(const struct config *a, const struct config *b) {
        return same_optional_string(a->derp_map_file, b->derp_map_file) &&
               same_optional_string(a->derp_url, b->derp_url) && a->derp_home_region == b->derp_home_region &&
               a->derp_force_websocket == b->derp_force_websocket &&
               same_optional_string(a->derp_ca_file, b->derp_ca_file);
}

static bool same_dns_addrs(const struct config *a, const struct config *b) {
        if (a->n_dns_addrs != b->n_dns_addrs)
                return false;
        for (size_t i = 0; i < a->n_dns_addrs; i++)
                if (!net_prefix_equal(&a->dns_addrs[i], &b->dns_addrs[i]))
                        return false;
        return true;
}

int engine_reload(struct engine *e, struct config *config, char **error) {
        _cleanup_config_ struct config *c = config;
        const char *what;
        int r;

        if ((what = needs_restart(e->config, c))) {
                if (asprintf(error, "%s changed: restart codervpnd to apply it (nothing was changed)", what) < 0)
                        *error = NULL;
                return -EINVAL;
        }
        if ((r = sync_wireguard(e, c, error)) < 0)
                return r;
        if (!same_derp(e->config, c)) {
                e->derp = derp_client_free(e->derp);
                if ((r = start_derp(e, c, error)) < 0)
                        return r;
        }
        if ((r = sync_paths(e, e->config, c, error)) < 0)
                return r;
        if (!same_dns_addrs(e->config, c)) {
                e->responder = dns_responder_free(e->responder);
                if ((r = start_responder(e, c, error)) < 0)
                        return r;
        } else if ((r = set_names(e, c)) < 0)
                return fail(error, r, "DNS names");
        if ((r = apply_settings(e, c, error)) < 0)
                return r;

        struct config *old = e->config;
        e->config = TAKE_PTR(c);
        emit_update(e, old);
        config_free(old);
        log_info("Configuration reloaded");
        return 0;
}

char *engine_state_ifname(const char *state_path) {
        const char *prefix = ENGINE_RUNTIME_DIR "/", *suffix = ".state";
        size_t lp = strlen(prefix), ls = strlen(suffix), n = strlen(state_path);

        if (n <= lp + ls || strncmp(state_path, prefix, lp) || strcmp(state_path + n - ls, suffix) ||
            memchr(state_path + lp, '/', n - lp - ls) || n - lp - ls >= IFNAMSIZ)
                return NULL;
        return strndup(state_path + lp, n - lp - ls);
}

const uint8_t *engine_public_key(const struct engine *e) {
        return e->public_key;
}

struct engine *engine_free(struct engine *e) {
        if (!e)
                return NULL;
        sd_event_source_disable_unref(e->refresh);
        e->paths = pathmgr_free(e->paths);
        e->derp = derp_client_free(e->derp);
        e->responder = dns_responder_free(e->responder);
        e->dns = dnsapply_free(e->dns);
        e->net = tunnelnet_free(e->net);
        request_freep(&e->pending);
        if (e->config) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, ENGINE_RUNTIME_DIR "/%s.pub", e->config->ifname) >= 0)
                        unlink(path);
        }
        config_free(e->config);
        sodium_memzero(e->private_key, sizeof(e->private_key));
        sd_event_unref(e->event);
        free(e);
        return NULL;
}
