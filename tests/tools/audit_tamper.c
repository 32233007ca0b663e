/*
 * audit_tamper.c -- a test tool: read and rewrite a daemon's audit log
 * (common/audit.h) behind its back, the way an intruder with the disk
 * would, for the end-to-end tests (tests/e2e/test_audit_tamper.py).
 *
 *	audit_tamper DIR count
 *		the number of stored entries ("entries" db), on stdout
 *	audit_tamper DIR get INDEX
 *		the stored bytes of entry INDEX, exactly, on stdout
 *	audit_tamper DIR put INDEX
 *		replace the stored bytes of entry INDEX (which must exist)
 *		with standard input, as they are: nothing is checked, so
 *		the new bytes may be any JSON or none; the tree nodes and
 *		checkpoints are left alone
 *	audit_tamper DIR verify NODE SERVICE [CERT]
 *		the project's own full check, audit_verify_all() on the log
 *		opened with AUDIT_OPEN_VERIFY (checkpoint signatures too
 *		when CERT, the PEM certificate of the signing key, is
 *		given); prints "ok size=N checkpoints=C" or "bad_index=I
 *		<message>"
 *
 * DIR is <datadir>/<service>/audit.  get, put and count use LMDB
 * directly (the daemon must be stopped for put: LMDB allows one writer,
 * and the daemon keeps its own view of the tree in memory).
 *
 * Exit: 0 ok, 1 usage, 2 cannot open or LMDB error, 3 no such entry,
 * 5 verify found the log damaged.  Built by the tests (or the Makefile's
 * tools target) from libcommon.a; never installed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/audit.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define TAMPER_MAXDBS		4
#define TAMPER_ENTRY_MAX	(1024 * 1024)

static void
usage(void)
{
	fprintf(stderr,
	    "usage: audit_tamper DIR count\n"
	    "       audit_tamper DIR get INDEX\n"
	    "       audit_tamper DIR put INDEX < BYTES\n"
	    "       audit_tamper DIR verify NODE SERVICE [CERT]\n");
	exit(1);
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

static uint64_t
index_arg(const char *s)
{
	long long	v;

	if (parse_ll(&v, s, 0, INT64_MAX) < 0)
		usage();
	return (uint64_t)v;
}

static int
lmdb_fail(int mrc, const char *what)
{
	fprintf(stderr, "audit_tamper: %s: %s\n", what, mdb_strerror(mrc));
	return 2;
}

/* Standard input, at most TAMPER_ENTRY_MAX bytes. */
static char *
read_stdin(size_t *len)
{
	char	*buf = xmalloc(TAMPER_ENTRY_MAX + 1);
	size_t	 n = 0, r;

	while ((r = fread(buf + n, 1, TAMPER_ENTRY_MAX + 1 - n, stdin)) > 0)
		n += r;
	if (ferror(stdin) || n > TAMPER_ENTRY_MAX) {
		fprintf(stderr, "audit_tamper: cannot read the new entry (at "
		    "most %d bytes)\n", TAMPER_ENTRY_MAX);
		exit(2);
	}
	*len = n;
	return buf;
}

