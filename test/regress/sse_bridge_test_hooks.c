/*
 * sse_bridge_test_hooks.c
 *		Test-only C functions for the pg_regress suite (sql/security.sql).
 *
 * Installed into $libdir by "make installcheck" (test/regress/Makefile) and
 * loaded by name; "make install" never installs it.  Type input and output functions can only be
 * written in C, by a superuser, so the suite needs one to show what a
 * type's output function runs as.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(regress_hook_out);

/*
 * Output function of a text-like type that first calls a hook function
 * someone else may own, public.regress_sse_type_hook(), the way a type's
 * output could call back into SQL.
 */
Datum
regress_hook_out(PG_FUNCTION_ARGS)
{
	char	   *s = TextDatumGetCString(PG_GETARG_DATUM(0));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT public.regress_sse_type_hook()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "calling the hook failed");
	SPI_finish();
	PG_RETURN_CSTRING(s);
}
