/*
 * fuzz_jwt.c - libFuzzer target: the token parser (jwt.c) and the AND of
 * filters (filtjson.c).
 *
 * The first byte picks what the rest is:
 *   0  a whole token, verified against an HS256 key (size, shape,
 *      base64url, header JSON, kid and alg are reached; a forged
 *      signature is not expected to verify);
 *   1  a payload, signed here with the key and then verified, so the
 *      claims and the "sse" grant are parsed whatever they hold;
 *   2  two filters separated by a newline, ANDed.
 * Invariants checked: a token that verifies has a non-empty sub, granted
 * patterns that pass sse_pattern_check and a filter that compiles; an AND
 * that succeeds gives JSON text; nothing leaks (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "filtjson.h"
#include "jwt.h"
#include "sse_filter.h"
#include "sse_match.h"

static const char secret[] = "fuzzing-secret-of-at-least-32-bytes!";
static jwt_keyset *keys;

static size_t
b64url(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		o = 0, i;

	for (i = 0; i + 2 < len; i += 3) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		out[o++] = tab[in[i + 2] & 63];
	}
	if (len - i == 1) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = tab[(in[i + 1] & 15) << 2];
	}
	return o;
}

static void
check_claims(jwt_status st, jwt_claims *c)
{
	if (st == JWT_OK) {
		sse_filter *f = NULL;

		if (c->sub == NULL || c->sub[0] == '\0')
			abort();
		for (size_t i = 0; i < c->nchannels; i++)
			if (sse_pattern_check(c->channels[i], strlen(c->channels[i])) != SSE_NAME_OK)
				abort();
		if (c->filter && sse_filter_compile(c->filter, strlen(c->filter), &f, NULL) != SSE_JSON_OK)
			abort();
		sse_filter_free(f);
	} else if (c->sub != NULL || c->channels != NULL || c->filter != NULL)
		abort();
	jwt_claims_clear(c);
}

static void
signed_payload(const uint8_t *data, size_t size)
{
	static const char hdr[] = "eyJhbGciOiJIUzI1NiJ9";	/* {"alg":"HS256"} */
	char	   *tok = malloc(sizeof(hdr) + size * 2 + 64);
	size_t		n = sizeof(hdr) - 1;
	unsigned char mac[32];
	unsigned int mlen = 0;
	jwt_policy	pol = {"iss", "aud", 30};
	jwt_claims	c;

	memcpy(tok, hdr, n);
	tok[n++] = '.';
	n += b64url(data, size, tok + n);
	HMAC(EVP_sha256(), secret, (int) strlen(secret), (unsigned char *) tok, n, mac, &mlen);
	tok[n++] = '.';
	n += b64url(mac, mlen, tok + n);
	check_claims(jwt_verify(keys, tok, n, &pol, 1800000000, &c), &c);
	pol.issuer = pol.audience = NULL;
	check_claims(jwt_verify(keys, tok, n, &pol, 1800000000, &c), &c);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		err[128];
	jwt_claims	c;
	jwt_policy	pol = {NULL, NULL, 30};

	if (keys == NULL &&
		(keys = jwt_keyset_parse((const unsigned char *) secret, strlen(secret), "HS256", err, sizeof(err))) == NULL)
		abort();
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
		case 0:
			check_claims(jwt_verify(keys, (const char *) data + 1, size - 1, &pol, 1800000000, &c), &c);
			break;
		case 1:
			signed_payload(data + 1, size - 1);
			break;
		case 2: {
			const char *a = (const char *) data + 1, *nl = memchr(a, '\n', size - 1);
			size_t		alen = nl ? (size_t) (nl - a) : size - 1;
			char	   *out = NULL;

			if (filtjson_and(a, alen, nl ? nl + 1 : NULL, nl ? size - 1 - alen - 1 : 0, &out) == FILTJSON_OK) {
				json_t	   *v = sse_json_parse(out, strlen(out));

				if (v == NULL)
					abort();
				json_decref(v);
			}
			free(out);
			break;
		}
	}
	return 0;
}
