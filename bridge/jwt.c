/*
 * jwt.c - JWS compact tokens verified with OpenSSL's libcrypto (EVP).
 *
 * Invariants: a key's algorithm is fixed when it is loaded, and the
 * token's "alg" must name exactly it (never the other way round); an HMAC
 * key is only ever a secret of at least JWT_MIN_SECRET bytes, never a PEM
 * or JWKS public key, so a public key cannot be used as an HMAC secret;
 * the signature is checked before the payload is parsed; every claim the
 * bridge relies on is checked here, none is left to a library.  Untrusted
 * bytes are bounded by JWT_MAX_TOKEN before anything is decoded, and the
 * decoded parts live in buffers of that size on the stack.
 *
 * Memory: allocation failures (ours, jansson's or OpenSSL's) are
 * JWT_INTERNAL, never a refusal of the token.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "filtjson.h"
#include "sse_filter.h"
#include "sse_match.h"

#define JWT_MAX_PART	(JWT_MAX_TOKEN / 4 * 3 + 3)
#define JWT_MAX_KEYFILE	(1 << 20)

typedef struct jwt_key {
	char	   *kid;			/* NULL: none */
	jwt_alg		alg;
	unsigned char *secret;		/* HS*: the secret */
	size_t		secret_len;
	EVP_PKEY   *pkey;			/* RS*, ES*: the public key */
} jwt_key;

struct jwt_keyset {
	jwt_key    *keys;
	size_t		n;
};

static const char *const alg_names[JWT_ALG_COUNT] = {
	[JWT_HS256] = "HS256", [JWT_HS384] = "HS384", [JWT_HS512] = "HS512",
	[JWT_RS256] = "RS256", [JWT_RS384] = "RS384", [JWT_RS512] = "RS512",
	[JWT_ES256] = "ES256", [JWT_ES384] = "ES384",
};

jwt_alg
jwt_alg_parse(const char *s, size_t len)
{
	for (int a = 1; a < JWT_ALG_COUNT; a++)
		if (strlen(alg_names[a]) == len && memcmp(alg_names[a], s, len) == 0)
			return (jwt_alg) a;
	return JWT_ALG_UNKNOWN;
}

const char *
jwt_alg_name(jwt_alg a)
{
	return a > JWT_ALG_UNKNOWN && a < JWT_ALG_COUNT ? alg_names[a] : "?";
}

static bool
alg_is_hmac(jwt_alg a)
{
	return a == JWT_HS256 || a == JWT_HS384 || a == JWT_HS512;
}

static bool
alg_is_rsa(jwt_alg a)
{
	return a == JWT_RS256 || a == JWT_RS384 || a == JWT_RS512;
}

static const EVP_MD *
alg_md(jwt_alg a)
{
	switch (a) {
		case JWT_HS256: case JWT_RS256: case JWT_ES256:
			return EVP_sha256();
		case JWT_HS384: case JWT_RS384: case JWT_ES384:
			return EVP_sha384();
		case JWT_HS512: case JWT_RS512:
			return EVP_sha512();
		default:
			return NULL;
	}
}

/* Bytes of r (and of s) in an ES* signature. */
static size_t
alg_ec_size(jwt_alg a)
{
	return a == JWT_ES256 ? 32 : a == JWT_ES384 ? 48 : 0;
}

static const char *const status_msgs[] = {
	[JWT_OK] = "valid",
	[JWT_TOO_LARGE] = "token larger than 8192 bytes",
	[JWT_MALFORMED] = "not a JWS compact token",
	[JWT_BAD_ALG] = "algorithm not accepted for this key",
	[JWT_UNKNOWN_KID] = "no key for this token",
	[JWT_BAD_SIGNATURE] = "signature does not verify",
	[JWT_EXPIRED] = "token expired",
	[JWT_NOT_YET] = "token not valid yet (nbf)",
	[JWT_MISSING_EXP] = "exp claim missing or not a number",
	[JWT_MISSING_SUB] = "sub claim missing or not a string",
	[JWT_BAD_ISSUER] = "wrong issuer",
	[JWT_BAD_AUDIENCE] = "wrong audience",
	[JWT_BAD_GRANT] = "sse claim is not {\"channels\":[patterns],\"filter\":{...}}",
	[JWT_INTERNAL] = "verification failed inside the bridge",
};

