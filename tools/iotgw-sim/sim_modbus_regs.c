/*
 * DESIGN: the register map of a simulated Modbus device and what its writes mean: two
 * property registers at 0..1 (temperature ×10 as INT16, humidity as UINT16: what the tick's
 * property posts change and the gateway's points poll), and the DESIGN §5.6 OTA block at
 * --modbus-ota-base:
 *   +0 CTRL (W: 1 begin, 2 apply, 3 abort)   +1 STATUS   +2 PROGRESS   +3 FILE_SIZE (u32)
 *   +5 MD5 (16 bytes)   +13 TARGET_VERSION (32)   +29 BLOCK_INDEX (u32)   +31 BLOCK_LEN
 *   +32 BLOCK_DATA (240)   +152 NEXT_BLOCK (u32)   +154 CURRENT_VERSION (32)
 * u32 high word first; strings NUL-padded ASCII, first byte in the high half.
 *
 * A transfer: CTRL=1 takes FILE_SIZE/MD5/TARGET_VERSION and starts receiving (STATUS 1);
 * each block must be the one NEXT_BLOCK names (else exception 3 and nothing changes); CTRL=2
 * after the last block → STATUS 2 (verifying: size, MD5, and SHA-256 against the firmware
 * this run uploaded) → 3 (applying) → 4 with CURRENT_VERSION = target, PROGRESS moving on
 * the way; a verification failure or the `fail` behaviour ends in 5. `silent` devices stay
 * in 2 for ever (the record's upgrade timeout fails them), `drop` devices hang up half way
 * without answering the block they just stored (the gateway must resume at NEXT_BLOCK: a
 * CTRL=1 for a transfer under way is counted and reported as a problem).
 *
 * Main thread. struct sim_mb hangs on d->pstate for the whole run (it outlives the device's
 * connections: that is the point of the resume); its timer (the verify/apply steps) makes
 * freeing asynchronous (sim_mb_free).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md5.h>
#include <mbedtls/sha256.h>

#include "gw_util.h"
#include "sim.h"

enum {
    R_CTRL = 0,
    R_STATUS = 1,
    R_PROGRESS = 2,
    R_FILE_SIZE = 3,
    R_MD5 = 5,
    R_TARGET = 13,
    R_BLOCK_INDEX = 29,
    R_BLOCK_LEN = 31,
    R_BLOCK_DATA = 32,
    R_NEXT_BLOCK = 152,
    R_CURRENT = 154,
    OTA_REGS = 170,
};
enum { ST_IDLE, ST_RECEIVING, ST_VERIFYING, ST_APPLYING, ST_SUCCESS, ST_FAILED };
enum { EX_FUNCTION = 1, EX_ADDRESS = 2, EX_VALUE = 3, EX_FAILURE = 4 };

#define PROP_REGS 2
#define BLOCK_BYTES 240
#define BLOCK_WRITE_REGS 123           /* BLOCK_INDEX .. BLOCK_DATA in one FC16 */
#define MAX_IMAGE (256u * 1024 * 1024) /* a FILE_SIZE above this is refused (exception 3) */
#define STEP_MS 100                    /* verify/apply step length */
#define FIRST_VERSION "sim-1.0.0"      /* CURRENT_VERSION before any upgrade */

struct sim_mb {
    struct sim_dev *d; /* NULL once freed (the timer is closing) */
    uv_timer_t t;
    uint16_t props[PROP_REGS];
    uint16_t ota[OTA_REGS];
    uint8_t *image;
    uint32_t size, next, blocks;
    uint8_t md5[16];
    char target[SIM_VERSION_MAX + 1];
    uint8_t status, step;
    uint32_t conn_gen; /* d->gen of the connection that wrote the latest block */
    int64_t t_begin_ms;
};

static void put_u32(uint16_t *r, uint32_t v)
{
    r[0] = (uint16_t)(v >> 16);
    r[1] = (uint16_t)v;
}

static void put_string(uint16_t *r, size_t regs, const char *str)
{
    size_t n = strlen(str);

    for (size_t i = 0; i < regs; i++) {
        uint8_t hi = 2 * i < n ? (uint8_t)str[2 * i] : 0;
        uint8_t lo = 2 * i + 1 < n ? (uint8_t)str[2 * i + 1] : 0;
        r[i] = (uint16_t)(hi << 8 | lo);
    }
}

