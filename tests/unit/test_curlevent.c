/* SPDX-License-Identifier: MIT */
/*
 * agent/curlevent on a real sd-event loop and loopback sockets: a CONNECT_ONLY transfer
 * completes and leaves a connection the owner can use and watch itself; a refused
 * connect reports its error; `done` may free the curl_event; a transfer removed before
 * it finishes reports nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "curlevent.h"

struct outcome {
        sd_event *event;
        struct curl_event *ce;
        int calls;
        CURLcode result;
        bool free_in_done;
};

static void on_done(CURL *easy, CURLcode result, void *userdata) {
        struct outcome *o = userdata;
        (void) easy;
        o->calls++;
        o->result = result;
        if (o->free_in_done)
                o->ce = curl_event_free(o->ce);
}

/* A listening loopback TCP socket; its port in *port. */
static int listener(int *port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(fd, 4), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        *port = ntohs(a.sin_port);
        return fd;
}

static CURL *connect_only(int port) {
        char url[64];
        CURL *easy = curl_easy_init();

        assert_non_null(easy);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_CONNECT_ONLY, 1L);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_PROXY, "");
        return easy;
}

/* A fresh loop and curl_event in @o, connecting to @port. */
static CURL *start(struct outcome *o, int port) {
        assert_int_equal(sd_event_new(&o->event), 0);
        assert_int_equal(curl_event_new(o->event, on_done, o, &o->ce), 0);
        CURL *easy = connect_only(port);
        assert_int_equal(curl_event_add(o->ce, easy), 0);
        return easy;
}

/* Runs the loop until `done` has run, for at most 10 s; 0 when it has. */
static int run(struct outcome *o) {
        for (int i = 0; i < 1000 && !o->calls; i++)
                assert_true(sd_event_run(o->event, 10000) >= 0);
        return o->calls ? 0 : -ETIMEDOUT;
}

static void test_connect_only_then_own_watch(void **state) {
        struct outcome o = {};
        curl_socket_t sock = CURL_SOCKET_BAD;
        sd_event_source *own = NULL;
        int port, lfd = listener(&port), peer;
        char buf[8];
        size_t n = 0;
        (void) state;

        CURL *easy = start(&o, port);
        assert_int_equal(run(&o), 0);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.result, CURLE_OK);

        /* The connection is the owner's now: its socket can be watched without EEXIST,
         * and bytes go both ways through the easy handle, still in the multi handle. */
        assert_int_equal(curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &sock), CURLE_OK);
        assert_true(sock != CURL_SOCKET_BAD);
        assert_int_equal(sd_event_add_io(o.event, &own, sock, EPOLLIN, NULL, NULL), 0);
        peer = accept(lfd, NULL, NULL);
        assert_true(peer >= 0);
        assert_int_equal(curl_easy_send(easy, "ping", 4, &n), CURLE_OK);
        assert_int_equal(n, 4);
        assert_int_equal(read(peer, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "ping", 4);
        assert_int_equal(write(peer, "pong", 4), 4);
        for (int i = 0; i < 100; i++) {
                CURLcode c = curl_easy_recv(easy, buf, sizeof(buf), &n);
                if (c != CURLE_AGAIN) {
                        assert_int_equal(c, CURLE_OK);
                        break;
                }
                usleep(10000);
        }
        assert_int_equal(n, 4);
        assert_memory_equal(buf, "pong", 4);

        sd_event_source_disable_unref(own);      /* before libcurl closes the socket */
        curl_event_remove(o.ce, easy);
        curl_easy_cleanup(easy);
        curl_event_free(o.ce);
        /* Removing the handle closed the connection. */
        assert_int_equal(read(peer, buf, sizeof(buf)), 0);
        close(peer);
        close(lfd);
        sd_event_unref(o.event);
}

static void test_refused_connect_is_reported_and_done_may_free(void **state) {
        struct outcome o = { .free_in_done = true };
        int port, lfd = listener(&port);
        (void) state;

        close(lfd);              /* nobody listens on @port now */
        CURL *easy = start(&o, port);
        assert_int_equal(run(&o), 0);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.result, CURLE_COULDNT_CONNECT);
        assert_null(o.ce);
        curl_easy_cleanup(easy);
        sd_event_unref(o.event);
}

static void test_removed_transfer_reports_nothing(void **state) {
        struct outcome o = {};
        int port, lfd = listener(&port);
        (void) state;

        CURL *easy = start(&o, port);
        curl_event_remove(o.ce, easy);
        /* Nothing is left to drive, and `done` never runs. */
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(o.event, 10000) >= 0);
        assert_int_equal(o.calls, 0);
        curl_easy_cleanup(easy);
        curl_event_free(o.ce);
        close(lfd);
        sd_event_unref(o.event);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_connect_only_then_own_watch),
                cmocka_unit_test(test_refused_connect_is_reported_and_done_may_free),
                cmocka_unit_test(test_removed_transfer_reports_nothing),
        };
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
