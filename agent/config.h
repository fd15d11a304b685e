/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * Standalone configuration: an INI file in the style of wg-quick and systemd-networkd
 * (codervpnd.conf(5)), and the same settings from CODERVPND_* environment variables
 * for containers. Parsing is pure: nothing here touches the network.
 *
 *   [Interface]   Name, PrivateKeyFile, ListenPort, Address (repeatable), MTU,
 *                 WireGuard = auto|kernel|userspace, FirewallMark
 *   [DNS]         Mode = auto|resolved|resolvconf|file|off, Address (the built-in
 *                 responder's, repeatable), Domain (match domain, repeatable)
 *   [DERP]        MapFile (tailcfg.DERPMap JSON), URL (a one-node map instead), HomeRegion,
 *                 ForceWebSocket = yes|no, CAFile
 *   [Peer]        (repeatable) PublicKey, AllowedIPs (comma list, repeatable), Endpoint,
 *                 DERPRegion, PersistentKeepalive, Name (DNS name, repeatable),
 *                 Workspace, Agent, WorkspaceID, AgentID
 *
 * Environment: CODERVPND_<SECTION>_<KEY> for Interface/DNS/DERP (repeatable keys take a
 * comma list), CODERVPND_PEER<N>_<KEY> for peers (N = 0..CONFIG_PEERS_MAX-1, in order).
 * Keys are upper case without underscores inside (CODERVPND_INTERFACE_LISTENPORT).
 * The environment overrides the file key by key; a peer in the environment replaces the
 * file's peer with the same PublicKey, or is added.
 *
 * Syntax (as wg(8)): section and key names are case-insensitive, as are fixed words
 * (yes/no, auto, off, ...); '#' or ';' starts a comment line, and '#' after a space or
 * tab a trailing comment; no quoting. A key without a value, or a single-valued key set
 * twice, is an error. In the environment an empty value means the default, a list
 * variable replaces the file's whole list, and CODERVPND_TEST_* / CODERVPND_VM_* (the
 * test suite's) are ignored. Limits: 4 KiB lines, 4 MiB files, 64 KiB variables.
 *
 * Errors: -EINVAL with "FILE:LINE: message" (or "CODERVPND_X: message") in the caller's
 * buffer; nothing is allocated then. Unknown sections and keys are errors (a typo must
 * not silently do nothing). Secrets never appear in messages: a bad PublicKey is
 * reported by line, not by value, and unknown names that could be a pasted key are not
 * echoed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netcfg.h"
#include "wg.h"

#define CONFIG_DEFAULT_PATH "/etc/codervpnd/codervpnd.conf"
#define CONFIG_DEFAULT_IFNAME "coder0"
#define CONFIG_DEFAULT_KEY_PATH "/var/lib/codervpnd/private.key"
#define CONFIG_DEFAULT_MTU 1280
#define CONFIG_PEERS_MAX 4096
#define CONFIG_ERROR_MAX 512

enum config_dns_mode {
        CONFIG_DNS_AUTO,        /* resolved if it is the system resolver, else resolv.conf */
        CONFIG_DNS_RESOLVED,
        CONFIG_DNS_RESOLVCONF,  /* openresolv's resolvconf(8) */
        CONFIG_DNS_FILE,        /* /etc/resolv.conf rewritten in place (containers) */
        CONFIG_DNS_OFF,
};

struct config_peer {
        uint8_t public_key[WG_KEY_LEN];
        struct wg_allowedip *allowed_ips;
        size_t n_allowed_ips;
        union wg_endpoint endpoint;     /* sa_family 0: none known (DERP only) */
        int derp_region;                /* 0: our home region */
        uint16_t persistent_keepalive;
        char **names;                   /* DNS names, no trailing dot */
        size_t n_names;
        char *workspace, *agent;        /* display names; may be NULL */
        char *workspace_id, *agent_id;  /* UUID strings; may be NULL */
};

struct config {
        char *ifname;
        char *private_key_file;
        uint16_t listen_port;           /* 0: random */
        struct net_prefix *addrs;
        size_t n_addrs;
        uint32_t mtu;
        enum wg_mode wg_mode;
        uint32_t fwmark;                /* 0: the default (NET fwmark of codervpnd) */

        enum config_dns_mode dns_mode;
        struct net_prefix *dns_addrs;   /* prefix length ignored */
        size_t n_dns_addrs;
        char **dns_domains;
        size_t n_dns_domains;

        char *derp_map_file;
        char *derp_url;
        int derp_home_region;           /* 0: choose */
        bool derp_force_websocket;
        char *derp_ca_file;

        struct config_peer *peers;
        size_t n_peers;
};

/*
 * Parses @path (NULL: no file, environment only) and then @envp (NULL: no environment).
 * A file that cannot be opened or read gives its -errno (-ENOENT when absent), with
 * "PATH: reason" in @error.
 */
int config_load(const char *path, char *const *envp, struct config **ret, char *error, size_t error_size);
/*
 * config_load on @size bytes at @data (NULL: no file) named @name in messages (NULL:
 * "(config)"); for the fuzzer and tests. @data need not be NUL-terminated.
 */
int config_parse_buffer(const char *data, size_t size, const char *name, char *const *envp,
                        struct config **ret, char *error, size_t error_size);
struct config *config_free(struct config *c);
static inline void config_freep(struct config **c) {
        if (*c)
                config_free(*c);
}
#define _cleanup_config_ __attribute__((cleanup(config_freep)))

/* The peer with @key, or NULL. */
const struct config_peer *config_find_peer(const struct config *c, const uint8_t key[WG_KEY_LEN]);
/* Whether two peers are configured identically (every field; lists in the same order). */
bool config_peer_equal(const struct config_peer *a, const struct config_peer *b);

/*
 * Reads the base64 private key in @path, or, if the file does not exist and @create,
 * generates one and writes it atomically with mode 0600 (the directory is created 0700).
 * A key file readable by group or others is refused (-EPERM), as ssh does.
 * The key is never logged; @error gets the path and the reason.
 */
int config_load_private_key(const char *path, bool create, uint8_t key[WG_KEY_LEN], char *error,
                            size_t error_size);

/* Base64 (44 chars + NUL) of @key, the way `wg` writes keys. */
void config_key_to_base64(const uint8_t key[WG_KEY_LEN], char out[45]);
int config_key_from_base64(const char *s, uint8_t key[WG_KEY_LEN]);
