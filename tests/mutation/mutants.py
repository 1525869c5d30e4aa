# SPDX-License-Identifier: Apache-2.0
"""The mutants: source edits that look like real bugs in the code that
decides OCSP answers, CRL entries and the store's rules.

Each is an exact string replacement in one file (`find` must occur exactly
once in the committed tree, else run.py reports the mutant "stale": the code
moved and the mutant needs rewriting). `area` chooses the suites run.py runs
against it (see SUITES in run.py); `why` is the bug it stands for.

Written against the tree of issue 18 (before issue 8 moves the code). When a
file moves, update `file`; when a line changes, update `find`/`replace`.
"""

T = "\t"


def m(id, file, find, replace, why, area=None):
    return {"id": id, "file": file, "find": find, "replace": replace, "why": why,
            "area": area or file.split("/")[0]}


MUTANTS = [
    # ---- responder/ocsp.c: which CA a CertID names --------------------------------------
    m("ocsp.keyhash_ignored", "responder/ocsp.c",
      "\t\t    memcmp(ASN1_STRING_get0_data(nh), ca->name_hash[h], ca->hlen[h]) == 0 &&\n"
      "\t\t    memcmp(ASN1_STRING_get0_data(kh), ca->key_hash[h], ca->hlen[h]) == 0)",
      "\t\t    memcmp(ASN1_STRING_get0_data(nh), ca->name_hash[h], ca->hlen[h]) == 0)",
      "match_ca does not compare issuerKeyHash: a same-name impostor or re-keyed CA is "
      "answered from the wrong CA's records"),
    m("ocsp.namehash_ignored", "responder/ocsp.c",
      "\t\t    memcmp(ASN1_STRING_get0_data(nh), ca->name_hash[h], ca->hlen[h]) == 0 &&\n",
      "",
      "match_ca does not compare issuerNameHash"),
    # ---- responder/ocsp.c: request checks -----------------------------------------------
    m("ocsp.single_ext_critical_ignored", "responder/ocsp.c",
      "\tfor (int i = 0; i < n; i++) {\n\t\tOCSP_ONEREQ *one = OCSP_request_onereq_get0(req, i);",
      "\tfor (int i = 0; i < 0; i++) {\n\t\tOCSP_ONEREQ *one = OCSP_request_onereq_get0(req, i);",
      "a critical extension in one certificate's entry (singleRequestExtensions) is ignored "
      "(RFC 6960 §4.4)"),
    m("ocsp.request_ext_critical_ignored", "responder/ocsp.c",
      "\t\tif (X509_EXTENSION_get_critical(e) &&\n",
      "\t\tif (0 && X509_EXTENSION_get_critical(e) &&\n",
      "a critical unknown extension on the whole request is ignored"),
    m("ocsp.nonce_limit", "responder/ocsp.c",
      "(n >= 1 && n <= NONCE_MAX)", "(n >= 1 && n <= 2 * NONCE_MAX)",
      "nonces longer than RFC 9654's 128 octets accepted"),
    m("ocsp.serial_top_bit", "responder/ocsp.c",
      "return vg_serial_from_bytes(buf, len + 1, s) == 0;",
      "return vg_serial_from_bytes(buf + 1, len, s) == 0;",
      "a CertID serial with its top bit set looked up without the leading zero DER needs"),
    # ---- responder/ocsp.c: the status decided ------------------------------------------
    m("ocsp.absent_is_good", "responder/ocsp.c",
      "\tst->cr = CR_UNKNOWN;\n\tst->reason = OCSP_REVOKED_STATUS_NOSTATUS;\n\tif (!w->txn_ok)",
      "\tst->cr = CR_GOOD;\n\tst->reason = OCSP_REVOKED_STATUS_NOSTATUS;\n\tif (!w->txn_ok)",
      "a serial not in the store is answered good (DigiNotar)"),
    m("ocsp.frozen_ignored", "responder/ocsp.c",
      "\t\tif (cs.frozen) {", "\t\tif (!cs.frozen) {",
      "not_issued = revoked applied to a CA that still issues, not to a frozen one"),
    m("ocsp.frozen_no_ext_revoke", "responder/ocsp.c",
      "\t\t\tst->revoked_at = 0;\n\t\t\tst->ext_revoke = true;",
      "\t\t\tst->revoked_at = 0;\n\t\t\tst->ext_revoke = false;",
      "a never-issued serial of a frozen CA answered revoked without the extended-revoke "
      "extension (RFC 6960 §2.2)"),
    m("ocsp.not_issued_no_ext_revoke", "responder/ocsp.c",
      "st->ext_revoke = cert.flags & VG_CERT_NOT_ISSUED;", "st->ext_revoke = false;",
      "a serial revoked though never seen as issued answered without extended-revoke"),
    m("ocsp.unspecified_reason_sent", "responder/ocsp.c",
      "cert.reason <= OCSP_REVOKED_STATUS_UNSPECIFIED", "cert.reason < OCSP_REVOKED_STATUS_UNSPECIFIED",
      "reason unspecified (0) sent, which RFC 5280 and the BRs say to leave out"),
    m("ocsp.invalidity_dropped", "responder/ocsp.c",
      "st->has_invalidity = cert.flags & VG_CERT_HAS_INVALIDITY;", "st->has_invalidity = false;",
      "the invalidity date is dropped from revoked answers"),
    m("ocsp.revocation_time_lost", "responder/ocsp.c",
      "\t\t\t\tst->revoked_at = cert.revoked_at;", "\t\t\t\tst->revoked_at = cert.invalidity_date;",
      "the revocation time taken from the wrong field"),
    m("ocsp.foreign_issuer_looked_up", "responder/ocsp.c",
      "\t\tif (it->ca != signer) {", "\t\tif (it->ca < 0) {",
      "an entry of another served CA, next to the signer's, is looked up in the signer CA's "
      "records"),
    m("ocsp.validity_uncapped", "responder/sign.c",
      "\tif (validity > 10 * 86400 - 1)\n\t\tvalidity = 10 * 86400 - 1;\n\tint64_t nu = now + validity;",
      "\tint64_t nu = now + validity;",
      "an answer valid for more than the BRs' ten days (inclusive interval)"),
    # Issue 11: answers never outlive their signer.
    m("ocsp.next_update_past_signer", "responder/sign.c",
      "return ca->not_after && nu > ca->not_after ? ca->not_after : nu;", "return nu;",
      "an answer's nextUpdate (and Expires, max-age, the cache's keeping) past its signer "
      "certificate's notAfter"),
    m("ocsp.signs_after_signer_expiry", "responder/sign.c",
      "return ca->not_after && now >= ca->not_after;",
      "return ca->not_after && now >= ca->not_after + 86400;",
      "answers signed (and /healthz ok) for a day after the signer expired"),
    m("ocsp.nonce_answer_cached", "responder/ocsp.c",
      "bool use_cache = n == 1 && nonce == 0 && items[0].serial_ok;",
      "bool use_cache = n == 1 && items[0].serial_ok;",
      "an answer with a nonce is cached and served to the next client"),
    # Not listed: serving a stale answer (signer failing) without comparing
    # its status with the one just read ("if (e && e->cr == ...)" -> "if (e)").
    # The change log drops a cached answer when its status changes, before any
    # worker can read the new status, so no test through the binaries can
    # reach the comparison: it is a second guard, equivalent as a mutant.
    m("ocsp.refresh_late", "responder/ocsp.c",
      "limit = this_update + validity - 8 * 3600;", "limit = this_update + validity;",
      "cached answers refreshed at nextUpdate instead of 8 hours before"),
    # ---- responder/routes.c: cache headers ---------------------------------------------
    m("http.max_age_from_this_update", "responder/routes.c",
      "cache_lines(&b, c->w->ctx, a.next_update - (int64_t)c->w->date_t,",
      "cache_lines(&b, c->w->ctx, a.next_update - a.this_update,",
      "max-age counted from thisUpdate, not from the Date sent: a cache keeps the answer "
      "past nextUpdate", area="responder"),
    m("http.crl_max_age_from_this_update", "responder/routes.c",
      "cache_lines(&b, w->ctx, f->next_update - (int64_t)w->date_t, true, tags, tl);",
      "cache_lines(&b, w->ctx, f->next_update - f->this_update, true, tags, tl);",
      "a CRL's max-age counted from its thisUpdate, not from the Date sent",
      area="responder"),
    # Issue 13: shared caches keep an answer at most [edge] max_age, never past nextUpdate.
    m("http.s_maxage_past_next_update", "responder/routes.c",
      "int64_t s = !shared ? 0 : left < edge ? left : edge;",
      "int64_t s = !shared ? 0 : edge;",
      "s-maxage = max_age even when nextUpdate is sooner: a shared cache keeps the answer "
      "past nextUpdate", area="responder"),
    # ---- responder/ctx.c: the signer ---------------------------------------------------
    m("ctx.eku_unchecked", "responder/ctx.c",
      "\t\tif (!(X509_get_extension_flags(ca->signer) & EXFLAG_XKUSAGE) ||\n"
      "\t\t    !(X509_get_extended_key_usage(ca->signer) & XKU_OCSP_SIGN)) {",
      "\t\tif (0) {",
      "an ocsp_cert without id-kp-OCSPSigning is loaded: every client rejects its answers"),
    m("ctx.eku_any", "responder/ctx.c",
      "\t\t    !(X509_get_extended_key_usage(ca->signer) & XKU_OCSP_SIGN)) {",
      "\t\t    !X509_get_extended_key_usage(ca->signer)) {",
      "any extendedKeyUsage accepted for the delegated signer"),
    m("ctx.issuer_signature_unchecked", "responder/ctx.c",
      " || !capub ||\n\t\t    X509_verify(ca->signer, capub) != 1) {",
      " || !capub) {",
      "an ocsp_cert issued by another CA of the same name is loaded"),
    m("ctx.not_before_unchecked", "responder/ctx.c",
      "if (X509_cmp_current_time(X509_get0_notBefore(ca->signer)) > 0) {",
      "if (X509_cmp_current_time(X509_get0_notBefore(ca->signer)) > 1) {",
      "an ocsp_cert not valid yet is loaded"),
    m("ctx.key_mismatch_unchecked", "responder/ctx.c",
      "if (X509_check_private_key(ca->signer, ca->key) != 1) {",
      "if (X509_check_private_key(ca->signer, ca->key) < -1) {",
      "an ocsp_key that does not match its certificate is loaded"),
    # ---- responder/cache.c ---------------------------------------------------------------
    m("cache.stale_snapshot_kept", "responder/cache.c",
      "if (!C.have_applied || snapshot < C.applied) {", "if (!C.have_applied) {",
      "an answer read from a snapshot older than the applied changes is cached"),
    m("cache.ca_change_not_applied", "responder/cache.c",
      "\tif (ch->op == VG_CHANGE_CA || ch->serial.len == 0)\n\t\tinvalidate_ca(ch->ca_id);\n\telse\n",
      "\tif (ch->op == VG_CHANGE_CA || ch->serial.len == 0)\n\t\treturn 0;\n\telse\n",
      "freezing a CA (a CA-wide change) leaves its cached answers"),
    m("cache.serial_change_not_applied", "responder/cache.c",
      "\telse\n\t\tinvalidate(ch->ca_id, &ch->serial);",
      "\telse\n\t\treturn 0;",
      "a revocation leaves the cached good answer"),
    m("cache.served_past_refresh", "responder/cache.c",
      "\treturn e && now < e->refresh_at ? e : NULL;\n}\n\nconst struct centry *cache_get_stale",
      "\treturn e && now < e->next_update ? e : NULL;\n}\n\nconst struct centry *cache_get_stale",
      "cached answers served until nextUpdate, never refreshed"),
    m("cache.stale_past_next_update", "responder/cache.c",
      "\treturn e && now < e->next_update ? e : NULL;\n}\n\nconst struct centry *cache_get_raw",
      "\treturn e ? e : NULL;\n}\n\nconst struct centry *cache_get_raw",
      "an expired answer served while the signer fails"),
    # ---- crlgen/crlgen.c: what a CRL lists -----------------------------------------------
    m("crlgen.cutoff_inclusive", "crlgen/crlgen.c",
      "c.not_after < s->cutoff)", "c.not_after <= s->cutoff)",
      "an entry whose certificate expires exactly at the previous CRL's thisUpdate is dropped "
      "(RFC 5280 §3.3)"),
    m("crlgen.cutoff_ignored", "crlgen/crlgen.c",
      "\t\tif ((c.flags & VG_CERT_HAS_NOT_AFTER) && c.not_after < s->cutoff)\n\t\t\tcontinue;\n",
      "",
      "expired certificates stay on every CRL forever"),
    m("crlgen.cutoff_first_crl", "crlgen/crlgen.c",
      "\t\tif (!ps->full_number)\n\t\t\tfs.cutoff = now.tv_sec;\n", "",
      "the first CRL lists certificates that expired long before"),
    m("crlgen.remove_from_crl_missing", "crlgen/crlgen.c",
      "\t\tif (it->ops & OP_BIT(VG_CHANGE_RELEASE)) {", "\t\tif (0) {",
      "a hold lifted since the base is not in the delta (removeFromCRL): base + delta keep "
      "it on hold"),
    m("crlgen.delta_lists_date_updates", "crlgen/crlgen.c",
      "\t\t\tif (!(it->ops & ~OP_BIT(VG_CHANGE_UPDATE)))\n\t\t\t\tcontinue;\n", "",
      "a delta lists revoked certificates whose dates only were learned"),
    m("crlgen.delta_base_number", "crlgen/crlgen.c",
      ".base_number = ps->full_number,", ".base_number = ps->last_number,",
      "the delta's DeltaCRLIndicator names the last CRL, not the base"),
    m("crlgen.next_update", "crlgen/crlgen.c",
      ".next_update = now.tv_sec + ca->conf->crl_validity,",
      ".next_update = now.tv_sec + 2 * ca->conf->crl_validity,",
      "nextUpdate further out than crl_validity"),
    m("crlgen.release_of_never_issued_missing", "crlgen/crlgen.c",
      "\t\tif (rc < 0 && rc != -ENOENT)\n\t\t\treturn rc;\n",
      "\t\tif (rc == -ENOENT)\n\t\t\tcontinue;\n\t\tif (rc < 0)\n\t\t\treturn rc;\n",
      "issue 11: a released hold on a never-issued serial (absent again) is not in the delta"),
    m("publish.number_below_published", "crlgen/publish.c",
      "\tif (published > floor)\n\t\tfloor = published;\n", "",
      "issue 11: a CRL number not above the CRL in place (another host's clock ahead)",
      area="crlgen"),
    # ---- crlgen/crl.c: how an entry is written --------------------------------------------
    m("crl.next_update_past_signer", "crlgen/crl.c",
      "\tif (*next_update > s->not_after)\n\t\t*next_update = s->not_after;\n", "",
      "issue 11: a CRL's nextUpdate past the CA certificate's notAfter", area="crlgen"),
    m("crl.signed_after_expiry", "crlgen/crl.c",
      "\tif (now >= s->not_after) {", "\tif (now >= s->not_after + 86400) {",
      "issue 11: CRLs signed for a day after the CA certificate expired", area="crlgen"),
    m("crl.unspecified_written", "crlgen/crl.c",
      "return e->reason > VG_REASON_UNSPECIFIED;", "return e->reason >= VG_REASON_UNSPECIFIED;",
      "reason unspecified written as an extension (RFC 5280 §5.3.1: SHOULD be absent)"),
    m("crlgen.invalidity_dropped", "crlgen/crlgen.c",
      "\te->has_invalidity = c->flags & VG_CERT_HAS_INVALIDITY;", "\te->has_invalidity = false;",
      "the invalidity date is left out of CRL entries"),
    # ---- common/conf.c: what a configuration may say (issue 11) ------------------------
    m("conf.same_identity_accepted", "common/conf.c",
      "\t\t\t    !same_key(x[i], x[j]))\n\t\t\t\tcontinue;",
      "\t\t\t    !same_key(x[i], x[j]) || 1)\n\t\t\t\tcontinue;",
      "two [ca] sections with the same subject and key loaded: every CertID matches the "
      "first, the second's revocations are answered good", area="conf"),
    # ---- store/write.c, store/rules.c: the store's rules --------------------------------------
    m("store.revoked_index_stale", "store/write.c",
      "\tif (c->status == VG_STATUS_REVOKED) {\n\t\trc = mdb_put(w->txn, st->revoked",
      "\tif (c->status == VG_STATUS_REVOKED && !(old && old->status == VG_STATUS_REVOKED)) {\n"
      "\t\trc = mdb_put(w->txn, st->revoked",
      "the revoked index keeps a revocation's first record: a hold replaced by keyCompromise "
      "stays certificateHold on every CRL"),
    m("store.revoked_index_not_cleared", "store/write.c",
      "\t\trc = mdb_del(w->txn, st->revoked, &key, NULL);\n\t\tif (rc && rc != MDB_NOTFOUND)",
      "\t\trc = 0;\n\t\tif (rc && rc != MDB_NOTFOUND)",
      "a lifted hold stays in the revoked index: CRLs keep listing it"),
    m("store.hold_not_replaced", "store/rules.c",
      "\t} else if (rules_is_hold(have) && want->reason != VG_REASON_CERTIFICATE_HOLD) {",
      "\t} else if (0) {",
      "a hold cannot be made final (RFC 5280 §5.3.1)"),
    m("store.kc_not_raised", "store/rules.c",
      "\t} else if (want->reason == VG_REASON_KEY_COMPROMISE &&\n",
      "\t} else if (0 && want->reason == VG_REASON_KEY_COMPROMISE &&\n",
      "a revocation cannot be raised to keyCompromise"),
    m("store.kc_raise_moves_time", "store/rules.c",
      "\t\tchange = true;\n\t\tout->reason = VG_REASON_KEY_COMPROMISE;",
      "\t\tchange = true;\n\t\tout->revoked_at = want->revoked_at;\n"
      "\t\tout->reason = VG_REASON_KEY_COMPROMISE;",
      "raising to keyCompromise moves the original revocation time"),
    m("store.sync_lifts_any_revocation", "store/rules.c",
      "if ((want->flags & VG_CERT_LIFT_HOLD) && rules_is_hold(have) &&",
      "if ((want->flags & VG_CERT_LIFT_HOLD) && have->status == VG_STATUS_REVOKED &&",
      "an index sync un-revokes a final revocation, not only a lifted hold"),
    m("store.sync_restores_lifted_hold", "store/rules.c",
      "\tif (sync && have->status == VG_STATUS_GOOD && (have->flags & VG_CERT_RELEASED) &&",
      "\tif (0 && sync && have->status == VG_STATUS_GOOD && (have->flags & VG_CERT_RELEASED) &&",
      "re-importing the CA's index puts back a hold lifted with vigil-store release"),
    m("store.not_issued_unflagged", "store/rules.c",
      "\t\t\tout->flags |= VG_CERT_NOT_ISSUED;\n", "",
      "a serial revoked though never seen as issued is not marked so (no extended-revoke)"),
    m("store.window_start_exclusive", "store/rules.c",
      "if (c->not_before < after || c->not_before >= before)",
      "if (c->not_before <= after || c->not_before >= before)",
      "revoke --issued-after T misses the certificates issued at T"),
    m("store.window_end_inclusive", "store/rules.c",
      "if (c->not_before < after || c->not_before >= before)",
      "if (c->not_before < after || c->not_before > before)",
      "revoke --issued-before T also revokes the certificates issued at T"),
    m("store.release_any", "store/rules.c",
      "\tif (!rules_is_hold(have))\n\t\treturn -EPERM;",
      "\tif (have->status != VG_STATUS_REVOKED)\n\t\treturn -EPERM;",
      "release lifts any revocation, not only certificateHold"),
    m("store.invalidity_lost_on_raise", "store/rules.c",
      "\t\t} else if (have->status == VG_STATUS_REVOKED &&\n"
      "\t\t           (have->flags & VG_CERT_HAS_INVALIDITY)) {",
      "\t\t} else if (0) {",
      "raising a revocation to keyCompromise loses the invalidity date already known"),
    # ---- bulk revocation: what it leaves out, what --dry-run does (issue 17) ----------------
    m("store.window_keep_ignored", "store/write.c",
      "\t\tif (window_keeps(b->win, &s)) {",
      "\t\tif (0 && window_keeps(b->win, &s)) {",
      "a revocation by window takes the responder's own certificate down with the rest"),
    m("cli.ocsp_cert_not_guarded", "store/cli/revoke.c",
      "\t\t\tif (!paths[k] || (k == 0 && o == ca))",
      "\t\t\tif (!paths[k] || k == 1 || (k == 0 && o == ca))",
      "a bulk revocation does not leave out a delegated OCSP signer", area="cli"),
    m("cli.dry_run_revokes", "store/cli/revoke.c",
      "\t\tcase 'n':\n\t\t\tdry_run = true;",
      "\t\tcase 'n':\n\t\t\tdry_run = false;",
      "revoke --dry-run revokes", area="cli"),
    m("cli.already_revoked_counted_as_change", "store/cli/revoke.c",
      "\tif (have->status != VG_STATUS_REVOKED)\n\t\treturn true;\n\tif (have->reason == "
      "VG_REASON_CERTIFICATE_HOLD)",
      "\tif (have->status != VG_STATUS_REVOKED || 1)\n\t\treturn true;\n\tif (have->reason == "
      "VG_REASON_CERTIFICATE_HOLD)",
      "--dry-run counts certificates already revoked as ones it would revoke", area="cli"),
]
