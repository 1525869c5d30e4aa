/* SPDX-License-Identifier: Apache-2.0 */
/* vigil-responder: OCSP over HTTP/1.1 (and CRL download) from the Vigil status store. */
#include "responder/worker.h"
#include "responder/storewatch.h"
#include "responder/cache.h"
#include "responder/ctx.h"
#include "responder/edge.h"
#include "responder/ocsp.h"
#include "responder/routes.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* Signed answers kept (about 2 KiB each with a delegated RSA signer). */
#define CACHE_ENTRIES 16384

static const char *conf_path;
static uv_signal_t sig_hup, sig_term, sig_int;

static const char usage[] =
        "NAME\n"
        "    vigil-responder - OCSP responder and CRL server over HTTP/1.1, answering from\n"
        "    the Vigil status store\n"
        "\n"
        "SYNOPSIS\n"
        "    vigil-responder -c FILE [--listen ADDR:PORT] [--check] [--verbose]\n"
        "    vigil-responder --help | --version\n"
        "\n"
        "DESCRIPTION\n"
        "    Answers OCSP requests (RFC 6960, RFC 5019) for every [ca NAME] of the\n"
        "    configuration from the store (opened read-only), and serves the CRLs that\n"
        "    vigil-crlgen publishes. A revocation committed with vigil-store shows in the\n"
        "    answer to every request received after it, without a restart.\n"
        "\n"
        "OPTIONS\n"
        "    -c, --config FILE       configuration file (INI, shared with vigil-store and\n"
        "                            vigil-crlgen); required\n"
        "    -l, --listen ADDR:PORT  listen here instead of [responder] listen. ADDR is an\n"
        "                            IPv4 address, [IPv6] or *; PORT 0 picks a free port,\n"
        "                            logged as event=listening addr=ADDR:PORT\n"
        "    -t, --check             load the configuration, certificates and keys, open\n"
        "                            the store, print ok and exit 0 (or 1 with the reason)\n"
        "    -v, --verbose           log debug events too\n"
        "    -h, --help              show this help and exit\n"
        "    -V, --version           show the version and exit\n"
        "\n"
        "HTTP\n"
        "    POST {base_path}              body: DER OCSPRequest (application/ocsp-request);\n"
        "                                  answer: Cache-Control: no-store\n"
        "    GET  {base_path}{base64 DER}  URL-encoded base64 request ('+', '/', '=' raw or\n"
        "                                  %-encoded; '//' and a client prefix accepted);\n"
        "                                  cacheable: Cache-Control max-age (to\n"
        "                                  nextUpdate), s-maxage and CDN-Cache-Control (at\n"
        "                                  most [edge] max_age), public, no-transform,\n"
        "                                  must-revalidate; Expires (= nextUpdate),\n"
        "                                  Last-Modified (= thisUpdate), ETag, the tags in\n"
        "                                  [edge] tag_header; If-None-Match gives 304\n"
        "    GET  /crl/{CA}.crl            newest CRL in [crlgen] out (application/pkix-crl);\n"
        "                                  503 once it is past its nextUpdate\n"
        "    GET  /healthz                 200 when the store is readable, no CA's signer\n"
        "                                  keeps failing or has expired, and no CA's CRL\n"
        "                                  is past its nextUpdate; 503 with the reason\n"
        "    GET  /metrics                 Prometheus text format\n"
        "    HEAD works wherever GET does. Refused requests: 400 bad request or base64,\n"
        "    404, 405 other methods, 408 header_timeout/body_timeout, 413 body over\n"
        "    max_request_bytes, 414 URI and 431 headers over max_header_bytes, 503 over\n"
        "    max_connections or past the open-file limit, 505 HTTP versions other than\n"
        "    1.x; each with a log line.\n"
        "\n"
        "ANSWERS\n"
        "    good or revoked (time, reason, invalidity date) as the store says. A serial\n"
        "    absent from the store is unknown, or, when its CA is frozen and has\n"
        "    not_issued = revoked, revoked with certificateHold at 1970-01-01 and the\n"
        "    extended-revoke extension (RFC 6960 4.4.8). An issuer not configured gets\n"
        "    unauthorized, undecodable DER or a nonce over 128 octets malformedRequest, a\n"
        "    store or signing failure tryLater (when signing fails, a cached answer still\n"
        "    before its nextUpdate is served instead). CertIDs may use\n"
        "    SHA-1, SHA-256, SHA-384 or SHA-512; up to max_certids per request. Answers\n"
        "    are signed by ocsp_cert/ocsp_key (the certificate is included) or by the CA\n"
        "    key (RSA, ECDSA, Ed25519), responderID by key hash, valid ocsp_validity.\n"
        "    Answers without a nonce are cached (shared by the workers, read without\n"
        "    locks) per CA, serial and CertID, re-signed after refresh_percent of their\n"
        "    validity (sooner where Baseline Requirements 4.9.10 ask: at most 4 days\n"
        "    after thisUpdate, at least 8 hours before nextUpdate), and dropped when the\n"
        "    store's change log names them.\n"
        "\n"
        "CONFIGURATION\n"
        "    [responder] listen, workers (0 = one per CPU), user (drop root after binding),\n"
        "    access_log, base_path (default /), max_connections (10000),\n"
        "    max_request_bytes (16384), max_header_bytes (8192), max_certids (32),\n"
        "    idle_timeout (30s), header_timeout (10s), body_timeout (10s),\n"
        "    refresh_percent (50). [ca NAME] cert, ocsp_cert, ocsp_key (or crl_key),\n"
        "    not_issued, ocsp_validity (8h to 10d, default 4d), digest. [edge] max_age\n"
        "    (60), tag_header (xkey), purge_varnish, purge_nginx, purge_command,\n"
        "    purge_command_timeout (30s), state_dir.\n"
        "\n"
        "EDGE\n"
        "    After a store change has left the cache and every worker, one thread per\n"
        "    configured edge purges its tags (Varnish: PURGE with xkey-purge lines;\n"
        "    nginx: PURGE of the CRL URLs; purge_command: tags on stdin), batched,\n"
        "    retried with back-off, and again after a restart for what an edge never\n"
        "    acknowledged (state_dir). A new CRL is purged too. Answering never waits.\n"
        "    SIGHUP applies the purge targets: an edge still listed keeps its purger\n"
        "    (not purged again), a new one starts as at start, a removed one's stops;\n"
        "    state_dir needs a restart.\n"
        "\n"
        "    Workers are threads, each with its own event loop, its own SO_REUSEPORT\n"
        "    listener and its own read transaction on the store. A port another process\n"
        "    already listens on is refused.\n"
        "\n"
        "SIGNALS\n"
        "    SIGHUP   reload the configuration, CA certificates and keys; connections stay\n"
        "             open. A bad new configuration is logged (event=reload_failed) and the\n"
        "             old one keeps serving. listen, workers, the store path and [edge]\n"
        "             state_dir need a restart; after dropping root (user) keys must stay\n"
        "             readable.\n"
        "    SIGTERM, SIGINT  stop accepting, finish the requests in flight (at most\n"
        "             10 s), exit 0.\n"
        "\n"
        "LOGS\n"
        "    One key=value line per event on stderr (event=listening, reloaded,\n"
        "    reload_failed, http_refused, timeout, conn_refused, stopping, stopped, ...);\n"
        "    one line per request in access_log when set.\n"
        "\n"
        "EXIT STATUS\n"
        "    0 after a clean stop or --check, 1 on a start-up error (one line on stderr),\n"
        "    2 on a usage error.\n"
        "\n"
        "EXAMPLES\n"
        "    vigil-responder -c /etc/vigil/vigil.conf --listen 127.0.0.1:8080 &\n"
        "    openssl ocsp -issuer ca.pem -cert leaf.pem -CAfile ca.pem \\\n"
        "        -url http://127.0.0.1:8080/\n"
        "    curl -s http://127.0.0.1:8080/metrics | grep vigil_cache\n";

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
		return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0
		                                                                        : -EINVAL;
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
	if (!user)
		return 0;
	struct passwd *pw;
	if (geteuid() != 0) {
		/* Only root can change users: say so, unless we already are |user|. */
		pw = getpwnam(user);
		if (!pw || pw->pw_uid != geteuid())
			log_warn("event=user_ignored user=%s uid=%u reason=not_started_as_root",
			         user, (unsigned)geteuid());
		return 0;
	}
	pw = getpwnam(user);
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

