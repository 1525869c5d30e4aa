/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Purges on the wire (purge.h): a blocking HTTP/1.1 client with deadlines,
 * its answers framed by the http-parser library as the server's requests
 * are, and a program run with posix_spawn. Used by the purger threads only
 * (edge.c), never by a worker.
 */
#include "responder/purge.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd waits until |fd| is ready for |events| or |deadline| (ms) passes
 * or |stop_fd| is readable: 0, -ETIMEDOUT or -ECANCELED. */
static int wait_fd(int fd, short events, int64_t deadline, int stop_fd)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p[2] = {{.fd = fd, .events = events},
		                      {.fd = stop_fd, .events = POLLIN}};
		int n = poll(p, stop_fd >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (stop_fd >= 0 && (p[1].revents & POLLIN))
			return -ECANCELED;
		if (n > 0)
			return 0;
	}
}

static int connect_to(struct purge_conn *pc, int64_t deadline, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%d", pc->url.port);
	int rc = getaddrinfo(pc->url.host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", pc->url.host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	int last = -ECONNREFUSED;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = -errno;
			close(fd);
			continue;
		}
		int w = wait_fd(fd, POLLOUT, deadline, pc->stop_fd);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (w == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
		    soerr == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			pc->fd = fd;
			freeaddrinfo(ai);
			return 0;
		}
		last = w < 0 ? w : -(soerr ? soerr : ECONNREFUSED);
		close(fd);
		if (w == -ECANCELED)
			break;
	}
	freeaddrinfo(ai);
	snprintf(err, errlen, "cannot connect to %s: %s", pc->url.authority, strerror(-last));
	return last;
}

void purge_http_close(struct purge_conn *pc)
{
	if (pc->fd >= 0)
		close(pc->fd);
	pc->fd = -1;
	pc->n_status = 0;
}

static int send_all(struct purge_conn *pc, const char *p, size_t n, int64_t deadline)
{
	while (n) {
		ssize_t w = send(pc->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(pc->fd, POLLOUT, deadline, pc->stop_fd);
			if (rc < 0)
				return rc;
			continue;
		}
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int on_complete(http_parser *hp)
{
	struct purge_conn *pc = hp->data;
	if (pc->n_status < PURGE_WINDOW + 1) {
		pc->status[pc->n_status] = (int)hp->status_code;
		pc->keep[pc->n_status] = http_should_keep_alive(hp);
		pc->n_status++;
	}
	return 0;
}

static void parser_reset(struct purge_conn *pc)
{
	http_parser_init(&pc->hp, HTTP_RESPONSE);
	http_parser_settings_init(&pc->hs);
	pc->hs.on_message_complete = on_complete;
	pc->hp.data = pc;
	pc->n_status = 0;
}

/* read_reply takes the next answer on the connection: its status, or a
 * negative errno; |*keep| tells whether the connection may carry more. One
 * parser frames the connection's answers, so pipelined answers that arrive
 * together are all counted. */
static int read_reply(struct purge_conn *pc, int64_t deadline, bool *keep)
{
	char buf[4096];
	*keep = false;
	while (pc->n_status == 0) {
		ssize_t n = recv(pc->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(pc->fd, POLLIN, deadline, pc->stop_fd);
			if (rc < 0)
				return rc;
			continue;
		}
		if (n < 0)
			return -errno;
		/* At EOF the parser ends an answer framed by the close. */
		size_t used = http_parser_execute(&pc->hp, &pc->hs, buf, (size_t)n);
		if (HTTP_PARSER_ERRNO(&pc->hp) != HPE_OK || used != (size_t)n)
			return -EPROTO;
		if (n == 0 && pc->n_status == 0)
			return -ECONNRESET;
	}
	int st = pc->status[0];
	*keep = pc->keep[0];
	pc->n_status--;
	memmove(pc->status, pc->status + 1, (size_t)pc->n_status * sizeof(pc->status[0]));
	memmove(pc->keep, pc->keep + 1, (size_t)pc->n_status * sizeof(pc->keep[0]));
	return st;
}

static int send_req(struct purge_conn *pc, const char *method, const char *target, const char *hdrs,
                    size_t hlen, int64_t deadline)
{
	char head[1024];
	int hn = snprintf(head, sizeof(head),
	                  "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vigil-responder\r\n"
	                  "Content-Length: 0\r\n",
	                  method, target, pc->url.authority);
	if (hn < 0 || (size_t)hn >= sizeof(head))
		return -ENAMETOOLONG;
	int rc = send_all(pc, head, (size_t)hn, deadline);
	if (rc == 0)
		rc = send_all(pc, hdrs, hlen, deadline);
	if (rc == 0)
		rc = send_all(pc, "\r\n", 2, deadline);
	return rc;
}

static void fail_text(char *err, size_t errlen, const char *method, const struct purge_conn *pc,
                      int rc)
{
	snprintf(err, errlen, "%s %s: %s", method, pc->url.authority,
	         rc == -ETIMEDOUT ? "no answer in time" : strerror(-rc));
}

int purge_http(struct purge_conn *pc, const char *method, const char *target, const char *hdrs,
               size_t hlen, int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	/* A kept connection the edge has closed meanwhile fails at once: one
	 * more try on a new one. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = pc->fd >= 0;
		int rc = 0;
		if (!reused) {
			if ((rc = connect_to(pc, deadline, err, errlen)) < 0)
				return rc;
			parser_reset(pc);
		}
		rc = send_req(pc, method, target, hdrs, hlen, deadline);
		bool keep = false;
		if (rc == 0)
			rc = read_reply(pc, deadline, &keep);
		if (rc >= 0) {
			if (!keep)
				purge_http_close(pc);
			return rc;
		}
		purge_http_close(pc);
		if (rc == -ETIMEDOUT || rc == -ECANCELED || rc == -ENAMETOOLONG || !reused) {
			fail_text(err, errlen, method, pc, rc);
			return rc;
		}
	}
	snprintf(err, errlen, "%s %s: connection closed", method, pc->url.authority);
	return -ECONNRESET;
}

int purge_http_run(struct purge_conn *pc, const char *method, const char *target,
                   const struct purge_req *reqs, int n, int timeout_ms, char *err, size_t errlen)
{
	if (n <= 0)
		return 0;
	int st =
	        purge_http(pc, method, target, reqs[0].hdrs, reqs[0].hlen, timeout_ms, err, errlen);
	if (st < 200 || st > 299) {
		if (st > 0)
			snprintf(err, errlen, "%s %s answered %d", method, pc->url.authority, st);
		return 0;
	}
	int sent = 1, done = 1;
	while (done < n) {
		if (pc->fd < 0) {
			/* The edge closed the connection after an answer: go on on
			 * a new one. */
			int64_t dl = now_ms() + timeout_ms;
			if (connect_to(pc, dl, err, errlen) < 0)
				return done;
			parser_reset(pc);
			sent = done;
		}
		int64_t deadline = now_ms() + timeout_ms;
		while (sent < n && sent - done < PURGE_WINDOW) {
			int rc = send_req(pc, method, target, reqs[sent].hdrs, reqs[sent].hlen,
			                  deadline);
			if (rc < 0) {
				fail_text(err, errlen, method, pc, rc);
				purge_http_close(pc);
				return done;
			}
			sent++;
		}
		bool keep = false;
		st = read_reply(pc, deadline, &keep);
		if (st < 200 || st > 299) {
			if (st > 0)
				snprintf(err, errlen, "%s %s answered %d", method,
				         pc->url.authority, st);
			else
				fail_text(err, errlen, method, pc, st);
			purge_http_close(pc);
			return done;
		}
		done++;
		if (!keep)
			purge_http_close(pc);
	}
	return done;
}

