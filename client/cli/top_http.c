/* client/cli/top_http.c - `bygate top`'s GET /status of a bygated: one
 * blocking HTTP/1.0 request over loopback or the LAN, bounded in time and
 * size (top_frame.h). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "client/cli/top_frame.h"
#include "common/buf.h"

#define HTTP_TIMEOUT_MS 1000 /* connect, then the whole reply */
#define HTTP_MAX_BYTES (4 * 1024 * 1024)

static int wait_fd(int fd, short ev, int64_t until)
{
	for (;;) {
		int left = (int)(until - cli_mono_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { fd, ev, 0 };
		int rc = poll(&p, 1, left);
		if (rc == 1)
			return 0;
		if (rc == -1 && errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *hostport, int64_t until)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return -EHOSTUNREACH;
	int fd = socket(ai->ai_family,
			SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = fd == -1 ? -errno : 0;
	if (rc == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, until)
					  : -errno;
		int err = 0;
		socklen_t len = sizeof(err);
		if (rc == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
		    err)
			rc = -err;
	}
	freeaddrinfo(ai);
	if (rc && fd != -1)
		close(fd);
	return rc ? rc : fd;
}

/* top_frame.h */
json_t *top_get_status(const char *hostport)
{
	int64_t until = cli_mono_ms() + HTTP_TIMEOUT_MS;
	int fd = connect_to(hostport, until);
	if (fd < 0)
		return NULL;
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET /status HTTP/1.0\r\nHost: %s\r\n"
			 "Connection: close\r\n\r\n",
			 hostport);
	struct bg_buf in = { 0 };
	bool ok = n > 0 && (size_t)n < sizeof(req) &&
		  send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
	while (ok && in.len < HTTP_MAX_BYTES) {
		if (wait_fd(fd, POLLIN, until) != 0 ||
		    bg_buf_reserve(&in, 65536) != 0) {
			ok = false;
			break;
		}
		ssize_t r = recv(fd, in.p + in.len, 65536, 0);
		if (r == 0)
			break;
		if (r == -1 && errno != EINTR && errno != EAGAIN)
			ok = false;
		if (r > 0)
			in.len += (size_t)r;
	}
	close(fd);
	json_t *doc = NULL;
	if (ok && bg_buf_append(&in, "", 1) == 0 &&
	    !strncmp(in.p, "HTTP/1.", 7) && !strncmp(in.p + 8, " 200", 4)) {
		const char *body = strstr(in.p, "\r\n\r\n");
		doc = body ? json_loads(body + 4, 0, NULL) : NULL;
		if (doc && !json_is_object(doc)) {
			json_decref(doc);
			doc = NULL;
		}
	}
	bg_buf_free(&in);
	return doc;
}
