/*
 * test_common_audit.c -- unit tests for the audit log.
 *
 * Purpose: the canonical entry encoding (one literal checked byte for
 * byte against Python's json.dumps(sort_keys=True, separators=(",",
 * ":"), ensure_ascii=True)), string repair and limits, HMAC; a log's
 * roots and proofs for every size and pair up to 64 entries against a
 * naive MTH; reopening; one writer; batched appends (10000, callbacks
 * once and in order); a failed commit (map_max reached) reported to the
 * callbacks; appends from another thread; a changed byte of a stored
 * entry named by audit_verify_all(); removed entries found against a
 * saved checkpoint; checkpoints signed with Ed25519; queries and paging;
 * export bundles.
 * Runs in: the unit test binary only; each test gets a mkdtemp()
 * directory that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: these are the tamper-evidence and fail-closed guarantees of
 * the audit log.
 */
#include <sys/wait.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "common/audit.h"
#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "tests/unit/testutil.h"

#define HL		MERKLE_HASH_LEN
#define T0		INT64_C(1700000000000)
#define MANY		10000

typedef uint8_t	hash_t[HL];

/* ------------------------------------------------------------ helpers */

static int
setup_dir(void **state)
{
	char	tmpl[] = "/tmp/amanat-test-audit.XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	*state = xstrdup(tmpl);
	log_setlevel(LOG_LVL_ERROR);
	return 0;
}

static int
teardown_dir(void **state)
{
	rm_tree(*state);
	free(*state);
	return 0;
}

static void
opts_init(struct audit_opts *o, const char *dir, struct event_base *base)
{
	memset(o, 0, sizeof(*o));
	o->dir = dir;
	o->node = "node1";
	o->service = "test";
	o->map_size = 1024 * 1024;
	o->map_max = 256 * 1024 * 1024;
	o->base = base;
}

static struct audit_log *
open_log(const char *dir, struct event_base *base)
{
	struct audit_opts	 o;
	struct audit_log	*log = NULL;

	opts_init(&o, dir, base);
	if (audit_open(&log, &o) != 0)
		fail_msg("audit_open: %s", err_msg());
	return log;
}

static const char *const actors[] = { "alice", "bob", "carol" };
static const char *const objects[] = { "obj0", "obj1", "obj2", "obj3" };

/* Entry i: fields cycle so that queries have something to find. */
static void
entry_init(struct audit_entry *e, int i, char *req, size_t reqlen)
{
	memset(e, 0, sizeof(*e));
	snprintf(req, reqlen, "req-%d", i);
	e->time_ms = T0 + (int64_t)i * 1000;
	e->actor = actors[i % 3];
	e->dept = i % 2 ? "dept-b" : "dept-a";
	e->src = "192.0.2.7";
	e->action = i % 5 == 0 ? "login" : "doc.read";
	e->object = objects[i % 4];
	e->outcome = (enum audit_outcome)(i % 3);
	e->request_id = req;
}

static void
append_n(struct audit_log *log, int from, int to)
{
	struct audit_entry	e;
	char			req[32];
	uint64_t		idx;
	int			i;

	for (i = from; i < to; i++) {
		entry_init(&e, i, req, sizeof(req));
		if (audit_append_sync(&idx, log, &e) != 0)
			fail_msg("append %d: %s", i, err_msg());
		assert_int_equal(idx, (uint64_t)i);
	}
}

static void
naive_node(uint8_t *out, const uint8_t *l, const uint8_t *r)
{
	uint8_t		buf[1 + 2 * HL];
	unsigned int	n = 0;

	buf[0] = 0x01;
	memcpy(buf + 1, l, HL);
	memcpy(buf + 1 + HL, r, HL);
	assert_int_equal(EVP_Digest(buf, sizeof(buf), out, &n, EVP_sha256(),
	    NULL), 1);
}

static void
naive_mth(uint8_t *out, const hash_t *leaf, uint64_t n)
{
	hash_t		l, r;
	uint64_t	k = 1;
	unsigned int	len = 0;

	if (n == 0) {
		assert_int_equal(EVP_Digest("", 0, out, &len, EVP_sha256(),
		    NULL), 1);
		return;
	}
	if (n == 1) {
		memcpy(out, leaf[0], HL);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	naive_mth(l, leaf, k);
	naive_mth(r, leaf + k, n - k);
	naive_node(out, l, r);
}

/* SHA-256(0x00 || stored bytes), with EVP directly. */
static void
leaf_of(uint8_t *out, struct audit_log *log, uint64_t i)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	unsigned int	 n = 0;
	uint8_t		 zero = 0;
	char		*bytes;
	size_t		 len;

	assert_int_equal(audit_get(&bytes, &len, log, i), 0);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, &zero, 1), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, bytes, len), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, out, &n), 1);
	EVP_MD_CTX_free(ctx);
	free(bytes);
}

/* ------------------------------------------------------------ raw LMDB */

