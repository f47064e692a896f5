/* common/clock.h - the two clocks every component reads: wall time for
 * what is written (records, events, history) and monotonic time for what
 * is measured (timeouts, durations, back-off). */
#ifndef BG_COMMON_CLOCK_H
#define BG_COMMON_CLOCK_H

#include <stdint.h>

int64_t bg_now_ms(void);  /* CLOCK_REALTIME, ms since the epoch */
int64_t bg_mono_ms(void); /* CLOCK_MONOTONIC, ms */

#endif
