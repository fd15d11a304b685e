/* SPDX-License-Identifier: MIT */
/* resolved/resolvconf: mode detection, rendering, direct mode, resolvconf(8) runs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "resolvconf.h"

struct tmp {
        char dir[64];
        char rc[128], ns[128], bk[128], bin[128];
        struct resolvconf_paths p;
};

static int setup(void **state) {
        struct tmp *t = calloc(1, sizeof(*t));
        assert_non_null(t);
        strcpy(t->dir, "/tmp/test_resolvconf.XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        snprintf(t->rc, sizeof(t->rc), "%s/resolv.conf", t->dir);
        snprintf(t->ns, sizeof(t->ns), "%s/nsswitch.conf", t->dir);
        snprintf(t->bk, sizeof(t->bk), "%s/run/resolv.conf.orig", t->dir);
        snprintf(t->bin, sizeof(t->bin), "%s/resolvconf", t->dir);
        t->p = (struct resolvconf_paths) { .resolv_conf = t->rc, .nsswitch_conf = t->ns, .backup = t->bk,
                                           .resolvconf_bin = "none", .timeout_ms = 3000 };
        *state = t;
        return 0;
}

static int teardown(void **state) {
        struct tmp *t = *state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
        assert_int_equal(system(cmd), 0);
        free(t);
        return 0;
}

static void put(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static char *get(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0;
        if (!f)
                return NULL;
        if (getdelim(&buf, &n, 0, f) < 0) {
                free(buf);
                buf = strdup("");
        }
        fclose(f);
        return buf;
}

static bool exists(const char *path) {
        return access(path, F_OK) == 0;
}

/* ---- Detection ----------------------------------------------------------------------- */

static void test_nsswitch_parse(void **state) {
        assert_true(nsswitch_resolve_before_dns("hosts: files resolve [!UNAVAIL=return] dns\n"));
        assert_true(nsswitch_resolve_before_dns("hosts:  mymachines resolve [!UNAVAIL=return] files myhostname dns"));
        assert_true(nsswitch_resolve_before_dns("passwd: files\nhosts:\tresolve\n"));
        assert_false(nsswitch_resolve_before_dns("hosts: files dns resolve\n"));
        assert_false(nsswitch_resolve_before_dns("hosts: files dns\n"));
        assert_false(nsswitch_resolve_before_dns("# hosts: resolve dns\nhosts: files dns\n"));
        assert_false(nsswitch_resolve_before_dns("hosts: files dns # resolve\n"));
        assert_false(nsswitch_resolve_before_dns("hostsx: resolve\n"));
        assert_false(nsswitch_resolve_before_dns(""));
        assert_false(nsswitch_resolve_before_dns(NULL));
        /* A bracketed action with a space inside is skipped whole. */
        assert_false(nsswitch_resolve_before_dns("hosts: files [NOTFOUND=return resolve] dns\n"));
}

static void test_stub_parse(void **state) {
        assert_true(resolv_conf_only_stub("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"));
        assert_true(resolv_conf_only_stub("# comment\n  nameserver\t127.0.0.53  \nnameserver 127.0.0.53\n"));
        assert_false(resolv_conf_only_stub("nameserver 127.0.0.53\nnameserver 10.0.0.1\n"));
        assert_false(resolv_conf_only_stub("nameserver 10.0.0.1\n"));
        assert_false(resolv_conf_only_stub("# nameserver 127.0.0.53\n"));
        assert_false(resolv_conf_only_stub(""));
        assert_false(resolv_conf_only_stub("; nameserver 127.0.0.53\nnameserver 1.1.1.1"));
}

struct detect_case {
        const char *nsswitch;   /* NULL: missing file */
        const char *resolv;     /* NULL: missing file */
        bool bus;
        bool resolvconf;        /* an executable resolvconf exists */
        enum dns_mode want;
};

