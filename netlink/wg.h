/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * One WireGuard interface, configured through the kernel's generic netlink
 * family "wireguard" or, where the kernel has no WireGuard, through a
 * wireguard-go process and its UAPI socket. Both paths sit behind this API.
 *
 * A struct wg_device is a plain value: the caller owns its peers array and
 * each peer's allowed-IPs array (wg_device_free releases a device this module
 * returned). Keys are raw 32-byte values; they are never logged.
 */
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define WG_KEY_LEN 32

enum wg_mode {
        WG_MODE_AUTO,        /* kernel when the kernel has WireGuard, else userspace */
        WG_MODE_KERNEL,
        WG_MODE_USERSPACE,
};

struct wg_allowedip {
        uint16_t family;     /* AF_INET or AF_INET6 */
        uint8_t cidr;
        union {
                struct in_addr ip4;
                struct in6_addr ip6;
        };
};

union wg_endpoint {
        struct sockaddr sa;  /* sa_family 0: none */
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
};

enum {
        WG_PEER_REMOVE = 1 << 0,             /* remove this peer */
        WG_PEER_REPLACE_ALLOWEDIPS = 1 << 1, /* allowed IPs replace the peer's, not add to them */
        WG_PEER_UPDATE_ONLY = 1 << 2,        /* do not create the peer if it is absent */
        WG_PEER_HAS_PRESHARED_KEY = 1 << 3,  /* set preshared_key (all zero removes it) */
        WG_PEER_HAS_KEEPALIVE = 1 << 4,      /* set persistent_keepalive */
};

struct wg_peer {
        uint8_t public_key[WG_KEY_LEN];
        uint8_t preshared_key[WG_KEY_LEN];
        uint32_t flags;
        union wg_endpoint endpoint;
        uint16_t persistent_keepalive;       /* seconds, 0 = off */
        struct wg_allowedip *allowedips;
        size_t n_allowedips;
        /* Read back only. */
        int64_t last_handshake_sec, last_handshake_nsec;
        uint64_t rx_bytes, tx_bytes;
};

enum {
        WG_DEVICE_REPLACE_PEERS = 1 << 0,    /* the peer list replaces the device's */
        WG_DEVICE_HAS_PRIVATE_KEY = 1 << 1,  /* all zero removes it */
        WG_DEVICE_HAS_LISTEN_PORT = 1 << 2,  /* 0 = random */
        WG_DEVICE_HAS_FWMARK = 1 << 3,       /* 0 = none */
};

struct wg_device {
        uint32_t flags;
        uint8_t private_key[WG_KEY_LEN];
        uint8_t public_key[WG_KEY_LEN];      /* read back only */
        uint16_t listen_port;
        uint32_t fwmark;
        struct wg_peer *peers;
        size_t n_peers;
};

/* What a configuration call sent; for tests and benchmarks. */
struct wg_stats {
        size_t messages;     /* netlink messages, or UAPI set transactions */
        size_t peers;        /* peer entries sent (a split peer counts in each message) */
};

struct wg;

/* Same family, address and port (both without an endpoint: equal). */
bool wg_endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b);

/* Opens @ifname (which need not exist yet). -EOPNOTSUPP if @mode cannot work here. */
int wg_open(struct wg **ret, const char *ifname, enum wg_mode mode);
void wg_free(struct wg *w);
static inline void wg_freep(struct wg **w) {
        if (*w)
                wg_free(*w);
}

enum wg_mode wg_get_mode(const struct wg *w);
const char *wg_mode_name(enum wg_mode mode);
const char *wg_ifname(const struct wg *w);

/*
 * Creates the interface (-EEXIST if it exists) or deletes it (-ENODEV if absent).
 * Userspace path only: -ENODEV without /dev/net/tun, -ENOENT without wireguard-go,
 * -EIO if it exits while starting, -ETIMEDOUT if its UAPI socket never comes up.
 */
int wg_create(struct wg *w);
int wg_delete(struct wg *w);

/* Sends @dev as it is: its flags say what changes. @stats may be NULL. */
int wg_set(struct wg *w, const struct wg_device *dev, struct wg_stats *stats);
int wg_get(struct wg *w, struct wg_device **ret);

/*
 * Makes the interface match @desired (device fields with their HAS_ flags,
 * and exactly its peers), sending only what differs from @current — the last
 * state read or applied; NULL reads it from the interface first. A desired
 * peer without an endpoint keeps the one the interface learnt by roaming.
 */
int wg_sync(struct wg *w, const struct wg_device *current, const struct wg_device *desired,
            struct wg_stats *stats);

/*
 * The change that turns @current into @desired, in @out (peer entries point
 * into @desired's arrays; free with wg_device_free_shallow). Public for tests.
 */
int wg_diff(const struct wg_device *current, const struct wg_device *desired, struct wg_device *out);

void wg_device_free(struct wg_device *d);
void wg_device_free_shallow(struct wg_device *d);
static inline void wg_device_freep(struct wg_device **d) {
        if (*d)
                wg_device_free(*d);
}

/* Key helpers (libsodium). Returns 0 or -EINVAL. */
int wg_key_from_base64(uint8_t key[static WG_KEY_LEN], const char *s);
void wg_key_to_base64(char out[static 45], const uint8_t key[static WG_KEY_LEN]);
void wg_key_generate_private(uint8_t key[static WG_KEY_LEN]);
void wg_key_public_from_private(uint8_t pub[static WG_KEY_LEN], const uint8_t priv[static WG_KEY_LEN]);
bool wg_key_is_zero(const uint8_t key[static WG_KEY_LEN]);

/* "10.0.0.0/8", "fd00::/64", "1.2.3.4" (= /32). Returns 0 or -EINVAL. */
int wg_allowedip_parse(struct wg_allowedip *ret, const char *s);
/* "1.2.3.4:51820", "[fd00::1]:51820". Returns 0 or -EINVAL. */
int wg_endpoint_parse(union wg_endpoint *ret, const char *s);
