/* cli/vast.c: `gpuscribe vast search|boot|list|destroy`, talking to the Vast.ai API directly
 * with the client (VAST_API_KEY and VAST_URL from .env, the environment or flags). Boot and
 * destroy go through DATA_DIR's store as the server's do (the store is the fleet) and keep
 * VAST_INSTANCE_ID in the .env file up to date; list adds what the store knows (cost so far)
 * to what Vast.ai says. With --json every answer, errors included, is one JSON object on
 * stdout (errors: {"success": false, "error", "kind"}); otherwise errors go to stderr. */
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "fleet/vastctl.h"
#include "store/instances.h"
#include "store/store.h"
#include "vast/vast.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static void usage(FILE *out)
{
    fprintf(out,
            "Usage: gpuscribe vast COMMAND [OPTIONS]\n\n"
            "Commands:\n"
            "  search [FILTERS] [--json]   GPU offers, cheapest first\n"
            "      --gpu-ram-min GB  --max-price USD_PER_HOUR  --min-reliability 0..1\n"
            "      --min-cuda V  --min-disk GB  --min-inet-down MBPS  --num-gpus N\n"
            "      --gpu-name NAME  --limit N (default 10)  --interruptible\n"
            "      --min-compute-cap N (CC x 100, e.g. 800)  --explain (also list the offers\n"
            "      VAST_IMAGE cannot run on, with the reason)\n"
            "      Only hosts that can run VAST_IMAGE are listed (whisper.cpp's main-cuda:\n"
            "      CUDA >= 13.0, compute capability >= 7.5, disk for WHISPER_MODEL); a filter\n"
            "      can tighten that, never loosen it. VAST_IMAGE_MIN_CUDA overrides the CUDA.\n"
            "  boot OFFER_ID [--json]      rent an offer: a row in DATA_DIR's store (label\n"
            "                              gpuscribe-<row>), which a running or later server\n"
            "                              sets up; VAST_INSTANCE_ID names the newest (one it\n"
            "                              named stays in the fleet); refuses an offer whose\n"
            "                              host cannot run VAST_IMAGE, or a budget's excess\n"
            "  list [--json]               the account's instances: state and Vast.ai's status\n"
            "                              message, what is billed now (GPU, or storage only\n"
            "                              when stopped), cost so far (from the store), totals\n"
            "  destroy ID [-y] [--json]    destroy an instance (asks first unless -y; without\n"
            "                              a terminal -y is needed); clears VAST_INSTANCE_ID\n"
            "                              when it named it\n\n"
            "Configuration (VAST_API_KEY, VAST_URL, VAST_IMAGE, VAST_DISK_GB, VAST_IMAGE_MIN_CUDA,\n"
            "WHISPER_MODEL) comes from .env\n"
            "(or --env-file PATH), the environment, or flags such as --vast-url URL.\n");
}

typedef struct opts {
    bool json, interruptible, explain, yes;
    double gpu_ram_min, max_price, min_rel, min_cuda, min_disk, min_inet;
    long num_gpus, limit, min_cc;
    const char *gpu_name;
} opts;

static const struct numflag {
    const char *name;
    size_t off;
    bool integer;
    double max;
} numflags[] = {
    {"--gpu-ram-min", offsetof(opts, gpu_ram_min), false, 1e4},
    {"--max-price", offsetof(opts, max_price), false, 1e4},
    {"--min-reliability", offsetof(opts, min_rel), false, 1},
    {"--min-cuda", offsetof(opts, min_cuda), false, 100},
    {"--min-disk", offsetof(opts, min_disk), false, 1e6},
    {"--min-inet-down", offsetof(opts, min_inet), false, 1e6},
    {"--num-gpus", offsetof(opts, num_gpus), true, 64},
    {"--limit", offsetof(opts, limit), true, 1000},
    {"--min-compute-cap", offsetof(opts, min_cc), true, 10000},
};

