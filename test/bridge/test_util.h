/*
 * test_util.h - cmocka includes and small helpers shared by the bridge's
 * unit tests.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define assert_frame_eq(f, s) do { \
	const char *exp_ = (s); \
	assert_non_null(f); \
	assert_int_equal((f)->len, strlen(exp_)); \
	assert_memory_equal((f)->data, exp_, strlen(exp_)); \
} while (0)

#endif
