/*
 * xmalloc.h -- allocation that never returns NULL.
 *
 * Daemons allocate through these: a zero size or out-of-memory is fatal()
 * (the supervisor restarts the daemon).  Multiplications are checked.
 * xfreezero() wipes before freeing; use it for anything secret.
 */
#ifndef COMMON_XMALLOC_H
#define COMMON_XMALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
void	*xmemdup(const void *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 xfreezero(void *, size_t);

/* free(*pp) and set *pp = NULL; NULL-safe. */
#define FREE_AND_NULL(p)	do { free(p); (p) = NULL; } while (0)

#endif
