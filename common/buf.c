/*
 * buf.c -- bounded byte buffers.
 *
 * Runs in: every process.
 * Failure policy: ERR_TOOBIG when max would be exceeded (buffer unchanged);
 * OOM is fatal (xmalloc).
 * SECURITY: buf_free_secret() wipes the whole capacity before freeing.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

/*
 * Make room for n more bytes plus the trailing NUL.  The capacity never
 * exceeds max + 1 (lim), even for a small max, and max == SIZE_MAX must
 * not wrap lim to 0.
 */
static int
buf_reserve(struct buf *b, size_t n)
{
	size_t	need, ncap, lim;

	if (n > b->max || b->len > b->max - n || b->len + n == SIZE_MAX) {
		err_set(ERR_TOOBIG, "buffer limit of %zu bytes reached",
		    b->max);
		return ERR_TOOBIG;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	lim = b->max == SIZE_MAX ? SIZE_MAX : b->max + 1;
	ncap = b->cap ? b->cap : 64;
	if (ncap > lim)
		ncap = lim;
	while (ncap < need)
		ncap = ncap > lim / 2 ? lim : ncap * 2;
	b->data = xreallocarray(b->data, ncap, 1);
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	int	rc;

	if ((rc = buf_reserve(b, n)) < 0)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_putc(struct buf *b, int c)
{
	unsigned char	ch = (unsigned char)c;

	return buf_append(b, &ch, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list	ap2;
	int	n, rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		err_set(ERR_INVAL, "bad format");
		return ERR_INVAL;
	}
	if ((rc = buf_reserve(b, (size_t)n)) < 0)
		return rc;
	(void)vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data != NULL)
		b->data[b->len] = '\0';
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
buf_free_secret(struct buf *b)
{
	xfreezero(b->data, b->cap);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *
buf_steal(struct buf *b, size_t *len_out)
{
	char	*p;

	if (b->data == NULL) {
		/* never hand out NULL or unterminated memory */
		(void)buf_reserve(b, 0);
		b->data[0] = '\0';
	}
	p = (char *)b->data;
	if (len_out != NULL)
		*len_out = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
