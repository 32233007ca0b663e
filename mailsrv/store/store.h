/*
 * store.h -- the encrypted mail store: users, mailboxes, messages.
 *
 * Used by SMTP delivery and by the IMAP server.  The API is synchronous
 * (it writes and fsyncs files and commits LMDB transactions), so callers
 * run it on worker threads, never on the event loop.  Every function is
 * safe to call from several threads at once on one struct store.
 *
 * Conventions:
 * - Functions return 0 or a negative enum err (common/err.h) with one
 *   line of context in err_msg().  ERR_NOTFOUND: no such user, mailbox
 *   or message; ERR_EXISTS: the name is taken; ERR_TOOBIG: a named limit
 *   below or the user's quota; ERR_INVAL: a malformed argument (address,
 *   mailbox name, keyword, UID set); ERR_PERM: the mailbox is \Noselect
 *   or the operation is not allowed on it (DELETE INBOX), and, for
 *   store_read() only, a message file that does not authenticate under
 *   the given key; ERR_IO: system or storage error, including a
 *   malformed stored record or message file.
 * - Users are named by their address (ASCII case-insensitive).  Mailbox
 *   names are UTF-8 (the IMAP layer converts modified UTF-7), hierarchy
 *   separator '/', "INBOX" case-insensitive; NULL means INBOX.
 * - A UID set is a strictly ascending array of non-zero uint32 (the IMAP
 *   layer turns sequence sets and ranges into these).
 * - dek is the owner's 32-byte data key, unwrapped by the caller through
 *   keyservice for this call; the store never keeps it.
 * - Every array handed out is owned by the caller and released with the
 *   matching *_free(); those are NULL-safe.
 */
#ifndef MAILSRV_STORE_H
#define MAILSRV_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Limits (named here so the IMAP and SMTP layers can advertise them). */
#define STORE_MSG_MAX		(64 * 1024 * 1024)	/* bytes */
/* LMDB keys are at most 511 bytes: user-id (16) + name, with room */
#define STORE_MAILBOX_NAME_MAX	480	/* bytes of UTF-8 */
#define STORE_MAILBOX_DEPTH_MAX	16	/* levels */
#define STORE_MAILBOXES_MAX	4096	/* per user, \Noselect included */
#define STORE_KEYWORDS_MAX	64	/* distinct keywords per mailbox */
#define STORE_KEYWORD_MAX	64	/* bytes in one keyword */
#define STORE_ADDRESS_MAX	254
#define STORE_WRAPPED_DEK_MAX	4096	/* bytes of the opaque wrapped DEK */
#define STORE_DEK_LEN		32
#define STORE_DEDUP_MAX		64	/* bytes of a delivery id */
#define STORE_ID_HEX		32	/* user-id and blob-id: 128 bits, hex */

/* System flags (\Recent is not stored: RECENT is always 0). */
#define STORE_F_SEEN		0x01
#define STORE_F_ANSWERED	0x02
#define STORE_F_FLAGGED		0x04
#define STORE_F_DELETED		0x08
#define STORE_F_DRAFT		0x10
#define STORE_F_ALL		0x1f

/* RFC 6154 special-use attributes. */
#define STORE_SPECIAL_ALL	0x01	/* \All (never assigned by us) */
#define STORE_SPECIAL_ARCHIVE	0x02
#define STORE_SPECIAL_DRAFTS	0x04
#define STORE_SPECIAL_FLAGGED	0x08	/* \Flagged (never assigned by us) */
#define STORE_SPECIAL_JUNK	0x10
#define STORE_SPECIAL_SENT	0x20
#define STORE_SPECIAL_TRASH	0x40
#define STORE_SPECIAL_MASK	0x7f

/* Mailbox attributes in listings. */
#define STORE_MBOX_NOSELECT	0x01	/* a placeholder with inferiors */
#define STORE_MBOX_HASCHILDREN	0x02
#define STORE_MBOX_SUBSCRIBED	0x04
#define STORE_MBOX_NONEXISTENT	0x08	/* subscribed, but does not exist */

struct store;

struct store_opts {
	size_t		map_size;	/* LMDB start size; 0: 64 MiB */
	size_t		map_max;	/* growth cap; 0: 64 GiB */
	int		zlevel;		/* deflate level 0..9; -1: 6 */
	uint64_t	quota;		/* default per-user limit, 0: none */
	size_t		msg_max;	/* 0: STORE_MSG_MAX (also the cap) */
};

