/* boot.c: boots, pending boots settled at start, the end of an instance, destroys (part of
 * vastctl: see vastctl_int.h). */
#include "fleet/vastctl_int.h"

#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "store/instances.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- boot */

static void boot_ok(vastctl *v, vastctl_result *res, long long vast_id, long long row_id,
                    bool reused)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", vast_id);
    /* the newest boot is the one to auto-connect; one it replaces stays a row of the fleet */
    vastctl_set_instance(v, ids, NULL);
    res->http_status = 200;
    res->kind[0] = '\0';
    res->instance_id = vast_id;
    res->row_id = row_id;
    res->reused = reused;
    snprintf(res->message, sizeof res->message,
             "Instance created. Setting up dependencies in background...");
}

/* Instances on the account carrying label: 1 found (*id = the first, *start its Vast start
 * date or 0, *others counts the rest), 0 none, -1 cannot tell (e filled). An empty label
 * matches nothing: unlabelled instances are other tools' as far as we know. */
static int find_label(vastctl *v, const char *label, long long *id, double *start, int *others,
                      vast_error *e)
{
    *id = 0;
    *start = 0;
    *others = 0;
    if (!label || !*label) {
        LOG_W("vast", "BUG: looking for an instance by an empty label; matching none (an "
              "unlabelled instance is never taken for ours)");
        return 0;
    }
    vast_instance_list l;
    if (vast_list_instances(v->client, &l, e) != 0) return -1;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].label, label) != 0) continue;
        if (*id) {
            (*others)++;
        } else {
            *id = l.items[i].id;
            *start = l.items[i].start_date;
        }
    }
    vast_instance_list_free(&l);
    return *id ? 1 : 0;
}

/* Destroys every instance labelled label except keep (a duplicate left by an unanswered
 * create that Vast did carry out after all). Never with an empty label. */
static void destroy_duplicates(vastctl *v, const char *label, long long keep)
{
    if (!label || !*label) {
        LOG_W("vast", "BUG: asked to destroy duplicates of instance %lld by an empty label; "
              "destroying nothing", keep);
        return;
    }
    vast_instance_list l;
    vast_error e;
    if (vast_list_instances(v->client, &l, &e) != 0) return;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].label, label) != 0 || l.items[i].id == keep) continue;
        LOG_W("vast", "instance %lld duplicates %lld (label %s): destroying it", l.items[i].id,
              keep, label);
        if (vast_destroy_instance(v->client, l.items[i].id, &e) != 0)
            LOG_E("vast", "cannot destroy duplicate instance %lld: %s; destroy it by hand",
                  l.items[i].id, e.message);
    }
    vast_instance_list_free(&l);
}

/* Row `row` rented `found` after all (an unanswered create): record it, and bill its
 * storage from Vast's start date (start, 0 when unknown). */
static void adopt(vastctl *v, long long row, long long found, double start,
                  vastctl_result *res)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", found);
    LOG_I("vast", "boot #%lld: found instance %s created by an unanswered attempt; adopting it",
          row, ids);
    double t = now_wall();
    instance_row r;
    if (store_begin(v->st) == 0) {
        instances_set_created(v->st, row, ids, NULL, 0, t);
        if (instances_get(v->st, row, &r) == 1)
            ledger_sync(v->st, row, false, true, r.dph_base, r.storage_dph,
                        start > 0 && start < t ? start : t);
        store_commit(v->st);
    }
    store_event_add(v->st, "instance.created", ids, NULL);
    boot_ok(v, res, found, row, true);
}

/* Looks for the row's label on the account. 1 adopted (res filled), 0 certainly absent
 * (row marked failed), -1 cannot tell (res filled with the error). */