/* raise_nofile raises the soft limit on descriptors to the hard limit
 * (max_connections may exceed the usual soft limit of 1024); an unlimited
 * hard limit means fs.nr_open, the most setrlimit takes. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rlim_t want = rl.rlim_max;
	if (want == RLIM_INFINITY) {
		FILE *f = fopen("/proc/sys/fs/nr_open", "re");
		unsigned long long n = 0;
		if (!f || fscanf(f, "%llu", &n) != 1 || n == 0)
			n = 1048576;
		if (f)
			fclose(f);
		want = (rlim_t)n;
	}
	if (want <= rl.rlim_cur)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("event=fd_limit_raise_failed soft=%llu hard=%llu error=\"%s\"",
		         (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		         strerror(errno));
}

/* count_fds returns the descriptors open in this process, or -1. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = -1; /* the directory's own */
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* check_fd_limit warns (one line) when max_connections exceeds what the
 * limit on descriptors leaves for connections: besides those open now (but
 * the connections'), libuv's own reserve per worker loop, and a CRL version
 * or two per CA being served, with a margin. Past it, connections are
 * refused with 503 (conn.c, on a reserve descriptor). */
static void check_fd_limit(const struct rctx *c)
{
	struct rlimit rl;
	int used = count_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || used < 0)
		return;
	used -= atomic_load(&g_open_conns);
	long long allows = (long long)rl.rlim_cur - used - g_nworkers - 2LL * c->n_cas - 16;
	if (c->conf.max_connections > allows)
		log_warn("event=fd_limit_low nofile=%llu max_connections=%d allows=%lld "
		         "action=\"connections past it get 503; raise the limit (LimitNOFILE=) or "
		         "lower max_connections\"",
		         (unsigned long long)rl.rlim_cur, c->conf.max_connections,
		         allows > 0 ? allows : 0);
}

