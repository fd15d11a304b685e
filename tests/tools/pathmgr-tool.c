/* SPDX-License-Identifier: MIT */
/*
 * pathmgr-tool: a WireGuard interface whose peers agent/pathmgr moves between a direct
 * endpoint and a DERP relay, for tests and benchmarks.
 *
 *   pathmgr-tool --ifname IF --private-key-file F --listen-port N --address CIDR
 *                --derp-url URL [--mode auto|kernel|userspace] [--fwmark N] [--verbose]
 *                --peer key=B64,allowed=CIDR[,allowed=CIDR...][,endpoint=IP:PORT][,region=N]
 *                       [,keepalive=S]   (repeatable)
 *
 * --mode defaults to CODERVPN_WG_MODE, else auto. F holds a base64 private key (wg genkey).
 * DERP: agent/derpclient with a one-region map (region 1, one node: URL, which must be
 * http://IPv4:PORT/derp); the peers' region= should be 1 (0 = home = 1 too).
 *
 * stdout, one line per event (times are CLOCK_MONOTONIC milliseconds):
 *   ready ifname=IF mode=kernel|userspace listen_port=N
 *   derp up T region=N | derp down T region=N     the region's connection came or went
 *   path KEY direct|derp T                   initial path, then every change
 *   stats KEY direct|derp rx=N tx=N relayed_in=N relayed_out=N   (answer to `stats`)
 * stdin: `stats` (all peers), or nothing (EOF is fine). SIGTERM/SIGINT delete the
 * interface and exit 0. Exit status 1 on setup failure, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <systemd/sd-event.h>

#include "derpclient.h"
#include "log.h"
#include "macro.h"
#include "netcfg.h"
#include "pathmgr.h"
#include "toolcmd.h"
#include "wg.h"

#define PEERS_MAX 64
#define TOOL_REGION 1

static const char *prog = "pathmgr-tool";

struct tool_peer {
        struct wg_peer wg;
        struct wg_allowedip ips[16];
        union wg_endpoint direct;
        int region;
};

struct tool {
        sd_event *event;
        struct wg *wg;
        struct pathmgr *pm;
        struct derp_client *derp;
        struct derp_client_config derp_cfg;
        const char *derp_url;
        struct tool_peer peers[PEERS_MAX];
        size_t n_peers;
        struct line_reader in;
};

static unsigned long long mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (unsigned long long) ts.tv_sec * 1000ULL + (unsigned long long) ts.tv_nsec / 1000000ULL;
}

static void print_path(const uint8_t key[WG_KEY_LEN], const struct path_info *info) {
        char b64[45];
        wg_key_to_base64(b64, key);
        printf("path %s %s %llu\n", b64, info->kind == PATH_DIRECT ? "direct" : "derp", mono_ms());
        fflush(stdout);
}

/* ---- DERP ---------------------------------------------------------------------------- */

static void on_derp_recv(struct derp_client *c, int region_id, const uint8_t src[DERP_KEY_LEN],
                         const uint8_t *pkt, size_t len, void *ud) {
        struct tool *t = ud;
        (void) pathmgr_derp_recv(t->pm, region_id, src, pkt, len);
}

static void on_derp_region(struct derp_client *c, int region_id, bool ready, void *ud) {
        printf("derp %s %llu region=%d\n", ready ? "up" : "down", mono_ms(), region_id);
        fflush(stdout);
}

/* A one-region, one-node map for URL (http://HOST:PORT[/derp], HOST an IPv4 address). */
static int derp_map_from_url(const char *url, struct derp_map **ret) {
        char host[64], json[512], err[256];
        unsigned port = 80;

        if (sscanf(url, "http://%63[0-9.]:%u", host, &port) < 1 || port == 0 || port > 65535)
                return -EINVAL;
        int n = snprintf(json, sizeof(json),
                         "{\"Regions\":{\"%d\":{\"RegionID\":%d,\"RegionCode\":\"test\",\"Nodes\":[{"
                         "\"Name\":\"%da\",\"RegionID\":%d,\"HostName\":\"%s\",\"IPv4\":\"%s\","
                         "\"DERPPort\":%u,\"ForceHTTP\":true}]}}}",
                         TOOL_REGION, TOOL_REGION, TOOL_REGION, TOOL_REGION, host, host, port);
        if (n < 0 || (size_t) n >= sizeof(json))
                return -EINVAL;
        return derp_map_parse(json, (size_t) n, ret, err, sizeof(err));
}

