/* SPDX-License-Identifier: MIT */
/*
 * codervpnctl — talk to codervpnd on its control socket.
 *
 * start/stop/peers/watch speak the manager role (like Coder Desktop's managers);
 * status speaks the client role, whose Status carries the lifecycle.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "macro.h"
#include "message.h"
#include "peers.h"
#include "server.h"
#include "speaker.h"

#define TOKEN_MAX 4096
#define HEADERS_MAX 32

enum command { CMD_STATUS, CMD_START, CMD_STOP, CMD_PEERS, CMD_WATCH, CMD_PUBKEY };

struct ctl {
        enum command command;
        bool json;
        const char *socket_path;
        unsigned long timeout_sec;
        unsigned long watch_count;   /* 0: until interrupted */
        unsigned long watched;

        const char *url;
        char *token;
        char *config_url;            /* start --config: file://PATH */
        const char *ifname;          /* pubkey --interface */
        Vpn__StartRequest__Header headers[HEADERS_MAX];
        Vpn__StartRequest__Header *header_ptrs[HEADERS_MAX];
        size_t n_headers;

        sd_event *event;
        bool ready;   /* the handshake went through */
        bool done;
        int exit_code;
};

static void usage(FILE *f) {
        fputs("Usage: codervpnctl [OPTIONS] COMMAND\n"
              "\n"
              "Control codervpnd, the CoderVPN tunnel.\n"
              "\n"
              "Commands:\n"
              "  status                    Lifecycle (stopped, starting, started, stopping), last error, peers\n"
              "  start --url URL --token-file FILE [--header NAME:VALUE]...\n"
              "                            Connect to a Coder deployment. FILE holds the API token\n"
              "                            ('-' reads it from standard input); it is never an argument.\n"
              "  start --config FILE       Start standalone from FILE (the daemon runs `serve --config FILE`)\n"
              "  stop                      Disconnect\n"
              "  peers                     Workspaces and agents, with handshake age, latency and path\n"
              "  watch [--count N]         Print logs and peer updates as they happen\n"
              "  pubkey [--interface NAME] The public key of a standalone tunnel (default " CONFIG_DEFAULT_IFNAME ")\n"
              "\n"
              "Options:\n"
              "  -s, --socket PATH         Control socket (default $CODERVPN_SOCKET or " SERVER_DEFAULT_SOCKET ")\n"
              "  -j, --json                Machine-readable output\n"
              "  -t, --timeout SECONDS     Give up after this long (default 60; watch: none)\n"
              "  -h, --help                Show this help\n"
              "\n"
              "codervpnd must be running (`systemctl start codervpnd`). Root and members of the\n"
              "'" SERVER_DEFAULT_GROUP "' group may use the socket (`sudo usermod -aG " SERVER_DEFAULT_GROUP " $USER`, then\n"
              "log in again). Exit status: 0 success, 1 failure, 2 usage error.\n"
              "See codervpnctl(1) and codervpnd(8).\n", f);
}

static void finish(struct ctl *c, int code) {
        if (c->done)
                return;
        c->done = true;
        c->exit_code = code;
        sd_event_exit(c->event, code);
}

static void print_json(json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

static const char *lifecycle_name(Vpn__Status__Lifecycle l) {
        switch (l) {
        case VPN__STATUS__LIFECYCLE__STARTING: return "starting";
        case VPN__STATUS__LIFECYCLE__STARTED: return "started";
        case VPN__STATUS__LIFECYCLE__STOPPING: return "stopping";
        case VPN__STATUS__LIFECYCLE__STOPPED: return "stopped";
        default: return "unknown";
        }
}

static void print_status(const struct ctl *c, const Vpn__Status *st) {
        static const Vpn__PeerUpdate empty = VPN__PEER_UPDATE__INIT;
        const Vpn__PeerUpdate *peers = st->peer_update ?: &empty;

        if (c->json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "lifecycle", json_object_new_string(lifecycle_name(st->lifecycle)));
                json_object_object_add(o, "error", st->error_message && *st->error_message ?
                                       json_object_new_string(st->error_message) : NULL);
                json_object_object_add(o, "peers", peers_to_json(peers));
                print_json(o);
                return;
        }
        printf("Tunnel:     %s\n", lifecycle_name(st->lifecycle));
        if (st->error_message && *st->error_message)
                printf("Last error: %s\n", st->error_message);
        printf("Workspaces: %zu\nAgents:     %zu\n", peers->n_upserted_workspaces, peers->n_upserted_agents);
        if (peers->n_upserted_agents) {
                putchar('\n');
                peers_print_table(stdout, peers, time(NULL));
        }
}