static int reconcile(vastctl *v, const instance_row *r, vastctl_result *res)
{
    if (!r->label[0]) {
        /* a row from before boots were recorded atomically: it was labelled before Vast
         * was ever called, so without a label nothing was rented */
        LOG_W("vast", "boot #%lld has no label: it never reached Vast.ai; marking it failed "
              "(no instance on the account is matched by an empty label)", r->id);
        instances_boot_failed(v->st, r->id, NULL, now_wall());
        return 0;
    }
    long long found;
    double start;
    int others;
    vast_error e;
    int rc = find_label(v, r->label, &found, &start, &others, &e);
    if (rc < 0) {
        char d[512];
        vastctl_describe(&e, d, sizeof d);
        vastctl_res_set(res, vastctl_http_status(e.kind), vast_err_kind_name(e.kind),
                "an earlier boot of offer %lld did not finish and whether it rented an instance "
                "cannot be checked now (%s); nothing was rented again. Retry shortly",
                r->offer_id, d);
        return -1;
    }
    if (rc == 0) {
        instances_boot_failed(v->st, r->id, NULL, now_wall());
        return 0;
    }
    if (others) destroy_duplicates(v, r->label, found);
    adopt(v, r->id, found, start, res);
    return 1;
}

/* ---- boots an earlier process left pending

   A controller killed between recording a boot and recording what Vast.ai answered leaves
   a row requested/creating with its label and no vast_id. A retry of the boot reconciles
   it (reconcile); without one, the poller does, so that an instance rented that way is
   never left running unaccounted: the rows are listed here before any request can start a
   boot of this process, then looked for by label on the account, each under boot_lock. */

void vastctl_find_stale_boots(vastctl *v)
{
    instance_row *rows;
    size_t n;
    if (instances_list(v->st, INSTANCES_PENDING_BOOT, 0, 0, &rows, &n) != 0 || n == 0) return;
    v->stale_boots = xcalloc(n, sizeof *v->stale_boots);
    for (size_t i = 0; i < n; i++) v->stale_boots[v->nstale_boots++] = rows[i].id;
    free(rows);
    /* the killed process's last create was sent before this one started: it is over once
     * the create's own timeout has passed */
    v->stale_settled_at = now_wall() + (double)config_int(v->cfg, CFG_VAST_TIMEOUT_SECONDS) +
                          STALE_BOOT_MARGIN_S;
    LOG_I("vast", "%zu boot%s left unfinished by an earlier run: looking for %s on Vast.ai",
          n, n == 1 ? "" : "s", n == 1 ? "its instance" : "their instances");
}

/* boot_lock held. 1 settled (adopted, failed, or settled meanwhile by a retry), 0 not yet. */
static int recover_stale_boot(vastctl *v, long long id)
{
    instance_row r;
    int got = instances_get(v->st, id, &r);
    if (got < 0) return 0;
    if (got == 0 || r.vast_id[0] ||
        (strcmp(r.state, "requested") != 0 && strcmp(r.state, "creating") != 0))
        return 1; /* a retry of the boot (or a destroy) settled it */
    if (!r.label[0]) {
        LOG_W("vast", "boot #%lld has no label: it never reached Vast.ai; marking it failed "
              "(no instance on the account is matched by an empty label)", r.id);
        instances_boot_failed(v->st, r.id, NULL, now_wall());
        return 1;
    }
    long long found;
    double start;
    int others;
    vast_error e;
    int rc = find_label(v, r.label, &found, &start, &others, &e);
    if (rc < 0) {
        char d[512];
        vastctl_describe(&e, d, sizeof d);
        if (!v->stale_warned)
            LOG_W("vast", "boot #%lld (label %s) did not finish before the controller stopped; "
                  "cannot look for its instance yet (%s); trying again", r.id, r.label, d);
        v->stale_warned = true;
        return 0;
    }
    if (rc == 1) {
        LOG_W("vast", "boot #%lld: the controller stopped during the boot; Vast.ai has instance "
              "%lld labelled %s: adopting it (provisioning continues, cost safety applies)",
              r.id, found, r.label);
        if (others) destroy_duplicates(v, r.label, found);
        vastctl_result res;
        memset(&res, 0, sizeof res);
        adopt(v, r.id, found, start, &res);
        return 1;
    }
    if (now_wall() < v->stale_settled_at) return 0; /* its create may still be answered */
    char why[200];
    snprintf(why, sizeof why, "the controller stopped during the boot; Vast.ai has no instance "
             "labelled %s: nothing is rented", r.label);
    LOG_W("vast", "boot #%lld: %s; marking it failed", r.id, why);
    instances_boot_failed(v->st, r.id, why, now_wall());
    return 1;
}