static int pm_derp_send(struct pathmgr *pm, int region_id, const uint8_t key[WG_KEY_LEN], const void *pkt,
                        size_t len, void *ud) {
        struct tool *t = ud;
        return derp_client_send(t->derp, region_id, key, pkt, len);
}

static void pm_path_changed(struct pathmgr *pm, const uint8_t key[WG_KEY_LEN], const struct path_info *info,
                            void *ud) {
        print_path(key, info);
}

/* ---- stdin --------------------------------------------------------------------------- */

static void print_stats(struct tool *t) {
        for (size_t i = 0; i < t->n_peers; i++) {
                struct path_info info;
                char b64[45];
                if (pathmgr_peer_info(t->pm, t->peers[i].wg.public_key, &info) < 0)
                        continue;
                wg_key_to_base64(b64, t->peers[i].wg.public_key);
                printf("stats %s %s rx=%llu tx=%llu relayed_in=%llu relayed_out=%llu\n", b64,
                       info.kind == PATH_DIRECT ? "direct" : "derp", (unsigned long long) info.rx_bytes,
                       (unsigned long long) info.tx_bytes, (unsigned long long) info.relayed_in,
                       (unsigned long long) info.relayed_out);
        }
        printf("stats-end\n");
        fflush(stdout);
}

/* No more commands at EOF; the tool keeps running until a signal. */
static void on_line(char *line, void *ud) {
        if (strcmp(line, "stats") == 0)
                print_stats(ud);
}

/* ---- setup --------------------------------------------------------------------------- */

static int parse_peer(struct tool *t, char *spec) {
        if (t->n_peers == PEERS_MAX)
                return -E2BIG;
        struct tool_peer *p = &t->peers[t->n_peers];
        bool have_key = false;
        char *save = NULL;

        for (char *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *v = strchr(kv, '=');
                if (!v)
                        return -EINVAL;
                *v++ = 0;
                if (strcmp(kv, "key") == 0) {
                        if (wg_key_from_base64(p->wg.public_key, v) < 0)
                                return -EINVAL;
                        have_key = true;
                } else if (strcmp(kv, "allowed") == 0) {
                        if (p->wg.n_allowedips == ELEMENTSOF(p->ips) ||
                            wg_allowedip_parse(&p->ips[p->wg.n_allowedips], v) < 0)
                                return -EINVAL;
                        p->wg.n_allowedips++;
                } else if (strcmp(kv, "endpoint") == 0) {
                        if (wg_endpoint_parse(&p->direct, v) < 0)
                                return -EINVAL;
                } else if (strcmp(kv, "region") == 0) {
                        p->region = atoi(v);
                } else if (strcmp(kv, "keepalive") == 0) {
                        p->wg.persistent_keepalive = (uint16_t) atoi(v);
                        p->wg.flags |= WG_PEER_HAS_KEEPALIVE;
                } else {
                        return -EINVAL;
                }
        }
        if (!have_key)
                return -EINVAL;
        p->wg.allowedips = p->ips;
        p->wg.flags |= WG_PEER_REPLACE_ALLOWEDIPS;
        t->n_peers++;
        return 0;
}

static int read_private_key(const char *path, uint8_t key[WG_KEY_LEN]) {
        char text[128] = "";
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = 0;
        text[strcspn(text, " \t\r\n")] = 0;
        int r = wg_key_from_base64(key, text);
        sodium_memzero(text, sizeof(text));
        return r;
}

