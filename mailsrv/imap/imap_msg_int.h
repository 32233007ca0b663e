/*
 * imap_msg_int.h -- private to imap_msg.c, imap_msg_env.c,
 * imap_msg_struct.c and imap_msg_search.c: the parsed message (its
 * parts, their Content-* information and the string arena) and the
 * header helpers the four share.  Nothing else includes this; the API
 * is imap_msg.h.
 */
#ifndef MAILSRV_IMAP_MSG_INT_H
#define MAILSRV_IMAP_MSG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "mailsrv/imap/imap_msg.h"

#define NONE		UINT32_MAX
#define SCRATCH_MAX	(SIZE_MAX / 4)

enum part_kind {
	K_LEAF,		/* a body */
	K_MULTI,	/* multipart/<x> with a boundary */
	K_MSG,		/* message/rfc822 or message/global: one child */
	K_OPAQUE,	/* too deep or too many parts: not split */
};

enum cte {
	CTE_7BIT,	/* also: absent or unparsable */
	CTE_8BIT,
	CTE_BINARY,
	CTE_QP,
	CTE_B64,
	CTE_OTHER,
};

struct mparam {
	const char	*name;
	const char	*value;
};

/* What the Content-* fields say (all NULL/0 when they do not count). */
struct minfo {
	const char	*type, *subtype;	/* NULL: the default */
	const char	*boundary;		/* K_MULTI */
	struct mparam	*params, *dparams;
	const char	*id, *desc, *enc, *md5, *loc, *disp;
	const char	**lang;
	uint8_t		 nparams, ndparams, nlang;
	uint8_t		 cte;			/* enum cte */
};

struct mpart {
	size_t		 hstart, hend;	/* header, with its blank line */
	size_t		 bstart, bend;	/* body */
	uint32_t	 lines;		/* LFs in the body */
	uint32_t	 parent, child, next, nchild;
	uint16_t	 depth;
	uint8_t		 kind;		/* enum part_kind */
	uint8_t		 text;		/* text/<x> (default included) */
	struct minfo	 ci;
};

/* The arena's chunks (imap_msg.c). */
struct achunk;

struct imap_msg {
	const unsigned char	*d;
	size_t			 n;
	struct mpart		*parts;
	uint32_t		 np, cap;
	struct achunk		*arena;
};

/* One header field: raw bytes [start, end), line endings included. */
struct hfield {
	size_t	start, end;
	size_t	name_len;	/* the name at start; 0: no ':' */
	size_t	vstart, vend;	/* the value, without the last line end */
};

/* A structured field value being lexed (Content-*, Date:). */
struct lex {
	const char	*s;
	size_t		 i, n;
};

static inline int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* imap_msg.c: header fields and structured values. */
int	imap_msg__hdr_next(const unsigned char *, size_t, size_t *,
	    struct hfield *);
int	imap_msg__field_is(const unsigned char *, const struct hfield *,
	    const char *);
int	imap_msg__unfold(struct buf *, const unsigned char *, size_t,
	    size_t);
void	imap_msg__lex_cfws(struct lex *);
int	imap_msg__lex_is(struct lex *, char);
const char	*imap_msg__param_get(const struct mparam *, size_t,
	    const char *);

/* imap_msg_env.c: the ENVELOPE of the header [hs, he). */
int	imap_msg__write_envelope(struct buf *, const struct imap_msg *,
	    size_t, size_t, int);

/* imap_msg_struct.c: the body of a part, transfer encoding removed. */
int	imap_msg__decode_body(struct buf *, const struct imap_msg *,
	    const struct mpart *);

#endif
