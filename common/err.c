/*
 * err.c -- per-thread error message.
 *
 * Runs in: every process, any thread (the message is thread-local).
 * Failure policy: none; a message longer than ERR_MSG_MAX is truncated.
 * SECURITY: callers must not put secrets in messages; they end up in logs.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"

static _Thread_local char	err_buf[ERR_MSG_MAX];
static _Thread_local int	err_last;

void
err_set(int code, const char *fmt, ...)
{
	va_list	ap;

	err_last = code;
	va_start(ap, fmt);
	(void)vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
}

void
err_clear(void)
{
	err_last = 0;
	err_buf[0] = '\0';
}

const char *
err_msg(void)
{
	return err_buf[0] != '\0' ? err_buf : err_name(err_last);
}

int
err_code(void)
{
	return err_last;
}

const char *
err_name(int code)
{
	switch (code) {
	case ERR_OK:		return "ok";
	case ERR_AGAIN:		return "need more input";
	case ERR_NOTFOUND:	return "not found";
	case ERR_EXISTS:	return "already exists";
	case ERR_TOOBIG:	return "too big";
	case ERR_PROTO:		return "protocol error";
	case ERR_LOCKED:	return "locked";
	case ERR_INVAL:		return "invalid";
	case ERR_PERM:		return "not permitted";
	case ERR_IO:		return "i/o error";
	default:		return "error";
	}
}
