/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * A libcurl multi handle driven by sd-event: libcurl's socket and timer callbacks
 * become sd-event I/O and time sources, so that transfers (connects, TLS handshakes,
 * name resolution) never block the loop.
 *
 * The owner adds easy handles; `done` runs from the event loop when one of them
 * finishes, with its result. An easy handle stays in the multi handle until the owner
 * removes it: a CONNECT_ONLY transfer must stay, because libcurl closes its connection
 * when it leaves the multi handle. Once `done` has run for a transfer, curlevent watches
 * none of its sockets, and the owner may watch the connection's socket itself.
 *
 * `done` may free the curl_event (curl_event_free), and nothing else may happen to it
 * from inside a libcurl callback.
 */
#include <curl/curl.h>
#include <systemd/sd-event.h>

struct curl_event;

typedef void (*curl_event_done_fn)(CURL *easy, CURLcode result, void *userdata);

int curl_event_new(sd_event *event, curl_event_done_fn done, void *userdata, struct curl_event **ret);

/* Starts @easy; -ENOMEM / -EINVAL when libcurl refuses it. */
int curl_event_add(struct curl_event *ce, CURL *easy);

/* Takes @easy out (no `done` for it afterwards); it may be cleaned up after this. */
void curl_event_remove(struct curl_event *ce, CURL *easy);

/* Removes no easy handle: remove them first. Returns NULL. */
struct curl_event *curl_event_free(struct curl_event *ce);
