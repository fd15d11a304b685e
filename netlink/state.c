/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "state.h"

#define STATE_MAGIC "codervpnd-network-state 1"

int net_state_save(const char *path, const struct net_state *s) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        char buf[512];
        int len;

        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        len = snprintf(buf, sizeof(buf), STATE_MAGIC "\nifname=%s\nmode=%s\ntable=%u\nrule_priority=%u\nfwmark=%u\n",
                       s->ifname, wg_mode_name(s->mode), s->policy.table, s->policy.rule_priority, s->policy.fwmark);
        if (len < 0 || (size_t) len >= sizeof(buf))
                return -ENOBUFS;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (write(fd, buf, (size_t) len) != len || fsync(fd) < 0) {
                int e = errno ? errno : EIO;
                unlink(tmp);
                return -e;
        }
        if (rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                return -e;
        }
        return 0;
}

static int parse_u32(const char *v, uint32_t *ret) {
        char *end;
        errno = 0;
        unsigned long x = strtoul(v, &end, 10);
        if (errno || end == v || *end || x > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t) x;
        return 0;
}

int net_state_load(const char *path, struct net_state *s) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        char line[256];
        unsigned seen = 0;

        if (!f)
                return -errno;
        *s = (struct net_state) {};
        if (!fgets(line, sizeof(line), f) || strcmp(line, STATE_MAGIC "\n") != 0)
                return -EBADMSG;
        while (fgets(line, sizeof(line), f)) {
                char *eq = strchr(line, '='), *nl = strchr(line, '\n');
                if (!eq || !nl)
                        return -EBADMSG;
                *eq = *nl = '\0';
                const char *k = line, *v = eq + 1;
                int r = 0;
                if (strcmp(k, "ifname") == 0) {
                        if (!*v || strlen(v) >= IFNAMSIZ || strchr(v, '/'))
                                return -EBADMSG;
                        strcpy(s->ifname, v);
                        seen |= 1;
                } else if (strcmp(k, "mode") == 0) {
                        if (strcmp(v, "kernel") == 0)
                                s->mode = WG_MODE_KERNEL;
                        else if (strcmp(v, "userspace") == 0)
                                s->mode = WG_MODE_USERSPACE;
                        else
                                return -EBADMSG;
                        seen |= 2;
                } else if (strcmp(k, "table") == 0) {
                        r = parse_u32(v, &s->policy.table);
                        seen |= 4;
                } else if (strcmp(k, "rule_priority") == 0) {
                        r = parse_u32(v, &s->policy.rule_priority);
                        seen |= 8;
                } else if (strcmp(k, "fwmark") == 0) {
                        r = parse_u32(v, &s->policy.fwmark);
                        seen |= 16;
                }
                if (r < 0)
                        return r;
        }
        return seen == 31 && s->policy.table && s->policy.rule_priority >= 2 ? 0 : -EBADMSG;
}

int net_state_cleanup(const char *path) {
        _cleanup_(wg_freep) struct wg *w = NULL;
        _cleanup_(netcfg_closep) struct netcfg *n = NULL;
        struct net_state s;
        int r, first_error = 0;

        r = net_state_load(path, &s);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = wg_open(&w, s.ifname, s.mode);
        if (r == 0) {
                r = wg_delete(w);
                if (r < 0 && r != -ENODEV)
                        first_error = r;
        } else
                first_error = r;
        if ((r = netcfg_open(&n)) < 0 || (r = net_teardown(n, &s.policy)) < 0)
                first_error = first_error ?: r;
        if (first_error)
                return first_error;   /* keep the file: the next cleanup tries again */
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 1;
}
