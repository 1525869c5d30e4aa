/* SPDX-License-Identifier: Apache-2.0 */
/* vigil-responder: OCSP over HTTP/1.1 (and CRL download) from the Vigil status store. */
#include "responder/resp.h"
#include "store/common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

struct worker *g_workers;
int g_nworkers;
struct vg_store *g_store;
atomic_int g_open_conns;
int g_access_fd = -1;
atomic_bool g_drain;

/* Signed answers kept (about 2 KiB each with a delegated RSA signer). */
#define CACHE_ENTRIES 16384

static const char *conf_path;
static uv_signal_t sig_hup, sig_term, sig_int;

static const char usage[] =
	"Usage: vigil-responder -c FILE [--listen ADDR:PORT] [--check] [--verbose]\n"
	"\n"
	"Answer OCSP requests (RFC 6960, RFC 5019) over HTTP/1.1 for every CA of the\n"
	"configuration, from the Vigil status store (read-only), and serve the CRLs that\n"
	"vigil-crlgen publishes.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE      configuration file (INI, shared with vigil-store and\n"
	"                         vigil-crlgen); required\n"
	"  -l, --listen ADDR:PORT listen here instead of [responder] listen; ADDR is an\n"
	"                         IPv4 address, [IPv6] or * ; PORT 0 picks a free port,\n"
	"                         reported in the event=listening log line\n"
	"  -t, --check            load the configuration, certificates and keys, open the\n"
	"                         store, then exit 0 (or 1 with the reason)\n"
	"  -v, --verbose          log debug events too\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"HTTP surface:\n"
	"  POST {base_path}               body: DER OCSPRequest (application/ocsp-request)\n"
	"  GET  {base_path}{base64 DER}   URL-encoded base64 request; answers are cacheable:\n"
	"                                 Cache-Control max-age, Expires, Last-Modified, ETag;\n"
	"                                 If-None-Match gives 304\n"
	"  GET  /crl/{CA}.crl             newest CRL published by vigil-crlgen ([crlgen] out)\n"
	"  GET  /healthz                  200 when the store is readable and signers are loaded\n"
	"  GET  /metrics                  Prometheus text format\n"
	"\n"
	"Answers: good or revoked (time, reason) as the store says; a serial absent from the\n"
	"store is unknown, or revoked (certificateHold, 1970-01-01, extended-revoke extension)\n"
	"when its CA is frozen and has not_issued = revoked. An issuer not configured gets\n"
	"unauthorized, undecodable DER malformedRequest. Responses are signed by the CA's\n"
	"ocsp_cert/ocsp_key (included in the response) or by the CA key, responderID by key\n"
	"hash, valid for the CA's ocsp_validity (8h to 10d). Answers without a nonce are\n"
	"cached per CA, serial and CertID and re-signed after refresh_percent of their\n"
	"validity; a change committed to the store drops the answers it touches within 50 ms.\n"
	"\n"
	"[responder] keys: listen, workers (0 = one per CPU), user, access_log, base_path,\n"
	"max_connections, max_request_bytes, max_header_bytes, max_certids, idle_timeout,\n"
	"header_timeout, body_timeout, refresh_percent.\n"
	"\n"
	"Workers are threads, each with its own event loop and SO_REUSEPORT listener, its own\n"
	"read transaction on the store; the answer cache is shared, read without locks.\n"
	"\n"
	"Signals: SIGHUP reloads the configuration, certificates and keys (a bad new\n"
	"configuration is logged and the old one keeps serving; listen, workers and the store\n"
	"path need a restart); SIGTERM and SIGINT stop accepting, finish the requests in\n"
	"flight (at most 10 s) and exit 0.\n"
	"\n"
	"Logs: one key=value line per event on stderr; access log lines to access_log.\n"
	"Exit status: 0 after a clean stop, 1 on a start-up error, 2 on a usage error.\n";

static void die_usage(const char *what, const char *arg)
{
	fprintf(stderr, "vigil-responder: %s%s (see --help)\n", what, arg);
	exit(2);
}

