/* cluster/slot.h - Redis Cluster's key slots: CRC16 of a key (or of its
 * hash tag) modulo 16384, and the slot a whole command goes to, found from
 * the positions of its keys (the commands bygate sends; see slot.c). Pure
 * computation: no I/O, no hiredis. */
#ifndef BG_CLUSTER_SLOT_H
#define BG_CLUSTER_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define BG_SLOTS 16384

/* The command names no key: any node may answer it (PING, INFO, SCAN,
 * MULTI, EXEC, CLUSTER ...). */
#define BG_SLOT_NONE (-1)
/* The command's keys hash to more than one slot: Cluster refuses it
 * (CROSSSLOT); bygate never sends one. */
#define BG_SLOT_CROSS (-2)
/* The command is not in slot.c's table, or its key arguments are
 * malformed (a numkeys past the end, no STREAMS): not sent under Cluster,
 * since its slot cannot be known. */
#define BG_SLOT_UNKNOWN (-3)

/* A short string whose slot is `slot` (0..16383), for a key that must
 * live in that slot: "{" + it + "}" in the key. The same string for a slot
 * in every process (the first of the decimal numbers 0, 1, 2... that hashes
 * there). NULL for a slot out of range, or without memory for the table
 * (built at the first call, ~170,000 CRC16s). */
const char *bg_slot_tag(int slot);

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum
 * Redis Cluster hashes keys with ("123456789" gives 0x31C3). */
uint16_t bg_slot_crc16(const void *p, size_t n);

/* The slot of key (len bytes, any bytes): its hash tag, when it has one
 * (the bytes between the first '{' and the first '}' after it, if there
 * are any), else the whole key. */
int bg_slot_of(const void *key, size_t len);

/* The slot of a command (argv[0] its name, any case; lens NULL for C
 * strings): the one slot of all its keys, or BG_SLOT_NONE, BG_SLOT_CROSS,
 * BG_SLOT_UNKNOWN. When first_key is not NULL it gets the argv index of
 * the first key (-1 without one). */
int bg_slot_of_command(int argc, const char *const *argv, const size_t *lens,
		       int *first_key);

#endif
