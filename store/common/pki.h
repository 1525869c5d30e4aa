/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Loading certificates and keys from files (PEM or DER) for the three
 * programs. Errors are returned as negative errno with a one-line reason in
 * |err|; OpenSSL's error queue is cleared.
 */

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* vg_pki_load_cert reads one certificate, PEM or DER, from |path|. */
int vg_pki_load_cert(const char *path, X509 **out, char *err, size_t errlen);

/* vg_pki_load_certs reads every certificate in |path| (PEM with several
 * blocks, or one DER) into a new stack. */
int vg_pki_load_certs(const char *path, STACK_OF(X509) **out, char *err, size_t errlen);

/* vg_pki_load_key reads a private key from |uri|: a PEM or DER file path, or
 * an RFC 7512 pkcs11: URI naming a key that stays in its token (pkcs11.h says
 * where the module and the PIN come from). The key file must not be readable
 * or writable by others (-EPERM otherwise). */
int vg_pki_load_key(const char *uri, EVP_PKEY **out, char *err, size_t errlen);

/* vg_pki_ssl_error appends OpenSSL's first queued error to |buf| (or
 * "unknown error") and clears the queue. Returns |buf|. */
const char *vg_pki_ssl_error(char *buf, size_t buflen);