const char *
jwt_status_message(jwt_status st)
{
	return st <= JWT_INTERNAL ? status_msgs[st] : "?";
}

/* ---- base64url ---- */

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
	size_t		o = 0;
	uint32_t	acc = 0;
	int			bits = 0;

	if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > outsize)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int			v = b64_value((unsigned char) in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)				/* leftover bits must be zero: one spelling per value */
		return -1;
	return (long) o;
}

/* ---- keys ---- */

static void
key_clear(jwt_key *k)
{
	free(k->kid);
	if (k->secret)
		OPENSSL_cleanse(k->secret, k->secret_len);
	free(k->secret);
	EVP_PKEY_free(k->pkey);
	memset(k, 0, sizeof(*k));
}

void
jwt_keyset_free(jwt_keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++)
		key_clear(&ks->keys[i]);
	free(ks->keys);
	free(ks);
}

size_t
jwt_keyset_count(const jwt_keyset *ks)
{
	return ks->n;
}

/* The EC curve of pkey: 256, 384 or 0 for another one. */
static int
ec_curve_bits(EVP_PKEY *pkey)
{
	char		name[64];

	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), NULL))
		return 0;
	if (strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0)
		return 256;
	if (strcmp(name, "secp384r1") == 0 || strcmp(name, "P-384") == 0)
		return 384;
	return 0;
}

/* Does pkey fit alg?  Writes why not into err. */
static bool
key_fits(EVP_PKEY *pkey, jwt_alg alg, char *err, size_t errsize)
{
	if (alg_is_rsa(alg)) {
		if (!EVP_PKEY_is_a(pkey, "RSA")) {
			snprintf(err, errsize, "%s needs an RSA key", jwt_alg_name(alg));
			return false;
		}
		if (EVP_PKEY_get_bits(pkey) < 2048) {
			snprintf(err, errsize, "RSA key of %d bits: at least 2048 are required",
					 EVP_PKEY_get_bits(pkey));
			return false;
		}
		return true;
	}
	if (alg_ec_size(alg) != 0) {
		int			want = alg == JWT_ES256 ? 256 : 384;

		if (!EVP_PKEY_is_a(pkey, "EC") || ec_curve_bits(pkey) != want) {
			snprintf(err, errsize, "%s needs an EC key on P-%d", jwt_alg_name(alg), want);
			return false;
		}
		return true;
	}
	snprintf(err, errsize, "%s needs a secret, not a public key", jwt_alg_name(alg));
	return false;
}

static bool
keyset_push(jwt_keyset *ks, jwt_key *k, char *err, size_t errsize)
{
	jwt_key    *nk;

	for (size_t i = 0; i < ks->n && k->kid; i++)
		if (ks->keys[i].kid && strcmp(ks->keys[i].kid, k->kid) == 0) {
			snprintf(err, errsize, "kid \"%.64s\" given twice", k->kid);
			return false;
		}
	nk = realloc(ks->keys, (ks->n + 1) * sizeof(jwt_key));
	if (nk == NULL) {
		snprintf(err, errsize, "out of memory");
		return false;
	}
	ks->keys = nk;
	ks->keys[ks->n++] = *k;
	memset(k, 0, sizeof(*k));
	return true;
}