static void test_detect_table(void **state) {
        struct tmp *t = *state;
        static const char stub[] = "nameserver 127.0.0.53\noptions edns0 trust-ad\n";
        static const char mixed[] = "nameserver 127.0.0.53\nnameserver 192.168.1.1\n";
        static const char plain[] = "nameserver 192.168.1.1\n";
        static const char rbd[] = "hosts: files resolve [!UNAVAIL=return] dns\n";
        static const char dns[] = "hosts: files dns\n";
        static const char dbr[] = "hosts: files dns resolve\n";
        const struct detect_case cases[] = {
                { rbd, plain, true, false, DNS_MODE_RESOLVED },
                { rbd, plain, false, false, DNS_MODE_DIRECT },      /* not on the bus: not the resolver */
                { rbd, plain, false, true, DNS_MODE_RESOLVCONF },
                { dns, stub, true, false, DNS_MODE_RESOLVED },
                { dns, stub, false, false, DNS_MODE_DIRECT },       /* stub file, nobody behind it */
                { dns, mixed, true, false, DNS_MODE_DIRECT },
                { dns, mixed, true, true, DNS_MODE_RESOLVCONF },
                { dbr, plain, true, false, DNS_MODE_DIRECT },
                { dbr, stub, true, true, DNS_MODE_RESOLVED },
                { NULL, stub, true, false, DNS_MODE_RESOLVED },
                { NULL, plain, true, true, DNS_MODE_RESOLVCONF },
                { NULL, plain, false, false, DNS_MODE_DIRECT },
                { rbd, NULL, true, false, DNS_MODE_RESOLVED },
                { dns, NULL, true, false, DNS_MODE_OFF },
                { NULL, NULL, false, false, DNS_MODE_OFF },
                { NULL, NULL, false, true, DNS_MODE_RESOLVCONF },
                { dns, "", false, false, DNS_MODE_DIRECT },
        };

        put(t->bin, "#!/bin/sh\nexit 0\n");
        assert_int_equal(chmod(t->bin, 0755), 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const struct detect_case *c = &cases[i];
                enum dns_mode m = (enum dns_mode) -1;
                char *reason = NULL;

                unlink(t->ns), unlink(t->rc);
                if (c->nsswitch)
                        put(t->ns, c->nsswitch);
                if (c->resolv)
                        put(t->rc, c->resolv);
                t->p.resolvconf_bin = c->resolvconf ? t->bin : "none";
                assert_int_equal(dns_mode_detect(&t->p, c->bus, &m, &reason), 0);
                if (m != c->want)
                        fail_msg("case %zu: got %s, want %s (%s)", i, dns_mode_to_string(m),
                                 dns_mode_to_string(c->want), reason);
                assert_non_null(reason);
                free(reason);
        }
}

static void test_detect_binary(void **state) {
        struct tmp *t = *state;
        char link[160];

        /* Not executable: not found. */
        put(t->bin, "#!/bin/sh\n");
        assert_int_equal(chmod(t->bin, 0644), 0);
        t->p.resolvconf_bin = t->bin;
        assert_null(resolvconf_find_binary(&t->p));
        assert_int_equal(chmod(t->bin, 0755), 0);
        assert_string_equal(resolvconf_find_binary(&t->p), t->bin);
        /* systemd's resolvconf (a link to resolvectl) only works with resolved: skipped. */
        snprintf(link, sizeof(link), "%s/resolvectl", t->dir);
        put(link, "#!/bin/sh\n");
        assert_int_equal(chmod(link, 0755), 0);
        unlink(t->bin);
        assert_int_equal(symlink(link, t->bin), 0);
        assert_null(resolvconf_find_binary(&t->p));
        t->p.resolvconf_bin = "";
        assert_null(resolvconf_find_binary(&t->p));
}

/* ---- Rendering ---------------------------------------------------------------------- */

static struct dns_server v6(const char *a) {
        struct dns_server s = { .family = AF_INET6 };
        assert_int_equal(inet_pton(AF_INET6, a, s.addr), 1);
        return s;
}
static struct dns_server v4(const char *a) {
        struct dns_server s = { .family = AF_INET };
        assert_int_equal(inet_pton(AF_INET, a, s.addr), 1);
        return s;
}

