#ifndef GW_ERROR_H
#define GW_ERROR_H
/*
 * Error codes shared by every module. Functions return 0 on success, a negative errno
 * (-EINVAL, -ENOMEM, -EAGAIN, -EPROTO, ...) or one of the GW_E_* codes below, which live in
 * the reserved range -10999..-10000 so they never collide with errno values.
 *
 * Each GW_E_* code has one row in the table of gw_error.c: its name, the business code the
 * admin API puts in its envelope (the reference platform's numbers where it has one) and a
 * message. To add a code: add it here (before GW_E__END) and its row there; a unit test
 * checks that every code has a row.
 */
#include <stdint.h>

enum gw_error {
    GW_E__BASE = -10000,
    /* codecs: wire formats */
    GW_E_TRUNCATED = -10001,       /* input ends before the structure it announces */
    GW_E_BAD_MAGIC = -10002,       /* binary frame does not start with 0x7E */
    GW_E_BAD_VERSION = -10003,     /* binary frame version is not 1 */
    GW_E_BAD_TYPE = -10004,        /* binary frame type is not request/reply */
    GW_E_LENGTH_MISMATCH = -10005, /* declared length differs from the buffer length */
    GW_E_FRAME_TOO_LARGE = -10006, /* frame larger than GW_FRAME_MAX (64 KiB) */
    GW_E_BAD_JSON = -10007,        /* not one well-formed JSON value (or trailing bytes) */
    GW_E_BAD_UTF8 = -10008,        /* an id/method/identity is not valid UTF-8 */
    GW_E_TOO_DEEP = -10009,        /* JSON nesting deeper than the codec accepts */
    GW_E_BAD_PARAMS = -10010,      /* params/data of the wrong JSON type */
    GW_E_UNKNOWN_METHOD = -10011,  /* method string not in the method table */
    GW_E_BAD_TOPIC = -10012,       /* topic outside /sys/{pk}/{dn}/..., wildcard, foreign */
    GW_E_BAD_FIELD = -10013,       /* a field has the wrong type or is out of range */
    GW_E_MISSING_FIELD = -10014,   /* a required field is absent */
    GW_E_FRAME_BAD_LENGTH = -10019, /* length field + adjustment gives a negative length */
    /* authentication and tokens */
    GW_E_AUTH_FAILED = -10020,     /* wrong credentials */
    GW_E_TOKEN_MALFORMED = -10021, /* not a JWT of the expected shape */
    GW_E_TOKEN_FORGED = -10022,    /* signature does not verify */
    GW_E_TOKEN_EXPIRED = -10023,   /* exp in the past */
    GW_E_NOT_AUTHENTICATED = -10024, /* a session sent business messages before logging in */
    GW_E_IDENTITY_MISMATCH = -10025, /* the token's device is not the one addressed (HTTP 403) */
    /* configuration */
    GW_E_CONFIG = -10030,          /* bad configuration (the message names the key) */
    /* storage */
    GW_E_NOT_FOUND = -10040,       /* no row with that key */
    GW_E_EXISTS = -10041,          /* unique key already taken */
    GW_E_MAP_FULL = -10042,        /* LMDB map full: raise storage.map_size_mb */
    GW_E_STORE = -10043,           /* any other LMDB failure (logged where it happened) */
    GW_E_SCHEMA = -10044,          /* store written by a newer schema, or corrupt meta */
    GW_E_VALUE_TOO_LONG = -10045,  /* a string does not fit its stored field */
    /* business rules (admin API codes from the reference platform) */
    GW_E_PRODUCT_NOT_EXISTS = -10100,          /* 1050001000 */
    GW_E_PRODUCT_KEY_EXISTS = -10101,          /* 1050001001 */
    GW_E_DEVICE_NOT_EXISTS = -10110,           /* 1050003000 */
    GW_E_DEVICE_NAME_EXISTS = -10111,          /* 1050003001 */
    GW_E_DEVICE_NOT_CONNECTED = -10112,        /* 1050003007 */
    GW_E_FIRMWARE_NOT_EXISTS = -10120,         /* 1050008000 */
    GW_E_FIRMWARE_VERSION_DUPLICATE = -10121,  /* 1050008001 */
    GW_E_TASK_NOT_EXISTS = -10130,             /* 1050008100 */
    GW_E_TASK_NAME_DUPLICATE = -10131,         /* 1050008101 */
    GW_E_TASK_DEVICE_ON_FIRMWARE = -10132,     /* 1050008102 */
    GW_E_TASK_NO_DEVICE = -10133,              /* 1050008103 */
    GW_E_TASK_NOT_IN_PROGRESS = -10134,        /* 1050008104 */
    GW_E_TASK_DEVICE_UPGRADING = -10135,       /* 1050008105 (fix: the reference reuses 102) */
    GW_E_RECORD_NOT_EXISTS = -10140,           /* 1050008200 */
    GW_E_RECORD_NOT_ACTIVE = -10141,           /* 1050008201 */
    GW_E_RECORD_NO_ACTIVE = -10142,            /* 1050008202 */
    GW_E_PROGRESS_VERSION_MISMATCH = -10143,   /* 1050008203 (beyond) */
    GW_E_PROGRESS_BAD_STATUS = -10144,         /* 1050008204 (beyond) */
    GW_E_PROGRESS_BAD_VALUE = -10145,          /* 1050008205 (beyond) */
    /* runtime */
    GW_E_TIMEOUT = -10200,         /* peer did not answer in time */
    GW_E_QUEUE_FULL = -10201,      /* bounded queue full (policy: caller retries or drops) */
    GW_E_SHUTDOWN = -10202,        /* the component is stopping */
    /* MQTT adapter */
    GW_E_BROKER = -10250,          /* the private MQTT broker failed to start (see its log) */
    /* Modbus adapters */
    GW_E_MODBUS_EXCEPTION = -10260, /* the Modbus device answered with an exception response */
    GW_E__END = -10999
};

/* Message for any return code (GW_E_*, negative errno, 0). Any thread; static storage. */
const char *gw_strerror(int err);

/* Symbolic name ("GW_E_MAP_FULL", "EINVAL", "OK"). Any thread; static storage. */
const char *gw_error_name(int err);

/*
 * The code the admin API reports for err: the reference platform's business code for rule
 * violations (1050008000, ...), 400 for bad input, 401 for auth/token errors, 404 for
 * GW_E_NOT_FOUND, 500 for everything else; 0 for 0. Any thread.
 */
int64_t gw_error_api_code(int err);

#endif