static bool
load_secret(jwt_keyset *ks, const unsigned char *data, size_t len, jwt_alg alg,
			char *err, size_t errsize)
{
	jwt_key		k = {.alg = alg};

	if (!alg_is_hmac(alg)) {
		snprintf(err, errsize, "%s needs a PEM public key or a JWKS, and the key file holds neither",
				 jwt_alg_name(alg));
		return false;
	}
	if (len < JWT_MIN_SECRET) {
		snprintf(err, errsize, "an HMAC secret must have at least %d bytes (it has %zu)",
				 JWT_MIN_SECRET, len);
		return false;
	}
	if ((k.secret = malloc(len)) == NULL) {
		snprintf(err, errsize, "out of memory");
		return false;
	}
	memcpy(k.secret, data, len);
	k.secret_len = len;
	if (!keyset_push(ks, &k, err, errsize)) {
		key_clear(&k);
		return false;
	}
	return true;
}

static bool
load_pem(jwt_keyset *ks, const unsigned char *data, size_t len, jwt_alg alg,
		 char *err, size_t errsize)
{
	BIO		   *bio = BIO_new_mem_buf(data, (int) len);
	jwt_key		k = {.alg = alg};

	if (bio == NULL) {
		snprintf(err, errsize, "out of memory");
		return false;
	}
	k.pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k.pkey == NULL) {
		snprintf(err, errsize, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
		return false;
	}
	if (!key_fits(k.pkey, alg, err, errsize) || !keyset_push(ks, &k, err, errsize)) {
		key_clear(&k);
		return false;
	}
	return true;
}

/* A base64url member of a JWK, decoded into a new buffer. */
static unsigned char *
jwk_bytes(json_t *jwk, const char *name, size_t *len)
{
	const char *s = json_string_value(json_object_get(jwk, name));
	size_t		sl = s ? strlen(s) : 0;
	unsigned char *buf;
	long		n;

	if (s == NULL || sl == 0 || sl > 4 * JWT_MAX_TOKEN)
		return NULL;
	if ((buf = malloc(sl / 4 * 3 + 3)) == NULL)
		return NULL;
	n = jwt_b64url_decode(s, sl, buf, sl / 4 * 3 + 3);
	if (n <= 0) {
		free(buf);
		return NULL;
	}
	*len = (size_t) n;
	return buf;
}

static EVP_PKEY *
pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY   *pkey = NULL;

	if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *
