/*
 * keyservice.h -- the node's root of trust: shared state of its modules.
 */
#ifndef KEYSERVICE_KEYSERVICE_H
#define KEYSERVICE_KEYSERVICE_H

#include "common/daemon.h"
#include "common/http.h"

#define KS_MASTER_KEY_LEN	32

struct keyservice {
	struct daemon		*d;
	struct http_server	*http;
};

/* Node init (keyservice --init): master key, CA, service certificates. */
int	ks_node_init(struct daemon *);

#endif
