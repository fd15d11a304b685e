/* SPDX-License-Identifier: MIT */
/*
 * Small libmnl helpers shared by the WireGuard backends: a netlink socket, the
 * reply loop, and one-shot RTM_NEWLINK/RTM_DELLINK requests by interface name.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "wg-backend.h"

int wg_nl_open(int bus, struct mnl_socket **ret) {
        struct mnl_socket *nl = mnl_socket_open2(bus, SOCK_CLOEXEC);
        int one = 1;

        if (!nl)
                return -errno;
        if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int e = errno;
                mnl_socket_close(nl);
                return -e;
        }
        /* Big requests must not come back whole inside their ACKs. */
        mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
        mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
        *ret = nl;
        return 0;
}

int wg_nl_run_replies(struct mnl_socket *nl, uint32_t seq, uint8_t *buf, size_t size,
                      mnl_cb_t cb, void *data) {
        unsigned portid = mnl_socket_get_portid(nl);
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl, buf, size);
                if (n < 0)
                        return -errno;
                int r = mnl_cb_run(buf, (size_t) n, seq, portid, cb, data);
                if (r < 0)
                        return errno ? -errno : -EPROTO;
                if (r == MNL_CB_STOP)
                        return 0;
        }
}

int wg_rtnl_link_request(const char *ifname, uint16_t type, uint16_t flags, const char *kind) {
        uint8_t buf[MNL_SOCKET_BUFFER_SIZE];
        struct mnl_socket *nl;
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        struct ifinfomsg *ifm;
        uint32_t seq = (uint32_t) time(NULL);
        int r;

        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        nlh->nlmsg_seq = seq;
        ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
        if (kind) {
                struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
                mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
                mnl_attr_nest_end(nlh, info);
        }
        if ((r = wg_nl_open(NETLINK_ROUTE, &nl)) < 0)
                return r;
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                r = -errno;
        else
                r = wg_nl_run_replies(nl, seq, buf, sizeof(buf), NULL, NULL);
        mnl_socket_close(nl);
        return r;
}