jwk_rsa(json_t *jwk)
{
	size_t		nl = 0, el = 0;
	unsigned char *nb = jwk_bytes(jwk, "n", &nl), *eb = jwk_bytes(jwk, "e", &el);
	BIGNUM	   *n = nb ? BN_bin2bn(nb, (int) nl, NULL) : NULL;
	BIGNUM	   *e = eb ? BN_bin2bn(eb, (int) el, NULL) : NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY   *pkey = NULL;

	if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		pkey = pkey_from_params("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(nb);
	free(eb);
	return pkey;
}

static EVP_PKEY *
jwk_ec(json_t *jwk, int *bits)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	size_t		xl = 0, yl = 0, sz;
	unsigned char *x = jwk_bytes(jwk, "x", &xl), *y = jwk_bytes(jwk, "y", &yl);
	unsigned char pub[1 + 2 * 48];
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY   *pkey = NULL;

	*bits = crv && strcmp(crv, "P-256") == 0 ? 256 : crv && strcmp(crv, "P-384") == 0 ? 384 : 0;
	sz = (size_t) *bits / 8;
	if (*bits != 0 && x && y && xl == sz && yl == sz && (bld = OSSL_PARAM_BLD_new()) != NULL) {
		pub[0] = 0x04;
		memcpy(pub + 1, x, sz);
		memcpy(pub + 1 + sz, y, sz);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) &&
			OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * sz))
			pkey = pkey_from_params("EC", bld);
	}
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/* One member of "keys"; a key not meant for signatures is skipped. */
static bool
load_jwk(jwt_keyset *ks, json_t *jwk, size_t idx, jwt_alg dflt, char *err, size_t errsize)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	jwt_key		k = {0};
	char		why[128];
	int			bits = 0;

	if (!json_is_object(jwk) || kty == NULL) {
		snprintf(err, errsize, "JWKS key %zu: not an object with \"kty\"", idx);
		return false;
	}
	if (use != NULL && strcmp(use, "sig") != 0)
		return true;
	k.alg = alg ? jwt_alg_parse(alg, strlen(alg)) : dflt;
	if (alg && k.alg == JWT_ALG_UNKNOWN) {
		snprintf(err, errsize, "JWKS key %zu: algorithm \"%.32s\" is not supported", idx, alg);
		return false;
	}
	if (strcmp(kty, "oct") == 0) {
		if (!alg_is_hmac(k.alg)) {
			snprintf(err, errsize, "JWKS key %zu: an \"oct\" key needs an HS* \"alg\"", idx);
			return false;
		}
		k.secret = jwk_bytes(jwk, "k", &k.secret_len);
		if (k.secret == NULL || k.secret_len < JWT_MIN_SECRET) {
			snprintf(err, errsize, "JWKS key %zu: \"k\" must hold at least %d bytes", idx,
					 JWT_MIN_SECRET);
			key_clear(&k);
			return false;
		}
	} else if (strcmp(kty, "RSA") == 0) {
		if (k.alg == JWT_ALG_UNKNOWN)
			k.alg = JWT_RS256;
		k.pkey = jwk_rsa(jwk);
	} else if (strcmp(kty, "EC") == 0) {
		k.pkey = jwk_ec(jwk, &bits);
		if (k.alg == JWT_ALG_UNKNOWN)
			k.alg = bits == 384 ? JWT_ES384 : JWT_ES256;
	} else
		return true;			/* a key type we do not verify with (OKP, ...) */
	if (k.secret == NULL && k.pkey == NULL) {
		snprintf(err, errsize, "JWKS key %zu: not a valid %s public key", idx, kty);
		return false;
	}
	if (k.pkey && !key_fits(k.pkey, k.alg, why, sizeof(why))) {
		snprintf(err, errsize, "JWKS key %zu: %s", idx, why);
		key_clear(&k);
		return false;
	}
	if (kid && (k.kid = strdup(kid)) == NULL) {
		snprintf(err, errsize, "out of memory");
		key_clear(&k);
		return false;
	}
	if (!keyset_push(ks, &k, err, errsize)) {
		key_clear(&k);
		return false;
	}
	return true;
}

static bool
load_jwks(jwt_keyset *ks, json_t *doc, jwt_alg dflt, char *err, size_t errsize)
{
	json_t	   *keys = json_object_get(doc, "keys");
	size_t		i;
	json_t	   *jwk;

	if (!json_is_array(keys)) {
		snprintf(err, errsize, "a JWKS needs a \"keys\" array");
		return false;
	}
	json_array_foreach(keys, i, jwk)
		if (!load_jwk(ks, jwk, i, dflt, err, errsize))
			return false;
	if (ks->n == 0) {
		snprintf(err, errsize, "the JWKS has no signature key the bridge can use");
		return false;
	}
	for (i = 0; i < ks->n && ks->n > 1; i++)
		if (ks->keys[i].kid == NULL) {
			snprintf(err, errsize, "every key of a JWKS with several keys needs a \"kid\"");
			return false;
		}
	return true;
}

static bool
starts_with(const unsigned char *data, size_t len, const char *p)
{
	size_t		i = 0, pl = strlen(p);

	while (i < len && isspace(data[i]))
		i++;
	return len - i >= pl && memcmp(data + i, p, pl) == 0;
}