static void test_render_direct(void **state) {
        struct dns_server sv[] = { v6("fd60:627a:a42b::53"), v4("100.100.100.100") };
        char *search[] = { (char *) "corp.example." }, *match[] = { (char *) "coder", (char *) "corp.example" };
        struct dns_config c = { sv, 2, search, 1, match, 2, false };
        char *out = NULL, *error = NULL;
        const char *orig = "# Generated by DHCP\n"
                           "nameserver 192.168.1.1\n"
                           "nameserver 192.168.1.2\n"
                           "nameserver fd60:627a:a42b::53\n"
                           "domain lan\n"
                           "search home.arpa lan\n"
                           "options edns0 timeout:2  \n"
                           "sortlist 10.0.0.0/255.0.0.0\n"
                           "; old comment\n";

        assert_int_equal(resolvconf_render_direct(&c, orig, "/run/x/orig", &out, &error), 0);
        assert_null(error);
        assert_string_equal(out,
                "# Written by codervpnd; the original is in /run/x/orig; do not edit\n"
                "nameserver fd60:627a:a42b::53\n"
                "nameserver 100.100.100.100\n"
                "nameserver 192.168.1.1\n"
                "search corp.example coder lan home.arpa\n"
                "options edns0 timeout:2\n"
                "sortlist 10.0.0.0/255.0.0.0\n");
        assert_true(resolv_conf_has_marker(out));
        free(out);

        /* Routing-only match domains stay out of search; no original. */
        c.match_domains_no_search = true, c.n_search_domains = 0, c.n_servers = 1;
        assert_int_equal(resolvconf_render_direct(&c, NULL, NULL, &out, &error), 0);
        assert_string_equal(out,
                "# Written by codervpnd; the original is in " RESOLVCONF_DEFAULT_BACKUP "; do not edit\n"
                "nameserver fd60:627a:a42b::53\n");
        free(out);

        /* Plain, for resolvconf's stdin. */
        c.match_domains_no_search = false, c.n_servers = 2;
        assert_int_equal(resolvconf_render_plain(&c, &out, &error), 0);
        assert_string_equal(out, "nameserver fd60:627a:a42b::53\nnameserver 100.100.100.100\nsearch coder corp.example\n");
        assert_false(resolv_conf_has_marker(out));
        free(out);
}

static void test_render_errors(void **state) {
        struct dns_server sv[] = { v4("10.0.0.53") };
        struct dns_config c = { sv, 1, NULL, 0, NULL, 0, false };
        char *out = NULL, *error = NULL;

        sv[0].port = 5353;
        assert_int_equal(resolvconf_render_direct(&c, NULL, NULL, &out, &error), -EINVAL);
        assert_non_null(strstr(error, "port 5353"));
        assert_null(out);
        free(error), error = NULL;
        sv[0].port = 53;
        assert_int_equal(resolvconf_render_plain(&c, &out, &error), 0);
        free(out), out = NULL;
        c.n_servers = 0;
        assert_int_equal(resolvconf_render_plain(&c, &out, &error), -EINVAL);
        assert_non_null(error);
        free(error), error = NULL;
        sv[0].family = 99, c.n_servers = 1;
        assert_true(resolvconf_render_plain(&c, &out, &error) < 0);
        free(error);
}

/* ---- Direct mode ------------------------------------------------------------------- */

static const char ORIG[] = "# the admin's file\nnameserver 192.168.1.1\nsearch lan\noptions ndots:2\n";

static void test_direct_roundtrip(void **state) {
        struct tmp *t = *state;
        struct dns_server sv[] = { v6("fd60:627a:a42b::53") };
        char *match[] = { (char *) "coder" };
        struct dns_config c = { sv, 1, NULL, 0, match, 1, false };
        char *error = NULL, *s;
        struct stat st0, st1, bst;

        put(t->rc, ORIG);
        assert_int_equal(stat(t->rc, &st0), 0);
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), 0);
        assert_null(error);
        assert_int_equal(stat(t->rc, &st1), 0);
        assert_int_equal(st0.st_ino, st1.st_ino);                 /* in place */
        s = get(t->rc);
        assert_true(resolv_conf_has_marker(s));
        assert_non_null(strstr(s, "nameserver fd60:627a:a42b::53\nnameserver 192.168.1.1\nsearch coder lan\noptions ndots:2\n"));
        assert_non_null(strstr(s, t->bk));
        free(s);
        s = get(t->bk);
        assert_string_equal(s, ORIG);
        free(s);
        assert_int_equal(stat(t->bk, &bst), 0);
        assert_int_equal(bst.st_mode & 07777, 0644);

        /* Applying again (a settings change) keeps the backup as it was. */
        match[0] = (char *) "coder.example";
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), 0);
        s = get(t->bk);
        assert_string_equal(s, ORIG);
        free(s);
        s = get(t->rc);
        assert_non_null(strstr(s, "search coder.example lan\n"));
        free(s);

        assert_int_equal(resolvconf_direct_restore(&t->p, &error), 1);
        assert_null(error);
        s = get(t->rc);
        assert_string_equal(s, ORIG);
        free(s);
        assert_int_equal(stat(t->rc, &st1), 0);
        assert_int_equal(st0.st_ino, st1.st_ino);
        assert_false(exists(t->bk));

        /* Nothing to do the second time. */
        assert_int_equal(resolvconf_direct_restore(&t->p, &error), 0);
        s = get(t->rc);
        assert_string_equal(s, ORIG);
        free(s);
}

