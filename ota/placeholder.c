/* Placeholder so the library has a source until the engine lands; delete then. */
int gw_ota_placeholder_(void);
int gw_ota_placeholder_(void) { return 0; }
