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
int vg_pki_load_certs(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen);

/* vg_pki_load_key reads a private key from |uri|: a PEM or DER file path, or
 * an RFC 7512 pkcs11: URI naming a key that stays in its token (pkcs11.h says
 * where the module and the PIN come from). The key file must pass
 * vg_pki_check_secret_fd (-EPERM otherwise), checked on the opened file. */
int vg_pki_load_key(const char *uri, EVP_PKEY **out, char *err, size_t errlen);

/* vg_pki_check_secret_fd checks the opened secret file |fd| (a key or a PIN
 * file; |what| and |path| name it in the reason): a regular file, neither
 * readable nor writable by others, and readable or writable by its group
 * only when that group is the service's own: the process's effective group,
 * or the primary group of the user given to vg_pki_set_service_user. It
 * returns 0, or -EPERM (or fstat's error) with a one-line reason naming the
 * file and its mode. */
int vg_pki_check_secret_fd(int fd, const char *what, const char *path, char *err, size_t errlen);

/* vg_pki_open_secret opens the secret file |path| for reading and checks it
 * with vg_pki_check_secret_fd (|what| names it), on the descriptor that is
 * read, not on the name beforehand, so a file swapped in between cannot slip
 * through; O_NONBLOCK, so a FIFO in its place cannot hang the start. It
 * returns the descriptor, or a negative errno with a one-line reason in
 * |err| ("|label||path|: strerror" when the open fails). */
int vg_pki_open_secret(const char *path, const char *what, const char *label, char *err,
                       size_t errlen);

/* vg_pki_set_service_user names the user the service drops to after
 * starting as root ([responder] user; NULL: none), whose primary group may
 * then read key files too (a reload reads them as that user). It has no
 * effect unless the process runs as root, where the drop happens.
 * vg_conf_load calls it with the file's setting. */
void vg_pki_set_service_user(const char *user);

/* vg_pki_ssl_error appends OpenSSL's first queued error to |buf| (or
 * "unknown error") and clears the queue. Returns |buf|. */
const char *vg_pki_ssl_error(char *buf, size_t buflen);