static int fail(int rc, const char *what, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Takes our own flags out of argv; the rest goes to config_load. -1 on a bad value. */
static int take_flags(int argc, char **argv, opts *o, char **pass, int *npass)
{
    *npass = 0;
    pass[(*npass)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) { o->json = true; continue; }
        if (strcmp(a, "-y") == 0 || strcmp(a, "--yes") == 0) { o->yes = true; continue; }
        if (strcmp(a, "--interruptible") == 0) { o->interruptible = true; continue; }
        if (strcmp(a, "--explain") == 0) { o->explain = true; continue; }
        const char *val = NULL;
        size_t alen = strcspn(a, "=");
        bool mine = false;
        for (size_t k = 0; k < ARRAY_LEN(numflags) && !mine; k++) {
            const struct numflag *f = &numflags[k];
            if (strlen(f->name) != alen || strncmp(a, f->name, alen) != 0) continue;
            mine = true;
            val = a[alen] == '=' ? a + alen + 1 : (i + 1 < argc ? argv[++i] : NULL);
            double d;
            long l;
            bool ok = val && (f->integer ? parse_long(val, &l) == 0 && (d = (double)l, 1)
                                         : parse_double(val, &d) == 0);
            if (!ok || d < 0 || d > f->max) {
                fail(0, NULL, "bad_flag", "%s needs a %s from 0 to %g%s%s%s", f->name,
                     f->integer ? "whole number" : "number", f->max, val ? " (got '" : "",
                     val ? val : "", val ? "')" : "");
                return -1;
            }
            if (f->integer) *(long *)(void *)((char *)o + f->off) = l;
            else *(double *)(void *)((char *)o + f->off) = d;
        }
        if (mine) continue;
        if (alen == strlen("--gpu-name") && strncmp(a, "--gpu-name", alen) == 0) {
            val = a[alen] == '=' ? a + alen + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val || !*val) {
                fail(0, NULL, "bad_flag", "--gpu-name needs a GPU model, e.g. RTX_4090");
                return -1;
            }
            o->gpu_name = val;
            continue;
        }
        pass[(*npass)++] = argv[i];
    }
    pass[*npass] = NULL;
    return 0;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(j);
}

/* --json anywhere on the line: errors are JSON too, even those found before the flags are
 * read */
static bool g_json;

/* Every error of `gpuscribe vast`: JSON on stdout with --json, else a line on stderr. */
static int fail(int rc, const char *what, const char *kind, const char *fmt, ...)
{
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_json)
        print_json(json_pack("{s:b,s:s,s:s}", "success", 0, "error", msg, "kind", kind));
    else
        fprintf(stderr, "gpuscribe vast%s%s: %s\n", what ? " " : "", what ? what : "", msg);
    return rc;
}

/* Where VAST_URL came from, for errors that could not reach it */
static void url_origin(const config *cfg, char *out, size_t n)
{
    const char *url = config_str(cfg, CFG_VAST_URL);
    const char *from;
    switch (config_source(cfg, CFG_VAST_URL)) {
    case CFG_SRC_FLAG: from = "from --vast-url"; break;
    case CFG_SRC_ENV: from = "from the environment"; break;
    case CFG_SRC_ENVFILE: from = NULL; break;
    case CFG_SRC_KEYFILE: from = "from the key file"; break;
    default: from = "the default"; break;
    }
    if (from) snprintf(out, n, " (VAST_URL=%s, %s)", url ? url : "", from);
    else snprintf(out, n, " (VAST_URL=%s, from %s)", url ? url : "", config_env_path(cfg));
}

static bool unreachable(const char *kind)
{
    return strcmp(kind, "network") == 0 || strcmp(kind, "timeout") == 0;
}

static int fail_vast(const config *cfg, const char *what, const vast_error *e)
{
    char msg[640], where[600] = "";
    vastctl_describe(e, msg, sizeof msg);
    const char *kind = vast_err_kind_name(e->kind);
    if (unreachable(kind)) url_origin(cfg, where, sizeof where);
    return fail(1, what, kind, "%s%s", msg, where);
}

