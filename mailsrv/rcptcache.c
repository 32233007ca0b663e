/*
 * rcptcache.c -- directory answers for RCPT TO, cached.  See rcptcache.h.
 *
 * A direct-mapped table: the slot is a hash of the lower-cased address;
 * a colliding address replaces the older entry.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailsrv/rcptcache.h"
#include "mailsrv/store/store.h"

struct rcpt_entry {
	char	addr[STORE_ADDRESS_MAX + 1];
	char	dept[RCPT_CACHE_DEPT_MAX + 1];
	int	answer;
	time_t	expires;
};

static struct rcpt_entry	table[RCPT_CACHE_SLOTS];

/* FNV-1a of the lower-cased address. */
static size_t
slot_of(const char *addr)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *addr != '\0'; addr++) {
		h ^= (unsigned char)tolower((unsigned char)*addr);
		h *= 1099511628211ULL;
	}
	return (size_t)(h % RCPT_CACHE_SLOTS);
}

int
rcptcache_get(const char *addr, char *dept, size_t deptlen)
{
	struct rcpt_entry	*e = &table[slot_of(addr)];

	if (e->answer == 0 || e->expires <= time(NULL) ||
	    strcasecmp(e->addr, addr) != 0)
		return 0;
	if (dept != NULL && deptlen > 0)
		snprintf(dept, deptlen, "%s", e->dept);
	return e->answer;
}

void
rcptcache_put(const char *addr, int answer, const char *dept)
{
	struct rcpt_entry	*e = &table[slot_of(addr)];

	if (strlen(addr) > STORE_ADDRESS_MAX ||
	    (dept != NULL && strlen(dept) > RCPT_CACHE_DEPT_MAX))
		return;		/* not cached: asked again next time */
	memset(e, 0, sizeof(*e));
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	snprintf(e->dept, sizeof(e->dept), "%s", dept ? dept : "");
	e->answer = answer;
	e->expires = time(NULL) + (answer == RCPT_UNKNOWN ?
	    RCPT_CACHE_NEG_TTL : RCPT_CACHE_TTL);
}

void
rcptcache_clear(void)
{
	memset(table, 0, sizeof(table));
}
