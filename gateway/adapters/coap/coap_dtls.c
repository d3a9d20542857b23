/*
 * DESIGN: the optional DTLS-PSK listener (coap.dtls_listen; libcoap with OpenSSL).
 *
 * Identity and key: the PSK identity is the device's clientId "pk.dn"; the key is the
 * device's DESIGN §4 password as text: the 64 lowercase hex characters of
 * HMAC-SHA256(deviceSecret, "clientId" + pk.dn + "deviceName" + dn + "deviceSecret" + secret +
 * "productKey" + pk), i.e. what an MQTT device sends as its password. Only the device and the
 * gateway (which keeps the secret) can compute it; it never travels. A device on DTLS is
 * proven by the handshake: its requests need no option-2088 token (gw__coap_check_token),
 * but may only address its own /topic/sys/{pk}/{dn}/ paths.
 *
 * Threads: the identity callback runs on the CoAP thread (inside coap_io_process, during a
 * handshake); it reads the secret with one short LMDB read transaction
 * (gw_store_ro_device_secret) and hands libcoap a key that libcoap copies into the session.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "coap_internal.h"
#include "gw_auth.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_store.h"

static const char psk_hint[] = "iotgw";

static const coap_bin_const_t *on_psk_identity(coap_bin_const_t *identity, coap_session_t *session,
                                               void *arg)
{
    struct gw__coap *a = arg;
    char id[GW_AUTH_ID_SIZE], secret[GW_SECRET_MAX + 1], hex[GW_AUTH_HEX_SIZE];
    struct gw_auth_identity who;
    int rc;

    (void)session;
    if (!identity || !identity->length || identity->length >= sizeof(id) ||
        memchr(identity->s, '\0', identity->length))
        return NULL;
    memcpy(id, identity->s, identity->length);
    id[identity->length] = '\0';
    rc = gw_auth_parse_client_id(id, &who, NULL);
    if (rc == 0)
        rc = gw_store_ro_device_secret(gw_core_store(a->base.core), who.product_key,
                                       who.device_name, secret, sizeof(secret));
    if (rc == 0)
        rc = gw_auth_password(who.product_key, who.device_name, secret, hex);
    memset(secret, 0, sizeof(secret));
    if (rc) {
        gw_log(GW_LOG_INFO, a->base.name, "DTLS identity %.80s refused: %s", id,
               gw_strerror(rc == GW_E_NOT_FOUND ? GW_E_AUTH_FAILED : rc));
        return NULL;
    }
    memcpy(a->psk, hex, sizeof(a->psk));
    memset(hex, 0, sizeof(hex));
    a->psk_key.s = a->psk;
    a->psk_key.length = sizeof(a->psk);
    return &a->psk_key;
}

int gw__coap_dtls_open(struct gw__coap *a)
{
    coap_dtls_spsk_t setup;

    if (!a->dtls.host[0])
        return 0;
    if (!coap_dtls_is_supported()) {
        gw_log(GW_LOG_ERROR, a->base.name, "dtls_listen: this libcoap has no DTLS support");
        return -ENOTSUP;
    }
    memset(&setup, 0, sizeof(setup));
    setup.version = COAP_DTLS_SPSK_SETUP_VERSION;
    setup.validate_id_call_back = on_psk_identity;
    setup.id_call_back_arg = a;
    setup.psk_info.hint.s = (const uint8_t *)psk_hint;
    setup.psk_info.hint.length = sizeof(psk_hint) - 1;
    if (!coap_context_set_psk2(a->ctx, &setup)) {
        gw_log(GW_LOG_ERROR, a->base.name, "dtls_listen: cannot set up PSK");
        return -EINVAL;
    }
    return gw__coap_endpoint(a, &a->dtls, COAP_PROTO_DTLS, &a->dtls_port);
}
