/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "derpsource.h"
#include "macro.h"

static int read_map_file(const char *path, char **ret, size_t *len, char **error) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                goto fail;
        if (!S_ISREG(st.st_mode) || (size_t) st.st_size > DERPSOURCE_MAP_MAX) {
                errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
                goto fail;
        }
        if (!(buf = malloc((size_t) st.st_size + 1)))
                goto fail;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        errno = k < 0 ? errno : EIO;
                        goto fail;
                }
                n += (size_t) k;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *len = n;
        return 0;
fail:;
        int r = -errno;
        if (asprintf(error, "[DERP] MapFile %s: %s", path, strerror(errno)) < 0)
                *error = NULL;
        return r;
}

static void curl_urlp(CURLU **u) {
        curl_url_cleanup(*u);
}

static void curl_freep(char **s) {
        curl_free(*s);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* The JSON of a one-region, one-node map for @url. */
static int map_for_url(const char *url, char **ret, char **error) {
        _cleanup_(curl_urlp) CURLU *u = curl_url();
        _cleanup_(curl_freep) char *scheme = NULL, *host = NULL, *port = NULL;
        _cleanup_(json_object_putp) json_object *map = NULL;
        struct in6_addr a6;
        struct in_addr a4;

        if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
            (strcmp(scheme, "http") && strcmp(scheme, "https")) || !*host) {
                if (asprintf(error, "[DERP] URL \"%s\": want http://HOST[:PORT] or https://HOST[:PORT]", url) < 0)
                        *error = NULL;
                return -EINVAL;
        }
        /* curl keeps IPv6 literals bracketed. */
        size_t hl = strlen(host);
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
                memmove(host, host + 1, hl - 2);
                host[hl - 2] = 0;
        }
        bool is4 = inet_pton(AF_INET, host, &a4) == 1, is6 = inet_pton(AF_INET6, host, &a6) == 1;

        json_object *node = json_object_new_object();
        json_object_object_add(node, "Name", json_object_new_string("default"));
        json_object_object_add(node, "RegionID", json_object_new_int(DERPSOURCE_URL_REGION_ID));
        json_object_object_add(node, "HostName", json_object_new_string(host));
        json_object_object_add(node, "IPv4", json_object_new_string(is4 ? host : is6 ? "none" : ""));
        json_object_object_add(node, "IPv6", json_object_new_string(is6 ? host : is4 ? "none" : ""));
        json_object_object_add(node, "DERPPort", json_object_new_int(atoi(port)));
        json_object_object_add(node, "STUNPort", json_object_new_int(-1));
        json_object_object_add(node, "ForceHTTP", json_object_new_boolean(strcmp(scheme, "http") == 0));
        json_object *nodes = json_object_new_array();
        json_object_array_add(nodes, node);
        json_object *region = json_object_new_object();
        json_object_object_add(region, "RegionID", json_object_new_int(DERPSOURCE_URL_REGION_ID));
        json_object_object_add(region, "RegionCode", json_object_new_string("default"));
        json_object_object_add(region, "RegionName", json_object_new_string(host));
        json_object_object_add(region, "Nodes", nodes);
        json_object *regions = json_object_new_object();
        json_object_object_add(regions, "1", region);
        map = json_object_new_object();
        json_object_object_add(map, "Regions", regions);

        const char *s = json_object_to_json_string_ext(map, JSON_C_TO_STRING_PLAIN);
        if (!s || !(*ret = strdup(s)))
                return -ENOMEM;
        return 0;
}

int derpsource_load(const struct config *c, struct derp_map **ret, char **error) {
        _cleanup_free_ char *json = NULL;
        char err[DERP_MAP_ERROR_MAX];
        size_t len = 0;
        int r;

        if (c->derp_map_file)
                r = read_map_file(c->derp_map_file, &json, &len, error);
        else if ((r = map_for_url(c->derp_url, &json, error)) >= 0)
                len = strlen(json);
        if (r < 0)
                return r;
        if ((r = derp_map_parse(json, len, ret, err, sizeof(err))) < 0 &&
            asprintf(error, "%s: %s", c->derp_map_file ? c->derp_map_file : "[DERP] URL",
                     r == -EINVAL ? err : strerror(-r)) < 0)
                *error = NULL;
        return r;
}