static void get_string(const uint16_t *r, size_t regs, char *out, size_t out_len)
{
    size_t k = 0;

    for (size_t i = 0; i < regs && k + 2 < out_len; i++) {
        out[k++] = (char)(r[i] >> 8);
        out[k++] = (char)r[i];
    }
    out[k] = '\0';
}

static void set_status(struct sim_mb *m, uint8_t status, uint16_t progress)
{
    m->status = status;
    m->ota[R_STATUS] = status;
    m->ota[R_PROGRESS] = progress;
}

int sim_mb_state(struct sim_dev *d)
{
    struct sim_mb *m;

    if (d->pstate)
        return 0;
    m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->d = d;
    uv_timer_init(d->sim->loop, &m->t);
    m->t.data = m;
    m->props[0] = 215; /* 21.5 °C until the first property post */
    m->props[1] = 40;
    put_string(m->ota + R_CURRENT, 16, FIRST_VERSION);
    d->pstate = m;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void sim_mb_free(struct sim_dev *d)
{
    struct sim_mb *m = d->pstate;

    if (!m)
        return;
    d->pstate = NULL;
    m->d = NULL;
    free(m->image);
    m->image = NULL;
    uv_close((uv_handle_t *)&m->t, on_closed);
}

int sim_mb_set_properties(struct sim_dev *d, const cJSON *params)
{
    struct sim_mb *m = d->pstate;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "temperature");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(params, "humidity");

    if (!m)
        return -ENOTCONN;
    if (cJSON_IsNumber(t))
        m->props[0] = (uint16_t)(int16_t)lround(t->valuedouble * 10);
    if (cJSON_IsNumber(h))
        m->props[1] = (uint16_t)h->valuedouble;
    return 0;
}

/* ---- verify and apply ---- */

/* Size, MD5 from the header, and SHA-256 against the firmware this run uploaded (when the
 * gateway is sending that one). NULL when the image is right, else why not. */
static const char *verify(struct sim_mb *m, char *why, size_t why_len)
{
    struct sim *s = m->d->sim;
    uint8_t md5[16], sha[32];
    char hex[65];

    if (!m->image || (uint64_t)m->next * BLOCK_BYTES < m->size) {
        snprintf(why, why_len, "image incomplete: %" PRIu32 " of %" PRIu32 " blocks", m->next,
                 m->blocks);
        return why;
    }
    mbedtls_md5_ret(m->image, m->size, md5);
    if (memcmp(md5, m->md5, sizeof(md5)) != 0) {
        gw_hex_encode(md5, sizeof(md5), hex);
        snprintf(why, why_len, "MD5 mismatch: %s", hex);
        return why;
    }
    if (s->fw.sha256[0] && strcmp(m->target, s->fw.version) == 0) {
        if (m->size != s->fw.size) {
            snprintf(why, why_len, "size %" PRIu32 " != uploaded %" PRIu64, m->size, s->fw.size);
            return why;
        }
        mbedtls_sha256_ret(m->image, m->size, sha, 0);
        gw_hex_encode(sha, sizeof(sha), hex);
        if (strcmp(hex, s->fw.sha256) != 0) {
            snprintf(why, why_len, "SHA-256 mismatch: %s", hex);
            return why;
        }
    }
    return NULL;
}

/* One verify/apply step every STEP_MS: PROGRESS 30 (verifying), the verdict, 60 and 90
 * (applying), then success. */
static void on_step(uv_timer_t *t)
{
    struct sim_mb *m = t->data;
    struct sim_dev *d = m->d;
    char why[128];
    const char *bad;

    if (!d || (m->status != ST_VERIFYING && m->status != ST_APPLYING))
        return;
    switch (m->step++) {
    case 0:
        set_status(m, ST_VERIFYING, 30);
        break;
    case 1:
        bad = verify(m, why, sizeof(why));
        if (bad || d->beh == SIM_BEH_FAIL) {
            set_status(m, ST_FAILED, 30);
            sim_dev_ota_end(d, false, bad ? bad : "simulated failure");
            return;
        }
        set_status(m, ST_APPLYING, 60);
        break;
    case 2:
        set_status(m, ST_APPLYING, 90);
        break;
    default:
        put_string(m->ota + R_CURRENT, 16, m->target);
        set_status(m, ST_SUCCESS, 100);
        sim_dev_ota_end(d, true, "upgraded");
        return;
    }
    uv_timer_start(&m->t, on_step, STEP_MS, 0);
}

