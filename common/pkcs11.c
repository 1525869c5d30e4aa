/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pkcs11: keys through the libp11 ENGINE.
 *
 * OpenSSL 3.0 reaches PKCS#11 tokens through a provider (pkcs11-provider) or
 * an ENGINE (libp11's "pkcs11"). Debian 12 packages only the ENGINE
 * (libengine-pkcs11-openssl), and OpenSSL 3.0 still runs ENGINE keys through
 * EVP_DigestSign* and OCSP_basic_sign, so that is what this file uses. The
 * ENGINE API is deprecated in 3.0: the deprecation warnings are silenced here
 * and only here, so the rest of the tree stays warning-clean. When a provider
 * is packaged, OSSL_STORE_open on the same URI replaces this file.
 *
 * One engine per process, initialised on the first pkcs11: key and kept until
 * exit: libp11 binds one PKCS#11 module to an engine, and the module's
 * sessions and login state must outlive every key handle (a reload loads new
 * handles while workers still sign with the old ones).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "common/pkcs11.h"
#include "common/pki.h"
#include "common/text.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

static pthread_mutex_t p11_lock = PTHREAD_MUTEX_INITIALIZER;
static ENGINE *p11_engine;   /* functional reference, kept until exit */
static char *p11_module;     /* the module it was initialised with */
static UI_METHOD *p11_no_ui; /* refuses every prompt */

bool vg_pkcs11_is_uri(const char *uri)
{
	return uri && strncasecmp(uri, "pkcs11:", 7) == 0;
}

/* The attributes this file consumes, and the URI left for the engine. */
struct p11_uri {
	char *engine_uri; /* the URI without module-path, pin-source, pin-value */
	char *module;     /* percent-decoded module-path, or NULL */
	char *pin_source; /* percent-decoded pin-source, or NULL */
	bool pin_value;
};

static void p11_uri_free(struct p11_uri *u)
{
	free(u->engine_uri);
	free(u->module);
	free(u->pin_source);
	memset(u, 0, sizeof(*u));
}

/* pct_decode returns a NUL-terminated copy of |s|[0..n) with %XX decoded, or
 * NULL on a malformed escape, an encoded NUL, or no memory. */
static char *pct_decode(const char *s, size_t n)
{
	char *r = malloc(n + 1);
	if (!r)
		return NULL;
	ssize_t len = vg_pct_decode(s, n, r);
	if (len < 0 || strlen(r) != (size_t)len) {
		free(r);
		return NULL;
	}
	return r;
}

/* p11_uri_parse splits |uri| (RFC 7512: path attributes separated by ';',
 * then '?' and query attributes separated by '&'). The three attributes
 * Vigil handles are taken out wherever they stand (libp11 also reads
 * pin-value in the path); every other attribute goes to the engine as is. */
static int p11_uri_parse(const char *uri, struct p11_uri *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	size_t len = strlen(uri);
	char *path = malloc(len + 1), *query = malloc(len + 1);
	size_t plen = 0, qlen = 0;
	int rc = -ENOMEM;
	if (!path || !query)
		goto out;
	const char *s = uri + 7;
	bool in_query = false;
	for (;;) {
		char sep = in_query ? '&' : ';';
		size_t n = 0;
		while (s[n] && s[n] != sep && !(!in_query && s[n] == '?'))
			n++;
		const char *eq = memchr(s, '=', n);
		size_t nlen = eq ? (size_t)(eq - s) : n;
		char **dst = NULL;
		if (nlen == 11 && !memcmp(s, "module-path", 11))
			dst = &u->module;
		else if (nlen == 10 && !memcmp(s, "pin-source", 10))
			dst = &u->pin_source;
		else if (nlen == 9 && !memcmp(s, "pin-value", 9))
			u->pin_value = true;
		else if (n > 0) {
			char *b = in_query ? query : path;
			size_t *bl = in_query ? &qlen : &plen;
			if (*bl)
				b[(*bl)++] = sep;
			memcpy(b + *bl, s, n);
			*bl += n;
		}
		if (dst) {
			if (*dst || !eq) {
				snprintf(err, errlen, "pkcs11 URI: %.*s %s", (int)nlen, s,
				         *dst ? "given twice" : "without a value");
				rc = -EINVAL;
				goto out;
			}
			*dst = pct_decode(eq + 1, n - nlen - 1);
			if (!*dst) {
				snprintf(err, errlen, "pkcs11 URI: bad %%-escape in %.*s",
				         (int)nlen, s);
				rc = -EINVAL;
				goto out;
			}
		}
		s += n;
		if (!*s)
			break;
		if (!in_query && *s == '?')
			in_query = true;
		s++;
	}
	path[plen] = '\0';
	query[qlen] = '\0';
	if (asprintf(&u->engine_uri, "pkcs11:%s%s%s", path, qlen ? "?" : "", query) < 0) {
		u->engine_uri = NULL;
		goto out;
	}
	rc = 0;
out:
	free(path);
	free(query);
	if (rc < 0)
		p11_uri_free(u);
	return rc;
}

/* read_pin reads the PIN from |source| (pin-source: file:/path, file:///path
 * or /path) into |pin|. Like key files, the file must not be accessible by
 * others. One trailing newline (LF or CRLF) is not part of the PIN. */
static int read_pin(const char *source, char *pin, size_t pinlen, char *err, size_t errlen)
{
	const char *path = source;
	if (!strncmp(path, "file://", 7) && path[7] == '/')
		path += 7;
	else if (!strncmp(path, "file:", 5))
		path += 5;
	if (path[0] != '/') {
		snprintf(err, errlen, "pin-source %s: expected file:/absolute/path", source);
		return -EINVAL;
	}
	/* Checked on the opened descriptor, as key files are. */
	int fd = vg_pki_open_secret(path, "PIN file", "pin-source ", err, errlen);
	if (fd < 0)
		return fd;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "pin-source %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	size_t n = fread(pin, 1, pinlen - 1, f);
	bool more = fgetc(f) != EOF;
	fclose(f);
	if (n > 0 && pin[n - 1] == '\n')
		n--;
	if (n > 0 && pin[n - 1] == '\r')
		n--;
	pin[n] = '\0';
	if (more || n == 0 || memchr(pin, '\n', n) || memchr(pin, '\0', n)) {
		OPENSSL_cleanse(pin, pinlen);
		snprintf(err, errlen, "pin-source %s: %s", path,
		         n == 0 && !more ? "empty" : "expected one line, the PIN");
		return -EINVAL;
	}
	return 0;
}

/* credential_pin reads the PIN from systemd's credentials directory
 * ($CREDENTIALS_DIRECTORY/pkcs11-pin, made by LoadCredential= or
 * SetCredentialEncrypted= for this unit alone); -ENOENT when there is none. */
static int credential_pin(char *pin, size_t pinlen, char *err, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[4096];
	if (!dir || dir[0] != '/')
		return -ENOENT;
	int n = snprintf(path, sizeof(path), "%s/" VG_PKCS11_PIN_CREDENTIAL, dir);
	if (n < 0 || (size_t)n >= sizeof(path) || access(path, F_OK) < 0)
		return -ENOENT;
	return read_pin(path, pin, pinlen, err, errlen);
}

static int no_prompt(UI *ui, UI_STRING *uis)
{
	(void)ui;
	(void)uis;
	return 0; /* an error: a daemon never prompts */
}

/* engine_reason describes the first error OpenSSL queued (libp11 puts the
 * PKCS#11 return code there, e.g. "PIN incorrect") and clears the queue. */
static const char *engine_reason(char *buf, size_t buflen, const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, buflen, "%s", r ? r : fallback);
	ERR_clear_error();
	return buf;
}