/* A failed vastctl_result, as fail_vast */
static int fail_res(const config *cfg, const char *what, const vastctl_result *res)
{
    char where[600] = "";
    if (unreachable(res->kind)) url_origin(cfg, where, sizeof where);
    return fail(1, what, res->kind[0] ? res->kind : "failed", "%s%s", res->message, where);
}

static int need_key(const config *cfg, const char *what)
{
    if (config_isset(cfg, CFG_VAST_API_KEY)) return 0;
    return fail(1, what, "no_key", "no Vast.ai API key configured: set VAST_API_KEY in the "
                ".env file or the environment, or log in with the vast CLI (`vastai set "
                "api-key KEY` writes ~/.config/vastai/vast_api_key)");
}

static int positive_id(const char *s, long long *out)
{
    long l;
    if (!s || parse_long(s, &l) != 0 || l <= 0) return -1;
    *out = l;
    return 0;
}

static int do_search(const config *cfg, vast_client *c, const opts *o)
{
    vast_search s = {0};
    double disk = (double)config_int(cfg, CFG_VAST_DISK_GB);
    s.gpu_ram_min_gb = o->gpu_ram_min;
    s.max_dph = o->max_price;
    s.min_reliability = o->min_rel;
    s.min_cuda = o->min_cuda;
    s.min_disk_gb = o->min_disk > 0 ? o->min_disk : disk;
    s.min_inet_down = o->min_inet;
    s.num_gpus = (int)o->num_gpus;
    s.gpu_name = o->gpu_name;
    s.min_compute_cap = (int)o->min_cc;
    s.limit = o->limit > 0 ? (int)o->limit : 10;
    s.allocated_storage = disk;
    if (o->interruptible) s.type = "bid";
    image_req req;
    vastctl_image_req(cfg, &req);
    vast_search user = s;          /* --explain: the same search without the image's needs */
    image_req_apply(&req, &s);
    bool relax = o->explain && (s.min_cuda != user.min_cuda ||
                                s.min_compute_cap != user.min_compute_cap ||
                                s.min_disk_gb != user.min_disk_gb);
    vast_offer_list l, x = {0};
    vast_error e;
    if (vast_search_offers(c, &s, &l, &e) != 0) return fail_vast(cfg, "search", &e);
    if (relax && vast_search_offers(c, &user, &x, &e) != 0) {
        vast_offer_list_free(&l);
        return fail_vast(cfg, "search --explain", &e);
    }
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.n; i++) json_array_append_new(arr, vastctl_offer_json(&l.items[i]));
        json_t *out = json_pack("{s:o,s:o}", "offers", arr, "requirements",
                                vastctl_image_req_json(&req));
        if (o->explain) {
            json_t *ex = json_array();
            for (size_t i = 0; i < x.n; i++) {
                char why[768];
                if (image_req_check(&req, &x.items[i], why, sizeof why) == 0) continue;
                json_t *j = vastctl_offer_json(&x.items[i]);
                json_object_set_new(j, "reason", json_string(why));
                json_array_append_new(ex, j);
            }
            json_object_set_new(out, "excluded", ex);
        }
        print_json(out);
        vast_offer_list_free(&l);
        vast_offer_list_free(&x);
        return 0;
    }
    if (l.n == 0) {
        printf("No offers match these filters.\n");
    } else {
        printf("%-10s %-18s %3s %6s %8s %6s %8s %8s %5s %4s  %s\n", "ID", "GPU", "N", "VRAM",
               "$/hr", "Rel", "Disk", "Down", "CUDA", "CC", "Location");
        for (size_t i = 0; i < l.n; i++) {
            const vast_offer *f = &l.items[i];
            char vram[16];
            snprintf(vram, sizeof vram, "%.0fG", f->gpu_ram_gb * 1000.0 / 1024.0);
            printf("%-10lld %-18.18s %3d %6s %8.4f %6.3f %7.0fG %7.0fM %5.1f %4.1f  %s\n", f->id,
                   f->gpu_name, f->num_gpus, vram, f->dph_total, f->reliability2,
                   f->disk_space_gb, f->inet_down, f->cuda_max_good, f->compute_cap / 100.0,
                   f->geolocation);
        }
        printf("\n%zu offer%s, priced with %.0f GB of disk. Rent one: gpuscribe vast boot ID\n",
               l.n, l.n == 1 ? "" : "s", disk);
    }
    char cuda[32];
    image_req_fmt_version(req.min_cuda, cuda, sizeof cuda);
    printf("Only hosts that can run %s:", req.image);
    if (req.min_cuda > 0)
        printf(" CUDA >= %s%s,", cuda, req.cuda_overridden ? " (VAST_IMAGE_MIN_CUDA)" : "");
    if (req.min_compute_cap > 0)
        printf(" compute capability >= %d.%d,", req.min_compute_cap / 100,
               req.min_compute_cap % 100 / 10);
    printf(" disk >= %.0f GB%s.\n", s.min_disk_gb,
           o->explain ? "" : " (--explain lists the others)");
    if (o->explain) {
        size_t n = 0;
        for (size_t i = 0; i < x.n; i++) {
            char why[768];
            if (image_req_check(&req, &x.items[i], why, sizeof why) == 0) continue;
            if (n++ == 0) printf("\nExcluded (the host cannot run %s):\n", req.image);
            printf("%-10lld %-18.18s %8.4f  %s\n", x.items[i].id, x.items[i].gpu_name,
                   x.items[i].dph_total, why);
        }
        if (n == 0) printf("\nNo offer was excluded for the image.\n");
    }
    vast_offer_list_free(&l);
    vast_offer_list_free(&x);
    return 0;
}


