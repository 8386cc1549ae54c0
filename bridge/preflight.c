/*
 * preflight.c - judge what the database check found, say what to run.
 *
 * The lines name the role and the database and give the exact statement:
 * GRANT ... TO role, CREATE EXTENSION sse_bridge, ALTER EXTENSION
 * sse_bridge UPDATE.  A missing grant is a setup mistake, not an outage, so
 * nothing here speaks of timeouts or unavailability; the 503 detail a
 * client sees says the bridge is misconfigured and no more (role and
 * object names stay in the log).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "preflight.h"

static struct {
	bool		bad;			/* something is missing (last judgement) */
	bool		judged;			/* a judgement was made */
	char		said[4096];		/* the problem lines last logged, joined */
	char		problem[256];	/* for /healthz */
	char		unavailable[400];	/* for stream opens */
} pf;

/* Append one problem line to buf (lines separated by '\n'). */
static void
pf_add(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
pf_add(char *buf, size_t size, const char *fmt, ...)
{
	size_t		len = strlen(buf);
	va_list		ap;

	if (len + 2 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + len, size - len - 1, fmt, ap);
	va_end(ap);
	len = strlen(buf);
	buf[len] = '\n';
	buf[len + 1] = '\0';
}

/* Append a part of the /healthz problem ("; " between parts). */
static void
pf_part(char *buf, size_t size, const char *part)
{
	size_t		len = strlen(buf);

	snprintf(buf + len, size - len, "%s%s", len > 0 ? "; " : "", part);
}

/* extversion is at least the minimum (an unreadable version passes). */
static bool
pf_version_ok(const char *v)
{
	int			major, minor;

	if (sscanf(v, "%d.%d", &major, &minor) != 2)
		return true;
	return major > PREFLIGHT_MIN_MAJOR ||
		(major == PREFLIGHT_MIN_MAJOR && minor >= PREFLIGHT_MIN_MINOR);
}

bool
preflight_judge(const preflight_facts *f)
{
	char		lines[sizeof(pf.said)] = "";
	bool		old = f->version != NULL && !pf_version_ok(f->version);
	size_t		grants = 0, lost = 0;

	if (f->version == NULL)
		pf_add(lines, sizeof(lines), "database %s has no sse_bridge extension; "
			   "install it with: CREATE EXTENSION sse_bridge;", f->db);
	else if (old)
		pf_add(lines, sizeof(lines), "database %s has sse_bridge %s, this bridge needs "
			   PREFLIGHT_MIN_VERSION " or later; update it with: "
			   "ALTER EXTENSION sse_bridge UPDATE;", f->db, f->version);
	for (size_t i = 0; f->version != NULL && i < f->n; i++) {
		const preflight_item *it = &f->items[i];

		if (!it->exists) {
			if (!old) {			/* an older version lacks it: the update adds it */
				pf_add(lines, sizeof(lines), "database %s has sse_bridge %s without %s; "
					   "its objects were changed by hand", f->db, f->version, it->name);
				lost++;
			}
			continue;
		}
		if (it->granted)
			continue;
		grants++;
		switch (it->kind) {
			case PF_SCHEMA:
				pf_add(lines, sizeof(lines), "role %s has no USAGE on schema %s; "
					   "grant it with: GRANT USAGE ON SCHEMA %s TO %s;",
					   f->role, it->name, it->name, f->role);
				break;
			case PF_TABLE:
				pf_add(lines, sizeof(lines), "role %s may not read %s; "
					   "grant it with: GRANT SELECT ON %s TO %s;",
					   f->role, it->name, it->name, f->role);
				break;
			case PF_FUNCTION:
				pf_add(lines, sizeof(lines), "role %s may not execute %s; "
					   "grant it with: GRANT EXECUTE ON FUNCTION %s TO %s;",
					   f->role, it->name, it->name, f->role);
				break;
		}
	}
	if (lines[0] == '\0') {
		if (pf.bad || !pf.judged)
			log_info("setup checked: database %s, role %s, sse_bridge %s: every privilege "
					 "the bridge needs is granted", f->db, f->role, f->version);
		pf.bad = false;
		pf.judged = true;
		pf.said[0] = '\0';
		return true;
	}
	pf.judged = true;
	pf.bad = true;
	pf.problem[0] = '\0';
	if (f->version == NULL)
		pf_part(pf.problem, sizeof(pf.problem),
				"the sse_bridge extension is not installed in the bridge's database");
	if (old)
		pf_part(pf.problem, sizeof(pf.problem),
				"the sse_bridge extension needs ALTER EXTENSION sse_bridge UPDATE");
	if (lost > 0)
		pf_part(pf.problem, sizeof(pf.problem), "objects of the extension are missing");
	if (grants > 0)
		pf_part(pf.problem, sizeof(pf.problem), grants == 1 ? "a privilege is missing"
				: "privileges are missing");
	snprintf(pf.unavailable, sizeof(pf.unavailable), "the bridge is misconfigured: %s; "
			 "its log says what to run", pf.problem);
	if (strcmp(lines, pf.said) == 0)
		return false;			/* said already */
	memcpy(pf.said, lines, sizeof(pf.said));
	for (char *line = lines, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		log_error("misconfigured: %s", line);
	}
	log_warn("misconfigured: /healthz answers 503 and streams are refused until this is "
			 "fixed; checking again every %d s", DB_HOLD_MS / 1000);
	return false;
}

const char *
preflight_problem(void)
{
	return pf.bad ? pf.problem : NULL;
}

void
preflight_adopt(const char *problem, const char *unavailable)
{
	pf.judged = true;
	pf.bad = problem != NULL;
	if (problem != NULL) {
		snprintf(pf.problem, sizeof(pf.problem), "%s", problem);
		snprintf(pf.unavailable, sizeof(pf.unavailable), "%s", unavailable);
	}
}

const char *
preflight_unavailable(void)
{
	return pf.bad ? pf.unavailable : "the database is unavailable";
}