jwt_keyset *
jwt_keyset_parse(const unsigned char *data, size_t len, const char *algname,
				 char *err, size_t errsize)
{
	jwt_keyset *ks = calloc(1, sizeof(jwt_keyset));
	jwt_alg		alg = algname && *algname ? jwt_alg_parse(algname, strlen(algname)) : JWT_ALG_UNKNOWN;
	json_t	   *doc = NULL;
	bool		ok;

	if (ks == NULL) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	if (algname && *algname && alg == JWT_ALG_UNKNOWN) {
		snprintf(err, errsize, "--jwt-alg %.16s: not one of HS256 HS384 HS512 RS256 RS384 RS512 "
				 "ES256 ES384", algname);
		ok = false;
	} else if (starts_with(data, len, "{") &&
			   (doc = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, NULL)) != NULL &&
			   json_object_get(doc, "keys") != NULL)
		ok = load_jwks(ks, doc, alg, err, errsize);
	else if (alg == JWT_ALG_UNKNOWN) {
		snprintf(err, errsize, "--jwt-alg is required unless the key file is a JWKS");
		ok = false;
	} else if (starts_with(data, len, "-----BEGIN"))
		ok = load_pem(ks, data, len, alg, err, errsize);
	else
		ok = load_secret(ks, data, len, alg, err, errsize);
	json_decref(doc);
	if (!ok) {
		jwt_keyset_free(ks);
		return NULL;
	}
	return ks;
}

jwt_keyset *
jwt_keyset_load(const char *path, const char *alg, char *err, size_t errsize)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *buf;
	size_t		n;
	jwt_keyset *ks;

	if (f == NULL) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(JWT_MAX_KEYFILE + 1)) == NULL) {
		fclose(f);
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, JWT_MAX_KEYFILE + 1, f);
	if (ferror(f) || n > JWT_MAX_KEYFILE) {
		snprintf(err, errsize, "%s: %s", path, ferror(f) ? "read error" : "larger than 1 MiB");
		ks = NULL;
	} else
		ks = jwt_keyset_parse(buf, n, alg, err, errsize);
	fclose(f);
	OPENSSL_cleanse(buf, n);
	free(buf);
	return ks;
}

/* ---- verification ---- */

static const char *claim_str(json_t *v);

/* The key for a token's kid and alg (header already checked). */
static jwt_status
pick_key(const jwt_keyset *ks, const char *kid, jwt_alg alg, const jwt_key **out)
{
	const jwt_key *k = NULL;

	if (ks->n == 1 && (kid == NULL || ks->keys[0].kid == NULL))
		k = &ks->keys[0];
	else if (kid != NULL)
		for (size_t i = 0; i < ks->n && k == NULL; i++)
			if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0)
				k = &ks->keys[i];
	if (k == NULL)
		return JWT_UNKNOWN_KID;
	if (k->alg != alg)
		return JWT_BAD_ALG;
	*out = k;
	return JWT_OK;
}

static jwt_status
verify_hmac(const jwt_key *k, const char *data, size_t dlen, const unsigned char *sig, size_t slen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;

	if (HMAC(alg_md(k->alg), k->secret, (int) k->secret_len, (const unsigned char *) data, dlen,
			 mac, &mlen) == NULL)
		return JWT_INTERNAL;
	if (slen != mlen || CRYPTO_memcmp(mac, sig, mlen) != 0)
		return JWT_BAD_SIGNATURE;
	return JWT_OK;
}

/* Raw r||s (JWS) to a DER ECDSA-Sig-Value (OpenSSL); *der is OPENSSL_malloc'd. */
static jwt_status
ec_sig_der(jwt_alg alg, const unsigned char *sig, size_t slen, unsigned char **der, int *dlen)
{
	size_t		n = alg_ec_size(alg);
	ECDSA_SIG  *es;
	BIGNUM	   *r, *s;

	if (slen != 2 * n)
		return JWT_BAD_SIGNATURE;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, (int) n, NULL);
	s = BN_bin2bn(sig + n, (int) n, NULL);
	if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
		ECDSA_SIG_free(es);
		BN_free(r);
		BN_free(s);
		return JWT_INTERNAL;
	}
	*der = NULL;
	*dlen = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	return *dlen > 0 ? JWT_OK : JWT_INTERNAL;
}

