/*
 * smtp.h -- the SMTP server's session, shared by smtp_session.c (commands
 * and state), smtp_data.c (message content: DATA, BDAT, header fix-ups,
 * queueing) and smtp_auth.c (AUTH PLAIN and LOGIN).
 */
#ifndef MAILSRV_SMTP_H
#define MAILSRV_SMTP_H

#include <stdint.h>

#include "common/buf.h"
#include "common/line.h"
#include "common/net.h"
#include "mailsrv/limits.h"
#include "mailsrv/mailsrv.h"
#include "mailsrv/queue/queue.h"

enum smtp_state {
	SMTP_S_GREETED = 0,	/* waiting for EHLO/HELO */
	SMTP_S_HELO,		/* EHLO/HELO done, no transaction */
	SMTP_S_MAIL,		/* MAIL FROM accepted */
	SMTP_S_DATA,		/* receiving DATA lines */
	SMTP_S_BDAT,		/* receiving a BDAT chunk */
	SMTP_S_AUTH,		/* SASL exchange in progress */
	SMTP_S_QUIT,		/* closing */
};

enum smtp_fail {
	SMTP_FAIL_NONE = 0,
	SMTP_FAIL_SIZE,		/* over max_message_size */
	SMTP_FAIL_BARE,		/* bare CR or LF in DATA */
	SMTP_FAIL_LINE,		/* DATA line too long */
	SMTP_FAIL_IO,		/* queue write failed */
};

struct smtp_tx {
	struct queue_env	 env;
	size_t			 rcpts_cap;
	struct queue_writer	*w;
	enum smtp_fail		 fail;
	uint64_t		 size;		/* content bytes seen */
	struct line_reader	 dlr;		/* DATA lines */
	struct buf		 hdr;		/* header section, buffered */
	int			 in_body;
	int			 has_msgid;
	int			 has_date;
	int			 chunking;	/* BDAT used */
	int			 direct;	/* stored, not queued */
};

struct smtp_session {
	struct mailsrv		*ms;
	struct net_conn		*c;
	enum smtp_service	 svc;
	enum smtp_state		 state;
	struct line_reader	 lr;
	int			 nerrors;
	unsigned		 ncommands;
	unsigned		 ntx;
	int			 esmtp;
	char			 helo[SMTP_HELO_MAX + 1];
	char			 user[SMTP_ADDR_MAX + 1];	/* AUTH */
	int			 authenticated;
	struct smtp_tx		*tx;
	int			 pending;	/* async calls in flight */
	int			 dead;		/* conn gone meanwhile */
	struct event		*delay_ev;
	char			*delayed;	/* reply sent when it fires */
	/* AUTH LOGIN / PLAIN without initial response */
	int			 auth_mech;
	char			*auth_login;
	/* BDAT */
	uint64_t		 bdat_left;
	int			 bdat_last;
};

void	smtp_reply(struct smtp_session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	smtp_error(struct smtp_session *, const char *);
void	smtp_enter_state(struct smtp_session *, enum smtp_state);
const char	*smtp_hostname(struct smtp_session *);
/* Start/finish an asynchronous step: reading pauses meanwhile. */
void	smtp_async_begin(struct smtp_session *);
/* Returns 0 if the session is alive, -1 if it was freed. */
int	smtp_async_end(struct smtp_session *);
/* Reply after delay_ms, reading paused meanwhile (tarpit, AUTH). */
void	smtp_reply_later(struct smtp_session *, unsigned, const char *);
void	smtp_tx_free(struct smtp_tx **);
/* 1 if the session may start a transaction (auth, queue ready). */
int	smtp_parse_path(char *, size_t, const char *, const char **);

/* smtp_data.c */
int	smtp_data_begin(struct smtp_session *);
void	smtp_data_read(struct smtp_session *, struct evbuffer *);
void	smtp_bdat_read(struct smtp_session *, struct evbuffer *);
void	smtp_cmd_bdat(struct smtp_session *, const char *);

/* smtp_auth.c */
void	smtp_cmd_auth(struct smtp_session *, const char *);
void	smtp_auth_line(struct smtp_session *, const char *);

#endif