/* parse_listen reads ADDR:PORT, [V6]:PORT or *:PORT. */
static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || strlen(s) >= sizeof(host))
		return -EINVAL;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return -EINVAL;
	size_t hl = (size_t)(colon - s);
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -EINVAL;
	}
	if (!strcmp(host, "*"))
		strcpy(host, "0.0.0.0");
	return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : -EINVAL;
}

static int bind_one(const struct sockaddr_storage *ss, int *out, char *err, size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, sl) < 0 || listen(fd, 1024) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen: %s", strerror(e));
		close(fd);
		return -e;
	}
	*out = fd;
	return 0;
}

/* probe_port checks that nobody listens on |ss| and, for port 0, picks the
 * port. */
static int probe_port(struct sockaddr_storage *ss, char *err, size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, sl) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen: %s%s", strerror(e),
			 e == EADDRINUSE ? " (is another responder running?)" : "");
		close(fd);
		return -e;
	}
	sl = sizeof(*ss);
	getsockname(fd, (struct sockaddr *)ss, &sl);
	close(fd);
	return 0;
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[64] = "?";
	int port;
	if (ss->ss_family == AF_INET6) {
		uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
		snprintf(buf, len, "[%s]:%d", ip, port);
	} else {
		uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
		snprintf(buf, len, "%s:%d", ip, port);
	}
	return buf;
}

static int drop_privileges(const char *user, char *err, size_t errlen)
{
	if (!user || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen, "[responder] user %s: no such user", user);
		return -ENOENT;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot become user %s: %s", user, strerror(e));
		return -e;
	}
	return 0;
}

static void on_hup(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	char err[512], q[600];
	struct rctx *old = ctx_current();
	struct rctx *c;
	int rc = ctx_load(conf_path, &c, err, sizeof(err));
	if (rc < 0) {
		log_err("event=reload_failed error=%s action=keep_old_config",
			vg_log_quote(err, q, sizeof(q)));
		ctx_unref(old);
		return;
	}
	if (strcmp(old->conf.store_path, c->conf.store_path))
		log_warn("event=reload_ignored key=store.path reason=needs_restart");
	if (strcmp(old->conf.listen, c->conf.listen))
		log_warn("event=reload_ignored key=responder.listen reason=needs_restart");
	if (old->conf.workers != c->conf.workers)
		log_warn("event=reload_ignored key=responder.workers reason=needs_restart");
	ctx_unref(old);
	ctx_publish(c);
	for (int i = 0; i < g_nworkers; i++)
		uv_async_send(&g_workers[i].async);
	log_info("event=reloaded config=%s cas=%d", conf_path, c->n_cas);
}

