/* SPDX-License-Identifier: MIT */
/*
 * codervpnd.conf(5) and the CODERVPND_* environment into struct config. One table, keys[],
 * drives the file, the environment, freeing and peer comparison, so a new key is one line
 * there plus its value parser, and the file and the environment cannot drift apart.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "config.h"
#include "dnswire.h"
#include "macro.h"

#define LINE_MAX_LEN 4096
#define FILE_MAX_SIZE (4u << 20)
#define ENV_VALUE_MAX (64u << 10)   /* env lists can be long, but not unbounded */
#define LIST_MAX 65536              /* entries of one list key, per section or variable */
#define TEXT_MAX 255
#define URL_MAX 2048
#define NAME_ECHO_MAX 32            /* longer "names" are not echoed: a pasted key is 44 */

enum section {
        SECTION_INTERFACE,
        SECTION_DNS,
        SECTION_DERP,
        SECTION_PEER,
        _SECTION_MAX,
        SECTION_NONE = -1,
};

static const char *const section_names[_SECTION_MAX] = {
        [SECTION_INTERFACE] = "Interface",
        [SECTION_DNS] = "DNS",
        [SECTION_DERP] = "DERP",
        [SECTION_PEER] = "Peer",
};

enum kind {
        K_IFNAME,
        K_PATH,
        K_URL,
        K_TEXT,
        K_UUID,
        K_PORT,
        K_KEEPALIVE,
        K_MTU,
        K_FWMARK,
        K_WG_MODE,
        K_DNS_MODE,
        K_BOOL,
        K_REGION,
        K_PUBKEY,
        K_ENDPOINT,
        /* Lists (comma separated, repeatable) from here on. */
        K_PREFIXES,
        K_ADDRS,
        K_ALLOWEDIPS,
        K_NAMES,
};

struct key {
        enum section section;
        const char *name;
        enum kind kind;
        size_t offset, offset_n;        /* in struct config, or struct config_peer for [Peer] */
};

#define C(f) offsetof(struct config, f)
#define P(f) offsetof(struct config_peer, f)
static const struct key keys[] = {
        { SECTION_INTERFACE, "Name", K_IFNAME, C(ifname), 0 },
        { SECTION_INTERFACE, "PrivateKeyFile", K_PATH, C(private_key_file), 0 },
        { SECTION_INTERFACE, "ListenPort", K_PORT, C(listen_port), 0 },
        { SECTION_INTERFACE, "Address", K_PREFIXES, C(addrs), C(n_addrs) },
        { SECTION_INTERFACE, "MTU", K_MTU, C(mtu), 0 },
        { SECTION_INTERFACE, "WireGuard", K_WG_MODE, C(wg_mode), 0 },
        { SECTION_INTERFACE, "FirewallMark", K_FWMARK, C(fwmark), 0 },
        { SECTION_DNS, "Mode", K_DNS_MODE, C(dns_mode), 0 },
        { SECTION_DNS, "Address", K_ADDRS, C(dns_addrs), C(n_dns_addrs) },
        { SECTION_DNS, "Domain", K_NAMES, C(dns_domains), C(n_dns_domains) },
        { SECTION_DERP, "MapFile", K_PATH, C(derp_map_file), 0 },
        { SECTION_DERP, "URL", K_URL, C(derp_url), 0 },
        { SECTION_DERP, "HomeRegion", K_REGION, C(derp_home_region), 0 },
        { SECTION_DERP, "ForceWebSocket", K_BOOL, C(derp_force_websocket), 0 },
        { SECTION_DERP, "CAFile", K_PATH, C(derp_ca_file), 0 },
        { SECTION_PEER, "PublicKey", K_PUBKEY, P(public_key), 0 },
        { SECTION_PEER, "AllowedIPs", K_ALLOWEDIPS, P(allowed_ips), P(n_allowed_ips) },
        { SECTION_PEER, "Endpoint", K_ENDPOINT, P(endpoint), 0 },
        { SECTION_PEER, "DERPRegion", K_REGION, P(derp_region), 0 },
        { SECTION_PEER, "PersistentKeepalive", K_KEEPALIVE, P(persistent_keepalive), 0 },
        { SECTION_PEER, "Name", K_NAMES, P(names), P(n_names) },
        { SECTION_PEER, "Workspace", K_TEXT, P(workspace), 0 },
        { SECTION_PEER, "Agent", K_TEXT, P(agent), 0 },
        { SECTION_PEER, "WorkspaceID", K_UUID, P(workspace_id), 0 },
        { SECTION_PEER, "AgentID", K_UUID, P(agent_id), 0 },
};
#undef C
#undef P

static const char *const dns_mode_names[] = {
        [CONFIG_DNS_AUTO] = "auto",
        [CONFIG_DNS_RESOLVED] = "resolved",
        [CONFIG_DNS_RESOLVCONF] = "resolvconf",
        [CONFIG_DNS_FILE] = "file",
        [CONFIG_DNS_OFF] = "off",
};
/* A new mode needs its name here, or parse_enum would meet a hole. */
_Static_assert(ELEMENTSOF(dns_mode_names) == CONFIG_DNS_OFF + 1, "dns_mode_names");

/* Where a value came from: a line of the file, or an environment variable. */
struct where {
        unsigned line;                  /* 0: not a line (the file as a whole, or a variable) */
        const char *var;                /* not NUL-terminated; NULL: the file */
        int var_len;
};

struct peer_lines {
        unsigned section, key;          /* the [Peer] header and its PublicKey */
};

struct env_peer {
        unsigned index;                 /* N of CODERVPND_PEER<N>_ */
        struct config_peer peer;
};

