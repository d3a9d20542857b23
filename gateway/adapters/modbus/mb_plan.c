/*
 * DESIGN: merges a device's register points into read segments (REFERENCE §4.9): points with
 * the same function code and poll interval whose address ranges touch or overlap become one
 * read of at most 125 registers (FC 3/4) or 2000 bits (FC 1/2). Gaps are never read: a
 * device may answer an undefined address with an exception and lose the whole segment.
 * Pure; any thread. The plan borrows the points.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mb_internal.h"

/* qsort has no context argument: the points travel with each index. */
struct plan_item {
    const struct gw_config_modbus_point *p;
    size_t i;
};

static int item_cmp(const void *a, const void *b)
{
    const struct gw_config_modbus_point *x = ((const struct plan_item *)a)->p;
    const struct gw_config_modbus_point *y = ((const struct plan_item *)b)->p;

    if (x->function_code != y->function_code)
        return x->function_code - y->function_code;
    if (x->poll_interval_ms != y->poll_interval_ms)
        return x->poll_interval_ms < y->poll_interval_ms ? -1 : 1;
    if (x->address != y->address)
        return x->address - y->address;
    return x->count - y->count;
}

static int point_len(const struct gw_config_modbus_point *p)
{
    return p->function_code <= 2 ? 1 : gw__mb_type_width(p->raw_type);
}

int gw__mb_plan_build(const struct gw_config_modbus_point *pts, size_t n, struct gw__mb_plan *out)
{
    struct plan_item *items = NULL;
    struct gw__mb_segment *seg = NULL;

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return 0;
    items = calloc(n, sizeof(*items));
    out->idx = calloc(n, sizeof(*out->idx));
    out->segs = calloc(n, sizeof(*out->segs));
    if (!items || !out->idx || !out->segs) {
        free(items);
        gw__mb_plan_fini(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = (struct plan_item){.p = &pts[i], .i = i};
    qsort(items, n, sizeof(*items), item_cmp);
    for (size_t k = 0; k < n; k++) {
        const struct gw_config_modbus_point *p = items[k].p;
        long start = p->address, end = p->address + point_len(p); /* [start, end) */
        long max = p->function_code <= 2 ? GW__MB_MAX_READ_BITS : GW__MB_MAX_READ_REGS;

        if (seg && seg->fc == p->function_code && seg->interval_ms == p->poll_interval_ms &&
            start <= (long)seg->start + seg->count) {
            long seg_end = (long)seg->start + seg->count;
            long new_end = end > seg_end ? end : seg_end;
            if (new_end - seg->start <= max) {
                seg->count = (uint16_t)(new_end - seg->start);
                out->idx[k] = items[k].i;
                seg->n++;
                continue;
            }
        }
        seg = &out->segs[out->n_segs++];
        seg->fc = (uint8_t)p->function_code;
        seg->start = (uint16_t)start;
        seg->count = (uint16_t)(end - start);
        seg->interval_ms = p->poll_interval_ms;
        seg->first = k;
        seg->n = 1;
        out->idx[k] = items[k].i;
    }
    free(items);
    return 0;
}

void gw__mb_plan_fini(struct gw__mb_plan *plan)
{
    free(plan->segs);
    free(plan->idx);
    memset(plan, 0, sizeof(*plan));
}