/* Open the log's environment behind its back, as an attacker would. */
static void
raw_open(MDB_env **env, MDB_txn **txn, const char *dir)
{
	assert_int_equal(mdb_env_create(env), 0);
	assert_int_equal(mdb_env_set_maxdbs(*env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(*env, 256 * 1024 * 1024), 0);
	assert_int_equal(mdb_env_open(*env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, 0, txn), 0);
}

static void
raw_close(MDB_env *env, MDB_txn *txn)
{
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void
be64(uint8_t *k, uint64_t v)
{
	int	i;

	for (i = 7; i >= 0; i--) {
		k[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* Delete keys >= from of a named db. */
static void
raw_cut(MDB_txn *txn, const char *name, uint64_t from)
{
	MDB_dbi		dbi;
	MDB_cursor	*cur;
	MDB_val		k, v;
	uint8_t		kb[8];
	int		rc;

	assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	be64(kb, from);
	for (;;) {
		k.mv_data = kb;
		k.mv_size = 8;
		if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) != 0)
			break;
		assert_int_equal(mdb_cursor_del(cur, 0), 0);
	}
	assert_int_equal(rc, MDB_NOTFOUND);
	mdb_cursor_close(cur);
}

/* ------------------------------------------------------------ signing */

static void
sign_body(unsigned char **sig, size_t *slen, EVP_PKEY *key,
    const char *body, size_t blen)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();

	assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL,
	    key, NULL), 1);
	assert_int_equal(EVP_DigestSign(ctx, NULL, slen,
	    (const unsigned char *)body, blen), 1);
	*sig = xmalloc(*slen);
	assert_int_equal(EVP_DigestSign(ctx, *sig, slen,
	    (const unsigned char *)body, blen), 1);
	EVP_MD_CTX_free(ctx);
}

/* Prepare, sign and store a checkpoint of the current log; return it. */
static json_t *
checkpoint(struct audit_log *log, EVP_PKEY *key)
{
	struct audit_checkpoint	 cp;
	unsigned char		*sig;
	char			*body;
	size_t			 blen, slen;
	json_t			*j;

	assert_int_equal(audit_checkpoint_prepare(&cp, log), 0);
	assert_int_equal(audit_checkpoint_body(&body, &blen,
	    audit_origin(log), &cp), 0);
	sign_body(&sig, &slen, key, body, blen);
	if (audit_checkpoint_store(log, &cp, sig, slen, "ed25519",
	    "test") != 0)
		fail_msg("checkpoint store: %s", err_msg());
	assert_int_equal(audit_checkpoint_get(&j, log, cp.size), 0);
	free(sig);
	free(body);
	return j;
}

/* ------------------------------------------------------------ encoding */

static void
test_common_audit__canonical_encoding(void **state)
{
	static const char want[] = "{\"action\":\"doc.write\",\"actor\":"
	    "\"alice@dept-a.example\",\"dept\":\"dept-a\",\"details\":{\"Z\":"
	    "\"up\",\"a\":\"tab\\there \\\"q\\\" \\\\ / \\u0001 \\u007f "
	    "\\ud83d\\ude00\",\"m\":{\"a\":\"\\u00fc\",\"b\":1},\"z\":[1,-2,"
	    "true,false,null],\"\\u00e9k\":0},\"node\":\"n1\",\"object\":"
	    "\"/spaces/\\u00e9/na\\u00efve.txt\",\"outcome\":\"denied\","
	    "\"request_id\":\"req-1\",\"service\":\"docstore\",\"src\":"
	    "\"192.0.2.1\",\"time\":1700000000123,\"v\":1}";
	struct audit_entry	 e;
	char			*a, *b, *c;
	size_t			 alen, blen, clen;
	uint8_t			 leaf[HL];
	char			 hex[MERKLE_HEX_LEN + 1];
	json_t			*d, *parsed;

	(void)state;
	d = json_pack("{s:[i,i,b,b,n],s:s,s:{s:i,s:s},s:i,s:s}", "z", 1, -2,
	    1, 0, "a", "tab\there \"q\" \\ / \x01 \x7f \xf0\x9f\x98\x80", "m",
	    "b", 1, "a", "\xc3\xbc", "\xc3\xa9k", 0, "Z", "up");
	assert_non_null(d);
	memset(&e, 0, sizeof(e));
	e.time_ms = 1700000000123;
	e.node = "n1";
	e.actor = "alice@dept-a.example";
	e.dept = "dept-a";
	e.src = "192.0.2.1";
	e.action = "doc.write";
	e.object = "/spaces/\xc3\xa9/na\xc3\xafve.txt";
	e.outcome = AUDIT_DENIED;
	e.request_id = "req-1";
	e.details = d;
	assert_int_equal(audit_entry_encode(&a, &alen, &e, "ignored",
	    "docstore"), 0);
	assert_string_equal(a, want);
	assert_int_equal(alen, strlen(want));
	/* the leaf hash Python computes from the same object */
	assert_int_equal(merkle_leaf_hash(leaf, a, alen), 0);
	merkle_hex(hex, leaf);
	assert_string_equal(hex, "0cdb1bb9726a978e530d56c4742c136668bcc5425"
	    "36c9e4174ce1e5897825bf6");
	/* stable, and parse + re-encode gives the same bytes */
	assert_int_equal(audit_entry_encode(&b, &blen, &e, "x", "docstore"),
	    0);
	assert_int_equal(blen, alen);
	assert_memory_equal(a, b, alen);
	assert_int_equal(audit_entry_parse(&parsed, a, alen), 0);
	assert_int_equal(audit_canon_json(&c, &clen, parsed, AUDIT_ENTRY_MAX),
	    0);
	assert_int_equal(clen, alen);
	assert_memory_equal(a, c, alen);
	json_decref(parsed);
	json_decref(d);
	free(a);
	free(b);
	free(c);
}