/* Poller thread: one look at each stale boot still open. True while some remain. */
bool vastctl_recover_stale_boots(vastctl *v)
{
    if (!v->has_key) {
        LOG_W("vast", "%zu boot%s left unfinished by an earlier run cannot be checked without "
              "a Vast.ai API key; a retry of the boot checks before renting", v->nstale_boots,
              v->nstale_boots == 1 ? "" : "s");
        v->nstale_boots = 0;
        return false;
    }
    size_t keep = 0;
    for (size_t i = 0; i < v->nstale_boots; i++) {
        pthread_mutex_lock(&v->lock);
        bool stopping = v->stopping;
        pthread_mutex_unlock(&v->lock);
        int done = 0;
        if (!stopping) {
            pthread_mutex_lock(&v->boot_lock);
            done = recover_stale_boot(v, v->stale_boots[i]);
            pthread_mutex_unlock(&v->boot_lock);
        }
        if (!done) v->stale_boots[keep++] = v->stale_boots[i];
    }
    v->nstale_boots = keep;
    return keep > 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Errors after which Vast certainly did not create anything. */
static bool certain_failure(vast_err_kind k)
{
    return k == VAST_ERR_AUTH || k == VAST_ERR_OFFER_TAKEN || k == VAST_ERR_RATE_LIMIT ||
           k == VAST_ERR_BAD_REQUEST || k == VAST_ERR_FORBIDDEN || k == VAST_ERR_NO_CREDIT ||
           k == VAST_ERR_INVALID || k == VAST_ERR_NOT_FOUND || k == VAST_ERR_FAILED;
}

static void boot_locked(vastctl *v, long long offer_id, const char *idem_key,
                        vastctl_result *res)
{
    char key[300];
    instance_row r;
    int found;
    if (idem_key) {
        snprintf(key, sizeof key, "key:%s", idem_key);
        found = instances_by_idem_key(v->st, key, &r);
    } else {
        found = instances_recent_boot(v->st, offer_id, now_wall() - VASTCTL_BOOT_WINDOW_S, &r);
    }
    if (found < 0) {
        vastctl_res_set(res, 500, "store", "cannot read the instance store");
        return;
    }
    long long r_vast_id = found ? strtoll(r.vast_id, NULL, 10) : 0;
    if (found) {
        if (idem_key && r.offer_id != offer_id) {
            vastctl_res_set(res, 409, "conflict", "Idempotency-Key already used for a boot of offer %lld; "
                    "send a new key for another offer", r.offer_id);
            return;
        }
        if (strcmp(r.state, "destroyed") == 0) {
            vastctl_res_set(res, 409, "conflict", "Idempotency-Key already used for instance %lld, which "
                    "has been destroyed; send a new key to boot again", r_vast_id);
            return;
        }
        if (r_vast_id > 0 && strcmp(r.state, "failed") != 0) {
            LOG_I("vast", "boot of offer %lld repeated: answering with instance %lld (no new "
                  "rental)", offer_id, r_vast_id);
            boot_ok(v, res, r_vast_id, r.id, true);
            return;
        }
        if (strcmp(r.state, "failed") != 0) {
            /* requested/creating without an id: an attempt whose outcome is unknown */
            int rc = reconcile(v, &r, res);
            if (rc != 0) return;
        }
        /* certainly failed: free the key for a new attempt */
        if (idem_key) instances_release_idem_key(v->st, r.id);
    }

    /* re-read the offer: it must fit the image; its prices are the ledger's rates until
     * the API's own, and they are checked against the budgets */
    double dph_total = 0, dph_base = 0, sto = 0;
    vast_error pe;
    vast_offer off;
    int priced = vastctl_offer_get(v, offer_id, &off, &pe);
    image_req req;
    vastctl_image_req(v->cfg, &req);
    bool has_req = req.min_cuda > 0 || req.min_compute_cap > 0;
    char why[640];
    if (vastctl_offer_mismatch(v->cfg, &req, priced > 0 ? &off : NULL, why, sizeof why) != 0) {
        LOG_W("vast", "boot of offer %lld refused: %s", offer_id, why);
        vastctl_res_set(res, 409, "image_mismatch", "%s", why);
        return;
    }
    if (priced < 0 && has_req) {
        char d[512];
        vastctl_describe(&pe, d, sizeof d);
        vastctl_res_set(res, vastctl_http_status(pe.kind), vast_err_kind_name(pe.kind),
                "booting refused: offer %lld cannot be read to check that it runs %s (%s); "
                "nothing was rented", offer_id, req.image, d);
        return;
    }
    if (priced > 0) {
        dph_total = off.dph_total;
        dph_base = off.dph_base;
        sto = off.storage_total_cost;
    }
    ledger_budgets bud = vastctl_budgets(v->cfg);
    if (ledger_budgets_any(&bud)) {
        char bmsg[512];
        if (priced < 0) {
            char d[512];
            vastctl_describe(&pe, d, sizeof d);
            vastctl_res_set(res, 503, "budget", "booting refused: offer %lld cannot be priced to check "
                    "the budget (%s); try again", offer_id, d);
            return;
        }
        if (priced > 0 && ledger_budget_check(v->st, &bud, dph_total, now_wall(), bmsg,
                                              sizeof bmsg) != 0) {
            LOG_W("vast", "boot of offer %lld at $%.4f/h: %s", offer_id, dph_total, bmsg);
            vastctl_res_set(res, 402, "budget", "%s", bmsg);
            return;
        }
    }

    /* the row and its label in one transaction: a boot is never on record without the
     * label that finds its instance again */
    char label[64];
    long long row = instances_insert_boot(v->st, offer_id, idem_key ? key : NULL,
                                          VASTCTL_LABEL_PREFIX, dph_total, dph_base, sto,
                                          now_wall(), label, sizeof label);
    if (row <= 0) {
        vastctl_res_set(res, 500, "store", "cannot record the boot in the store");
        return;
    }
    res->row_id = row;
    if (priced > 0) instances_set_machine(v->st, row, off.machine_id); /* fleet/hosts.h */
    LOG_I("vast", "boot #%lld: renting offer %lld (label %s)", row, offer_id, label);
    fault_point("boot_after_insert");

    vast_create cr;
    vastctl_create_params(v->cfg, label, &cr);
    vast_created out;
    vast_error e;
    char d[640];
    for (int attempt = 1;; attempt++) {
        if (vast_create_instance(v->client, offer_id, &cr, &out, &e) == 0) {
            fault_point("boot_after_create");
            char ids[32];
            snprintf(ids, sizeof ids, "%lld", out.instance_id);
            double created = now_wall();
            if (store_begin(v->st) == 0) {
                instances_set_created(v->st, row, ids, out.instance_api_key, created, created);
                ledger_sync(v->st, row, false, true, dph_base, sto, created); /* storage billed */
                store_commit(v->st);
            }
            char *data = xasprintf("{\"offer_id\":%lld,\"label\":\"%s\"}", offer_id, label);
            store_event_add(v->st, "instance.created", ids, data);
            free(data);
            LOG_I("vast", "boot #%lld: instance %s created from offer %lld", row, ids, offer_id);
            long long vid = out.instance_id;
            vast_created_clear(&out);
            /* an earlier unanswered attempt may have rented after all */
            if (attempt > 1) destroy_duplicates(v, label, vid);
            boot_ok(v, res, vid, row, false);
            return;
        }
        vastctl_describe(&e, d, sizeof d);
        LOG_W("vast", "boot #%lld: renting offer %lld failed (attempt %d): %s", row, offer_id,
              attempt, d);
        if (certain_failure(e.kind)) break;
        /* Unknown outcome (5xx, timeout, dropped connection): before trying again, look for
         * the row's label on the account, so that nothing is ever rented twice. */
        instances_set_error(v->st, row, d, now_wall());
        sleep_s(0.3 * attempt);
        long long got;
        double start;
        int others;
        vast_error le;
        int rc = find_label(v, label, &got, &start, &others, &le);
        if (rc == 1) {
            if (others) destroy_duplicates(v, label, got);
            adopt(v, row, got, start, res);
            return;
        }
        if (rc < 0) {
            vastctl_res_vast_err(res, &e);
            snprintf(res->message + strlen(res->message),
                     sizeof res->message - strlen(res->message),
                     ". Whether an instance was rented is not known yet; repeating this "
                     "request checks first and never rents twice");
            return;
        }
        if (attempt >= BOOT_ATTEMPTS) break; /* certainly nothing rented: give up cleanly */
    }
    instances_boot_failed(v->st, row, d, now_wall());
    vastctl_res_vast_err(res, &e);
    if (e.kind == VAST_ERR_OFFER_TAKEN)
        snprintf(res->message, sizeof res->message,
                 "Offer %lld is no longer available: it was rented by someone else or "
                 "withdrawn. Search again and pick another offer (Vast.ai: %.400s)",
                 offer_id, e.message);
}

void vastctl_boot(vastctl *v, long long offer_id, const char *idem_key, vastctl_result *res)
{
    memset(res, 0, sizeof *res);
    if (!v->has_key) {
        vastctl_res_set(res, 503, "no_key", "%s", vastctl_no_key_msg);
        return;
    }
    if (offer_id <= 0) {
        vastctl_res_set(res, 400, "invalid", "offer_id must be a positive integer");
        return;
    }
    pthread_mutex_lock(&v->boot_lock);
    boot_locked(v, offer_id, idem_key, res);
    pthread_mutex_unlock(&v->boot_lock);
}

/* ---- the end of an instance */

/* Row id is gone: mark it destroyed (stage, reason, at) and close its ledger at `at`, in one
 * transaction. 1 marked, 0 it was destroyed already (its ledger closed anyway), -1 error. */
static int close_row(vastctl *v, long long id, const char *stage, const char *reason, double at)
{
    if (store_begin(v->st) != 0) return -1;
    int n = instances_mark_destroyed(v->st, id, stage, reason, at, now_wall());
    if (n < 0 || ledger_finalize(v->st, id, at) != 0) {
        store_rollback(v->st);
        return -1;
    }
    return store_commit(v->st) == 0 ? n : -1;
}

int vastctl_instance_gone(vastctl *v, const char *vast_id, const char *reason, double *end)
{
    instance_row r;
    double now = now_wall();
    if (end) *end = now;
    int found = instances_by_vast_id(v->st, vast_id, &r);
    if (found <= 0) return found;
    if (strcmp(r.state, "destroyed") == 0) return 0;
    double at = ledger_gone_end(now, r.seen_at, v->deadman_s);
    if (end) *end = at;
    int n = close_row(v, r.id, "gone from Vast.ai", reason ? reason : "gone", at);
    if (n <= 0) return n;
    vastctl_set_instance(v, NULL, vast_id);
    char *data = xasprintf("{\"reason\":\"%s\",\"billed_until\":%.3f}", reason ? reason : "gone",
                           at);
    store_event_add(v->st, "instance.gone", vast_id, data);
    free(data);
    return 1;
}

/* ---- destroy */

void vastctl_destroy(vastctl *v, long long id, vastctl_result *res)
{
    vastctl_destroy_for(v, id, "user", res);
}

void vastctl_destroy_for(vastctl *v, long long id, const char *reason, vastctl_result *res)
{
    memset(res, 0, sizeof *res);
    res->instance_id = id;
    if (!v->has_key) {
        vastctl_res_set(res, 503, "no_key", "%s", vastctl_no_key_msg);
        return;
    }
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    instance_row r;
    int have = instances_by_vast_id(v->st, ids, &r);
    if (have > 0 && strcmp(r.state, "destroyed") != 0)
        instances_set_destroying(v->st, r.id, now_wall());
    vast_error e;
    int rc = vast_destroy_instance(v->client, id, &e);
    if (rc != 0 && e.kind != VAST_ERR_NOT_FOUND) {
        if (have > 0 && strcmp(r.state, "destroyed") != 0)
            instances_restore_state(v->st, r.id, r.state, now_wall());
        vastctl_res_vast_err(res, &e);
        return;
    }
    if (have > 0) close_row(v, r.id, "destroyed", rc == 0 ? reason : "gone", now_wall());
    vastctl_set_instance(v, NULL, ids);
    if (rc != 0) {
        vastctl_res_set(res, 404, "not_found", "Instance %lld not found on this Vast.ai account "
                "(already destroyed, or not yours)", id);
        return;
    }
    store_event_add(v->st, "instance.destroyed", ids, NULL);
    LOG_I("vast", "instance %s destroyed", ids);
    vastctl_res_set(res, 200, "", "Instance %lld destroyed", id);
}

