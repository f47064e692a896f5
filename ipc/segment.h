/* ipc/segment.h - one shared-memory segment per child slot (DESIGN 5):
 * a memfd holding a header (magic, version, sizes, generation), the
 * display-only scoreboard slot, the down ring (tasks, supervisor -> child)
 * and the up ring (events and results, child -> supervisor).
 * The child receives the segment as fd 3 and its doorbells as fd 4 (child
 * wake: the supervisor rings it) and fd 5 (supervisor wake: the child rings
 * it). */
#ifndef BG_IPC_SEGMENT_H
#define BG_IPC_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/ring.h"

#define BG_SEG_MAGIC 0x42475347u /* "BGSG" */
#define BG_SEG_VERSION 1u

#define BG_CHILD_FD_SEGMENT 3
#define BG_CHILD_FD_WAKE_CHILD 4
#define BG_CHILD_FD_WAKE_SUPERVISOR 5

enum bg_score_state {
	BG_SCORE_STARTING = 0,
	BG_SCORE_IDLE = 1,
	BG_SCORE_BUSY = 2,
	BG_SCORE_EXITING = 3,
};

/* Written by the child, read only for display (bygate-state, logs). */
struct bg_scoreboard {
	uint32_t pid;
	uint32_t state; /* enum bg_score_state */
	uint64_t tasks_done;
	uint64_t current_tag;
	uint64_t busy_since_ms;
	uint8_t reserved[32];
};
_Static_assert(sizeof(struct bg_scoreboard) == 64, "scoreboard ABI");

struct bg_seg_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t slot;
	uint32_t generation;
	uint64_t seg_size;
	uint64_t down_off;  /* offset of the down ring's struct bg_ring_ctl */
	uint64_t down_cap;
	uint64_t up_off;
	uint64_t up_cap;
	uint64_t max_message; /* largest message either side may send */
	uint8_t reserved[64 - 8 * 7];
	struct bg_scoreboard score;
};
_Static_assert(sizeof(struct bg_seg_hdr) == 128, "segment header ABI");
_Static_assert(offsetof(struct bg_seg_hdr, score) == 64, "segment header ABI");

struct bg_segment {
	int fd;
	void *base;
	size_t size;
	struct bg_seg_hdr *hdr;
	struct bg_ring down;
	struct bg_ring up;
};

/* Supervisor: create a sealed-size memfd (MFD_CLOEXEC) holding a formatted
 * segment with rings of `ring_bytes` each (power of two). */
int bg_segment_create(uint32_t slot, uint32_t generation, uint64_t ring_bytes,
		      uint64_t max_message, struct bg_segment *out);

/* Child: map and validate a segment received as `fd` (magic, version,
 * sizes against the file size). -EPROTO when invalid. */
int bg_segment_attach(int fd, struct bg_segment *out);

/* Unmap and close. Safe on a zeroed segment. */
void bg_segment_close(struct bg_segment *seg);

#endif