static void print_peers(const struct ctl *c, const Vpn__PeerUpdate *u) {
        if (c->json)
                print_json(peers_to_json(u));
        else
                peers_print_table(stdout, u, time(NULL));
}

static const char *log_level_name(Vpn__Log__Level level) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&vpn__log__level__descriptor, (int) level);
        return v ? v->name : "?";
}

static void print_log(const struct ctl *c, const Vpn__Log *l) {
        if (c->json) {
                json_object *o = json_object_new_object(), *fields = json_object_new_object();
                json_object_object_add(o, "type", json_object_new_string("log"));
                json_object_object_add(o, "level", json_object_new_string(log_level_name(l->level)));
                json_object_object_add(o, "logger", json_object_new_string(l->n_logger_names ? l->logger_names[0] : ""));
                json_object_object_add(o, "message", json_object_new_string(l->message ?: ""));
                for (size_t i = 0; i < l->n_fields; i++)
                        json_object_object_add(fields, l->fields[i]->name, json_object_new_string(l->fields[i]->value));
                json_object_object_add(o, "fields", fields);
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                printf("%-8s %s: %s", log_level_name(l->level), l->n_logger_names ? l->logger_names[0] : "-",
                       l->message ?: "");
                for (size_t i = 0; i < l->n_fields; i++)
                        printf(" %s=%s", l->fields[i]->name, l->fields[i]->value);
                putchar('\n');
        }
        fflush(stdout);
}

static void print_update(const struct ctl *c, const Vpn__PeerUpdate *u) {
        if (c->json) {
                json_object *o = peers_to_json(u);
                json_object_object_add(o, "type", json_object_new_string("peer_update"));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                printf("PEERS    +%zu workspaces, +%zu agents, -%zu workspaces, -%zu agents\n",
                       u->n_upserted_workspaces, u->n_upserted_agents, u->n_deleted_workspaces,
                       u->n_deleted_agents);
                if (u->n_upserted_agents)
                        peers_print_table(stdout, u, time(NULL));
        }
        fflush(stdout);
}

static void on_reply(struct speaker *s, int error, ProtobufCMessage *reply, void *userdata) {
        _cleanup_message_ ProtobufCMessage *m = reply;
        struct ctl *c = userdata;

        if (error < 0) {
                fprintf(stderr, "codervpnctl: codervpnd closed the connection before answering\n");
                finish(c, 1);
                return;
        }
        if (speaker_role(s) == VPN_ROLE_CLIENT) {
                const Vpn__ServiceMessage *sm = (const Vpn__ServiceMessage *) m;
                if (sm->msg_case != VPN__SERVICE_MESSAGE__MSG_STATUS) {
                        fprintf(stderr, "codervpnctl: unexpected %s reply\n", vpn_message_case_name(m));
                        finish(c, 1);
                        return;
                }
                print_status(c, sm->status);
                finish(c, 0);
                return;
        }

        const Vpn__TunnelMessage *tm = (const Vpn__TunnelMessage *) m;
        switch (tm->msg_case) {
        case VPN__TUNNEL_MESSAGE__MSG_START:
                if (!tm->start->success) {
                        fprintf(stderr, "codervpnctl: start failed: %s\n", tm->start->error_message);
                        finish(c, 1);
                        return;
                }
                puts("Started.");
                break;
        case VPN__TUNNEL_MESSAGE__MSG_STOP:
                if (!tm->stop->success) {
                        fprintf(stderr, "codervpnctl: stop failed: %s\n", tm->stop->error_message);
                        finish(c, 1);
                        return;
                }
                puts("Stopped.");
                break;
        case VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE:
                print_peers(c, tm->peer_update);
                break;
        default:
                fprintf(stderr, "codervpnctl: unexpected %s reply\n", vpn_message_case_name(m));
                finish(c, 1);
                return;
        }
        finish(c, 0);
}

