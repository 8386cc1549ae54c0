/*
 * test_jwt.c - token verification (jwt.c), the AND of filters (filtjson.c)
 * and grant coverage of patterns (scope_union).  Keys are generated here
 * with OpenSSL and tokens signed here, so every refusal is checked against
 * a token that verifies when nothing is wrong with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "test_util.h"
#include "filtjson.h"
#include "jwt.h"
#include "scope.h"

static EVP_PKEY *rsa_key, *ec_key, *rsa_key2;
static const char secret[] = "0123456789abcdef0123456789abcdef-secret";
static const int64_t NOW = 1800000000;
static const jwt_policy POL = {NULL, NULL, 30};

/* ---- helpers: base64url, signing, keys ---- */

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

static char *
b64s(const char *s)
{
	return b64url((const unsigned char *) s, strlen(s));
}

/* Sign "h.p" with alg: HMAC with (secret, slen), RSA and EC with a pkey. */
static char *
sign(const char *alg, const char *header, const char *payload, const void *key, size_t slen)
{
	char	   *h = b64s(header), *p = b64s(payload), *sig, *tok;
	size_t		ilen = strlen(h) + strlen(p) + 1;
	char	   *input = malloc(ilen + 1);
	unsigned char out[1024];
	size_t		olen = sizeof(out);
	const EVP_MD *md = strstr(alg, "384") ? EVP_sha384() : strstr(alg, "512") ? EVP_sha512() : EVP_sha256();

	snprintf(input, ilen + 1, "%s.%s", h, p);
	if (alg[0] == 'H') {
		unsigned int ol = 0;

		HMAC(md, key, (int) slen, (unsigned char *) input, ilen, out, &ol);
		olen = ol;
	} else {
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		unsigned char der[256];
		size_t		dlen = sizeof(der);

		assert_int_equal(EVP_DigestSignInit(m, NULL, md, NULL, (EVP_PKEY *) key), 1);
		if (alg[0] == 'E') {
			const unsigned char *dp = der;
			ECDSA_SIG  *es;
			size_t		n = strstr(alg, "384") ? 48 : 32;

			assert_int_equal(EVP_DigestSign(m, der, &dlen, (unsigned char *) input, ilen), 1);
			es = d2i_ECDSA_SIG(NULL, &dp, (long) dlen);
			assert_non_null(es);
			BN_bn2binpad(ECDSA_SIG_get0_r(es), out, (int) n);
			BN_bn2binpad(ECDSA_SIG_get0_s(es), out + n, (int) n);
			olen = 2 * n;
			ECDSA_SIG_free(es);
		} else
			assert_int_equal(EVP_DigestSign(m, out, &olen, (unsigned char *) input, ilen), 1);
		EVP_MD_CTX_free(m);
	}
	sig = b64url(out, olen);
	tok = malloc(ilen + strlen(sig) + 2);
	sprintf(tok, "%s.%s", input, sig);
	free(h);
	free(p);
	free(sig);
	free(input);
	return tok;
}

static char *
pem_of(EVP_PKEY *k)
{
	BIO		   *b = BIO_new(BIO_s_mem());
	char	   *data, *out;
	long		n;

	PEM_write_bio_PUBKEY(b, k);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t) n);
	BIO_free(b);
	return out;
}

static jwt_keyset *
keys_of(const char *text, const char *alg)
{
	char		err[256] = "";
	jwt_keyset *ks = jwt_keyset_parse((const unsigned char *) text, strlen(text), alg, err, sizeof(err));

	if (ks == NULL)
		print_message("keyset: %s\n", err);
	return ks;
}

static char *
bn_b64(EVP_PKEY *k, const char *name)
{
	BIGNUM	   *bn = NULL;
	unsigned char buf[1024];
	int			n;

	EVP_PKEY_get_bn_param(k, name, &bn);
	n = BN_bn2bin(bn, buf);
	BN_free(bn);
	return b64url(buf, (size_t) n);
}

/* A JWKS: kid "r1" (RSA, RS256), "e1" (EC P-256, ES256), "r2" (RSA, RS256). */
static char *
jwks_text(void)
{
	unsigned char pub[65];
	size_t		plen = sizeof(pub);
	char	   *n1 = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_N), *e1 = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_E);
	char	   *n2 = bn_b64(rsa_key2, OSSL_PKEY_PARAM_RSA_N), *e2 = bn_b64(rsa_key2, OSSL_PKEY_PARAM_RSA_E);
	char	   *x, *y, *out = malloc(8192);

	EVP_PKEY_get_octet_string_param(ec_key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &plen);
	assert_int_equal(plen, 65);
	x = b64url(pub + 1, 32);
	y = b64url(pub + 33, 32);
	snprintf(out, 8192, "{\"keys\":["
			 "{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"},"
			 "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
			 "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"%s\"},"
			 "{\"kty\":\"RSA\",\"kid\":\"r2\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"}]}",
			 n1, e1, x, y, n2, e2, n2, e2);
	free(n1);
	free(e1);
	free(n2);
	free(e2);
	free(x);
	free(y);
	return out;
}