static void
test_common_audit__strings_repaired_and_cut(void **state)
{
	struct audit_entry	 e;
	char			 big[AUDIT_FIELD_MAX + 16], *out;
	size_t			 len;
	json_t			*j;
	const char		*s;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.time_ms = 5;
	/* invalid UTF-8, a surrogate, an overlong '/' and a lone lead */
	e.actor = "a\xff" "b\xed\xa0\x80" "c\xc0\xaf" "d\xe2\x82";
	/* AUDIT_FIELD_MAX - 1 'x' then a 2-byte character across the cut */
	memset(big, 'x', AUDIT_FIELD_MAX - 1);
	memcpy(big + AUDIT_FIELD_MAX - 1, "\xc3\xa9tail", 7);
	e.object = big;
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"), 0);
	assert_non_null(strstr(out, "\"actor\":\"a\\ufffdb\\ufffd\\ufffd"
	    "\\ufffdc\\ufffd\\ufffdd\\ufffd\\ufffd\""));
	assert_int_equal(audit_entry_parse(&j, out, len), 0);
	s = json_string_value(json_object_get(j, "object"));
	assert_int_equal(strlen(s), AUDIT_FIELD_MAX - 1);
	assert_int_equal(json_object_size(json_object_get(j, "details")), 0);
	assert_string_equal(json_string_value(json_object_get(j, "src")), "");
	assert_int_equal(json_integer_value(json_object_get(j, "time")), 5);
	json_decref(j);
	free(out);
	/* exactly AUDIT_FIELD_MAX bytes stay whole */
	memset(big, 'y', AUDIT_FIELD_MAX);
	big[AUDIT_FIELD_MAX] = '\0';
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"), 0);
	assert_int_equal(audit_entry_parse(&j, out, len), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(j,
	    "object"))), AUDIT_FIELD_MAX);
	json_decref(j);
	free(out);
}

static void
test_common_audit__details_limits(void **state)
{
	struct audit_entry	 e;
	char			*out = NULL, *pad;
	size_t			 len;
	json_t			*d;
	int			 i;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.details = d = json_pack("{s:f}", "x", 1.5);
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"),
	    ERR_INVAL);
	json_decref(d);
	e.details = d = json_pack("[i]", 1);
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"),
	    ERR_INVAL);
	json_decref(d);
	/* {"p": "<pad>"} of exactly AUDIT_DETAILS_MAX bytes, then one more */
	pad = xcalloc(1, AUDIT_DETAILS_MAX);
	memset(pad, 'p', AUDIT_DETAILS_MAX - 8);
	e.details = d = json_pack("{s:s}", "p", pad);
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"), 0);
	free(out);
	json_decref(d);
	pad[AUDIT_DETAILS_MAX - 8] = 'p';
	e.details = d = json_pack("{s:s}", "p", pad);
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"),
	    ERR_TOOBIG);
	assert_null(out);
	json_decref(d);
	free(pad);
	/* nesting: AUDIT_DETAILS_DEPTH levels are fine, one more is not */
	d = json_object();
	for (i = 1; i < AUDIT_DETAILS_DEPTH; i++)
		d = json_pack("{s:o}", "n", d);
	e.details = d;
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"), 0);
	free(out);
	e.details = d = json_pack("{s:o}", "n", d);
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"),
	    ERR_INVAL);
	json_decref(d);
	e.details = NULL;
	e.outcome = (enum audit_outcome)7;
	assert_int_equal(audit_entry_encode(&out, &len, &e, "n", "s"),
	    ERR_INVAL);
}

static void
test_common_audit__hmac(void **state)
{
	unsigned char	key[20];
	char		hex[AUDIT_HMAC_HEX_LEN + 1];

	(void)state;
	/* RFC 4231 test case 1 */
	memset(key, 0x0b, sizeof(key));
	assert_int_equal(audit_hmac(hex, key, sizeof(key), "Hi There"), 0);
	assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9"
	    "833da726e9376c2e32cff7");
	assert_int_equal(audit_hmac(hex, key, AUDIT_HMAC_KEY_MIN - 1, "x"),
	    ERR_INVAL);
}

/* ------------------------------------------------------------ log */

