/* SPDX-License-Identifier: MIT */
/*
 * codervpnd — the CoderVPN tunnel for Linux.
 *
 *   codervpnd run --rpc-read-handle R --rpc-write-handle W   one manager on inherited fds
 *   codervpnd serve [--socket PATH] [--group NAME]            managers and clients on a socket
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "macro.h"
#include "server.h"
#include "speaker.h"
#include "state.h"
#include "tunnel.h"

#ifndef VERSION
#define VERSION "0.1.0"
#endif


static void usage(FILE *f) {
        fputs("Usage: codervpnd [OPTIONS] COMMAND\n"
              "\n"
              "The CoderVPN tunnel for Linux: kernel WireGuard, systemd-resolved split DNS, DERP.\n"
              "\n"
              "Commands:\n"
              "  run --rpc-read-handle FD --rpc-write-handle FD\n"
              "                     Serve one manager on two inherited file descriptors\n"
              "                     (drop-in for `coder vpn-daemon run`; also --rpc-read-fd,\n"
              "                     --rpc-write-fd, or CODER_VPN_DAEMON_RPC_READ_HANDLE and\n"
              "                     CODER_VPN_DAEMON_RPC_WRITE_HANDLE)\n"
              "  serve [--socket PATH] [--group NAME]\n"
              "                     Serve managers and desktop clients on a Unix socket\n"
              "                     (default " SERVER_DEFAULT_SOCKET ", group " SERVER_DEFAULT_GROUP ")\n"
              "  cleanup [--state PATH]\n"
              "                     Remove the link, routes and rules a crashed codervpnd left\n"
              "                     (default " NET_STATE_DEFAULT_PATH ")\n"
              "\n"
              "Options:\n"
              "  --log-target=auto|journal|stderr   Where logs go (default auto)\n"
              "  --log-level=LEVEL                  debug, info, notice, warning, error (default info)\n"
              "  -h, --help                         Show this help\n"
              "  --version                          Show the version\n", f);
}

static int parse_fd(const char *what, const char *s, int *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 0 || v > INT_MAX) {
                fprintf(stderr, "codervpnd: %s: \"%s\" is not a file descriptor number\n", what, s);
                return -EINVAL;
        }
        if (fcntl((int) v, F_GETFD) < 0) {
                fprintf(stderr, "codervpnd: %s: file descriptor %ld is not open\n", what, v);
                return -EINVAL;   /* a usage error, like a malformed number */
        }
        *ret = (int) v;
        return 0;
}

static void on_shutdown_done(struct tunnel *t, void *userdata) {
        sd_event_exit(userdata, 0);
}

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received %s; stopping", strsignal((int) si->ssi_signo));
        sd_notify(false, "STOPPING=1");
        tunnel_shutdown(userdata, on_shutdown_done, sd_event_source_get_event(source));
        return 0;
}

/* The event loop and the one tunnel lifecycle, stopped cleanly on SIGTERM/SIGINT. */
static int setup_tunnel(sd_event **ret_event, struct tunnel **ret_tunnel) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(tunnel_freep) struct tunnel *t = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* A manager that hangs up must cost us a write error, not our life. */
        signal(SIGPIPE, SIG_IGN);

        if ((r = sd_event_default(&event)) < 0)
                return log_error_errno(r, "Cannot create the event loop");
        if ((r = tunnel_new(&t, event, &tunnel_backend_unimplemented, NULL)) < 0)
                return log_error_errno(r, "Cannot set up the tunnel");
        if ((r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, t)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_signal, t)) < 0)
                return log_error_errno(r, "Cannot watch signals");
        *ret_event = TAKE_PTR(event);
        *ret_tunnel = TAKE_PTR(t);
        return 0;
}

/* `run`: the one manager is the reason to live; when it goes, so do we. */
static void on_manager_gone(struct tunnel *t, struct speaker *s, void *userdata) {
        tunnel_shutdown(t, on_shutdown_done, userdata);
}

