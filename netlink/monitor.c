/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include "monitor.h"

struct net_monitor {
        struct mnl_socket *nl;
        uint8_t buf[8192];   /* rule events are small */
};

int net_monitor_open(struct net_monitor **ret) {
        struct net_monitor *m = calloc(1, sizeof(*m));
        int groups[] = { RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE };

        if (!m)
                return -ENOMEM;
        m->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (!m->nl || mnl_socket_bind(m->nl, 0, MNL_SOCKET_AUTOPID) < 0)
                goto fail;
        for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
                /* IPv6 may be absent; rules of IPv4 are what matters most. */
                if (mnl_socket_setsockopt(m->nl, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(groups[i])) < 0 && i == 0)
                        goto fail;
        *ret = m;
        return 0;
fail:;
        int e = errno ? errno : EIO;
        net_monitor_close(m);
        return -e;
}

void net_monitor_close(struct net_monitor *m) {
        if (!m)
                return;
        if (m->nl)
                mnl_socket_close(m->nl);
        free(m);
}

int net_monitor_fd(const struct net_monitor *m) {
        return mnl_socket_get_fd(m->nl);
}

struct match {
        const struct net_policy *policy;
        bool ours;
};

static int attr_cb(const struct nlattr *attr, void *data) {
        struct match *x = data;
        if (mnl_attr_get_type(attr) == FRA_PRIORITY && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
                uint32_t prio = mnl_attr_get_u32(attr);
                x->ours |= prio == x->policy->rule_priority || prio == x->policy->rule_priority - 1;
        }
        return MNL_CB_OK;
}

static int msg_cb(const struct nlmsghdr *nlh, void *data) {
        if (nlh->nlmsg_type == RTM_DELRULE)
                mnl_attr_parse(nlh, sizeof(struct fib_rule_hdr), attr_cb, data);
        return MNL_CB_OK;
}

int net_monitor_drain(struct net_monitor *m, const struct net_policy *policy) {
        struct match x = { .policy = policy };

        for (;;) {
                ssize_t n = mnl_socket_recvfrom(m->nl, m->buf, sizeof(m->buf));
                if (n < 0) {
                        if (errno == EAGAIN)
                                return x.ours;
                        if (errno == ENOBUFS)   /* events were lost: assume the worst */
                                return 1;
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (mnl_cb_run(m->buf, (size_t) n, 0, 0, msg_cb, &x) < 0)
                        return -errno;
        }
}
