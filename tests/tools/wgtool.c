/* SPDX-License-Identifier: MIT */
/*
 * wgtool: netlink/wg.h on the command line, for tests and benchmarks.
 *
 *   wgtool [--mode auto|kernel|userspace] IFNAME create|delete|show
 *   wgtool [--mode ...] IFNAME set FILE     apply FILE with REPLACE_PEERS (like wg setconf)
 *   wgtool [--mode ...] IFNAME sync FILE    wg_sync to FILE; "messages=N peers=M usec=T" on stderr
 *   wgtool [--mode ...] IFNAME sync-from OLD NEW
 *                                           wg_sync from OLD (the state last applied, as the
 *                                           engine keeps it) to NEW, without reading the device
 *   wgtool genkey | pubkey                  like wg genkey / wg pubkey
 *
 * FILE ("-" = stdin) is the subset of wg(8)'s configuration format that wg.h
 * covers: [Interface] PrivateKey, ListenPort, FwMark; [Peer] PublicKey,
 * PresharedKey, Endpoint (numeric), PersistentKeepalive, AllowedIPs. `show`
 * prints what `wg show IFNAME dump` prints. Keys are never printed except by
 * show/genkey/pubkey, as wg does.
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <sodium.h>

#include "wg.h"

static const char *prog = "wgtool";

static void usage(FILE *f) {
        fprintf(f,
                "usage: %s [--mode auto|kernel|userspace] IFNAME create|delete|show|set FILE|sync FILE\n"
                "       %s genkey|pubkey\n", prog, prog);
}

/* ---- Configuration file -------------------------------------------------------------- */

struct config {
        struct wg_device dev;
        size_t peers_cap;
        size_t ips_cap;      /* of the last peer */
};

static void config_free(struct config *c) {
        for (size_t i = 0; i < c->dev.n_peers; i++)
                free(c->dev.peers[i].allowedips);
        if (c->dev.peers)
                sodium_memzero(c->dev.peers, c->peers_cap * sizeof(*c->dev.peers));
        free(c->dev.peers);
        sodium_memzero(c, sizeof(*c));
}

static char *strip(char *s) {
        while (*s == ' ' || *s == '\t')
                s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
                s[--n] = '\0';
        return s;
}

