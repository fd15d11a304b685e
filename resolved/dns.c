/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "dns.h"

void dns_config_free(struct dns_config *c) {
        if (!c)
                return;
        free(c->servers);
        for (size_t i = 0; i < c->n_search_domains; i++)
                free(c->search_domains[i]);
        free(c->search_domains);
        for (size_t i = 0; i < c->n_match_domains; i++)
                free(c->match_domains[i]);
        free(c->match_domains);
        *c = (struct dns_config) {};
}
