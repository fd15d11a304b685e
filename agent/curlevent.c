/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "curlevent.h"
#include "macro.h"

struct curl_event {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        curl_event_done_fn done;
        void *userdata;
        bool in_dispatch;
        bool free_requested;
};

static uint32_t poll_to_epoll(int what) {
        switch (what) {
        case CURL_POLL_IN: return EPOLLIN;
        case CURL_POLL_OUT: return EPOLLOUT;
        default: return EPOLLIN | EPOLLOUT;
        }
}

static void destroy(struct curl_event *ce) {
        if (ce->multi)          /* first: it may still call back for its sockets and timer */
                curl_multi_cleanup(ce->multi);
        ce->timer = sd_event_source_disable_unref(ce->timer);
        sd_event_unref(ce->event);
        free(ce);
}

/* Reports the finished transfers. Returns false when `done` freed @ce. */
static bool report_done(struct curl_event *ce) {
        CURLMsg *m;
        int left;

        while (!ce->free_requested && (m = curl_multi_info_read(ce->multi, &left)))
                if (m->msg == CURLMSG_DONE)
                        ce->done(m->easy_handle, m->data.result, ce->userdata);
        return !ce->free_requested;
}

/* One step of libcurl's state machine for @fd (or the timeout), then the results. */
static void drive(struct curl_event *ce, curl_socket_t fd, int flags) {
        int running;

        ce->in_dispatch = true;
        (void) curl_multi_socket_action(ce->multi, fd, flags, &running);
        bool alive = report_done(ce);
        ce->in_dispatch = false;
        if (!alive)
                destroy(ce);
}

static int on_socket_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        int flags = 0;
        (void) s;

        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        drive(userdata, fd, flags);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        drive(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

/* libcurl: watch @fd for @what (or stop). @socketp is the source we gave it for @fd. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
        struct curl_event *ce = userdata;
        sd_event_source *src = socketp;
        (void) easy;

        if (what == CURL_POLL_REMOVE) {
                sd_event_source_disable_unref(src);
                curl_multi_assign(ce->multi, fd, NULL);
                return 0;
        }
        if (src)
                return sd_event_source_set_io_events(src, poll_to_epoll(what)) < 0 ? -1 : 0;
        if (sd_event_add_io(ce->event, &src, fd, poll_to_epoll(what), on_socket_ready, ce) < 0)
                return -1;
        curl_multi_assign(ce->multi, fd, src);
        return 0;
}

/* libcurl: call me back in @ms (-1: never). */
static int on_curl_timer(CURLM *multi, long ms, void *userdata) {
        struct curl_event *ce = userdata;
        (void) multi;

        if (ms < 0)
                return sd_event_source_set_enabled(ce->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_source_set_time(ce->timer, monotonic_usec() + (uint64_t) ms * 1000) < 0 ||
            sd_event_source_set_enabled(ce->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

int curl_event_new(sd_event *event, curl_event_done_fn done, void *userdata, struct curl_event **ret) {
        struct curl_event *ce;
        int r;

        if (!event || !done || !ret)
                return -EINVAL;
        if (!(ce = calloc(1, sizeof(*ce))))
                return -ENOMEM;
        ce->event = sd_event_ref(event);
        ce->done = done;
        ce->userdata = userdata;
        if (!(ce->multi = curl_multi_init())) {
                destroy(ce);
                return -ENOMEM;
        }
        r = sd_event_add_time(event, &ce->timer, CLOCK_MONOTONIC, 0, 0, on_timeout, ce);
        if (r < 0 || (r = sd_event_source_set_enabled(ce->timer, SD_EVENT_OFF)) < 0) {
                destroy(ce);
                return r;
        }
        curl_multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
        curl_multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
        curl_multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
        curl_multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
        *ret = ce;
        return 0;
}

int curl_event_add(struct curl_event *ce, CURL *easy) {
        CURLMcode m = curl_multi_add_handle(ce->multi, easy);
        if (m == CURLM_OK)
                return 0;
        return m == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

void curl_event_remove(struct curl_event *ce, CURL *easy) {
        if (ce && easy)
                (void) curl_multi_remove_handle(ce->multi, easy);
}

struct curl_event *curl_event_free(struct curl_event *ce) {
        if (!ce)
                return NULL;
        if (ce->in_dispatch)
                ce->free_requested = true;
        else
                destroy(ce);
        return NULL;
}