/* ---- CTRL ---- */

static int ctrl_begin(struct sim_mb *m)
{
    struct sim_dev *d = m->d;
    struct sim *s = d->sim;
    char target[SIM_VERSION_MAX + 1];
    uint32_t size = (uint32_t)m->ota[R_FILE_SIZE] << 16 | m->ota[R_FILE_SIZE + 1];
    uint8_t *img;

    get_string(m->ota + R_TARGET, 16, target, sizeof(target));
    if (size == 0 || size > MAX_IMAGE || !target[0])
        return EX_VALUE;
    if (m->status >= ST_RECEIVING && m->status <= ST_APPLYING && strcmp(target, m->target) == 0 &&
        (m->status != ST_RECEIVING || m->next > 0)) {
        /* DESIGN §5.6: a transfer under way is resumed at NEXT_BLOCK, never begun again */
        s->c.mb_restarts++;
        sim_problem(s,
                    "%s/%s: the gateway restarted the transfer of %s (CTRL=1) at block %" PRIu32
                    " of %" PRIu32 " instead of resuming at NEXT_BLOCK",
                    d->pk, d->dn, target, m->next, m->blocks);
    }
    img = malloc(size);
    if (!img)
        return EX_FAILURE;
    free(m->image);
    m->image = img;
    m->size = size;
    m->blocks = (size + BLOCK_BYTES - 1) / BLOCK_BYTES;
    m->next = 0;
    for (int i = 0; i < 8; i++) {
        m->md5[2 * i] = (uint8_t)(m->ota[R_MD5 + i] >> 8);
        m->md5[2 * i + 1] = (uint8_t)m->ota[R_MD5 + i];
    }
    snprintf(m->target, sizeof(m->target), "%s", target);
    m->conn_gen = d->gen;
    m->t_begin_ms = sim_now_ms();
    uv_timer_stop(&m->t);
    put_u32(m->ota + R_NEXT_BLOCK, 0);
    set_status(m, ST_RECEIVING, 0);
    sim_dev_ota_begin(d, target, m->t_begin_ms);
    return 0;
}

static int ctrl(struct sim_mb *m, uint16_t v)
{
    struct sim *s = m->d->sim;

    switch (v) {
    case 1:
        return ctrl_begin(m);
    case 2:
        if (m->status != ST_RECEIVING || m->next < m->blocks)
            return EX_FAILURE;
        if (m->d->ota == SIM_OTA_DOWNLOADING) { /* (not a silent device's) */
            s->c.dl_done++;
            sim_dev_dl_time(m->d, (double)(sim_now_ms() - m->t_begin_ms));
        }
        set_status(m, ST_VERIFYING, 0);
        m->step = 0;
        if (m->d->beh != SIM_BEH_SILENT) /* silent: verifying for ever */
            uv_timer_start(&m->t, on_step, STEP_MS, 0);
        return 0;
    case 3:
        uv_timer_stop(&m->t);
        free(m->image);
        m->image = NULL;
        m->next = 0;
        put_u32(m->ota + R_NEXT_BLOCK, 0);
        set_status(m, ST_IDLE, 0);
        return 0;
    default:
        return EX_VALUE;
    }
}