static void
test_common_audit__roots_and_proofs(void **state)
{
	struct audit_log	*log = open_log(*state, NULL);
	uint8_t			 proof[MERKLE_PROOF_MAX][HL];
	hash_t			 leaf[64];
	uint8_t			 want[HL], got[HL], r1[HL];
	uint64_t		 n, m;
	size_t			 np;

	assert_int_equal(audit_size(log), 0);
	assert_int_equal(audit_root(got, log, 0), 0);
	naive_mth(want, leaf, 0);
	assert_memory_equal(got, want, HL);
	append_n(log, 0, 64);
	for (n = 0; n < 64; n++)
		leaf_of(leaf[n], log, n);
	for (n = 0; n <= 64; n++) {
		naive_mth(want, leaf, n);
		assert_int_equal(audit_root(got, log, n), 0);
		assert_memory_equal(got, want, HL);
		for (m = 0; m < n; m++) {
			assert_int_equal(audit_inclusion_proof(proof, &np,
			    log, m, n), 0);
			assert_int_equal(audit_verify_inclusion(leaf[m], m, n,
			    (const hash_t *)proof, np, want), 0);
		}
		for (m = 0; m <= n; m++) {
			naive_mth(r1, leaf, m);
			assert_int_equal(audit_consistency_proof(proof, &np,
			    log, m, n), 0);
			assert_int_equal(audit_verify_consistency(m, n, r1,
			    want, (const hash_t *)proof, np), 0);
		}
	}
	assert_int_equal(audit_root(got, log, 65), ERR_INVAL);
	assert_int_equal(audit_inclusion_proof(proof, &np, log, 3, 65),
	    ERR_INVAL);
	assert_int_equal(audit_consistency_proof(proof, &np, log, 3, 65),
	    ERR_INVAL);
	audit_close(&log);
	assert_null(log);
}

static void
test_common_audit__reopen_same_root(void **state)
{
	struct audit_opts	 o;
	struct audit_log	*log = open_log(*state, NULL), *other = NULL;
	struct audit_verify	 v;
	uint8_t			 r1[HL], r2[HL];

	append_n(log, 0, 37);
	assert_int_equal(audit_root(r1, log, 37), 0);
	/* one writer per log */
	opts_init(&o, *state, NULL);
	assert_int_equal(audit_open(&other, &o), ERR_LOCKED);
	assert_null(other);
	audit_close(&log);

	log = open_log(*state, NULL);
	assert_int_equal(audit_size(log), 37);
	assert_int_equal(audit_root(r2, log, 37), 0);
	assert_memory_equal(r1, r2, HL);
	append_n(log, 37, 40);
	assert_int_equal(audit_verify_all(&v, log, NULL), 0);
	assert_int_equal(v.size, 40);
	audit_close(&log);

	/* a log keeps its origin */
	opts_init(&o, *state, NULL);
	o.service = "other";
	assert_int_equal(audit_open(&other, &o), ERR_INVAL);
	/* bad names */
	o.service = "a/b";
	assert_int_equal(audit_open(&other, &o), ERR_INVAL);
	assert_null(other);
}

struct cbs {
	int		 n;		/* callbacks run */
	int		 bad_order;
	int		 ok;
	int		 toobig;
	int		 other;
	uint64_t	 last;
	uint64_t	*index;		/* per submission, or NULL */
};

struct cb_arg {
	struct cbs	*c;
	int		 seq;
};

static void
batch_cb(void *arg, int rc, uint64_t index)
{
	struct cb_arg	*a = arg;
	struct cbs	*c = a->c;

	if (a->seq != c->n)
		c->bad_order = 1;
	c->n++;
	if (rc == 0) {
		if (c->ok > 0 && index != c->last + 1)
			c->bad_order = 1;
		c->last = index;
		c->ok++;
	} else if (rc == ERR_TOOBIG)
		c->toobig++;
	else
		c->other++;
	if (c->index != NULL)
		c->index[a->seq] = rc == 0 ? index : AUDIT_NO_MORE;
}

static void
test_common_audit__batch_many(void **state)
{
	struct event_base	*base = event_base_new();
	struct audit_log	*log = open_log(*state, base);
	struct audit_verify	 v;
	struct audit_entry	 e;
	struct cb_arg		*args = xcalloc(MANY, sizeof(*args));
	struct cbs		 c;
	char			 req[32];
	int			 i;

	memset(&c, 0, sizeof(c));
	for (i = 0; i < MANY; i++) {
		args[i].c = &c;
		args[i].seq = i;
		entry_init(&e, i, req, sizeof(req));
		assert_int_equal(audit_append(log, &e, batch_cb, &args[i]), 0);
	}
	while (c.n < MANY)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(c.n, MANY);
	assert_int_equal(c.ok, MANY);
	assert_false(c.bad_order);
	assert_int_equal(c.last, MANY - 1);
	assert_int_equal(audit_size(log), MANY);
	assert_int_equal(audit_verify_all(&v, log, NULL), 0);
	assert_int_equal(v.size, MANY);
	/* no callback runs twice, even at close */
	audit_close(&log);
	assert_int_equal(c.n, MANY);
	event_base_free(base);
	free(args);
}