/* The store of DATA_DIR and the Vast state over it, as the server has them (a boot or a
 * destroy from the shell is recorded there). Their log lines below warnings unless LOG_LEVEL
 * says otherwise. 0, or -1 after saying why. */
static store *open_store(const config *cfg, char *err, size_t errlen)
{
    if (config_source(cfg, CFG_LOG_LEVEL) == CFG_SRC_DEFAULT) log_set_level(LOG_WARN);
    return store_open(config_str(cfg, CFG_DATA_DIR), err, errlen);
}

static int open_fleet(config *cfg, const char *what, store **st, vastctl **v)
{
    char err[512];
    const char *dir = config_str(cfg, CFG_DATA_DIR);
    *st = open_store(cfg, err, sizeof err);
    if (!*st) {
        fail(0, what, "store", "cannot open the store in %s (%s); nothing was done",
             dir ? dir : "DATA_DIR", err);
        return -1;
    }
    *v = vastctl_new(cfg, *st);
    return 0;
}

/* A boot from the shell is a boot like the server's: the row and its label (gpuscribe-<row>)
 * in the store of DATA_DIR before Vast.ai is called (vastctl_boot), so a running server's
 * fleet provisions it within seconds and a server started later drives it; neither ever
 * takes it for an orphan. VAST_INSTANCE_ID names the newest; one it named before stays in
 * the fleet, and the output says so. */
