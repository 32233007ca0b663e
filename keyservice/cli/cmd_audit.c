/*
 * cmd_audit.c -- the CLI's audit commands, for security officers.
 *
 *	audit query [filters] [--service S ...]	entries of every daemon,
 *			merged by time (a table, or --json)
 *	audit verify [--service S ...] [--state DIR] [--quick]
 *			each daemon's latest signed checkpoint: its
 *			certificate (node CA, CN sign:<service>), its
 *			signature, its consistency with the checkpoint the
 *			last run verified, and every entry (--quick: every
 *			entry since the last run) recomputed into its root;
 *			the first changed entry is named.  The verified
 *			checkpoint and tree frontier are saved in
 *			DIR/<node>/<service>.json (DIR default
 *			~/.amanat/audit-state).
 *	audit export --service S --from N --to M --out FILE
 *			the entries [N, M) with inclusion proofs against one
 *			signed checkpoint, fetched in pieces of
 *			CLI_AUDIT_PAGE, written 0600
 *	audit verify-export FILE --ca CAFILE
 *			the bundle checked offline: no config, no network
 *
 * The daemons' audit API is in common/auditsvc.h: keyservice at
 * [keyservice] listen, mailsrv at [mailsrv] api_listen, docstore at
 * [docstore] listen, all mutual TLS; only a security officer's client
 * certificate (--cert/--key) is allowed, and every call is audited.
 *
 * Runs in: the officer's shell.
 * Failure policy: query and verify go through every daemon and report
 * each one (a daemon that is down is skipped with a message on stderr);
 * the exit status is 1 if any failed, 2 for configuration or
 * certificate problems, 64 for bad arguments.  Anything that does not
 * verify is reported with what and where (the first bad entry index)
 * and is never saved as state.
 * SECURITY: nothing a daemon says is trusted: the checkpoint must chain
 * to the node CA as of its signing time and be signed by the service's
 * own key, roots are recomputed here from the entries as served (their
 * canonical bytes, common/audit.h), proofs are checked against our
 * roots, never against roots the server supplies.  Server text is
 * printed with control characters replaced.  The verifier's state file
 * is written 0600 in a 0700 directory; its frontier must reproduce its
 * checkpoint's root or it is refused.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/audit.h"
#include "common/auditsvc.h"
#include "common/err.h"
#include "common/merkle.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/cli/cli.h"

#define CLI_AUDIT_STATE_DIR	".amanat/audit-state"
#define CLI_AUDIT_STATE_MAX	(64 * 1024)
#define CLI_AUDIT_FILTER_MAX	8192	/* the encoded filter part */
#define CLI_AUDIT_NO_INDEX	UINT64_MAX

typedef uint8_t	cli_hash[MERKLE_HASH_LEN];

static const char *const cli_audit_services[] = {
	"keyservice", "mailsrv", "docstore",
};

/* ------------------------------------------------------------ times */

/* Exactly n digits at s into *out. */
static int
cli__digits(const char *s, int n, int *out)
{
	int	i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "HH:MM[:SS]Z" after the date. */
static int
cli__time_of_day(struct tm *tm, const char *s)
{
	if (cli__digits(s, 2, &tm->tm_hour) < 0 || s[2] != ':' ||
	    cli__digits(s + 3, 2, &tm->tm_min) < 0)
		return -1;
	s += 5;
	if (*s == ':') {
		if (cli__digits(s + 1, 2, &tm->tm_sec) < 0)
			return -1;
		s += 3;
	}
	return strcmp(s, "Z") == 0 ? 0 : -1;
}

int
cli_audit_time(int64_t *out, const char *s)
{
	struct tm	tm, back;
	long long	v;
	time_t		t;

	if (s != NULL && *s != '\0' && strspn(s, "0123456789") == strlen(s)) {
		if (parse_ll(&v, s, 0, INT64_MAX / 1000) < 0)
			goto bad;
		*out = (int64_t)v * 1000;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if (s == NULL || cli__digits(s, 4, &tm.tm_year) < 0 || s[4] != '-' ||
	    cli__digits(s + 5, 2, &tm.tm_mon) < 0 || s[7] != '-' ||
	    cli__digits(s + 8, 2, &tm.tm_mday) < 0)
		goto bad;
	if (s[10] != '\0' && ((s[10] != 'T' && s[10] != ' ') ||
	    cli__time_of_day(&tm, s + 11) < 0))
		goto bad;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
	    tm.tm_mday < 1 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 59)
		goto bad;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	back = tm;
	/* timegm() normalises Feb 30 into March: refuse what moved */
	if ((t = timegm(&tm)) == (time_t)-1 || tm.tm_mday != back.tm_mday ||
	    tm.tm_mon != back.tm_mon)
		goto bad;
	*out = (int64_t)t * 1000;
	return 0;
bad:
	err_set(ERR_INVAL, "bad TIME '%s' (unix seconds or "
	    "2026-11-30T10:00:00Z, UTC)", s != NULL ? s : "");
	return ERR_INVAL;
}

/* ------------------------------------------------------------ merging */

struct cli_merged {
	const json_t	*entry;
	size_t		 service;
	int64_t		 time;
	uint64_t	 index;
};

static int
cli__merged_cmp(const void *a, const void *b)
{
	const struct cli_merged	*x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->service != y->service)
		return x->service < y->service ? -1 : 1;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return 0;
}

json_t *
cli_audit_merge(const char *const *services, json_t *const *lists, size_t n,
    size_t limit)
{
	struct cli_merged	*m = NULL;
	const json_t		*x;
	json_t			*out = json_array();
	size_t			 total = 0, k = 0, i, j, first;

	for (i = 0; i < n; i++)
		total += json_array_size(lists[i]);
	if (total == 0)
		return out;
	m = xcalloc(total, sizeof(*m));
	for (i = 0; i < n; i++)
		json_array_foreach(lists[i], j, x) {
			m[k].entry = json_object_get(x, "entry");
			m[k].service = i;
			m[k].time = json_integer_value(json_object_get(
			    m[k].entry, "time"));
			m[k].index = (uint64_t)json_integer_value(
			    json_object_get(x, "index"));
			k++;
		}
	qsort(m, k, sizeof(*m), cli__merged_cmp);
	first = limit > 0 && k > limit ? k - limit : 0;
	for (i = first; i < k; i++)
		json_array_append_new(out, json_pack("{s:s,s:I,s:O}",
		    "service", services[m[i].service], "index",
		    (json_int_t)m[i].index, "entry", m[i].entry));
	free(m);
	return out;
}

