/*
 * DESIGN: iotgw entry point (DESIGN §7.2). Parses the command line, loads and validates the
 * whole configuration before anything starts (bad config: the message naming the key on
 * stderr, exit 2), prints what starts, then runs the gateway (gw_run.c) until SIGINT or
 * SIGTERM. Main thread only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "gw_config.h"
#include "gw_run.h"

#define IOTGW_DEFAULT_CONFIG "config/iotgw.json"

enum { OPT_DATA_DIR = 256, OPT_CHECK_CONFIG, OPT_HELP_CONFIG };

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [-c FILE] [--data-dir DIR] [--check-config] [--help-config] [--help]\n"
            "  -c, --config FILE  configuration file (default " IOTGW_DEFAULT_CONFIG ")\n"
            "  --data-dir DIR     overrides data_dir of the configuration\n"
            "  --check-config     validate, print the effective configuration and exit\n"
            "                     (exit 0 when valid, 2 with the reason when not)\n"
            "  --help-config      document every configuration option and exit\n"
            "  -h, --help         this text\n",
            argv0);
}

/* One line: what the gateway would start with this configuration. */
static void print_summary(const struct gw_config *cfg, FILE *f)
{
    char addr[GW_CONFIG_HOST_MAX + 16];

    fprintf(f, "iotgw: data_dir %s, admin on %s:%d, %zu adapter(s):", cfg->data_dir,
            cfg->admin.listen.host, cfg->admin.listen.port, cfg->adapter_count);
    for (size_t i = 0; i < cfg->adapter_count; i++) {
        const struct gw_config_adapter *a = &cfg->adapters[i];
        if (a->listen.host[0])
            snprintf(addr, sizeof(addr), " %s:%d", a->listen.host, a->listen.port);
        else
            addr[0] = '\0';
        fprintf(f, "%s %s (%s%s)", i ? "," : "", a->name, gw_config_adapter_type_name(a->type),
                addr);
    }
    fputc('\n', f);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "data-dir", required_argument, NULL, OPT_DATA_DIR },
        { "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
        { "help-config", no_argument, NULL, OPT_HELP_CONFIG },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = IOTGW_DEFAULT_CONFIG, *data_dir = NULL;
    bool check_only = false;
    struct gw_config *cfg = NULL;
    char err[512];
    int c, rc;

    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case OPT_DATA_DIR:
            data_dir = optarg;
            break;
        case OPT_CHECK_CONFIG:
            check_only = true;
            break;
        case OPT_HELP_CONFIG:
            gw_config_print_help(stdout);
            return 0;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }

    rc = gw_config_load_file(path, &cfg, err, sizeof(err));
    if (rc == 0 && data_dir)
        rc = gw_config_set_data_dir(cfg, data_dir, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        gw_config_free(cfg);
        return 2;
    }
    gw_log_set_level(cfg->log_level);
    if (check_only) {
        rc = gw_config_print(cfg, stdout);
        gw_config_free(cfg);
        return rc == 0 ? 0 : 1;
    }
    print_summary(cfg, stdout);
    fflush(stdout);
    rc = gw_run(cfg);
    gw_config_free(cfg);
    return rc;
}