static void test_direct_crash(void **state) {
        struct tmp *t = *state;
        struct dns_server sv[] = { v4("100.100.100.100") };
        struct dns_config c = { sv, 1, NULL, 0, NULL, 0, false };
        char *error = NULL, *s, run[160];

        /* A crashed run left our file and the backup: the next start uses the backup. */
        put(t->rc, ORIG);
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), 0);
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), 0);
        s = get(t->bk);
        assert_string_equal(s, ORIG);
        free(s);
        s = get(t->rc);
        assert_non_null(strstr(s, "nameserver 100.100.100.100\nnameserver 192.168.1.1\n"));
        assert_null(strstr(s + 1, RESOLVCONF_MARKER));         /* no nesting of our own header */
        free(s);
        assert_int_equal(resolvconf_direct_restore(&t->p, &error), 1);
        s = get(t->rc);
        assert_string_equal(s, ORIG);
        free(s);

        /* Marker but no backup: left alone, with a clear error, for apply and restore. */
        put(t->rc, "# Written by codervpnd; the original is in /gone; do not edit\nnameserver 1.2.3.4\n");
        assert_int_equal(resolvconf_direct_restore(&t->p, &error), -ENOENT);
        assert_non_null(strstr(error, "backup"));
        assert_non_null(strstr(error, "missing"));
        free(error), error = NULL;
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), -ENOENT);
        assert_non_null(error);
        free(error), error = NULL;
        s = get(t->rc);
        assert_string_equal(s, "# Written by codervpnd; the original is in /gone; do not edit\nnameserver 1.2.3.4\n");
        free(s);
        assert_false(exists(t->bk));

        /* Someone else rewrote resolv.conf after our crash: it is theirs; the backup is stale. */
        snprintf(run, sizeof(run), "%s/run", t->dir);
        assert_true(mkdir(run, 0755) == 0 || errno == EEXIST);
        put(t->bk, "nameserver 9.9.9.9\n");
        put(t->rc, "nameserver 8.8.8.8\n");
        assert_int_equal(resolvconf_direct_restore(&t->p, &error), 0);
        s = get(t->rc);
        assert_string_equal(s, "nameserver 8.8.8.8\n");
        free(s);
        assert_false(exists(t->bk));

        /* And a fresh apply then backs up the new file, not the stale one. */
        put(t->bk, "nameserver 9.9.9.9\n");
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), 0);
        s = get(t->bk);
        assert_string_equal(s, "nameserver 8.8.8.8\n");
        free(s);
        assert_int_equal(resolvconf_direct_restore(&t->p, &error), 1);

        /* A missing resolv.conf is an error for apply (nothing to write in place). */
        unlink(t->rc);
        assert_int_equal(resolvconf_direct_apply(&t->p, &c, &error), -ENOENT);
        assert_non_null(error);
        free(error), error = NULL;
        assert_int_equal(resolvconf_direct_restore(&t->p, &error), 0);
}

/* ---- resolvconf mode ----------------------------------------------------------------- */

static void fake_bin(struct tmp *t, const char *body) {
        char text[1024];
        snprintf(text, sizeof(text), "#!/bin/sh\nD='%s'\n%s", t->dir, body);
        put(t->bin, text);
        assert_int_equal(chmod(t->bin, 0755), 0);
        t->p.resolvconf_bin = t->bin;
}

