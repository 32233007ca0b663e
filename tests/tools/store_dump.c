/*
 * store_dump.c -- a test tool: read mailsrv's encrypted store (and queue)
 * from outside the daemon, for the end-to-end tests (tests/e2e/
 * test_smtp_*.py), which cannot see plaintext any other way.
 *
 *	store_dump STOREDIR user ADDR
 *		prints the user's record: "user_id=... created=...
 *		quota_used=... mailboxes=..." then "wrapped=<wrapped DEK>"
 *		(exit 3 if the user does not exist)
 *	store_dump STOREDIR list ADDR MAILBOX DEK_B64
 *		one line per message, in UID order:
 *		"<uid> <size> <sha256 of the whole message> <sha256 of the
 *		body after the first blank line> <Message-ID or ->"
 *		every message is read (authenticated) through store_read;
 *		one that does not read is a line "<uid> ERROR <err>" and
 *		exit 4 at the end
 *	store_dump STOREDIR read ADDR MAILBOX UID DEK_B64
 *		the message bytes, exactly, on stdout
 *	store_dump QUEUEDIR queue KEY_B64
 *		the queue's envelopes as a JSON array (queue_list); the
 *		queue must not be open in mailsrv (it is flock()ed)
 *
 * STOREDIR is <datadir>/mailsrv/store, QUEUEDIR <datadir>/mailsrv/queue.
 * DEK_B64 is the user's plain data key (base64), obtained by the test
 * from keyservice (POST /v1/keys/unwrap of the wrapped DEK, context
 * "mailbox:<addr>"); KEY_B64 the queue key (unwrap of
 * <datadir>/mailsrv/queue.key, context "mailsrv-queue").  MAILBOX "-" is
 * INBOX.
 *
 * Exit: 0 ok, 1 usage, 2 cannot open, 3 not found, 4 a message did not
 * read.  Built by the tests (or the Makefile) from libmailsrv.a and
 * libcommon.a; never installed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/queue/queue.h"
#include "mailsrv/store/store.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: store_dump STOREDIR user ADDR\n"
	    "       store_dump STOREDIR list ADDR MAILBOX DEK_B64\n"
	    "       store_dump STOREDIR read ADDR MAILBOX UID DEK_B64\n"
	    "       store_dump QUEUEDIR queue KEY_B64\n");
	exit(1);
}

static void
key_decode(unsigned char *out, size_t want, const char *b64)
{
	unsigned char	*raw = NULL;
	size_t		 len = 0;

	if (b64_decode(&raw, &len, b64, strlen(b64), want) < 0 ||
	    len != want) {
		fprintf(stderr, "store_dump: key is not %zu bytes of base64\n",
		    want);
		exit(1);
	}
	memcpy(out, raw, want);
	xfreezero(raw, len + 1);
}

static const char *
mailbox_arg(const char *m)
{
	return strcmp(m, "-") == 0 ? NULL : m;
}

static void
sha256_hex(char *out, const unsigned char *p, size_t n)
{
	unsigned char	md[32];
	unsigned int	mdlen = 0;
	size_t		i;

	if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != sizeof(md)) {
		fprintf(stderr, "store_dump: sha256 failed\n");
		exit(2);
	}
	for (i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The Message-ID header's value (unfolded, trimmed) or "-". */
static void
message_id(char *out, size_t outlen, const unsigned char *msg, size_t len)
{
	const char	*p = (const char *)msg, *end = p + len, *nl, *v;
	size_t		 n, o = 0;

	snprintf(out, outlen, "-");
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl ? nl : end) - p);
		if (n == 0 || (n == 1 && p[0] == '\r'))
			return;		/* end of the header section */
		if (n >= 11 && strncasecmp(p, "Message-ID:", 11) == 0) {
			for (v = p + 11; v < end && o + 1 < outlen; v++) {
				if (*v == '\r' || *v == '\n') {
					/* folded continuation? */
					const char *q = v;

					while (q < end && (*q == '\r' ||
					    *q == '\n'))
						q++;
					if (q < end && (*q == ' ' ||
					    *q == '\t')) {
						v = q - 1;
						continue;
					}
					break;
				}
				if ((*v == ' ' || *v == '\t') && o == 0)
					continue;
				if ((unsigned char)*v <= ' ')
					continue;
				out[o++] = *v;
			}
			out[o] = '\0';
			if (o == 0)
				snprintf(out, outlen, "-");
			return;
		}
		if (nl == NULL)
			return;
		p = nl + 1;
	}
}

static int
cmd_user(struct store *st, const char *addr)
{
	struct store_user	u;
	int			rc;

	memset(&u, 0, sizeof(u));
	if ((rc = store_user_get(st, addr, &u)) < 0) {
		fprintf(stderr, "store_dump: user %s: %s\n", addr, err_msg());
		return rc == ERR_NOTFOUND ? 3 : 2;
	}
	printf("user_id=%s created=%lld quota_used=%llu mailboxes=%u\n",
	    u.user_id, (long long)u.created,
	    (unsigned long long)u.quota_used, u.mailboxes);
	printf("wrapped=%s\n", u.wrapped_dek);
	store_user_clear(&u);
	return 0;
}

