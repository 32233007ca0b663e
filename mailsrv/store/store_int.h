/*
 * store_int.h -- internals shared by the store's files (store.c,
 * record.c, mailbox.c, message.c, expunge.c); nothing outside
 * mailsrv/store/ includes this.  The storage design is described at the
 * top of store.c.
 */
#ifndef MAILSRV_STORE_INT_H
#define MAILSRV_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "common/db.h"
#include "mailsrv/store/store.h"

#define ST_ID_LEN		16	/* user-id, blob-id: raw bytes */
#define ST_REC_VERSION		1
#define ST_MB_NOSELECT		0x01	/* mailbox record flag */

/* Key lengths. */
#define ST_MSGKEY_LEN		(ST_ID_LEN + 4 + 4)
#define ST_CHGKEY_LEN		(ST_ID_LEN + 4 + 8 + 4)
#define ST_EXPKEY_LEN		(ST_ID_LEN + 4 + 8)
#define ST_BLOBKEY_LEN		(ST_ID_LEN + ST_ID_LEN)
#define ST_MBKEY_MAX		(ST_ID_LEN + STORE_MAILBOX_NAME_MAX)

struct store {
	char		*dir;
	char		*blobdir;
	struct db_env	*env;
	MDB_dbi		 users, mboxes, subs, msgs, changes, expunged, blobs,
			 meta, dedup;
	/* readers shared, writers exclusive: see "Locking" in store.c */
	pthread_rwlock_t lock;
	_Atomic uint64_t generation;	/* committed write transactions */
	int		 zlevel;
	uint64_t	 quota;
	size_t		 msg_max;
};

struct st_user {
	unsigned char	id[ST_ID_LEN];
	char		idhex[STORE_ID_HEX + 1];
	int64_t		created;
	uint64_t	quota_used;
	uint64_t	quota_limit;	/* 0: the store's default */
	uint32_t	next_mbid;
	uint32_t	last_uidvalidity;
	uint32_t	nmailboxes;
	size_t		wrapped_len;
	char		wrapped[STORE_WRAPPED_DEK_MAX + 1];
};

struct st_mbox {
	size_t		namelen;
	char		name[STORE_MAILBOX_NAME_MAX + 1];
	uint32_t	id;
	uint32_t	uidvalidity;
	uint32_t	uidnext;
	uint64_t	highestmodseq;
	uint32_t	special;
	uint32_t	mflags;		/* ST_MB_* */
	uint32_t	messages;
	uint32_t	unseen;
	uint32_t	deleted;
	uint64_t	size;
	uint32_t	nkw;
	char		kw[STORE_KEYWORDS_MAX][STORE_KEYWORD_MAX + 1];
};

struct st_msg {
	unsigned char	blob[ST_ID_LEN];
	uint32_t	flags;
	uint64_t	kw;
	int64_t		internaldate;
	uint64_t	size;
	uint64_t	modseq;
	int64_t		saved;
};

/* Blob files whose last reference went: unlinked after the commit. */
struct st_unlinks {
	unsigned char	(*ids)[ST_ID_LEN];
	size_t		  n;
	size_t		  cap;
};

/* A growable UID array (results). */
struct st_uids {
	uint32_t	*v;
	size_t		 n;
	size_t		 cap;
};

/* One call's view: validated arguments, then the records it loaded. */
struct st_ctx {
	struct store		*s;
	size_t			 addrlen;
	char			 addr[STORE_ADDRESS_MAX + 1];
	size_t			 namelen;
	char			 name[STORE_MAILBOX_NAME_MAX + 1];
	struct st_user		 u;
	struct st_mbox		 mb;
	struct st_unlinks	 unl;
};

/* store.c: locking, context, users, blobs, quota */
int	store__read(struct store *, db_txn_fn, void *);
int	store__write(struct store *, db_txn_fn, void *);
int	store__ctx_init(struct st_ctx *, struct store *, const char *,
	    const char *);
