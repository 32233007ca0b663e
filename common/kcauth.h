/*
 * kcauth.h -- who is calling a service's HTTPS API, asked of keyservice.
 *
 * mailsrv's and docstore's APIs require a client certificate of the node
 * CA (checked by TLS).  Its CN names the caller: "admin" (the node
 * administrator) or a user's address.  kcauth_resolve() asks keyservice
 * whether that certificate is still valid (GET /v1/certs/<serial>) and,
 * for a user, whether the user is active and which roles and department
 * they have (GET /v1/users/<address>).  Nothing is cached: a revocation
 * or suspension takes effect on the next request.
 */
#ifndef COMMON_KCAUTH_H
#define COMMON_KCAUTH_H

#include <openssl/ssl.h>

#include "common/daemon.h"
#include "common/keyclient.h"

#define KCAUTH_NAME_MAX	256

struct kcauth_caller {
	char	name[KCAUTH_NAME_MAX];	/* CN: "admin" or an address */
	char	dept[64];		/* users only */
	int	admin;
	int	dept_admin;
	int	security_officer;
	int	user;
};

/*
 * cb(rc, caller, arg) exactly once, later, on the loop thread: rc 0 with
 * the caller; ERR_PERM (no or revoked certificate, unknown or suspended
 * user, unknown principal) with a message in err_msg(); ERR_IO if
 * keyservice could not be asked.
 */
typedef void	(*kcauth_fn)(int, const struct kcauth_caller *, void *);

int	kcauth_resolve(struct keyclient *, SSL *, kcauth_fn, void *);

/*
 * A keyservice client for a daemon: mutual TLS with its client
 * certificate (cert, key files), the node CA, [keyservice] listen.
 */
int	kcauth_client_new(struct keyclient **, struct daemon *, const char *,
	    const char *, unsigned);

#endif