static void on_ready(struct speaker *s, void *userdata) {
        struct ctl *c = userdata;
        c->ready = true;
        Vpn__ManagerMessage mm = VPN__MANAGER_MESSAGE__INIT;
        Vpn__ClientMessage cm = VPN__CLIENT_MESSAGE__INIT;
        Vpn__StartRequest start = VPN__START_REQUEST__INIT;
        Vpn__StopRequest stop = VPN__STOP_REQUEST__INIT;
        Vpn__GetPeerUpdate get = VPN__GET_PEER_UPDATE__INIT;
        Vpn__StatusRequest status = VPN__STATUS_REQUEST__INIT;
        ProtobufCMessage *m = &mm.base;
        int r;

        switch (c->command) {
        case CMD_STATUS:
                cm.msg_case = VPN__CLIENT_MESSAGE__MSG_STATUS;
                cm.status = &status;
                m = &cm.base;
                break;
        case CMD_PUBKEY:
                return;   /* answered without the socket */
        case CMD_START:
                start.coder_url = (char *) c->url;
                start.api_token = c->token;
                start.n_headers = c->n_headers;
                start.headers = c->header_ptrs;
                mm.msg_case = VPN__MANAGER_MESSAGE__MSG_START;
                mm.start = &start;
                break;
        case CMD_STOP:
                mm.msg_case = VPN__MANAGER_MESSAGE__MSG_STOP;
                mm.stop = &stop;
                break;
        case CMD_PEERS:
                mm.msg_case = VPN__MANAGER_MESSAGE__MSG_GET_PEER_UPDATE;
                mm.get_peer_update = &get;
                break;
        case CMD_WATCH:
                if (!c->json)
                        fprintf(stderr, "Watching codervpnd (protocol %u.%u); Ctrl-C to stop.\n",
                                speaker_version(s).major, speaker_version(s).minor);
                return;
        }
        r = speaker_request(s, m, on_reply, c);
        if (r < 0) {
                fprintf(stderr, "codervpnctl: cannot send the request: %s\n", strerror(-r));
                finish(c, 1);
        }
}

static void on_message(struct speaker *s, ProtobufCMessage *msg, uint64_t msg_id, void *userdata) {
        _cleanup_message_ ProtobufCMessage *m = msg;
        struct ctl *c = userdata;

        if (c->done || c->command != CMD_WATCH || speaker_role(s) != VPN_ROLE_MANAGER)
                return;   /* after --count, frames read in the same batch are not printed */
        const Vpn__TunnelMessage *tm = (const Vpn__TunnelMessage *) m;
        if (tm->msg_case == VPN__TUNNEL_MESSAGE__MSG_LOG)
                print_log(c, tm->log);
        else if (tm->msg_case == VPN__TUNNEL_MESSAGE__MSG_PEER_UPDATE)
                print_update(c, tm->peer_update);
        else
                return;
        if (c->watch_count && ++c->watched >= c->watch_count)
                finish(c, 0);
}

static void on_closed(struct speaker *s, int error, void *userdata) {
        struct ctl *c = userdata;

        if (c->done)
                return;
        if (c->command == CMD_WATCH && error == 0) {
                fprintf(stderr, "codervpnctl: codervpnd closed the connection\n");
                finish(c, 0);
                return;
        }
        if (!c->ready)
                /* codervpnd closes connections it refuses (SO_PEERCRED) without a word. */
                fprintf(stderr, "codervpnctl: connection to codervpnd lost before the handshake%s%s.\n"
                        "If you are not root, you may not be allowed: join the '%s' group "
                        "(`sudo usermod -aG %s $USER`, then log in again);\n"
                        "`journalctl -u codervpnd` says why it refused.\n",
                        error ? ": " : "", error ? strerror(-error) : "",
                        SERVER_DEFAULT_GROUP, SERVER_DEFAULT_GROUP);
        else
                fprintf(stderr, "codervpnctl: connection to codervpnd lost%s%s\n",
                        error ? ": " : "", error ? strerror(-error) : "");
        finish(c, 1);
}

static const struct speaker_ops ctl_ops = {
        .ready = on_ready,
        .message = on_message,
        .closed = on_closed,
};

static int connect_socket(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "codervpnctl: socket path too long: %s\n", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = errno;
                if (e == ENOENT || e == ECONNREFUSED)
                        fprintf(stderr, "codervpnctl: codervpnd is not running (nothing listens on %s).\n"
                                "Start it with `systemctl start codervpnd` or `codervpnd serve --socket %s`.\n",
                                path, path);
                else if (e == EACCES || e == EPERM)
                        fprintf(stderr, "codervpnctl: permission denied on %s.\n"
                                "Run as root or join the '%s' group (`usermod -aG %s $USER`, then log in again).\n",
                                path, SERVER_DEFAULT_GROUP, SERVER_DEFAULT_GROUP);
                else
                        fprintf(stderr, "codervpnctl: cannot connect to %s: %s\n", path, strerror(e));
                return -e;
        }
        return TAKE_FD(fd);
}

