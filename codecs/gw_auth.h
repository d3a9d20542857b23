#ifndef GW_AUTH_H
#define GW_AUTH_H
/*
 * Device authentication (DESIGN §4, REFERENCE §4.1): the reference platform's credentials,
 * so its devices log in unchanged.
 *   clientId = "pk.dn", username = "dn&pk",
 *   password = lowercase hex HMAC-SHA256(key = deviceSecret, msg = "clientId" + pk + "." + dn +
 *              "deviceName" + dn + "deviceSecret" + secret + "productKey" + pk)
 *   dynamic registration sign = lowercase hex HMAC-SHA256(key = productSecret,
 *              msg = "deviceName" + dn + "productKey" + pk)
 * The canonical clientId is always used to compute the password, whatever clientId the
 * device sent. Pure functions, any thread; every pointer argument is borrowed. Strings are
 * NUL-terminated UTF-8.
 *
 * Identity rules (stricter than the reference, which checks nothing): productKey 1..32 bytes,
 * deviceName 1..64 bytes, valid UTF-8, no control characters and none of / + # & (topic
 * separators, MQTT wildcards, the username separator); a productKey has no '.' either (the
 * clientId separator), so "pk.dn" splits at its first '.'.
 */
#include <stdbool.h>
#include <stddef.h>

#define GW_AUTH_PK_MAX 32
#define GW_AUTH_DN_MAX 64
#define GW_AUTH_HEX_SIZE 65 /* 64 lowercase hex chars + NUL */
/* Longest clientId / username: pk + separator + dn + NUL. */
#define GW_AUTH_ID_SIZE (GW_AUTH_PK_MAX + 1 + GW_AUTH_DN_MAX + 1)

struct gw_auth_identity {
    char product_key[GW_AUTH_PK_MAX + 1];
    char device_name[GW_AUTH_DN_MAX + 1];
};

/*
 * Checks a productKey / deviceName pair against the identity rules above. Returns 0, or
 * GW_E_BAD_FIELD with *reason (static text; reason may be NULL).
 */
int gw_auth_identity_check(const char *pk, const char *dn, const char **reason);

/*
 * Splits a username "dn&pk" (exactly one '&') into *out and checks the identity rules.
 * Returns 0, or GW_E_AUTH_FAILED with *reason (static text; reason may be NULL).
 */
int gw_auth_parse_username(const char *username, struct gw_auth_identity *out, const char **reason);

/* Same for a clientId "pk.dn" (split at the first '.'). */
int gw_auth_parse_client_id(const char *client_id, struct gw_auth_identity *out,
                            const char **reason);

/*
 * Writes the canonical clientId "pk.dn" / username "dn&pk" into out (cap bytes, at least
 * GW_AUTH_ID_SIZE is always enough). Returns 0, GW_E_BAD_FIELD for an invalid identity, or
 * -ENOSPC when cap is too small.
 */
int gw_auth_client_id(const char *pk, const char *dn, char *out, size_t cap);
int gw_auth_username(const char *pk, const char *dn, char *out, size_t cap);

/*
 * The device password for (pk, dn, deviceSecret) as 64 lowercase hex chars + NUL into
 * out_hex (GW_AUTH_HEX_SIZE bytes). Returns 0, or -EINVAL on a NULL argument.
 */
int gw_auth_password(const char *pk, const char *dn, const char *secret, char *out_hex);

/* The dynamic-registration sign for (pk, dn, productSecret), same format and returns. */
int gw_auth_register_sign(const char *pk, const char *dn, const char *product_secret,
                          char *out_hex);

/*
 * Checks a password a device sent against its secret, in constant time (the comparison does
 * not depend on how many leading characters match). The password must be exactly the
 * lowercase hex form. Returns 0 when it matches, GW_E_AUTH_FAILED otherwise, -EINVAL on a
 * NULL argument.
 */
int gw_auth_check(const char *pk, const char *dn, const char *secret, const char *password);

/* Same for a dynamic-registration sign and the product secret. */
int gw_auth_register_check(const char *pk, const char *dn, const char *product_secret,
                           const char *sign);

#endif