/*
 * Open (create) the store rooted at dir (the daemon passes
 * <datadir>/mailsrv/store): dir/index/ is the LMDB environment,
 * dir/blobs/ the message files.  opts may be NULL for the defaults.
 * store_close() is NULL-safe, sets *sp to NULL, and must not race with
 * calls in progress.
 */
int	store_open(struct store **, const char *, const struct store_opts *);
void	store_close(struct store **);

/* ---------------------------------------------------------------- users */

struct store_user {
	char		 user_id[STORE_ID_HEX + 1];
	char		*wrapped_dek;	/* NUL-terminated; store_user_clear() */
	int64_t		 created;	/* unix seconds */
	uint64_t	 quota_used;	/* sum of the sizes of all messages */
	uint64_t	 quota_limit;	/* effective limit, 0: none */
	uint32_t	 mailboxes;
};

/*
 * Create a user with a fresh random user-id and the default mailboxes
 * INBOX, Sent, Drafts, Trash, Junk and Archive (with their special-use
 * attributes), all subscribed.  wrapped_dek is kept as given (opaque
 * text, 1..STORE_WRAPPED_DEK_MAX bytes).  ERR_EXISTS if the address has
 * a user.
 */
int	store_user_create(struct store *, const char *, const char *);
int	store_user_get(struct store *, const char *, struct store_user *);
void	store_user_clear(struct store_user *);
/* Replace the wrapped DEK (after a rewrap to a newer KEK version). */
int	store_user_set_dek(struct store *, const char *, const char *);
/* Per-user quota in bytes; 0 returns to the store's default. */
int	store_user_set_quota(struct store *, const char *, uint64_t);

/* ------------------------------------------------------------ mailboxes */

struct store_mailbox {
	char		*name;
	unsigned	 special;	/* STORE_SPECIAL_* */
	unsigned	 attrs;		/* STORE_MBOX_* */
};

struct store_status {
	uint32_t	messages;
	uint32_t	recent;		/* always 0 */
	uint32_t	unseen;
	uint32_t	deleted;	/* messages with \Deleted */
	uint32_t	uidnext;
	uint32_t	uidvalidity;
	uint64_t	highestmodseq;
	uint64_t	size;		/* sum of message sizes */
	unsigned	special;
};

/*
 * Every mailbox of the user and every subscribed name, sorted by name
 * bytes; subscribed names with no mailbox carry STORE_MBOX_NONEXISTENT.
 */
int	store_mailbox_list(struct store *, const char *,
	    struct store_mailbox **, size_t *);
void	store_mailbox_list_free(struct store_mailbox **, size_t);

/*
 * CREATE: missing superiors are created too (as ordinary mailboxes).
 * special is 0 or STORE_SPECIAL_* bits (CREATE-SPECIAL-USE).  Creating
 * the name of a \Noselect placeholder makes it a mailbox again, with a
 * new UIDVALIDITY.  ERR_EXISTS if it exists, ERR_TOOBIG over
 * STORE_MAILBOXES_MAX or the name limits.
 */
int	store_mailbox_create(struct store *, const char *, const char *,
	    unsigned);
/*
 * DELETE (RFC 3501 6.3.4): INBOX is refused (ERR_PERM).  A mailbox
 * without inferiors is removed with its messages.  A mailbox with
 * inferiors loses its messages and becomes \Noselect; deleting a
 * \Noselect mailbox that has inferiors is ERR_EXISTS.  \Noselect
 * superiors left without inferiors are removed.  Subscriptions stay.
 */
int	store_mailbox_delete(struct store *, const char *, const char *);
/*
 * RENAME (RFC 3501 6.3.5): inferiors are renamed with it, missing
 * superiors of the new name are created, subscriptions follow, and
 * UIDVALIDITY and messages are kept.  Renaming INBOX creates the new
 * mailbox, moves INBOX's messages into it (new UIDs, in UID order) and
 * leaves INBOX empty; INBOX's inferiors stay.  ERR_EXISTS if the new
 * name exists, ERR_INVAL if it is the old name's inferior.
 */
int	store_mailbox_rename(struct store *, const char *, const char *,
	    const char *);
/* SUBSCRIBE needs an existing mailbox; UNSUBSCRIBE needs a subscription. */
int	store_mailbox_subscribe(struct store *, const char *, const char *,
	    int);
