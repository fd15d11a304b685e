/* SPDX-License-Identifier: MIT */
/*
 * derpconn-tool: agent/derpconn on the command line, for tests.
 *
 *   derpconn-tool URL --key-file F [--fwmark N] [--read-timeout-ms N] [--handshake-timeout-ms N]
 *                 [--websocket] [--ca-file F] [--insecure] [--cert-name NAME] [--connect-host ADDR]
 *
 * F holds a private key as 64 hex digits or privkey:<hex>. Prints on stdout:
 *   ready pubkey=<hex>          handshake done
 *   recv SRCHEX DATAHEX         every received packet
 *   gone KEYHEX REASON          PeerGone (0 disconnected, 1 not here)
 *   pong RTT_US                 answer to `ping`
 *   health TEXT | health-clear, restarting MS MS, error CMD: MESSAGE (command failed)
 * Commands on stdin, one a line: `send DSTHEX DATAHEX`, `ping`, `quit` (or EOF).
 * Exit status: 0 after quit, 1 when the connection closes or fails (message on stderr),
 * 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "derpconn.h"
#include "macro.h"
#include "toolcmd.h"

static const char *prog = "derpconn-tool";

struct tool {
        sd_event *event;
        struct derp_conn *conn;
        struct line_reader in;
};

static void on_ready(struct derp_conn *c, const struct derp_server_info *info, void *ud) {
        printf("ready pubkey=");
        tool_print_hex(derp_conn_public_key(c), DERP_KEY_LEN);
        printf("\n");
        fflush(stdout);
}

static void on_recv(struct derp_conn *c, const uint8_t src[DERP_KEY_LEN], const uint8_t *pkt,
                    size_t len, void *ud) {
        printf("recv ");
        tool_print_hex(src, DERP_KEY_LEN);
        printf(" ");
        tool_print_hex(pkt, len);
        printf("\n");
        fflush(stdout);
}

static void on_gone(struct derp_conn *c, const uint8_t key[DERP_KEY_LEN], uint8_t reason,
                    void *ud) {
        printf("gone ");
        tool_print_hex(key, DERP_KEY_LEN);
        printf(" %u\n", reason);
        fflush(stdout);
}

static void on_health(struct derp_conn *c, const char *text, void *ud) {
        if (text)
                printf("health %s\n", text);
        else
                printf("health-clear\n");
        fflush(stdout);
}

static void on_restarting(struct derp_conn *c, uint32_t a, uint32_t b, void *ud) {
        printf("restarting %u %u\n", a, b);
        fflush(stdout);
}

static void on_pong(struct derp_conn *c, uint64_t rtt, void *ud) {
        printf("pong %llu\n", (unsigned long long) rtt);
        fflush(stdout);
}

static void on_closed(struct derp_conn *c, int error, const char *message, void *ud) {
        struct tool *t = ud;
        fprintf(stderr, "%s: connection closed: %s (%s)\n", prog, message, strerror(-error));
        printf("closed %s\n", message);
        fflush(stdout);
        sd_event_exit(t->event, 1);
}

static void command(char *line, void *ud) {
        struct tool *t = ud;
        char *cmd = strtok(line, " \t\r");
        int r;

        if (!cmd)
                return;
        if (strcmp(cmd, "quit") == 0) {
                sd_event_exit(t->event, 0);
        } else if (strcmp(cmd, "ping") == 0) {
                r = derp_conn_ping(t->conn);
                if (r < 0)
                        printf("error ping: %s\n", strerror(-r));
        } else if (strcmp(cmd, "send") == 0) {
                char *dst = strtok(NULL, " \t\r"), *data = strtok(NULL, " \t\r");
                static uint8_t buf[DERP_MAX_PACKET_SIZE + 1];
                uint8_t key[DERP_KEY_LEN];
                size_t kl, dl = 0;
                if (!dst || tool_unhex(dst, key, sizeof(key), &kl) < 0 || kl != DERP_KEY_LEN ||
                    (data && tool_unhex(data, buf, sizeof(buf), &dl) < 0)) {
                        printf("error send: usage: send DSTHEX DATAHEX\n");
                } else {
                        r = derp_conn_send(t->conn, key, buf, dl);
                        if (r < 0)
                                printf("error send: %s\n", strerror(-r));
                }
        } else {
                printf("error %s: unknown command\n", cmd);
        }
        fflush(stdout);
}

#define USAGE "usage: %s URL --key-file F [--fwmark N] [--read-timeout-ms N] [--handshake-timeout-ms N]\n" \
              "       [--websocket] [--ca-file F] [--insecure] [--cert-name NAME] [--connect-host ADDR]\n"

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "key-file", required_argument, NULL, 'k' },
                { "fwmark", required_argument, NULL, 'm' },
                { "read-timeout-ms", required_argument, NULL, 't' },
                { "handshake-timeout-ms", required_argument, NULL, 'T' },
                { "websocket", no_argument, NULL, 'w' },
                { "ca-file", required_argument, NULL, 'C' },
                { "insecure", no_argument, NULL, 'I' },
                { "cert-name", required_argument, NULL, 'N' },
                { "connect-host", required_argument, NULL, 'H' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static struct tool t;
        struct derp_conn_config cfg = {};
        const char *key_file = NULL;
        char err[512] = "";
        int c, r;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'k': key_file = optarg; break;
                case 'm': cfg.fwmark = (uint32_t) strtoul(optarg, NULL, 0); break;
                case 't': cfg.read_timeout_usec = strtoull(optarg, NULL, 10) * 1000ULL; break;
                case 'T': cfg.handshake_timeout_usec = strtoull(optarg, NULL, 10) * 1000ULL; break;
                case 'w': cfg.websocket = true; break;
                case 'C': cfg.ca_file = optarg; break;
                case 'I': cfg.insecure = true; break;
                case 'N': cfg.cert_name = optarg; break;
                case 'H': cfg.connect_host = optarg; break;
                case 'h':
                        printf(USAGE, prog);
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1 || !key_file) {
                fprintf(stderr, USAGE, prog);
                return 2;
        }
        cfg.url = argv[optind];
        r = tool_read_key(key_file, cfg.priv, sizeof(cfg.priv));
        if (r < 0) {
                fprintf(stderr, "%s: cannot read key from %s: %s\n", prog, key_file, strerror(-r));
                return 1;
        }
        r = sd_event_default(&t.event);
        if (r < 0) {
                fprintf(stderr, "%s: sd_event: %s\n", prog, strerror(-r));
                return 1;
        }
        static const struct derp_conn_callbacks cb = {
                .ready = on_ready, .recv = on_recv, .peer_gone = on_gone, .health = on_health,
                .restarting = on_restarting, .pong = on_pong, .closed = on_closed,
        };
        r = derp_conn_new(t.event, &cfg, &cb, &t, &t.conn, err, sizeof(err));
        explicit_bzero(cfg.priv, sizeof(cfg.priv));
        if (r < 0) {
                fprintf(stderr, "%s: %s (%s)\n", prog, err[0] ? err : "connect failed", strerror(-r));
                sd_event_unref(t.event);
                return 1;
        }
        r = line_reader_start(&t.in, t.event, STDIN_FILENO, 2 * (DERP_MAX_PACKET_SIZE + 256),
                              LINE_READER_EXIT_AT_EOF | LINE_READER_REPORT_OVERLONG, command, &t);
        if (r < 0) {
                fprintf(stderr, "%s: stdin: %s\n", prog, strerror(-r));
                derp_conn_free(t.conn);
                sd_event_unref(t.event);
                return 1;
        }
        r = sd_event_loop(t.event);
        line_reader_done(&t.in);
        derp_conn_free(t.conn);
        sd_event_unref(t.event);
        return r < 0 ? 1 : r;
}