int	store__ctx_load(MDB_txn *, struct st_ctx *, int);
void	store__ctx_done(struct st_ctx *);
void	store__unlink_blobs(struct st_ctx *);
int	store__blob_ref(MDB_txn *, struct st_ctx *, const unsigned char *,
	    int, uint64_t);
int	store__quota_add(struct st_ctx *, uint64_t);
char	*store__blob_path(struct store *, const char *, const unsigned char *);
int	store__random_id(unsigned char *);
void	store__hex(char *, const unsigned char *, size_t);
int	store__user_dir(struct store *, const char *);
int	store__mb_newid(struct st_ctx *, struct st_mbox *, const char *,
	    size_t, unsigned);
int	store__uids_ok(const uint32_t *, size_t);
void	store__uids_add(struct st_uids *, uint32_t);
void	store__uids_sort(struct st_uids *);

/* record.c: record and key encodings, record access */
int	store__addr_norm(char *, size_t *, const char *);
int	store__user_get(MDB_txn *, struct store *, const char *, size_t,
	    struct st_user *);
int	store__user_put(MDB_txn *, struct store *, const char *, size_t,
	    const struct st_user *, unsigned);
size_t	store__mbkey(unsigned char *, const unsigned char *, const char *,
	    size_t);
int	store__mbox_decode(struct st_mbox *, const void *, size_t);
int	store__mbox_get(MDB_txn *, struct store *, const struct st_user *,
	    const char *, size_t, struct st_mbox *);
int	store__mbox_put(MDB_txn *, struct store *, const struct st_user *,
	    const struct st_mbox *);
void	store__msgkey(unsigned char *, const unsigned char *, uint32_t,
	    uint32_t);
int	store__msg_decode(struct st_msg *, const void *, size_t);
int	store__msg_get(MDB_txn *, struct store *, const struct st_user *,
	    uint32_t, uint32_t, struct st_msg *);
int	store__msg_put(MDB_txn *, struct store *, const struct st_user *,
	    uint32_t, uint32_t, const struct st_msg *, uint64_t);
int	store__msg_del(MDB_txn *, struct store *, const struct st_user *,
	    uint32_t, uint32_t, const struct st_msg *);
int	store__blob_get(MDB_txn *, struct store *, const unsigned char *,
	    const unsigned char *, uint32_t *, uint64_t *);
int	store__blob_put(MDB_txn *, struct store *, const unsigned char *,
	    const unsigned char *, uint32_t, uint64_t);
int	store__exp_log(MDB_txn *, struct store *, const struct st_user *,
	    uint32_t, uint64_t, const uint32_t *, size_t);
int	store__del_prefix(MDB_txn *, MDB_dbi, const void *, size_t);
void	store__be32(unsigned char *, uint32_t);
void	store__be64(unsigned char *, uint64_t);
uint32_t store__get32(const unsigned char *);
uint64_t store__get64(const unsigned char *);

/* mailbox.c: names and keyword tables */
int	store__mbname_norm(char *, size_t *, const char *);
int	store__keyword_ok(const char *);
int	store__kw_mask(struct st_mbox *, const char *const *, size_t, int,
	    uint64_t *);
int	store__kw_remap(struct st_mbox *, const struct st_mbox *, uint64_t,
	    uint64_t *);
void	store__mb_count(struct st_mbox *, const struct st_msg *, int);
int	store__mb_create(MDB_txn *, struct st_ctx *, const char *, size_t,
	    unsigned, int);

/* expunge.c */
int	store__rename_inbox(MDB_txn *, struct st_ctx *, const char *, size_t);

/* message.c / expunge.c shared */
void	store__msginfo(struct store_msginfo *, uint32_t,
	    const struct st_msg *);
int	store__vanished_scan(MDB_txn *, struct st_ctx *, uint64_t,
	    struct st_uids *);
int	store__changed_scan(MDB_txn *, struct st_ctx *, uint32_t, uint32_t,
	    uint64_t, struct store_msginfo **, size_t *);
void	store__status_fill(struct store_status *, const struct st_mbox *);

#endif
