/* SPDX-License-Identifier: MIT */
#pragma once
/* Internal to netlink/: what the kernel and the userspace paths each provide. */
#include "wg.h"

struct wg_backend {
        int (*create)(struct wg *w);
        int (*delete)(struct wg *w);
        int (*set)(struct wg *w, const struct wg_device *dev, struct wg_stats *stats);
        int (*get)(struct wg *w, struct wg_device **ret);
        void (*close)(struct wg *w);
};

struct wg {
        char ifname[IFNAMSIZ];
        enum wg_mode mode;
        const struct wg_backend *backend;
        void *data;          /* the backend's */
};

extern const struct wg_backend wg_backend_kernel;
extern const struct wg_backend wg_backend_userspace;

/* Whether the running kernel can create WireGuard links (module loaded or loadable). */
bool wg_kernel_available(void);

/* ---- netlink/link.c: libmnl helpers shared by the backends ---- */
struct mnl_socket;
struct nlmsghdr;

/* Opens and binds a netlink socket of @bus (NETLINK_ROUTE, NETLINK_GENERIC), CLOEXEC,
 * with NETLINK_CAP_ACK and NETLINK_EXT_ACK. */
int wg_nl_open(int bus, struct mnl_socket **ret);
/* Runs @cb (may be NULL) over the replies to @seq until its ACK or the end of a dump. */
int wg_nl_run_replies(struct mnl_socket *nl, uint32_t seq, uint8_t *buf, size_t size,
                      int (*cb)(const struct nlmsghdr *nlh, void *data), void *data);
/* One RTM_NEWLINK/RTM_DELLINK for @ifname (NLM_F_REQUEST|NLM_F_ACK|@flags), with
 * IFLA_LINKINFO{IFLA_INFO_KIND=@kind} unless @kind is NULL. 0 or -errno from the ACK. */
int wg_rtnl_link_request(const char *ifname, uint16_t type, uint16_t flags, const char *kind);