/* STATUS in O(1); ERR_PERM for a \Noselect mailbox. */
int	store_mailbox_status(struct store *, const char *, const char *,
	    struct store_status *);
/*
 * The mailbox's keywords: bit i of a message's keyword mask is (*out)[i].
 * Free with store_keywords_free(&names, n).
 */
int	store_mailbox_keywords(struct store *, const char *, const char *,
	    char ***, size_t *);
void	store_keywords_free(char ***, size_t);

/* ------------------------------------------------------------- messages */

struct store_msginfo {
	uint32_t	uid;
	uint32_t	flags;		/* STORE_F_* */
	uint64_t	keywords;	/* bit i: keyword i of the mailbox */
	int64_t		internaldate;	/* unix seconds */
	uint64_t	size;		/* RFC822.SIZE: bytes as delivered */
	uint64_t	modseq;
	int64_t		saved;		/* when it was stored here */
};

struct store_append {
	const void		 *msg;
	size_t			  len;		/* 1..msg_max */
	uint32_t		  flags;	/* STORE_F_* */
	const char *const	 *keywords;	/* IMAP atoms, not "\..." */
	size_t			  nkeywords;
	int64_t			  internaldate;	/* 0: now */
	/*
	 * Optional delivery id (1..STORE_DEDUP_MAX bytes): an append with
	 * an id already used for this user does nothing and returns
	 * ERR_EXISTS with the UID it got then, so a delivery retried
	 * after a crash is stored exactly once.  Recorded in the same
	 * transaction as the message.
	 */
	const char		 *dedup;
};

/*
 * APPEND / delivery.  When it returns 0 the message file is fsync'd and
 * renamed into place and the index transaction is committed.  mailbox
 * NULL is INBOX.  ERR_TOOBIG over msg_max, over the quota, or when a new
 * keyword does not fit (STORE_KEYWORDS_MAX); ERR_NOTFOUND if the user or
 * mailbox does not exist.
 */
int	store_append(struct store *, const char *, const char *,
	    const unsigned char *, const struct store_append *, uint32_t *,
	    uint32_t *);
/* store_append() without keywords: the SMTP delivery call. */
int	store_deliver(struct store *, const char *, const char *,
	    const unsigned char *, const void *, size_t, uint32_t, int64_t,
	    uint32_t *, uint32_t *);

/* store_deliver() with a delivery id (see struct store_append). */
int	store_deliver_once(struct store *, const char *, const char *,
	    const unsigned char *, const void *, size_t, int64_t,
	    const char *, uint32_t *, uint32_t *);

/*
 * Many deliveries at once (the queue runner's batches): each item as
 * store_deliver_once() into the user's INBOX, but the message files are
 * made durable with one syncfs and the index written in one
 * transaction, so a batch costs about what one delivery does.  Each item
 * gets its own result in rc: 0, ERR_EXISTS when its delivery id was used
 * before (with the UID it got then), or the error store_deliver_once()
 * would have given; when the shared sync or transaction fails, every item
 * still pending gets that error.  When it returns, every item with rc 0
 * is durable.  At most STORE_BATCH_MAX items.
 */
#define STORE_BATCH_MAX		256
struct store_delivery {
	const char		*addr;
	const unsigned char	*dek;
	const void		*msg;
	size_t			 len;
	int64_t			 internaldate;	/* 0: now */
	const char		*dedup;		/* the delivery id */
	int			 rc;		/* out */
	uint32_t		 uidvalidity;	/* out */
	uint32_t		 uid;		/* out */
};
int	store_deliver_many(struct store *, struct store_delivery *, size_t);

/*
 * Forget the delivery ids recorded before `before` (unix seconds): they
 * only matter while their message can still be retried from the queue.
 * Looks at no more than max records per call, from *pos (zeroed at
 * first; the caller keeps it between calls: the next call goes on where
 * this one stopped, and starts over at the end).  Records of older
 * versions (no time) are given the current time.  Returns how many were
 * removed, or a negative error.
 */
struct store_prune_pos {
	struct store	*store;
	unsigned char	 key[16 + STORE_DEDUP_MAX];	/* user id || id */
	size_t		 len;
};
int	store_dedup_prune(struct store *, int64_t, size_t,
	    struct store_prune_pos *);

/*
 * The message, byte-exact, in a buffer the caller frees (it is
 * plaintext: wipe it with xfreezero()).  ERR_PERM if the file does not
 * authenticate under dek (wrong key, altered, moved), ERR_IO if it is
 * malformed or missing, ERR_NOTFOUND if the UID does not exist.
 */
