#ifndef GW_MB_OTA_JOB_H
#define GW_MB_OTA_JOB_H
/*
 * Private to mb_ota.c (the step machine of DESIGN §5.6) and mb_ota_job.c (a job's image,
 * parameters and state file). A job belongs to its device's thread (mb_internal.h).
 */
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mb_internal.h"

/* "pk/dn" arguments of a log line. */
#define GW__MB_DEV_ARGS(dev) (dev)->cfg->product_key, (dev)->cfg->device_name

enum gw__mb_ota_step {
    GW__MB_STEP_CHECK_VERSION = 0, /* read CURRENT_VERSION */
    GW__MB_STEP_CHECK_STATUS,      /* read STATUS, PROGRESS: fresh start or resume? */
    GW__MB_STEP_READ_NEXT,         /* read NEXT_BLOCK */
    GW__MB_STEP_HEADER,            /* write FILE_SIZE, MD5, TARGET_VERSION */
    GW__MB_STEP_BEGIN,             /* CTRL = 1 */
    GW__MB_STEP_BLOCK,             /* write block next_block */
    GW__MB_STEP_APPLY,             /* CTRL = 2 */
    GW__MB_STEP_POLL,              /* read STATUS, PROGRESS until 4 or 5 */
    GW__MB_STEP_FINAL_VERSION,     /* read CURRENT_VERSION after STATUS 4 */
    GW__MB_STEP_ABORT,             /* CTRL = 3, then the job is dropped */
    GW__MB_STEP_REPORT,            /* the final report waits for room in the core's queue */
};

struct gw__mb_ota {
    char version[GW__MB_OTA_VERSION_BYTES + 1];
    char sha256[65];
    char md5_hex[33];
    uint8_t md5[16];
    uint32_t size, blocks, next_block;
    char task_id[24], record_id[24];
    int fd; /* the image, -1 when not open */
    uint8_t block[GW__MB_OTA_BLOCK_BYTES];
    uint32_t block_loaded; /* index in block[], UINT32_MAX = none */
    uint64_t serial;       /* request ids of our reports: "ota-<serial>-<n>" */
    unsigned posts;
    enum gw__mb_ota_step step;
    bool started;  /* CTRL=1 written: the device may hold part of the image */
    bool applying; /* CTRL=2 written */
    int64_t not_before_ms;
    unsigned errors;
    int last_pct;
    int64_t last_post_ms;
    int64_t saved_ms;
    uint32_t blocks_sent; /* this gateway run, for the log */
    int final_status;     /* GW__MB_STEP_REPORT: 30 or 40 */
    int final_pct;
    char final_desc[200];
};

/* A zeroed job (fd -1, nothing loaded, a fresh serial for its report ids); NULL on ENOMEM. */
struct gw__mb_ota *gw__mb_ota_new(struct gw__mb_dev *dev);
/* Fills j from upgrade params or a state file (the same field names; "md5" is accepted for
 * fileDigestValue). GW_E_BAD_FIELD with why saying which. */
int gw__mb_ota_fill(struct gw__mb_ota *j, const cJSON *p, char *why, size_t whylen);
/* Opens <data_dir>/firmware/<sha256> and checks its size and MD5. 0 or -errno with why. */
int gw__mb_ota_open_image(struct gw__mb_dev *dev, struct gw__mb_ota *j, char *why, size_t whylen);
/* Reads block j->next_block into j->block (zero-padded). 0 or -errno. */
int gw__mb_ota_load_block(struct gw__mb_ota *j);
/* Writes the state file (atomically), at most once a second unless force. */
void gw__mb_ota_save(struct gw__mb_dev *dev, int64_t now, bool force);
/* Drops dev's job and removes its state file. */
void gw__mb_ota_end(struct gw__mb_dev *dev);

#endif