static int do_boot(config *cfg, const opts *o, const char *arg)
{
    long long offer;
    if (positive_id(arg, &offer) != 0) {
        return fail(2, "boot", "bad_request", "OFFER_ID must be a positive integer (see "
                    "gpuscribe vast search)%s%s%s", arg ? ", got '" : "", arg ? arg : "",
                    arg ? "'" : "");
    }
    if (need_key(cfg, "boot")) return 1;
    store *st;
    vastctl *v;
    if (open_fleet(cfg, "boot", &st, &v) != 0) return 1;
    char before[32];
    vastctl_current_instance(v, before, sizeof before);
    vastctl_result res;
    vastctl_boot(v, offer, NULL, &res);
    char label[64] = "";
    instance_row r;
    if (res.row_id > 0 && instances_get(st, res.row_id, &r) == 1)
        snprintf(label, sizeof label, "%s", r.label);
    char cur[32];
    vastctl_current_instance(v, cur, sizeof cur);
    vastctl_free(v);
    store_close(st);
    if (res.http_status != 200) {
        if (strcmp(res.kind, "offer_taken") == 0 && !o->json)
            snprintf(res.message + strlen(res.message), sizeof res.message - strlen(res.message),
                     " (gpuscribe vast search)");
        return fail_res(cfg, "boot", &res);
    }
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", res.instance_id);
    bool added = before[0] && strcmp(before, ids) != 0;
    if (o->json) {
        print_json(json_pack("{s:b,s:s,s:I,s:s,s:s,s:s}", "success", 1, "instance_id", ids,
                             "offer_id", (json_int_t)offer, "label", label, "message",
                             res.message, "vast_instance", cur));
    } else {
        if (res.reused)
            printf("Instance %s was booted from offer %lld a moment ago (label %s): the same "
                   "instance, nothing rented twice.\n", ids, offer, label);
        else
            printf("Instance %s created from offer %lld (label %s).\n", ids, offer, label);
        printf("VAST_INSTANCE_ID=%s (in %s)\n", cur, config_env_path(cfg));
        if (added)
            printf("Added to the fleet beside instance %s (no longer VAST_INSTANCE_ID, still "
                   "set up and billed until destroyed: gpuscribe vast list).\n", before);
        printf("A running `gpuscribe serve` on this DATA_DIR sets it up now; otherwise the next "
               "one does.\nWatch it: gpuscribe vast list\n");
    }
    return 0;
}