static int setup_interface(struct tool *t, const uint8_t priv[WG_KEY_LEN], uint16_t port, uint32_t fwmark,
                           const struct net_prefix *addr) {
        struct wg_peer peers[PEERS_MAX];
        struct wg_device dev = {
                .flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK |
                         WG_DEVICE_REPLACE_PEERS,
                .listen_port = port,
                .fwmark = fwmark,
                .peers = peers,
                .n_peers = t->n_peers,
        };
        struct netcfg *nc = NULL;
        int r, ifindex;

        memcpy(dev.private_key, priv, WG_KEY_LEN);
        for (size_t i = 0; i < t->n_peers; i++)
                peers[i] = t->peers[i].wg;   /* no endpoints: pathmgr owns them */
        r = wg_create(t->wg);
        if (r < 0) {
                fprintf(stderr, "%s: cannot create %s: %s\n", prog, wg_ifname(t->wg), strerror(-r));
                return r;
        }
        r = wg_set(t->wg, &dev, NULL);
        sodium_memzero(dev.private_key, WG_KEY_LEN);
        if (r < 0) {
                fprintf(stderr, "%s: cannot configure %s: %s\n", prog, wg_ifname(t->wg), strerror(-r));
                return r;
        }
        r = netcfg_open(&nc);
        if (r < 0)
                return r;
        ifindex = r = netcfg_link_index(nc, wg_ifname(t->wg));
        if (r > 0)
                r = netcfg_addr_add(nc, ifindex, addr);
        if (r >= 0)
                r = netcfg_link_set_up(nc, ifindex, true);
        netcfg_close(nc);
        if (r < 0)
                fprintf(stderr, "%s: cannot set up %s: %s\n", prog, wg_ifname(t->wg), strerror(-r));
        return r < 0 ? r : 0;
}

static void usage(FILE *f) {
        fprintf(f,
                "usage: %s --ifname IF --private-key-file F --listen-port N --address CIDR --derp-url URL\n"
                "       [--mode auto|kernel|userspace] [--fwmark N] [--verbose]\n"
                "       --peer key=B64,allowed=CIDR[,endpoint=IP:PORT][,region=N][,keepalive=S]...\n",
                prog);
}

