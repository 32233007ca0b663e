/*
 * directory.c -- the keyservice directory in LMDB (see directory.h).
 *
 * Runs in: keyservice, event loop thread (and node init).
 * Failure policy: input errors are ERR_INVAL naming the field; storage
 * errors ERR_IO; a stored record that does not parse is ERR_IO naming
 * its key (stored data is not trusted).
 * SECURITY: addresses, domains and department names are validated and
 * normalised before they become keys; password hashes never leave this
 * module except through dir_user_get() for verification.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/directory.h"

#define DIR_RECORD_VERSION	1
#define DIR_RECORD_MAX		(256 * 1024)

struct dir {
	struct db_env	*env;
	MDB_dbi		 depts, domains, users, principals, certs, escrow,
			 meta;
	uint64_t	 epoch;
};

/* Every write goes through here: count it for dir_epoch(). */
static int
dir_write(struct dir *d, db_txn_fn fn, void *arg)
{
	d->epoch++;
	return db_write(d->env, fn, arg);
}

static const char *const dir_roles[] = {
	"user", "dept-admin", "security-officer",
};

/* ------------------------------------------------------------ names */

int
dir_dept_name_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > DIR_DEPT_MAX || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) ||
		    isdigit((unsigned char)s[i]) || s[i] == '-'))
			return 0;
	return 1;
}