static jwt_status
verify_pkey(const jwt_key *k, const char *data, size_t dlen, const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *m;
	unsigned char *der = NULL;
	int			derlen = 0, rc;
	jwt_status	st;

	if (alg_is_rsa(k->alg) && slen != (size_t) EVP_PKEY_get_size(k->pkey))
		return JWT_BAD_SIGNATURE;
	if (alg_ec_size(k->alg) != 0) {
		if ((st = ec_sig_der(k->alg, sig, slen, &der, &derlen)) != JWT_OK)
			return st;
		sig = der;
		slen = (size_t) derlen;
	}
	m = EVP_MD_CTX_new();
	if (m == NULL || EVP_DigestVerifyInit(m, NULL, alg_md(k->alg), NULL, k->pkey) != 1)
		rc = -1;
	else
		rc = EVP_DigestVerify(m, sig, slen, (const unsigned char *) data, dlen);
	EVP_MD_CTX_free(m);
	OPENSSL_free(der);
	/* a malformed signature is 0 (or an error on a DER OpenSSL rejects) */
	return rc == 1 ? JWT_OK : rc == 0 || derlen > 0 ? JWT_BAD_SIGNATURE : JWT_INTERNAL;
}

/*
 * A part (header or payload), parsed the way filters see JSON: numbers
 * keep their exact value (jansson alone would round or refuse big ones),
 * and a key given twice counts with its last value, as in jsonb.
 */
static json_t *
payload_json(const unsigned char *buf, long len, bool *nomem)
{
	sse_doc    *doc = NULL;
	sse_json_status st = sse_doc_parse((const char *) buf, (size_t) len, &doc);
	json_t	   *v = NULL;

	*nomem = st == SSE_JSON_NOMEM;
	if (st == SSE_JSON_OK && sse_doc_is_object(doc))
		v = json_incref((json_t *) sse_doc_json(doc));
	sse_doc_free(doc);
	return v;
}

static jwt_status
check_header(const jwt_keyset *ks, json_t *h, const jwt_key **key)
{
	const char *alg = claim_str(json_object_get(h, "alg"));
	json_t	   *kidv = json_object_get(h, "kid");
	const char *kid = claim_str(kidv);
	jwt_alg		a;

	if (alg == NULL)
		return JWT_BAD_ALG;
	a = jwt_alg_parse(alg, strlen(alg));
	if (a == JWT_ALG_UNKNOWN)
		return JWT_BAD_ALG;		/* "none" included */
	if (kidv != NULL && kid == NULL)
		return JWT_MALFORMED;
	if (json_object_get(h, "crit") != NULL)
		return JWT_MALFORMED;	/* extensions the bridge does not understand */
	return pick_key(ks, kid, a, key);
}

/*
 * A NumericDate claim; false when absent or not a number.  The payload
 * tree is sse_json_parse's: a number is its exact decimal text, which may
 * be beyond any C type; it is clamped, never wrapped.
 */
static bool
claim_time(json_t *p, const char *name, int64_t *out, bool *nomem)
{
	json_t	   *v = json_object_get(p, name);
	sse_scalar	sc;
	char	   *text;
	double		d;

	if (v == NULL || !sse_json_scalar(v, &sc) || sc.tag != 'n')
		return false;
	if ((text = strndup(sc.s, sc.len)) == NULL) {
		*nomem = true;
		return false;
	}
	d = strtod(text, NULL);		/* beyond double's range: +-HUGE_VAL, clamped */
	free(text);
	if (d != d || d >= 9.2e18 || d <= -9.2e18)	/* NaN cannot come from JSON */
		*out = d >= 9.2e18 ? INT64_MAX : INT64_MIN;
	else {
		*out = (int64_t) d;		/* toward zero, then down: the floor */
		if ((double) *out > d)
			(*out)--;
	}
	return true;
}

/* A string claim (not a number, no NUL byte); NULL otherwise. */
static const char *
claim_str(json_t *v)
{
	sse_scalar	sc;

	if (v == NULL || !sse_json_scalar(v, &sc) || sc.tag != 's' || strlen(sc.s) != sc.len)
		return NULL;
	return sc.s;
}

