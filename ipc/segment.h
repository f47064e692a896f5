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
	/* Set by the child just before it exits BG_CHILD_EXIT_TASK_DIED: the
	 * wait status of the task process that ended without its RESULT, so
	 * the supervisor describes the task's end, not the child's exit. */
	uint32_t task_status;
	uint32_t task_status_set; /* 1 when task_status holds a status */
	uint8_t reserved[24];
};
_Static_assert(sizeof(struct bg_scoreboard) == 64, "scoreboard ABI");

struct bg_seg_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t slot;
	uint32_t generation;
	uint64_t seg_size;
	uint64_t down_off; /* offset of the down ring's struct bg_ring_ctl */
	uint64_t down_cap;
	uint64_t up_off;
	uint64_t up_cap;
	uint64_t max_message; /* largest message either side may send */
	/* (no reserved bytes: the fields above fill the first cache line) */
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

/* Supervisor: create a sealed-size memfd (MFD_CLOEXEC; F_SEAL_SHRINK |
 * F_SEAL_GROW, so a child cannot truncate it under our mapping) holding a
 * formatted segment with rings of `ring_bytes` each (a valid ring capacity,
 * see bg_ring_footprint) and both rings attached. -EINVAL on a bad
 * ring_bytes or a max_message of 0 or above UINT32_MAX; -errno of the
 * failed call otherwise. Layout: header at 0, down ring at 128, up ring
 * right after the down ring. */
int bg_segment_create(uint32_t slot, uint32_t generation, uint64_t ring_bytes,
		      uint64_t max_message, struct bg_segment *out);

/* Child: map and validate a segment received as `fd` (magic, version,
 * seg_size equal to the file size, ring offsets 64-aligned, inside the file
 * and not overlapping, ring capacities powers of two, ring headers) and
 * attach both rings. -EPROTO when invalid. On success the segment owns fd;
 * on failure fd stays open and the caller's. */
int bg_segment_attach(int fd, struct bg_segment *out);

/* Unmap and close, then leave seg with base NULL and fd -1. Does nothing on
 * a zeroed segment (base NULL: fd 0 is not closed). A caller that closed
 * or handed off seg->fd itself sets it to -1 first. */
void bg_segment_close(struct bg_segment *seg);

#endif