static int run(struct tool *t) {
        static const struct pathmgr_callbacks pcb = { .derp_send = pm_derp_send, .path_changed = pm_path_changed };
        _cleanup_(wg_device_freep) struct wg_device *dev = NULL;
        int r;

        r = pathmgr_new(t->event, t->wg, &pcb, t, &t->pm);
        if (r < 0) {
                fprintf(stderr, "%s: pathmgr: %s\n", prog, strerror(-r));
                return 1;
        }
        for (size_t i = 0; i < t->n_peers; i++) {
                struct path_info info;
                r = pathmgr_set_peer(t->pm, t->peers[i].wg.public_key, &t->peers[i].direct, t->peers[i].region);
                if (r < 0) {
                        fprintf(stderr, "%s: pathmgr: peer %zu: %s\n", prog, i, strerror(-r));
                        return 1;
                }
                if (pathmgr_peer_info(t->pm, t->peers[i].wg.public_key, &info) >= 0)
                        print_path(t->peers[i].wg.public_key, &info);
        }
        r = wg_get(t->wg, &dev);
        printf("ready ifname=%s mode=%s listen_port=%u\n", wg_ifname(t->wg), wg_mode_name(wg_get_mode(t->wg)),
               r >= 0 ? (unsigned) dev->listen_port : 0u);
        fflush(stdout);

        _cleanup_(derp_map_freep) struct derp_map *map = NULL;
        static const struct derp_client_callbacks dcb = { .recv = on_derp_recv, .region_changed = on_derp_region };
        r = derp_map_from_url(t->derp_url, &map);
        if (r < 0) {
                fprintf(stderr, "%s: bad --derp-url (http://IPv4:PORT/derp)\n", prog);
                return 1;
        }
        t->derp_cfg.home_region = TOOL_REGION;
        r = derp_client_new(t->event, &t->derp_cfg, map, &dcb, t, &t->derp);
        sodium_memzero(t->derp_cfg.priv, sizeof(t->derp_cfg.priv));
        if (r < 0) {
                fprintf(stderr, "%s: DERP client: %s\n", prog, strerror(-r));
                return 1;
        }
        if (sd_event_add_signal(t->event, NULL, SIGTERM, NULL, NULL) < 0 ||
            sd_event_add_signal(t->event, NULL, SIGINT, NULL, NULL) < 0 ||
            line_reader_start(&t->in, t->event, STDIN_FILENO, 256, 0, on_line, t) < 0) {
                fprintf(stderr, "%s: event sources failed\n", prog);
                return 1;
        }
        r = sd_event_loop(t->event);
        line_reader_done(&t->in);
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "ifname", required_argument, NULL, 'i' },
                { "mode", required_argument, NULL, 'M' },
                { "private-key-file", required_argument, NULL, 'k' },
                { "listen-port", required_argument, NULL, 'p' },
                { "address", required_argument, NULL, 'a' },
                { "derp-url", required_argument, NULL, 'u' },
                { "fwmark", required_argument, NULL, 'f' },
                { "peer", required_argument, NULL, 'P' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static struct tool t;
        const char *ifname = NULL, *key_file = NULL, *mode_s = getenv("CODERVPN_WG_MODE");
        uint8_t priv[WG_KEY_LEN];
        struct net_prefix addr = {};
        unsigned long port = 0;
        uint32_t fwmark = 0;
        enum wg_mode mode = WG_MODE_AUTO;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'i': ifname = optarg; break;
                case 'M': mode_s = optarg; break;
                case 'k': key_file = optarg; break;
                case 'p': port = strtoul(optarg, NULL, 10); break;
                case 'a':
                        if (net_prefix_parse(&addr, optarg) < 0) {
                                fprintf(stderr, "%s: bad --address\n", prog);
                                return 2;
                        }
                        break;
                case 'u': t.derp_url = optarg; break;
                case 'f': fwmark = (uint32_t) strtoul(optarg, NULL, 0); break;
                case 'P':
                        if (parse_peer(&t, optarg) < 0) {
                                /* The spec may hold a key: not echoed. */
                                fprintf(stderr, "%s: bad --peer #%zu\n", prog, t.n_peers + 1);
                                return 2;
                        }
                        break;
                case 'v': log_open(LOG_TARGET_STDERR, LOG_DEBUG); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (mode_s && *mode_s) {
                if (strcmp(mode_s, "kernel") == 0)
                        mode = WG_MODE_KERNEL;
                else if (strcmp(mode_s, "userspace") == 0)
                        mode = WG_MODE_USERSPACE;
                else if (strcmp(mode_s, "auto") != 0) {
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc || !ifname || !key_file || !t.derp_url || !addr.family || !t.n_peers ||
            port > 65535) {
                usage(stderr);
                return 2;
        }
        if (sodium_init() < 0 || read_private_key(key_file, priv) < 0) {
                fprintf(stderr, "%s: cannot read a private key from %s\n", prog, key_file);
                return 1;
        }
        memcpy(t.derp_cfg.priv, priv, WG_KEY_LEN);   /* the DERP key is the WireGuard key */
        t.derp_cfg.fwmark = fwmark;

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&t.event);
        if (r < 0 || (r = wg_open(&t.wg, ifname, mode)) < 0) {
                fprintf(stderr, "%s: cannot open %s: %s\n", prog, ifname, strerror(-r));
                return 1;
        }
        r = setup_interface(&t, priv, (uint16_t) port, fwmark, &addr);
        sodium_memzero(priv, sizeof(priv));
        int status = r < 0 ? 1 : run(&t);

        pathmgr_free(t.pm);
        derp_client_free(t.derp);
        (void) wg_delete(t.wg);
        wg_free(t.wg);
        sodium_memzero(&t.derp_cfg, sizeof(t.derp_cfg));
        sd_event_unref(t.event);
        return status;
}