struct parser {
        struct config *cfg;
        const char *file;
        struct where at;                /* what fail() blames */
        char *err;
        size_t err_size;
        struct where set[ELEMENTSOF(keys)];     /* where each key was last set */
        enum section section;
        struct peer_lines *peer_lines;  /* parallel to cfg->peers while reading the file */
        struct env_peer *env_peers;
        size_t n_env_peers;
        char peer_var[32];              /* "CODERVPND_PEER<N>", for errors about a whole peer */
};

static bool is_list(const struct key *k) {
        return k->kind >= K_PREFIXES;
}

static void format_where(const struct parser *p, const struct where *w, char *buf, size_t size) {
        if (w->var)
                snprintf(buf, size, "%.*s", w->var_len, w->var);
        else if (w->line)
                snprintf(buf, size, "%s:%u", p->file, w->line);
        else
                snprintf(buf, size, "%s", p->file);
}

__attribute__((format(printf, 4, 0)))
static void vformat_error(char *err, size_t size, const char *prefix, const char *fmt, va_list ap) {
        int n;

        if (!err || size == 0)
                return;
        n = snprintf(err, size, "%s: ", prefix);
        if (n >= 0 && (size_t) n < size)
                vsnprintf(err + n, size - (size_t) n, fmt, ap);
}

__attribute__((format(printf, 2, 3)))
static int fail(struct parser *p, const char *fmt, ...) {
        char at[PATH_MAX + 16];
        va_list ap;

        format_where(p, &p->at, at, sizeof(at));
        va_start(ap, fmt);
        vformat_error(p->err, p->err_size, at, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* For the key file helpers: "@path: ..." and @r back. */
__attribute__((format(printf, 5, 6)))
static int fail_path(char *err, size_t size, int r, const char *path, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vformat_error(err, size, path, fmt, ap);
        va_end(ap);
        return r;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
        *e = '\0';
        return s;
}

/* Section and key names are echoed in errors only when they look like names: a key pasted
 * on a line of its own would otherwise come back in the message. */
static bool echoable_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > NAME_ECHO_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
                        return false;
        return true;
}

static bool has_control(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
                        return true;
        return false;
}

static int section_lookup(const char *name) {
        for (int i = 0; i < _SECTION_MAX; i++)
                if (strcasecmp(name, section_names[i]) == 0)
                        return i;
        return SECTION_NONE;
}

static const struct key *key_lookup(enum section section, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].section == section && strcasecmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

/* "Name, PrivateKeyFile, ..." (or upper case, for variables) into @buf. */
static const char *key_names(enum section section, bool upper, char *buf, size_t size) {
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (keys[i].section != section)
                        continue;
                int k = snprintf(buf + n, size - n, "%s%s", n ? ", " : "", keys[i].name);
                if (k < 0 || (size_t) k >= size - n)
                        break;
                if (upper)
                        for (size_t j = n; j < n + (size_t) k; j++)
                                buf[j] = (char) (buf[j] >= 'a' && buf[j] <= 'z' ? buf[j] - 'a' + 'A' : buf[j]);
                n += (size_t) k;
        }
        return buf;
}

/*
 * Room for one more element of an array whose capacity follows from its count (4, then
 * powers of two), so the structs need no capacity fields. Returns the (maybe moved) array,
 * or NULL without touching @arr.
 */
static void *grow(void *arr, size_t n, size_t size) {
        if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
                return arr;
        return reallocarray(arr, n == 0 ? 4 : 2 * n, size);
}

/* ---- Values -------------------------------------------------------------------------- */

/* Digits of @base only (no sign, spaces or empty string), at most @max. */
static int parse_uint(const char *s, unsigned base, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s)
                return -EINVAL;
        for (; *s; s++) {
                unsigned d;
                if (*s >= '0' && *s <= '9')
                        d = (unsigned) (*s - '0');
                else if (base == 16 && *s >= 'a' && *s <= 'f')
                        d = (unsigned) (*s - 'a' + 10);
                else if (base == 16 && *s >= 'A' && *s <= 'F')
                        d = (unsigned) (*s - 'A' + 10);
                else
                        return -EINVAL;
                if (d > max || v > (max - d) / base)
                        return -ERANGE;
                v = v * base + d;
        }
        *ret = v;
        return 0;
}

static int parse_bool(const char *s) {
        static const char *const yes[] = { "yes", "true", "1", "on" }, *const no[] = { "no", "false", "0", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

static int parse_enum(const char *s, const char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(s, names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

/* What the kernel's dev_valid_name() takes, limited to printable ASCII. */
static bool ifname_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s > '~' || *s == '/' || *s == ':')
                        return false;
        return true;
}

static bool url_valid(const char *s) {
        const char *rest;

        if (strncasecmp(s, "https://", 8) == 0)
                rest = s + 8;
        else if (strncasecmp(s, "http://", 7) == 0)
                rest = s + 7;
        else
                return false;
        if (*rest == '\0' || *rest == '/' || strlen(s) > URL_MAX)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s > '~')
                        return false;
        return true;
}

/* 8-4-4-4-12 hex digits; lower-cased in place so that comparisons are plain strcmp. */
static bool uuid_normalize(char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (s[i] >= 'A' && s[i] <= 'F')
                        s[i] = (char) (s[i] - 'A' + 'a');
                else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

/* A host name as DNS wants it: letters, digits, '-' and '_' in labels; one trailing dot
 * dropped; lower-cased in place. */
static bool dns_name_normalize(char *s) {
        uint8_t wire[DNS_NAME_MAX];
        size_t n = strlen(s);

        /* Only one: dns_name_from_text would take a second as the root label. */
        if (n > 1 && s[n - 1] == '.' && s[n - 2] == '.')
                return false;
        if (n > 1 && s[n - 1] == '.')
                s[--n] = '\0';
        for (char *q = s; *q; q++) {
                if (*q >= 'A' && *q <= 'Z')
                        *q = (char) (*q - 'A' + 'a');
                else if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' ||
                           *q == '.'))
                        return false;
        }
        return dns_name_from_text(s, wire) > 0;
}