static bool
aud_ok(json_t *aud, const char *want)
{
	size_t		i;
	json_t	   *v;

	const char *one = claim_str(aud);

	if (one != NULL)
		return strcmp(one, want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, v) {
		const char *el = claim_str(v);

		if (el != NULL && strcmp(el, want) == 0)
			return true;
	}
	return false;
}

static jwt_status
check_times(json_t *p, const jwt_policy *pol, int64_t now, jwt_claims *out)
{
	int64_t		nbf;
	bool		nomem = false;

	if (!claim_time(p, "exp", &out->exp, &nomem))
		return nomem ? JWT_INTERNAL : JWT_MISSING_EXP;
	if (out->exp <= INT64_MAX - pol->leeway && now >= out->exp + pol->leeway)
		return JWT_EXPIRED;
	if (json_object_get(p, "nbf") != NULL) {
		if (!claim_time(p, "nbf", &nbf, &nomem))
			return nomem ? JWT_INTERNAL : JWT_MALFORMED;
		if (now <= INT64_MAX - pol->leeway && now + pol->leeway < nbf)
			return JWT_NOT_YET;
	}
	return JWT_OK;
}

static jwt_status
check_claims(json_t *p, const jwt_policy *pol, int64_t now, jwt_claims *out)
{
	const char *sub = claim_str(json_object_get(p, "sub"));
	jwt_status	st = check_times(p, pol, now, out);

	if (st != JWT_OK)
		return st;
	if (sub == NULL || sub[0] == '\0' || strlen(sub) > JWT_MAX_SUB)
		return JWT_MISSING_SUB;
	if (pol->issuer && *pol->issuer) {
		const char *iss = claim_str(json_object_get(p, "iss"));

		if (iss == NULL || strcmp(iss, pol->issuer) != 0)
			return JWT_BAD_ISSUER;
	}
	if (pol->audience && *pol->audience && !aud_ok(json_object_get(p, "aud"), pol->audience))
		return JWT_BAD_AUDIENCE;
	if ((out->sub = strdup(sub)) == NULL)
		return JWT_INTERNAL;
	return JWT_OK;
}

static jwt_status
grant_channels(json_t *chans, jwt_claims *out)
{
	size_t		i;
	json_t	   *v;

	if (chans == NULL)
		return JWT_OK;
	if (!json_is_array(chans) || json_array_size(chans) > JWT_MAX_CHANNELS)
		return JWT_BAD_GRANT;
	if (json_array_size(chans) == 0)
		return JWT_OK;
	if ((out->channels = calloc(json_array_size(chans), sizeof(char *))) == NULL)
		return JWT_INTERNAL;
	json_array_foreach(chans, i, v) {
		const char *pat = claim_str(v);
		char	   *copy;

		if (pat == NULL || sse_pattern_check(pat, strlen(pat)) != SSE_NAME_OK)
			return JWT_BAD_GRANT;
		if ((copy = strdup(pat)) == NULL)
			return JWT_INTERNAL;
		out->channels[out->nchannels++] = copy;	/* jwt_claims_clear frees it */
	}
	return JWT_OK;
}

/* The granted filter as exact JSON text, compiled once to judge it. */
static jwt_status
grant_filter(json_t *f, jwt_claims *out)
{
	sse_filter *compiled = NULL;
	sse_json_status cs;

	if (f == NULL)
		return JWT_OK;
	if (!json_is_object(f))
		return JWT_BAD_GRANT;
	if (json_object_size(f) == 0)
		return JWT_OK;			/* {}: no narrowing */
	if ((out->filter = filtjson_dump(f)) == NULL)
		return JWT_INTERNAL;
	cs = sse_filter_compile(out->filter, strlen(out->filter), &compiled, NULL);
	sse_filter_free(compiled);
	return cs == SSE_JSON_OK ? JWT_OK : cs == SSE_JSON_NOMEM ? JWT_INTERNAL : JWT_BAD_GRANT;
}

