/*
 * store_fx.h -- the fixture shared by the mail store's tests
 * (test_mailsrv_store.c, test_mailsrv_store_files.c,
 * test_mailsrv_store_mbox.c): a temporary store
 * with user U1, two data keys, and helpers to deliver, read back and
 * look at the message files.
 * Runs in: the unit test binaries only.
 */
#ifndef TESTS_UNIT_STORE_FX_H
#define TESTS_UNIT_STORE_FX_H

#include <stddef.h>
#include <stdint.h>

#include "mailsrv/store/store.h"

#define U1	"Alice@Example.org"
#define U2	"bob@example.org"

extern const unsigned char	dek1[STORE_DEK_LEN];
extern const unsigned char	dek2[STORE_DEK_LEN];

struct fx {
	char		 dir[64];
	struct store	*s;
};

/* Count the files under dir, and those holding needle (if not NULL). */
void		 walk(const char *, const char *, int *, int *);
/* The message files of the store. */
int		 blob_count(struct fx *);
/* The path of the user's only message file (caller frees). */
char		*only_blob(struct fx *, const char *);
/* Deliver msg to user's mailbox mbox (uid out, may be NULL). */
void		 deliver(struct fx *, const char *, const char *,
		    const unsigned char *, const char *, uint32_t *);
/* The message is there with these bytes (read with dek1). */
void		 read_eq(struct fx *, const char *, const char *, uint32_t,
		    const void *, size_t);
/* cmocka setup/teardown: a new store with user U1; all removed. */
int		 setup(void **);
int		 teardown(void **);
void		 reopen(struct fx *, const struct store_opts *);

#endif
