/*
 * err.h -- error codes and the per-thread error message.
 *
 * A function that can fail returns int: 0 on success, a negative enum err
 * on failure, and may leave one line of context with err_set().  Callers
 * propagate the code; the message is read with err_msg() on the same
 * thread, before the next err_set().
 */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

enum err {
	ERR_OK = 0,
	ERR_GENERIC = -1,	/* anything not named below */
	ERR_AGAIN = -2,		/* need more input */
	ERR_NOTFOUND = -3,
	ERR_EXISTS = -4,
	ERR_TOOBIG = -5,	/* a named limit was reached */
	ERR_PROTO = -6,		/* peer broke the protocol */
	ERR_LOCKED = -7,
	ERR_INVAL = -8,		/* bad argument or configuration */
	ERR_PERM = -9,		/* not allowed */
	ERR_IO = -10,		/* system call failed (errno kept in msg) */
};

#define ERR_MSG_MAX	512

void		 err_set(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 err_clear(void);
const char	*err_msg(void);
int		 err_code(void);
const char	*err_name(int);

#endif
