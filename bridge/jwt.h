/*
 * jwt.h - verification of JSON Web Tokens (JWS compact form) with OpenSSL.
 *
 * A keyset is loaded from one file: an HMAC secret (the file's bytes, at
 * least JWT_MIN_SECRET of them), a PEM public key (RSA or EC), or a JWKS
 * document {"keys":[...]} whose keys are chosen by "kid".  Every key has
 * one algorithm, fixed when it is loaded: a token whose header announces
 * another one is refused, so "none", an HMAC made with a public key as the
 * secret, or an RSA token sent to an EC key never verify.
 *
 * jwt_verify checks, in this order: size, shape and base64url, the header
 * (alg, kid, crit), the signature (HMACs compared in constant time), then
 * the claims: exp (required), nbf, sub (required), iss and aud when the
 * policy names them, and the "sse" grant.  Only then is anything of the
 * payload handed out.
 *
 * Nothing here logs; a caller that logs a token names it by jwt_hash_hex,
 * never by its text.
 *
 * Ownership: a keyset owns its keys; jwt_verify keeps no reference to the
 * token; a jwt_claims owns its strings (jwt_claims_clear).
 */
#ifndef BRIDGE_JWT_H
#define BRIDGE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN		8192	/* bytes of a token, header.payload.signature */
#define JWT_MIN_SECRET		32		/* bytes of an HMAC secret */
#define JWT_MAX_CHANNELS	64		/* patterns a token may grant */
#define JWT_MAX_SUB			256		/* bytes of a subject */

typedef enum jwt_alg {
	JWT_ALG_UNKNOWN = 0,
	JWT_HS256, JWT_HS384, JWT_HS512,
	JWT_RS256, JWT_RS384, JWT_RS512,
	JWT_ES256, JWT_ES384,
	JWT_ALG_COUNT
} jwt_alg;

/* "HS256" -> JWT_HS256; JWT_ALG_UNKNOWN for anything else (and "none"). */
jwt_alg		jwt_alg_parse(const char *s, size_t len);
const char *jwt_alg_name(jwt_alg a);

typedef enum jwt_status {
	JWT_OK = 0,
	JWT_TOO_LARGE,				/* over JWT_MAX_TOKEN */
	JWT_MALFORMED,				/* not three base64url parts, JSON, ... */
	JWT_BAD_ALG,				/* alg missing, unknown, "none" or not the key's */
	JWT_UNKNOWN_KID,			/* no key for the token's kid */
	JWT_BAD_SIGNATURE,			/* empty or wrong */
	JWT_EXPIRED,				/* now >= exp + leeway */
	JWT_NOT_YET,				/* now + leeway < nbf */
	JWT_MISSING_EXP,
	JWT_MISSING_SUB,
	JWT_BAD_ISSUER,
	JWT_BAD_AUDIENCE,
	JWT_BAD_GRANT,				/* "sse" is not {"channels":[patterns],"filter":{...}} */
	JWT_INTERNAL				/* out of memory or a library failure: no verdict */
} jwt_status;

/* A short English reason, e.g. "signature does not verify". */
const char *jwt_status_message(jwt_status st);

typedef struct jwt_keyset jwt_keyset;

/*
 * Load the keys of path.  alg is --jwt-alg (NULL or "" when not given): it
 * is required for a secret or a PEM key and must fit the key; for a JWKS
 * each key takes its own "alg", else alg, else the one its type implies
 * (RSA: RS256, EC P-256: ES256, P-384: ES384).  NULL with the reason in
 * err on any problem.
 */
jwt_keyset *jwt_keyset_load(const char *path, const char *alg, char *err, size_t errsize);
/* The same from bytes in memory (tests, fuzzing). */
jwt_keyset *jwt_keyset_parse(const unsigned char *data, size_t len, const char *alg,
							 char *err, size_t errsize);
void		jwt_keyset_free(jwt_keyset *ks);
size_t		jwt_keyset_count(const jwt_keyset *ks);

typedef struct jwt_policy {
	const char *issuer;			/* NULL or "": not checked */
	const char *audience;		/* NULL or "": not checked */
	int64_t		leeway;			/* seconds, for exp and nbf */
} jwt_policy;

typedef struct jwt_claims {
	char	   *sub;
	int64_t		exp;
	bool		has_grant;		/* "sse" present */
	char	  **channels;		/* granted patterns, each passed sse_pattern_check */
	size_t		nchannels;
	char	   *filter;			/* the granted filter as JSON text (exact numbers); NULL: none */
} jwt_claims;

/*
 * Verify token (len bytes, no terminator needed) at time now (seconds since
 * the epoch).  On JWT_OK *out holds the claims; otherwise *out is empty.
 */
jwt_status	jwt_verify(const jwt_keyset *ks, const char *token, size_t len,
					   const jwt_policy *pol, int64_t now, jwt_claims *out);
void		jwt_claims_clear(jwt_claims *c);

/* SHA-256 of the token (32 bytes); false when OpenSSL fails. */
bool		jwt_hash(const char *token, size_t len, unsigned char out[32]);
/* The first 6 bytes of a hash as 12 hex digits, for log lines. */
void		jwt_hash_hex(const unsigned char hash[32], char out[13]);

/* Strict base64url without padding; returns the decoded length or -1. */
long		jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outsize);

#endif