static int set_string(char **field, const char *v) {
        char *s = strdup(v);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static void clear_value(const struct key *k, uint8_t *base) {
        void *f = base + k->offset;
        size_t *n = is_list(k) ? (size_t *) (base + k->offset_n) : NULL;

        switch (k->kind) {
        case K_IFNAME:
        case K_PATH:
        case K_URL:
        case K_TEXT:
        case K_UUID:
                free(*(char **) f);
                *(char **) f = NULL;
                break;
        case K_PORT:
        case K_KEEPALIVE:
                *(uint16_t *) f = 0;
                break;
        case K_MTU:
        case K_FWMARK:
                *(uint32_t *) f = 0;
                break;
        case K_WG_MODE:
                *(enum wg_mode *) f = WG_MODE_AUTO;
                break;
        case K_DNS_MODE:
                *(enum config_dns_mode *) f = CONFIG_DNS_AUTO;
                break;
        case K_BOOL:
                *(bool *) f = false;
                break;
        case K_REGION:
                *(int *) f = 0;
                break;
        case K_PUBKEY:
                memset(f, 0, WG_KEY_LEN);
                break;
        case K_ENDPOINT:
                memset(f, 0, sizeof(union wg_endpoint));
                break;
        case K_PREFIXES:
        case K_ADDRS:
                free(*(struct net_prefix **) f);
                *(struct net_prefix **) f = NULL;
                *n = 0;
                break;
        case K_ALLOWEDIPS:
                free(*(struct wg_allowedip **) f);
                *(struct wg_allowedip **) f = NULL;
                *n = 0;
                break;
        case K_NAMES:
                for (size_t i = 0; i < *n; i++)
                        free((*(char ***) f)[i]);
                free(*(char ***) f);
                *(char ***) f = NULL;
                *n = 0;
                break;
        }
}

static void clear_section(enum section section, uint8_t *base) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].section == section)
                        clear_value(&keys[i], base);
}

