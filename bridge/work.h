/*
 * work.h - the second database link: stream opens, replay pages,
 * subscription reloads, and the sse_touch/sse_expire timer.  Keeping these
 * off the live link means a burst of reconnects never delays live delivery.
 *
 * Ownership: work_open/work_page store the submitted job in c->st->job; the
 * client cancels it when it closes, and the job's callback clears it.
 */
#ifndef BRIDGE_WORK_H
#define BRIDGE_WORK_H

#include <stdint.h>

#include "client.h"

#define WORK_PAGE_ROWS 500

void		work_init(void);
void		work_start(void);
void		work_stop(void);

/* Look up head, prune point, close events (and the subscription) for c. */
void		work_open(client *c);
/* Read the next page of the log after c->cursor. */
void		work_page(client *c);
/* Re-read subscription sid and apply it to its streams. */
void		work_reload(int64_t sid);
/* A change notice for sid: count it, and reload sid if a stream uses it. */
void		work_sub_changed(int64_t sid);
/* Re-read every subscription in use: after a re-LISTEN, notices may be lost. */
void		work_reload_all(void);
/* How many subscription change notices (and re-LISTENs) there have been. */
uint64_t	work_sub_changes(void);

/* Shared with the live link: the log read of docs/design.md. */
extern const char *const work_fetch_sql;

#endif
