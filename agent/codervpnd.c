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
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "dnsapply.h"
#include "engine.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "speaker.h"
#include "standalone.h"
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
              "  up [--config FILE] [--socket PATH | --no-socket] [--group NAME]\n"
              "                     Run standalone in the foreground from FILE (codervpnd.conf(5))\n"
              "                     and CODERVPND_* variables: WireGuard peers, DNS names, DERP;\n"
              "                     SIGHUP reloads, SIGTERM removes everything and exits\n"
              "  serve --config FILE [--network-by=codervpnd|manager] ...\n"
              "                     Serve the socket; a Start naming file://FILE runs standalone;\n"
              "                     with manager, the manager applies the network settings\n"
              "  cleanup [--state PATH]\n"
              "                     Remove the link, routes, rules and resolv.conf changes a crashed\n"
              "                     codervpnd left (default: " NET_STATE_DEFAULT_PATH " and every\n"
              "                     " ENGINE_RUNTIME_DIR "/IFNAME.state)\n"
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

/*
 * STATUS= for `systemctl status`: what the tunnel is doing. Checked after every event
 * (a post source), sent only when it changes; nothing is sent without NOTIFY_SOCKET.
 */
static bool status_shutting_down;

static int on_post_status(sd_event_source *source, void *userdata) {
        static int last_state = -1;
        static size_t last_n = (size_t) -1;
        struct tunnel *t = userdata;
        enum tunnel_state state = tunnel_get_state(t);
        size_t n = tunnel_n_connections(t);

        if (status_shutting_down || ((int) state == last_state && n == last_n))
                return 0;
        last_state = (int) state;
        last_n = n;
        switch (state) {
        case TUNNEL_STOPPED:
                if (n == 0)
                        sd_notify(false, "STATUS=Waiting for a manager");
                else
                        sd_notifyf(false, "STATUS=Tunnel stopped; %zu connection%s", n, n == 1 ? "" : "s");
                break;
        case TUNNEL_STARTING:
                sd_notify(false, "STATUS=Starting the tunnel");
                break;
        case TUNNEL_STARTED:
                sd_notifyf(false, "STATUS=Tunnel started; %zu connection%s", n, n == 1 ? "" : "s");
                break;
        case TUNNEL_STOPPING:
                sd_notify(false, "STATUS=Stopping the tunnel");
                break;
        }
        return 0;
}

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received %s; stopping", strsignal((int) si->ssi_signo));
        status_shutting_down = true;
        sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        tunnel_shutdown(userdata, on_shutdown_done, sd_event_source_get_event(source));
        return 0;
}

static int on_reload(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received SIGHUP; reloading the configuration");
        sd_notify(false, "RELOADING=1");
        standalone_reload(userdata);
        sd_notify(false, "READY=1");
        return 0;
}

/*
 * The event loop and the one tunnel lifecycle, stopped cleanly on SIGTERM/SIGINT. With
 * @standalone, the tunnel runs the engine from its configuration and SIGHUP reloads it.
 */
static int setup_tunnel(sd_event **ret_event, struct tunnel **ret_tunnel, struct standalone *standalone) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(tunnel_freep) struct tunnel *t = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* A manager that hangs up must cost us a write error, not our life. */
        signal(SIGPIPE, SIG_IGN);

        if ((r = sd_event_default(&event)) < 0)
                return log_error_errno(r, "Cannot create the event loop");
        if (standalone)
                r = tunnel_new(&t, event, &standalone_backend, standalone);
        else
                r = tunnel_new(&t, event, &tunnel_backend_unimplemented, NULL);
        if (r < 0 || (standalone && (r = tunnel_set_config_url(t, standalone_url(standalone))) < 0))
                return log_error_errno(r, "Cannot set up the tunnel");
        if (standalone && (r = sd_event_add_signal(event, NULL, SIGHUP, on_reload, standalone)) < 0)
                return log_error_errno(r, "Cannot watch SIGHUP");
        if ((r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, t)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_signal, t)) < 0)
                return log_error_errno(r, "Cannot watch signals");
        if ((r = sd_event_add_post(event, NULL, on_post_status, t)) < 0)
                return log_error_errno(r, "Cannot set up status notifications");
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

        if ((r = setup_tunnel(&event, &t, NULL)) < 0)
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

/*
 * `serve` and `up`: the control socket, and with a configuration the standalone engine;
 * `up` starts it at once and runs in the foreground until SIGTERM (or a failed start).
 */