static void
test_common_audit__commit_failure(void **state)
{
	struct event_base	*base = event_base_new();
	struct audit_opts	 o;
	struct audit_log	*log = NULL;
	struct audit_verify	 v;
	struct audit_entry	 e;
	struct cb_arg		 args[400];
	struct cbs		 c;
	char			 req[32], *pad;
	uint8_t			 r1[HL], r2[HL];
	json_t			*d;
	uint64_t		 size;
	int			 i, rc = 0;

	opts_init(&o, *state, base);
	o.map_size = o.map_max = 512 * 1024;
	o.batch_max = 8;
	assert_int_equal(audit_open(&log, &o), 0);
	pad = xcalloc(1, 3001);
	memset(pad, 'p', 3000);
	d = json_pack("{s:s}", "pad", pad);
	memset(&c, 0, sizeof(c));
	for (i = 0; i < 400; i++) {
		args[i].c = &c;
		args[i].seq = i;
		entry_init(&e, i, req, sizeof(req));
		e.details = d;
		assert_int_equal(audit_append(log, &e, batch_cb, &args[i]), 0);
	}
	while (c.n < 400)
		event_base_loop(base, EVLOOP_ONCE);
	assert_true(c.ok > 0);
	assert_true(c.toobig > 0);
	assert_int_equal(c.other, 0);
	assert_int_equal(c.ok + c.toobig, 400);
	/* only the committed ones are in the log, and it verifies */
	assert_int_equal(audit_size(log), (uint64_t)c.ok);
	/* single entries may still fit where a batch did not, for a while */
	entry_init(&e, 999, req, sizeof(req));
	e.details = d;
	for (i = 0; i < 100; i++)
		if ((rc = audit_append_sync(NULL, log, &e)) != 0)
			break;
	assert_int_equal(rc, ERR_TOOBIG);
	size = audit_size(log);
	assert_int_equal(size, (uint64_t)(c.ok + i));
	assert_int_equal(audit_verify_all(&v, log, NULL), 0);
	assert_int_equal(audit_root(r1, log, size), 0);
	audit_close(&log);
	log = open_log(*state, NULL);
	assert_int_equal(audit_size(log), size);
	assert_int_equal(audit_root(r2, log, size), 0);
	assert_memory_equal(r1, r2, HL);
	audit_close(&log);
	json_decref(d);
	free(pad);
	event_base_free(base);
}

struct sync_thread {
	struct audit_log	*log;
	uint64_t		 index[200];
	int			 rc;
};

static void *
sync_main(void *arg)
{
	struct sync_thread	*t = arg;
	struct audit_entry	 e;
	char			 req[32];
	int			 i;

	for (i = 0; i < 200 && t->rc == 0; i++) {
		entry_init(&e, 1000 + i, req, sizeof(req));
		t->rc = audit_append_sync(&t->index[i], t->log, &e);
	}
	return NULL;
}

static void
test_common_audit__sync_with_writer(void **state)
{
	struct event_base	*base = event_base_new();
	struct audit_log	*log = open_log(*state, base);
	struct sync_thread	 t;
	struct audit_entry	 e;
	struct cb_arg		 args[200];
	uint64_t		 async_index[200], loop_index;
	struct cbs		 c;
	uint8_t			*seen;
	pthread_t		 th;
	char			 req[32];
	int			 i;

	memset(&t, 0, sizeof(t));
	t.log = log;
	memset(&c, 0, sizeof(c));
	c.index = async_index;
	assert_int_equal(pthread_create(&th, NULL, sync_main, &t), 0);
	for (i = 0; i < 200; i++) {
		args[i].c = &c;
		args[i].seq = i;
		entry_init(&e, i, req, sizeof(req));
		assert_int_equal(audit_append(log, &e, batch_cb, &args[i]), 0);
	}
	/* blocking on the loop thread itself is fine */
	assert_int_equal(audit_append_sync(&loop_index, log, &e), 0);
	while (c.n < 200)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.rc, 0);
	assert_int_equal(c.ok, 200);
	assert_int_equal(audit_size(log), 401);
	seen = xcalloc(401, 1);
	for (i = 0; i < 200; i++) {
		seen[t.index[i]]++;
		seen[async_index[i]]++;
	}
	seen[loop_index]++;
	for (i = 0; i < 401; i++)
		assert_int_equal(seen[i], 1);
	free(seen);
	audit_close(&log);
	event_base_free(base);
}

/*
 * kill -9 during a stream of appends: every append whose callback ran
 * (reported through a pipe) is in the log after a restart, and the log
 * verifies.
 */
struct kid {
	struct audit_log	*log;
	int			 fd;
	uint64_t		 n;
	uint64_t		 done;
};

static void	kid_more(struct kid *);

static void
kid_cb(void *arg, int rc, uint64_t index)
{
	struct kid	*k = arg;

	if (rc != 0 || write(k->fd, &index, sizeof(index)) !=
	    (ssize_t)sizeof(index))
		_exit(3);
	k->done++;
	kid_more(k);
}

static void
kid_more(struct kid *k)
{
	struct audit_entry	e;
	char			req[32];

	while (k->n - k->done < 256) {
		entry_init(&e, (int)(k->n % 100000), req, sizeof(req));
		if (audit_append(k->log, &e, kid_cb, k) != 0)
			_exit(2);
		k->n++;
	}
}