/* One FC16 of BLOCK_INDEX..BLOCK_DATA (regs borrowed). */
static int block(struct sim_mb *m, const uint16_t *regs, enum sim_mb_verdict *verdict)
{
    struct sim_dev *d = m->d;
    struct sim *s = d->sim;
    uint32_t index = (uint32_t)regs[0] << 16 | regs[1], len = regs[2];

    if (m->status != ST_RECEIVING)
        return EX_FAILURE;
    if (index != m->next || len < 1 || len > BLOCK_BYTES ||
        (uint64_t)index * BLOCK_BYTES + len > m->size ||
        (index + 1 < m->blocks && len != BLOCK_BYTES)) {
        s->c.mb_out_of_order++;
        return EX_VALUE; /* the gateway re-reads NEXT_BLOCK */
    }
    for (uint32_t i = 0; i < len; i++) {
        uint16_t r = regs[3 + i / 2];
        m->image[(size_t)index * BLOCK_BYTES + i] = (uint8_t)(i % 2 ? r : r >> 8);
    }
    if (m->next > 0 && m->conn_gen != d->gen) {
        s->c.mb_resumed++; /* the first block on a new connection continues the transfer */
        s->c.dl_resumed++;
    }
    m->conn_gen = d->gen;
    m->next++;
    put_u32(m->ota + R_NEXT_BLOCK, m->next);
    s->c.mb_blocks++;
    s->c.dl_bytes += len;
    if (d->beh == SIM_BEH_DROP && !d->dropped && m->blocks >= 2 && m->next == m->blocks / 2) {
        d->dropped = true;
        *verdict = SIM_MB_DROP; /* stored but never answered: the gateway must ask NEXT_BLOCK */
    }
    return 0;
}

/* ---- requests ---- */

/* The registers [addr, addr+n) when they lie in one region, else NULL. */
static uint16_t *regs_at(struct sim_mb *m, uint32_t addr, uint32_t n)
{
    uint32_t base = m->d->sim->o.modbus_ota_base;

    if (addr + n <= PROP_REGS)
        return m->props + addr;
    if (addr >= base && addr + n <= base + OTA_REGS)
        return m->ota + (addr - base);
    return NULL;
}

/* Writable by the gateway: the property registers and the header; CTRL and the block go
 * through ctrl() and block(). */
static bool header_or_props(struct sim_mb *m, uint32_t addr, uint32_t n)
{
    uint32_t base = m->d->sim->o.modbus_ota_base;

    return addr + n <= PROP_REGS ||
           (addr >= base + R_FILE_SIZE && addr + n <= base + R_BLOCK_INDEX);
}

static int read_regs(struct sim_mb *m, const uint8_t *pdu, size_t len, uint8_t *out,
                     size_t *out_len)
{
    uint32_t addr, n;
    const uint16_t *r;

    if (len != 5)
        return EX_VALUE;
    addr = (uint32_t)pdu[1] << 8 | pdu[2];
    n = (uint32_t)pdu[3] << 8 | pdu[4];
    if (n < 1 || n > 125)
        return EX_VALUE;
    r = regs_at(m, addr, n);
    if (!r)
        return EX_ADDRESS;
    out[0] = pdu[0];
    out[1] = (uint8_t)(2 * n);
    for (uint32_t i = 0; i < n; i++) {
        out[2 + 2 * i] = (uint8_t)(r[i] >> 8);
        out[3 + 2 * i] = (uint8_t)r[i];
    }
    *out_len = 2 + 2 * n;
    return 0;
}

static int write_one(struct sim_mb *m, const uint8_t *pdu, size_t len, uint8_t *out,
                     size_t *out_len)
{
    uint32_t addr, base = m->d->sim->o.modbus_ota_base;
    uint16_t v;
    int rc;

    if (len != 5)
        return EX_VALUE;
    addr = (uint32_t)pdu[1] << 8 | pdu[2];
    v = (uint16_t)(pdu[3] << 8 | pdu[4]);
    if (addr == base + R_CTRL)
        rc = ctrl(m, v);
    else if (header_or_props(m, addr, 1)) {
        *regs_at(m, addr, 1) = v;
        rc = 0;
    } else {
        rc = EX_ADDRESS;
    }
    if (rc == 0) {
        memcpy(out, pdu, 5);
        *out_len = 5;
    }
    return rc;
}

