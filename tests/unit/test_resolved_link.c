/* SPDX-License-Identifier: MIT */
/*
 * resolved_link against a fake org.freedesktop.resolve1 on a direct sd-bus
 * connection (a socketpair): the calls, their order and arguments, NoSuchLink
 * retries, LinkBusy, re-apply on NameOwnerChanged, RevertLink on free.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include "macro.h"
#include "resolved.h"
#include "unit-helpers.h"

struct fake {
        sd_event *event;
        sd_bus *server, *client;
        char log[4096];                 /* "Method(args);" per call */
        unsigned calls;
        unsigned no_such_link;          /* answer this many calls with NoSuchLink */
        bool link_busy;
        uint64_t first_call, last_call;

        unsigned done, failed, reverted;
        char error[1024];
};

static void logf_(struct fake *f, const char *fmt, ...) {
        size_t n = strlen(f->log);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
        va_end(ap);
}

static int on_call(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct fake *f = userdata;
        const char *member = sd_bus_message_get_member(m);
        int32_t ifindex = 0;

        uint8_t type = 0;

        if (sd_bus_message_get_type(m, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL)
                return 0;
        if (!f->calls++)
                f->first_call = now_usec();
        f->last_call = now_usec();
        if (f->no_such_link) {
                f->no_such_link--;
                return sd_bus_reply_method_errorf(m, "org.freedesktop.resolve1.NoSuchLink", "Link %d not known", 7);
        }
        if (f->link_busy)
                return sd_bus_reply_method_errorf(m, "org.freedesktop.resolve1.LinkBusy", "Link tun0 is managed.");

        logf_(f, "%s(", member);
        if (strcmp(member, "FlushCaches") != 0) {
                assert_true(sd_bus_message_read(m, "i", &ifindex) >= 0);
                logf_(f, "%d", ifindex);
        }
        if (strcmp(member, "SetLinkDomains") == 0) {
                const char *d;
                int route_only;
                assert_true(sd_bus_message_enter_container(m, 'a', "(sb)") >= 0);
                while (sd_bus_message_read(m, "(sb)", &d, &route_only) > 0)
                        logf_(f, " %s%s", route_only ? "~" : "", d);
                assert_true(sd_bus_message_exit_container(m) >= 0);
        } else if (strcmp(member, "SetLinkDefaultRoute") == 0) {
                int b;
                assert_true(sd_bus_message_read(m, "b", &b) >= 0);
                logf_(f, " %s", b ? "yes" : "no");
        } else if (strcmp(member, "SetLinkDNS") == 0 || strcmp(member, "SetLinkDNSEx") == 0) {
                bool ex = strcmp(member, "SetLinkDNSEx") == 0;
                assert_true(sd_bus_message_enter_container(m, 'a', ex ? "(iayqs)" : "(iay)") >= 0);
                while (sd_bus_message_enter_container(m, 'r', ex ? "iayqs" : "iay") > 0) {
                        int32_t family;
                        const void *a;
                        size_t len;
                        char buf[INET6_ADDRSTRLEN];
                        assert_true(sd_bus_message_read(m, "i", &family) >= 0);
                        assert_true(sd_bus_message_read_array(m, 'y', &a, &len) >= 0);
                        assert_int_equal(len, family == AF_INET ? 4 : 16);
                        logf_(f, " %s", inet_ntop(family, a, buf, sizeof(buf)));
                        if (ex) {
                                uint16_t port;
                                const char *sni;
                                assert_true(sd_bus_message_read(m, "qs", &port, &sni) >= 0);
                                logf_(f, "#%u%s", port, sni);
                        }
                        assert_true(sd_bus_message_exit_container(m) >= 0);
                }
                assert_true(sd_bus_message_exit_container(m) >= 0);
        } else if (strcmp(member, "SetLinkLLMNR") == 0 || strcmp(member, "SetLinkMulticastDNS") == 0) {
                const char *s;
                assert_true(sd_bus_message_read(m, "s", &s) >= 0);
                logf_(f, " %s", s);
        }
        logf_(f, ");");
        return sd_bus_reply_method_return(m, NULL);
}

static void handler(struct resolved_link *l, enum resolved_link_op op, int r, const char *error, void *userdata) {
        struct fake *f = userdata;
        if (op == RESOLVED_LINK_REVERT) {
                f->reverted++;
                return;
        }
        if (r < 0) {
                f->failed++;
                assert_non_null(error);
                snprintf(f->error, sizeof(f->error), "%s", error);
        } else {
                assert_null(error);
                f->done++;
        }
}

static int setup(void **state) {
        struct fake *f = calloc(1, sizeof(*f));
        int fds[2];
        sd_id128_t id;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(sd_id128_randomize(&id), 0);

        assert_int_equal(sd_bus_new(&f->server), 0);
        assert_int_equal(sd_bus_set_fd(f->server, fds[0], fds[0]), 0);
        assert_int_equal(sd_bus_set_server(f->server, 1, id), 0);
        assert_int_equal(sd_bus_set_anonymous(f->server, 1), 0);
        assert_int_equal(sd_bus_add_object(f->server, NULL, "/org/freedesktop/resolve1", on_call, f), 0);
        assert_int_equal(sd_bus_start(f->server), 0);
        assert_int_equal(sd_bus_attach_event(f->server, f->event, 0), 0);

        assert_int_equal(sd_bus_new(&f->client), 0);
        assert_int_equal(sd_bus_set_fd(f->client, fds[1], fds[1]), 0);
        assert_int_equal(sd_bus_set_anonymous(f->client, 1), 0);
        assert_int_equal(sd_bus_start(f->client), 0);
        assert_int_equal(sd_bus_attach_event(f->client, f->event, 0), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fake *f = *state;
        sd_bus_flush_close_unref(f->client);
        sd_bus_flush_close_unref(f->server);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

static struct dns_config coder_config(struct dns_server *server, char **match) {
        struct dns_config c = { .servers = server, .n_servers = 1, .match_domains = match, .n_match_domains = 1 };
        server->family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, "fd60:627a:a42b::53", server->addr), 1);
        return c;
}

static void test_split_dns_calls_in_order(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_server s = {};
        char *match[] = { (char *) "coder" };
        struct dns_config c = coder_config(&s, match);

        assert_int_equal(resolved_link_new(&l, f->client, f->event, 7, "tun0", handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done + f->failed > 0));
        assert_int_equal(f->done, 1);
        assert_string_equal(f->log, "SetLinkDomains(7 coder);SetLinkDefaultRoute(7 no);SetLinkDNS(7 fd60:627a:a42b::53);"
                                    "SetLinkLLMNR(7 no);SetLinkMulticastDNS(7 no);FlushCaches();");

        /* routing-only when the match domains are not search domains */
        f->log[0] = 0;
        c.match_domains_no_search = true;
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done == 2));
        assert_non_null(strstr(f->log, "SetLinkDomains(7 ~coder);SetLinkDefaultRoute(7 no);"));

        /* free reverts */
        f->log[0] = 0;
        resolved_link_free(l);
        assert_true(RUN_UNTIL(f->event, strlen(f->log) > 0));
        assert_string_equal(f->log, "RevertLink(7);");
        assert_int_equal(f->failed, 0);
}