int	store_read(struct store *, const char *, const char *, uint32_t,
	    const unsigned char *, unsigned char **, size_t *);

/*
 * Messages with uid_lo <= UID <= uid_hi and MODSEQ > changedsince (0:
 * all), in UID order.  changedsince > 0 walks the modseq index, so it
 * costs what changed, not the mailbox size.
 */
int	store_messages(struct store *, const char *, const char *, uint32_t,
	    uint32_t, uint64_t, struct store_msginfo **, size_t *);
void	store_msginfo_free(struct store_msginfo **);

enum store_flag_mode {
	STORE_FLAGS_ADD = 0,	/* +FLAGS */
	STORE_FLAGS_REMOVE,	/* -FLAGS */
	STORE_FLAGS_REPLACE,	/* FLAGS */
};

struct store_flagop {
	int			  mode;		/* enum store_flag_mode */
	uint32_t		  flags;	/* STORE_F_* */
	const char *const	 *keywords;
	size_t			  nkeywords;
	int			  conditional;	/* UNCHANGEDSINCE given */
	uint64_t		  unchangedsince;
};

struct store_flagres {
	/* every UID of the set that exists, with its state afterwards */
	struct store_msginfo	*msgs;
	size_t			 nmsgs;
	/* UNCHANGEDSINCE failures (RFC 7162 MODIFIED), not changed */
	uint32_t		*modified;
	size_t			 nmodified;
	/* the MODSEQ of the messages this call changed; 0: none changed */
	uint64_t		 modseq;
};

/*
 * STORE.  Messages whose flags actually change get one new MODSEQ,
 * shared by this call.  Keywords new to the mailbox are added to its
 * list (ERR_TOOBIG past STORE_KEYWORDS_MAX); removing an unknown keyword
 * is a no-op.  UIDs that do not exist are skipped.
 */
int	store_set_flags(struct store *, const char *, const char *,
	    const uint32_t *, size_t, const struct store_flagop *,
	    struct store_flagres *);
void	store_flagres_free(struct store_flagres *);

/*
 * EXPUNGE (uids NULL) or UID EXPUNGE (uids: only those): remove the
 * messages that have \Deleted; *out gets their UIDs (ascending).  The
 * expunge gets a new MODSEQ and is logged for store_vanished().
 */
int	store_expunge(struct store *, const char *, const char *,
	    const uint32_t *, size_t, uint32_t **, size_t *);

struct store_copyuid {
	uint32_t	 uidvalidity;	/* of the destination */
	uint32_t	*src;		/* UIDs that existed, ascending */
	uint32_t	*dst;		/* their new UIDs */
	size_t		 n;
};

/*
 * COPY / MOVE within one user.  Both share the message file (refcount),
 * keep flags, keywords and internal date.  COPY counts against the quota
 * (ERR_TOOBIG); MOVE also expunges the sources (logged for VANISHED).
 * Source UIDs that do not exist are skipped.
 */
int	store_copy(struct store *, const char *, const char *, const char *,
	    const uint32_t *, size_t, struct store_copyuid *);
int	store_move(struct store *, const char *, const char *, const char *,
	    const uint32_t *, size_t, struct store_copyuid *);
void	store_copyuid_free(struct store_copyuid *);

/* UIDs expunged with MODSEQ > since, ascending (QRESYNC VANISHED). */
int	store_vanished(struct store *, const char *, const char *, uint64_t,
	    uint32_t **, size_t *);

/*
 * What changed since MODSEQ since, read in one snapshot: the status,
 * messages with MODSEQ > since (new ones included) and UIDs expunged
 * since.  A session that polls with since = the HIGHESTMODSEQ it last
 * saw pays O(1) when nothing changed.
 */
struct store_changes {
	struct store_status	 status;
	struct store_msginfo	*changed;
	size_t			 nchanged;
	uint32_t		*vanished;
	size_t			 nvanished;
};

int	store_changes(struct store *, const char *, const char *, uint64_t,
	    struct store_changes *);
void	store_changes_free(struct store_changes *);

/*
 * A counter that moves whenever any write to this store commits (in this
 * process).  A session that saw the same value since its last poll has
 * nothing to ask store_changes() for; a different value only means
 * "something, somewhere, changed".
 */
uint64_t	store_generation(struct store *);

#endif
