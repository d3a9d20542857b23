#ifndef GW_FWURL_H
#define GW_FWURL_H
/*
 * Download URLs of the firmware server (DESIGN §5.5): every upgrade record gets its own URL
 *   {base_url}/ota/firmware/{firmwareId}/{recordId}?token={token}
 * where token = lowercase hex HMAC-SHA256(download key, "{firmwareId}.{recordId}"). The
 * download key is 32 random bytes kept as 64 hex characters in <data_dir>/download.key
 * (mode 0600), created on first use and reused after a restart, so URLs already pushed to
 * devices stay valid.
 *
 * The core builds fileUrl for thing.ota.upgrade with these functions; the admin thread's
 * firmware server checks the token with the same key. Pure functions (the loader does file
 * I/O only); any thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_FWURL_KEY_LEN 32
#define GW_FWURL_TOKEN_LEN 64 /* hex characters, without the NUL */

/*
 * Reads <data_dir>/download.key into key, creating it (64 random hex characters, mode 0600)
 * when missing. Two processes or threads creating it at once end up with the same key (the
 * file appears atomically through link()). data_dir: borrowed. Any thread.
 * Returns 0, -EINVAL (a file that is not 64 hex characters), or -errno of the file I/O.
 */
int gw_admin_download_key_load(const char *data_dir, uint8_t key[GW_FWURL_KEY_LEN]);

/* out (at least GW_FWURL_TOKEN_LEN + 1 bytes) receives the record's token. Any thread. */
void gw_admin_firmware_token(const uint8_t key[GW_FWURL_KEY_LEN], uint64_t firmware_id,
                             uint64_t record_id, char out[GW_FWURL_TOKEN_LEN + 1]);

/* true when token is the record's token (compared in constant time). token: borrowed,
 * may be NULL. Any thread. */
bool gw_admin_firmware_token_ok(const uint8_t key[GW_FWURL_KEY_LEN], uint64_t firmware_id,
                                uint64_t record_id, const char *token);

/*
 * Writes "{base_url}/ota/firmware/{firmware_id}/{record_id}?token={token}" into out[len]
 * (one trailing '/' of base_url is dropped). base_url: borrowed, e.g. "http://10.0.0.5:8080"
 * (config firmware.base_url). Returns 0, -EINVAL (empty base_url, zero id) or -ENOSPC (out
 * too small; out then holds ""). Any thread.
 */
int gw_admin_firmware_url(const char *base_url, const uint8_t key[GW_FWURL_KEY_LEN],
                          uint64_t firmware_id, uint64_t record_id, char *out, size_t len);

#endif