static void test_full_tunnel_with_port(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_server s[2] = { { .family = AF_INET, .addr = { 100, 100, 100, 100 }, .port = 5353 },
                                   { .family = AF_INET6 } };
        char *search[] = { (char *) "example.com", (char *) "corp", (char *) "example.com" };
        struct dns_config c = { .servers = s, .n_servers = 2, .search_domains = search, .n_search_domains = 3 };

        assert_int_equal(inet_pton(AF_INET6, "fd60::53", s[1].addr), 1);
        assert_int_equal(resolved_link_new(&l, f->client, f->event, 3, NULL, handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done + f->failed > 0));
        assert_int_equal(f->done, 1);
        assert_string_equal(f->log, "SetLinkDomains(3 example.com corp ~.);SetLinkDefaultRoute(3 yes);"
                                    "SetLinkDNSEx(3 100.100.100.100#5353 fd60::53#53);"
                                    "SetLinkLLMNR(3 no);SetLinkMulticastDNS(3 no);FlushCaches();");
        resolved_link_free(l);
}

static void test_no_servers_no_default_route(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_config c = {};

        assert_int_equal(resolved_link_new(&l, f->client, f->event, 3, NULL, handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done + f->failed > 0));
        assert_string_equal(f->log, "SetLinkDomains(3);SetLinkDefaultRoute(3 no);SetLinkDNS(3);"
                                    "SetLinkLLMNR(3 no);SetLinkMulticastDNS(3 no);FlushCaches();");
        resolved_link_free(l);
}

static void test_no_such_link_is_retried(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_server s = {};
        char *match[] = { (char *) "coder" };
        struct dns_config c = coder_config(&s, match);

        f->no_such_link = 3; /* 50 + 100 + 200 ms */
        assert_int_equal(resolved_link_new(&l, f->client, f->event, 7, "tun0", handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done + f->failed > 0));
        assert_int_equal(f->done, 1);
        assert_int_equal(f->calls, 3 + 6);
        assert_true(f->last_call - f->first_call >= 350 * 1000);
        assert_true(f->last_call - f->first_call < 2000 * 1000);
        assert_true(strncmp(f->log, "SetLinkDomains(7 coder);", 24) == 0);
        resolved_link_free(l);
}

