/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Private keys held in a PKCS#11 token (an HSM, or SoftHSM2), named by an
 * RFC 7512 pkcs11: URI. Used by vg_pki_load_key; see pkcs11.c for why this
 * goes through the libp11 ENGINE.
 */

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>

/* The PKCS#11 module used when neither the URI's module-path nor
 * VIGIL_PKCS11_MODULE names one: Debian's SoftHSM2. */
#define VG_PKCS11_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* The name of the systemd credential that holds the PIN
 * (LoadCredential=pkcs11-pin:/etc/vigil/token.pin). */
#define VG_PKCS11_PIN_CREDENTIAL "pkcs11-pin"

/* vg_pkcs11_is_uri tells whether |uri| is a pkcs11: URI (case-insensitive scheme). */
bool vg_pkcs11_is_uri(const char *uri);

/* vg_pkcs11_load_key loads a handle on the private key |uri| names. The key
 * stays in the token: every signature with |*out| is made by the token.
 *
 * The module is the URI's module-path, else $VIGIL_PKCS11_MODULE, else
 * VG_PKCS11_DEFAULT_MODULE; one module per process. The PIN comes from the
 * URI's pin-source (file:/absolute/path, a file not accessible by others;
 * one trailing newline is ignored), else the systemd credential
 * $CREDENTIALS_DIRECTORY/pkcs11-pin (the same rules), else $VIGIL_PKCS11_PIN.
 * A pin-value in
 * the URI is refused (-EINVAL): it would put the PIN in the configuration
 * file. Returns 0, or a negative errno with a one-line reason in |err|. */
int vg_pkcs11_load_key(const char *uri, EVP_PKEY **out, char *err, size_t errlen);