/* count, get and put: straight LMDB. */
static int
cmd_lmdb(const char *dir, const char *cmd, int argc, char **argv)
{
	MDB_env		*env = NULL;
	MDB_txn		*txn = NULL;
	MDB_dbi		 dbi;
	MDB_stat	 st;
	MDB_val		 k, v;
	uint8_t		 kb[8];
	char		*data = NULL;
	size_t		 len = 0;
	int		 mrc, rc = 0, put = strcmp(cmd, "put") == 0;

	if (strcmp(cmd, "count") == 0) {
		if (argc != 0)
			usage();
	} else if ((strcmp(cmd, "get") != 0 && !put) || argc != 1)
		usage();
	if (put)
		data = read_stdin(&len);
	if ((mrc = mdb_env_create(&env)) != 0 ||
	    (mrc = mdb_env_set_maxdbs(env, TAMPER_MAXDBS)) != 0 ||
	    (mrc = mdb_env_open(env, dir, put ? 0 : MDB_RDONLY, 0600)) != 0) {
		rc = lmdb_fail(mrc, dir);
		goto done;
	}
	if ((mrc = mdb_txn_begin(env, NULL, put ? 0 : MDB_RDONLY,
	    &txn)) != 0 || (mrc = mdb_dbi_open(txn, "entries", 0,
	    &dbi)) != 0) {
		rc = lmdb_fail(mrc, "entries");
		goto done;
	}
	if (argc == 0) {
		if ((mrc = mdb_stat(txn, dbi, &st)) != 0) {
			rc = lmdb_fail(mrc, "stat");
			goto done;
		}
		printf("%zu\n", st.ms_entries);
		goto done;
	}
	be64(kb, index_arg(argv[0]));
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	if ((mrc = mdb_get(txn, dbi, &k, &v)) == MDB_NOTFOUND) {
		fprintf(stderr, "audit_tamper: no entry %s\n", argv[0]);
		rc = 3;
		goto done;
	}
	if (mrc != 0) {
		rc = lmdb_fail(mrc, "get");
		goto done;
	}
	if (!put) {
		if (fwrite(v.mv_data, 1, v.mv_size, stdout) != v.mv_size)
			rc = 2;
		goto done;
	}
	v.mv_data = data;
	v.mv_size = len;
	if ((mrc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
		rc = lmdb_fail(mrc, "put");
		goto done;
	}
	mrc = mdb_txn_commit(txn);
	txn = NULL;
	if (mrc != 0)
		rc = lmdb_fail(mrc, "commit");
	else if ((mrc = mdb_env_sync(env, 1)) != 0)
		rc = lmdb_fail(mrc, "sync");
done:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	free(data);
	return rc;
}

/* The public key of a PEM certificate file, or NULL (reported). */
static EVP_PKEY *
cert_pubkey(const char *path)
{
	EVP_PKEY	*pub = NULL;
	X509		*x = NULL;
	FILE		*fp;

	if ((fp = fopen(path, "r")) == NULL) {
		fprintf(stderr, "audit_tamper: %s: cannot open\n", path);
		return NULL;
	}
	if ((x = PEM_read_X509(fp, NULL, NULL, NULL)) == NULL ||
	    (pub = X509_get_pubkey(x)) == NULL)
		fprintf(stderr, "audit_tamper: %s: not a PEM certificate\n",
		    path);
	ERR_clear_error();
	X509_free(x);
	fclose(fp);
	return pub;
}

static int
cmd_verify(const char *dir, int argc, char **argv)
{
	struct audit_opts	 o;
	struct audit_verify	 v;
	struct audit_log	*log = NULL;
	EVP_PKEY		*pub = NULL;
	int			 rc;

	if (argc != 2 && argc != 3)
		usage();
	if (argc == 3 && (pub = cert_pubkey(argv[2])) == NULL)
		return 2;
	memset(&o, 0, sizeof(o));
	o.dir = dir;
	o.node = argv[0];
	o.service = argv[1];
	o.flags = AUDIT_OPEN_VERIFY;
	if ((rc = audit_open(&log, &o)) < 0) {
		fprintf(stderr, "audit_tamper: open %s: %s\n", dir, err_msg());
		EVP_PKEY_free(pub);
		return 2;
	}
	memset(&v, 0, sizeof(v));
	if ((rc = audit_verify_all(&v, log, pub)) == 0)
		printf("ok size=%llu checkpoints=%llu\n",
		    (unsigned long long)v.size,
		    (unsigned long long)v.checkpoints);
	else if (v.bad_index != AUDIT_NO_MORE)
		printf("bad_index=%llu %s\n", (unsigned long long)v.bad_index,
		    err_msg());
	else
		printf("bad %s\n", err_msg());
	audit_close(&log);
	EVP_PKEY_free(pub);
	return rc == 0 ? 0 : 5;
}

int
main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	if (strcmp(argv[2], "verify") == 0)
		return cmd_verify(argv[1], argc - 3, argv + 3);
	return cmd_lmdb(argv[1], argv[2], argc - 3, argv + 3);
}