/* ------------------------------------------------------------ checkpoints */

int
cli_audit_store(X509_STORE **out, const char *cafile)
{
	X509_STORE	*st;

	*out = NULL;
	if ((st = X509_STORE_new()) == NULL)
		return tls_error("X509_STORE_new");
	if (X509_STORE_load_file(st, cafile) != 1) {
		X509_STORE_free(st);
		ERR_clear_error();
		err_set(ERR_IO, "%s: cannot load the CA certificate", cafile);
		return ERR_IO;
	}
	*out = st;
	return 0;
}

static int
cli__bad(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
cli__bad(int rc, const char *fmt, ...)
{
	char	msg[ERR_MSG_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_set(rc, "%s", msg);
	return rc;
}

/* The certificate chains to store as of time t (seconds). */
static int
cli__chain(X509 *x, X509_STORE *store, time_t t)
{
	X509_STORE_CTX	*ctx;
	int		 ok, e;

	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, x, NULL) != 1) {
		X509_STORE_CTX_free(ctx);
		return tls_error("X509_STORE_CTX");
	}
	X509_STORE_CTX_set_time(ctx, 0, t);
	ok = X509_verify_cert(ctx) == 1;
	e = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return cli__bad(ERR_PROTO, "the signing certificate does not "
		    "verify against the CA: %s",
		    X509_verify_cert_error_string(e));
	return 0;
}

int
cli_audit_checkpoint_check(const json_t *cp, X509_STORE *store, char *cn,
    size_t cnlen)
{
	const char	*pem, *origin, *svc;
	char		 want[AUDIT_NAME_MAX + 8];
	BIO		*bio = NULL;
	X509		*x = NULL;
	EVP_PKEY	*pub;
	int		 rc;

	cn[0] = '\0';
	pem = json_string_value(json_object_get(cp, "certificate"));
	origin = json_string_value(json_object_get(cp, "origin"));
	if (origin == NULL || (svc = strrchr(origin, '/')) == NULL ||
	    !json_is_integer(json_object_get(cp, "time")))
		return cli__bad(ERR_INVAL, "malformed checkpoint");
	if (pem == NULL)
		return cli__bad(ERR_PROTO, "the checkpoint carries no "
		    "certificate");
	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		ERR_clear_error();
		rc = cli__bad(ERR_PROTO, "the checkpoint's certificate is not "
		    "PEM");
		goto done;
	}
	if ((rc = cli__chain(x, store, (time_t)(json_integer_value(
	    json_object_get(cp, "time")) / 1000))) < 0)
		goto done;
	snprintf(want, sizeof(want), "sign:%s", svc + 1);
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cn, (int)cnlen) < 0 || strcmp(cn, want) != 0) {
		rc = cli__bad(ERR_PROTO, "the checkpoint is signed by '%s', "
		    "not %s", cn, want);
		goto done;
	}
	if ((pub = X509_get0_pubkey(x)) == NULL ||
	    !EVP_PKEY_is_a(pub, "ED25519")) {
		rc = cli__bad(ERR_PROTO, "the signing key is not Ed25519");
		goto done;
	}
	if ((rc = audit_checkpoint_verify(cp, pub)) < 0)
		rc = cli__bad(ERR_PROTO, "the checkpoint's signature does "
		    "not verify with %s's certificate", cn);
done:
	X509_free(x);
	BIO_free(bio);
	return rc;
}

/* ------------------------------------------------------------ bundles */

/* A proof array of hex hashes. */
static int
cli__proof(cli_hash *proof, size_t *n, const json_t *a)
{
	size_t	i;

	if (!json_is_array(a) || json_array_size(a) > MERKLE_PROOF_MAX)
		return ERR_INVAL;
	for (i = 0; i < json_array_size(a); i++)
		if (merkle_unhex(proof[i], json_string_value(
		    json_array_get(a, i))) < 0)
			return ERR_INVAL;
	*n = i;
	return 0;
}

/* The leaf hash of an entry as served: its canonical bytes. */
static int
cli__leaf(uint8_t *leaf, const json_t *entry)
{
	char	*bytes = NULL;
	size_t	 len;
	int	 rc;

	if (!json_is_object(entry))
		return ERR_INVAL;
	if ((rc = audit_canon_json(&bytes, &len, entry, AUDIT_ENTRY_MAX)) ==
	    0)
		rc = merkle_leaf_hash(leaf, bytes, len);
	free(bytes);
	return rc;
}

/* One bundle entry, expected at index want. */
static int
cli__bundle_entry(const struct audit_checkpoint *cp, const json_t *x,
    uint64_t want)
{
	cli_hash	 proof[MERKLE_PROOF_MAX];
	uint8_t		 leaf[MERKLE_HASH_LEN];
	json_t		*idx = json_object_get(x, "index");
	size_t		 n;

	if (!json_is_integer(idx) || (uint64_t)json_integer_value(idx) !=
	    want)
		return cli__bad(ERR_PROTO, "entry %llu is missing from the "
		    "bundle", (unsigned long long)want);
	if (want >= cp->size)
		return cli__bad(ERR_PROTO, "entry %llu is beyond the "
		    "checkpoint (size %llu)", (unsigned long long)want,
		    (unsigned long long)cp->size);
	if (cli__leaf(leaf, json_object_get(x, "entry")) < 0 ||
	    cli__proof(proof, &n, json_object_get(x, "proof")) < 0)
		return cli__bad(ERR_INVAL, "entry %llu is malformed",
		    (unsigned long long)want);
	if (audit_verify_inclusion(leaf, want, cp->size,
	    (const cli_hash *)proof, n, cp->root) < 0)
		return cli__bad(ERR_PROTO, "entry %llu does not match the "
		    "signed checkpoint: it was changed (or its proof was)",
		    (unsigned long long)want);
	return 0;
}