/* The token never travels on a command line: it comes from a file or stdin. */
static int read_token(const char *path, char **ret) {
        _cleanup_close_ int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = calloc(1, TOKEN_MAX + 1);
        size_t len = 0;

        if (fd < 0) {
                fprintf(stderr, "codervpnctl: cannot open token file %s: %s\n", path, strerror(errno));
                return -errno;
        }
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, TOKEN_MAX - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "codervpnctl: cannot read token file %s: %s\n", path, strerror(errno));
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == TOKEN_MAX) {
                        fprintf(stderr, "codervpnctl: token file %s is larger than %d bytes\n", path, TOKEN_MAX);
                        return -EFBIG;
                }
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
                buf[--len] = '\0';
        if (len == 0) {
                fprintf(stderr, "codervpnctl: token file %s is empty\n", path);
                return -EINVAL;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

static int add_header(struct ctl *c, char *arg) {
        char *colon = strchr(arg, ':');

        if (!colon || colon == arg) {
                fprintf(stderr, "codervpnctl: --header wants NAME:VALUE, got \"%s\"\n", arg);
                return -EINVAL;
        }
        if (c->n_headers == HEADERS_MAX) {
                fprintf(stderr, "codervpnctl: at most %d headers\n", HEADERS_MAX);
                return -E2BIG;
        }
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
                value++;
        Vpn__StartRequest__Header *h = &c->headers[c->n_headers];
        vpn__start_request__header__init(h);
        h->name = arg;
        h->value = value;
        c->header_ptrs[c->n_headers++] = h;
        return 0;
}

static int parse_ulong(const char *what, const char *s, unsigned long *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || *s == '-') {
                fprintf(stderr, "codervpnctl: %s wants a number, got \"%s\"\n", what, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int parse_args(struct ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "timeout", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                { "url", required_argument, NULL, 'u' },
                { "token-file", required_argument, NULL, 'T' },
                { "header", required_argument, NULL, 'H' },
                { "count", required_argument, NULL, 'n' },
                { "config", required_argument, NULL, 'c' },
                { "interface", required_argument, NULL, 'i' },
                {}
        };
        static const char *const commands[] = {
                [CMD_STATUS] = "status", [CMD_START] = "start", [CMD_STOP] = "stop",
                [CMD_PEERS] = "peers", [CMD_WATCH] = "watch", [CMD_PUBKEY] = "pubkey",
        };
        const char *token_file = NULL, *cmd = NULL, *config = NULL;
        int opt, r;

        /* Options may come before or after the command, as people type them. */
        while ((opt = getopt_long(argc, argv, "-s:jt:h", options, NULL)) >= 0)
                switch (opt) {
                case 1:
                        if (cmd) {
                                fprintf(stderr, "codervpnctl: unexpected argument \"%s\"\n", optarg);
                                return -EINVAL;
                        }
                        cmd = optarg;
                        break;
                case 's': c->socket_path = optarg; break;
                case 'j': c->json = true; break;
                case 't': if ((r = parse_ulong("--timeout", optarg, &c->timeout_sec)) < 0) return r; break;
                case 'h': usage(stdout); exit(0);
                case 'u': c->url = optarg; break;
                case 'T': token_file = optarg; break;
                case 'H': if ((r = add_header(c, optarg)) < 0) return r; break;
                case 'n': if ((r = parse_ulong("--count", optarg, &c->watch_count)) < 0) return r; break;
                case 'c': config = optarg; break;
                case 'i': c->ifname = optarg; break;
                default: return -EINVAL;
                }
        if (!cmd) {
                usage(stderr);
                return -EINVAL;
        }
        size_t i;
        for (i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(cmd, commands[i]) == 0)
                        break;
        if (i == ELEMENTSOF(commands)) {
                fprintf(stderr, "codervpnctl: unknown command \"%s\" (try --help)\n", cmd);
                return -EINVAL;
        }
        c->command = (enum command) i;
        if ((c->url || token_file || c->n_headers || config) && c->command != CMD_START) {
                fprintf(stderr, "codervpnctl: --url, --token-file, --header and --config go with start\n");
                return -EINVAL;
        }
        if (c->ifname && c->command != CMD_PUBKEY) {
                fprintf(stderr, "codervpnctl: --interface goes with pubkey\n");
                return -EINVAL;
        }
        if (config) {
                if (c->url || token_file || c->n_headers) {
                        fprintf(stderr, "codervpnctl: start takes --config FILE or --url and --token-file, "
                                        "not both\n");
                        return -EINVAL;
                }
                if (config[0] != '/') {
                        fprintf(stderr, "codervpnctl: --config wants the absolute path codervpnd was given\n");
                        return -EINVAL;
                }
                if (asprintf(&c->config_url, "file://%s", config) < 0)
                        return -ENOMEM;
                c->url = c->config_url;
                return 0;
        }
        if (c->watch_count && c->command != CMD_WATCH) {
                fprintf(stderr, "codervpnctl: --count goes with watch\n");
                return -EINVAL;
        }
        if (c->command == CMD_START) {
                if (!c->url || !token_file) {
                        fprintf(stderr, "codervpnctl: start needs --url URL and --token-file FILE\n");
                        return -EINVAL;
                }
                if ((r = read_token(token_file, &c->token)) < 0)
                        return r;
        }
        return 0;
}

/* The running engine writes its public key next to its state; reading it needs no rights. */
static int print_public_key(const char *ifname, bool json) {
        _cleanup_free_ char *path = NULL;
        char key[64] = "";

        if (asprintf(&path, ENGINE_RUNTIME_DIR "/%s.pub", ifname) < 0)
                return 1;
        FILE *f = fopen(path, "re");
        bool ok = f && fgets(key, sizeof(key), f) && strlen(key) == 45 && key[44] == '\n';
        if (f)
                fclose(f);
        if (!ok) {
                fprintf(stderr, "codervpnctl: no standalone tunnel on %s is running (%s: %s); start one with "
                                "`codervpnd up --config FILE`, or name it with --interface\n",
                        ifname, path, f ? "not a public key" : strerror(errno));
                return 1;
        }
        key[44] = 0;
        if (json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "interface", json_object_new_string(ifname));
                json_object_object_add(o, "public_key", json_object_new_string(key));
                print_json(o);
        } else
                puts(key);
        return 0;
}

static int on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        struct ctl *c = userdata;
        fprintf(stderr, "codervpnctl: no answer from codervpnd within %lu s\n", c->timeout_sec);
        finish(c, 1);
        return 0;
}

