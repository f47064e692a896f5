/* ipc/segment.c - create, attach and close the per-child shared-memory
 * segment of ipc/segment.h: a size-sealed memfd laid out as header (with the
 * scoreboard), down ring, up ring, every part 64-byte aligned. */
#include "ipc/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEG_HDR_SIZE ((uint64_t)sizeof(struct bg_seg_hdr))
#define SEG_MAX_SIZE                                                           \
	(SEG_HDR_SIZE + 2 * (sizeof(struct bg_ring_ctl) + BG_RING_MAX_CAPACITY))

_Static_assert(sizeof(struct bg_seg_hdr) % BG_CACHE_LINE == 0,
	       "rings after the header stay cache-line aligned");

/* A ring region [off, off + footprint(cap)) lies after the header, inside
 * the segment, and starts on a cache line. */
static bool region_ok(uint64_t off, uint64_t cap, uint64_t size)
{
	uint64_t fp = bg_ring_footprint(cap);
	return fp && off >= SEG_HDR_SIZE && !(off & (BG_CACHE_LINE - 1)) &&
	       off <= size && fp <= size - off;
}

static bool hdr_ok(const struct bg_seg_hdr *h, uint64_t size)
{
	if (h->magic != BG_SEG_MAGIC || h->version != BG_SEG_VERSION ||
	    h->seg_size != size || h->max_message == 0 ||
	    h->max_message > UINT32_MAX)
		return false;
	if (!region_ok(h->down_off, h->down_cap, size) ||
	    !region_ok(h->up_off, h->up_cap, size))
		return false;
	uint64_t down_end = h->down_off + bg_ring_footprint(h->down_cap);
	uint64_t up_end = h->up_off + bg_ring_footprint(h->up_cap);
	return down_end <= h->up_off || up_end <= h->down_off;
}

static int seg_map(int fd, size_t size, void **base)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*base = p;
	return 0;
}

/* Attach both rings of a mapped segment described by the validated header h
 * and fill *seg; unmaps base on failure (the fd is the caller's). */
static int seg_bind(struct bg_segment *seg, int fd, void *base, size_t size,
		    const struct bg_seg_hdr *h)
{
	struct bg_segment s = {
		.fd = fd, .base = base, .size = size, .hdr = base
	};
	int rc = bg_ring_attach(&s.down, (uint8_t *)base + h->down_off,
				h->down_cap);
	if (rc == 0)
		rc = bg_ring_attach(&s.up, (uint8_t *)base + h->up_off,
				    h->up_cap);
	if (rc) {
		munmap(base, size);
		return -EPROTO;
	}
	*seg = s;
	return 0;
}

/* Fix the size of a fresh memfd and seal it, so that a child cannot shrink
 * the file under the supervisor's mapping (SIGBUS) or grow it. */
static int seg_size_and_seal(int fd, uint64_t size)
{
	if (ftruncate(fd, (off_t)size) == -1)
		return -errno;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) ==
	    -1)
		return -errno;
	return 0;
}

int bg_segment_create(uint32_t slot, uint32_t generation, uint64_t ring_bytes,
		      uint64_t max_message, struct bg_segment *out)
{
	uint64_t fp = bg_ring_footprint(ring_bytes);
	if (!fp || max_message == 0 || max_message > UINT32_MAX)
		return -EINVAL;
	struct bg_seg_hdr h = {
		.magic = BG_SEG_MAGIC,
		.version = BG_SEG_VERSION,
		.slot = slot,
		.generation = generation,
		.seg_size = SEG_HDR_SIZE + 2 * fp,
		.down_off = SEG_HDR_SIZE,
		.down_cap = ring_bytes,
		.up_off = SEG_HDR_SIZE + fp,
		.up_cap = ring_bytes,
		.max_message = max_message,
	};
	int fd =
		memfd_create("bygate-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd == -1)
		return -errno;
	void *base = NULL;
	int rc = seg_size_and_seal(fd, h.seg_size);
	if (rc == 0)
		rc = seg_map(fd, h.seg_size, &base);
	if (rc == 0) {
		memcpy(base, &h, sizeof(h));
		bg_ring_format((uint8_t *)base + h.down_off, ring_bytes);
		bg_ring_format((uint8_t *)base + h.up_off, ring_bytes);
		rc = seg_bind(out, fd, base, h.seg_size, &h);
	}
	if (rc)
		close(fd);
	return rc;
}

int bg_segment_attach(int fd, struct bg_segment *out)
{
	struct stat st;
	if (fstat(fd, &st) == -1)
		return -errno;
	if (st.st_size < (off_t)SEG_HDR_SIZE ||
	    (uint64_t)st.st_size > SEG_MAX_SIZE)
		return -EPROTO;
	size_t size = (size_t)st.st_size;
	void *base = NULL;
	int rc = seg_map(fd, size, &base);
	if (rc)
		return rc;
	struct bg_seg_hdr h;
	memcpy(&h, base, sizeof(h));
	if (!hdr_ok(&h, size)) {
		munmap(base, size);
		return -EPROTO;
	}
	return seg_bind(out, fd, base, size, &h);
}

void bg_segment_close(struct bg_segment *seg)
{
	if (seg->base) {
		munmap(seg->base, seg->size);
		if (seg->fd >= 0)
			close(seg->fd);
	}
	*seg = (struct bg_segment){ .fd = -1 };
}
