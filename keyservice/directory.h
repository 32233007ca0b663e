/*
 * directory.h -- departments, domains, users, principals, certificates
 * and escrowed keys, in the keyservice LMDB environment.
 *
 * Records are JSON objects stored as text (versioned by a "v" member), in
 * named databases:
 *   depts	name -> {"v","name","display_name","domains","created"}
 *   domains	domain -> dept name
 *   users	address -> {"v","address","dept","display_name","roles",
 *		"status","password","created","updated"}
 *   principals	CN -> {"v","name","role"}  (admin, services)
 *   certs	serial -> {"v","serial","kind","subject","address"?,
 *		"not_before","not_after","status","revoked_at"?,"reason"?,
 *		"pem"}
 *   escrow	serial -> wrapped private key (keys.h text)
 *   meta	name -> u64 counters (crl_number)
 * Stored JSON is untrusted on read: a record that does not parse or lacks
 * a member is ERR_IO naming its key.
 *
 * Runs in: keyservice, event loop thread (and node init).
 * Failure policy: ERR_INVAL for bad input (err_msg names the field),
 * ERR_EXISTS, ERR_NOTFOUND, ERR_IO for storage.
 * SECURITY: password hashes stay in here; dir_user_public() strips them.
 */
#ifndef KEYSERVICE_DIRECTORY_H
#define KEYSERVICE_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/db.h"

#define DIR_ADDRESS_MAX		254
#define DIR_LOCAL_MAX		64
#define DIR_DOMAIN_MAX		253
#define DIR_DEPT_MAX		32
#define DIR_DISPLAY_MAX		128
#define DIR_DOMAINS_MAX		32	/* domains per department */
#define DIR_PRINCIPAL_MAX	64

struct dir;

int	dir_open(struct dir **, struct db_env *);
/*
 * A counter bumped by every write through this handle: what was derived
 * from the directory (cached callers) is stale once it changes.
 */
uint64_t	dir_epoch(struct dir *);
void	dir_close(struct dir **);
struct db_env	*dir_env(struct dir *);

/*
 * Validate and normalise (lower-case) an address into out
 * (DIR_ADDRESS_MAX + 1 bytes); *domain_out points into out.
 */
int	dir_address_norm(char *, const char *, const char **);
int	dir_dept_name_ok(const char *);
int	dir_domain_ok(const char *);

int	dir_dept_add(struct dir *, const char *, const char *, json_t *,
	    json_t **);
int	dir_dept_get(struct dir *, const char *, json_t **);
int	dir_dept_list(struct dir *, json_t **);
/* The department of a domain (out: DIR_DEPT_MAX + 1 bytes). */
int	dir_domain_dept(struct dir *, const char *, char *);

/*
 * Add a user: address is normalised, its domain must belong to a
 * department; roles a JSON array of "user", "dept-admin",
 * "security-officer" (NULL: ["user"]); pwhash a PHC string.
 */
int	dir_user_add(struct dir *, const char *, const char *, json_t *,
	    const char *, json_t **);
/* The full record (with "password"): the caller owns the reference. */
int	dir_user_get(struct dir *, const char *, json_t **);
/* A copy without the password hash. */
json_t	*dir_user_public(json_t *);
/*
 * Update: patch may hold "display_name", "roles", "status"
 * ("active"/"suspended") and "password" (a PHC string).  *out is the new
 * public record (may be NULL).
 */
int	dir_user_update(struct dir *, const char *, json_t *, json_t **);
int	dir_user_delete(struct dir *, const char *);
/* Public records of a department's users (dept NULL: all), by address. */
int	dir_user_list(struct dir *, const char *, json_t **);
/* 1 if the user record has the role. */
int	dir_user_has_role(json_t *, const char *);

int	dir_principal_put(struct dir *, const char *, const char *);
int	dir_principal_get(struct dir *, const char *, json_t **);

/* Certificates: rec must have "serial". */
int	dir_cert_put(struct dir *, json_t *);
int	dir_cert_get(struct dir *, const char *, json_t **);
/* Certificates of an address (any kind, any status). */
int	dir_cert_list(struct dir *, const char *, json_t **);
/* Certificates whose subject CN is exactly subject. */
int	dir_cert_by_subject(struct dir *, const char *, json_t **);
/* Revoke: ERR_EXISTS if already revoked. *out the new record. */
int	dir_cert_revoke(struct dir *, const char *, const char *, int64_t,
	    json_t **);
/* Every revoked certificate record. */
int	dir_cert_revoked(struct dir *, json_t **);

int	dir_escrow_put(struct dir *, const char *, const char *);
/* *out is xstrdup'ed; caller frees. */
int	dir_escrow_get(struct dir *, const char *, char **);

/* Increment and return a named counter (first value 1). */
int	dir_counter_next(struct dir *, const char *, uint64_t *);

#endif