static void test_no_such_link_gives_up(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_config c = {};
        uint64_t began = now_usec();

        f->no_such_link = 1000;
        assert_int_equal(resolved_link_new(&l, f->client, f->event, 7, "tun0", handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL_USEC(f->event, 8ULL * 1000 * 1000, f->done + f->failed > 0));
        assert_int_equal(f->failed, 1);
        assert_true(now_usec() - began >= 5000 * 1000);
        assert_true(now_usec() - began < 6500 * 1000);
        assert_non_null(strstr(f->error, "SetLinkDomains on tun0: link not known to systemd-resolved after 5 s"));
        resolved_link_free(l);
}

static void test_link_busy(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_config c = {};

        f->link_busy = true;
        assert_int_equal(resolved_link_new(&l, f->client, f->event, 7, "tun0", handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done + f->failed > 0));
        assert_int_equal(f->failed, 1);
        assert_int_equal(f->calls, 1);
        assert_non_null(strstr(f->error, "managed by systemd-networkd"));
        assert_non_null(strstr(f->error, "[Match] Name=tun0 and [Link] Unmanaged=yes"));
        resolved_link_free(l);
}

static void name_owner_changed(struct fake *f, const char *name, const char *old_owner, const char *new_owner) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        assert_int_equal(sd_bus_message_new_signal(f->server, &m, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                   "NameOwnerChanged"), 0);
        assert_true(sd_bus_message_set_sender(m, "org.freedesktop.DBus") >= 0);
        assert_true(sd_bus_message_append(m, "sss", name, old_owner, new_owner) >= 0);
        assert_true(sd_bus_send(f->server, m, NULL) >= 0);
}

static void test_reapplied_on_new_owner(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_server s = {};
        char *match[] = { (char *) "coder" };
        struct dns_config c = coder_config(&s, match);
        const char *want = "SetLinkDomains(7 coder);SetLinkDefaultRoute(7 no);SetLinkDNS(7 fd60:627a:a42b::53);"
                           "SetLinkLLMNR(7 no);SetLinkMulticastDNS(7 no);FlushCaches();";

        assert_int_equal(resolved_link_new(&l, f->client, f->event, 7, "tun0", handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_true(RUN_UNTIL(f->event, f->done == 1));
        f->log[0] = 0;

        /* other names and a vanishing owner change nothing */
        name_owner_changed(f, "org.example.other", "", ":1.5");
        name_owner_changed(f, "org.freedesktop.resolve1", ":1.1", "");
        run_idle(f->event);
        assert_string_equal(f->log, "");

        name_owner_changed(f, "org.freedesktop.resolve1", "", ":1.9");
        assert_true(RUN_UNTIL_USEC(f->event, 1000 * 1000, f->done == 2));
        assert_string_equal(f->log, want);

        /* after an explicit revert there is nothing to re-apply */
        f->log[0] = 0;
        assert_int_equal(resolved_link_revert(l), 0);
        assert_true(RUN_UNTIL(f->event, f->reverted == 1));
        assert_string_equal(f->log, "RevertLink(7);");
        f->log[0] = 0;
        name_owner_changed(f, "org.freedesktop.resolve1", "", ":1.10");
        run_idle(f->event);
        assert_string_equal(f->log, "");
        resolved_link_free(l);
        run_idle(f->event);
        assert_string_equal(f->log, ""); /* nothing to revert on free either */
        assert_int_equal(f->failed, 0);
}

static void test_apply_replaces_in_flight(void **state) {
        struct fake *f = *state;
        struct resolved_link *l = NULL;
        struct dns_server s = {};
        char *match[] = { (char *) "coder" }, *match2[] = { (char *) "other" };
        struct dns_config c = coder_config(&s, match), c2 = c;

        c2.match_domains = match2;
        assert_int_equal(resolved_link_new(&l, f->client, f->event, 7, "tun0", handler, f), 0);
        assert_int_equal(resolved_link_apply(l, &c), 0);
        assert_int_equal(resolved_link_apply(l, &c2), 0);
        assert_true(RUN_UNTIL(f->event, f->done + f->failed > 0));
        run_idle(f->event);
        assert_int_equal(f->done, 1);
        assert_int_equal(f->failed, 0);
        assert_non_null(strstr(f->log, "SetLinkDomains(7 other);SetLinkDefaultRoute"));
        resolved_link_free(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_split_dns_calls_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_tunnel_with_port, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_servers_no_default_route, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_such_link_is_retried, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_such_link_gives_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_link_busy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reapplied_on_new_owner, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_replaces_in_flight, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
