/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the responder's HTTP helpers (http.c is included to reach its statics). */
/* Before cmocka.h, whose fail() macro would rename http.c's fail(). */
#include "../../responder/http.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* The globals main.c defines. */
struct worker *g_workers;
int g_nworkers;
struct vg_store *g_store;
atomic_int g_open_conns;
int g_access_fd = -1;
atomic_bool g_drain;

static void test_etag_match(void **state)
{
	(void)state;
	const char *tag = "\"0123abcd\"";
	assert_true(etag_match("\"0123abcd\"", tag));
	assert_true(etag_match("W/\"0123abcd\"", tag)); /* weak comparison for If-None-Match */
	assert_true(etag_match("\"x\", \"0123abcd\"", tag));
	assert_true(etag_match("\"x\",\"0123abcd\" ,\"y\"", tag));
	assert_true(etag_match("*", tag));
	assert_false(etag_match("\"0123abc\"", tag));
	assert_false(etag_match("\"0123abcd", tag));
	assert_false(etag_match("", tag));
	assert_false(etag_match("  ,  ", tag));
	assert_false(etag_match("\"0123abcdX\"", tag));
}

static void test_pct_decode(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(pct_decode("MEow%2B%2F%3D", 13, out), 7);
	assert_string_equal(out, "MEow+/=");
	assert_int_equal(pct_decode("a%2fb", 5, out), 3);
	assert_string_equal(out, "a/b");
	assert_int_equal(pct_decode("plain+/=", 8, out), 8);
	assert_string_equal(out, "plain+/=");
	assert_int_equal(pct_decode("bad%2", 5, out), -1);
	assert_int_equal(pct_decode("bad%", 4, out), -1);
	assert_int_equal(pct_decode("bad%zz", 6, out), -1);
	assert_int_equal(pct_decode("", 0, out), 0);
}

static void test_http_date(void **state)
{
	(void)state;
	char buf[40];
	http_date(0, buf, sizeof(buf));
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	http_date(784111777, buf, sizeof(buf)); /* RFC 9110's example */
	assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_etag_match),
	    cmocka_unit_test(test_pct_decode),
	    cmocka_unit_test(test_http_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