static int on_interrupt(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        finish(userdata, 0);
        return 0;
}

int main(int argc, char **argv) {
        struct ctl c = { .timeout_sec = 60 };
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(speaker_unrefp) struct speaker *s = NULL;
        sigset_t mask;
        int r;

        c.socket_path = getenv("CODERVPN_SOCKET") ?: SERVER_DEFAULT_SOCKET;
        log_open(LOG_TARGET_STDERR, LOG_ERR);
        r = parse_args(&c, argc, argv);
        if (r < 0)
                return 2;
        if (c.command == CMD_PUBKEY)
                return print_public_key(c.ifname ?: CONFIG_DEFAULT_IFNAME, c.json);

        int fd = connect_socket(c.socket_path);
        if (fd < 0)
                return 1;
        int write_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (write_fd < 0) {
                close(fd);
                return 1;
        }

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if (sd_event_new(&event) < 0 ||
            sd_event_add_signal(event, NULL, SIGINT, on_interrupt, &c) < 0 ||
            sd_event_add_signal(event, NULL, SIGTERM, on_interrupt, &c) < 0) {
                fprintf(stderr, "codervpnctl: cannot set up the event loop\n");
                return 1;
        }
        c.event = event;
        if (c.command != CMD_WATCH && c.timeout_sec > 0 &&
            sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, c.timeout_sec * 1000000ULL, 0,
                                       on_timeout, &c) < 0)
                return 1;

        struct speaker_config config = {
                .roles = 1u << (c.command == CMD_STATUS ? VPN_ROLE_CLIENT : VPN_ROLE_MANAGER),
                .description = "codervpnd",
        };
        r = speaker_new(&s, event, fd, write_fd, &config, &ctl_ops, &c);
        if (r < 0) {
                fprintf(stderr, "codervpnctl: %s\n", strerror(-r));
                return 1;
        }
        sd_event_loop(event);
        if (c.token) {
                explicit_bzero(c.token, strlen(c.token));
                free(c.token);
        }
        free(c.config_url);
        return c.exit_code;
}