static int cmd_serve_or_up(int argc, char **argv, bool up) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "group", required_argument, NULL, 'g' },
                { "config", required_argument, NULL, 'c' },
                { "no-socket", no_argument, NULL, 'n' },
                { "network-by", required_argument, NULL, 'N' },
                {}
        };
        struct server_config config = { .path = SERVER_DEFAULT_SOCKET, .group = SERVER_DEFAULT_GROUP };
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(standalone_freep) struct standalone *standalone = NULL;
        _cleanup_(tunnel_freep) struct tunnel *t = NULL;
        _cleanup_(server_freep) struct server *server = NULL;
        const char *config_path = NULL;
        bool socket = true, by_manager = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's': config.path = optarg; break;
                case 'g': config.group = *optarg ? optarg : NULL; break;
                case 'c': config_path = optarg; break;
                case 'n': socket = false; break;
                case 'N':
                        if (strcmp(optarg, "manager") && strcmp(optarg, "codervpnd")) {
                                fprintf(stderr, "codervpnd %s: --network-by wants codervpnd or manager\n", argv[0]);
                                return -EINVAL;
                        }
                        by_manager = strcmp(optarg, "manager") == 0;
                        break;
                default: return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "codervpnd %s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
                return -EINVAL;
        }
        if (!up && !socket) {
                fputs("codervpnd serve: --no-socket leaves nothing to serve\n", stderr);
                return -EINVAL;
        }
        if (up && by_manager) {
                fputs("codervpnd up: --network-by=manager needs a manager: use serve --config\n", stderr);
                return -EINVAL;
        }
        if (config_path && config_path[0] != '/') {
                fprintf(stderr, "codervpnd %s: --config wants an absolute path (SIGHUP reloads it)\n", argv[0]);
                return -EINVAL;
        }
        /* `up` without --config runs from CODERVPND_* variables alone (containers). */
        if (up || config_path) {
                if ((r = sd_event_default(&event)) < 0)
                        return log_error_errno(r, "Cannot create the event loop");
                if ((r = standalone_new(&standalone, event, config_path, up, by_manager)) < 0)
                        return log_error_errno(r, "Cannot set up standalone mode");
                event = sd_event_unref(event);
        }
        if ((r = setup_tunnel(&event, &t, standalone)) < 0)
                return r;
        if (socket && (r = server_new(&server, event, t, &config)) < 0)
                return r;
        if (up && (r = tunnel_start_local(t)) < 0)
                return log_error_errno(r, "Cannot start");

        sd_notify(false, "READY=1\nSTATUS=Waiting for a manager");
        r = sd_event_loop(event);
        if (r > 0)
                return -ECANCELED;   /* the failed start was logged where it failed */
        return r < 0 ? log_error_errno(r, "Event loop failed") : 0;
}

/* One state file, and the resolv.conf of the interface it names (standalone ones only). */
static int cleanup_one(const char *path, const char *ifname) {
        _cleanup_free_ char *error = NULL;
        int r = net_state_cleanup(path), k;

        if (r < 0)
                log_error_errno(r, "Cannot clean up after %s", path);
        else if (r > 0)
                log_notice("Removed what %s recorded", path);
        if (ifname && (k = dnsapply_restore(ifname, &error)) != 0) {
                if (k > 0)
                        log_notice("Restored /etc/resolv.conf changed for %s", ifname);
                else
                        log_error("Cannot restore /etc/resolv.conf: %s", error ?: strerror(-k));
                r = r < 0 ? r : k < 0 ? k : r;
        }
        return r;
}

static int cmd_cleanup(int argc, char **argv) {
        static const struct option options[] = {
                { "state", required_argument, NULL, 's' },
                {}
        };
        const char *path = NULL;
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
        if (path) {
                _cleanup_free_ char *ifname = engine_state_ifname(path);
                return cleanup_one(path, ifname);
        }
        /* Everything any instance left: the default state file and every standalone one. */
        r = cleanup_one(NET_STATE_DEFAULT_PATH, NULL);
        _cleanup_(globfree) glob_t g = {};
        if (glob(ENGINE_RUNTIME_DIR "/*.state", 0, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++) {
                        _cleanup_free_ char *ifname = engine_state_ifname(g.gl_pathv[i]);
                        int k = cleanup_one(g.gl_pathv[i], ifname);
                        r = r < 0 ? r : k;
                }
        return r < 0 ? r : 0;
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
                r = cmd_serve_or_up(argc - optind, argv + optind, false);
        else if (strcmp(cmd, "up") == 0)
                r = cmd_serve_or_up(argc - optind, argv + optind, true);
        else if (strcmp(cmd, "cleanup") == 0)
                r = cmd_cleanup(argc - optind, argv + optind);
        else {
                fprintf(stderr, "codervpnd: unknown command \"%s\" (try --help)\n", cmd);
                return 2;
        }
        return r == -EINVAL ? 2 : r < 0 ? 1 : 0;
}