static void test_cmd(void **state) {
        struct tmp *t = *state;
        struct dns_server sv[] = { v6("fd60:627a:a42b::53") };
        char *match[] = { (char *) "coder" };
        struct dns_config c = { sv, 1, NULL, 0, match, 1, false };
        char *error = NULL, *s, path[160];

        fake_bin(t, "echo \"$@\" >> \"$D/argv\"\ncat > \"$D/stdin\"\n");
        assert_int_equal(resolvconf_cmd_apply(&t->p, "coder0", &c, &error), 0);
        assert_null(error);
        snprintf(path, sizeof(path), "%s/stdin", t->dir);
        s = get(path);
        assert_string_equal(s, "nameserver fd60:627a:a42b::53\nsearch coder\n");
        free(s);
        assert_int_equal(resolvconf_cmd_remove(&t->p, "coder0", &error), 0);
        snprintf(path, sizeof(path), "%s/argv", t->dir);
        s = get(path);
        assert_string_equal(s, "-a coder0 -m 0 -x\n-f -d coder0\n");
        free(s);

        /* Bad interface names never reach the binary. */
        assert_int_equal(resolvconf_cmd_apply(&t->p, "-x", &c, &error), -EINVAL);
        free(error), error = NULL;
        assert_int_equal(resolvconf_cmd_remove(&t->p, "a/b", &error), -EINVAL);
        free(error), error = NULL;
}

static void test_cmd_errors(void **state) {
        struct tmp *t = *state;
        struct dns_server sv[] = { v4("10.0.0.53") };
        struct dns_config c = { sv, 1, NULL, 0, NULL, 0, false };
        char *error = NULL;
        struct timespec a, b;

        /* Non-zero exit: -EIO with the status and what it said. */
        fake_bin(t, "echo 'resolvconf: no such option' >&2\nexit 3\n");
        assert_int_equal(resolvconf_cmd_apply(&t->p, "coder0", &c, &error), -EIO);
        assert_non_null(strstr(error, "status 3"));
        assert_non_null(strstr(error, "no such option"));
        assert_non_null(strstr(error, "-a coder0 -m 0 -x"));
        free(error), error = NULL;

        /* A binary that never reads stdin and exits at once (no SIGPIPE for us). */
        fake_bin(t, "exit 0\n");
        assert_int_equal(resolvconf_cmd_apply(&t->p, "coder0", &c, &error), 0);

        /* Missing. */
        t->p.resolvconf_bin = "/nonexistent/resolvconf";
        assert_int_equal(resolvconf_cmd_apply(&t->p, "coder0", &c, &error), -ENOENT);
        assert_non_null(strstr(error, "/nonexistent/resolvconf"));
        free(error), error = NULL;
        t->p.resolvconf_bin = "none";
        assert_int_equal(resolvconf_cmd_remove(&t->p, "coder0", &error), -ENOENT);
        assert_non_null(error);
        free(error), error = NULL;

        /* Not executable by the kernel (bad interpreter): exec's error. */
        put(t->bin, "#!/nonexistent/sh\n");
        t->p.resolvconf_bin = t->bin;
        assert_int_equal(resolvconf_cmd_remove(&t->p, "coder0", &error), -ENOENT);
        assert_non_null(strstr(error, "cannot execute"));
        free(error), error = NULL;

        /* Hangs: killed after the timeout. */
        fake_bin(t, "exec sleep 30\n");
        t->p.timeout_ms = 300;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(resolvconf_cmd_apply(&t->p, "coder0", &c, &error), -ETIMEDOUT);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_true(b.tv_sec - a.tv_sec < 3);
        assert_non_null(strstr(error, "300 ms"));
        free(error), error = NULL;

        /* Killed by a signal. */
        fake_bin(t, "kill -9 $$\n");
        assert_int_equal(resolvconf_cmd_remove(&t->p, "coder0", &error), -EIO);
        assert_non_null(strstr(error, "signal 9"));
        free(error);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nsswitch_parse),
                cmocka_unit_test(test_stub_parse),
                cmocka_unit_test_setup_teardown(test_detect_table, setup, teardown),
                cmocka_unit_test_setup_teardown(test_detect_binary, setup, teardown),
                cmocka_unit_test(test_render_direct),
                cmocka_unit_test(test_render_errors),
                cmocka_unit_test_setup_teardown(test_direct_roundtrip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_direct_crash, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cmd, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cmd_errors, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