static void on_term(uv_signal_t *h, int sig)
{
	log_info("event=stopping signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	atomic_store(&g_drain, true);
	for (int i = 0; i < g_nworkers; i++)
		uv_async_send(&g_workers[i].async);
	uv_stop(h->loop);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
		{"check", no_argument, NULL, 't'},        {"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}};
	const char *listen_arg = NULL;
	bool check = false, verbose = false;
	int ch;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:l:tvhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'l':
			listen_arg = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("vigil-responder %s\n", VG_VERSION);
			return 0;
		case ':':
			die_usage("missing argument for option ", argv[optind - 1]);
			break;
		default:
			die_usage("unknown option ", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument ", argv[optind]);
	if (!conf_path)
		die_usage("-c FILE is required", "");

	vg_log_init("vigil-responder", verbose ? LOG_DEBUG : LOG_INFO);
	signal(SIGPIPE, SIG_IGN); /* libuv#45: writes to closed sockets must not kill us */
	/* max_connections may exceed the default soft limit on descriptors. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	char err[512];
	struct sockaddr_storage ss;
	struct rctx *ctx;
	int rc = ocsp_init();
	if (rc < 0) {
		fprintf(stderr, "vigil-responder: OpenSSL initialisation failed\n");
		return 1;
	}
	rc = ctx_load(conf_path, &ctx, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "vigil-responder: %s\n", err);
		return 1;
	}
	const char *listen_s = listen_arg ? listen_arg : ctx->conf.listen;
	if (parse_listen(listen_s, &ss) < 0) {
		fprintf(stderr, "vigil-responder: listen %s: expected ADDR:PORT, [IPv6]:PORT or *:PORT\n",
			listen_s);
		ctx_unref(ctx);
		return listen_arg ? 2 : 1;
	}
	rc = vg_store_open(&g_store, ctx->conf.store_path, VG_STORE_RDONLY);
	if (rc < 0) {
		fprintf(stderr, "vigil-responder: store %s: %s%s\n", ctx->conf.store_path,
			strerror(-rc), rc == -ENODATA ? " (run vigil-store init)" : "");
		ctx_unref(ctx);
		return 1;
	}
	if (check) {
		printf("ok: %d CA(s), store %s\n", ctx->n_cas, ctx->conf.store_path);
		vg_store_close(g_store);
		ctx_unref(ctx);
		return 0;
	}
	ctx_publish(ctx);

	g_nworkers = ctx->conf.workers;
	if (g_nworkers <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		g_nworkers = n > 0 ? (int)n : 1;
	}
	g_workers = calloc((size_t)g_nworkers, sizeof(*g_workers));
	int *fds = calloc((size_t)g_nworkers, sizeof(int));
	if (!g_workers || !fds) {
		fprintf(stderr, "vigil-responder: out of memory\n");
		return 1;
	}
	/* SO_REUSEPORT would let us join the port of another running responder
	 * (same user) and share its clients. Probe with a plain bind first. */
	rc = probe_port(&ss, err, sizeof(err));
	if (rc < 0) {
		char a[80];
		fprintf(stderr, "vigil-responder: %s: %s\n", addr_str(&ss, a, sizeof(a)), err);
		return 1;
	}
	for (int i = 0; i < g_nworkers; i++) {
		rc = bind_one(&ss, &fds[i], err, sizeof(err));
		if (rc < 0) {
			char a[80];
			fprintf(stderr, "vigil-responder: %s: %s\n", addr_str(&ss, a, sizeof(a)), err);
			return 1;
		}
		if (i == 0) {
			/* Port 0: the others join the port the kernel chose. */
			socklen_t sl = sizeof(ss);
			getsockname(fds[0], (struct sockaddr *)&ss, &sl);
		}
	}
	if (ctx->conf.access_log) {
		g_access_fd = open(ctx->conf.access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (g_access_fd < 0) {
			fprintf(stderr, "vigil-responder: access_log %s: %s\n", ctx->conf.access_log,
				strerror(errno));
			return 1;
		}
	}
	if (drop_privileges(ctx->conf.user, err, sizeof(err)) < 0) {
		fprintf(stderr, "vigil-responder: %s\n", err);
		return 1;
	}
	if (cache_init(CACHE_ENTRIES, g_nworkers) < 0) {
		fprintf(stderr, "vigil-responder: out of memory\n");
		return 1;
	}
	for (int i = 0; i < g_nworkers; i++) {
		rc = worker_init(&g_workers[i], i, fds[i]);
		if (rc < 0) {
			fprintf(stderr, "vigil-responder: worker %d: %s\n", i, uv_strerror(rc));
			return 1;
		}
	}
	free(fds);

	uv_loop_t *loop = uv_default_loop();
	uv_signal_init(loop, &sig_hup);
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_hup, on_hup, SIGHUP);
	uv_signal_start(&sig_term, on_term, SIGTERM);
	uv_signal_start(&sig_int, on_term, SIGINT);

	for (int i = 0; i < g_nworkers; i++) {
		rc = pthread_create(&g_workers[i].thread, NULL, worker_main, &g_workers[i]);
		if (rc != 0) {
			fprintf(stderr, "vigil-responder: cannot start worker %d: %s\n", i, strerror(rc));
			return 1;
		}
	}
	char a[80];
	log_info("event=listening addr=%s workers=%d cas=%d store=%s version=%s",
		 addr_str(&ss, a, sizeof(a)), g_nworkers, ctx->n_cas, ctx->conf.store_path,
		 VG_VERSION);

	uv_run(loop, UV_RUN_DEFAULT);

	for (int i = 0; i < g_nworkers; i++)
		pthread_join(g_workers[i].thread, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	free(g_workers);
	cache_destroy();
	ctx_publish_clear();
	vg_store_close(g_store);
	if (g_access_fd >= 0)
		close(g_access_fd);
	log_info("event=stopped");
	return 0;
}
