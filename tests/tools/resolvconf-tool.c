/* SPDX-License-Identifier: MIT */
/*
 * resolvconf-tool: resolved/resolvconf.h on the command line, for tests.
 *
 *   resolvconf-tool [OPTIONS] detect         print the mode and why
 *   resolvconf-tool [OPTIONS] apply          apply the DNS given by --server/--search/--match
 *   resolvconf-tool [OPTIONS] restore        undo: direct (by the marker) and/or resolvconf -d
 *   resolvconf-tool [OPTIONS] hold           apply, print "applied", wait for SIGTERM/SIGINT, restore
 *   resolvconf-tool [OPTIONS] render         print what direct mode would write (no changes)
 *
 * OPTIONS: --resolv-conf PATH  --nsswitch PATH  --backup PATH  --resolvconf BIN|none
 *          --mode auto|direct|resolvconf (apply/restore/hold; auto = detect)
 *          --bus (resolved is on the bus, for detect/auto)  --ifname IF (default coder0)
 *          --server ADDR... --search DOMAIN... --match DOMAIN... --no-search --timeout-ms N
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolvconf.h"

#define MAXN 16

static const char *prog = "resolvconf-tool";

static void usage(FILE *f) {
        fprintf(f,
                "usage: %s [--resolv-conf PATH] [--nsswitch PATH] [--backup PATH] [--resolvconf BIN|none]\n"
                "       [--mode auto|direct|resolvconf] [--bus] [--ifname IF] [--timeout-ms N]\n"
                "       [--server ADDR]... [--search D]... [--match D]... [--no-search]\n"
                "       detect|apply|restore|hold|render\n", prog);
}

static int do_apply(enum dns_mode mode, const struct resolvconf_paths *p, const char *ifname,
                    const struct dns_config *c) {
        char *error = NULL;
        int r;

        switch (mode) {
        case DNS_MODE_DIRECT:
                r = resolvconf_direct_apply(p, c, &error);
                break;
        case DNS_MODE_RESOLVCONF:
                r = resolvconf_cmd_apply(p, ifname, c, &error);
                break;
        default:
                fprintf(stderr, "%s: mode %s: nothing to apply here\n", prog, dns_mode_to_string(mode));
                return -EOPNOTSUPP;
        }
        if (r < 0)
                fprintf(stderr, "%s: apply (%s): %s\n", prog, dns_mode_to_string(mode), error ? error : strerror(-r));
        else
                printf("applied %s\n", dns_mode_to_string(mode));
        free(error);
        return r;
}

static int do_restore(enum dns_mode mode, const struct resolvconf_paths *p, const char *ifname) {
        char *error = NULL;
        int r = 0, k;

        /* Direct restore is keyed on the marker: always safe, and what a crash needs. */
        if (mode == DNS_MODE_DIRECT || mode == DNS_MODE_RESOLVCONF) {
                k = resolvconf_direct_restore(p, &error);
                if (k < 0) {
                        fprintf(stderr, "%s: restore (direct): %s\n", prog, error ? error : strerror(-k));
                        r = k;
                } else
                        printf("%s\n", k > 0 ? "restored" : "nothing to restore");
                free(error), error = NULL;
        }
        if (mode == DNS_MODE_RESOLVCONF) {
                k = resolvconf_cmd_remove(p, ifname, &error);
                if (k < 0) {
                        fprintf(stderr, "%s: restore (resolvconf): %s\n", prog, error ? error : strerror(-k));
                        r = k;
                } else
                        printf("removed %s\n", ifname);
                free(error);
        }
        return r;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "resolv-conf", required_argument, NULL, 'r' },
                { "nsswitch", required_argument, NULL, 'n' },
                { "backup", required_argument, NULL, 'b' },
                { "resolvconf", required_argument, NULL, 'R' },
                { "mode", required_argument, NULL, 'm' },
                { "bus", no_argument, NULL, 'B' },
                { "ifname", required_argument, NULL, 'i' },
                { "server", required_argument, NULL, 's' },
                { "search", required_argument, NULL, 'S' },
                { "match", required_argument, NULL, 'M' },
                { "no-search", no_argument, NULL, 'N' },
                { "timeout-ms", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct resolvconf_paths p = {};
        struct dns_server servers[MAXN];
        char *search[MAXN], *match[MAXN];
        struct dns_config c = { .servers = servers, .search_domains = search, .match_domains = match };
        const char *mode_arg = "auto", *ifname = "coder0", *cmd;
        bool bus = false;
        enum dns_mode mode;
        char *reason = NULL;
        int o, r;

        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (o) {
                case 'r': p.resolv_conf = optarg; break;
                case 'n': p.nsswitch_conf = optarg; break;
                case 'b': p.backup = optarg; break;
                case 'R': p.resolvconf_bin = optarg; break;
                case 'm': mode_arg = optarg; break;
                case 'B': bus = true; break;
                case 'i': ifname = optarg; break;
                case 't': p.timeout_ms = atoi(optarg); break;
                case 'N': c.match_domains_no_search = true; break;
                case 's': {
                        struct dns_server *s = &servers[c.n_servers];
                        if (c.n_servers == MAXN)
                                return fprintf(stderr, "%s: too many servers\n", prog), 2;
                        *s = (struct dns_server) {};
                        if (inet_pton(AF_INET, optarg, s->addr) == 1)
                                s->family = AF_INET;
                        else if (inet_pton(AF_INET6, optarg, s->addr) == 1)
                                s->family = AF_INET6;
                        else
                                return fprintf(stderr, "%s: bad address '%s'\n", prog, optarg), 2;
                        c.n_servers++;
                        break;
                }
                case 'S':
                        if (c.n_search_domains == MAXN)
                                return fprintf(stderr, "%s: too many search domains\n", prog), 2;
                        search[c.n_search_domains++] = optarg;
                        break;
                case 'M':
                        if (c.n_match_domains == MAXN)
                                return fprintf(stderr, "%s: too many match domains\n", prog), 2;
                        match[c.n_match_domains++] = optarg;
                        break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind + 1 != argc)
                return usage(stderr), 2;
        cmd = argv[optind];

        if (strcmp(mode_arg, "direct") == 0)
                mode = DNS_MODE_DIRECT;
        else if (strcmp(mode_arg, "resolvconf") == 0)
                mode = DNS_MODE_RESOLVCONF;
        else if (strcmp(mode_arg, "auto") == 0) {
                r = dns_mode_detect(&p, bus, &mode, &reason);
                if (r < 0) {
                        fprintf(stderr, "%s: detect: %s\n", prog, reason ? reason : strerror(-r));
                        return 1;
                }
        } else
                return usage(stderr), 2;
        setvbuf(stdout, NULL, _IOLBF, 0);

        if (strcmp(cmd, "detect") == 0) {
                if (strcmp(mode_arg, "auto") != 0)
                        return fprintf(stderr, "%s: detect needs --mode auto\n", prog), 2;
                printf("%s\n%s\n", dns_mode_to_string(mode), reason ? reason : "");
                free(reason);
                return 0;
        }
        free(reason);
        if (strcmp(cmd, "render") == 0) {
                char *text = NULL, *error = NULL, *orig = NULL;
                FILE *f = fopen(p.resolv_conf ? p.resolv_conf : RESOLVCONF_DEFAULT_RESOLV_CONF, "re");
                if (f) {
                        size_t n = 0;
                        if (getdelim(&orig, &n, 0, f) < 0)
                                free(orig), orig = NULL;
                        fclose(f);
                }
                r = resolvconf_render_direct(&c, orig, p.backup, &text, &error);
                free(orig);
                if (r < 0) {
                        fprintf(stderr, "%s: render: %s\n", prog, error ? error : strerror(-r));
                        free(error);
                        return 1;
                }
                fputs(text, stdout);
                free(text);
                return 0;
        }
        if (strcmp(cmd, "apply") == 0)
                return do_apply(mode, &p, ifname, &c) < 0 ? 1 : 0;
        if (strcmp(cmd, "restore") == 0)
                return do_restore(mode, &p, ifname) < 0 ? 1 : 0;
        if (strcmp(cmd, "hold") == 0) {
                sigset_t set;
                int sig;

                sigemptyset(&set);
                sigaddset(&set, SIGTERM);
                sigaddset(&set, SIGINT);
                sigprocmask(SIG_BLOCK, &set, NULL);
                if (do_apply(mode, &p, ifname, &c) < 0)
                        return 1;
                printf("holding\n");
                while (sigwait(&set, &sig) != 0)
                        ;
                return do_restore(mode, &p, ifname) < 0 ? 1 : 0;
        }
        usage(stderr);
        return 2;
}
