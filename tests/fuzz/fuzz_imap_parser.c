/*
 * fuzz_imap_parser.c -- libFuzzer target for the IMAP command parser.
 *
 * Purpose: for any input, feeding it to an imap_parser all at once, in
 * two pieces split at a point chosen by the input, and byte by byte
 * gives the same transcript (every result code with its input offset,
 * every command rendered by imap_cmd_dump(), every literal announced);
 * the parser never consumes more than it was given, always makes
 * progress, and stays within its memory bounds.  Every parsed command
 * also goes through the argument helpers and sequence-set parser.
 * Input: byte 0 selects flags and limits (bit 0 UTF8, bit 1 LITERAL+,
 * bit 2 tiny limits so that every limit is reachable), byte 1 the split
 * point, the rest is the client's byte stream.  Every third literal is
 * refused; a command named IDLE or AUTHENTICATE switches to raw mode for
 * one line, as the server will.
 * Runs in: the fuzzer binary only (tests/fuzz/run).  tests/fuzz/run
 * links common/*.c only, so the parser sources are included here.
 * Failure policy: abort() on any broken invariant, so libFuzzer keeps
 * the input as a crash artifact.
 * SECURITY: this is the check that packet boundaries chosen by a peer
 * cannot change how commands and literals are framed (smuggling).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

#include "mailsrv/imap/imap_parser.c"
#include "mailsrv/imap/imap_lexer.c"
#include "mailsrv/imap/imap_args.c"
#include "mailsrv/imap/imap_seqset.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
die(const char *why)
{
	fprintf(stderr, "fuzz_imap_parser: %s\n", why);
	abort();
}

static void
limits_for(struct imap_parser_limits *l, int tiny)
{
	imap_parser_limits_default(l, 1);
	if (tiny) {
		l->line_max = 64;
		l->literal_max = 32;
		l->command_max = 128;
		l->depth_max = 4;
		l->tokens_max = 16;
	}
}

/* Run the helpers over the top level and the first level of lists. */
static void
exercise(const struct imap_cmd *c)
{
	static const char *const sigs[] = {
		"astring astring", "mailbox list?", "seqset any list?",
		"nstring number? ...", "flag nz-number section string",
		"list-mailbox atom?",
	};
	const struct imap_arg	*a;
	struct imap_seqset	 set;
	const char		*s;
	size_t			 i, j, len;
	uint64_t		 n;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (imap_args_check(c->args, c->nargs, sigs[i]) == ERR_INVAL)
			die("signature refused");
	for (i = 0; i < c->nargs; i++) {
		for (j = 0; j <= c->args[i].nlist; j++) {
			a = j == 0 ? &c->args[i] : &c->args[i].list[j - 1];
			if (j > 0 && a->parent != &c->args[i])
				die("bad parent");
			if (a->str == NULL || a->str[a->len] != '\0')
				die("string not NUL-terminated");
			(void)imap_arg_astring(&s, &len, a);
			(void)imap_arg_mailbox(&s, &len, a);
			(void)imap_arg_list_mailbox(&s, &len, a);
			(void)imap_arg_flag(&s, a);
			(void)imap_arg_nstring(&s, &len, a);
			(void)imap_arg_number(&n, a);
			if (imap_arg_seqset(&set, a, (uint32_t)a->len) == 0 &&
			    set.n > 0 && !imap_seqset_contains(&set,
			    set.r[0].lo))
				die("seqset lost its first number");
			imap_seqset_free(&set);
		}
	}
}