static int
setup(void **state)
{
	(void) state;
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
	rsa_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return rsa_key && rsa_key2 && ec_key ? 0 : -1;
}

static int
teardown(void **state)
{
	(void) state;
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(rsa_key2);
	EVP_PKEY_free(ec_key);
	return 0;
}

static char *
payload(const char *extra)
{
	char	   *p = malloc(1024);

	snprintf(p, 1024, "{\"sub\":\"alice\",\"exp\":%lld%s%s}", (long long) NOW + 600,
			 extra[0] ? "," : "", extra);
	return p;
}

static jwt_status
check(const jwt_keyset *ks, const char *tok, const jwt_policy *pol, int64_t now, jwt_claims *c)
{
	jwt_claims	tmp;
	jwt_status	st = jwt_verify(ks, tok, strlen(tok), pol, now, c ? c : &tmp);

	if (c == NULL)
		jwt_claims_clear(&tmp);
	return st;
}

/* ---- HMAC ---- */

static void
test_hs256(void **state)
{
	jwt_keyset *ks = keys_of(secret, "HS256");
	char	   *p = payload("\"sse\":{\"channels\":[\"job.#\",\"news\"],\"filter\":{\"tenant\":123456789012345678901234567890}}");
	char	   *tok = sign("HS256", "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, secret, strlen(secret));
	jwt_claims	c;

	(void) state;
	assert_non_null(ks);
	assert_int_equal(check(ks, tok, &POL, NOW, &c), JWT_OK);
	assert_string_equal(c.sub, "alice");
	assert_int_equal(c.exp, NOW + 600);
	assert_int_equal(c.nchannels, 2);
	assert_string_equal(c.channels[0], "job.#");
	/* the number is kept exactly, not rounded to a double */
	assert_string_equal(c.filter, "{\"tenant\":12345678901234567890123456789e1}");
	jwt_claims_clear(&c);

	/* tampered payload: the signature no longer verifies */
	{
		char	   *other = sign("HS256", "{\"alg\":\"HS256\"}",
								 "{\"sub\":\"mallory\",\"exp\":1900000000}", secret, strlen(secret));
		char	   *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
		char	   *o1 = strchr(other, '.'), *o2 = strchr(o1 + 1, '.');
		char		forged[2048];

		snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int) (d1 - tok), tok, (int) (o2 - o1), o1, d2);
		assert_int_equal(check(ks, forged, &POL, NOW, NULL), JWT_BAD_SIGNATURE);
		free(other);
	}
	/* empty signature */
	*(strrchr(tok, '.') + 1) = '\0';
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_SIGNATURE);
	free(tok);
	/* a secret of another length signs something else */
	tok = sign("HS256", "{\"alg\":\"HS256\"}", p, secret, strlen(secret) - 1);
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_SIGNATURE);
	free(tok);
	/* HS384 announced to an HS256 key */
	tok = sign("HS384", "{\"alg\":\"HS384\"}", p, secret, strlen(secret));
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_ALG);
	free(tok);
	free(p);
	jwt_keyset_free(ks);
}

static void
test_alg_none(void **state)
{
	jwt_keyset *ks = keys_of(secret, "HS256");
	char	   *h = b64s("{\"alg\":\"none\"}"), *p = b64s("{\"sub\":\"a\",\"exp\":1900000000}");
	char		tok[512];

	(void) state;
	snprintf(tok, sizeof(tok), "%s.%s.", h, p);
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_ALG);
	free(h);
	h = b64s("{\"alg\":\"None\"}");
	snprintf(tok, sizeof(tok), "%s.%s.", h, p);
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_ALG);
	free(h);
	h = b64s("{\"typ\":\"JWT\"}");
	snprintf(tok, sizeof(tok), "%s.%s.", h, p);
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_ALG);
	free(h);
	free(p);
	jwt_keyset_free(ks);
}