int
cli_audit_bundle_verify(struct cli_audit_summary *sum, const json_t *b,
    X509_STORE *store)
{
	struct audit_checkpoint	 cp;
	const json_t		*cpj, *arr, *x;
	const char		*fmt, *origin;
	size_t			 i;
	int			 rc;

	memset(sum, 0, sizeof(*sum));
	sum->bad_index = CLI_AUDIT_NO_INDEX;
	fmt = json_string_value(json_object_get(b, "format"));
	if (fmt == NULL || strcmp(fmt, AUDITSVC_EXPORT_FORMAT) != 0)
		return cli__bad(ERR_INVAL, "not an amanat audit export (format "
		    "%s)", AUDITSVC_EXPORT_FORMAT);
	cpj = json_object_get(b, "checkpoint");
	if ((rc = cli_audit_checkpoint_check(cpj, store, sum->signer,
	    sizeof(sum->signer))) < 0 ||
	    (rc = audit_checkpoint_from_json(&cp, sum->origin,
	    sizeof(sum->origin), cpj)) < 0)
		return rc;
	sum->cp_size = cp.size;
	sum->cp_time = cp.time_ms;
	origin = json_string_value(json_object_get(b, "origin"));
	if (origin == NULL || strcmp(origin, sum->origin) != 0)
		return cli__bad(ERR_PROTO, "the bundle's origin is not its "
		    "checkpoint's (%s)", sum->origin);
	arr = json_object_get(b, "entries");
	if (json_array_size(arr) == 0)
		return cli__bad(ERR_INVAL, "the bundle holds no entries");
	x = json_object_get(b, "from");
	sum->from = json_is_integer(x) ? (uint64_t)json_integer_value(x) :
	    (uint64_t)json_integer_value(json_object_get(json_array_get(arr,
	    0), "index"));
	json_array_foreach(arr, i, x) {
		if ((rc = cli__bundle_entry(&cp, x, sum->from + i)) < 0) {
			sum->bad_index = sum->from + i;
			return rc;
		}
		sum->count++;
	}
	x = json_object_get(b, "to");
	if (json_is_integer(x) && (uint64_t)json_integer_value(x) !=
	    sum->from + sum->count) {
		sum->bad_index = sum->from + sum->count;
		return cli__bad(ERR_PROTO, "entries %llu..%lld are missing "
		    "from the bundle", (unsigned long long)sum->bad_index,
		    (long long)json_integer_value(x) - 1);
	}
	return 0;
}

/* ------------------------------------------------------------ verify */

/* One daemon's verification. */
struct cli_av {
	const struct cli_audit_src	*src;
	struct cli_audit_check		*out;
	const char			*origin;
	X509_STORE			*store;
	struct audit_checkpoint		 cp;	/* the new, signed one */
	json_t				*cpj;
	/* the saved checkpoint's tree; then where entries are read from */
	struct merkle_frontier		 fr;
	uint64_t			 saved;	/* its size, 0: none */
	uint8_t				 saved_root[MERKLE_HASH_LEN];
	cli_hash			*leaves; /* saved .. cp.size - 1 */
};

/*
 * GET target: 0 with a 2xx JSON answer, ERR_NOTFOUND for 404, ERR_IO
 * when there is no (good) answer, with err_msg().
 */
static int
cli__av_get(json_t **out, struct cli_av *av, const char *target)
{
	const char	*m;
	int		 status = 0, rc;

	*out = NULL;
	if ((rc = av->src->get(out, &status, av->src->arg, target)) < 0)
		return cli__bad(ERR_IO, "%s", err_msg());
	if (status >= 200 && status <= 299 && json_is_object(*out))
		return 0;
	m = json_string_value(json_object_get(*out, "message"));
	rc = cli__bad(status == 404 ? ERR_NOTFOUND : ERR_IO, "%s (HTTP %d)",
	    m != NULL ? m : "no JSON answer", status);
	json_decref(*out);
	*out = NULL;
	return rc;
}

/* The frontier of the saved state; its root must be its checkpoint's. */
static int
cli__state_load(struct cli_av *av, const json_t *state)
{
	struct audit_checkpoint	 scp;
	char			 origin[160];
	uint8_t			 root[MERKLE_HASH_LEN];
	const json_t		*fa = json_object_get(state, "frontier");
	size_t			 k = 0;
	unsigned		 l;

	if (audit_checkpoint_from_json(&scp, origin, sizeof(origin),
	    json_object_get(state, "checkpoint")) < 0 || !json_is_array(fa))
		return cli__bad(ERR_INVAL, "the saved state is damaged");
	if (strcmp(origin, av->origin) != 0)
		return cli__bad(ERR_INVAL, "the saved state is of %s, not %s",
		    origin, av->origin);
	merkle_frontier_init(&av->fr);
	for (l = 0; l < MERKLE_LEVELS; l++) {
		if (!(scp.size >> l & 1))
			continue;
		if (merkle_unhex(av->fr.h[l], json_string_value(
		    json_array_get(fa, k++))) < 0)
			return cli__bad(ERR_INVAL, "the saved state is "
			    "damaged");
	}
	av->fr.size = scp.size;
	if (k != json_array_size(fa) || merkle_frontier_root(root,
	    &av->fr) < 0 || memcmp(root, scp.root, sizeof(root)) != 0)
		return cli__bad(ERR_INVAL, "the saved state is damaged (its "
		    "frontier does not give its root)");
	av->saved = scp.size;
	memcpy(av->saved_root, scp.root, sizeof(root));
	av->out->prev_size = scp.size;
	return 0;
}

/* The latest checkpoint: fetched, its certificate and signature checked. */
static int
cli__av_checkpoint(struct cli_av *av, const json_t *state)
{
	char	origin[160];
	int	rc;

	if ((rc = cli__av_get(&av->cpj, av, "/v1/audit/checkpoint")) ==
	    ERR_NOTFOUND) {
		av->out->no_checkpoint = 1;
		if (state == NULL)
			return 0;
		return cli__bad(ERR_PROTO, "no signed checkpoint, but one of "
		    "size %llu was verified before: the log was replaced",
		    (unsigned long long)av->saved);
	}
	if (rc < 0)
		return rc;
	if ((rc = cli_audit_checkpoint_check(av->cpj, av->store,
	    av->out->signer, sizeof(av->out->signer))) < 0)
		return rc;
	if ((rc = audit_checkpoint_from_json(&av->cp, origin, sizeof(origin),
	    av->cpj)) < 0)
		return rc;
	if (strcmp(origin, av->origin) != 0)
		return cli__bad(ERR_PROTO, "the checkpoint is of %s, not %s",
		    origin, av->origin);
	av->out->cp_size = av->cp.size;
	return 0;
}

/* Is the tree (size1, root1) a prefix of the signed one?  1, 0, < 0. */
static int
cli__av_prefix(struct cli_av *av, uint64_t size1, const uint8_t *root1)
{
	cli_hash	 proof[MERKLE_PROOF_MAX];
	char		 target[128];
	json_t		*v;
	size_t		 n;
	int		 rc;

	snprintf(target, sizeof(target), "/v1/audit/proof/consistency?"
	    "from=%llu&to=%llu", (unsigned long long)size1,
	    (unsigned long long)av->cp.size);
	if ((rc = cli__av_get(&v, av, target)) < 0)
		return rc;
	rc = cli__proof(proof, &n, json_object_get(v, "proof"));
	json_decref(v);
	if (rc < 0)
		return cli__bad(ERR_IO, "malformed consistency proof");
	return audit_verify_consistency(size1, av->cp.size, root1,
	    av->cp.root, (const cli_hash *)proof, n) == 0;
}

