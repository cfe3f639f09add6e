/* cli/vast.c: `gpuscribe vast search|boot|list|destroy`, talking to the Vast.ai API directly
 * with the client (VAST_API_KEY and VAST_URL from .env, the environment or flags); boot and
 * destroy keep VAST_INSTANCE_ID in the .env file up to date. */
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "fleet/vastctl.h"
#include "store/instances.h"
#include "store/store.h"
#include "vast/vast.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


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
            "  list [--json]               the account's instances\n"
            "  destroy ID [--json]         destroy an instance; clears VAST_INSTANCE_ID when it\n"
            "                              named it\n\n"
            "Configuration (VAST_API_KEY, VAST_URL, VAST_IMAGE, VAST_DISK_GB, VAST_IMAGE_MIN_CUDA,\n"
            "WHISPER_MODEL) comes from .env\n"
            "(or --env-file PATH), the environment, or flags such as --vast-url URL.\n");
}

typedef struct opts {
    bool json, interruptible, explain;
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

/* Takes our own flags out of argv; the rest goes to config_load. -1 on a bad value. */
static int take_flags(int argc, char **argv, opts *o, char **pass, int *npass)
{
    *npass = 0;
    pass[(*npass)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) { o->json = true; continue; }
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
                fprintf(stderr, "gpuscribe vast: %s needs a %s from 0 to %g%s%s%s\n", f->name,
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
                fprintf(stderr, "gpuscribe vast: --gpu-name needs a GPU model, e.g. RTX_4090\n");
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

static int fail_vast(const char *what, const vast_error *e)
{
    char msg[640];
    vastctl_describe(e, msg, sizeof msg);
    fprintf(stderr, "gpuscribe vast %s: %s\n", what, msg);
    return 1;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(j);
}

static int need_key(const config *cfg, const char *what)
{
    if (config_isset(cfg, CFG_VAST_API_KEY)) return 0;
    fprintf(stderr, "gpuscribe vast %s: no Vast.ai API key configured: set VAST_API_KEY in the "
                    ".env file or the environment, or log in with the vast CLI (`vastai set "
                    "api-key KEY` writes ~/.config/vastai/vast_api_key)\n", what);
    return 1;
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
    if (vast_search_offers(c, &s, &l, &e) != 0) return fail_vast("search", &e);
    if (relax && vast_search_offers(c, &user, &x, &e) != 0) {
        vast_offer_list_free(&l);
        return fail_vast("search --explain", &e);
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
static int open_fleet(config *cfg, const char *what, store **st, vastctl **v)
{
    char err[512];
    const char *dir = config_str(cfg, CFG_DATA_DIR);
    if (config_source(cfg, CFG_LOG_LEVEL) == CFG_SRC_DEFAULT) log_set_level(LOG_WARN);
    *st = store_open(dir, err, sizeof err);
    if (!*st) {
        fprintf(stderr, "gpuscribe vast %s: cannot open the store in %s (%s); nothing was "
                        "done\n", what, dir ? dir : "DATA_DIR", err);
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
        fprintf(stderr, "gpuscribe vast boot: OFFER_ID must be a positive integer (see "
                        "gpuscribe vast search)%s%s%s\n", arg ? ", got '" : "", arg ? arg : "",
                arg ? "'" : "");
        return 2;
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
        if (o->json)
            print_json(json_pack("{s:b,s:s,s:s}", "success", 0, "error", res.message, "kind",
                                 res.kind));
        else
            fprintf(stderr, "gpuscribe vast boot: %s%s\n", res.message,
                    strcmp(res.kind, "offer_taken") ? "" : " (gpuscribe vast search)");
        return 1;
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

static int do_list(const config *cfg, vast_client *c, const opts *o)
{
    if (need_key(cfg, "list")) return 1;
    vast_instance_list l;
    vast_error e;
    if (vast_list_instances(c, &l, &e) != 0) return fail_vast("list", &e);
    const char *cur = config_str(cfg, CFG_VAST_INSTANCE_ID);
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.n; i++) {
            json_t *j = vastctl_instance_json(&l.items[i]);
            char ids[32];
            snprintf(ids, sizeof ids, "%lld", l.items[i].id);
            json_object_set_new(j, "current", json_boolean(cur && strcmp(cur, ids) == 0));
            json_array_append_new(arr, j);
        }
        print_json(json_pack("{s:o,s:s?}", "instances", arr, "vast_instance", cur));
    } else if (l.n == 0) {
        printf("No instances on this account.\n");
    } else {
        printf("%-10s %-9s %-18s %3s %8s %-22s %-8s %s\n", "ID", "Status", "GPU", "N", "$/hr",
               "SSH", "Age", "Label");
        for (size_t i = 0; i < l.n; i++) {
            const vast_instance *in = &l.items[i];
            char ssh[64], ag[16], ids[32];
            snprintf(ids, sizeof ids, "%lld", in->id);
            if (in->ssh_port) snprintf(ssh, sizeof ssh, "%s:%d", in->ssh_host, in->ssh_port);
            else snprintf(ssh, sizeof ssh, "-");
            age(in->start_date, ag, sizeof ag);
            printf("%-10lld %-9.9s %-18.18s %3d %8.4f %-22.22s %-8s %-16s%s\n", in->id,
                   in->actual_status[0] ? in->actual_status : "creating", in->gpu_name,
                   in->num_gpus, in->dph_total, ssh, ag, in->label[0] ? in->label : "-",
                   cur && strcmp(cur, ids) == 0 ? "  <- VAST_INSTANCE_ID" : "");
        }
    }
    vast_instance_list_free(&l);
    return 0;
}

/* Through the store, as the server destroys: Vast.ai first, then the row (destroyed, reason
 * user, its ledger closed) and VAST_INSTANCE_ID when it named the instance. */
static int do_destroy(config *cfg, const opts *o, const char *arg)
{
    long long id;
    if (positive_id(arg, &id) != 0) {
        fprintf(stderr, "gpuscribe vast destroy: ID must be a positive integer (see gpuscribe "
                        "vast list)%s%s%s\n", arg ? ", got '" : "", arg ? arg : "", arg ? "'" : "");
        return 2;
    }
    if (need_key(cfg, "destroy")) return 1;
    store *st;
    vastctl *v;
    if (open_fleet(cfg, "destroy", &st, &v) != 0) return 1;
    vastctl_result res;
    vastctl_destroy_for(v, id, "user", &res);
    vastctl_free(v);
    store_close(st);
    if (res.http_status != 200) {
        if (o->json)
            print_json(json_pack("{s:b,s:s,s:s}", "success", 0, "error", res.message, "kind",
                                 res.kind));
        else if (res.http_status == 404)
            fprintf(stderr, "gpuscribe vast destroy: instance %lld not found on this account "
                            "(already destroyed, or not yours)\n", id);
        else
            fprintf(stderr, "gpuscribe vast destroy: %s\n", res.message);
        return 1;
    }
    if (o->json)
        print_json(json_pack("{s:b,s:s}", "success", 1, "message", "destroyed"));
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
        fprintf(stderr, "gpuscribe vast: %s\n", err);
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
        fprintf(stderr, "gpuscribe vast: unknown command '%s' (search, boot, list, destroy)\n", sub);
        goto out;
    }
    if ((want_args && arg && rest[2]) || (!want_args && arg)) {
        fprintf(stderr, "gpuscribe vast %s: unexpected argument '%s'\n", sub,
                want_args ? rest[2] : arg);
        goto out;
    }
    vast_global_init();
    c = vastctl_client_from_config(cfg, err, sizeof err);
    if (!c) {
        fprintf(stderr, "gpuscribe vast: %s\n", err);
        rc = 1;
    } else if (strcmp(sub, "search") == 0) {
        rc = do_search(cfg, c, &o);
    } else if (strcmp(sub, "boot") == 0) {
        rc = do_boot(cfg, &o, arg);
    } else if (strcmp(sub, "list") == 0) {
        rc = do_list(cfg, c, &o);
    } else {
        rc = do_destroy(cfg, &o, arg);
    }
    vast_client_free(c);
    vast_global_cleanup();
out:
    config_free(cfg);
    free(rest);
    free(pass);
    return rc;
}