/* One entry of a list key, appended. */
static int parse_item(struct parser *p, const struct key *k, uint8_t *base, char *v) {
        void *f = base + k->offset;
        size_t *n = (size_t *) (base + k->offset_n);
        struct net_prefix prefix;
        struct wg_allowedip aip;

        if (*n >= LIST_MAX)
                return fail(p, "more than %d %s entries; expected fewer", LIST_MAX, k->name);
        switch (k->kind) {
        case K_PREFIXES:
        case K_ADDRS:
                if (k->kind == K_ADDRS && strchr(v, '/'))
                        return fail(p, "invalid %s \"%.64s\"; expected an IPv4 or IPv6 address without a "
                                    "prefix length", k->name, v);
                if (net_prefix_parse(&prefix, v) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected an IPv4 or IPv6 address%s", k->name, v,
                                    k->kind == K_PREFIXES ? ", optionally with /prefixlength" : "");
                struct net_prefix *a = grow(*(struct net_prefix **) f, *n, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                a[(*n)++] = prefix;
                *(struct net_prefix **) f = a;
                return 0;
        case K_ALLOWEDIPS:
                if (wg_allowedip_parse(&aip, v) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected an IPv4 or IPv6 address or prefix such as "
                                    "10.0.0.0/8 or fd00::/64", k->name, v);
                struct wg_allowedip *w = grow(*(struct wg_allowedip **) f, *n, sizeof(*w));
                if (!w)
                        return -ENOMEM;
                w[(*n)++] = aip;
                *(struct wg_allowedip **) f = w;
                return 0;
        case K_NAMES:
                if (!dns_name_normalize(v))
                        return fail(p, "invalid %s \"%.64s\"; expected a DNS name (letters, digits, '-' and '_' "
                                    "in dot-separated labels of up to 63 bytes)", k->name, v);
                char **s = grow(*(char ***) f, *n, sizeof(*s));
                if (!s)
                        return -ENOMEM;
                *(char ***) f = s;
                if (!(s[*n] = strdup(v)))
                        return -ENOMEM;
                (*n)++;
                return 0;
        default:
                abort();
        }
}

static int parse_list(struct parser *p, const struct key *k, uint8_t *base, const char *v) {
        _cleanup_free_ char *copy = strdup(v);
        char *rest = copy, *item;
        int r;

        if (!copy)
                return -ENOMEM;
        while ((item = strsep(&rest, ","))) {
                item = strip(item);
                if (!*item)
                        return fail(p, "%s has an empty entry; expected a comma-separated list", k->name);
                if ((r = parse_item(p, k, base, item)) < 0)
                        return r;
        }
        return 0;
}

/* @v: stripped, not empty. Lists append; scalars overwrite. */
static int parse_value(struct parser *p, const struct key *k, uint8_t *base, const char *v) {
        void *f = base + k->offset;
        uint64_t u;
        int r;

        switch (k->kind) {
        case K_IFNAME:
                if (!ifname_valid(v))
                        return fail(p, "invalid %s \"%.64s\"; expected a Linux interface name: 1 to %d "
                                    "characters, no '/', ':' or whitespace", k->name, v, IFNAMSIZ - 1);
                return set_string(f, v);
        case K_PATH:
                if (v[0] != '/' || strlen(v) >= PATH_MAX)
                        return fail(p, "invalid %s \"%.64s\"; expected an absolute path", k->name, v);
                return set_string(f, v);
        case K_URL:
                if (!url_valid(v))
                        return fail(p, "invalid %s \"%.64s\"; expected an http:// or https:// URL without spaces",
                                    k->name, v);
                return set_string(f, v);
        case K_TEXT:
                if (strlen(v) > TEXT_MAX)
                        return fail(p, "%s is longer than %d bytes; expected a shorter name", k->name, TEXT_MAX);
                return set_string(f, v);
        case K_UUID: {
                _cleanup_free_ char *s = strdup(v);
                if (!s)
                        return -ENOMEM;
                if (!uuid_normalize(s))
                        return fail(p, "invalid %s \"%.64s\"; expected a UUID such as "
                                    "6ba7b810-9dad-11d1-80b4-00c04fd430c8", k->name, v);
                free(*(char **) f);
                *(char **) f = TAKE_PTR(s);
                return 0;
        }
        case K_PORT:
                if (parse_uint(v, 10, 65535, &u) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected a port from 0 to 65535 (0: any)", k->name, v);
                *(uint16_t *) f = (uint16_t) u;
                return 0;
        case K_KEEPALIVE:
                if (strcasecmp(v, "off") == 0)
                        u = 0;
                else if (parse_uint(v, 10, 65535, &u) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected seconds from 0 to 65535, or off",
                                    k->name, v);
                *(uint16_t *) f = (uint16_t) u;
                return 0;
        case K_MTU:
                if (parse_uint(v, 10, 65535, &u) < 0 || u < 576)
                        return fail(p, "invalid %s \"%.64s\"; expected a number from 576 to 65535", k->name, v);
                *(uint32_t *) f = (uint32_t) u;
                return 0;
        case K_FWMARK:
                if (strcasecmp(v, "off") == 0)
                        u = 0;
                else if ((strncasecmp(v, "0x", 2) == 0 ? parse_uint(v + 2, 16, UINT32_MAX, &u)
                                                       : parse_uint(v, 10, UINT32_MAX, &u)) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected a 32-bit number, decimal or 0x hex, or off",
                                    k->name, v);
                *(uint32_t *) f = (uint32_t) u;
                return 0;
        case K_WG_MODE:
                for (enum wg_mode m = WG_MODE_AUTO; m <= WG_MODE_USERSPACE; m++)
                        if (strcasecmp(v, wg_mode_name(m)) == 0) {
                                *(enum wg_mode *) f = m;
                                return 0;
                        }
                return fail(p, "invalid %s \"%.64s\"; expected auto, kernel or userspace", k->name, v);
        case K_DNS_MODE:
                if ((r = parse_enum(v, dns_mode_names, ELEMENTSOF(dns_mode_names))) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected auto, resolved, resolvconf, file or off",
                                    k->name, v);
                *(enum config_dns_mode *) f = (enum config_dns_mode) r;
                return 0;
        case K_BOOL:
                if ((r = parse_bool(v)) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected yes or no (true/false, on/off, 1/0)",
                                    k->name, v);
                *(bool *) f = r;
                return 0;
        case K_REGION:
                if (parse_uint(v, 10, INT_MAX, &u) < 0 || u == 0)
                        return fail(p, "invalid %s \"%.64s\"; expected a DERP region ID from 1 to %d", k->name, v,
                                    INT_MAX);
                *(int *) f = (int) u;
                return 0;
        case K_PUBKEY: {
                uint8_t key[WG_KEY_LEN];
                /* Never the value: it may be a private key pasted in the wrong place. */
                if (wg_key_from_base64(key, v) < 0)
                        return fail(p, "invalid %s; expected 44 characters of base64, as wg pubkey prints",
                                    k->name);
                if (wg_key_is_zero(key))
                        return fail(p, "invalid %s; expected a key that is not all zeros", k->name);
                memcpy(f, key, WG_KEY_LEN);
                return 0;
        }
        case K_ENDPOINT:
                if (wg_endpoint_parse(f, v) < 0)
                        return fail(p, "invalid %s \"%.64s\"; expected IPv4:port or [IPv6]:port with a port from 1 "
                                    "to 65535 (no host names)", k->name, v);
                return 0;
        case K_PREFIXES:
        case K_ADDRS:
        case K_ALLOWEDIPS:
        case K_NAMES:
                return parse_list(p, k, base, v);
        }
        abort();
}

/* ---- Peers --------------------------------------------------------------------------- */

static int check_peer(struct parser *p, const struct config_peer *x) {
        if (wg_key_is_zero(x->public_key))
                return fail(p, "peer has no PublicKey; expected the peer's public key (base64)");
        if (x->n_allowed_ips == 0)
                return fail(p, "peer has no AllowedIPs; expected at least one address or prefix the peer uses");
        return 0;
}

static int file_peer_start(struct parser *p) {
        struct config *c = p->cfg;
        struct peer_lines *l;
        struct config_peer *a;

        if (c->n_peers >= CONFIG_PEERS_MAX)
                return fail(p, "more than %d [Peer] sections; expected at most that many", CONFIG_PEERS_MAX);
        if (!(l = grow(p->peer_lines, c->n_peers, sizeof(*l))))
                return -ENOMEM;
        p->peer_lines = l;
        if (!(a = grow(c->peers, c->n_peers, sizeof(*a))))
                return -ENOMEM;
        c->peers = a;
        a[c->n_peers] = (struct config_peer) {};
        l[c->n_peers] = (struct peer_lines) { .section = p->at.line };
        c->n_peers++;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].section == SECTION_PEER)
                        p->set[i] = (struct where) {};
        return 0;
}

