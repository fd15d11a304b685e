/* SPDX-License-Identifier: MIT */
/* DNS without resolved: mode detection, resolvconf(8), /etc/resolv.conf in place. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "resolvconf.h"

#define MAX_FILE (1024 * 1024)
#define MAXNS 3
#define OUTPUT_KEEP 1024

static void seterr(char **error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(char **error, const char *fmt, ...) {
        va_list ap;

        if (!error)
                return;
        free(*error);
        *error = NULL;
        va_start(ap, fmt);
        if (vasprintf(error, fmt, ap) < 0)
                *error = NULL;
        va_end(ap);
}

static const char *path_resolv(const struct resolvconf_paths *p) {
        return p && p->resolv_conf ? p->resolv_conf : RESOLVCONF_DEFAULT_RESOLV_CONF;
}
static const char *path_nsswitch(const struct resolvconf_paths *p) {
        return p && p->nsswitch_conf ? p->nsswitch_conf : RESOLVCONF_DEFAULT_NSSWITCH;
}
static const char *path_backup(const struct resolvconf_paths *p) {
        return p && p->backup ? p->backup : RESOLVCONF_DEFAULT_BACKUP;
}

const char *dns_mode_to_string(enum dns_mode m) {
        switch (m) {
        case DNS_MODE_RESOLVED: return "resolved";
        case DNS_MODE_RESOLVCONF: return "resolvconf";
        case DNS_MODE_DIRECT: return "direct";
        case DNS_MODE_OFF: return "off";
        }
        return "unknown";
}

/* ---- Files ---------------------------------------------------------------------------- */