static int parse_number(const char *s, unsigned long max, unsigned long *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 0);
        if (!*s || *s == '-' || errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static struct wg_peer *add_peer(struct config *c) {
        if (c->dev.n_peers == c->peers_cap) {
                size_t cap = c->peers_cap ? 2 * c->peers_cap : 16;
                struct wg_peer *v = calloc(cap, sizeof(*v));
                if (!v)
                        return NULL;
                if (c->dev.peers) {
                        memcpy(v, c->dev.peers, c->dev.n_peers * sizeof(*v));
                        sodium_memzero(c->dev.peers, c->peers_cap * sizeof(*v));
                        free(c->dev.peers);
                }
                c->dev.peers = v;
                c->peers_cap = cap;
        }
        c->ips_cap = 0;
        struct wg_peer *p = &c->dev.peers[c->dev.n_peers++];
        *p = (struct wg_peer) { .flags = WG_PEER_REPLACE_ALLOWEDIPS };
        return p;
}

static int add_allowedips(struct config *c, struct wg_peer *p, char *list) {
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                tok = strip(tok);
                if (!*tok)
                        continue;
                if (p->n_allowedips == c->ips_cap) {
                        size_t cap = c->ips_cap ? 2 * c->ips_cap : 4;
                        struct wg_allowedip *v = realloc(p->allowedips, cap * sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        p->allowedips = v;
                        c->ips_cap = cap;
                }
                if (wg_allowedip_parse(&p->allowedips[p->n_allowedips], tok) < 0)
                        return -EINVAL;
                p->n_allowedips++;
        }
        return 0;
}

static int config_line(struct config *c, int *section, char *line, const char **what) {
        struct wg_peer *p = *section == 2 ? &c->dev.peers[c->dev.n_peers - 1] : NULL;
        unsigned long n;

        char *hash = strchr(line, '#');
        if (hash)
                *hash = '\0';
        line = strip(line);
        if (!*line)
                return 0;
        if (line[0] == '[') {
                if (strcasecmp(line, "[Interface]") == 0) {
                        *section = 1;
                        return 0;
                }
                if (strcasecmp(line, "[Peer]") == 0) {
                        *section = 2;
                        return add_peer(c) ? 0 : -ENOMEM;
                }
                *what = "unknown section";
                return -EINVAL;
        }
        char *eq = strchr(line, '=');
        if (!eq) {
                *what = "line without '='";
                return -EINVAL;
        }
        *eq = '\0';
        char *key = strip(line), *value = strip(eq + 1);
        *what = key;

        if (*section == 1) {
                if (strcasecmp(key, "PrivateKey") == 0) {
                        if (wg_key_from_base64(c->dev.private_key, value) < 0)
                                return -EINVAL;
                        c->dev.flags |= WG_DEVICE_HAS_PRIVATE_KEY;
                } else if (strcasecmp(key, "ListenPort") == 0) {
                        if (parse_number(value, 65535, &n) < 0)
                                return -EINVAL;
                        c->dev.listen_port = (uint16_t) n;
                        c->dev.flags |= WG_DEVICE_HAS_LISTEN_PORT;
                } else if (strcasecmp(key, "FwMark") == 0) {
                        if (strcasecmp(value, "off") == 0)
                                n = 0;
                        else if (parse_number(value, UINT32_MAX, &n) < 0)
                                return -EINVAL;
                        c->dev.fwmark = (uint32_t) n;
                        c->dev.flags |= WG_DEVICE_HAS_FWMARK;
                } else
                        return -ENOKEY;
                return 0;
        }
        if (*section == 2) {
                if (strcasecmp(key, "PublicKey") == 0) {
                        if (wg_key_from_base64(p->public_key, value) < 0)
                                return -EINVAL;
                } else if (strcasecmp(key, "PresharedKey") == 0) {
                        if (wg_key_from_base64(p->preshared_key, value) < 0)
                                return -EINVAL;
                        p->flags |= WG_PEER_HAS_PRESHARED_KEY;
                } else if (strcasecmp(key, "Endpoint") == 0) {
                        if (wg_endpoint_parse(&p->endpoint, value) < 0)
                                return -EINVAL;
                } else if (strcasecmp(key, "PersistentKeepalive") == 0) {
                        if (strcasecmp(value, "off") == 0)
                                n = 0;
                        else if (parse_number(value, 65535, &n) < 0)
                                return -EINVAL;
                        p->persistent_keepalive = (uint16_t) n;
                        p->flags |= WG_PEER_HAS_KEEPALIVE;
                } else if (strcasecmp(key, "AllowedIPs") == 0) {
                        return add_allowedips(c, p, value);
                } else
                        return -ENOKEY;
                return 0;
        }
        *what = "key outside of a section";
        return -EINVAL;
}

static int config_read(struct config *c, const char *file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
        char *line = NULL;
        size_t cap = 0;
        unsigned lineno = 0;
        int section = 0, r = 0;

        *c = (struct config) {};
        if (!f) {
                fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
                return -errno;
        }
        while (getline(&line, &cap, f) >= 0) {
                const char *what = "";
                lineno++;
                r = config_line(c, &section, line, &what);
                if (r < 0) {
                        fprintf(stderr, "%s: %s:%u: %s: %s\n", prog, file, lineno,
                                r == -ENOKEY ? "unsupported key" : "invalid value for", what);
                        break;
                }
        }
        if (line) {
                sodium_memzero(line, cap);
                free(line);
        }
        if (f != stdin)
                fclose(f);
        for (size_t i = 0; r == 0 && i < c->dev.n_peers; i++)
                if (wg_key_is_zero(c->dev.peers[i].public_key)) {
                        fprintf(stderr, "%s: %s: a [Peer] has no PublicKey\n", prog, file);
                        r = -EINVAL;
                }
        if (r < 0)
                config_free(c);
        return r;
}

/* ---- show: `wg show IFNAME dump` ------------------------------------------------------ */

static const char *maybe_key(char buf[static 45], const uint8_t key[static WG_KEY_LEN], bool have) {
        if (!have)
                return "(none)";
        wg_key_to_base64(buf, key);
        return buf;
}

static void print_endpoint(const union wg_endpoint *e) {
        char host[NI_MAXHOST], serv[NI_MAXSERV];
        socklen_t len = e->sa.sa_family == AF_INET ? sizeof(e->in) : sizeof(e->in6);

        if (e->sa.sa_family != AF_INET && e->sa.sa_family != AF_INET6) {
                fputs("(none)\t", stdout);
                return;
        }
        int r = getnameinfo(&e->sa, len, host, sizeof(host), serv, sizeof(serv),
                            NI_DGRAM | NI_NUMERICSERV | NI_NUMERICHOST);
        if (r)
                printf("%s\t", gai_strerror(r));
        else
                printf(e->sa.sa_family == AF_INET6 && strchr(host, ':') ? "[%s]:%s\t" : "%s:%s\t", host, serv);
}

static void show(const struct wg_device *d) {
        char key[45];
        bool has_priv = d->flags & WG_DEVICE_HAS_PRIVATE_KEY;

        printf("%s\t", maybe_key(key, d->private_key, has_priv));
        printf("%s\t", maybe_key(key, d->public_key, has_priv));
        printf("%u\t", d->listen_port);
        if (d->fwmark)
                printf("0x%x\n", d->fwmark);
        else
                printf("off\n");
        for (size_t i = 0; i < d->n_peers; i++) {
                const struct wg_peer *p = &d->peers[i];
                printf("%s\t", maybe_key(key, p->public_key, true));
                printf("%s\t", maybe_key(key, p->preshared_key, p->flags & WG_PEER_HAS_PRESHARED_KEY));
                print_endpoint(&p->endpoint);
                if (p->n_allowedips == 0)
                        fputs("(none)\t", stdout);
                for (size_t j = 0; j < p->n_allowedips; j++) {
                        char ip[INET6_ADDRSTRLEN];
                        inet_ntop(p->allowedips[j].family, &p->allowedips[j].ip6, ip, sizeof(ip));
                        printf("%s/%u%c", ip, p->allowedips[j].cidr, j + 1 < p->n_allowedips ? ',' : '\t');
                }
                printf("%llu\t", (unsigned long long) p->last_handshake_sec);
                printf("%" PRIu64 "\t%" PRIu64 "\t", p->rx_bytes, p->tx_bytes);
                if (p->persistent_keepalive)
                        printf("%u\n", p->persistent_keepalive);
                else
                        printf("off\n");
        }
        sodium_memzero(key, sizeof(key));
}

/* ---- Keys ---------------------------------------------------------------------------- */

static int genkey(void) {
        uint8_t k[WG_KEY_LEN];
        char b[45];

        wg_key_generate_private(k);
        wg_key_to_base64(b, k);
        puts(b);
        sodium_memzero(k, sizeof(k));
        sodium_memzero(b, sizeof(b));
        return 0;
}

static int pubkey(void) {
        char line[128], b[45];
        uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];
        int r = 0;

        if (!fgets(line, sizeof(line), stdin) || wg_key_from_base64(priv, strip(line)) < 0) {
                fprintf(stderr, "%s: pubkey: a base64 private key on stdin is required\n", prog);
                r = 1;
        } else {
                wg_key_public_from_private(pub, priv);
                wg_key_to_base64(b, pub);
                puts(b);
        }
        sodium_memzero(line, sizeof(line));
        sodium_memzero(priv, sizeof(priv));
        return r;
}