/* reopen_access_log points the access log at |path| again (after logrotate
 * moved it), in place: dup2 swaps the descriptor the workers write to. */
static void reopen_access_log(const char *path)
{
	if (!path || g_access_fd < 0) {
		if (!!path != (g_access_fd >= 0))
			log_warn("event=reload_ignored key=responder.access_log "
			         "reason=needs_restart");
		return;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_err("event=access_log_failed path=%s error=\"%s\" action=keep_old", path,
		        strerror(errno));
		return;
	}
	if (dup3(fd, g_access_fd, O_CLOEXEC) < 0)
		log_err("event=access_log_failed path=%s error=\"%s\" action=keep_old", path,
		        strerror(errno));
	close(fd);
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
	reopen_access_log(c->conf.access_log);
	if (old->conf.max_connections != c->conf.max_connections)
		check_fd_limit(c);
	ctx_unref(old);
	ctx_publish(c);
	for (int i = 0; i < g_nworkers; i++)
		uv_async_send(&g_workers[i].async);
	/* After the publication: a new purger reads the new CAs. */
	edge_reload(c);
	log_info("event=reloaded config=%s cas=%d", conf_path, c->n_cas);
}

static uv_timer_t store_watch;

static void on_store_watch(uv_timer_t *t)
{
	(void)t;
	storewatch_check();
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
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"listen", required_argument, NULL, 'l'},
	                                     {"check", no_argument, NULL, 't'},
	                                     {"verbose", no_argument, NULL, 'v'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
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
	raise_nofile();

	char err[512];
	struct sockaddr_storage ss;
	struct rctx *ctx;
	int *fds = NULL;
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
		fprintf(stderr,
		        "vigil-responder: listen %s: expected ADDR:PORT, [IPv6]:PORT or *:PORT\n",
		        listen_s);
		ctx_unref(ctx);
		return listen_arg ? 2 : 1;
	}
	rc = vg_store_open(&g_store, ctx->conf.store_path, VG_STORE_RDONLY);
	if (rc < 0) {
		if (rc == -EUCLEAN)
			fprintf(stderr, "vigil-responder: %s\n", vg_store_damage());
		else
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
	fds = calloc((size_t)g_nworkers, sizeof(int));
	if (!g_workers || !fds) {
		fprintf(stderr, "vigil-responder: out of memory\n");
		goto fail;
	}
	/* SO_REUSEPORT would let us join the port of another running responder
	 * (same user) and share its clients. Probe with a plain bind first. */
	rc = probe_port(&ss, err, sizeof(err));
	if (rc < 0) {
		char a[80];
		fprintf(stderr, "vigil-responder: %s: %s\n", addr_str(&ss, a, sizeof(a)), err);
		goto fail;
	}
	for (int i = 0; i < g_nworkers; i++) {
		rc = bind_one(&ss, &fds[i], err, sizeof(err));
		if (rc < 0) {
			char a[80];
			fprintf(stderr, "vigil-responder: %s: %s\n", addr_str(&ss, a, sizeof(a)),
			        err);
			goto fail;
		}
		if (i == 0) {
			/* Port 0: the others join the port the kernel chose. */
			socklen_t sl = sizeof(ss);
			getsockname(fds[0], (struct sockaddr *)&ss, &sl);
		}
	}
	if (ctx->conf.access_log) {
		g_access_fd =
		        open(ctx->conf.access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (g_access_fd < 0) {
			fprintf(stderr, "vigil-responder: access_log %s: %s\n",
			        ctx->conf.access_log, strerror(errno));
			goto fail;
		}
	}
	if (drop_privileges(ctx->conf.user, err, sizeof(err)) < 0) {
		fprintf(stderr, "vigil-responder: %s\n", err);
		goto fail;
	}
	routes_init();
	if (cache_init(CACHE_ENTRIES, g_nworkers) < 0) {
		fprintf(stderr, "vigil-responder: out of memory\n");
		goto fail;
	}
	for (int i = 0; i < g_nworkers; i++) {
		rc = worker_init(&g_workers[i], i, fds[i]);
		if (rc < 0) {
			fprintf(stderr, "vigil-responder: worker %d: %s\n", i, uv_strerror(rc));
			goto fail;
		}
	}
	free(fds);
	fds = NULL;
	check_fd_limit(ctx);

	uv_loop_t *loop = uv_default_loop();
	uv_signal_init(loop, &sig_hup);
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_hup, on_hup, SIGHUP);
	uv_signal_start(&sig_term, on_term, SIGTERM);
	uv_signal_start(&sig_int, on_term, SIGINT);
	uv_timer_init(loop, &store_watch);
	uv_timer_start(&store_watch, on_store_watch, STOREWATCH_MS, STOREWATCH_MS);

	for (int i = 0; i < g_nworkers; i++) {
		rc = pthread_create(&g_workers[i].thread, NULL, worker_main, &g_workers[i]);
		if (rc != 0) {
			fprintf(stderr, "vigil-responder: cannot start worker %d: %s\n", i,
			        strerror(rc));
			return 1;
		}
	}
	char a[80];
	struct rlimit rl = {0};
	getrlimit(RLIMIT_NOFILE, &rl);
	log_info("event=listening addr=%s workers=%d cas=%d store=%s nofile=%llu version=%s",
	         addr_str(&ss, a, sizeof(a)), g_nworkers, ctx->n_cas, ctx->conf.store_path,
	         (unsigned long long)rl.rlim_cur, VG_VERSION);

	/* After the workers: the purgers follow what they answer from. */
	edge_start(ctx, g_store);

	uv_run(loop, UV_RUN_DEFAULT);

	for (int i = 0; i < g_nworkers; i++)
		pthread_join(g_workers[i].thread, NULL);
	/* After the workers (a /metrics answer reads the edges), before their
	 * structs go (the purgers read what they answer from). */
	edge_stop();
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&store_watch, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	free(g_workers);
	cache_destroy();
	ctx_publish_clear();
	storewatch_close();
	if (g_access_fd >= 0)
		close(g_access_fd);
	log_info("event=stopped");
	return 0;
fail:
	/* Start-up failed: release what was taken (sockets go with the process). */
	free(fds);
	if (g_workers)
		for (int i = 0; i < g_nworkers; i++)
			ctx_unref(g_workers[i].ctx);
	free(g_workers);
	cache_destroy();
	ctx_publish_clear();
	vg_store_close(g_store);
	return 1;
}