static void age(double start, char *out, size_t n)
{
    long s = start > 0 ? (long)((double)time(NULL) - start) : -1;
    if (s < 0) snprintf(out, n, "-");
    else if (s < 3600) snprintf(out, n, "%ldm", s / 60);
    else if (s < 86400) snprintf(out, n, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else snprintf(out, n, "%.1fd", (double)s / 86400);
}

/* What Vast.ai bills for an instance now, by the ledger's rule (reaper.c): the GPU
 * (dph_total, storage included) while it runs, storage only while it exists otherwise,
 * nothing once offline. *rate in $/h. */
static const char *billed_now(const vast_instance *in, double *rate)
{
    const char *st = in->actual_status;
    if (strcmp(st, "running") == 0) { *rate = in->dph_total; return "gpu"; }
    if (strcmp(st, "offline") == 0) { *rate = 0; return "none"; }
    *rate = in->storage_total_cost;
    return "storage";
}

/* Cost so far from the store's ledger; < 0 when the store does not know the instance. */
static double cost_so_far(store *st, long long vast_id)
{
    if (!st) return -1;
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", vast_id);
    long long row = instances_id_of(st, ids);
    ledger_usage u;
    if (row <= 0 || ledger_instance(st, row, now_wall(), &u) != 0) return -1;
    return u.cost;
}

static int do_list(config *cfg, vast_client *c, const opts *o)
{
    if (need_key(cfg, "list")) return 1;
    vast_instance_list l;
    vast_error e;
    if (vast_list_instances(c, &l, &e) != 0) return fail_vast(cfg, "list", &e);
    /* the store adds what Vast.ai does not say (cost so far); without it, list still works */
    char err[512];
    store *st = open_store(cfg, err, sizeof err);
    const char *cur = config_str(cfg, CFG_VAST_INSTANCE_ID);
    struct row { const char *billed; double rate, cost; bool current; } *rows =
        xcalloc(l.n ? l.n : 1, sizeof *rows);
    double total_rate = 0, total_cost = 0;
    size_t known = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct row *r = &rows[i];
        char ids[32];
        snprintf(ids, sizeof ids, "%lld", l.items[i].id);
        r->billed = billed_now(&l.items[i], &r->rate);
        r->cost = cost_so_far(st, l.items[i].id);
        r->current = cur && strcmp(cur, ids) == 0;
        total_rate += r->rate;
        if (r->cost >= 0) { total_cost += r->cost; known++; }
    }
    if (st) store_close(st);
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.n; i++) {
            const struct row *r = &rows[i];
            json_t *j = vastctl_instance_json(&l.items[i]);
            json_object_set_new(j, "billed_now", json_string(r->billed));
            json_object_set_new(j, "billed_per_hour", json_real(round_to(r->rate, 1e4)));
            json_object_set_new(j, "cost_usd", r->cost >= 0 ? json_real(round_to(r->cost, 1e4))
                                                            : json_null());
            json_object_set_new(j, "current", json_boolean(r->current));
            json_array_append_new(arr, j);
        }
        json_t *tot = json_pack("{s:i,s:f,s:f,s:i}", "instances", (int)l.n, "billed_per_hour",
                                round_to(total_rate, 1e4), "cost_usd", round_to(total_cost, 1e4),
                                "instances_with_cost", (int)known);
        print_json(json_pack("{s:o,s:o,s:s?}", "instances", arr, "total", tot,
                             "vast_instance", cur));
    } else if (l.n == 0) {
        printf("No instances on this account.\n");
    } else {
        printf("%-10s %-9s %-18s %3s %-16s %9s %-22s %-8s %s\n", "ID", "Status", "GPU", "N",
               "Billed now", "Cost", "SSH", "Age", "Label");
        for (size_t i = 0; i < l.n; i++) {
            const vast_instance *in = &l.items[i];
            const struct row *r = &rows[i];
            char ssh[64], ag[16], bill[32], cost_s[16];
            if (in->ssh_port) snprintf(ssh, sizeof ssh, "%s:%d", in->ssh_host, in->ssh_port);
            else snprintf(ssh, sizeof ssh, "-");
            age(in->start_date, ag, sizeof ag);
            if (strcmp(r->billed, "none") == 0) snprintf(bill, sizeof bill, "nothing");
            else snprintf(bill, sizeof bill, "%s $%.4f/h",
                          strcmp(r->billed, "gpu") ? "disk" : "GPU", r->rate);
            if (r->cost >= 0) snprintf(cost_s, sizeof cost_s, "$%.4f", r->cost);
            else snprintf(cost_s, sizeof cost_s, "-");
            printf("%-10lld %-9.9s %-18.18s %3d %-16s %9s %-22.22s %-8s %-16s%s\n", in->id,
                   in->actual_status[0] ? in->actual_status : "creating", in->gpu_name,
                   in->num_gpus, bill, cost_s, ssh, ag, in->label[0] ? in->label : "-",
                   r->current ? "  <- VAST_INSTANCE_ID" : "");
            if (in->status_msg[0]) printf("           %.200s\n", in->status_msg);
        }
        printf("Total: %zu instance%s, billed now $%.4f/h; spent so far $%.4f", l.n,
               l.n == 1 ? "" : "s", total_rate, total_cost);
        if (known < l.n)
            printf(" (%zu of them not in this DATA_DIR's store: their cost is not known here)",
                   l.n - known);
        printf("\n");
    }
    free(rows);
    vast_instance_list_free(&l);
    return 0;
}

static int not_found(long long id)
{
    return fail(1, "destroy", "not_found", "instance %lld not found on this account (already "
                "destroyed, or not yours)", id);
}

/* Asks on the terminal; without one, -y is needed. 0 to go on, else the exit code. */
static int confirm_destroy(config *cfg, vast_client *c, long long id)
{
    if (!isatty(STDIN_FILENO))
        return fail(2, "destroy", "confirm", "not destroying instance %lld without a yes: "
                    "stdin is not a terminal, so add -y", id);
    vast_instance in;
    vast_error e;
    if (vast_show_instance(c, id, &in, &e) != 0) {
        if (e.kind == VAST_ERR_NOT_FOUND) return not_found(id);
        return fail_vast(cfg, "destroy", &e);
    }
    fprintf(stderr, "Destroy instance %lld (%s, %s, $%.4f/h, label %s)? Its disk is deleted "
            "with it. [y/N] ", id, in.gpu_name[0] ? in.gpu_name : "GPU",
            in.actual_status[0] ? in.actual_status : "creating", in.dph_total,
            in.label[0] ? in.label : "-");
    fflush(stderr);
    vast_instance_clear(&in);
    char line[32];
    if (!fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y')) {
        fprintf(stderr, "Not destroyed.\n");
        return 1;
    }
    return 0;
}