/* The classic confusion: HS256 with the RSA public key (its PEM text) as the secret. */
static void
test_hs_with_public_key(void **state)
{
	char	   *pem = pem_of(rsa_key);
	jwt_keyset *ks = keys_of(pem, "RS256");
	char	   *p = payload("");
	char	   *tok = sign("HS256", "{\"alg\":\"HS256\"}", p, pem, strlen(pem));
	char	   *good = sign("RS256", "{\"alg\":\"RS256\"}", p, rsa_key, 0);
	char		err[256];

	(void) state;
	assert_non_null(ks);
	assert_int_equal(check(ks, good, &POL, NOW, NULL), JWT_OK);
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_ALG);
	/* and a PEM key can never be configured as an HMAC secret */
	assert_null(jwt_keyset_parse((unsigned char *) pem, strlen(pem), "HS256", err, sizeof(err)));
	assert_non_null(strstr(err, "secret"));
	/* nor a secret that is too short, nor a missing --jwt-alg */
	assert_null(jwt_keyset_parse((unsigned char *) "short", 5, "HS256", err, sizeof(err)));
	assert_null(jwt_keyset_parse((unsigned char *) secret, strlen(secret), "", err, sizeof(err)));
	assert_null(jwt_keyset_parse((unsigned char *) secret, strlen(secret), "none", err, sizeof(err)));
	/* an RSA key for ES256, an EC key for RS256 */
	assert_null(jwt_keyset_parse((unsigned char *) pem, strlen(pem), "ES256", err, sizeof(err)));
	free(pem);
	pem = pem_of(ec_key);
	assert_null(jwt_keyset_parse((unsigned char *) pem, strlen(pem), "RS256", err, sizeof(err)));
	free(pem);
	free(p);
	free(tok);
	free(good);
	jwt_keyset_free(ks);
}

static void
test_es256_pem(void **state)
{
	char	   *pem = pem_of(ec_key);
	jwt_keyset *ks = keys_of(pem, "ES256");
	char	   *p = payload("");
	char	   *tok = sign("ES256", "{\"alg\":\"ES256\"}", p, ec_key, 0);
	char	   *last;

	(void) state;
	assert_non_null(ks);
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_OK);
	/* a DER signature (what OpenSSL makes) is not a JWS signature */
	last = strrchr(tok, '.') + 1;
	last[10] = last[10] == 'A' ? 'B' : 'A';
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_SIGNATURE);
	last[4] = '\0';
	assert_int_equal(check(ks, tok, &POL, NOW, NULL), JWT_BAD_SIGNATURE);
	free(pem);
	free(p);
	free(tok);
	jwt_keyset_free(ks);
}

static void
test_jwks(void **state)
{
	char	   *text = jwks_text();
	jwt_keyset *ks = keys_of(text, NULL);
	char	   *p = payload("");
	char	   *t;

	(void) state;
	assert_non_null(ks);
	assert_int_equal(jwt_keyset_count(ks), 3);		/* the "enc" key is skipped */
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p, rsa_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_OK);
	free(t);
	/* rotation: the second RSA key verifies its own tokens, not the first's */
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"r2\"}", p, rsa_key2, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_OK);
	free(t);
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"r2\"}", p, rsa_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_BAD_SIGNATURE);
	free(t);
	t = sign("ES256", "{\"alg\":\"ES256\",\"kid\":\"e1\"}", p, ec_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_OK);
	free(t);
	/* unknown kid, missing kid, a key meant for encryption */
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"zz\"}", p, rsa_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_UNKNOWN_KID);
	free(t);
	t = sign("RS256", "{\"alg\":\"RS256\"}", p, rsa_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_UNKNOWN_KID);
	free(t);
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"enc\"}", p, rsa_key2, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_UNKNOWN_KID);
	free(t);
	/* wrong-type kid: an RS256 token naming the EC key, an HS256 one naming an RSA key */
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"e1\"}", p, rsa_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_BAD_ALG);
	free(t);
	t = sign("HS256", "{\"alg\":\"HS256\",\"kid\":\"r1\"}", p, secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_BAD_ALG);
	free(t);
	/* a kid that is not a string */
	t = sign("RS256", "{\"alg\":\"RS256\",\"kid\":1}", p, rsa_key, 0);
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MALFORMED);
	free(t);
	free(p);
	free(text);
	jwt_keyset_free(ks);
}

