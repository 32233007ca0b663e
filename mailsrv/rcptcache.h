/*
 * rcptcache.h -- recent answers of the directory for local recipients,
 * so that RCPT TO does not ask keyservice for every message.
 *
 * An address maps to "active in department D", "disabled" or "unknown";
 * answers are kept RCPT_CACHE_TTL seconds (unknown ones
 * RCPT_CACHE_NEG_TTL), like Postfix's proxymap/verify caches.  A user
 * suspended or added meanwhile is seen after at most that long.
 *
 * Runs in: the mailsrv process, event loop thread only.
 */
#ifndef MAILSRV_RCPTCACHE_H
#define MAILSRV_RCPTCACHE_H

#include <stddef.h>

#define RCPT_CACHE_SLOTS	4096
#define RCPT_CACHE_TTL		60	/* seconds */
#define RCPT_CACHE_NEG_TTL	10	/* seconds */
#define RCPT_CACHE_DEPT_MAX	63

enum rcpt_answer {
	RCPT_ACTIVE = 1,
	RCPT_DISABLED,
	RCPT_UNKNOWN,
};

/* 0 when not cached (or expired), else the answer (dept for ACTIVE). */
int	rcptcache_get(const char *, char *, size_t);
void	rcptcache_put(const char *, int, const char *);
void	rcptcache_clear(void);

#endif
