/*
 * test_authoom.c - an allocation failure while a token is checked never
 * turns a valid token into a refusal.  For every k, the kth allocation of
 * auth_route fails (bridge/mem.h's injector), until it runs without
 * reaching k; each run starts with an empty cache, so the whole
 * verification runs.  The answer must be the one without failures or 503
 * "unavailable", never 401, 403 or 400; nothing may leak (LeakSanitizer).
 * Allocations inside OpenSSL are not injected (it is a shared library).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "test_util.h"
#include "auth.h"
#include "config.h"
#include "mem.h"
#include "request.h"
#include "route.h"
#include "scope.h"

#define MAX_K 100000

static const char secret[] = "a-secret-of-more-than-thirty-two-bytes";
static char keyfile[] = "/tmp/sse_authoom_XXXXXX";

static char *
b64url(const unsigned char *in, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char	   *out = malloc(len * 4 / 3 + 4), *o = out;
	size_t		i;

	for (i = 0; i + 2 < len; i += 3) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = tab[in[i + 2] & 63];
	}
	if (len - i == 1) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = tab[(in[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

/* An HS256 token for payload (a static buffer). */
static const char *
token(const char *payload)
{
	static char tok[4096];
	char	   *h = b64url((const unsigned char *) "{\"alg\":\"HS256\"}", 15);
	char	   *p = b64url((const unsigned char *) payload, strlen(payload));
	unsigned char mac[32];
	unsigned int mlen = 0;
	char	   *s;

	snprintf(tok, sizeof(tok), "%s.%s", h, p);
	HMAC(EVP_sha256(), secret, (int) strlen(secret), (unsigned char *) tok, strlen(tok), mac, &mlen);
	s = b64url(mac, mlen);
	strcat(tok, ".");
	strcat(tok, s);
	free(h);
	free(p);
	free(s);
	return tok;
}

static int
setup(void **state)
{
	char		err[256];
	int			fd = mkstemp(keyfile);

	(void) state;
	mem_init();
	if (fd < 0 || write(fd, secret, strlen(secret)) != (ssize_t) strlen(secret))
		return -1;
	close(fd);
	cfg.jwt_key = keyfile;
	cfg.jwt_alg = (char *) "HS256";
	cfg.jwt_issuer = (char *) "";
	cfg.jwt_audience = (char *) "";
	cfg.jwt_cookie = (char *) "sse_token";
	cfg.jwt_leeway_ms = 30000;
	return auth_init(err, sizeof(err)) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void) state;
	auth_shutdown();
	unlink(keyfile);
	return 0;
}

static void
check_head(const scope *pub, const char *head, route_kind want_kind)
{
	req			r;
	route_result want;
	auth_grant *g = NULL;
	uint64_t	k, clean = 0;

	req_init(&r, 16384);
	assert_int_equal(req_feed(&r, head, strlen(head)), REQ_DONE);
	auth_reload();
	auth_route(&r, pub, &want, &g);
	if (want.kind != want_kind)
		fail_msg("without failures: kind %d, status %d %s %s", want.kind, want.status,
				 want.error ? want.error : "", want.detail);
	assert_non_null(g);
	auth_grant_unref(g);
	for (k = 1; clean == 0 && k < MAX_K; k++) {
		route_result rr;
		uint64_t	inj = mem_injected();

		auth_reload();			/* an empty cache: verify again */
		g = NULL;
		mem_fail_at(k);
		auth_route(&r, pub, &rr, &g);
		mem_fail_every(0);
		if (mem_injected() == inj) {
			clean = k;
			assert_int_equal(rr.kind, want.kind);
			assert_non_null(g);
		} else if (rr.kind == ROUTE_ERROR) {
			if (rr.status != 503)
				fail_msg("allocation %" PRIu64 " failed: %d %s %s", k, rr.status, rr.error, rr.detail);
			assert_string_equal(rr.error, "unavailable");
			assert_null(g);
		} else
			assert_int_equal(rr.kind, want.kind);
		auth_grant_unref(g);
		route_result_free(&rr);
	}
	assert_true(clean > 0);
	print_message("auth: %" PRIu64 " allocation points\n", clean - 1);
	route_result_free(&want);
	req_free(&r);
}

static void
test_auth_route(void **state)
{
	char		err[128], payload[512], head[8192];
	scope	   *pub = scope_new("pub.#", err, sizeof(err));
	long long	exp = (long long) time(NULL) + 600;

	(void) state;
	assert_non_null(pub);
	snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"exp\":%lld,\"sse\":{\"channels\":[\"job.*\",\"x.#\"],"
			 "\"filter\":{\"tenant\":42,\"tags\":[\"a\"]}}}", exp);
	snprintf(head, sizeof(head), "GET /events?channel=job.1&channel=pub.a&filter=%%7B%%22tags%%22%%3A%%5B%%22b%%22%%5D%%7D"
			 " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n", token(payload));
	check_head(pub, head, ROUTE_ADHOC);
	snprintf(head, sizeof(head), "GET /events?channel=pub.a HTTP/1.1\r\nHost: t\r\n"
			 "Cookie: a=b; sse_token=%s\r\n\r\n", token(payload));
	check_head(pub, head, ROUTE_ADHOC);
	snprintf(head, sizeof(head), "GET /events/0a2b3c4d-0000-4000-8000-00000000000f HTTP/1.1\r\nHost: t\r\n"
			 "Authorization: Bearer %s\r\n\r\n", token(payload));
	check_head(pub, head, ROUTE_SUB);
	scope_free(pub);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_route),
	};

	return cmocka_run_group_tests_name("authoom", tests, setup, teardown);
}
