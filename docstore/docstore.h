/*
 * docstore.h -- the versioned document store: shared state of its modules.
 */
#ifndef DOCSTORE_DOCSTORE_H
#define DOCSTORE_DOCSTORE_H

#include "common/auditsvc.h"
#include "common/daemon.h"
#include "common/keyclient.h"
#include "common/http.h"

struct docstore {
	struct daemon		*d;
	struct http_server	*http;
	struct keyclient	*kc;		/* keyservice, mTLS */
	struct auditsvc		*audit;
};

#endif