static int cmd_run(int argc, char **argv) {
        static const struct option options[] = {
                { "rpc-read-handle", required_argument, NULL, 'r' },
                { "rpc-write-handle", required_argument, NULL, 'w' },
                { "rpc-read-fd", required_argument, NULL, 'r' },
                { "rpc-write-fd", required_argument, NULL, 'w' },
                {}
        };
        const char *read_arg = getenv("CODER_VPN_DAEMON_RPC_READ_HANDLE");
        const char *write_arg = getenv("CODER_VPN_DAEMON_RPC_WRITE_HANDLE");
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(tunnel_freep) struct tunnel *t = NULL;
        int read_fd, write_fd, c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'r': read_arg = optarg; break;
                case 'w': write_arg = optarg; break;
                default: return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "codervpnd run: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        if (!read_arg || !write_arg) {
                fputs("codervpnd run: needs --rpc-read-handle and --rpc-write-handle "
                      "(or CODER_VPN_DAEMON_RPC_READ_HANDLE/_WRITE_HANDLE)\n", stderr);
                return -EINVAL;
        }
        if ((r = parse_fd("--rpc-read-handle", read_arg, &read_fd)) < 0 ||
            (r = parse_fd("--rpc-write-handle", write_arg, &write_fd)) < 0)
                return r;
        /* One bidirectional fd (a socket) for both: the speaker wants two. */
        if (read_fd == write_fd && (write_fd = fcntl(read_fd, F_DUPFD_CLOEXEC, 3)) < 0)
                return log_error_errno(errno, "Cannot duplicate the RPC descriptor");
        fcntl(read_fd, F_SETFD, FD_CLOEXEC);
        fcntl(write_fd, F_SETFD, FD_CLOEXEC);

        if ((r = setup_tunnel(&event, &t)) < 0)
                return r;

        struct speaker *s;
        struct speaker_config config = { .roles = 1u << VPN_ROLE_TUNNEL, .description = "manager" };
        r = speaker_new(&s, event, read_fd, write_fd, &config, &tunnel_speaker_ops, t);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the RPC connection");
        tunnel_attach(t, s);
        tunnel_set_detached_callback(t, on_manager_gone, event);

        r = sd_event_loop(event);
        return r < 0 ? log_error_errno(r, "Event loop failed") : 0;
}

static int cmd_serve(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "group", required_argument, NULL, 'g' },
                {}
        };
        struct server_config config = { .path = SERVER_DEFAULT_SOCKET, .group = SERVER_DEFAULT_GROUP };
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(tunnel_freep) struct tunnel *t = NULL;
        _cleanup_(server_freep) struct server *server = NULL;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's': config.path = optarg; break;
                case 'g': config.group = *optarg ? optarg : NULL; break;
                default: return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "codervpnd serve: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        if ((r = setup_tunnel(&event, &t)) < 0)
                return r;
        if ((r = server_new(&server, event, t, &config)) < 0)
                return r;

        sd_notify(false, "READY=1\nSTATUS=Waiting for a manager");
        r = sd_event_loop(event);
        return r < 0 ? log_error_errno(r, "Event loop failed") : 0;
}

static int cmd_cleanup(int argc, char **argv) {
        static const struct option options[] = {
                { "state", required_argument, NULL, 's' },
                {}
        };
        const char *path = NET_STATE_DEFAULT_PATH;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's': path = optarg; break;
                default: return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "codervpnd cleanup: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        r = net_state_cleanup(path);
        if (r < 0)
                return log_error_errno(r, "Cannot clean up after %s", path);
        if (r > 0)
                log_notice("Removed what %s recorded", path);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "log-target", required_argument, NULL, 't' },
                { "log-level", required_argument, NULL, 'l' },
                {}
        };
        int target = LOG_TARGET_AUTO, level = LOG_INFO, c;

        /* Global options stop at the command; the command parses the rest. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'h': usage(stdout); return 0;
                case 'V': puts("codervpnd " VERSION); return 0;
                case 't':
                        if ((target = log_target_from_string(optarg)) < 0) {
                                fprintf(stderr, "codervpnd: unknown log target \"%s\"\n", optarg);
                                return 2;
                        }
                        break;
                case 'l':
                        if ((level = log_priority_from_string(optarg)) < 0) {
                                fprintf(stderr, "codervpnd: unknown log level \"%s\"\n", optarg);
                                return 2;
                        }
                        break;
                default: usage(stderr); return 2;
                }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        log_open((enum log_target) target, level);

        const char *cmd = argv[optind];
        int r;
        if (strcmp(cmd, "run") == 0)
                r = cmd_run(argc - optind, argv + optind);
        else if (strcmp(cmd, "serve") == 0)
                r = cmd_serve(argc - optind, argv + optind);
        else if (strcmp(cmd, "cleanup") == 0)
                r = cmd_cleanup(argc - optind, argv + optind);
        else {
                fprintf(stderr, "codervpnd: unknown command \"%s\" (try --help)\n", cmd);
                return 2;
        }
        return r == -EINVAL ? 2 : r < 0 ? 1 : 0;
}