static jwt_status
check_grant(json_t *p, jwt_claims *out)
{
	json_t	   *sse = json_object_get(p, "sse");
	jwt_status	st;

	if (sse == NULL)
		return JWT_OK;
	if (!json_is_object(sse))
		return JWT_BAD_GRANT;
	out->has_grant = true;
	if ((st = grant_channels(json_object_get(sse, "channels"), out)) != JWT_OK)
		return st;
	return grant_filter(json_object_get(sse, "filter"), out);
}

/* The three parts of a compact JWS; false unless exactly two dots. */
static bool
split(const char *t, size_t len, size_t *d1, size_t *d2)
{
	const char *a = memchr(t, '.', len), *b;

	if (a == NULL)
		return false;
	b = memchr(a + 1, '.', len - (size_t) (a + 1 - t));
	if (b == NULL || memchr(b + 1, '.', len - (size_t) (b + 1 - t)) != NULL)
		return false;
	*d1 = (size_t) (a - t);
	*d2 = (size_t) (b - t);
	return true;
}

static jwt_status
verify_parts(const jwt_keyset *ks, const char *t, size_t len, size_t d1, size_t d2,
			 const jwt_policy *pol, int64_t now, jwt_claims *out)
{
	unsigned char hbuf[JWT_MAX_PART], pbuf[JWT_MAX_PART], sbuf[JWT_MAX_PART];
	long		hl = jwt_b64url_decode(t, d1, hbuf, sizeof(hbuf));
	long		pl = jwt_b64url_decode(t + d1 + 1, d2 - d1 - 1, pbuf, sizeof(pbuf));
	long		sl = jwt_b64url_decode(t + d2 + 1, len - d2 - 1, sbuf, sizeof(sbuf));
	const jwt_key *k = NULL;
	json_t	   *h, *p;
	bool		nomem;
	jwt_status	st;

	if (hl <= 0 || pl <= 0 || sl < 0)
		return JWT_MALFORMED;
	if ((h = payload_json(hbuf, hl, &nomem)) == NULL)
		return nomem ? JWT_INTERNAL : JWT_MALFORMED;
	st = check_header(ks, h, &k);
	json_decref(h);
	if (st != JWT_OK)
		return st;
	if (sl == 0)
		return JWT_BAD_SIGNATURE;
	st = alg_is_hmac(k->alg) ? verify_hmac(k, t, d2, sbuf, (size_t) sl)
		: verify_pkey(k, t, d2, sbuf, (size_t) sl);
	if (st != JWT_OK)
		return st;
	if ((p = payload_json(pbuf, pl, &nomem)) == NULL)
		return nomem ? JWT_INTERNAL : JWT_MALFORMED;
	st = check_claims(p, pol, now, out);
	if (st == JWT_OK)
		st = check_grant(p, out);
	json_decref(p);
	return st;
}

jwt_status
jwt_verify(const jwt_keyset *ks, const char *token, size_t len, const jwt_policy *pol,
		   int64_t now, jwt_claims *out)
{
	size_t		d1, d2;
	jwt_status	st;

	memset(out, 0, sizeof(*out));
	if (len > JWT_MAX_TOKEN)
		return JWT_TOO_LARGE;
	if (ks == NULL || ks->n == 0)
		return JWT_UNKNOWN_KID;
	if (!split(token, len, &d1, &d2))
		return JWT_MALFORMED;
	st = verify_parts(ks, token, len, d1, d2, pol, now, out);
	if (st != JWT_OK)
		jwt_claims_clear(out);
	return st;
}

void
jwt_claims_clear(jwt_claims *c)
{
	free(c->sub);
	for (size_t i = 0; i < c->nchannels; i++)
		free(c->channels[i]);
	free(c->channels);
	free(c->filter);
	memset(c, 0, sizeof(*c));
}

bool
jwt_hash(const char *token, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	return EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

void
jwt_hash_hex(const unsigned char hash[32], char out[13])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 6; i++) {
		out[2 * i] = hex[hash[i] >> 4];
		out[2 * i + 1] = hex[hash[i] & 15];
	}
	out[12] = '\0';
}
