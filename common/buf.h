/*
 * buf.h -- a growable byte buffer with a hard maximum.
 *
 * Appending past max returns ERR_TOOBIG and leaves the buffer unchanged;
 * the buffer never grows beyond max.  data is always NUL-terminated (one
 * byte beyond len is kept free) so text can be used as a C string.
 */
#ifndef COMMON_BUF_H
#define COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	unsigned char	*data;
	size_t		 len;
	size_t		 cap;
	size_t		 max;
};

void	buf_init(struct buf *, size_t);
int	buf_append(struct buf *, const void *, size_t);
int	buf_putc(struct buf *, int);
int	buf_vprintf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
int	buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	buf_consume(struct buf *, size_t);
void	buf_reset(struct buf *);
void	buf_free(struct buf *);
void	buf_free_secret(struct buf *);
/* Take ownership of the data (NUL-terminated; *len_out may be NULL). */
char	*buf_steal(struct buf *, size_t *);

#endif