/* The saved checkpoint against the new one. */
static int
cli__av_consistent(struct cli_av *av)
{
	int	rc;

	if (av->saved == 0)
		return 0;
	if (av->cp.size < av->saved)
		return cli__bad(ERR_PROTO, "the signed log shrank from %llu "
		    "to %llu entries: entries were removed",
		    (unsigned long long)av->saved,
		    (unsigned long long)av->cp.size);
	if (av->cp.size == av->saved) {
		if (memcmp(av->cp.root, av->saved_root, MERKLE_HASH_LEN) == 0)
			return 0;
		return cli__bad(ERR_PROTO, "the checkpoint of size %llu "
		    "differs from the one verified before: entries were "
		    "changed", (unsigned long long)av->saved);
	}
	if ((rc = cli__av_prefix(av, av->saved, av->saved_root)) < 0)
		return rc;
	if (rc == 0)
		return cli__bad(ERR_PROTO, "the %llu entries verified before "
		    "are not a prefix of the signed log of %llu: entries "
		    "before %llu were removed or changed",
		    (unsigned long long)av->saved,
		    (unsigned long long)av->cp.size,
		    (unsigned long long)av->saved);
	return 0;
}

/* One page of entries from *k on, hashed into fr and av->leaves. */
static int
cli__av_page(struct cli_av *av, struct merkle_frontier *fr, uint64_t *k)
{
	char		 target[128];
	uint64_t	 lim = av->cp.size - *k;
	const json_t	*x, *arr;
	json_t		*v;
	size_t		 i;
	int		 rc = 0;

	if (lim > CLI_AUDIT_PAGE)
		lim = CLI_AUDIT_PAGE;
	snprintf(target, sizeof(target), "/v1/audit/entries?start=%llu&"
	    "limit=%llu&order=asc", (unsigned long long)*k,
	    (unsigned long long)(lim > 0 ? lim : 1));
	if ((rc = cli__av_get(&v, av, target)) < 0)
		return rc;
	av->out->size = (uint64_t)json_integer_value(json_object_get(v,
	    "size"));
	arr = json_object_get(v, "entries");
	if (lim > 0 && json_array_size(arr) == 0) {
		av->out->bad_index = *k;
		rc = cli__bad(ERR_PROTO, "entry %llu is missing",
		    (unsigned long long)*k);
	}
	json_array_foreach(arr, i, x) {
		if (rc < 0 || *k == av->cp.size || lim == 0)
			break;
		if ((uint64_t)json_integer_value(json_object_get(x,
		    "index")) != *k) {
			av->out->bad_index = *k;
			rc = cli__bad(ERR_PROTO, "entry %llu is missing",
			    (unsigned long long)*k);
		} else if ((rc = cli__leaf(av->leaves[*k - av->saved],
		    json_object_get(x, "entry"))) < 0) {
			av->out->bad_index = *k;
			rc = cli__bad(ERR_PROTO, "entry %llu is malformed",
			    (unsigned long long)*k);
		}
		else if ((rc = merkle_frontier_append(fr,
		    av->leaves[*k - av->saved], NULL, NULL)) == 0)
			(*k)++;
	}
	json_decref(v);
	return rc;
}

/* The root of the first m entries as served. */
static int
cli__av_root(struct cli_av *av, uint64_t m, uint8_t *root)
{
	struct merkle_frontier	*fr = xmalloc(sizeof(*fr));
	uint64_t		 i;
	int			 rc = 0;

	*fr = av->fr;
	for (i = av->saved; i < m && rc == 0; i++)
		rc = merkle_frontier_append(fr, av->leaves[i - av->saved],
		    NULL, NULL);
	if (rc == 0)
		rc = merkle_frontier_root(root, fr);
	free(fr);
	return rc;
}

/*
 * The served entries do not give the signed root: find the first one
 * that differs.  "The first m served entries are a prefix of the signed
 * tree" holds for m = saved and fails for m = size: bisect.
 */
static int
cli__av_locate(struct cli_av *av)
{
	uint8_t		root[MERKLE_HASH_LEN];
	uint64_t	lo = av->saved, hi = av->cp.size, mid;
	int		rc;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if ((rc = cli__av_root(av, mid, root)) < 0 ||
		    (rc = cli__av_prefix(av, mid, root)) < 0)
			return cli__bad(ERR_PROTO, "entries %llu..%llu do not "
			    "give the signed root (could not narrow down: "
			    "%s)", (unsigned long long)lo,
			    (unsigned long long)(av->cp.size - 1), err_msg());
		if (rc == 1)
			lo = mid;
		else
			hi = mid;
	}
	av->out->bad_index = lo;
	return cli__bad(ERR_PROTO, "entry %llu does not match the signed "
	    "tree: it was changed", (unsigned long long)lo);
}

/* Every entry since the saved checkpoint, into the signed root. */
static int
cli__av_entries(struct cli_av *av, struct merkle_frontier *fr)
{
	uint8_t		root[MERKLE_HASH_LEN];
	uint64_t	k = av->saved;
	int		rc;

	*fr = av->fr;
	if (av->cp.size > av->saved)
		av->leaves = xreallocarray(NULL, av->cp.size - av->saved,
		    sizeof(*av->leaves));
	do {
		if ((rc = cli__av_page(av, fr, &k)) < 0)
			return rc;
	} while (k < av->cp.size);
	if ((rc = merkle_frontier_root(root, fr)) < 0)
		return rc;
	if (memcmp(root, av->cp.root, sizeof(root)) == 0)
		return 0;
	return cli__av_locate(av);
}

/* The state to save: the checkpoint (no certificate) and frontier. */
static json_t *
cli__state_new(struct cli_av *av, const struct merkle_frontier *fr)
{
	char		 hex[MERKLE_HEX_LEN + 1];
	json_t		*cp = json_deep_copy(av->cpj), *fa = json_array();
	unsigned	 l;

	json_object_del(cp, "certificate");
	for (l = 0; l < MERKLE_LEVELS; l++)
		if (fr->size >> l & 1) {
			merkle_hex(hex, fr->h[l]);
			json_array_append_new(fa, json_string(hex));
		}
	return json_pack("{s:i,s:o,s:o}", "version", 1, "checkpoint", cp,
	    "frontier", fa);
}