static void
kid_main(const char *dir, int fd)
{
	struct event_base	*base = event_base_new();
	struct kid		 k;

	memset(&k, 0, sizeof(k));
	k.fd = fd;
	k.log = open_log(dir, base);
	kid_more(&k);
	for (;;)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
test_common_audit__kill9_keeps_acknowledged(void **state)
{
	struct audit_log	*log;
	struct audit_verify	 v;
	uint64_t		 idx, max = 0, n = 0;
	pid_t			 pid;
	int			 p[2], status;

	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		kid_main(*state, p[1]);
		_exit(1);
	}
	assert_true(pid > 0);
	close(p[1]);
	while (read(p[0], &idx, sizeof(idx)) == (ssize_t)sizeof(idx)) {
		assert_int_equal(idx, n);	/* in order, none lost */
		max = idx;
		if (++n == 5000)
			assert_int_equal(kill(pid, SIGKILL), 0);
	}
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_true(n >= 5000);

	log = open_log(*state, NULL);
	assert_true(audit_size(log) > max);
	assert_int_equal(audit_verify_all(&v, log, NULL), 0);
	append_n(log, (int)audit_size(log), (int)audit_size(log) + 3);
	audit_close(&log);
}

/* ------------------------------------------------------------ tampering */

static void
append_refused(struct audit_log *log)
{
	struct audit_entry	e;
	char			req[32];

	entry_init(&e, 0, req, sizeof(req));
	assert_int_equal(audit_append_sync(NULL, log, &e), ERR_PERM);
	assert_int_equal(audit_append(log, &e, batch_cb, NULL), ERR_INVAL);
}

static void
test_common_audit__tampered_entry_named(void **state)
{
	struct audit_opts	 o;
	struct audit_log	*log = open_log(*state, NULL);
	struct audit_verify	 v;
	MDB_env			*env;
	MDB_txn			*txn;
	MDB_dbi			 dbi;
	MDB_val			 k, val;
	uint8_t			 kb[8];
	char			*copy, *p;
	json_t			*q;
	uint64_t		 next;

	append_n(log, 0, 100);
	assert_int_equal(audit_verify_all(&v, log, NULL), 0);
	audit_close(&log);

	/* change one byte of entry 41: its actor "carol" becomes "carom" */
	raw_open(&env, &txn, *state);
	assert_int_equal(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	be64(kb, 41);
	k.mv_data = kb;
	k.mv_size = 8;
	assert_int_equal(mdb_get(txn, dbi, &k, &val), 0);
	copy = xmemdup(val.mv_data, val.mv_size);
	assert_non_null(p = memmem(copy, val.mv_size, "\"carol\"", 7));
	p[5] = 'm';
	val.mv_data = copy;
	assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
	raw_close(env, txn);
	free(copy);

	/* it opens (the counts agree) and verification names entry 41 */
	log = open_log(*state, NULL);
	assert_int_equal(audit_verify_all(&v, log, NULL), ERR_PROTO);
	assert_int_equal(v.bad_index, 41);
	assert_non_null(strstr(err_msg(), "entry 41 "));
	/* the changed entry is still readable by queries */
	assert_int_equal(audit_query(&q, &next, log, NULL, 41, 1), 0);
	assert_int_equal(json_array_size(q), 1);
	json_decref(q);
	audit_close(&log);

	opts_init(&o, *state, NULL);
	o.flags = AUDIT_OPEN_VERIFY;
	assert_int_equal(audit_open(&log, &o), 0);
	assert_int_equal(audit_verify_all(&v, log, NULL), ERR_PROTO);
	assert_int_equal(v.bad_index, 41);
	append_refused(log);
	audit_close(&log);
}

static void
test_common_audit__removed_entries_detected(void **state)
{
	struct audit_opts	 o;
	struct audit_log	*log = open_log(*state, NULL), *vlog = NULL;
	struct audit_verify	 v;
	EVP_PKEY		*key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	MDB_env			*env;
	MDB_txn			*txn;
	json_t			*saved, *cp;

	append_n(log, 0, 50);
	saved = checkpoint(log, key);
	append_n(log, 50, 60);
	assert_int_equal(audit_checkpoint_check(log, saved, key), 0);
	audit_close(&log);

	/* remove entries 40.. and their nodes, keep the checkpoints */
	raw_open(&env, &txn, *state);
	raw_cut(txn, "entries", 40);
	raw_cut(txn, "nodes", merkle_node_count(40));
	raw_close(env, txn);
	log = open_log(*state, NULL);
	assert_int_equal(audit_size(log), 40);
	assert_int_equal(audit_verify_all(&v, log, key), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "removed"));
	audit_close(&log);

	/* the attacker removes the stored checkpoints as well */
	raw_open(&env, &txn, *state);
	raw_cut(txn, "checkpoints", 0);
	raw_close(env, txn);
	log = open_log(*state, NULL);
	assert_int_equal(audit_verify_all(&v, log, key), 0);
	assert_int_equal(audit_checkpoint_latest(&cp, log), ERR_NOTFOUND);
	/* but the checkpoint saved elsewhere still tells */
	assert_int_equal(audit_checkpoint_check(log, saved, key), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "removed"));
	audit_close(&log);

	/* entries removed without their nodes: no normal open */
	raw_open(&env, &txn, *state);
	raw_cut(txn, "entries", 30);
	raw_close(env, txn);
	opts_init(&o, *state, NULL);
	assert_int_equal(audit_open(&log, &o), ERR_PROTO);
	o.flags = AUDIT_OPEN_VERIFY;
	assert_int_equal(audit_open(&vlog, &o), 0);
	assert_int_equal(audit_verify_all(&v, vlog, NULL), ERR_PROTO);
	assert_int_equal(v.bad_index, 30);
	audit_close(&vlog);
	json_decref(saved);
	EVP_PKEY_free(key);
}

