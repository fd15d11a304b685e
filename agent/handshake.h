/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * CoderVPN handshake header: "codervpn <role> <versions>\n".
 *
 * Pure functions, no I/O. The parser is strict in the way the Go reference is:
 * exactly three fields separated by single spaces, no '\r', versions as
 * ascending, duplicate-free "major.minor" pairs with major >= 1.
 */
#include <stddef.h>
#include <stdint.h>

#define VPN_HEADER_MAX 255   /* bytes before the '\n' */
#define VPN_MAX_VERSIONS 64   /* "1.0," is 4 bytes: 255 bytes hold no more */

enum vpn_role {
        VPN_ROLE_MANAGER,
        VPN_ROLE_TUNNEL,
        VPN_ROLE_CLIENT,
        VPN_ROLE_SERVICE,
        _VPN_ROLE_MAX,
};

struct vpn_version {
        uint32_t major;
        uint32_t minor;
};

struct vpn_header {
        enum vpn_role role;
        size_t n_versions;
        struct vpn_version versions[VPN_MAX_VERSIONS];
};

const char *vpn_role_name(enum vpn_role role);
/* The role that talks to @role: manager<->tunnel, client<->service. */
enum vpn_role vpn_role_peer(enum vpn_role role);

/* Parses "1.3,2.1". Returns 0 or -EINVAL. */
int vpn_versions_parse(const char *s, size_t len, struct vpn_version *out, size_t *n_out);

/*
 * Parses one header line of @len bytes, without its trailing '\n'. Returns 0,
 * -EINVAL (malformed) or -EPROTO (unknown role).
 */
int vpn_header_parse(const char *line, size_t len, struct vpn_header *ret);

/*
 * Writes "codervpn <role> <versions>\n" into @buf. Returns its length, or
 * -ENOBUFS if it would exceed VPN_HEADER_MAX + 1 or @size.
 */
int vpn_header_format(const struct vpn_header *h, char *buf, size_t size);

/*
 * Highest major both sides list, with the lower of the two minors.
 * Returns 0, or -EPROTONOSUPPORT when no major is common.
 */
int vpn_version_negotiate(const struct vpn_version *ours, size_t n_ours,
                          const struct vpn_version *theirs, size_t n_theirs,
                          struct vpn_version *ret);

/* True when @v is at least major.minor (and of the same major). */
static inline int vpn_version_at_least(struct vpn_version v, uint32_t major, uint32_t minor) {
        return v.major == major && v.minor >= minor;
}