int
dir_domain_ok(const char *s)
{
	size_t	i, n = strlen(s), label = 0;

	if (n == 0 || n > DIR_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char	c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(islower(c) || isdigit(c) || c == '-'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return s[n - 1] != '-' && strchr(s, '.') != NULL;
}

int
dir_address_norm(char *out, const char *in, const char **domain_out)
{
	static const char	 special[] = "!#$%&'*+/=?^_`{|}~.-";
	const char		*at;
	size_t			 i, n = strlen(in), local;

	if (n == 0 || n > DIR_ADDRESS_MAX || (at = strrchr(in, '@')) == NULL)
		goto bad;
	local = (size_t)(at - in);
	if (local == 0 || local > DIR_LOCAL_MAX)
		goto bad;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	for (i = 0; i < local; i++) {
		unsigned char	c = (unsigned char)out[i];

		if (!isalnum(c) && strchr(special, c) == NULL)
			goto bad;
		if (c == '.' && (i == 0 || i == local - 1 || out[i + 1] == '.'))
			goto bad;
	}
	if (!dir_domain_ok(out + local + 1))
		goto bad;
	if (domain_out != NULL)
		*domain_out = out + local + 1;
	return 0;
bad:
	err_set(ERR_INVAL, "address: not a valid address (local@domain)");
	return ERR_INVAL;
}

/* ------------------------------------------------------------ storage */

int
dir_open(struct dir **out, struct db_env *env)
{
	struct dir	*d = xcalloc(1, sizeof(*d));
	int		 rc;

	d->env = env;
	if ((rc = db_dbi(env, "depts", MDB_CREATE, &d->depts)) < 0 ||
	    (rc = db_dbi(env, "domains", MDB_CREATE, &d->domains)) < 0 ||
	    (rc = db_dbi(env, "users", MDB_CREATE, &d->users)) < 0 ||
	    (rc = db_dbi(env, "principals", MDB_CREATE, &d->principals)) < 0 ||
	    (rc = db_dbi(env, "certs", MDB_CREATE, &d->certs)) < 0 ||
	    (rc = db_dbi(env, "escrow", MDB_CREATE, &d->escrow)) < 0 ||
	    (rc = db_dbi(env, "meta", MDB_CREATE, &d->meta)) < 0) {
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void
dir_close(struct dir **dp)
{
	free(*dp);
	*dp = NULL;
}

uint64_t
dir_epoch(struct dir *d)
{
	return d->epoch;
}

struct db_env *
dir_env(struct dir *d)
{
	return d->env;
}

static MDB_val
dir_key(const char *k)
{
	MDB_val	v;

	v.mv_data = (void *)k;
	v.mv_size = strlen(k);
	return v;
}

/* Read a JSON record; ERR_NOTFOUND if absent. */
static int
dir_get_json(MDB_txn *txn, MDB_dbi dbi, const char *key, json_t **out)
{
	MDB_val		 k = dir_key(key), v;
	json_error_t	 jerr;
	int		 rc;

	*out = NULL;
	if ((rc = mdb_get(txn, dbi, &k, &v)) != 0) {
		if (rc == MDB_NOTFOUND) {
			err_set(ERR_NOTFOUND, "%s: not found", key);
			return ERR_NOTFOUND;
		}
		return db_err(rc, "read");
	}
	if (v.mv_size > DIR_RECORD_MAX ||
	    (*out = json_loadb(v.mv_data, v.mv_size, 0, &jerr)) == NULL ||
	    !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		err_set(ERR_IO, "stored record %s is corrupt", key);
		return ERR_IO;
	}
	return 0;
}

static int
dir_put_json(MDB_txn *txn, MDB_dbi dbi, const char *key, json_t *rec,
    unsigned flags)
{
	MDB_val	 k = dir_key(key), v;
	char	*text;
	int	 rc;

	if ((text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		fatalx("json_dumps: out of memory");
	v.mv_data = text;
	v.mv_size = strlen(text);
	rc = mdb_put(txn, dbi, &k, &v, flags);
	free(text);
	if (rc == MDB_KEYEXIST) {
		err_set(ERR_EXISTS, "%s already exists", key);
		return ERR_EXISTS;
	}
	return rc ? db_err(rc, "write") : 0;
}

/* A generic single-record read. */
struct dir_read {
	MDB_dbi		 dbi;
	const char	*key;
	json_t		*out;
};

static int
dir_read_cb(MDB_txn *txn, void *arg)
{
	struct dir_read	*r = arg;

	return dir_get_json(txn, r->dbi, r->key, &r->out);
}

static int
dir_read_one(struct dir *d, MDB_dbi dbi, const char *key, json_t **out)
{
	struct dir_read	r = { dbi, key, NULL };
	int		rc;

	rc = db_read(d->env, dir_read_cb, &r);
	*out = r.out;
	return rc;
}

/* All records of a db, optionally filtered by a string member's value. */
struct dir_scan {
	MDB_dbi		 dbi;
	const char	*member;
	const char	*value;
	json_t		*arr;
};

static int
dir_scan_cb(MDB_txn *txn, void *arg)
{
	struct dir_scan	*s = arg;
	MDB_cursor	*cur;
	MDB_val		 k, v;
	json_t		*rec;
	json_error_t	 jerr;
	int		 rc;

	json_array_clear(s->arr);
	if ((rc = mdb_cursor_open(txn, s->dbi, &cur)) != 0)
		return db_err(rc, "cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		rec = json_loadb(v.mv_data, v.mv_size, 0, &jerr);
		if (rec == NULL || !json_is_object(rec)) {
			json_decref(rec);
			mdb_cursor_close(cur);
			err_set(ERR_IO, "stored record %.*s is corrupt",
			    (int)(k.mv_size > 80 ? 80 : k.mv_size),
			    (char *)k.mv_data);
			return ERR_IO;
		}
		if (s->member == NULL || strcmp(json_string_value(
		    json_object_get(rec, s->member)) ?: "", s->value) == 0)
			json_array_append(s->arr, rec);
		json_decref(rec);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : db_err(rc, "cursor");
}

static int
dir_scan(struct dir *d, MDB_dbi dbi, const char *member, const char *value,
    json_t **out)
{
	struct dir_scan	s = { dbi, member, value, json_array() };
	int		rc;

	if ((rc = db_read(d->env, dir_scan_cb, &s)) < 0) {
		json_decref(s.arr);
		*out = NULL;
		return rc;
	}
	*out = s.arr;
	return 0;
}

/* ------------------------------------------------------------ depts */

struct dir_dept_op {
	struct dir	*d;
	json_t		*rec;
};

static int
dir_dept_add_cb(MDB_txn *txn, void *arg)
{
	struct dir_dept_op	*op = arg;
	const char		*name = json_string_value(json_object_get(
	    op->rec, "name"));
	json_t			*dom;
	size_t			 i;
	MDB_val			 k, v;
	int			 rc;

	if ((rc = dir_put_json(txn, op->d->depts, name, op->rec,
	    MDB_NOOVERWRITE)) < 0)
		return rc;
	json_array_foreach(json_object_get(op->rec, "domains"), i, dom) {
		k = dir_key(json_string_value(dom));
		v = dir_key(name);
		if ((rc = mdb_put(txn, op->d->domains, &k, &v,
		    MDB_NOOVERWRITE)) != 0) {
			if (rc == MDB_KEYEXIST) {
				err_set(ERR_EXISTS, "domain %s already belongs "
				    "to a department", json_string_value(dom));
				return ERR_EXISTS;
			}
			return db_err(rc, "write domain");
		}
	}
	return 0;
}

int
dir_dept_add(struct dir *d, const char *name, const char *display,
    json_t *domains, json_t **out)
{
	struct dir_dept_op	 op = { d, NULL };
	json_t			*dom, *doms;
	size_t			 i;
	int			 rc;

	if (!dir_dept_name_ok(name)) {
		err_set(ERR_INVAL, "name: 1-%d of [a-z0-9-], starting with a "
		    "letter or digit", DIR_DEPT_MAX);
		return ERR_INVAL;
	}
	if (display != NULL && strlen(display) > DIR_DISPLAY_MAX) {
		err_set(ERR_INVAL, "display_name: longer than %d bytes",
		    DIR_DISPLAY_MAX);
		return ERR_INVAL;
	}
	if (!json_is_array(domains) || json_array_size(domains) == 0 ||
	    json_array_size(domains) > DIR_DOMAINS_MAX) {
		err_set(ERR_INVAL, "domains: 1-%d domain names",
		    DIR_DOMAINS_MAX);
		return ERR_INVAL;
	}
	doms = json_array();
	json_array_foreach(domains, i, dom) {
		char	low[DIR_DOMAIN_MAX + 1];
		size_t	j, n;

		n = json_is_string(dom) ? strlen(json_string_value(dom)) : 0;
		if (n == 0 || n > DIR_DOMAIN_MAX)
			goto bad;
		for (j = 0; j <= n; j++)
			low[j] = (char)tolower((unsigned char)
			    json_string_value(dom)[j]);
		if (!dir_domain_ok(low))
			goto bad;
		json_array_append_new(doms, json_string(low));
	}
	op.rec = json_pack("{s:i,s:s,s:s,s:o,s:I}", "v", DIR_RECORD_VERSION,
	    "name", name, "display_name", display ? display : name,
	    "domains", doms, "created", (json_int_t)time(NULL));
	if ((rc = dir_write(d, dir_dept_add_cb, &op)) < 0) {
		json_decref(op.rec);
		return rc;
	}
	if (out != NULL)
		*out = op.rec;
	else
		json_decref(op.rec);
	return 0;
bad:
	json_decref(doms);
	err_set(ERR_INVAL, "domains: not a valid domain name");
	return ERR_INVAL;
}

int
dir_dept_get(struct dir *d, const char *name, json_t **out)
{
	if (!dir_dept_name_ok(name)) {
		*out = NULL;
		err_set(ERR_NOTFOUND, "no such department");
		return ERR_NOTFOUND;
	}
	return dir_read_one(d, d->depts, name, out);
}

int
dir_dept_list(struct dir *d, json_t **out)
{
	return dir_scan(d, d->depts, NULL, NULL, out);
}

struct dir_domain_read {
	struct dir	*d;
	const char	*domain;
	char		*out;
};

static int
dir_domain_cb(MDB_txn *txn, void *arg)
{
	struct dir_domain_read	*r = arg;
	MDB_val			 k = dir_key(r->domain), v;
	int			 rc;

	if ((rc = mdb_get(txn, r->d->domains, &k, &v)) != 0) {
		if (rc == MDB_NOTFOUND) {
			err_set(ERR_NOTFOUND, "domain %s belongs to no "
			    "department", r->domain);
			return ERR_NOTFOUND;
		}
		return db_err(rc, "read domain");
	}
	if (v.mv_size == 0 || v.mv_size > DIR_DEPT_MAX) {
		err_set(ERR_IO, "stored domain %s is corrupt", r->domain);
		return ERR_IO;
	}
	memcpy(r->out, v.mv_data, v.mv_size);
	r->out[v.mv_size] = '\0';
	return 0;
}

int
dir_domain_dept(struct dir *d, const char *domain, char *out)
{
	struct dir_domain_read	r = { d, domain, out };

	return db_read(d->env, dir_domain_cb, &r);
}

/* ------------------------------------------------------------ users */

static int
dir_roles_ok(json_t *roles)
{
	json_t	*r;
	size_t	 i, j;

	if (!json_is_array(roles) || json_array_size(roles) == 0 ||
	    json_array_size(roles) > nitems(dir_roles))
		goto bad;
	json_array_foreach(roles, i, r) {
		for (j = 0; j < nitems(dir_roles); j++)
			if (json_is_string(r) && strcmp(json_string_value(r),
			    dir_roles[j]) == 0)
				break;
		if (j == nitems(dir_roles))
			goto bad;
	}
	return 1;
bad:
	err_set(ERR_INVAL, "roles: a list of user, dept-admin, "
	    "security-officer");
	return 0;
}

int
dir_user_has_role(json_t *user, const char *role)
{
	json_t	*r;
	size_t	 i;

	json_array_foreach(json_object_get(user, "roles"), i, r)
		if (json_is_string(r) && strcmp(json_string_value(r), role) == 0)
			return 1;
	return 0;
}

json_t *
dir_user_public(json_t *user)
{
	json_t	*pub = json_deep_copy(user);

	json_object_del(pub, "password");
	json_object_del(pub, "v");
	return pub;
}

struct dir_user_op {
	struct dir	*d;
	const char	*address;
	json_t		*rec;		/* add: new record; update: patch */
	json_t		*out;
};

static int
dir_user_add_cb(MDB_txn *txn, void *arg)
{
	struct dir_user_op	*op = arg;

	return dir_put_json(txn, op->d->users, op->address, op->rec,
	    MDB_NOOVERWRITE);
}

int
dir_user_add(struct dir *d, const char *address, const char *display,
    json_t *roles, const char *pwhash, json_t **out)
{
	char			 addr[DIR_ADDRESS_MAX + 1];
	char			 dept[DIR_DEPT_MAX + 1];
	const char		*domain;
	struct dir_user_op	 op = { d, addr, NULL, NULL };
	json_int_t		 now = (json_int_t)time(NULL);
	int			 rc;

	if ((rc = dir_address_norm(addr, address, &domain)) < 0)
		return rc;
	if (display != NULL && strlen(display) > DIR_DISPLAY_MAX) {
		err_set(ERR_INVAL, "display_name: longer than %d bytes",
		    DIR_DISPLAY_MAX);
		return ERR_INVAL;
	}
	if (roles != NULL && !dir_roles_ok(roles))
		return ERR_INVAL;
	if ((rc = dir_domain_dept(d, domain, dept)) < 0) {
		if (rc == ERR_NOTFOUND)
			err_set(ERR_INVAL, "address: domain %s belongs to no "
			    "department", domain);
		return rc == ERR_NOTFOUND ? ERR_INVAL : rc;
	}
	op.rec = json_pack("{s:i,s:s,s:s,s:s,s:O,s:s,s:s,s:I,s:I}", "v",
	    DIR_RECORD_VERSION, "address", addr, "dept", dept,
	    "display_name", display ? display : "", "roles",
	    roles ? roles : json_pack("[s]", "user"), "status", "active",
	    "password", pwhash, "created", now, "updated", now);
	if (roles == NULL)	/* json_pack "O" took a second reference */
		json_decref(json_object_get(op.rec, "roles"));
	if ((rc = dir_write(d, dir_user_add_cb, &op)) < 0) {
		json_decref(op.rec);
		return rc;
	}
	if (out != NULL)
		*out = dir_user_public(op.rec);
	json_decref(op.rec);
	return 0;
}

int
dir_user_get(struct dir *d, const char *address, json_t **out)
{
	char	addr[DIR_ADDRESS_MAX + 1];

	*out = NULL;
	if (dir_address_norm(addr, address, NULL) < 0) {
		err_set(ERR_NOTFOUND, "no such user");
		return ERR_NOTFOUND;
	}
	return dir_read_one(d, d->users, addr, out);
}

static int
dir_user_update_cb(MDB_txn *txn, void *arg)
{
	struct dir_user_op	*op = arg;
	json_t			*rec;
	int			 rc;

	json_decref(op->out);
	op->out = NULL;
	if ((rc = dir_get_json(txn, op->d->users, op->address, &rec)) < 0)
		return rc;
	json_object_update_existing(rec, op->rec);
	json_object_set_new(rec, "updated", json_integer(time(NULL)));
	if ((rc = dir_put_json(txn, op->d->users, op->address, rec, 0)) < 0) {
		json_decref(rec);
		return rc;
	}
	op->out = rec;
	return 0;
}

int
dir_user_update(struct dir *d, const char *address, json_t *patch,
    json_t **out)
{
	char			 addr[DIR_ADDRESS_MAX + 1];
	struct dir_user_op	 op = { d, addr, NULL, NULL };
	const char		*key, *st;
	json_t			*val;
	int			 rc;

	if (dir_address_norm(addr, address, NULL) < 0) {
		err_set(ERR_NOTFOUND, "no such user");
		return ERR_NOTFOUND;
	}
	json_object_foreach(patch, key, val) {
		if (strcmp(key, "display_name") == 0) {
			if (!json_is_string(val) ||
			    strlen(json_string_value(val)) > DIR_DISPLAY_MAX) {
				err_set(ERR_INVAL, "display_name: a string of "
				    "at most %d bytes", DIR_DISPLAY_MAX);
				return ERR_INVAL;
			}
		} else if (strcmp(key, "roles") == 0) {
			if (!dir_roles_ok(val))
				return ERR_INVAL;
		} else if (strcmp(key, "status") == 0) {
			st = json_string_value(val);
			if (st == NULL || (strcmp(st, "active") != 0 &&
			    strcmp(st, "suspended") != 0)) {
				err_set(ERR_INVAL, "status: active or "
				    "suspended");
				return ERR_INVAL;
			}
		} else if (strcmp(key, "password") == 0) {
			if (!json_is_string(val)) {
				err_set(ERR_INVAL, "password: a hash");
				return ERR_INVAL;
			}
		} else {
			err_set(ERR_INVAL, "%s: not a field that can be "
			    "changed", key);
			return ERR_INVAL;
		}
	}
	op.rec = patch;
	if ((rc = dir_write(d, dir_user_update_cb, &op)) < 0)
		return rc;
	if (out != NULL)
		*out = dir_user_public(op.out);
	json_decref(op.out);
	return 0;
}

static int
dir_user_delete_cb(MDB_txn *txn, void *arg)
{
	struct dir_user_op	*op = arg;
	MDB_val			 k = dir_key(op->address);
	int			 rc;

	if ((rc = mdb_del(txn, op->d->users, &k, NULL)) != 0) {
		if (rc == MDB_NOTFOUND) {
			err_set(ERR_NOTFOUND, "no such user");
			return ERR_NOTFOUND;
		}
		return db_err(rc, "delete user");
	}
	return 0;
}

int
dir_user_delete(struct dir *d, const char *address)
{
	char			addr[DIR_ADDRESS_MAX + 1];
	struct dir_user_op	op = { d, addr, NULL, NULL };

	if (dir_address_norm(addr, address, NULL) < 0) {
		err_set(ERR_NOTFOUND, "no such user");
		return ERR_NOTFOUND;
	}
	return dir_write(d, dir_user_delete_cb, &op);
}

int
dir_user_list(struct dir *d, const char *dept, json_t **out)
{
	json_t	*all, *u, *pub;
	size_t	 i;
	int	 rc;

	if ((rc = dir_scan(d, d->users, dept ? "dept" : NULL, dept,
	    &all)) < 0)
		return rc;
	*out = json_array();
	json_array_foreach(all, i, u) {
		pub = dir_user_public(u);
		json_array_append_new(*out, pub);
	}
	json_decref(all);
	return 0;
}

/* ------------------------------------------------------------ principals */

struct dir_put_op {
	MDB_dbi		 dbi;
	const char	*key;
	json_t		*rec;
	unsigned	 flags;
};

static int
dir_put_cb(MDB_txn *txn, void *arg)
{
	struct dir_put_op	*op = arg;

	return dir_put_json(txn, op->dbi, op->key, op->rec, op->flags);
}

int
dir_principal_put(struct dir *d, const char *name, const char *role)
{
	struct dir_put_op	op = { d->principals, name, NULL, 0 };
	int			rc;

	if (strlen(name) == 0 || strlen(name) > DIR_PRINCIPAL_MAX ||
	    strchr(name, '@') != NULL) {
		err_set(ERR_INVAL, "principal: 1-%d bytes, no '@'",
		    DIR_PRINCIPAL_MAX);
		return ERR_INVAL;
	}
	op.rec = json_pack("{s:i,s:s,s:s}", "v", DIR_RECORD_VERSION, "name",
	    name, "role", role);
	rc = dir_write(d, dir_put_cb, &op);
	json_decref(op.rec);
	return rc;
}

int
dir_principal_get(struct dir *d, const char *name, json_t **out)
{
	*out = NULL;
	if (strlen(name) == 0 || strlen(name) > DIR_PRINCIPAL_MAX) {
		err_set(ERR_NOTFOUND, "no such principal");
		return ERR_NOTFOUND;
	}
	return dir_read_one(d, d->principals, name, out);
}

/* ------------------------------------------------------------ certs */

static int
dir_serial_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > 40)
		return 0;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) ||
		    isupper((unsigned char)s[i]))
			return 0;
	return 1;
}

int
dir_cert_put(struct dir *d, json_t *rec)
{
	struct dir_put_op	op = { d->certs, NULL, rec, MDB_NOOVERWRITE };

	op.key = json_string_value(json_object_get(rec, "serial"));
	if (op.key == NULL || !dir_serial_ok(op.key)) {
		err_set(ERR_INVAL, "serial: lower-case hex");
		return ERR_INVAL;
	}
	return dir_write(d, dir_put_cb, &op);
}

int
dir_cert_get(struct dir *d, const char *serial, json_t **out)
{
	*out = NULL;
	if (!dir_serial_ok(serial)) {
		err_set(ERR_NOTFOUND, "no such certificate");
		return ERR_NOTFOUND;
	}
	return dir_read_one(d, d->certs, serial, out);
}

int
dir_cert_list(struct dir *d, const char *address, json_t **out)
{
	return dir_scan(d, d->certs, "address", address, out);
}

int
dir_cert_by_subject(struct dir *d, const char *subject, json_t **out)
{
	return dir_scan(d, d->certs, "subject", subject, out);
}

int
dir_cert_revoked(struct dir *d, json_t **out)
{
	return dir_scan(d, d->certs, "status", "revoked", out);
}

struct dir_revoke_op {
	struct dir	*d;
	const char	*serial;
	const char	*reason;
	int64_t		 when;
	json_t		*out;
};

static int
dir_revoke_cb(MDB_txn *txn, void *arg)
{
	struct dir_revoke_op	*op = arg;
	json_t			*rec;
	int			 rc;

	json_decref(op->out);
	op->out = NULL;
	if ((rc = dir_get_json(txn, op->d->certs, op->serial, &rec)) < 0)
		return rc;
	if (strcmp(json_string_value(json_object_get(rec, "status")) ?: "",
	    "revoked") == 0) {
		json_decref(rec);
		err_set(ERR_EXISTS, "certificate %s is already revoked",
		    op->serial);
		return ERR_EXISTS;
	}
	json_object_set_new(rec, "status", json_string("revoked"));
	json_object_set_new(rec, "revoked_at", json_integer(op->when));
	json_object_set_new(rec, "reason", json_string(op->reason));
	if ((rc = dir_put_json(txn, op->d->certs, op->serial, rec, 0)) < 0) {
		json_decref(rec);
		return rc;
	}
	op->out = rec;
	return 0;
}

int
dir_cert_revoke(struct dir *d, const char *serial, const char *reason,
    int64_t when, json_t **out)
{
	struct dir_revoke_op	op = { d, serial, reason, when, NULL };
	int			rc;

	if (!dir_serial_ok(serial)) {
		err_set(ERR_NOTFOUND, "no such certificate");
		return ERR_NOTFOUND;
	}
	rc = dir_write(d, dir_revoke_cb, &op);
	if (rc == 0 && out != NULL)
		*out = op.out;
	else
		json_decref(op.out);
	return rc;
}

/* ------------------------------------------------------------ escrow, meta */

struct dir_raw_op {
	MDB_dbi		 dbi;
	const char	*key;
	const char	*value;
	char		*out;
	uint64_t	 counter;
};

static int
dir_escrow_put_cb(MDB_txn *txn, void *arg)
{
	struct dir_raw_op	*op = arg;
	MDB_val			 k = dir_key(op->key), v = dir_key(op->value);
	int			 rc;

	if ((rc = mdb_put(txn, op->dbi, &k, &v, MDB_NOOVERWRITE)) != 0) {
		if (rc == MDB_KEYEXIST) {
			err_set(ERR_EXISTS, "escrow for %s exists", op->key);
			return ERR_EXISTS;
		}
		return db_err(rc, "write escrow");
	}
	return 0;
}

int
dir_escrow_put(struct dir *d, const char *serial, const char *wrapped)
{
	struct dir_raw_op	op = { d->escrow, serial, wrapped, NULL, 0 };

	return dir_write(d, dir_escrow_put_cb, &op);
}

static int
dir_escrow_get_cb(MDB_txn *txn, void *arg)
{
	struct dir_raw_op	*op = arg;
	MDB_val			 k = dir_key(op->key), v;
	int			 rc;

	if ((rc = mdb_get(txn, op->dbi, &k, &v)) != 0) {
		if (rc == MDB_NOTFOUND) {
			err_set(ERR_NOTFOUND, "no escrowed key for %s",
			    op->key);
			return ERR_NOTFOUND;
		}
		return db_err(rc, "read escrow");
	}
	if (v.mv_size > DIR_RECORD_MAX) {
		err_set(ERR_IO, "stored escrow %s is corrupt", op->key);
		return ERR_IO;
	}
	op->out = xstrndup(v.mv_data, v.mv_size);
	return 0;
}

int
dir_escrow_get(struct dir *d, const char *serial, char **out)
{
	struct dir_raw_op	op = { d->escrow, serial, NULL, NULL, 0 };
	int			rc;

	*out = NULL;
	if ((rc = db_read(d->env, dir_escrow_get_cb, &op)) == 0)
		*out = op.out;
	return rc;
}

static int
dir_counter_cb(MDB_txn *txn, void *arg)
{
	struct dir_raw_op	*op = arg;
	MDB_val			 k = dir_key(op->key), v;
	uint64_t		 n = 0;
	int			 rc;

	rc = mdb_get(txn, op->dbi, &k, &v);
	if (rc == 0 && v.mv_size == sizeof(n))
		memcpy(&n, v.mv_data, sizeof(n));
	else if (rc == 0) {
		err_set(ERR_IO, "stored counter %s is corrupt", op->key);
		return ERR_IO;
	} else if (rc != MDB_NOTFOUND)
		return db_err(rc, "read counter");
	n++;
	v.mv_data = &n;
	v.mv_size = sizeof(n);
	if ((rc = mdb_put(txn, op->dbi, &k, &v, 0)) != 0)
		return db_err(rc, "write counter");
	op->counter = n;
	return 0;
}

int
dir_counter_next(struct dir *d, const char *name, uint64_t *out)
{
	struct dir_raw_op	op = { d->meta, name, NULL, NULL, 0 };
	int			rc;

	if ((rc = dir_write(d, dir_counter_cb, &op)) == 0)
		*out = op.counter;
	return rc;
}
