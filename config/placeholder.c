/* Placeholder so the library has a source until the loader lands; delete then. */
int gw_config_placeholder_(void);
int gw_config_placeholder_(void) { return 0; }