static void
test_times(void **state)
{
	jwt_keyset *ks = keys_of(secret, "HS256");
	char		pl[256];
	char	   *t;

	(void) state;
	/* exp: refused from exp + leeway on, accepted just inside it */
	snprintf(pl, sizeof(pl), "{\"sub\":\"a\",\"exp\":%lld}", (long long) NOW - 30);
	t = sign("HS256", "{\"alg\":\"HS256\"}", pl, secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_EXPIRED);
	assert_int_equal(check(ks, t, &POL, NOW - 1, NULL), JWT_OK);
	free(t);
	snprintf(pl, sizeof(pl), "{\"sub\":\"a\",\"exp\":%lld.75}", (long long) NOW - 29);
	t = sign("HS256", "{\"alg\":\"HS256\"}", pl, secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_OK);
	free(t);
	/* missing exp, exp not a number */
	t = sign("HS256", "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MISSING_EXP);
	free(t);
	t = sign("HS256", "{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":\"1900000000\"}", secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MISSING_EXP);
	free(t);
	/* nbf: refused beyond the leeway, accepted inside it */
	snprintf(pl, sizeof(pl), "{\"sub\":\"a\",\"exp\":%lld,\"nbf\":%lld}", (long long) NOW + 600,
			 (long long) NOW + 31);
	t = sign("HS256", "{\"alg\":\"HS256\"}", pl, secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_NOT_YET);
	assert_int_equal(check(ks, t, &POL, NOW + 1, NULL), JWT_OK);
	free(t);
	/* missing or empty sub */
	snprintf(pl, sizeof(pl), "{\"exp\":%lld}", (long long) NOW + 600);
	t = sign("HS256", "{\"alg\":\"HS256\"}", pl, secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MISSING_SUB);
	free(t);
	snprintf(pl, sizeof(pl), "{\"sub\":\"\",\"exp\":%lld}", (long long) NOW + 600);
	t = sign("HS256", "{\"alg\":\"HS256\"}", pl, secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MISSING_SUB);
	free(t);
	jwt_keyset_free(ks);
}

static void
test_iss_aud(void **state)
{
	jwt_keyset *ks = keys_of(secret, "HS256");
	jwt_policy	pol = {"https://app.example", "sse", 30};
	struct {
		const char *extra;
		jwt_status	want;
	}			cases[] = {
		{"\"iss\":\"https://app.example\",\"aud\":\"sse\"", JWT_OK},
		{"\"iss\":\"https://app.example\",\"aud\":[\"api\",\"sse\"]", JWT_OK},
		{"\"iss\":\"https://evil.example\",\"aud\":\"sse\"", JWT_BAD_ISSUER},
		{"\"aud\":\"sse\"", JWT_BAD_ISSUER},
		{"\"iss\":\"https://app.example\",\"aud\":\"api\"", JWT_BAD_AUDIENCE},
		{"\"iss\":\"https://app.example\",\"aud\":[\"api\"]", JWT_BAD_AUDIENCE},
		{"\"iss\":\"https://app.example\"", JWT_BAD_AUDIENCE},
		{"\"iss\":\"https://app.example\",\"aud\":\"sse\",\"sse\":{\"channels\":[\"a..b\"]}", JWT_BAD_GRANT},
		{"\"iss\":\"https://app.example\",\"aud\":\"sse\",\"sse\":{\"filter\":[1]}", JWT_BAD_GRANT},
		{"\"iss\":\"https://app.example\",\"aud\":\"sse\",\"sse\":\"all\"", JWT_BAD_GRANT},
	};

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char	   *p = payload(cases[i].extra);
		char	   *t = sign("HS256", "{\"alg\":\"HS256\"}", p, secret, strlen(secret));

		if (check(ks, t, &pol, NOW, NULL) != cases[i].want)
			fail_msg("case %zu (%s): got %d", i, cases[i].extra, check(ks, t, &pol, NOW, NULL));
		free(p);
		free(t);
	}
	jwt_keyset_free(ks);
}

static void
test_malformed(void **state)
{
	jwt_keyset *ks = keys_of(secret, "HS256");
	char	   *big = malloc(JWT_MAX_TOKEN + 2);
	char	   *t;

	(void) state;
	memset(big, 'a', JWT_MAX_TOKEN + 1);
	big[10] = '.';
	big[20] = '.';
	big[JWT_MAX_TOKEN + 1] = '\0';
	assert_int_equal(check(ks, big, &POL, NOW, NULL), JWT_TOO_LARGE);
	free(big);
	assert_int_equal(check(ks, "", &POL, NOW, NULL), JWT_MALFORMED);
	assert_int_equal(check(ks, "a.b", &POL, NOW, NULL), JWT_MALFORMED);
	assert_int_equal(check(ks, "a.b.c.d", &POL, NOW, NULL), JWT_MALFORMED);
	assert_int_equal(check(ks, "e30=.e30.c2ln", &POL, NOW, NULL), JWT_MALFORMED);
	/* a claim given twice counts with its last value, as in jsonb */
	t = sign("HS256", "{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1900000000,\"exp\":1}",
			 secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_EXPIRED);
	free(t);
	/* a payload that is not an object */
	t = sign("HS256", "{\"alg\":\"HS256\"}", "[1]", secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MALFORMED);
	free(t);
	t = sign("HS256", "{\"alg\":\"HS256\",\"crit\":[\"x\"]}", "{\"sub\":\"a\",\"exp\":1900000000}",
			 secret, strlen(secret));
	assert_int_equal(check(ks, t, &POL, NOW, NULL), JWT_MALFORMED);
	free(t);
	jwt_keyset_free(ks);
}

