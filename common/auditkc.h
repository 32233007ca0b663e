/*
 * auditkc.h -- open a service's audit log with keyservice as its signer
 * and as the judge of who may read it (see auditkc.c).  keyservice itself
 * uses auditsvc_open() with local signing instead.
 */
#ifndef COMMON_AUDITKC_H
#define COMMON_AUDITKC_H

#include "common/auditsvc.h"
#include "common/daemon.h"
#include "common/keyclient.h"

/* kc must stay valid while the event loop runs. */
int	auditkc_open(struct auditsvc **, struct daemon *, struct keyclient *);
void	auditkc_close(struct auditsvc **);

#endif
