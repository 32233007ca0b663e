/*
 * userkey.h -- a user's mailbox data key (DEK), for delivery and IMAP.
 *
 * The store keeps each user's DEK wrapped by keyservice; the plain key
 * is needed to write (delivery, APPEND) or read (IMAP) their messages.
 * userkey_get() answers from a small in-memory cache (USERKEY_TTL), or
 * unwraps the stored key through keyservice, or, for a user the store
 * does not know yet and whose department is given, asks keyservice for
 * a new key and creates the store user with it.
 *
 * Runs in: the mailsrv process, event loop thread only.
 * SECURITY: plain keys live in the cache at most USERKEY_TTL seconds and
 * are wiped on eviction and by userkey_wipe(); callers wipe their copies.
 */
#ifndef MAILSRV_USERKEY_H
#define MAILSRV_USERKEY_H

#include "mailsrv/mailsrv.h"
#include "mailsrv/store/store.h"

#define USERKEY_TTL	300	/* seconds */
#define USERKEY_CACHE	256	/* entries */

/* rc 0 and the key, or rc < 0 (ERR_NOTFOUND: no such user) and NULL. */
typedef void	(*userkey_cb)(int, const unsigned char *, void *);

/*
 * Returns 1 with the key copied into dek (cache hit; cb is not called),
 * 0 when cb will run later on the loop, or a negative enum err (cb is not
 * called).  dept may be NULL: then a user missing from the store is
 * ERR_NOTFOUND.
 */
int	userkey_get(struct mailsrv *, const char *, const char *,
	    unsigned char[STORE_DEK_LEN], userkey_cb, void *);
/* 1 with the key copied into dek when it is cached, else 0 (no fetch). */
int	userkey_peek(const char *, unsigned char[STORE_DEK_LEN]);
/* The keyservice context a user's mailbox key is bound to. */
char	*userkey_context(const char *);
void	userkey_wipe(void);

#endif