/* engine_get returns the process's engine, initialised with |module| on the
 * first call. Lock held. */
static ENGINE *engine_get(const char *module, char *err, size_t errlen)
{
	char r[200];
	if (p11_engine) {
		if (strcmp(module, p11_module) != 0) {
			snprintf(err, errlen,
			         "PKCS#11 module %s: this process already uses %s (one module per "
			         "process)",
			         module, p11_module);
			return NULL;
		}
		return p11_engine;
	}
	if (access(module, R_OK) < 0) {
		int e = errno;
		snprintf(err, errlen, "PKCS#11 module %s: %s", module, strerror(e));
		return NULL;
	}
	if (!p11_no_ui) {
		p11_no_ui = UI_create_method("vigil: no PIN prompt");
		if (!p11_no_ui || UI_method_set_reader(p11_no_ui, no_prompt) < 0) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
	}
	ENGINE *e = ENGINE_by_id("pkcs11");
	if (!e) {
		snprintf(err, errlen,
		         "the OpenSSL engine \"pkcs11\" is not available (install "
		         "libengine-pkcs11-openssl): %s",
		         engine_reason(r, sizeof(r), "not found"));
		return NULL;
	}
	/* QUIET: libp11 would print its own diagnostics on stderr; the reason
	 * is in OpenSSL's error queue and reported here, in one line. */
	ENGINE_ctrl_cmd(e, "QUIET", 0, NULL, NULL, 0);
	ERR_clear_error();
	if (!ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module, 0) || !ENGINE_init(e)) {
		snprintf(err, errlen, "PKCS#11 module %s: cannot initialise: %s", module,
		         engine_reason(r, sizeof(r), "unknown error"));
		ENGINE_free(e);
		return NULL;
	}
	ENGINE_free(e); /* the functional reference from ENGINE_init remains */
	p11_module = strdup(module);
	if (!p11_module) {
		ENGINE_finish(e);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p11_engine = e;
	return e;
}

