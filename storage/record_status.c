/*
 * DESIGN: predicates over the record status numbers of DESIGN §5.1. Pure; any thread.
 */
#include "gw_store.h"

int gw_record_status_index(int status)
{
    switch (status) {
    case GW_RECORD_PENDING: return 0;
    case GW_RECORD_PUSHED: return 1;
    case GW_RECORD_UPGRADING: return 2;
    case GW_RECORD_SUCCESS: return 3;
    case GW_RECORD_FAILURE: return 4;
    case GW_RECORD_CANCELLED: return 5;
    default: return -1;
    }
}

bool gw_record_status_valid(int status)
{
    return gw_record_status_index(status) >= 0;
}

bool gw_record_status_active(int status)
{
    return status == GW_RECORD_PENDING || status == GW_RECORD_PUSHED ||
           status == GW_RECORD_UPGRADING;
}
