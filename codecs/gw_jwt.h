#ifndef GW_JWT_H
#define GW_JWT_H
/*
 * Session tokens for HTTP, CoAP and UDP devices (DESIGN §4, REFERENCE §4.1): JWT (RFC 7519)
 * signed with HS256 and the gateway secret, claims {"productKey","deviceName","exp"} with
 * exp in epoch seconds. Sans-I/O: the caller passes the clock. Pure functions, any thread;
 * every pointer argument is borrowed.
 *
 * Verification order: shape (three non-empty base64url parts without padding), header
 * (alg must be "HS256"; typ absent or "JWT"; no "crit"), signature (constant time), claims,
 * expiry. So "alg":"none" is malformed, a tampered payload is forged, and the payload is not
 * parsed before its signature is checked.
 */
#include <stddef.h>
#include <stdint.h>

#include "gw_auth.h"

/* Longest token gw_jwt_verify reads; longer input is malformed. */
#define GW_JWT_MAX_LEN 2048
/* Largest exp accepted (9999-12-31T23:59:59Z): keeps exp an exact integer in JSON. */
#define GW_JWT_EXP_MAX INT64_C(253402300799)

struct gw_jwt_claims {
    char product_key[GW_AUTH_PK_MAX + 1];
    char device_name[GW_AUTH_DN_MAX + 1];
    int64_t exp; /* epoch seconds */
};

/*
 * Creates a token for (pk, dn) valid until exp_epoch_s. *out is a new NUL-terminated string
 * owned by the caller (free()). Returns 0, GW_E_BAD_FIELD (identity fails
 * gw_auth_identity_check, or exp outside 0..GW_JWT_EXP_MAX), -EINVAL (no secret) or -ENOMEM.
 */
int gw_jwt_create(const uint8_t *secret, size_t secret_len, const char *pk, const char *dn,
                  int64_t exp_epoch_s, char **out);

/*
 * Verifies token[0..len) (not necessarily NUL-terminated) at time now_epoch_s; a token is
 * expired when now >= exp. Returns 0 with *claims filled; GW_E_TOKEN_MALFORMED,
 * GW_E_TOKEN_FORGED, GW_E_TOKEN_EXPIRED (*claims is filled then too, for logging);
 * -EINVAL (no secret) or -ENOMEM. *claims is zeroed on every other error.
 */
int gw_jwt_verify(const uint8_t *secret, size_t secret_len, const char *token, size_t len,
                  int64_t now_epoch_s, struct gw_jwt_claims *claims);

#endif