int purge_command(const char *path, const char *input, size_t len, int timeout_ms, int stop_fd,
                  char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	/* Its own process group, to be killed whole; default signals (the
	 * responder ignores SIGPIPE). */
	sigset_t def;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigdefault(&at, &def);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
	                                      POSIX_SPAWN_SETSIGMASK);
	char *argv[] = {(char *)path, NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[0]);
	if (rc != 0) {
		close(pfd[1]);
		snprintf(err, errlen, "cannot run %s: %s", path, strerror(rc));
		return -rc;
	}
	/* Feed its standard input without blocking past the deadline; a
	 * program that stops reading (or exits) ends the feeding. */
	fcntl(pfd[1], F_SETFL, O_NONBLOCK);
	size_t off = 0;
	int wrc = 0;
	while (off < len) {
		ssize_t w = write(pfd[1], input + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if ((wrc = wait_fd(pfd[1], POLLOUT, deadline, stop_fd)) < 0)
				break;
			continue;
		}
		if (w < 0) {
			wrc = -errno; /* EPIPE: it did not read it all */
			break;
		}
		off += (size_t)w;
	}
	close(pfd[1]);
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -ECHILD;
		}
		bool stop = false;
		if (stop_fd >= 0) {
			struct pollfd p = {.fd = stop_fd, .events = POLLIN};
			stop = poll(&p, 1, 0) > 0;
		}
		if (now_ms() >= deadline || stop || wrc == -ETIMEDOUT) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			snprintf(err, errlen, "%s killed: %s", path,
			         stop ? "stopping" : "still running at its timeout");
			return stop ? -ECANCELED : -ETIMEDOUT;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (wrc < 0 && wrc != -EPIPE) {
			snprintf(err, errlen, "%s: writing its input: %s", path, strerror(-wrc));
			return wrc;
		}
		return 0;
	}
	if (WIFEXITED(status))
		snprintf(err, errlen, "%s exited %d", path, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(err, errlen, "%s killed by signal %d", path, WTERMSIG(status));
	else
		snprintf(err, errlen, "%s failed", path);
	return -EIO;
}
