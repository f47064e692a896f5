/* client/delivery.h - the delivery gate's internals shared with the wakeup
 * controller (client/delivery.c, client/gate.c). Not installed. */
#ifndef BG_CLIENT_DELIVERY_H
#define BG_CLIENT_DELIVERY_H

#include "client/client_internal.h"

struct bg_dispatch_result {
	int found;     /* pending entries of the execution, usable */
	int delivered; /* of which XADDed now (the others were before) */
	int skipped;   /* of the execution but unusable (bad stream/payload) */
};

/* bg_client_dispatch_ready with the counts. */
int bg_client_dispatch(struct bg_client *c, const char *exec_id,
		       struct bg_dispatch_result *res);

/* The delivered set's key: the pending stream's key + ":bygate_delivered". */
int bg_client_delivered_key(struct bg_client *c, struct bg_buf *out);

#endif