/* ---- Main ---------------------------------------------------------------------------- */

static int fail(const char *ifname, const char *what, int r, enum wg_mode mode) {
        if (r == -ENODEV && strcmp(what, "create") == 0 && mode == WG_MODE_USERSPACE)
                fprintf(stderr, "%s: %s: create: /dev/net/tun is missing (mknod /dev/net/tun c 10 200)\n",
                        prog, ifname);
        else if (r == -ENOENT && strcmp(what, "create") == 0 && mode == WG_MODE_USERSPACE)
                fprintf(stderr, "%s: %s: create: %s is not installed\n", prog, ifname,
                        getenv("WG_QUICK_USERSPACE_IMPLEMENTATION") ?: "wireguard-go");
        else
                fprintf(stderr, "%s: %s: %s: %s\n", prog, ifname, what, strerror(-r));
        return 1;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "mode", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        enum wg_mode mode = WG_MODE_AUTO;
        int c, r;

        if (sodium_init() < 0) {
                fprintf(stderr, "%s: libsodium failed to initialize\n", prog);
                return 1;
        }
        while ((c = getopt_long(argc, argv, "+m:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        if (strcmp(optarg, "auto") == 0)
                                mode = WG_MODE_AUTO;
                        else if (strcmp(optarg, "kernel") == 0)
                                mode = WG_MODE_KERNEL;
                        else if (strcmp(optarg, "userspace") == 0)
                                mode = WG_MODE_USERSPACE;
                        else {
                                usage(stderr);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        argc -= optind;
        argv += optind;
        if (argc == 1 && strcmp(argv[0], "genkey") == 0)
                return genkey();
        if (argc == 1 && strcmp(argv[0], "pubkey") == 0)
                return pubkey();
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *ifname = argv[0], *cmd = argv[1];
        bool with_file = strcmp(cmd, "set") == 0 || strcmp(cmd, "sync") == 0;
        bool with_two = strcmp(cmd, "sync-from") == 0;
        if (argc != (with_two ? 4 : with_file ? 3 : 2) ||
            (!with_file && !with_two && strcmp(cmd, "create") && strcmp(cmd, "delete") && strcmp(cmd, "show"))) {
                usage(stderr);
                return 2;
        }

        struct wg *w = NULL;
        if ((r = wg_open(&w, ifname, mode)) < 0)
                return fail(ifname, "open", r, mode);
        mode = wg_get_mode(w);

        int ret = 0;
        if (strcmp(cmd, "create") == 0) {
                if ((r = wg_create(w)) < 0)
                        ret = fail(ifname, cmd, r, mode);
        } else if (strcmp(cmd, "delete") == 0) {
                if ((r = wg_delete(w)) < 0)
                        ret = fail(ifname, cmd, r, mode);
        } else if (strcmp(cmd, "show") == 0) {
                struct wg_device *d = NULL;
                if ((r = wg_get(w, &d)) < 0)
                        ret = fail(ifname, cmd, r, mode);
                else {
                        show(d);
                        wg_device_free(d);
                }
        } else {
                struct config conf, old = {};
                struct wg_stats stats = {};
                if (config_read(&conf, argv[with_two ? 3 : 2]) < 0)
                        ret = 1;
                else if (with_two && config_read(&old, argv[2]) < 0) {
                        config_free(&conf);
                        ret = 1;
                } else {
                        struct timespec t0, t1;
                        clock_gettime(CLOCK_MONOTONIC, &t0);
                        if (strcmp(cmd, "set") == 0) {
                                conf.dev.flags |= WG_DEVICE_REPLACE_PEERS;
                                r = wg_set(w, &conf.dev, &stats);
                        } else
                                r = wg_sync(w, with_two ? &old.dev : NULL, &conf.dev, &stats);
                        clock_gettime(CLOCK_MONOTONIC, &t1);
                        if (r < 0)
                                ret = fail(ifname, cmd, r, mode);
                        else
                                fprintf(stderr, "messages=%zu peers=%zu usec=%lld\n", stats.messages, stats.peers,
                                        (long long) (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
                        config_free(&conf);
                        config_free(&old);
                }
        }
        wg_free(w);
        if (fflush(stdout) != 0)
                ret = 1;
        return ret;
}
