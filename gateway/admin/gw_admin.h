#ifndef GW_ADMIN_H
#define GW_ADMIN_H
/*
 * The admin HTTP API (DESIGN §7.4) and the firmware server (DESIGN §5.5) on one listener,
 * `admin.listen`. One libwebsockets context runs on the admin's own thread; requests that
 * read or write the store run on a small pool of admin worker threads (reads through LMDB
 * read transactions, writes through gw_core_call), so a slow command never stalls a
 * firmware download.
 *
 * Paths: /admin-api/iot/... (Authorization: Bearer <admin token>, JSON envelope
 * {"code","msg","data"}), GET|HEAD /ota/firmware/{firmwareId}/{recordId}?token=T (per-record
 * token, see gw_fwurl.h), GET|HEAD /ota/firmware/{firmwareId} (admin token).
 *
 * Lifecycle (main thread only): create → start → stop → destroy. The core must outlive the
 * admin (stop the admin before the core). cfg and core are borrowed for the admin's life.
 */
#include <stdint.h>

struct gw_admin;
struct gw_config;
struct gw_core;

/*
 * Prepares the admin: creates <data_dir>/firmware, loads or generates the admin token
 * (admin.token, or <data_dir>/admin.token with mode 0600) and the download key, loads the
 * signing key (firmware.sign_key). Nothing listens yet. Returns 0, GW_E_CONFIG (unreadable
 * or unsuitable sign_key, bad token file; logged with the reason), -ENOMEM or -errno.
 */
int gw_admin_create(struct gw_core *core, const struct gw_config *cfg, struct gw_admin **out);

/*
 * Binds admin.listen, starts the worker threads and the lws thread, and logs the listener
 * URL and where the admin token is. Returns 0, -EADDRINUSE (or another -errno) when the
 * listener cannot be created, -ENOMEM.
 */
int gw_admin_start(struct gw_admin *adm);

/* The port actually bound (admin.listen may ask for port 0); 0 before start. */
int gw_admin_port(const struct gw_admin *adm);

/* Joins the workers first (requests running finish and are answered, queued ones get
 * GW_E_SHUTDOWN, new ones 503; a device/message/send may take up to its timeout, at most
 * 60 s), then wakes and joins the lws thread and closes the listener. Idempotent. */
void gw_admin_stop(struct gw_admin *adm);

/* Stops if needed and frees everything. NULL is fine. */
void gw_admin_destroy(struct gw_admin *adm);

#endif
