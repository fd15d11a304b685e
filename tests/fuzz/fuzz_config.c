/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the standalone configuration (agent/config). The input is parsed
 * three ways: as a codervpnd.conf file; as an environment, one variable a line with
 * "CODERVPND_" put in front (so that the fuzzer need not find the prefix); and as both at
 * once, the environment applied over the file.
 *
 * Invariants (abort on violation): only -EINVAL or -ENOMEM fail, the output is untouched
 * then and the message is non-empty and blames the file or a CODERVPND_ variable; a parsed
 * configuration has its defaults filled in and values in range, at most CONFIG_PEERS_MAX
 * peers, each with a key that is not zero and at least one allowed IP, no two with the same
 * key, each found by config_find_peer and equal to itself; DNS names have no trailing dot;
 * MapFile and URL are never both set.
 */
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz-check.h"
#include "config.h"

#define ENV_MAX 256

static void check_names(char **names, size_t n) {
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(names[i]);
                CHECK(len > 0 && len <= 253 && names[i][len - 1] != '.');
        }
}

static void check_config(const struct config *c) {
        CHECK(c->ifname && strlen(c->ifname) > 0 && strlen(c->ifname) < IFNAMSIZ);
        CHECK(!strchr(c->ifname, '/') && !strchr(c->ifname, ' '));
        CHECK(c->private_key_file && c->private_key_file[0] == '/');
        CHECK(c->mtu >= 576 && c->mtu <= 65535);
        CHECK(c->wg_mode <= WG_MODE_USERSPACE && c->dns_mode <= CONFIG_DNS_OFF);
        CHECK(!(c->derp_map_file && c->derp_url));
        CHECK(c->derp_home_region >= 0);
        CHECK((c->n_addrs == 0) == (c->addrs == NULL));
        for (size_t i = 0; i < c->n_addrs; i++)
                CHECK((c->addrs[i].family == AF_INET && c->addrs[i].len <= 32) ||
                      (c->addrs[i].family == AF_INET6 && c->addrs[i].len <= 128));
        for (size_t i = 0; i < c->n_dns_addrs; i++)
                CHECK(c->dns_addrs[i].len == (c->dns_addrs[i].family == AF_INET ? 32 : 128));
        check_names(c->dns_domains, c->n_dns_domains);

        CHECK(c->n_peers <= CONFIG_PEERS_MAX);
        for (size_t i = 0; i < c->n_peers; i++) {
                const struct config_peer *p = &c->peers[i];
                CHECK(!wg_key_is_zero(p->public_key));
                CHECK(p->n_allowed_ips > 0);
                for (size_t j = 0; j < p->n_allowed_ips; j++)
                        CHECK((p->allowed_ips[j].family == AF_INET && p->allowed_ips[j].cidr <= 32) ||
                              (p->allowed_ips[j].family == AF_INET6 && p->allowed_ips[j].cidr <= 128));
                CHECK(p->endpoint.sa.sa_family == 0 || p->endpoint.sa.sa_family == AF_INET ||
                      p->endpoint.sa.sa_family == AF_INET6);
                CHECK(p->derp_region >= 0);
                check_names(p->names, p->n_names);
                CHECK(config_find_peer(c, p->public_key) == p);
                CHECK(config_peer_equal(p, p));
                for (size_t j = 0; j < i; j++)
                        CHECK(memcmp(c->peers[j].public_key, p->public_key, WG_KEY_LEN) != 0);
        }
}

static void parse(const char *data, size_t size, char *const *envp, const char *blame) {
        struct config *c = (struct config *) 0x1;
        char err[CONFIG_ERROR_MAX];

        int r = config_parse_buffer(data, size, "fuzz.conf", envp, &c, err, sizeof(err));
        CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r < 0) {
                CHECK(c == (struct config *) 0x1);
                CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
                if (blame)
                        CHECK(strncmp(err, blame, strlen(blame)) == 0 || strncmp(err, "CODERVPND_", 10) == 0);
                return;
        }
        CHECK(err[0] == '\0');
        check_config(c);
        config_free(c);
}

/* Each line of @data becomes "CODERVPND_<line>"; at most ENV_MAX of them. */
static char **make_env(const uint8_t *data, size_t size) {
        char **env = calloc(ENV_MAX + 1, sizeof(*env));
        size_t n = 0;

        CHECK(env);
        for (size_t at = 0; at < size && n < ENV_MAX;) {
                const uint8_t *nl = memchr(data + at, '\n', size - at);
                size_t len = nl ? (size_t) (nl - (data + at)) : size - at;
                char *s = malloc(len + 11);
                CHECK(s);
                memcpy(s, "CODERVPND_", 10);
                memcpy(s + 10, data + at, len);
                s[10 + len] = '\0';     /* an embedded NUL just ends the variable early */
                env[n++] = s;
                at += len + 1;
        }
        return env;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char **env;

        parse((const char *) data, size, NULL, "fuzz.conf");
        env = make_env(data, size);
        parse(NULL, 0, env, "CODERVPND_");
        parse((const char *) data, size, env, "fuzz.conf");
        for (char **e = env; *e; e++)
                free(*e);
        free(env);
        return 0;
}