static int write_many(struct sim_mb *m, const uint8_t *pdu, size_t len, uint8_t *out,
                      size_t *out_len, enum sim_mb_verdict *verdict)
{
    uint32_t addr, n, base = m->d->sim->o.modbus_ota_base;
    uint16_t regs[BLOCK_WRITE_REGS];
    int rc;

    if (len < 6)
        return EX_VALUE;
    addr = (uint32_t)pdu[1] << 8 | pdu[2];
    n = (uint32_t)pdu[3] << 8 | pdu[4];
    if (n < 1 || n > BLOCK_WRITE_REGS || pdu[5] != 2 * n || len != 6 + 2 * n)
        return EX_VALUE;
    for (uint32_t i = 0; i < n; i++)
        regs[i] = (uint16_t)(pdu[6 + 2 * i] << 8 | pdu[7 + 2 * i]);
    if (addr == base + R_BLOCK_INDEX && n == BLOCK_WRITE_REGS)
        rc = block(m, regs, verdict);
    else if (addr == base + R_CTRL && n == 1)
        rc = ctrl(m, regs[0]);
    else if (header_or_props(m, addr, n)) {
        memcpy(regs_at(m, addr, n), regs, n * sizeof(uint16_t));
        rc = 0;
    } else {
        rc = EX_ADDRESS;
    }
    if (rc == 0) {
        memcpy(out, pdu, 5); /* fc, address, quantity */
        *out_len = 5;
    }
    return rc;
}

enum sim_mb_verdict sim_mb_request(struct sim_dev *d, const uint8_t *pdu, size_t len, uint8_t *out,
                                   size_t *out_len)
{
    struct sim_mb *m = d->pstate;
    enum sim_mb_verdict verdict = SIM_MB_ANSWER;
    uint64_t out_of_order = d->sim->c.mb_out_of_order;
    int ex;

    if (!m || len < 1)
        ex = EX_FAILURE;
    else if (pdu[0] == 3)
        ex = read_regs(m, pdu, len, out, out_len);
    else if (pdu[0] == 6)
        ex = write_one(m, pdu, len, out, out_len);
    else if (pdu[0] == 16)
        ex = write_many(m, pdu, len, out, out_len, &verdict);
    else
        ex = EX_FUNCTION; /* coils, inputs: this device has holding registers only */
    if (ex) {
        if (d->sim->c.mb_out_of_order == out_of_order)
            d->sim->c.mb_exceptions++; /* out-of-order blocks have their own count */
        out[0] = (uint8_t)((len ? pdu[0] : 0) | 0x80);
        out[1] = (uint8_t)ex;
        *out_len = 2;
    }
    return verdict;
}

/* ---- the adapter block for the gateway's config ---- */

static cJSON *point(const char *id, int addr, const char *type, double scale)
{
    cJSON *p = cJSON_CreateObject();

    cJSON_AddStringToObject(p, "identifier", id);
    cJSON_AddNumberToObject(p, "functionCode", 3);
    cJSON_AddNumberToObject(p, "address", addr);
    cJSON_AddStringToObject(p, "rawType", type);
    if (scale != 1)
        cJSON_AddNumberToObject(p, "scale", scale);
    cJSON_AddNumberToObject(p, "pollIntervalMs", 1000);
    return p;
}

int sim_modbus_config_save(struct sim *s, const char *path)
{
    cJSON *root = cJSON_CreateObject(), *devs;
    const char *listen = strstr(s->o.endpoint[SIM_MODBUS], "://");
    int rc = -EIO;

    if (!root)
        goto out;
    cJSON_AddStringToObject(root, "type", "modbus_tcp_server");
    cJSON_AddStringToObject(root, "name", "modbus");
    cJSON_AddStringToObject(root, "listen", listen ? listen + 3 : s->o.endpoint[SIM_MODBUS]);
    cJSON_AddNumberToObject(root, "customFunctionCode", 65);
    devs = cJSON_AddArrayToObject(root, "devices");
    if (!devs)
        goto out;
    for (uint32_t i = 0; i < s->n; i++) {
        struct sim_dev *d = &s->devs[i];
        cJSON *o, *pts;

        if (d->proto != SIM_MODBUS)
            continue;
        o = cJSON_CreateObject();
        if (!o)
            goto out;
        cJSON_AddItemToArray(devs, o);
        cJSON_AddStringToObject(o, "productKey", d->pk);
        cJSON_AddStringToObject(o, "deviceName", d->dn);
        cJSON_AddNumberToObject(o, "otaBase", s->o.modbus_ota_base);
        pts = cJSON_AddArrayToObject(o, "points");
        cJSON_AddItemToArray(pts, point("temperature", 0, "INT16", 0.1));
        cJSON_AddItemToArray(pts, point("humidity", 1, "UINT16", 1));
    }
    rc = sim_json_write_file(path, root);
out:
    cJSON_Delete(root);
    return rc;
}
