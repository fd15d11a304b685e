/* SPDX-License-Identifier: MIT */
#define LOG_COMPONENT "server"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "macro.h"
#include "server.h"

#define PEER_GROUPS_MAX 256

struct server {
        struct tunnel *tunnel;
        sd_event *event;
        sd_event_source *accept_source;
        int fd;
        char *path;          /* unlinked on exit; NULL for an activated socket */
        bool have_group;
        gid_t gid;
};

static int fill_address(struct sockaddr_un *sa, const char *path) {
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        strcpy(sa->sun_path, path);
        return 0;
}

/* A socket file nobody listens on is a leftover; a live one is another instance. */
static int remove_stale_socket(const struct sockaddr_un *sa) {
        struct stat st;

        if (lstat(sa->sun_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) == 0)
                return -EADDRINUSE;
        if (errno != ECONNREFUSED)
                return -errno;
        return unlink(sa->sun_path) < 0 ? -errno : 0;
}

static int make_parent_dir(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int listen_on_path(struct server *s, const char *path) {
        struct sockaddr_un sa;
        int r;

        if ((r = fill_address(&sa, path)) < 0)
                return log_error_errno(r, "Socket path %s is too long", path);
        if ((r = make_parent_dir(path)) < 0)
                return log_error_errno(r, "Cannot create the directory of %s", path);
        r = remove_stale_socket(&sa);
        if (r == -EADDRINUSE)
                return log_error_errno(r, "Another codervpnd is serving %s", path);
        if (r < 0)
                return log_error_errno(r, "Cannot replace %s", path);

        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->fd < 0)
                return log_error_errno(errno, "Cannot create a Unix socket");
        /* Nobody but us between bind() and chmod(). */
        mode_t old = umask(0177);
        r = bind(s->fd, (const struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return log_error_errno(errno, "Cannot bind %s", path);
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;
        if (s->have_group && chown(path, 0, s->gid) < 0)
                return log_error_errno(errno, "Cannot give %s to its group", path);
        if (chmod(path, s->have_group ? 0660 : 0600) < 0)
                return log_error_errno(errno, "Cannot set the mode of %s", path);
        if (listen(s->fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Cannot listen on %s", path);
        return 0;
}

static bool peer_in_group(int fd, gid_t gid) {
        gid_t groups[PEER_GROUPS_MAX];
        socklen_t len = sizeof(groups);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false;
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

static bool peer_allowed(const struct server *s, int fd, const struct ucred *cred) {
        if (cred->uid == 0 || cred->uid == geteuid())
                return true;
        return s->have_group && (cred->gid == s->gid || peer_in_group(fd, s->gid));
}

static int on_accept(sd_event_source *source _unused_, int fd _unused_, uint32_t revents _unused_, void *userdata) {
        struct server *s = userdata;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        char description[64];

        _cleanup_close_ int conn = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "accept() failed");
                return 0;
        }
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_warning_errno(errno, "Refusing a connection without credentials");
                return 0;
        }
        if (!peer_allowed(s, conn, &cred)) {
                log_warning("Refusing pid %d uid %u: not root and not in the socket's group",
                            (int) cred.pid, (unsigned) cred.uid);
                return 0;
        }
        int write_fd = fcntl(conn, F_DUPFD_CLOEXEC, 3);
        if (write_fd < 0) {
                log_warning_errno(errno, "Refusing pid %d", (int) cred.pid);
                return 0;
        }
        snprintf(description, sizeof(description), "pid %d uid %u", (int) cred.pid, (unsigned) cred.uid);
        struct speaker_config config = {
                .roles = 1u << VPN_ROLE_TUNNEL | 1u << VPN_ROLE_SERVICE,
                .description = description,
        };
        struct speaker *sp;
        int r = speaker_new(&sp, s->event, TAKE_FD(conn), write_fd, &config, &tunnel_speaker_ops, s->tunnel);
        if (r < 0) {
                log_warning_errno(r, "Dropping %s", description);
                return 0;
        }
        log_info("Connection from %s", description);
        tunnel_attach(s->tunnel, sp);
        return 0;
}

int server_new(struct server **ret, sd_event *event, struct tunnel *tunnel, const struct server_config *config) {
        _cleanup_(server_freep) struct server *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->tunnel = tunnel;
        s->event = sd_event_ref(event);

        if (config->group) {
                struct group *g = getgrnam(config->group);
                if (g) {
                        s->have_group = true;
                        s->gid = g->gr_gid;
                } else
                        log_warning("Group %s does not exist; only root may use the control socket",
                                    config->group);
        }

        r = sd_listen_fds(true);
        if (r > 1)
                return log_error_errno(EINVAL, "Expected one activated socket, got %d", r);
        if (r == 1) {
                if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
                        return log_error_errno(EINVAL, "The activated socket is not a listening Unix stream socket");
                s->fd = SD_LISTEN_FDS_START;
                log_info("Serving the activated socket");
        } else {
                r = listen_on_path(s, config->path);
                if (r < 0)
                        return r;
                log_info("Serving %s", config->path);
        }
        r = sd_event_add_io(event, &s->accept_source, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the control socket");
        *ret = TAKE_PTR(s);
        return 0;
}

struct server *server_free(struct server *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->accept_source);
        closep(&s->fd);
        if (s->path)
                unlink(s->path);
        free(s->path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}