static void
record(struct buf *t, struct imap_parser *p, int rc, size_t off,
    unsigned *nlit)
{
	const struct imap_cmd		*c;
	const struct imap_parse_error	*e;
	struct imap_literal_info	 li;

	(void)buf_printf(t, "@%zu %d ", off, rc);
	if (rc == IMAP_PARSE_CONTINUE) {
		if (imap_parser_literal_info(p, &li) != 0)
			die("no literal info");
		(void)buf_printf(t, "+%llu %d %d\n",
		    (unsigned long long)li.size, li.sync, li.binary);
		if ((*nlit)++ % 3 == 2 && imap_parser_literal_reject(p) != 0)
			die("reject failed");
	} else if (rc == 0) {
		if ((c = imap_parser_cmd(p)) == NULL)
			die("no command");
		(void)imap_cmd_dump(t, c);
		(void)buf_putc(t, '\n');
		if (c->name != NULL)
			exercise(c);
		imap_parser_set_raw(p, c->name != NULL &&
		    (strcmp(c->name, "IDLE") == 0 ||
		    strcmp(c->name, "AUTHENTICATE") == 0));
	} else {
		e = imap_parser_error(p);
		if (e->code != rc || e->msg == NULL)
			die("error not recorded");
		(void)buf_printf(t, "%d %s %s %d\n", e->has_tag,
		    e->has_tag ? e->tag : "*", e->msg, e->fatal);
	}
}

/* Feed in[0..n): pieces of at most chunk bytes (0: no cap), the first
 * piece ending at split when 0 < split < n. */
static void
run(struct buf *t, const uint8_t *in, size_t n, unsigned flags, int tiny,
    size_t chunk, size_t split)
{
	struct imap_parser		*p;
	struct imap_parser_limits	 l;
	size_t				 off = 0, end, used;
	unsigned			 nlit = 0;
	int				 rc;

	limits_for(&l, tiny);
	p = imap_parser_new(&l, flags);
	while (off < n) {
		end = n;
		if (split > 0 && split < n && off < split)
			end = split;
		if (chunk > 0 && end - off > chunk)
			end = off + chunk;
		used = (size_t)-1;
		rc = imap_parser_feed(p, in + off, end - off, &used);
		if (used > end - off)
			die("used beyond the input");
		if (p->arena.cap > p->arena.max + 1 ||
		    p->nnodes > p->lim.tokens_max ||
		    p->depth > p->lim.depth_max)
			die("bound exceeded");
		off += used;
		if (rc == ERR_AGAIN) {
			if (off != end)
				die("ERR_AGAIN without consuming everything");
			continue;
		}
		if (rc != 0 && rc != IMAP_PARSE_CONTINUE &&
		    rc != ERR_PROTO && rc != ERR_TOOBIG)
			die("unexpected return code");
		if (used == 0 && rc != IMAP_PARSE_CONTINUE &&
		    !imap_parser_error(p)->fatal)
			die("no progress");
		record(t, p, rc, off, &nlit);
		if (rc < 0 && imap_parser_error(p)->fatal)
			break;
	}
	(void)buf_printf(t, "end idle=%d\n", imap_parser_idle(p));
	imap_parser_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	whole, split, bytes;
	const uint8_t	*in;
	size_t		 n, cut;
	unsigned	 flags = 0;
	int		 tiny;

	if (size < 2)
		return 0;
	if (data[0] & 1)
		flags |= IMAP_PARSER_UTF8;
	if (data[0] & 2)
		flags |= IMAP_PARSER_LITERAL_PLUS;
	tiny = (data[0] & 4) != 0;
	in = data + 2;
	n = size - 2;
	cut = n > 0 ? data[1] % (n + 1) : 0;
	buf_init(&whole, SIZE_MAX / 2);
	buf_init(&split, SIZE_MAX / 2);
	buf_init(&bytes, SIZE_MAX / 2);
	run(&whole, in, n, flags, tiny, 0, 0);
	run(&split, in, n, flags, tiny, 0, cut);
	run(&bytes, in, n, flags, tiny, 1, 0);
	if (whole.len != bytes.len ||
	    memcmp(whole.data, bytes.data, whole.len) != 0)
		die("byte by byte differs from all at once");
	if (whole.len != split.len ||
	    memcmp(whole.data, split.data, whole.len) != 0)
		die("split differs from all at once");
	buf_free(&whole);
	buf_free(&split);
	buf_free(&bytes);
	return 0;
}