/* The [Peer] being read is complete: check it, and its key against the earlier ones. */
static int file_peer_end(struct parser *p) {
        struct config *c = p->cfg;
        const struct config_peer *x = &c->peers[c->n_peers - 1];
        const struct peer_lines *l = &p->peer_lines[c->n_peers - 1];
        struct where line = p->at;
        int r;

        p->at = (struct where) { .line = l->section };
        if ((r = check_peer(p, x)) < 0)
                return r;
        for (size_t i = 0; i + 1 < c->n_peers; i++)
                if (memcmp(c->peers[i].public_key, x->public_key, WG_KEY_LEN) == 0) {
                        p->at.line = l->key;
                        return fail(p, "PublicKey is the same as the peer's on line %u; expected a different key "
                                    "for each [Peer]", p->peer_lines[i].key);
                }
        p->at = line;
        return 0;
}

/* ---- The file ------------------------------------------------------------------------ */

static int parse_line(struct parser *p, char *s) {
        const struct key *k;
        char *eq, *key, *value, names[160];
        uint8_t *base;
        int r;

        s = strip(s);
        if (*s == '\0' || *s == '#' || *s == ';')
                return 0;
        /* A '#' after whitespace starts a comment, so "Name = a#b" keeps its '#'. */
        for (char *q = s + 1; *q; q++)
                if (*q == '#' && (q[-1] == ' ' || q[-1] == '\t')) {
                        *q = '\0';
                        break;
                }
        s = strip(s);

        if (*s == '[') {
                size_t n = strlen(s);
                if (n < 2 || s[n - 1] != ']')
                        return fail(p, "section header without ']'; expected [Interface], [DNS], [DERP] or [Peer]");
                s[n - 1] = '\0';
                char *name = strip(s + 1);
                int sec = section_lookup(name);
                if (sec < 0)
                        return echoable_name(name)
                                ? fail(p, "unknown section [%s]; expected [Interface], [DNS], [DERP] or [Peer]", name)
                                : fail(p, "unknown section; expected [Interface], [DNS], [DERP] or [Peer]");
                if (p->section == SECTION_PEER && (r = file_peer_end(p)) < 0)
                        return r;
                p->section = sec;
                return sec == SECTION_PEER ? file_peer_start(p) : 0;
        }

        if (!(eq = strchr(s, '=')))
                return fail(p, "not a Key = Value line; expected Key = Value, a [Section] header or a comment");
        *eq = '\0';
        key = strip(s);
        value = strip(eq + 1);
        if (p->section == SECTION_NONE)
                return fail(p, "key before any section; expected a [Section] header first");
        if (!(k = key_lookup(p->section, key)))
                return echoable_name(key)
                        ? fail(p, "unknown key %s in [%s]; expected one of %s", key, section_names[p->section],
                               key_names(p->section, false, names, sizeof(names)))
                        : fail(p, "unknown key in [%s]; expected one of %s", section_names[p->section],
                               key_names(p->section, false, names, sizeof(names)));
        if (!*value)
                return fail(p, "%s has no value; expected a value, or no %s line for the default", k->name,
                            k->name);

        size_t i = (size_t) (k - keys);
        if (!is_list(k) && p->set[i].line)
                return fail(p, "%s is already set on line %u; expected it once%s", k->name, p->set[i].line,
                            p->section == SECTION_PEER ? " per [Peer]" : "");
        base = p->section == SECTION_PEER ? (uint8_t *) &p->cfg->peers[p->cfg->n_peers - 1]
                                          : (uint8_t *) p->cfg;
        if ((r = parse_value(p, k, base, value)) < 0)
                return r;
        p->set[i] = p->at;
        if (k->kind == K_PUBKEY)
                p->peer_lines[p->cfg->n_peers - 1].key = p->at.line;
        return 0;
}

static int parse_file(struct parser *p, const char *data, size_t size) {
        const char *line = data, *end = data + size;
        char buf[LINE_MAX_LEN + 1];
        int r;

        if (size > FILE_MAX_SIZE)
                return fail(p, "larger than %u MiB; expected a smaller file", FILE_MAX_SIZE >> 20);
        if (size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)   /* editors on other systems */
                line += 3;
        for (unsigned no = 1; line < end; no++) {
                const char *nl = memchr(line, '\n', (size_t) (end - line));
                size_t len = (size_t) ((nl ? nl : end) - line);

                p->at = (struct where) { .line = no };
                if (len > LINE_MAX_LEN)
                        return fail(p, "line longer than %d bytes; expected shorter lines", LINE_MAX_LEN);
                memcpy(buf, line, len);
                buf[len] = '\0';
                line = nl ? nl + 1 : end;
                if (len > 0 && buf[len - 1] == '\r')
                        buf[--len] = '\0';
                if (has_control(buf, len))
                        return fail(p, "control character or NUL byte; expected plain text");
                if ((r = parse_line(p, buf)) < 0)
                        return r;
        }
        if (p->section == SECTION_PEER && (r = file_peer_end(p)) < 0)
                return r;
        return 0;
}

/* ---- The environment ----------------------------------------------------------------- */

static struct config_peer *env_peer(struct parser *p, unsigned index) {
        struct env_peer *a;