static int read_fd_all(int fd, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        for (;;) {
                if (len + 4096 + 1 > cap) {
                        if (cap >= MAX_FILE)
                                return -EFBIG;
                        size_t ncap = cap ? cap * 2 : 8192;
                        char *n = realloc(buf, ncap);
                        if (!n)
                                return -ENOMEM;
                        buf = n, cap = ncap;
                }
                ssize_t k = read(fd, buf + len, cap - len - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[len] = 0;
        if (strlen(buf) != len)
                return -EBADMSG;  /* NUL bytes: not a text file we understand */
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

static int read_text(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_fd_all(fd, ret, NULL);
}

static int write_all(int fd, const char *data, size_t len, off_t off) {
        while (len > 0) {
                ssize_t k = pwrite(fd, data, len, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += k, len -= (size_t) k, off += k;
        }
        return 0;
}

/* In place: same inode, works through bind mounts and symlinks. Written first, then
 * cut to length, so a reader never sees an empty file. */
static int write_in_place(const char *path, const char *data) {
        size_t len = strlen(data);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        int r;

        if (fd < 0)
                return -errno;
        r = write_all(fd, data, len, 0);
        if (r < 0)
                return r;
        if (ftruncate(fd, (off_t) len) < 0)
                return -errno;
        if (fsync(fd) < 0 && errno != EINVAL)
                return -errno;
        return 0;
}

static int mkdir_parents(const char *path) {
        _cleanup_free_ char *d = strdup(path);
        if (!d)
                return -ENOMEM;
        for (char *s = d + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(d, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static int write_atomic(const char *path, const char *data, mode_t mode) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        r = mkdir_parents(path);
        if (r < 0)
                return r;
        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode) < 0)
                goto fail_errno;
        r = write_all(fd, data, strlen(data), 0);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0)
                goto fail_errno;
        if (rename(tmp, path) < 0)
                goto fail_errno;
        {
                _cleanup_free_ char *dir = strdup(path);
                char *slash = dir ? strrchr(dir, '/') : NULL;
                if (slash) {
                        *(slash == dir ? slash + 1 : slash) = 0;
                        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (dfd >= 0)
                                (void) fsync(dfd);
                }
        }
        return 0;
fail_errno:
        r = -errno;
fail:
        (void) unlink(tmp);
        return r;
}

/* ---- Parsing ------------------------------------------------------------------------------ */

/* Next line of *s (NUL-terminated copy in buf, comments not stripped); false at the end. */
static bool next_line(const char **s, char *buf, size_t size) {
        const char *p = *s, *e;
        size_t n;

        if (!*p)
                return false;
        e = strchr(p, '\n');
        n = e ? (size_t) (e - p) : strlen(p);
        *s = e ? e + 1 : p + n;
        if (n >= size)
                n = size - 1;  /* over-long lines are cut; resolv.conf lines are short */
        memcpy(buf, p, n);
        buf[n] = 0;
        return true;
}

static const char WS[] = " \t\r\v\f";

bool nsswitch_resolve_before_dns(const char *text) {
        char line[4096];
        const char *s = text;

        while (text && next_line(&s, line, sizeof(line))) {
                char *save = NULL, *tok, *hash = strchr(line, '#');
                bool in_bracket = false;

                if (hash)
                        *hash = 0;
                tok = strtok_r(line, WS, &save);
                if (!tok || strcmp(tok, "hosts:") != 0) {
                        if (!tok || strncmp(tok, "hosts:", 6) != 0)
                                continue;
                        tok += 6;   /* "hosts:files" */
                } else
                        tok = strtok_r(NULL, WS, &save);
                /* The first hosts line is the one glibc uses. */
                for (; tok; tok = strtok_r(NULL, WS, &save)) {
                        if (in_bracket || tok[0] == '[') {
                                in_bracket = !strchr(tok, ']');
                                continue;
                        }
                        if (strcmp(tok, "resolve") == 0)
                                return true;
                        if (strcmp(tok, "dns") == 0)
                                return false;
                }
                return false;
        }
        return false;
}

/* Calls f for each (keyword, rest-of-line) of a resolv.conf text. */
typedef int (*rc_line_fn)(const char *key, char *rest, const char *raw, void *userdata);

static int rc_foreach(const char *text, rc_line_fn f, void *userdata) {
        char line[4096], raw[4096];
        const char *s = text;

        while (text && next_line(&s, line, sizeof(line))) {
                char *save = NULL, *key;
                int r;

                memcpy(raw, line, sizeof(raw));
                if (line[0] == '#' || line[0] == ';')
                        continue;
                key = strtok_r(line, WS, &save);
                if (!key || key[0] == '#' || key[0] == ';')
                        continue;
                r = f(key, save, raw, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

struct stub_count {
        unsigned total, stub;
};

static int count_ns(const char *key, char *rest, const char *raw, void *userdata) {
        struct stub_count *c = userdata;
        char *save = NULL, *addr;

        if (strcmp(key, "nameserver") != 0)
                return 0;
        addr = strtok_r(rest, WS, &save);
        if (!addr)
                return 0;
        c->total++;
        if (strcmp(addr, "127.0.0.53") == 0)
                c->stub++;
        return 0;
}

bool resolv_conf_only_stub(const char *text) {
        struct stub_count c = { 0, 0 };

        (void) rc_foreach(text, count_ns, &c);
        return c.total > 0 && c.total == c.stub;
}

bool resolv_conf_has_marker(const char *text) {
        return text && strncmp(text, RESOLVCONF_MARKER, strlen(RESOLVCONF_MARKER)) == 0;
}

/* ---- Detection -------------------------------------------------------------------------- */

static bool is_systemd_resolvconf(const char *bin) {
        _cleanup_free_ char *real = realpath(bin, NULL);
        const char *base;

        if (!real)
                return false;
        base = strrchr(real, '/');
        base = base ? base + 1 : real;
        return strcmp(base, "resolvectl") == 0 || strcmp(base, "systemctl") == 0;
}

const char *resolvconf_find_binary(const struct resolvconf_paths *p) {
        static const char *const candidates[] = { "/usr/sbin/resolvconf", "/sbin/resolvconf",
                                                  "/usr/bin/resolvconf" };

        if (p && p->resolvconf_bin) {
                if (!p->resolvconf_bin[0] || strcmp(p->resolvconf_bin, "none") == 0)
                        return NULL;
                return access(p->resolvconf_bin, X_OK) == 0 && !is_systemd_resolvconf(p->resolvconf_bin)
                               ? p->resolvconf_bin : NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
                if (access(candidates[i], X_OK) == 0 && !is_systemd_resolvconf(candidates[i]))
                        return candidates[i];
        return NULL;
}

int dns_mode_detect(const struct resolvconf_paths *p, bool resolved_on_bus, enum dns_mode *ret,
                    char **reason) {
        _cleanup_free_ char *ns = NULL, *rc = NULL;
        const char *bin;
        int r_ns, r_rc;

        r_ns = read_text(path_nsswitch(p), &ns);
        if (r_ns < 0 && r_ns != -ENOENT)
                return seterr(reason, "%s: %s", path_nsswitch(p), strerror(-r_ns)), r_ns;
        r_rc = read_text(path_resolv(p), &rc);
        if (r_rc < 0 && r_rc != -ENOENT)
                return seterr(reason, "%s: %s", path_resolv(p), strerror(-r_rc)), r_rc;

        if (resolved_on_bus) {
                if (ns && nsswitch_resolve_before_dns(ns)) {
                        *ret = DNS_MODE_RESOLVED;
                        seterr(reason, "%s: hosts lists resolve before dns", path_nsswitch(p));
                        return 0;
                }
                if (rc && resolv_conf_only_stub(rc)) {
                        *ret = DNS_MODE_RESOLVED;
                        seterr(reason, "%s: every nameserver is 127.0.0.53", path_resolv(p));
                        return 0;
                }
        }
        bin = resolvconf_find_binary(p);
        if (bin) {
                *ret = DNS_MODE_RESOLVCONF;
                seterr(reason, "%s; %s found", resolved_on_bus ? "resolved is not the resolver" :
                       "resolved is not on the bus", bin);
                return 0;
        }
        if (!rc) {
                *ret = DNS_MODE_OFF;
                seterr(reason, "%s does not exist and there is no resolvconf", path_resolv(p));
                return 0;
        }
        *ret = DNS_MODE_DIRECT;
        seterr(reason, "%s; no resolvconf; writing %s", resolved_on_bus ? "resolved is not the resolver" :
               "resolved is not on the bus", path_resolv(p));
        return 0;
}

/* ---- Rendering -------------------------------------------------------------------------- */

struct strv {
        char **v;
        size_t n;
};

static void strv_done(struct strv *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        s->v = NULL, s->n = 0;
}

static bool strv_has(const struct strv *s, const char *x) {
        for (size_t i = 0; i < s->n; i++)
                if (strcasecmp(s->v[i], x) == 0)
                        return true;
        return false;
}

/* Adds x (a trailing dot dropped) unless empty, "." or present. */
static int strv_add_domain(struct strv *s, const char *x) {
        size_t len = strlen(x);
        char *d, **n;

        if (len > 0 && x[len - 1] == '.')
                len--;
        if (len == 0)
                return 0;
        d = strndup(x, len);
        if (!d)
                return -ENOMEM;
        if (strv_has(s, d)) {
                free(d);
                return 0;
        }
        n = realloc(s->v, (s->n + 1) * sizeof(*n));
        if (!n) {
                free(d);
                return -ENOMEM;
        }
        s->v = n;
        s->v[s->n++] = d;
        return 0;
}

static int strv_add(struct strv *s, const char *x) {
        char **n = realloc(s->v, (s->n + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        s->v = n;
        if (!(s->v[s->n] = strdup(x)))
                return -ENOMEM;
        s->n++;
        return 0;
}

static int format_server(const struct dns_server *s, char *buf, size_t size, char **error) {
        if (s->family != AF_INET && s->family != AF_INET6)
                return seterr(error, "DNS server with address family %u", s->family), -EAFNOSUPPORT;
        if (s->port != 0 && s->port != 53) {
                inet_ntop(s->family, s->addr, buf, (socklen_t) size);
                return seterr(error, "DNS server %s uses port %u; resolv.conf cannot say so", buf, s->port),
                       -EINVAL;
        }
        if (!inet_ntop(s->family, s->addr, buf, (socklen_t) size))
                return seterr(error, "DNS server: %s", strerror(errno)), -errno;
        return 0;
}

struct original {
        struct strv ns, search, other;  /* other: options and sortlist lines, verbatim */
};

static int collect_original(const char *key, char *rest, const char *raw, void *userdata) {
        struct original *o = userdata;
        char *save = NULL, *tok;
        int r;

        if (strcmp(key, "nameserver") == 0) {
                tok = strtok_r(rest, WS, &save);
                return tok ? strv_add(&o->ns, tok) : 0;
        }
        if (strcmp(key, "search") == 0 || strcmp(key, "domain") == 0) {
                /* The last search/domain line wins in glibc; ours comes first anyway. */
                for (tok = strtok_r(rest, WS, &save); tok; tok = strtok_r(NULL, WS, &save))
                        if ((r = strv_add_domain(&o->search, tok)) < 0)
                                return r;
                return 0;
        }
        if (strcmp(key, "options") == 0 || strcmp(key, "sortlist") == 0) {
                size_t n = strlen(raw);
                _cleanup_free_ char *line = strdup(raw);
                if (!line)
                        return -ENOMEM;
                while (n > 0 && strchr(WS, line[n - 1]))
                        line[--n] = 0;
                return strv_add(&o->other, line);
        }
        return 0;
}

static int render(const struct dns_config *c, const char *original, const char *backup_path, bool direct,
                  char **ret, char **error) {
        struct original o = {};
        struct strv servers = {}, search = {};
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = NULL;
        int r;

        if (!c)
                return seterr(error, "no DNS configuration"), -EINVAL;
        for (size_t i = 0; i < c->n_servers; i++) {
                char a[INET6_ADDRSTRLEN];
                r = format_server(&c->servers[i], a, sizeof(a), error);
                if (r < 0)
                        goto out;
                if (!strv_has(&servers, a) && (r = strv_add(&servers, a)) < 0)
                        goto out;
        }
        if (servers.n == 0) {
                r = -EINVAL;
                seterr(error, "no DNS servers to write");
                goto out;
        }
        for (size_t i = 0; i < c->n_search_domains; i++)
                if ((r = strv_add_domain(&search, c->search_domains[i])) < 0)
                        goto out;
        if (!c->match_domains_no_search)
                for (size_t i = 0; i < c->n_match_domains; i++)
                        if ((r = strv_add_domain(&search, c->match_domains[i])) < 0)
                                goto out;
        if (direct && original) {
                r = rc_foreach(original, collect_original, &o);
                if (r < 0)
                        goto out;
                for (size_t i = 0; i < o.ns.n && servers.n < MAXNS; i++)
                        if (!strv_has(&servers, o.ns.v[i]) && (r = strv_add(&servers, o.ns.v[i])) < 0)
                                goto out;
                for (size_t i = 0; i < o.search.n; i++)
                        if ((r = strv_add_domain(&search, o.search.v[i])) < 0)
                                goto out;
        }

        f = open_memstream(&buf, &size);
        if (!f) {
                r = -ENOMEM;
                goto out;
        }
        if (direct)
                fprintf(f, "%s the original is in %s; do not edit\n", RESOLVCONF_MARKER,
                        backup_path ? backup_path : RESOLVCONF_DEFAULT_BACKUP);
        for (size_t i = 0; i < servers.n && (!direct || i < MAXNS); i++)
                fprintf(f, "nameserver %s\n", servers.v[i]);
        if (search.n > 0) {
                fputs("search", f);
                for (size_t i = 0; i < search.n; i++)
                        fprintf(f, " %s", search.v[i]);
                fputc('\n', f);
        }
        for (size_t i = 0; i < o.other.n; i++)
                fprintf(f, "%s\n", o.other.v[i]);
        if (fclose(f) != 0) {
                f = NULL;
                r = -ENOMEM;
                goto out;
        }
        *ret = TAKE_PTR(buf);
        r = 0;
out:
        if (r == -ENOMEM)
                seterr(error, "out of memory");
        strv_done(&servers);
        strv_done(&search);
        strv_done(&o.ns);
        strv_done(&o.search);
        strv_done(&o.other);
        return r;
}

int resolvconf_render_direct(const struct dns_config *c, const char *original, const char *backup_path,
                             char **ret, char **error) {
        return render(c, original, backup_path, true, ret, error);
}

int resolvconf_render_plain(const struct dns_config *c, char **ret, char **error) {
        return render(c, NULL, NULL, false, ret, error);
}

/* ---- Direct mode ------------------------------------------------------------------------ */

int resolvconf_direct_apply(const struct resolvconf_paths *p, const struct dns_config *c, char **error) {
        _cleanup_free_ char *current = NULL, *original = NULL, *text = NULL;
        const char *rc = path_resolv(p), *bk = path_backup(p);
        int r;

        r = read_text(rc, &current);
        if (r < 0)
                return seterr(error, "reading %s: %s", rc, strerror(-r)), r;

        if (resolv_conf_has_marker(current)) {
                /* A previous run did not restore it: the backup is the original; keep it. */
                r = read_text(bk, &original);
                if (r == -ENOENT)
                        return seterr(error, "%s carries codervpnd's marker but the backup %s is missing; "
                                      "not guessing the original (restore %s by hand)", rc, bk, rc), r;
                if (r < 0)
                        return seterr(error, "reading %s: %s", bk, strerror(-r)), r;
                if (resolv_conf_has_marker(original))
                        return seterr(error, "the backup %s carries codervpnd's marker itself; "
                                      "not using it", bk), -EBADMSG;
        } else {
                original = TAKE_PTR(current);
                r = write_atomic(bk, original, 0644);
                if (r < 0)
                        return seterr(error, "backing up %s to %s: %s", rc, bk, strerror(-r)), r;
        }

        r = resolvconf_render_direct(c, original, bk, &text, error);
        if (r < 0)
                return r;
        r = write_in_place(rc, text);
        if (r < 0) {
                int k = write_in_place(rc, original);
                return seterr(error, "writing %s: %s%s", rc, strerror(-r),
                              k < 0 ? "; putting the original back failed too" : ""), r;
        }
        return 0;
}

int resolvconf_direct_restore(const struct resolvconf_paths *p, char **error) {
        _cleanup_free_ char *current = NULL, *original = NULL;
        const char *rc = path_resolv(p), *bk = path_backup(p);
        int r;

        r = read_text(rc, &current);
        if (r == -ENOENT)
                current = NULL;
        else if (r < 0)
                return seterr(error, "reading %s: %s", rc, strerror(-r)), r;

        if (!current || !resolv_conf_has_marker(current)) {
                /* Not ours (any more): leave the file; a backup left by a stop that was
                 * interrupted after restoring is stale. */
                if (unlink(bk) < 0 && errno != ENOENT)
                        return seterr(error, "removing %s: %s", bk, strerror(errno)), -errno;
                return 0;
        }
        r = read_text(bk, &original);
        if (r == -ENOENT)
                return seterr(error, "%s carries codervpnd's marker but the backup %s is missing; "
                              "leaving it as it is (restore it by hand)", rc, bk), r;
        if (r < 0)
                return seterr(error, "reading %s: %s", bk, strerror(-r)), r;
        if (resolv_conf_has_marker(original))
                return seterr(error, "the backup %s carries codervpnd's marker itself; not restoring from it",
                              bk), -EBADMSG;
        r = write_in_place(rc, original);
        if (r < 0)
                return seterr(error, "restoring %s: %s", rc, strerror(-r)), r;
        if (unlink(bk) < 0 && errno != ENOENT)
                return seterr(error, "%s restored, but removing %s: %s", rc, bk, strerror(errno)), -errno;
        return 1;
}

/* ---- resolvconf mode -------------------------------------------------------------------- */

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int check_ifname(const char *ifname, char **error) {
        if (!ifname || !ifname[0] || strlen(ifname) >= 16 || ifname[0] == '-' || strchr(ifname, '/') ||
            strpbrk(ifname, " \t\n"))
                return seterr(error, "invalid interface name '%s'", ifname ? ifname : ""), -EINVAL;
        return 0;
}

static void append_output(char *out, size_t *len, const char *data, size_t n) {
        size_t room = OUTPUT_KEEP - *len;
        if (n > room)
                n = room;
        memcpy(out + *len, data, n);
        *len += n;
        out[*len] = 0;
}

static int run(const struct resolvconf_paths *p, char *const argv[], const char *input, char **error) {
        const char *bin = resolvconf_find_binary(p);
        int sv[2] = { -1, -1 }, out[2] = { -1, -1 }, ex[2] = { -1, -1 };
        int timeout = p && p->timeout_ms > 0 ? p->timeout_ms : RESOLVCONF_TIMEOUT_MS;
        char output[OUTPUT_KEEP + 1] = "", cmd[256] = "";
        size_t out_len = 0, in_len = input ? strlen(input) : 0, in_off = 0;
        int status = 0, exec_errno = 0, r = 0, pidfd = -1;
        bool exited = false, timed_out = false;
        long long deadline;
        pid_t pid;

        for (size_t i = 0; argv[i]; i++) {
                size_t l = strlen(cmd);
                snprintf(cmd + l, sizeof(cmd) - l, "%s%s", i ? " " : "", i ? argv[i] : (bin ? bin : "resolvconf"));
        }
        if (!bin) {
                if (p && p->resolvconf_bin && p->resolvconf_bin[0] && strcmp(p->resolvconf_bin, "none") != 0)
                        seterr(error, "resolvconf binary %s is missing, not executable or systemd's "
                               "(resolvectl)", p->resolvconf_bin);
                else
                        seterr(error, "no resolvconf binary (looked in /usr/sbin, /sbin, /usr/bin)");
                return -ENOENT;
        }

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
            pipe2(ex, O_CLOEXEC) < 0) {
                r = -errno;
                seterr(error, "running %s: %s", cmd, strerror(errno));
                goto close_all;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                seterr(error, "running %s: fork: %s", cmd, strerror(errno));
                goto close_all;
        }
        if (pid == 0) {
                sigset_t none;
                int e;

                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                if (dup2(sv[1], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
                        _exit(127);
                /* Everything else the caller had open stays out of the child. */
                (void) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
                execv(bin, argv);
                e = errno;
                (void) !write(ex[1], &e, sizeof(e));
                _exit(127);
        }
        close(sv[1]), sv[1] = -1;
        close(out[1]), out[1] = -1;
        close(ex[1]), ex[1] = -1;
        /* Wakes the poll below when the child exits (Linux >= 5.3; else the 50 ms tick does). */
#ifdef SYS_pidfd_open
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
#endif
        (void) fcntl(sv[0], F_SETFL, O_NONBLOCK);
        (void) fcntl(out[0], F_SETFL, O_NONBLOCK);
        if (in_len == 0)
                close(sv[0]), sv[0] = -1;

        deadline = now_ms() + timeout;
        for (;;) {
                struct pollfd fds[3];
                nfds_t n = 0;
                long long left;
                char b[4096];

                if (!exited && waitpid(pid, &status, WNOHANG) == pid)
                        exited = true;
                if (exited) {
                        ssize_t k;
                        while (out[0] >= 0 && (k = read(out[0], b, sizeof(b))) > 0)
                                append_output(output, &out_len, b, (size_t) k);
                        break;
                }
                left = deadline - now_ms();
                if (left <= 0) {
                        kill(pid, SIGKILL);
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        timed_out = true;
                        break;
                }
                if (sv[0] >= 0)
                        fds[n++] = (struct pollfd) { .fd = sv[0], .events = POLLOUT };
                if (out[0] >= 0)
                        fds[n++] = (struct pollfd) { .fd = out[0], .events = POLLIN };
                if (pidfd >= 0)
                        fds[n++] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
                if (poll(fds, n, left < 50 ? (int) left : 50) < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                for (nfds_t i = 0; i < n; i++) {
                        if (!fds[i].revents || fds[i].fd == pidfd)
                                continue;
                        if (fds[i].fd == sv[0]) {
                                ssize_t k = send(sv[0], input + in_off, in_len - in_off,
                                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                                if (k > 0)
                                        in_off += (size_t) k;
                                if ((k < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len)
                                        close(sv[0]), sv[0] = -1;  /* EOF for the child's stdin */
                        } else {
                                ssize_t k = read(out[0], b, sizeof(b));
                                if (k > 0)
                                        append_output(output, &out_len, b, (size_t) k);
                                else if (k == 0 || (errno != EAGAIN && errno != EINTR))
                                        close(out[0]), out[0] = -1;
                        }
                }
        }
        if (read(ex[0], &exec_errno, sizeof(exec_errno)) != (ssize_t) sizeof(exec_errno))
                exec_errno = 0;

        while (out_len > 0 && strchr("\n\r\t ", output[out_len - 1]))
                output[--out_len] = 0;
        if (r < 0)
                seterr(error, "running %s: %s", cmd, strerror(-r));
        else if (timed_out) {
                r = -ETIMEDOUT;
                seterr(error, "%s did not finish within %d ms; killed", cmd, timeout);
        } else if (exec_errno) {
                r = -exec_errno;
                seterr(error, "cannot execute %s: %s", bin, strerror(exec_errno));
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
                r = -EIO;
                seterr(error, "%s exited with status %d%s%s", cmd, WEXITSTATUS(status), out_len ? ": " : "",
                       output);
        } else if (WIFSIGNALED(status)) {
                r = -EIO;
                seterr(error, "%s was killed by signal %d", cmd, WTERMSIG(status));
        }
close_all:
        closep(&pidfd);
        for (int i = 0; i < 2; i++) {
                closep(&sv[i]);
                closep(&out[i]);
                closep(&ex[i]);
        }
        return r;
}

int resolvconf_cmd_apply(const struct resolvconf_paths *p, const char *ifname, const struct dns_config *c,
                         char **error) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = check_ifname(ifname, error);
        if (r < 0)
                return r;
        r = resolvconf_render_plain(c, &text, error);
        if (r < 0)
                return r;
        char *argv[] = { (char *) "resolvconf", (char *) "-a", (char *) ifname, (char *) "-m",
                         (char *) "0", (char *) "-x", NULL };
        return run(p, argv, text, error);
}

int resolvconf_cmd_remove(const struct resolvconf_paths *p, const char *ifname, char **error) {
        int r = check_ifname(ifname, error);
        if (r < 0)
                return r;
        char *argv[] = { (char *) "resolvconf", (char *) "-f", (char *) "-d", (char *) ifname, NULL };
        return run(p, argv, NULL, error);
}