/* ------------------------------------------------------------ checkpoints */

static void
test_common_audit__checkpoints(void **state)
{
	struct audit_opts	 o;
	struct audit_log	*log = NULL;
	struct audit_checkpoint	 cp;
	struct audit_verify	 v;
	EVP_PKEY		*key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY		*other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char			*body, want[256], hex[MERKLE_HEX_LEN + 1];
	size_t			 blen;
	json_t			*j, *latest;

	opts_init(&o, *state, NULL);
	o.checkpoint_entries = 10;
	o.checkpoint_ms = 3600 * 1000;
	assert_int_equal(audit_open(&log, &o), 0);
	assert_int_equal(audit_checkpoint_due(log), 0);
	assert_int_equal(audit_checkpoint_latest(&j, log), ERR_NOTFOUND);
	append_n(log, 0, 3);
	/* no checkpoint yet: due at once */
	assert_int_equal(audit_checkpoint_due(log), 1);
	assert_int_equal(audit_checkpoint_prepare(&cp, log), 0);
	assert_int_equal(cp.size, 3);
	assert_int_equal(audit_checkpoint_body(&body, &blen, audit_origin(log),
	    &cp), 0);
	merkle_hex(hex, cp.root);
	snprintf(want, sizeof(want), "amanat-audit-checkpoint-v1\nnode1/test\n"
	    "3\n%s\n%lld\n", hex, (long long)cp.time_ms);
	assert_string_equal(body, want);
	assert_int_equal(blen, strlen(want));
	free(body);

	j = checkpoint(log, key);
	assert_int_equal(audit_checkpoint_verify(j, key), 0);
	assert_int_equal(audit_checkpoint_verify(j, other), ERR_PROTO);
	assert_string_equal(json_string_value(json_object_get(j, "origin")),
	    "node1/test");
	assert_string_equal(json_string_value(json_object_get(j, "alg")),
	    "ed25519");
	assert_int_equal(audit_checkpoint_due(log), 0);
	append_n(log, 3, 12);
	assert_int_equal(audit_checkpoint_due(log), 0);
	append_n(log, 12, 13);
	assert_int_equal(audit_checkpoint_due(log), 1);
	json_decref(checkpoint(log, key));
	assert_int_equal(audit_checkpoint_latest(&latest, log), 0);
	assert_int_equal(json_integer_value(json_object_get(latest, "size")),
	    13);
	json_decref(latest);

	/* one per size; a root that is not the log's is refused */
	assert_int_equal(audit_checkpoint_prepare(&cp, log), 0);
	assert_int_equal(audit_checkpoint_store(log, &cp, "s", 1, "ed25519",
	    "test"), ERR_EXISTS);
	cp.root[0] ^= 1;
	cp.size = 5;
	assert_int_equal(audit_checkpoint_store(log, &cp, "s", 1, "ed25519",
	    "test"), ERR_INVAL);
	assert_int_equal(audit_checkpoint_store(log, &cp, "s", 1, "bad alg",
	    "test"), ERR_INVAL);

	/* a forged size or a changed signature fails */
	json_object_set_new(j, "size", json_integer(2));
	assert_int_equal(audit_checkpoint_verify(j, key), ERR_PROTO);
	json_object_set_new(j, "size", json_integer(3));
	assert_int_equal(audit_checkpoint_verify(j, key), 0);
	json_object_set_new(j, "signature", json_string("AAAA"));
	assert_int_equal(audit_checkpoint_verify(j, key), ERR_PROTO);
	json_decref(j);

	assert_int_equal(audit_verify_all(&v, log, key), 0);
	assert_int_equal(v.checkpoints, 2);
	assert_int_equal(audit_verify_all(&v, log, other), ERR_PROTO);
	audit_close(&log);

	/* time-based: due after checkpoint_ms without a checkpoint */
	o.checkpoint_ms = 20;
	assert_int_equal(audit_open(&log, &o), 0);
	append_n(log, 13, 14);
	usleep(30 * 1000);
	assert_int_equal(audit_checkpoint_due(log), 1);
	audit_close(&log);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

/* ------------------------------------------------------------ queries */

/* Every index the query returns, paging with limit, in order. */
static int
collect(uint64_t *out, struct audit_log *log, const struct audit_filter *f,
    size_t limit)
{
	uint64_t	next = f->backward ? AUDIT_NO_MORE : 0;
	size_t		i;
	json_t		*a;
	int		n = 0, pages = 0;

	do {
		if (audit_query(&a, &next, log, f, next, limit) != 0)
			fail_msg("query: %s", err_msg());
		assert_true(json_array_size(a) <= limit);
		for (i = 0; i < json_array_size(a); i++) {
			out[n++] = (uint64_t)json_integer_value(json_object_get(
			    json_array_get(a, i), "index"));
			assert_true(json_is_object(json_object_get(
			    json_array_get(a, i), "entry")));
		}
		json_decref(a);
		assert_true(++pages < 100);
	} while (next != AUDIT_NO_MORE);
	return n;
}

static void
test_common_audit__query(void **state)
{
	struct audit_log	*log = open_log(*state, NULL);
	struct audit_filter	 f;
	uint64_t		 got[64], next;
	json_t			*a;
	int			 n, i;

	append_n(log, 0, 30);
	memset(&f, 0, sizeof(f));
	assert_int_equal(collect(got, log, &f, 7), 30);
	for (i = 0; i < 30; i++)
		assert_int_equal(got[i], (uint64_t)i);
	f.backward = 1;
	assert_int_equal(collect(got, log, &f, 4), 30);
	for (i = 0; i < 30; i++)
		assert_int_equal(got[i], (uint64_t)(29 - i));
	f.backward = 0;

	f.actor = "bob";
	n = collect(got, log, &f, 3);
	assert_int_equal(n, 10);
	for (i = 0; i < n; i++)
		assert_int_equal(got[i] % 3, 1);
	f.outcome = "denied";		/* i % 3 == 1 as well */
	assert_int_equal(collect(got, log, &f, 3), 10);
	f.outcome = "ok";
	assert_int_equal(collect(got, log, &f, 3), 0);
	f.actor = NULL;
	f.outcome = NULL;

	f.dept = "dept-a";
	f.action = "login";		/* i % 10 == 0 */
	n = collect(got, log, &f, 1);
	assert_int_equal(n, 3);
	assert_int_equal(got[0], 0);
	assert_int_equal(got[2], 20);
	f.dept = f.action = NULL;
	f.object = "obj3";
	assert_int_equal(collect(got, log, &f, 100), 7);
	f.object = NULL;

	f.since_ms = T0 + 5000;
	f.until_ms = T0 + 10000;
	n = collect(got, log, &f, 2);
	assert_int_equal(n, 5);
	assert_int_equal(got[0], 5);
	assert_int_equal(got[4], 9);

	assert_int_equal(audit_query(&a, &next, log, &f, 0, 0), ERR_INVAL);
	assert_int_equal(audit_query(&a, &next, log, &f, 0,
	    AUDIT_QUERY_LIMIT_MAX + 1), ERR_INVAL);
	assert_int_equal(audit_query(&a, &next, log, NULL, 30, 5), 0);
	assert_int_equal(json_array_size(a), 0);
	assert_int_equal(next, AUDIT_NO_MORE);
	json_decref(a);
	audit_close(&log);
}

static void
test_common_audit__bundles(void **state)
{
	struct audit_log	*log = open_log(*state, NULL);
	char			 zero[MERKLE_HEX_LEN + 1];
	json_t			*b, *e;
	uint64_t		 i;

	memset(zero, '0', MERKLE_HEX_LEN);
	zero[MERKLE_HEX_LEN] = '\0';
	append_n(log, 0, 21);
	for (i = 0; i < 21; i++) {
		assert_int_equal(audit_inclusion_json(&b, log, i, 21), 0);
		assert_int_equal(audit_inclusion_json_verify(b), 0);
		if (i == 7) {
			/* the entry is what counts, not the claimed hash */
			e = json_object_get(b, "entry");
			json_object_set_new(e, "actor", json_string("mallory"));
			assert_int_equal(audit_inclusion_json_verify(b),
			    ERR_PROTO);
			json_object_del(b, "leaf_hash");
			assert_int_equal(audit_inclusion_json_verify(b),
			    ERR_PROTO);
		}
		json_decref(b);
		assert_int_equal(audit_consistency_json(&b, log, i, 21), 0);
		assert_int_equal(audit_consistency_json_verify(b), 0);
		/* (0, n) holds with an empty proof whatever root2 is */
		json_object_set_new(b, "root2", json_string(zero));
		assert_int_equal(audit_consistency_json_verify(b) != 0,
		    i != 0);
		json_decref(b);
	}
	assert_int_equal(audit_inclusion_json(&b, log, 21, 21), ERR_INVAL);
	audit_close(&log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_audit__canonical_encoding),
		cmocka_unit_test(test_common_audit__strings_repaired_and_cut),
		cmocka_unit_test(test_common_audit__details_limits),
		cmocka_unit_test(test_common_audit__hmac),
#define T(name)	cmocka_unit_test_setup_teardown(name, setup_dir, teardown_dir)
		T(test_common_audit__roots_and_proofs),
		T(test_common_audit__reopen_same_root),
		T(test_common_audit__batch_many),
		T(test_common_audit__commit_failure),
		T(test_common_audit__sync_with_writer),
		T(test_common_audit__kill9_keeps_acknowledged),
		T(test_common_audit__tampered_entry_named),
		T(test_common_audit__removed_entries_detected),
		T(test_common_audit__checkpoints),
		T(test_common_audit__query),
		T(test_common_audit__bundles),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
