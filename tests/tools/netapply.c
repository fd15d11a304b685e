/* SPDX-License-Identifier: MIT */
/*
 * netapply — drives agent/tunnelnet for tests: creates the WireGuard link, then
 * reads commands on stdin, one per line, answering each on stdout:
 *   apply FILE   merge and apply the binary NetworkSettingsRequest in FILE
 *                -> "ok added=N removed=M ipv6_skipped=0|1" or "error: MESSAGE"
 *   quit         tear everything down and exit 0 (as does SIGTERM or EOF)
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "macro.h"
#include "tunnelnet.h"

#define REQUEST_MAX (16u << 20)

static int apply_file(struct tunnelnet *t, const char *path) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ uint8_t *buf = malloc(REQUEST_MAX);
        _cleanup_free_ char *error = NULL;
        size_t len;

        if (!f || !buf) {
                printf("error: cannot read %s: %s\n", path, strerror(errno));
                return 0;
        }
        len = fread(buf, 1, REQUEST_MAX, f);
        Vpn__NetworkSettingsRequest *req = vpn__network_settings_request__unpack(NULL, len, buf);
        if (!req) {
                printf("error: %s is not a NetworkSettingsRequest\n", path);
                return 0;
        }
        int r = tunnelnet_apply(t, req, &error);
        vpn__network_settings_request__free_unpacked(req, NULL);
        if (r < 0)
                printf("error: %s\n", error ?: strerror(-r));
        else {
                const struct net_result *res = tunnelnet_last_result(t);
                printf("ok added=%zu removed=%zu ipv6_skipped=%d\n", res->added, res->removed, res->ipv6_skipped);
        }
        return 0;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct tunnelnet *t = userdata;
        char line[4096];

        if (!fgets(line, sizeof(line), stdin) || strcmp(line, "quit\n") == 0) {
                sd_event_exit(sd_event_source_get_event(s), 0);
                return 0;
        }
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "apply ", 6) == 0)
                apply_file(t, line + 6);
        else
                printf("error: unknown command \"%s\"\n", line);
        fflush(stdout);
        return 0;
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        sd_event_exit(sd_event_source_get_event(s), 0);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "mode", required_argument, NULL, 'm' },
                { "state", required_argument, NULL, 's' },
                { "table", required_argument, NULL, 't' },
                { "priority", required_argument, NULL, 'p' },
                { "fwmark", required_argument, NULL, 'f' },
                {}
        };
        struct tunnelnet_config config = {
                .mode = WG_MODE_AUTO,
                .policy = { .table = NET_DEFAULT_TABLE, .rule_priority = NET_DEFAULT_RULE_PRIORITY, .fwmark = 0x1d4 },
                .state_path = "/run/codervpnd/network.state",
        };
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(tunnelnet_freep) struct tunnelnet *t = NULL;
        const char *error = NULL;
        sigset_t mask;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                        config.mode = strcmp(optarg, "kernel") == 0 ? WG_MODE_KERNEL :
                                      strcmp(optarg, "userspace") == 0 ? WG_MODE_USERSPACE : WG_MODE_AUTO;
                        break;
                case 's': config.state_path = optarg; break;
                case 't': config.policy.table = (uint32_t) strtoul(optarg, NULL, 0); break;
                case 'p': config.policy.rule_priority = (uint32_t) strtoul(optarg, NULL, 0); break;
                case 'f': config.policy.fwmark = (uint32_t) strtoul(optarg, NULL, 0); break;
                default: return 2;
                }
        if (optind + 1 != argc) {
                fprintf(stderr, "usage: netapply [--mode M] [--state PATH] [--table N] [--priority N] [--fwmark N] IFNAME\n");
                return 2;
        }
        config.ifname = argv[optind];
        log_open(LOG_TARGET_STDERR, LOG_DEBUG);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((r = sd_event_default(&event)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGTERM, on_term, NULL)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_term, NULL)) < 0)
                return 1;
        r = tunnelnet_new(&t, event, &config, &error);
        if (r < 0) {
                printf("error: %s: %s\n", error ?: "setup", strerror(-r));
                return 1;
        }
        if ((r = sd_event_add_io(event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, t)) < 0)
                return 1;
        printf("ready %s %s\n", config.ifname, wg_mode_name(wg_get_mode(tunnelnet_wg(t))));
        fflush(stdout);
        return sd_event_loop(event) < 0;
}