static void
test_b64url(void **state)
{
	unsigned char out[16];

	(void) state;
	assert_int_equal(jwt_b64url_decode("YQ", 2, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'a');
	assert_int_equal(jwt_b64url_decode("YR", 2, out, sizeof(out)), -1);	/* stray bits */
	assert_int_equal(jwt_b64url_decode("YQ==", 4, out, sizeof(out)), -1);	/* padding */
	assert_int_equal(jwt_b64url_decode("Y", 1, out, sizeof(out)), -1);
	assert_int_equal(jwt_b64url_decode("-_-_", 4, out, sizeof(out)), 3);
	assert_int_equal(jwt_b64url_decode("+/+/", 4, out, sizeof(out)), -1);
	assert_int_equal(jwt_b64url_decode("AAAAAAAA", 8, out, 5), -1);	/* no room */
}

static void
and_is(const char *a, const char *b, filtjson_status want, const char *text)
{
	char	   *out = NULL;
	filtjson_status st = filtjson_and(a, strlen(a), b, b ? strlen(b) : 0, &out);

	assert_int_equal(st, want);
	if (text)
		assert_string_equal(out, text);
	free(out);
}

static void
test_filter_and(void **state)
{
	(void) state;
	and_is("{\"t\":42}", NULL, FILTJSON_OK, "{\"t\":42}");
	and_is("{\"t\":42}", "{}", FILTJSON_OK, "{\"t\":42}");
	and_is("{\"t\":42}", "{\"k\":\"x\"}", FILTJSON_OK, "{\"t\":42,\"k\":\"x\"}");
	and_is("{\"t\":42}", "{\"t\":42.0}", FILTJSON_OK, "{\"t\":42}");
	and_is("{\"t\":42}", "{\"t\":43}", FILTJSON_CONFLICT, NULL);
	and_is("{\"t\":42}", "{\"t\":[42]}", FILTJSON_CONFLICT, NULL);
	and_is("{\"t\":{\"a\":1}}", "{\"t\":{\"b\":\"q\\\"\"}}", FILTJSON_OK, "{\"t\":{\"a\":1,\"b\":\"q\\\"\"}}");
	and_is("{\"t\":[1,2]}", "{\"t\":[2,3]}", FILTJSON_OK, "{\"t\":[1,2,3]}");
	and_is("{\"t\":null}", "{\"t\":false}", FILTJSON_CONFLICT, NULL);
	and_is("{\"t\":1e400}", "{\"t\":10e399}", FILTJSON_OK, NULL);
	and_is("[1]", "{}", FILTJSON_INVALID, NULL);
}

static bool
covered(const char *pub, const char *grant, const char *pat)
{
	char		err[64];
	scope	   *p = scope_new(pub, err, sizeof(err));
	char	   *g[1] = {(char *) grant};
	scope	   *u = scope_union(p, g, grant ? 1 : 0);
	bool		r = scope_check(u, pat, strlen(pat)) == SCOPE_INSIDE;

	scope_free(p);
	scope_free(u);
	return r;
}

static void
test_grant_cover(void **state)
{
	(void) state;
	assert_true(covered("", "job.#", "job.*"));
	assert_true(covered("", "job.*", "job.*"));
	assert_false(covered("", "job.*", "job.#"));	/* widening */
	assert_true(covered("", "job.*", "job.7"));
	assert_false(covered("", "job.*", "job.7.x"));
	assert_true(covered("news.#", "job.*", "news.x"));
	assert_false(covered("news.#", NULL, "job.1"));
	assert_true(covered("a", "a.*.#", "a.#"));		/* only the union covers it */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hs256),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_hs_with_public_key),
		cmocka_unit_test(test_es256_pem),
		cmocka_unit_test(test_jwks),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_iss_aud),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_filter_and),
		cmocka_unit_test(test_grant_cover),
	};

	return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