int
cli_audit_verify_log(struct cli_audit_check *out, json_t **state_out,
    const struct cli_audit_src *src, const char *origin,
    const json_t *state, X509_STORE *store, int flags)
{
	struct cli_av		 av;
	struct merkle_frontier	*fr;
	int			 rc;

	memset(out, 0, sizeof(*out));
	out->bad_index = CLI_AUDIT_NO_INDEX;
	*state_out = NULL;
	memset(&av, 0, sizeof(av));
	av.src = src;
	av.out = out;
	av.origin = origin;
	av.store = store;
	fr = xmalloc(sizeof(*fr));
	merkle_frontier_init(&av.fr);
	if ((state != NULL && (rc = cli__state_load(&av, state)) < 0) ||
	    (rc = cli__av_checkpoint(&av, state)) < 0 ||
	    out->no_checkpoint ||
	    (rc = cli__av_consistent(&av)) < 0)
		goto done;
	if (!(flags & CLI_AUDIT_QUICK)) {
		/* recompute from entry 0: old entries may have been edited */
		merkle_frontier_init(&av.fr);
		av.saved = 0;
	}
	if ((rc = cli__av_entries(&av, fr)) < 0)
		goto done;
	*state_out = cli__state_new(&av, fr);
done:
	json_decref(av.cpj);
	free(av.leaves);
	free(fr);
	return rc;
}

/* ------------------------------------------------------------ commands */