/* probe_sign makes and verifies one signature with |k|: a token that lets
 * the key be found but cannot sign with it (CKA_SIGN false, stale object
 * handles, a private key that does not match the public key the token
 * shows) fails here, at start or reload, and not on the first request. */
static int probe_sign(EVP_PKEY *k, char *r, size_t rlen)
{
	static const unsigned char msg[] = "vigil: pkcs11 key check";
	const EVP_MD *md =
	        EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448") ? NULL : EVP_sha256();
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestSignInit(c, NULL, md, NULL, k) == 1 &&
	         EVP_DigestSign(c, NULL, &siglen, msg, sizeof(msg)) == 1 &&
	         (sig = OPENSSL_malloc(siglen)) != NULL &&
	         EVP_DigestSign(c, sig, &siglen, msg, sizeof(msg)) == 1;
	if (!ok) {
		engine_reason(r, rlen, "signing failed");
	} else {
		EVP_MD_CTX_reset(c);
		ok = EVP_DigestVerifyInit(c, NULL, md, NULL, k) == 1 &&
		     EVP_DigestVerify(c, sig, siglen, msg, sizeof(msg)) == 1;
		if (!ok)
			snprintf(r, rlen, "its signature does not verify with the public key");
		ERR_clear_error();
	}
	OPENSSL_free(sig);
	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

/* load_error says why ENGINE_load_private_key failed, completing libp11's
 * terse reasons. */
static void load_error(const char *uri, const char *module, char *err, size_t errlen)
{
	char r[200];
	engine_reason(r, sizeof(r), "object not found");
	if (!strcmp(r, "object not found"))
		snprintf(err, errlen,
		         "%s: no token holds a private key that matches the URI "
		         "(module %s)",
		         uri, module);
	/* libp11 loads the module lazily and says this for a failing
	 * C_Initialize too, e.g. SoftHSM2 without its token directory. */
	else if (!strcmp(r, "could not load the shared library"))
		snprintf(err, errlen, "%s: PKCS#11 module %s could not be loaded or initialised%s",
		         uri, module,
		         strstr(module, "softhsm") ? " (check SOFTHSM2_CONF and its "
		                                     "directories.tokendir)"
		                                   : "");
	else
		snprintf(err, errlen,
		         "%s: cannot load the private key from the token: %s (module %s)", uri, r,
		         module);
}

int vg_pkcs11_load_key(const char *uri, EVP_PKEY **out, char *err, size_t errlen)
{
	struct p11_uri u;
	char e[300], r[200];
	char pin[256];
	int rc = p11_uri_parse(uri, &u, e, sizeof(e));
	if (rc < 0) {
		snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : e);
		return rc;
	}
	/* From here on messages name u.engine_uri: it holds no PIN. */
	if (u.pin_value) {
		snprintf(err, errlen,
		         "%s: pin-value in the URI would keep the PIN in the configuration "
		         "file; use pin-source=file:/path or VIGIL_PKCS11_PIN",
		         u.engine_uri);
		rc = -EINVAL;
		goto out;
	}
	if (u.pin_source) {
		rc = read_pin(u.pin_source, pin, sizeof(pin), e, sizeof(e));
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", u.engine_uri, e);
			goto out;
		}
	} else if ((rc = credential_pin(pin, sizeof(pin), e, sizeof(e))) != -ENOENT) {
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", u.engine_uri, e);
			goto out;
		}
	} else {
		const char *env = getenv("VIGIL_PKCS11_PIN");
		if (!env || !*env) {
			snprintf(err, errlen,
			         "%s: no PIN: add pin-source=file:/path to the URI, give systemd's "
			         "LoadCredential=" VG_PKCS11_PIN_CREDENTIAL ":FILE or set "
			         "VIGIL_PKCS11_PIN",
			         u.engine_uri);
			rc = -EINVAL;
			goto out;
		}
		if (strlen(env) >= sizeof(pin)) {
			snprintf(err, errlen, "%s: VIGIL_PKCS11_PIN is too long", u.engine_uri);
			rc = -EINVAL;
			goto out;
		}
		snprintf(pin, sizeof(pin), "%s", env);
	}
	const char *module = u.module ? u.module : getenv("VIGIL_PKCS11_MODULE");
	if (!module || !*module)
		module = VG_PKCS11_DEFAULT_MODULE;

	pthread_mutex_lock(&p11_lock);
	ENGINE *eng = engine_get(module, e, sizeof(e));
	EVP_PKEY *k = NULL;
	if (!eng) {
		snprintf(err, errlen, "%s: %s", u.engine_uri, e);
		rc = -ENOPKG;
	} else {
		ERR_clear_error();
		/* The PIN stays with the engine: libp11 logs in again with it
		 * when it has to open a new session. */
		if (!ENGINE_ctrl_cmd_string(eng, "PIN", pin, 0)) {
			snprintf(err, errlen, "%s: cannot pass the PIN to the engine: %s",
			         u.engine_uri, engine_reason(r, sizeof(r), "unknown error"));
			rc = -EIO;
		} else if (!(k = ENGINE_load_private_key(eng, u.engine_uri, p11_no_ui, NULL))) {
			load_error(u.engine_uri, module, err, errlen);
			rc = -ENOENT;
		}
	}
	if (k && probe_sign(k, r, sizeof(r)) < 0) {
		snprintf(err, errlen,
		         "%s: the token does not sign with this key: %s (after a token failure, "
		         "restart: the engine keeps the token's old object handles)",
		         u.engine_uri, r);
		EVP_PKEY_free(k);
		k = NULL;
		rc = -EIO;
	}
	pthread_mutex_unlock(&p11_lock);
	ERR_clear_error();
	if (k) {
		*out = k;
		rc = 0;
	}
out:
	OPENSSL_cleanse(pin, sizeof(pin));
	p11_uri_free(&u);
	return rc;
}
