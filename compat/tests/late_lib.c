/* late_lib.c — a shared library that test_compat_api loads with dlopen
 * after the collector started: an object referenced only from this
 * library's static data must survive collections (the static data of
 * libraries loaded later is found again at every collection). */
void *late_slot;
void late_set(void *p) { late_slot = p; }
void *late_get(void) { return late_slot; }
