/* SPDX-License-Identifier: MIT */
/*
 * resolvedtool — drives resolved/resolved_link for tests:
 *   resolvedtool IFNAME|IFINDEX apply FILE
 * FILE is a binary vpn.NetworkSettingsRequest (only dns_settings is used). The
 * settings are applied to the link through systemd-resolved on the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS), then re-applied whenever resolved restarts. Prints
 * "applied" after each successful (re)application and "error: MESSAGE" on
 * failure. "quit" on stdin (or EOF, or SIGTERM) reverts the link ("reverted")
 * and exits: 0 when the revert succeeded.
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "netsettings.h"
#include "resolved.h"

#define REQUEST_MAX (1u << 20)

struct tool {
        sd_event *event;
        struct resolved_link *link;
        char line[256];
        size_t line_len;
        bool quitting;
        int exit_code;
};

static void handler(struct resolved_link *l, enum resolved_link_op op, int r, const char *error, void *userdata) {
        struct tool *t = userdata;

        if (op == RESOLVED_LINK_REVERT) {
                if (r < 0)
                        printf("error: %s\n", error);
                else
                        printf("reverted\n");
                fflush(stdout);
                t->exit_code = r < 0 ? 1 : 0;
                sd_event_exit(t->event, 0);
                return;
        }
        if (r < 0)
                printf("error: %s\n", error);
        else
                printf("applied\n");
        fflush(stdout);
}

static void quit(struct tool *t) {
        if (t->quitting)
                return;
        t->quitting = true;
        resolved_link_revert(t->link);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct tool *t = userdata;
        char buf[256];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                quit(t);
                return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
                if (buf[i] != '\n') {
                        if (t->line_len < sizeof(t->line) - 1)
                                t->line[t->line_len++] = buf[i];
                        continue;
                }
                t->line[t->line_len] = 0;
                t->line_len = 0;
                if (strcmp(t->line, "quit") == 0)
                        quit(t);
                else if (t->line[0]) {
                        printf("error: unknown command \"%s\"\n", t->line);
                        fflush(stdout);
                }
        }
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        quit(userdata);
        return 0;
}

static int load(const char *path, struct dns_config *c) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ uint8_t *buf = malloc(REQUEST_MAX);
        _cleanup_free_ char *error = NULL;
        Vpn__NetworkSettingsRequest *req;
        size_t len;
        int r;

        if (!f || !buf) {
                fprintf(stderr, "resolvedtool: %s: %m\n", path);
                return -errno;
        }
        len = fread(buf, 1, REQUEST_MAX, f);
        req = vpn__network_settings_request__unpack(NULL, len, buf);
        if (!req) {
                fprintf(stderr, "resolvedtool: %s: not a NetworkSettingsRequest\n", path);
                return -EINVAL;
        }
        r = netsettings_to_dns(req->dns_settings, c, &error);
        vpn__network_settings_request__free_unpacked(req, NULL);
        if (r < 0) {
                printf("error: %s\n", error ? error : strerror(-r));
                fflush(stdout);
        }
        return r;
}

int main(int argc, char **argv) {
        _cleanup_(dns_config_free) struct dns_config c = {};
        struct tool t = { .exit_code = 1 };
        sd_bus *bus = NULL;
        char *end;
        int ifindex, r;

        if (argc != 4 || strcmp(argv[2], "apply") != 0) {
                fprintf(stderr, "usage: resolvedtool IFNAME|IFINDEX apply FILE\n");
                return 2;
        }
        ifindex = (int) strtol(argv[1], &end, 10);
        if (*end || ifindex <= 0)
                ifindex = (int) if_nametoindex(argv[1]);
        if (ifindex <= 0) {
                fprintf(stderr, "resolvedtool: no link %s\n", argv[1]);
                return 1;
        }
        if (load(argv[3], &c) < 0)
                return 1;

        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        if ((r = sd_event_default(&t.event)) < 0 || (r = sd_bus_open_system(&bus)) < 0 ||
            (r = sd_bus_attach_event(bus, t.event, 0)) < 0) {
                fprintf(stderr, "resolvedtool: system bus: %s\n", strerror(-r));
                return 1;
        }
        if ((r = sd_event_add_signal(t.event, NULL, SIGTERM, on_signal, &t)) < 0 ||
            (r = sd_event_add_signal(t.event, NULL, SIGINT, on_signal, &t)) < 0 ||
            (r = sd_event_add_io(t.event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, &t)) < 0) {
                fprintf(stderr, "resolvedtool: event loop: %s\n", strerror(-r));
                return 1;
        }
        if ((r = resolved_link_new(&t.link, bus, t.event, ifindex, argv[1], handler, &t)) < 0 ||
            (r = resolved_link_apply(t.link, &c)) < 0) {
                fprintf(stderr, "resolvedtool: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_loop(t.event);
        resolved_link_free(t.link);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(t.event);
        return r < 0 ? 1 : t.exit_code;
}