/* Through the store, as the server destroys: Vast.ai first, then the row (destroyed, reason
 * user, its ledger closed) and VAST_INSTANCE_ID when it named the instance. */
static int do_destroy(config *cfg, vast_client *c, const opts *o, const char *arg)
{
    long long id;
    if (positive_id(arg, &id) != 0)
        return fail(2, "destroy", "bad_request", "ID must be a positive integer (see gpuscribe "
                    "vast list)%s%s%s", arg ? ", got '" : "", arg ? arg : "", arg ? "'" : "");
    if (need_key(cfg, "destroy")) return 1;
    if (!o->yes) {
        int rc = confirm_destroy(cfg, c, id);
        if (rc) return rc;
    }
    store *st;
    vastctl *v;
    if (open_fleet(cfg, "destroy", &st, &v) != 0) return 1;
    vastctl_result res;
    vastctl_destroy_for(v, id, "user", &res);
    vastctl_free(v);
    store_close(st);
    if (res.http_status == 404) return not_found(id);
    if (res.http_status != 200) return fail_res(cfg, "destroy", &res);
    if (o->json)
        print_json(json_pack("{s:b,s:s,s:I}", "success", 1, "message", "destroyed",
                             "instance_id", (json_int_t)id));
    else
        printf("Instance %lld destroyed\n", id);
    return 0;
}

int cli_vast(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0) g_json = true;
    opts o = {0};
    char **pass = xcalloc((size_t)argc + 1, sizeof *pass);
    int npass = 0, rc = 2;
    config *cfg = NULL;
    char **rest = NULL;
    vast_client *c = NULL;
    if (take_flags(argc, argv, &o, pass, &npass) != 0) goto out;
    char err[512];
    cfg = config_load(npass, pass, &rest, err, sizeof err);
    if (!cfg) {
        fail(2, NULL, "config", "%s", err);
        goto out;
    }
    log_set_level((enum log_level)log_parse_level(config_str(cfg, CFG_LOG_LEVEL)));
    const char *sub = rest ? rest[0] : NULL;
    const char *arg = sub ? rest[1] : NULL;
    if (!sub) {
        usage(stderr);
        goto out;
    }
    int want_args = strcmp(sub, "boot") == 0 || strcmp(sub, "destroy") == 0 ? 1 : 0;
    if (strcmp(sub, "search") && strcmp(sub, "boot") && strcmp(sub, "list") &&
        strcmp(sub, "destroy")) {
        fail(2, NULL, "bad_request", "unknown command '%s' (search, boot, list, destroy)", sub);
        goto out;
    }
    if ((want_args && arg && rest[2]) || (!want_args && arg)) {
        fail(2, sub, "bad_request", "unexpected argument '%s'", want_args ? rest[2] : arg);
        goto out;
    }
    vast_global_init();
    c = vastctl_client_from_config(cfg, err, sizeof err);
    if (!c) {
        rc = fail(2, NULL, "config", "%s", err);
    } else if (strcmp(sub, "search") == 0) {
        rc = do_search(cfg, c, &o);
    } else if (strcmp(sub, "boot") == 0) {
        rc = do_boot(cfg, &o, arg);
    } else if (strcmp(sub, "list") == 0) {
        rc = do_list(cfg, c, &o);
    } else {
        rc = do_destroy(cfg, c, &o, arg);
    }
    vast_client_free(c);
    vast_global_cleanup();
out:
    config_free(cfg);
    free(rest);
    free(pass);
    return rc;
}
