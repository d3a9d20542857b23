/*
 * DESIGN: iotgw entry point. Placeholder until the config loader lands: prints usage.
 */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "usage: %s -c FILE [--check-config] [--data-dir DIR]\n", argv[0]);
    return 2;
}