        for (size_t i = 0; i < p->n_env_peers; i++)
                if (p->env_peers[i].index == index)
                        return &p->env_peers[i].peer;
        if (!(a = grow(p->env_peers, p->n_env_peers, sizeof(*a))))
                return NULL;
        p->env_peers = a;
        a[p->n_env_peers] = (struct env_peer) { .index = index };
        return &a[p->n_env_peers++].peer;
}

/* "PEER<N>": N in 0..CONFIG_PEERS_MAX-1 without leading zeros (PEER01 would alias PEER1). */
static int peer_index(const char *s, unsigned *ret) {
        uint64_t v;

        if (strncasecmp(s, "PEER", 4) != 0 || (s[4] == '0' && s[5]) ||
            parse_uint(s + 4, 10, CONFIG_PEERS_MAX - 1, &v) < 0)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* @name: after "CODERVPND_", up to '='. */
static int parse_env_var(struct parser *p, const char *name, size_t len, const char *value) {
        char sec[32], key[32], names[160];
        const struct key *k;
        const char *us = memchr(name, '_', len);
        unsigned index = 0;
        uint8_t *base;
        int section, r;

        if (!us || (size_t) (us - name) >= sizeof(sec) || len - (size_t) (us - name) - 1 >= sizeof(key))
                return fail(p, "unknown variable; expected CODERVPND_<SECTION>_<KEY> with SECTION one of INTERFACE, "
                            "DNS, DERP or PEER<N>");
        memcpy(sec, name, (size_t) (us - name));
        sec[us - name] = '\0';
        memcpy(key, us + 1, len - (size_t) (us - name) - 1);
        key[len - (size_t) (us - name) - 1] = '\0';

        if (peer_index(sec, &index) == 0)
                section = SECTION_PEER;
        else if ((section = section_lookup(sec)) < 0 || section == SECTION_PEER)
                return fail(p, "unknown variable; expected CODERVPND_<SECTION>_<KEY> with SECTION one of INTERFACE, "
                            "DNS, DERP or PEER<N> (N from 0 to %d)", CONFIG_PEERS_MAX - 1);
        if (!(k = key_lookup(section, key)))
                return fail(p, "unknown variable; expected KEY one of %s",
                            key_names(section, true, names, sizeof(names)));

        size_t vlen = strlen(value);
        if (vlen > ENV_VALUE_MAX)
                return fail(p, "value longer than %u bytes; expected a shorter value", ENV_VALUE_MAX);
        if (has_control(value, vlen))
                return fail(p, "control character in the value; expected plain text");
        _cleanup_free_ char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        char *v = strip(copy);

        if (section == SECTION_PEER) {
                if (!(base = (uint8_t *) env_peer(p, index)))
                        return -ENOMEM;
        } else
                base = (uint8_t *) p->cfg;
        /* The variable replaces the file's value; empty means the default. */
        if (is_list(k) || !*v)
                clear_value(k, base);
        if (*v && (r = parse_value(p, k, base, v)) < 0)
                return r;
        p->set[k - keys] = *v ? p->at : (struct where) {};
        return 0;
}

static int env_peer_cmp(const void *a, const void *b) {
        unsigned x = ((const struct env_peer *) a)->index, y = ((const struct env_peer *) b)->index;
        return x < y ? -1 : x > y;
}

/* Errors about a peer as a whole name "CODERVPND_PEER<N>". */
static void blame_env_peer(struct parser *p, unsigned index) {
        snprintf(p->peer_var, sizeof(p->peer_var), "CODERVPND_PEER%u", index);
        p->at = (struct where) { .var = p->peer_var, .var_len = (int) strlen(p->peer_var) };
}

/* Environment peers, in N order, replace file peers with the same key or are added. */
static int merge_env_peers(struct parser *p) {
        struct config *c = p->cfg;
        int r;

        if (p->n_env_peers > 0)
                qsort(p->env_peers, p->n_env_peers, sizeof(*p->env_peers), env_peer_cmp);
        for (size_t i = 0; i < p->n_env_peers; i++) {
                struct config_peer *x = &p->env_peers[i].peer;
                blame_env_peer(p, p->env_peers[i].index);
                if ((r = check_peer(p, x)) < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (memcmp(p->env_peers[j].peer.public_key, x->public_key, WG_KEY_LEN) == 0)
                                return fail(p, "PublicKey is the same as CODERVPND_PEER%u's; expected a different "
                                            "key for each peer", p->env_peers[j].index);
        }
        for (size_t i = 0; i < p->n_env_peers; i++) {
                struct config_peer *x = &p->env_peers[i].peer, *a;
                struct config_peer *old = (struct config_peer *) config_find_peer(c, x->public_key);

                if (old)
                        clear_section(SECTION_PEER, (uint8_t *) old);
                else {
                        if (c->n_peers >= CONFIG_PEERS_MAX) {
                                blame_env_peer(p, p->env_peers[i].index);
                                return fail(p, "more than %d peers with the file's; expected at most that many",
                                            CONFIG_PEERS_MAX);
                        }
                        if (!(a = grow(c->peers, c->n_peers, sizeof(*a))))
                                return -ENOMEM;
                        c->peers = a;
                        old = &a[c->n_peers++];
                }
                *old = *x;      /* moved: the parser no longer owns it */
                *x = (struct config_peer) {};
        }
        return 0;
}

static int parse_env(struct parser *p, char *const *envp) {
        static const char prefix[] = "CODERVPND_";
        int r;

        for (char *const *e = envp; *e; e++) {
                const char *s = *e, *eq = strchr(s, '=');

                if (!eq || strncmp(s, prefix, strlen(prefix)) != 0)
                        continue;
                /* The test suite's and the VM runner's own knobs. */
                if (strncmp(s, "CODERVPND_TEST_", 15) == 0 || strncmp(s, "CODERVPND_VM_", 13) == 0)
                        continue;
                p->at = (struct where) { .var = s, .var_len = (int) ((size_t) (eq - s) < 256 ? eq - s : 256) };
                if ((r = parse_env_var(p, s + strlen(prefix), (size_t) (eq - s) - strlen(prefix), eq + 1)) < 0)
                        return r;
        }
        return merge_env_peers(p);
}

/* ---- Putting it together ------------------------------------------------------------- */

static int finish(struct parser *p) {
        struct config *c = p->cfg;

        if (c->derp_map_file && c->derp_url) {
                const struct key *map = key_lookup(SECTION_DERP, "MapFile"), *url = key_lookup(SECTION_DERP, "URL");
                char other[PATH_MAX + 16];

                format_where(p, &p->set[map - keys], other, sizeof(other));
                p->at = p->set[url - keys];
                return fail(p, "URL and MapFile (%s) are mutually exclusive; expected one of them", other);
        }
        if (!c->ifname && !(c->ifname = strdup(CONFIG_DEFAULT_IFNAME)))
                return -ENOMEM;
        if (!c->private_key_file && !(c->private_key_file = strdup(CONFIG_DEFAULT_KEY_PATH)))
                return -ENOMEM;
        if (c->mtu == 0)
                c->mtu = CONFIG_DEFAULT_MTU;
        return 0;
}

static void parser_done(struct parser *p) {
        free(p->peer_lines);
        for (size_t i = 0; i < p->n_env_peers; i++)
                clear_section(SECTION_PEER, (uint8_t *) &p->env_peers[i].peer);
        free(p->env_peers);
}

int config_parse_buffer(const char *data, size_t size, const char *name, char *const *envp, struct config **ret,
                        char *error, size_t error_size) {
        _cleanup_config_ struct config *c = calloc(1, sizeof(*c));
        struct parser p = {
                .cfg = c,
                .file = name ? name : "(config)",
                .err = error,
                .err_size = error_size,
                .section = SECTION_NONE,
        };
        int r;

        if (error && error_size)
                error[0] = '\0';
        if (!c)
                r = -ENOMEM;
        else if ((!data || (r = parse_file(&p, data, size)) >= 0) && (!envp || (r = parse_env(&p, envp)) >= 0))
                r = finish(&p);
        parser_done(&p);
        if (r == -ENOMEM) {
                if (error && error_size)
                        snprintf(error, error_size, "%s: out of memory", p.file);
                return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* All of @fd, at most @max bytes (-EFBIG beyond). */
static int read_all(int fd, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, cap = 0;

        for (;;) {
                if (n == cap) {
                        size_t ncap = cap ? 2 * cap : 16384;
                        if (cap > max)
                                return -EFBIG;
                        char *b = realloc(buf, ncap + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        cap = ncap;
                }
                ssize_t k = read(fd, buf + n, cap - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > max)
                return -EFBIG;
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

int config_load(const char *path, char *const *envp, struct config **ret, char *error, size_t error_size) {
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size = 0;
        struct stat st;
        int r;

        if (!path)
                return config_parse_buffer(NULL, 0, NULL, envp, ret, error, error_size);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
                r = -errno;
                return fail_path(error, error_size, r, path, "cannot open: %s; expected a readable configuration file",
                                 strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                return fail_path(error, error_size, r, path, "cannot stat: %s", strerror(-r));
        }
        if (!S_ISREG(st.st_mode))
                return fail_path(error, error_size, -EINVAL, path, "not a regular file; expected a configuration file");
        r = st.st_size > FILE_MAX_SIZE ? -EFBIG : read_all(fd, FILE_MAX_SIZE, &data, &size);
        if (r == -EFBIG)
                return fail_path(error, error_size, -EINVAL, path, "larger than %u MiB; expected a smaller file",
                                 FILE_MAX_SIZE >> 20);
        if (r < 0)
                return fail_path(error, error_size, r, path, "cannot read: %s", strerror(-r));
        return config_parse_buffer(data, size, path, envp, ret, error, error_size);
}

struct config *config_free(struct config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_peers; i++)
                clear_section(SECTION_PEER, (uint8_t *) &c->peers[i]);
        free(c->peers);
        for (int s = 0; s < _SECTION_MAX; s++)
                if (s != SECTION_PEER)
                        clear_section(s, (uint8_t *) c);
        free(c);
        return NULL;
}

const struct config_peer *config_find_peer(const struct config *c, const uint8_t key[WG_KEY_LEN]) {
        for (size_t i = 0; i < c->n_peers; i++)
                if (memcmp(c->peers[i].public_key, key, WG_KEY_LEN) == 0)
                        return &c->peers[i];
        return NULL;
}

static bool string_equal(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

static bool allowedip_equal(const struct wg_allowedip *a, const struct wg_allowedip *b) {
        return a->family == b->family && a->cidr == b->cidr &&
               memcmp(&a->ip6, &b->ip6, a->family == AF_INET ? sizeof(a->ip4) : sizeof(a->ip6)) == 0;
}

static bool value_equal(const struct key *k, const uint8_t *a, const uint8_t *b) {
        const void *x = a + k->offset, *y = b + k->offset;
        size_t n = is_list(k) ? *(const size_t *) (a + k->offset_n) : 0;

        if (is_list(k) && n != *(const size_t *) (b + k->offset_n))
                return false;
        switch (k->kind) {
        case K_TEXT:
        case K_UUID:
                return string_equal(*(char *const *) x, *(char *const *) y);
        case K_KEEPALIVE:
                return *(const uint16_t *) x == *(const uint16_t *) y;
        case K_REGION:
                return *(const int *) x == *(const int *) y;
        case K_PUBKEY:
                return memcmp(x, y, WG_KEY_LEN) == 0;
        case K_ENDPOINT:
                return wg_endpoint_equal(x, y);
        case K_ALLOWEDIPS:
                for (size_t i = 0; i < n; i++)
                        if (!allowedip_equal(&(*(struct wg_allowedip *const *) x)[i],
                                             &(*(struct wg_allowedip *const *) y)[i]))
                                return false;
                return true;
        case K_NAMES:
                for (size_t i = 0; i < n; i++)
                        if (strcmp((*(char **const *) x)[i], (*(char **const *) y)[i]) != 0)
                                return false;
                return true;
        default:
                abort();        /* a [Peer] key of a new kind needs a case here */
        }
}

bool config_peer_equal(const struct config_peer *a, const struct config_peer *b) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].section == SECTION_PEER && !value_equal(&keys[i], (const uint8_t *) a, (const uint8_t *) b))
                        return false;
        return true;
}

/* ---- Keys ---------------------------------------------------------------------------- */

void config_key_to_base64(const uint8_t key[WG_KEY_LEN], char out[45]) {
        wg_key_to_base64(out, key);
}

int config_key_from_base64(const char *s, uint8_t key[WG_KEY_LEN]) {
        return wg_key_from_base64(key, s);
}

static int read_key(const char *path, uint8_t key[WG_KEY_LEN], char *error, size_t error_size) {
        _cleanup_close_ int fd = -EBADF;
        char buf[64];
        size_t n = 0;
        struct stat st;
        int r;

        /* Symlinks are followed: secrets mounted by container runtimes are symlinks. */
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
                r = -errno;
                return fail_path(error, error_size, r, path, "cannot open the private key: %s", strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                return fail_path(error, error_size, r, path, "cannot stat the private key: %s", strerror(-r));
        }
        if (!S_ISREG(st.st_mode))
                return fail_path(error, error_size, -EINVAL, path, "not a regular file; expected a private key file");
        if (st.st_mode & 077)
                return fail_path(error, error_size, -EPERM, path,
                                 "private key is accessible by group or others (mode %04o); expected mode 0600: "
                                 "chmod 600 %s", (unsigned) (st.st_mode & 07777), path);
        while (n < sizeof(buf)) {
                ssize_t k = read(fd, buf + n, sizeof(buf) - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        sodium_memzero(buf, sizeof(buf));
                        return fail_path(error, error_size, r, path, "cannot read the private key: %s", strerror(-r));
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > 0 && buf[n - 1] == '\n')
                n--;
        r = -EINVAL;
        if (n == 44) {
                buf[n] = '\0';
                r = wg_key_from_base64(key, buf);
        }
        sodium_memzero(buf, sizeof(buf));
        if (r < 0)
                return fail_path(error, error_size, -EINVAL, path,
                                 "not a private key; expected 44 characters of base64 on one line, as wg genkey "
                                 "prints");
        return 0;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* A new key in @path, atomically: the file appears whole with mode 0600, or not at all.
 * -EEXIST when another process created it first. */
static int write_new_key(const char *path, uint8_t key[WG_KEY_LEN], char *error, size_t error_size) {
        _cleanup_free_ char *dir = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        char b64[46];
        const char *what;
        char *slash;
        int r;

        if (!(dir = strdup(path)))
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                return fail_path(error, error_size, r, dir, "cannot create the key's directory: %s", strerror(-r));
        }
        if (sodium_init() < 0)
                return fail_path(error, error_size, -EIO, path, "libsodium failed to initialize");
        if (asprintf(&tmp, "%s.%08" PRIx32 ".tmp", path, randombytes_random()) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }

        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                r = -errno;
                return fail_path(error, error_size, r, tmp, "cannot create the new private key: %s", strerror(-r));
        }
        wg_key_generate_private(key);
        wg_key_to_base64(b64, key);
        b64[44] = '\n';
        b64[45] = '\0';
        what = "write";
        r = write_all(fd, b64, 45);
        sodium_memzero(b64, sizeof(b64));
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        if (r == 0) {
                what = "rename";
                /* Never replace a key another process wrote meanwhile: its key would change under it. */
                if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
                        r = -errno;
                        if (r == -EINVAL || r == -ENOSYS)   /* file systems without RENAME_NOREPLACE */
                                r = rename(tmp, path) < 0 ? -errno : 0;
                }
        }
        if (r < 0) {
                unlink(tmp);
                sodium_memzero(key, WG_KEY_LEN);
                if (r == -EEXIST)
                        return r;
                return fail_path(error, error_size, r, tmp, "cannot %s the new private key: %s", what, strerror(-r));
        }
        /* The rename itself must survive a crash, or the next start makes another key. */
        if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
                (void) fsync(dfd);
        return 0;
}

int config_load_private_key(const char *path, bool create, uint8_t key[WG_KEY_LEN], char *error,
                            size_t error_size) {
        int r;

        if (error && error_size)
                error[0] = '\0';
        r = read_key(path, key, error, error_size);
        if (r != -ENOENT || !create)
                return r;
        r = write_new_key(path, key, error, error_size);
        if (r == -EEXIST)
                return read_key(path, key, error, error_size);
        if (r == 0 && error && error_size)
                error[0] = '\0';
        return r;
}
