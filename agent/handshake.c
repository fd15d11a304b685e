/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "handshake.h"

static const char *const role_names[_VPN_ROLE_MAX] = {
        [VPN_ROLE_MANAGER] = "manager",
        [VPN_ROLE_TUNNEL] = "tunnel",
        [VPN_ROLE_CLIENT] = "client",
        [VPN_ROLE_SERVICE] = "service",
};

const char *vpn_role_name(enum vpn_role role) {
        return role < _VPN_ROLE_MAX ? role_names[role] : "?";
}

enum vpn_role vpn_role_peer(enum vpn_role role) {
        switch (role) {
        case VPN_ROLE_MANAGER: return VPN_ROLE_TUNNEL;
        case VPN_ROLE_TUNNEL: return VPN_ROLE_MANAGER;
        case VPN_ROLE_CLIENT: return VPN_ROLE_SERVICE;
        default: return VPN_ROLE_CLIENT;
        }
}

/* Base-10 digits only, no sign, no overflow past UINT32_MAX. */
static int parse_u32(const char *s, size_t len, uint32_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 10)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_version(const char *s, size_t len, struct vpn_version *ret) {
        const char *dot = memchr(s, '.', len);

        if (!dot)
                return -EINVAL;
        size_t major_len = (size_t) (dot - s);
        if (parse_u32(s, major_len, &ret->major) < 0 ||
            parse_u32(dot + 1, len - major_len - 1, &ret->minor) < 0)
                return -EINVAL;   /* a second '.' fails the digit check */
        return ret->major >= 1 ? 0 : -EINVAL;
}

int vpn_versions_parse(const char *s, size_t len, struct vpn_version *out, size_t *n_out) {
        size_t n = 0;
        const char *end = s + len;

        for (const char *p = s;; ) {
                const char *comma = memchr(p, ',', (size_t) (end - p));
                const char *item_end = comma ? comma : end;

                if (n == VPN_MAX_VERSIONS)
                        return -EINVAL;
                if (parse_version(p, (size_t) (item_end - p), &out[n]) < 0)
                        return -EINVAL;
                if (n > 0 && out[n].major <= out[n - 1].major)
                        return -EINVAL;   /* majors ascend, so no duplicates either */
                n++;
                if (!comma)
                        break;
                p = comma + 1;
        }
        *n_out = n;
        return 0;
}

int vpn_header_parse(const char *line, size_t len, struct vpn_header *ret) {
        const char *end = line + len;
        const char *sp1, *sp2;

        if (len > VPN_HEADER_MAX)
                return -EINVAL;
        sp1 = memchr(line, ' ', len);
        if (!sp1)
                return -EINVAL;
        sp2 = memchr(sp1 + 1, ' ', (size_t) (end - sp1 - 1));
        if (!sp2 || memchr(sp2 + 1, ' ', (size_t) (end - sp2 - 1)))
                return -EINVAL;
        if ((size_t) (sp1 - line) != strlen("codervpn") || memcmp(line, "codervpn", sp1 - line) != 0)
                return -EINVAL;

        size_t role_len = (size_t) (sp2 - sp1 - 1);
        enum vpn_role role = _VPN_ROLE_MAX;
        for (enum vpn_role r = 0; r < _VPN_ROLE_MAX; r++)
                if (strlen(role_names[r]) == role_len && memcmp(sp1 + 1, role_names[r], role_len) == 0)
                        role = r;
        if (role == _VPN_ROLE_MAX)
                return -EPROTO;

        ret->role = role;
        return vpn_versions_parse(sp2 + 1, (size_t) (end - sp2 - 1), ret->versions, &ret->n_versions);
}

int vpn_header_format(const struct vpn_header *h, char *buf, size_t size) {
        size_t limit = size < VPN_HEADER_MAX + 2 ? size : VPN_HEADER_MAX + 2;
        size_t off;
        int n;

        if (h->role >= _VPN_ROLE_MAX || h->n_versions == 0)
                return -EINVAL;
        n = snprintf(buf, limit, "codervpn %s ", role_names[h->role]);
        if (n < 0 || (size_t) n >= limit)
                return -ENOBUFS;
        off = (size_t) n;
        for (size_t i = 0; i < h->n_versions; i++) {
                n = snprintf(buf + off, limit - off, "%s%u.%u", i ? "," : "",
                             h->versions[i].major, h->versions[i].minor);
                if (n < 0 || (size_t) n >= limit - off)
                        return -ENOBUFS;
                off += (size_t) n;
        }
        if (off + 1 >= limit)   /* room for '\n' and the terminator */
                return -ENOBUFS;
        buf[off++] = '\n';
        buf[off] = '\0';
        return (int) off;
}

int vpn_version_negotiate(const struct vpn_version *ours, size_t n_ours,
                          const struct vpn_version *theirs, size_t n_theirs,
                          struct vpn_version *ret) {
        for (size_t i = n_ours; i-- > 0; )
                for (size_t j = n_theirs; j-- > 0; )
                        if (ours[i].major == theirs[j].major) {
                                ret->major = ours[i].major;
                                ret->minor = ours[i].minor < theirs[j].minor ? ours[i].minor : theirs[j].minor;
                                return 0;
                        }
        return -EPROTONOSUPPORT;
}