static int
cmd_list(struct store *st, const char *addr, const char *mbox,
    const unsigned char *dek)
{
	struct store_msginfo	*m = NULL;
	unsigned char		*msg;
	const unsigned char	*body;
	char			 h1[65], h2[65], mid[1024];
	size_t			 n = 0, i, len;
	int			 rc, bad = 0;

	if ((rc = store_messages(st, addr, mbox, 1, UINT32_MAX, 0, &m,
	    &n)) < 0) {
		fprintf(stderr, "store_dump: list %s: %s\n", addr, err_msg());
		return rc == ERR_NOTFOUND ? 3 : 2;
	}
	for (i = 0; i < n; i++) {
		msg = NULL;
		len = 0;
		if ((rc = store_read(st, addr, mbox, m[i].uid, dek, &msg,
		    &len)) < 0) {
			printf("%u ERROR %s: %s\n", m[i].uid, err_name(rc),
			    err_msg());
			bad = 1;
			continue;
		}
		sha256_hex(h1, msg, len);
		body = memmem(msg, len, "\r\n\r\n", 4);
		if (body != NULL)
			body += 4;
		else
			body = msg + len;
		sha256_hex(h2, body, len - (size_t)(body - msg));
		message_id(mid, sizeof(mid), msg, len);
		printf("%u %zu %s %s %s\n", m[i].uid, len, h1, h2, mid);
		if (len != m[i].size) {
			printf("%u ERROR size %zu != recorded %llu\n",
			    m[i].uid, len, (unsigned long long)m[i].size);
			bad = 1;
		}
		xfreezero(msg, len);
	}
	store_msginfo_free(&m);
	return bad ? 4 : 0;
}

static int
cmd_read(struct store *st, const char *addr, const char *mbox,
    const char *uidarg, const unsigned char *dek)
{
	unsigned char	*msg = NULL;
	size_t		 len = 0;
	long long	 uid;
	int		 rc;

	if (parse_ll(&uid, uidarg, 1, UINT32_MAX) < 0)
		usage();
	if ((rc = store_read(st, addr, mbox, (uint32_t)uid, dek, &msg,
	    &len)) < 0) {
		fprintf(stderr, "store_dump: read %s %lld: %s\n", addr, uid,
		    err_msg());
		return rc == ERR_NOTFOUND ? 3 : 4;
	}
	rc = fwrite(msg, 1, len, stdout) != len ? 2 : 0;
	xfreezero(msg, len);
	return rc;
}

static int
cmd_queue(const char *dir, const char *keyb64)
{
	unsigned char		 key[QUEUE_KEY_LEN];
	struct event_base	*base;
	struct queue		*q = NULL;
	json_t			*list = NULL;
	char			*s;
	int			 rc;

	key_decode(key, sizeof(key), keyb64);
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "store_dump: event_base_new failed\n");
		return 2;
	}
	rc = queue_open(&q, base, dir, key);
	explicit_bzero(key, sizeof(key));
	if (rc < 0) {
		fprintf(stderr, "store_dump: queue %s: %s\n", dir, err_msg());
		event_base_free(base);
		return 2;
	}
	if ((rc = queue_list(q, &list)) < 0) {
		fprintf(stderr, "store_dump: queue list: %s\n", err_msg());
		rc = 2;
	} else {
		s = json_dumps(list, JSON_COMPACT);
		printf("%s\n", s ? s : "null");
		free(s);
		json_decref(list);
		rc = 0;
	}
	queue_close(&q);
	event_base_free(base);
	return rc;
}

int
main(int argc, char **argv)
{
	struct store	*st = NULL;
	unsigned char	 dek[STORE_DEK_LEN];
	int		 rc;

	if (argc < 3)
		usage();
	if (strcmp(argv[2], "queue") == 0) {
		if (argc != 4)
			usage();
		return cmd_queue(argv[1], argv[3]);
	}
	if (store_open(&st, argv[1], NULL) < 0) {
		fprintf(stderr, "store_dump: store %s: %s\n", argv[1],
		    err_msg());
		return 2;
	}
	if (strcmp(argv[2], "user") == 0 && argc == 4)
		rc = cmd_user(st, argv[3]);
	else if (strcmp(argv[2], "list") == 0 && argc == 6) {
		key_decode(dek, sizeof(dek), argv[5]);
		rc = cmd_list(st, argv[3], mailbox_arg(argv[4]), dek);
	} else if (strcmp(argv[2], "read") == 0 && argc == 7) {
		key_decode(dek, sizeof(dek), argv[6]);
		rc = cmd_read(st, argv[3], mailbox_arg(argv[4]), argv[5], dek);
	} else {
		store_close(&st);
		usage();
	}
	explicit_bzero(dek, sizeof(dek));
	store_close(&st);
	return rc;
}