/* One line on fp, control characters replaced. */
static void	cli__say(FILE *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
cli__say(FILE *fp, const char *fmt, ...)
{
	char	line[2048], *p;
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(fp, "%s\n", line);
}

/* struct cli_audit_src over the CLI's HTTPS client. */
static int
cli__http_get(json_t **out, int *status, void *arg, const char *target)
{
	struct cli_resp	r;
	int		rc;

	*out = NULL;
	if ((rc = cli_request(&r, arg, "GET", target, NULL)) < 0)
		return rc;
	*status = r.status;
	*out = r.json;
	r.json = NULL;
	cli_resp_clear(&r);
	return 0;
}

/*
 * GET target from service: 0 with a 200 JSON object, else the error is
 * reported ("amanat: <service>: ...<tail>") and CLI_EXIT_API returned.
 */
static int
cli__fetch(json_t **out, struct cli_client *cl, const char *svc,
    const char *target, const char *tail)
{
	const char	*m;
	int		 status = 0;

	if (cli__http_get(out, &status, cl, target) < 0) {
		cli__say(stderr, "amanat: %s: %s%s", svc, err_msg(), tail);
		return CLI_EXIT_API;
	}
	if (status == 200 && json_is_object(*out))
		return 0;
	m = json_string_value(json_object_get(*out, "message"));
	cli__say(stderr, "amanat: %s: %s (HTTP %d)%s", svc, m != NULL ? m :
	    "no JSON answer", status, tail);
	json_decref(*out);
	*out = NULL;
	return CLI_EXIT_API;
}

/* The audit API address of a daemon, or NULL if not configured. */
static const char *
cli__addr(const struct amanat_conf *cf, const char *svc)
{
	const char	*a = NULL;

	if (strcmp(svc, "keyservice") == 0)
		a = cf->keyservice.http.listen;
	else if (strcmp(svc, "mailsrv") == 0)
		a = cf->mailsrv.api_listen;
	else if (strcmp(svc, "docstore") == 0)
		a = cf->docstore.http.listen;
	return a != NULL && *a != '\0' ? a : NULL;
}

/* The daemons named by --service, all by default; usage error < 0. */
static int
cli__services(const char **out, size_t *n, const struct cli_cmd *cmd)
{
	size_t	i, k;

	*n = 0;
	if (cmd->nservices == 0) {
		for (i = 0; i < nitems(cli_audit_services); i++)
			out[(*n)++] = cli_audit_services[i];
		return 0;
	}
	for (i = 0; i < cmd->nservices; i++) {
		for (k = 0; k < nitems(cli_audit_services); k++)
			if (strcmp(cmd->services[i], cli_audit_services[k]) ==
			    0)
				break;
		if (k == nitems(cli_audit_services)) {
			cli__say(stderr, "amanat: unknown service '%s' "
			    "(keyservice, mailsrv or docstore)",
			    cmd->services[i]);
			return -1;
		}
		for (k = 0; k < *n; k++)
			if (strcmp(out[k], cmd->services[i]) == 0)
				break;
		if (k == *n)
			out[(*n)++] = cmd->services[i];
	}
	return 0;
}

/* The officer's mutual-TLS client (its address is set per daemon). */
static int
cli__client(struct cli_client *cl, const struct cli_cmd *cmd,
    const struct amanat_conf *cf)
{
	if (cli_client_init(cl, NULL, cf->tls.ca, cmd->cert ? cmd->cert :
	    cf->cli.cert, cmd->key ? cmd->key : cf->cli.key) < 0) {
		cli__say(stderr, "amanat: %s", err_msg());
		return CLI_EXIT_CONFIG;
	}
	return 0;
}

/* ------------------------------------------------------------ query */

struct cli_q {
	char	filter[CLI_AUDIT_FILTER_MAX];	/* "&name=value..." */
	size_t	limit;
};

static int
cli__q_add(struct cli_q *q, const char *name, const char *value)
{
	char	enc[CLI_AUDIT_FILTER_MAX];
	size_t	n = strlen(q->filter);

	if (value == NULL)
		return 0;
	if (cli_pct_encode(enc, sizeof(enc), value) < 0 ||
	    (size_t)snprintf(q->filter + n, sizeof(q->filter) - n, "&%s=%s",
	    name, enc) >= sizeof(q->filter) - n) {
		cli__say(stderr, "amanat: audit query: --%s is too long",
		    name);
		return -1;
	}
	return 0;
}

/* The filter of the command line; -1 after a usage message. */
static int
cli__q_build(struct cli_q *q, const struct cli_cmd *cmd)
{
	char		 num[32];
	const char	*t[2] = { cmd->since, cmd->until };
	const char	*names[2] = { "since", "until" };
	long long	 lim = CLI_AUDIT_LIMIT_DEF;
	int64_t		 ms;
	size_t		 i;
	int		 o;

	memset(q, 0, sizeof(*q));
	if (cmd->limit != NULL && parse_ll(&lim, cmd->limit, 1,
	    CLI_AUDIT_LIMIT_MAX) < 0) {
		cli__say(stderr, "amanat: audit query: --limit: %s",
		    err_msg());
		return -1;
	}
	q->limit = (size_t)lim;
	if (cmd->outcome != NULL && audit_outcome_parse(&o,
	    cmd->outcome) < 0) {
		cli__say(stderr, "amanat: audit query: --outcome is ok, "
		    "denied or error");
		return -1;
	}
	for (i = 0; i < 2; i++) {
		if (t[i] == NULL)
			continue;
		if (cli_audit_time(&ms, t[i]) < 0) {
			cli__say(stderr, "amanat: audit query: --%s: %s",
			    names[i], err_msg());
			return -1;
		}
		snprintf(num, sizeof(num), "%lld", (long long)ms);
		if (cli__q_add(q, names[i], num) < 0)
			return -1;
	}
	if (cli__q_add(q, "actor", cmd->actor) < 0 ||
	    cli__q_add(q, "dept", cmd->dept) < 0 ||
	    cli__q_add(q, "object", cmd->object) < 0 ||
	    cli__q_add(q, "action", cmd->action) < 0 ||
	    cli__q_add(q, "outcome", cmd->outcome) < 0)
		return -1;
	return 0;
}

/* Up to q->limit matching entries of one daemon, newest first. */
static int
cli__q_one(json_t **out, struct cli_client *cl, const struct cli_q *q,
    const char *svc)
{
	char		 target[CLI_AUDIT_FILTER_MAX + 128], start[40] = "";
	json_t		*all = json_array(), *v, *next;
	size_t		 page;
	int		 rc, more;

	*out = NULL;
	while (json_array_size(all) < q->limit) {
		page = q->limit - json_array_size(all);
		if (page > CLI_AUDIT_PAGE)
			page = CLI_AUDIT_PAGE;
		snprintf(target, sizeof(target), "/v1/audit/entries?order=desc"
		    "&limit=%zu%s%s", page, start, q->filter);
		if ((rc = cli__fetch(&v, cl, svc, target, "; skipped")) !=
		    0) {
			json_decref(all);
			return rc;
		}
		json_array_extend(all, json_object_get(v, "entries"));
		next = json_object_get(v, "next");
		more = json_is_integer(next);
		if (more)
			snprintf(start, sizeof(start), "&start=%lld",
			    (long long)json_integer_value(next));
		json_decref(v);
		if (!more)
			break;
	}
	*out = all;
	return 0;
}

static void
cli__q_print(const struct cli_cmd *cmd, const json_t *merged)
{
	static const char *const hdr[] = { "TIME (UTC)", "SERVICE", "ACTOR",
	    "SRC", "ACTION", "OBJECT", "OUTCOME" };
	static const char *const keys[] = { "actor", "src", "action",
	    "object", "outcome" };
	struct cli_table	*t;
	const json_t		*x, *e;
	char			 cells[7][512];
	const char		*row[7];
	size_t			 i, k;

	if (cmd->json) {
		cli_print_json(stdout, merged);
		return;
	}
	if (json_array_size(merged) == 0) {
		printf("no matching entries\n");
		return;
	}
	t = cli_table_new(7, hdr);
	json_array_foreach(merged, i, x) {
		e = json_object_get(x, "entry");
		cli_fmt_time(cells[0], sizeof(cells[0]), (long long)
		    json_integer_value(json_object_get(e, "time")) / 1000);
		cli_fmt_value(cells[1], sizeof(cells[1]), json_object_get(x,
		    "service"), 0);
		for (k = 0; k < nitems(keys); k++)
			cli_fmt_value(cells[k + 2], sizeof(cells[k + 2]),
			    json_object_get(e, keys[k]), 0);
		for (k = 0; k < 7; k++)
			row[k] = cells[k];
		cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(&t);
}

static int
cli__query(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	const char		*svcs[nitems(cli_audit_services)];
	json_t			*lists[nitems(cli_audit_services)], *merged;
	struct cli_client	 cl;
	struct cli_q		 q;
	size_t			 n, i, got = 0;
	int			 rc, failed = 0;

	if (cli__services(svcs, &n, cmd) < 0 || cli__q_build(&q, cmd) < 0)
		return CLI_EXIT_USAGE;
	if ((rc = cli__client(&cl, cmd, cf)) != 0)
		return rc;
	for (i = 0; i < n; i++) {
		if ((cl.addr = cli__addr(cf, svcs[i])) == NULL) {
			cli__say(stderr, "amanat: %s: no API address in the "
			    "config; skipped", svcs[i]);
			failed = 1;
			continue;
		}
		if (cli__q_one(&lists[got], &cl, &q, svcs[i]) != 0) {
			failed = 1;
			continue;
		}
		svcs[got++] = svcs[i];
	}
	merged = cli_audit_merge(svcs, lists, got, q.limit);
	cli__q_print(cmd, merged);
	json_decref(merged);
	for (i = 0; i < got; i++)
		json_decref(lists[i]);
	cli_client_free(&cl);
	return failed ? CLI_EXIT_API : CLI_EXIT_OK;
}

/* ------------------------------------------------------------ verify */

/* DIR/<node>/<service>.json; DIR is --state or ~/.amanat/audit-state. */
static char *
cli__state_path(const struct cli_cmd *cmd, const struct amanat_conf *cf,
    const char *svc)
{
	const char	*home;
	char		*p;

	if (cmd->state != NULL)
		xasprintf(&p, "%s/%s/%s.json", cmd->state, cf->node.name, svc);
	else if ((home = getenv("HOME")) != NULL && *home != '\0')
		xasprintf(&p, "%s/%s/%s/%s.json", home, CLI_AUDIT_STATE_DIR,
		    cf->node.name, svc);
	else {
		err_set(ERR_INVAL, "no $HOME for the audit state: give "
		    "--state DIR");
		return NULL;
	}
	return p;
}

/* The saved state, or NULL in *out when there is none yet. */
static int
cli__state_read(json_t **out, const char *path)
{
	json_error_t	 jerr;
	char		*data = NULL;
	size_t		 len;
	int		 rc;

	*out = NULL;
	if ((rc = file_read_all(&data, &len, path, CLI_AUDIT_STATE_MAX)) ==
	    ERR_NOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	*out = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		err_set(ERR_INVAL, "%s: not a saved audit state: %s", path,
		    jerr.text);
		return ERR_INVAL;
	}
	return 0;
}

/* Write the state 0600, its directory made 0700. */
static int
cli__state_write(const char *path, const json_t *state)
{
	char	*dir = xstrdup(path), *slash, *s;
	int	 rc;

	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if ((rc = mkdir_p(dir, 0700)) < 0) {
			free(dir);
			return rc;
		}
	}
	free(dir);
	if ((s = json_dumps(state, JSON_INDENT(1) | JSON_SORT_KEYS)) == NULL) {
		err_set(ERR_GENERIC, "cannot encode the audit state");
		return ERR_GENERIC;
	}
	rc = file_write_atomic(path, s, strlen(s), 0600);
	free(s);
	return rc;
}

/* The report line (and JSON record) of one daemon. */
static void
cli__verify_report(json_t *report, const struct cli_cmd *cmd,
    const char *svc, const struct cli_audit_check *c, int rc)
{
	char	msg[ERR_MSG_MAX + 128];

	if (rc == 0 && c->no_checkpoint)
		snprintf(msg, sizeof(msg), "no signed checkpoint yet "
		    "(nothing to verify)");
	else if (rc == 0 && c->prev_size > 0)
		snprintf(msg, sizeof(msg), "ok, %llu entries, checkpoint size "
		    "%llu verified (consistent with size %llu verified "
		    "before)", (unsigned long long)c->size,
		    (unsigned long long)c->cp_size,
		    (unsigned long long)c->prev_size);
	else if (rc == 0)
		snprintf(msg, sizeof(msg), "ok, %llu entries, checkpoint size "
		    "%llu verified", (unsigned long long)c->size,
		    (unsigned long long)c->cp_size);
	else
		snprintf(msg, sizeof(msg), "%s: %s", rc == ERR_PROTO ?
		    "FAILED" : "error", err_msg());
	if (!cmd->json)
		cli__say(stdout, "%s: %s", svc, msg);
	json_array_append_new(report, json_pack("{s:s,s:b,s:I,s:I,s:I,s:o,"
	    "s:s}", "service", svc, "ok", rc == 0, "entries",
	    (json_int_t)c->size, "checkpoint_size", (json_int_t)c->cp_size,
	    "previous_size", (json_int_t)c->prev_size, "bad_index",
	    c->bad_index == CLI_AUDIT_NO_INDEX ? json_null() :
	    json_integer((json_int_t)c->bad_index), "message", msg));
}

/* Verify one daemon; 0 or < 0 (reported). */
static int
cli__verify_one(json_t *report, struct cli_client *cl,
    const struct cli_cmd *cmd, const struct amanat_conf *cf,
    X509_STORE *store, const char *svc)
{
	struct cli_audit_src	 src = { cli__http_get, cl };
	struct cli_audit_check	 chk;
	json_t			*state = NULL, *next = NULL;
	char			 origin[2 * AUDIT_NAME_MAX + 2], *path;
	int			 rc;

	memset(&chk, 0, sizeof(chk));
	chk.bad_index = CLI_AUDIT_NO_INDEX;
	snprintf(origin, sizeof(origin), "%s/%s", cf->node.name, svc);
	if ((path = cli__state_path(cmd, cf, svc)) == NULL) {
		rc = ERR_INVAL;
		goto done;
	}
	if ((rc = cli__state_read(&state, path)) < 0)
		goto done;
	if ((cl->addr = cli__addr(cf, svc)) == NULL) {
		err_set(ERR_INVAL, "no API address in the config");
		rc = ERR_INVAL;
		goto done;
	}
	rc = cli_audit_verify_log(&chk, &next, &src, origin, state, store,
	    cmd->quick ? CLI_AUDIT_QUICK : 0);
	if (rc == 0 && next != NULL && (rc = cli__state_write(path,
	    next)) < 0)
		err_set(rc, "verified, but the state was not saved: %s",
		    err_msg());
done:
	cli__verify_report(report, cmd, svc, &chk, rc);
	json_decref(state);
	json_decref(next);
	free(path);
	return rc;
}

static int
cli__verify(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	const char		*svcs[nitems(cli_audit_services)];
	struct cli_client	 cl;
	X509_STORE		*store = NULL;
	json_t			*report;
	size_t			 n, i;
	int			 rc, failed = 0;

	if (cli__services(svcs, &n, cmd) < 0)
		return CLI_EXIT_USAGE;
	if (cf->tls.ca == NULL || cli_audit_store(&store, cf->tls.ca) < 0) {
		cli__say(stderr, "amanat: [tls] ca: %s", cf->tls.ca == NULL ?
		    "not set" : err_msg());
		return CLI_EXIT_CONFIG;
	}
	if ((rc = cli__client(&cl, cmd, cf)) != 0) {
		X509_STORE_free(store);
		return rc;
	}
	report = json_array();
	for (i = 0; i < n; i++)
		if (cli__verify_one(report, &cl, cmd, cf, store, svcs[i]) < 0)
			failed = 1;
	if (cmd->json)
		cli_print_json(stdout, report);
	json_decref(report);
	cli_client_free(&cl);
	X509_STORE_free(store);
	return failed ? CLI_EXIT_API : CLI_EXIT_OK;
}

/* ------------------------------------------------------------ export */

/* Entries [from, to) against the checkpoint of size pin (0: newest). */
static int
cli__export_get(json_t **out, struct cli_client *cl, const char *svc,
    uint64_t from, uint64_t to, uint64_t pin)
{
	char	target[160];

	snprintf(target, sizeof(target), "/v1/audit/export?from=%llu&to=%llu",
	    (unsigned long long)from, (unsigned long long)to);
	if (pin > 0)
		snprintf(target + strlen(target), sizeof(target) -
		    strlen(target), "&checkpoint=%llu",
		    (unsigned long long)pin);
	return cli__fetch(out, cl, svc, target, "");
}

/*
 * The bundle of [from, to) in pieces of CLI_AUDIT_PAGE: the last piece
 * first (the newest checkpoint covering to), then the others pinned to
 * that checkpoint, so that every proof is against one root.
 */
static int
cli__export_fetch(json_t **out, struct cli_client *cl, const char *svc,
    uint64_t from, uint64_t to)
{
	json_t		*b = NULL, *piece, *all;
	uint64_t	 last, pin, f;
	int		 rc;

	*out = NULL;
	last = to - from > CLI_AUDIT_PAGE ? to - CLI_AUDIT_PAGE : from;
	if ((rc = cli__export_get(&b, cl, svc, last, to, 0)) != 0)
		return rc;
	pin = (uint64_t)json_integer_value(json_object_get(json_object_get(b,
	    "checkpoint"), "size"));
	all = json_array();
	for (f = from; f < last; f += CLI_AUDIT_PAGE) {
		if ((rc = cli__export_get(&piece, cl, svc, f, f +
		    CLI_AUDIT_PAGE < last ? f + CLI_AUDIT_PAGE : last,
		    pin)) != 0) {
			json_decref(all);
			json_decref(b);
			return rc;
		}
		json_array_extend(all, json_object_get(piece, "entries"));
		json_decref(piece);
	}
	json_array_extend(all, json_object_get(b, "entries"));
	json_object_set_new(b, "entries", all);
	json_object_set_new(b, "from", json_integer((json_int_t)from));
	json_object_set_new(b, "to", json_integer((json_int_t)to));
	*out = b;
	return 0;
}

/* --from/--to; -1 after a usage message. */
static int
cli__export_range(uint64_t *from, uint64_t *to, const struct cli_cmd *cmd)
{
	long long	f, t;

	if (parse_ll(&f, cmd->from, 0, (long long)(MERKLE_SIZE_MAX - 1)) <
	    0 || parse_ll(&t, cmd->to, 0, (long long)(MERKLE_SIZE_MAX -
	    1)) < 0 || f >= t) {
		cli__say(stderr, "amanat: audit export: --from N --to M with "
		    "0 <= N < M (entry indexes; M is excluded)");
		return -1;
	}
	*from = (uint64_t)f;
	*to = (uint64_t)t;
	return 0;
}

static int
cli__export(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	const char		*svcs[nitems(cli_audit_services)];
	struct cli_client	 cl;
	struct stat		 st;
	uint64_t		 from, to;
	json_t			*b = NULL;
	char			*s = NULL;
	size_t			 n;
	int			 rc;

	if (cli__services(svcs, &n, cmd) < 0 || cli__export_range(&from, &to,
	    cmd) < 0)
		return CLI_EXIT_USAGE;
	if (n != 1) {
		cli__say(stderr, "amanat: audit export: one --service");
		return CLI_EXIT_USAGE;
	}
	if (lstat(cmd->out, &st) == 0) {
		cli__say(stderr, "amanat: %s exists; remove it or choose "
		    "another file", cmd->out);
		return CLI_EXIT_API;
	}
	if ((rc = cli__client(&cl, cmd, cf)) != 0)
		return rc;
	if ((cl.addr = cli__addr(cf, svcs[0])) == NULL) {
		cli__say(stderr, "amanat: %s: no API address in the config",
		    svcs[0]);
		rc = CLI_EXIT_CONFIG;
	} else if ((rc = cli__export_fetch(&b, &cl, svcs[0], from, to)) ==
	    0 && ((s = json_dumps(b, JSON_COMPACT)) == NULL ||
	    file_write_atomic(cmd->out, s, strlen(s), 0600) < 0)) {
		cli__say(stderr, "amanat: %s: %s", cmd->out, s == NULL ?
		    "cannot encode the bundle" : err_msg());
		rc = CLI_EXIT_API;
	} else if (rc == 0)
		cli__say(stdout, "wrote %s (mode 0600): entries %llu..%llu of "
		    "%s, proved against checkpoint size %lld; check it with: "
		    "amanat audit verify-export %s --ca CAFILE", cmd->out,
		    (unsigned long long)from, (unsigned long long)(to - 1),
		    json_string_value(json_object_get(b, "origin")) ?: "?",
		    (long long)json_integer_value(json_object_get(
		    json_object_get(b, "checkpoint"), "size")), cmd->out);
	free(s);
	json_decref(b);
	cli_client_free(&cl);
	return rc;
}

/* ------------------------------------------------------------ offline */

static void
cli__ve_report(const struct cli_cmd *cmd, const struct cli_audit_summary *s,
    int rc)
{
	char	when[64];
	json_t	*o;

	cli_fmt_time(when, sizeof(when), (long long)(s->cp_time / 1000));
	if (cmd->json) {
		o = json_pack("{s:s,s:b,s:s,s:I,s:I,s:I,s:s,s:s,s:o,s:s}",
		    "file", cmd->arg, "ok", rc == 0, "origin", s->origin,
		    "from", (json_int_t)s->from, "count", (json_int_t)s->count,
		    "checkpoint_size", (json_int_t)s->cp_size,
		    "checkpoint_time", when, "signer", s->signer, "bad_index",
		    s->bad_index == CLI_AUDIT_NO_INDEX ? json_null() :
		    json_integer((json_int_t)s->bad_index), "message",
		    rc == 0 ? "ok" : err_msg());
		cli_print_json(stdout, o);
		json_decref(o);
	} else if (rc == 0)
		cli__say(stdout, "%s: ok, %llu entries %llu..%llu of %s "
		    "verified against checkpoint size %llu of %s signed by %s",
		    cmd->arg, (unsigned long long)s->count,
		    (unsigned long long)s->from,
		    (unsigned long long)(s->from + s->count - 1), s->origin,
		    (unsigned long long)s->cp_size, when, s->signer);
	if (rc < 0)
		cli__say(stderr, "amanat: %s: %s", cmd->arg, err_msg());
}

int
cli_cmd_audit_verify_export(const struct cli_cmd *cmd)
{
	struct cli_audit_summary	 sum;
	json_error_t			 jerr;
	X509_STORE			*store = NULL;
	json_t				*b = NULL;
	char				*data = NULL;
	size_t				 len;
	int				 rc;

	memset(&sum, 0, sizeof(sum));
	if (cli_audit_store(&store, cmd->ca) < 0) {
		cli__say(stderr, "amanat: %s", err_msg());
		return CLI_EXIT_CONFIG;
	}
	if ((rc = file_read_all(&data, &len, cmd->arg,
	    CLI_AUDIT_BUNDLE_MAX)) == 0 && (b = json_loadb(data, len,
	    JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		rc = cli__bad(ERR_INVAL, "not JSON: %s (line %d)", jerr.text,
		    jerr.line);
	free(data);
	if (rc == 0)
		rc = cli_audit_bundle_verify(&sum, b, store);
	cli__ve_report(cmd, &sum, rc);
	json_decref(b);
	X509_STORE_free(store);
	return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_API;
}

int
cli_cmd_audit(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	switch (cmd->verb) {
	case CLI_AUDIT_QUERY:
		return cli__query(cmd, cf);
	case CLI_AUDIT_VERIFY:
		return cli__verify(cmd, cf);
	case CLI_AUDIT_EXPORT:
		return cli__export(cmd, cf);
	case CLI_AUDIT_VERIFY_EXPORT:
		return cli_cmd_audit_verify_export(cmd);
	default:
		return CLI_EXIT_USAGE;
	}
}
