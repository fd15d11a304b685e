/* SPDX-License-Identifier: MIT */
/*
 * derpclient-tool: agent/derpclient on the command line, for tests.
 *
 *   derpclient-tool --map FILE --key-file F [--home N] [--force-websocket] [--fwmark N]
 *                   [--ca-file F] [--idle-ms N] [--backoff-min-ms N] [--backoff-max-ms N]
 *                   [--backoff-reset-ms N] [--ping-ms N] [--verbose]
 *
 * FILE is a DERP map (tailcfg.DERPMap JSON); F a private key (64 hex or privkey:<hex>).
 * Prints on stdout:
 *   home N                          the home region, at start
 *   up N | down N                   a region's connection became ready / went away
 *   recv N SRCHEX DATAHEX           a packet via region N
 *   gone N KEYHEX REASON            PeerGone via region N
 *   status N ready|down LATENCY_US  answer to `status N`
 *   error CMD: MESSAGE              a command failed
 * Commands on stdin: `send N DSTHEX DATAHEX` (N 0 = home), `status N`, `quit` (or EOF).
 * Logs (the client's own, e.g. reconnect delays) go to stderr. Exit status 0, 1 on
 * setup errors, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <systemd/sd-event.h>

#include "derpclient.h"
#include "log.h"
#include "macro.h"
#include "toolcmd.h"

static const char *prog = "derpclient-tool";

struct tool {
        sd_event *event;
        struct derp_client *client;
        struct line_reader in;
};

static void on_recv(struct derp_client *c, int region, const uint8_t src[DERP_KEY_LEN],
                    const uint8_t *pkt, size_t len, void *ud) {
        printf("recv %d ", region);
        tool_print_hex(src, DERP_KEY_LEN);
        printf(" ");
        tool_print_hex(pkt, len);
        printf("\n");
        fflush(stdout);
}

static void on_gone(struct derp_client *c, int region, const uint8_t key[DERP_KEY_LEN],
                    uint8_t reason, void *ud) {
        printf("gone %d ", region);
        tool_print_hex(key, DERP_KEY_LEN);
        printf(" %u\n", reason);
        fflush(stdout);
}

static void on_region(struct derp_client *c, int region, bool ready, void *ud) {
        printf("%s %d\n", ready ? "up" : "down", region);
        fflush(stdout);
}

static void command(char *line, void *ud) {
        struct tool *t = ud;
        char *cmd = strtok(line, " \t\r");

        if (!cmd)
                return;
        if (strcmp(cmd, "quit") == 0) {
                sd_event_exit(t->event, 0);
        } else if (strcmp(cmd, "status") == 0) {
                char *reg = strtok(NULL, " \t\r");
                int id = reg ? atoi(reg) : 0;
                uint64_t lat;
                bool ready = derp_client_region_ready(t->client, id, &lat);
                printf("status %d %s %llu\n", id, ready ? "ready" : "down", (unsigned long long) lat);
        } else if (strcmp(cmd, "send") == 0) {
                char *reg = strtok(NULL, " \t\r"), *dst = strtok(NULL, " \t\r");
                char *data = strtok(NULL, " \t\r");
                static uint8_t buf[DERP_MAX_PACKET_SIZE + 1];
                uint8_t key[DERP_KEY_LEN];
                size_t kl, dl = 0;
                if (!reg || !dst || tool_unhex(dst, key, sizeof(key), &kl) < 0 || kl != DERP_KEY_LEN ||
                    (data && tool_unhex(data, buf, sizeof(buf), &dl) < 0)) {
                        printf("error send: usage: send REGION DSTHEX DATAHEX\n");
                } else {
                        int r = derp_client_send(t->client, atoi(reg), key, buf, dl);
                        if (r < 0)
                                printf("error send: %s\n", strerror(-r));
                }
        } else {
                printf("error %s: unknown command\n", cmd);
        }
        fflush(stdout);
}

static uint64_t ms_arg(const char *s) {
        return strtoull(s, NULL, 10) * 1000ULL;
}

#define USAGE "usage: %s --map FILE --key-file F [--home N] [--force-websocket] [--fwmark N]\n" \
              "       [--ca-file F] [--idle-ms N] [--backoff-min-ms N] [--backoff-max-ms N]\n"  \
              "       [--backoff-reset-ms N] [--ping-ms N] [--verbose]\n"

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "map", required_argument, NULL, 'M' },
                { "key-file", required_argument, NULL, 'k' },
                { "home", required_argument, NULL, 'H' },
                { "force-websocket", no_argument, NULL, 'w' },
                { "fwmark", required_argument, NULL, 'm' },
                { "ca-file", required_argument, NULL, 'C' },
                { "idle-ms", required_argument, NULL, 'i' },
                { "backoff-min-ms", required_argument, NULL, 'b' },
                { "backoff-max-ms", required_argument, NULL, 'B' },
                { "backoff-reset-ms", required_argument, NULL, 'R' },
                { "ping-ms", required_argument, NULL, 'p' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static struct tool t;
        struct derp_client_config cfg = {};
        const char *key_file = NULL, *map_file = NULL;
        _cleanup_free_ char *json = NULL;
        struct derp_map *map = NULL;
        char err[DERP_MAP_ERROR_MAX] = "";
        size_t json_len;
        int c, r, level = LOG_INFO;

        while ((c = getopt_long(argc, argv, "hv", opts, NULL)) >= 0) {
                switch (c) {
                case 'M': map_file = optarg; break;
                case 'k': key_file = optarg; break;
                case 'H': cfg.home_region = atoi(optarg); break;
                case 'w': cfg.force_websocket = true; break;
                case 'm': cfg.fwmark = (uint32_t) strtoul(optarg, NULL, 0); break;
                case 'C': cfg.ca_file = optarg; break;
                case 'i': cfg.idle_usec = ms_arg(optarg); break;
                case 'b': cfg.backoff_min_usec = ms_arg(optarg); break;
                case 'B': cfg.backoff_max_usec = ms_arg(optarg); break;
                case 'R': cfg.backoff_reset_usec = ms_arg(optarg); break;
                case 'p': cfg.ping_usec = ms_arg(optarg); break;
                case 'v': level = LOG_DEBUG; break;
                case 'h': printf(USAGE, prog); return 0;
                default: return 2;
                }
        }
        if (optind != argc || !key_file || !map_file) {
                fprintf(stderr, USAGE, prog);
                return 2;
        }
        log_open(LOG_TARGET_STDERR, level);
        r = tool_read_key(key_file, cfg.priv, sizeof(cfg.priv));
        if (r < 0) {
                fprintf(stderr, "%s: cannot read key from %s: %s\n", prog, key_file, strerror(-r));
                return 1;
        }
        r = tool_read_file(map_file, &json, &json_len);
        if (r < 0) {
                fprintf(stderr, "%s: cannot read %s: %s\n", prog, map_file, strerror(-r));
                return 1;
        }
        r = derp_map_parse(json, json_len, &map, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "%s: bad DERP map: %s\n", prog, err[0] ? err : strerror(-r));
                return 1;
        }
        r = sd_event_default(&t.event);
        if (r < 0) {
                fprintf(stderr, "%s: sd_event: %s\n", prog, strerror(-r));
                derp_map_free(map);
                return 1;
        }
        static const struct derp_client_callbacks cb = {
                .recv = on_recv, .peer_gone = on_gone, .region_changed = on_region,
        };
        r = derp_client_new(t.event, &cfg, map, &cb, &t, &t.client);
        sodium_memzero(cfg.priv, sizeof(cfg.priv));
        derp_map_free(map);
        if (r < 0) {
                fprintf(stderr, "%s: derp_client_new: %s\n", prog, strerror(-r));
                sd_event_unref(t.event);
                return 1;
        }
        printf("home %d\n", derp_client_home_region(t.client));
        fflush(stdout);
        r = line_reader_start(&t.in, t.event, STDIN_FILENO, 2 * (DERP_MAX_PACKET_SIZE + 256),
                              LINE_READER_EXIT_AT_EOF | LINE_READER_REPORT_OVERLONG, command, &t);
        if (r < 0) {
                fprintf(stderr, "%s: stdin: %s\n", prog, strerror(-r));
        } else {
                r = sd_event_loop(t.event);
                line_reader_done(&t.in);
        }
        derp_client_free(t.client);
        sd_event_unref(t.event);
        return r < 0 ? 1 : r;
}
