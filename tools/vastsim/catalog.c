/* catalog: the generated offer catalog, search (POST /api/v0/bundles/) and the filter language
 * shared with the v1 instance list (docs/vast-api.md 3.1, 3.4, 6). Called with sim.mu held. */
#include "sim.h"

#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gpu_model {
    const char *name;
    int ram_mb;
    int cc;              /* compute capability x100 */
    double price;        /* $/h per GPU, typical */
    double tflops;       /* per GPU */
    double dlperf;       /* per GPU */
    int mem_bw;          /* GB/s */
    int power;           /* W */
    const char *arch;
};

static const struct gpu_model GPUS[] = {
    {"RTX 3060", 12288, 860, 0.07, 12.7, 8.5, 360, 170, "nvidia"},
    {"RTX 3090", 24576, 860, 0.20, 35.6, 22.0, 936, 350, "nvidia"},
    {"RTX 4080", 16376, 890, 0.22, 48.7, 27.0, 717, 320, "nvidia"},
    {"RTX 4090", 24564, 890, 0.35, 82.6, 43.0, 1008, 450, "nvidia"},
    {"RTX 5090", 32607, 1200, 0.60, 104.8, 58.0, 1792, 575, "nvidia"},
    {"RTX A6000", 49140, 860, 0.45, 38.7, 25.0, 768, 300, "nvidia"},
    {"A10", 23028, 860, 0.25, 31.2, 18.0, 600, 150, "nvidia"},
    {"Tesla T4", 15360, 750, 0.10, 8.1, 6.0, 320, 70, "nvidia"},
    {"Tesla V100", 16384, 700, 0.18, 15.7, 14.0, 900, 300, "nvidia"},
    {"L40S", 46068, 890, 0.75, 91.6, 48.0, 864, 350, "nvidia"},
    {"A100 PCIE", 40960, 800, 0.80, 77.9, 52.0, 1555, 250, "nvidia"},
    {"A100 SXM4", 81920, 800, 1.10, 77.9, 60.0, 2039, 400, "nvidia"},
    {"H100 PCIE", 81559, 900, 1.90, 204.9, 95.0, 2039, 350, "nvidia"},
    {"H100 SXM", 81559, 900, 2.20, 267.6, 120.0, 3352, 700, "nvidia"},
    {"MI300X", 196608, 0, 2.00, 163.4, 90.0, 5300, 750, "amd"},
};

static const char *GEOS[] = {
    "Florida, US", "California, US", "Texas, US", "Virginia, US", "Quebec, CA", "Ontario, CA",
    "Bavaria, DE", "Noord-Holland, NL", "Ile-de-France, FR", "England, GB", "Stockholm, SE",
    "Prague, CZ", "Tokyo, JP", "New South Wales, AU", "Sao Paulo, BR", "Leinster, IE",
};
/* Host drivers as the market has them: cuda_max_good is the newest CUDA the driver runs
 * (12.2: 535, 12.4: 550, 12.8: 570, 13.0: 580, 13.1: 590). About half the hosts are still on
 * a 12.x driver and cannot start a CUDA 13 image such as whisper.cpp's main-cuda. */
static const double CUDAS[] = {12.2, 12.4, 12.8, 12.8, 13.0, 13.0, 13.1};
static const char *DRIVERS[] = {"535.183.01", "550.54.14", "570.124.06", "570.172.08",
                                "580.65.06", "580.82.07", "590.44.01"};
static const char *CPUS[] = {"AMD EPYC 7543 32-Core Processor", "AMD Ryzen 9 5950X 16-Core Processor",
                             "Intel Xeon Gold 6338", "AMD EPYC 9354 32-Core Processor",
                             "Intel Core i9-13900K"};

static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rng_unit(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }
static size_t rng_pick(size_t n) { return (size_t)(rng_next() % n); }
static double quantize(double v, double q) { return round(v / q) * q; }

static long driver_int(const char *v)
{
    unsigned a = 0, b = 0, c = 0;
    if (sscanf(v, "%u.%u.%u", &a, &b, &c) < 2) return 0;
    return (long)a * 1000000L + (long)b * 1000L + (long)c;
}

static json_t *gen_offer(long id, int idx, double now)
{
    const struct gpu_model *g = &GPUS[rng_pick(ARRAY_LEN(GPUS))];
    static const int COUNTS[] = {1, 1, 1, 1, 2, 2, 4, 8};
    int n = COUNTS[rng_pick(ARRAY_LEN(COUNTS))];
    if (g->ram_mb > 60000 && n == 8 && rng_unit() < 0.5) n = 4;
    size_t ci = rng_pick(ARRAY_LEN(CUDAS));
    if (g->cc >= 1200 && CUDAS[ci] < 12.8) ci = 2;   /* Blackwell needs a 570+ driver */
    double dph_base = quantize(n * g->price * (0.75 + 0.6 * rng_unit()), 0.0001);
    double storage_cost = quantize(0.05 + 0.25 * rng_unit(), 0.0001);
    double rel = quantize(0.85 + 0.1499 * rng_unit(), 0.0001);
    int cores = n * (8 + 8 * (int)rng_pick(4));
    double inet_down = quantize(100 + 4900 * rng_unit() * rng_unit(), 0.1);
    double inet_up = quantize(inet_down * (0.3 + 0.7 * rng_unit()), 0.1);
    double disk = quantize(50 + 1950 * rng_unit(), 0.1);
    bool verified = rng_unit() < 0.85;
    bool dc = rng_unit() < 0.3;
    int dports = rng_unit() < 0.1 ? 0 : 10 + (int)rng_pick(490);
    double in_cost = quantize(0.001 + 0.02 * rng_unit(), 0.0001);
    double out_cost = quantize(0.001 + 0.02 * rng_unit(), 0.0001);
    const char *drv = DRIVERS[ci];
    double dlperf = quantize(n * g->dlperf * (0.9 + 0.2 * rng_unit()), 0.001);
    double duration = quantize(86400.0 * (7 + 170 * rng_unit()), 1);
    const char *geo = GEOS[rng_pick(ARRAY_LEN(GEOS))];
    long machine = 10000 + idx * 3 + (long)rng_pick(3);
    /* Every draw is its own statement: argument evaluation order must not change the catalog. */
    const char *cpu = CPUS[rng_pick(ARRAY_LEN(CPUS))];
    double ghz = quantize(2.0 + 2.0 * rng_unit(), 0.1);
    int ram_mb = n * (32 + 32 * (int)rng_pick(4)) * 1024;
    double disk_bw = quantize(500 + 5000 * rng_unit(), 0.1);
    const char *disk_name = rng_unit() < 0.5 ? "Samsung SSD 990 PRO 2TB" : "INTEL SSDPE2KX040T8";
    bool static_ip = rng_unit() < 0.5;
    double min_bid = quantize(dph_base * (0.35 + 0.3 * rng_unit()), 0.0001);
    int geocode = 1000 + (int)rng_pick(9000);
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:n, s:I, s:I, s:i, s:s, s:s, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:b}",
        "id", (json_int_t)id, "ask_contract_id", (json_int_t)id, "bundle_id", (json_int_t)id,
        "bundled_results", "machine_id", (json_int_t)machine, "host_id", (json_int_t)(100 + idx / 3),
        "num_gpus", n, "gpu_name", g->name, "gpu_arch", g->arch, "gpu_ram", g->ram_mb,
        "gpu_total_ram", g->ram_mb * n, "gpu_frac", 1.0, "gpu_lanes", 16, "gpu_mem_bw", g->mem_bw,
        "gpu_max_power", g->power, "gpu_max_temp", 83, "gpu_display_active", 0);
    json_object_update_new(o, json_pack(
        "{s:i, s:f, s:s, s:I, s:s, s:s, s:i, s:f, s:f, s:i}",
        "compute_cap", g->cc, "cuda_max_good", strcmp(g->arch, "amd") ? CUDAS[ci] : 0.0,
        "driver_version", drv, "driver_vers", (json_int_t)driver_int(drv),
        "cpu_name", cpu, "cpu_arch", "amd64", "cpu_cores", cores,
        "cpu_cores_effective", (double)cores, "cpu_ghz", ghz,
        "cpu_ram", ram_mb));
    json_object_update_new(o, json_pack(
        "{s:f, s:f, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:s, s:b}",
        "disk_space", disk, "disk_bw", disk_bw,
        "disk_name", disk_name,
        "inet_up", inet_up, "inet_down", inet_down, "inet_up_cost", out_cost,
        "inet_down_cost", in_cost, "internet_up_cost_per_tb", quantize(out_cost * 1024, 0.01),
        "internet_down_cost_per_tb", quantize(in_cost * 1024, 0.01), "direct_port_count", dports,
        "public_ipaddr", "127.0.0.1", "static_ip", static_ip));
    json_object_update_new(o, json_pack(
        "{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:i, s:b, s:b, s:b, s:b, s:i, s:b, s:b}",
        "dph_base", dph_base, "min_bid", min_bid,
        "storage_cost", storage_cost, "credit_discount_max", 0.0, "dlperf", dlperf,
        "total_flops", quantize(n * g->tflops, 0.01), "reliability", rel, "reliability2", rel,
        "verification", verified ? "verified" : "unverified", "vericode", 0, "rentable", 1,
        "rented", 0, "is_bid", 0, "external", 0, "hosting_type", dc ? 1 : 0, "vms_enabled", 0,
        "is_vm_deverified", 0));
    json_object_update_new(o, json_pack(
        "{s:f, s:s, s:i, s:f, s:f, s:f, s:s, s:s, s:s, s:f, s:f, s:f, s:i, s:n, s:s, s:s, s:n}",
        "reliability_mult", 1.0, "geolocation", geo, "geolocode", geocode,
        "start_date", quantize(now - 86400.0 * 30, 1), "end_date", quantize(now + duration, 1),
        "duration", duration, "os_version", "22.04", "ubuntu_version", "22.04",
        "mobo_name", "ROMED8-2T", "pci_gen", 4.0, "pcie_bw", 25.6, "bw_nvlink", 0.0, "has_avx", 1,
        "cluster_id", "resource_type", "gpu", "logo", "/static/logos/vastai_small2.png",
        "webpage"));
    json_object_set_new(o, "hostname", json_sprintf("vastsim-host-%d", 100 + idx / 3));
    return o;
}

void catalog_init(void)
{
    rng_state = g_sim.seed;
    double now = now_wall();
    offer **tail = &g_sim.offers;
    for (int i = 0; i < g_sim.n_offers; i++) {
        offer *o = xcalloc(1, sizeof *o);
        o->id = g_sim.next_offer_id;
        g_sim.next_offer_id += 1 + (long)rng_pick(17);
        o->j = gen_offer(o->id, i, now);
        *tail = o;
        tail = &o->next;
    }
}

void catalog_free(void)
{
    offer *o = g_sim.offers;
    while (o) {
        offer *n = o->next;
        json_decref(o->j);
        free(o);
        o = n;
    }
    g_sim.offers = NULL;
}

offer *catalog_find(long id)
{
    for (offer *o = g_sim.offers; o; o = o->next)
        if (o->id == id) return o;
    return NULL;
}

void catalog_remove(long id)
{
    for (offer **p = &g_sim.offers; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            offer *o = *p;
            *p = o->next;
            json_decref(o->j);
            free(o);
            return;
        }
    }
}

void catalog_relist(const json_t *offer_static)
{
    offer *o = xcalloc(1, sizeof *o);
    o->id = g_sim.next_offer_id++;
    o->j = json_deep_copy(offer_static);
    json_object_set_new(o->j, "id", json_integer(o->id));
    json_object_set_new(o->j, "ask_contract_id", json_integer(o->id));
    json_object_set_new(o->j, "bundle_id", json_integer(o->id));
    o->next = g_sim.offers;
    g_sim.offers = o;
}

static double jnum(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

json_t *catalog_priced(const offer *o, double alloc, bool bid)
{
    json_t *j = json_deep_copy(o->j);
    double base = bid ? jnum(o->j, "min_bid") : jnum(o->j, "dph_base");
    double stc = jnum(o->j, "storage_cost") * alloc / 720.0;
    double total = base + stc;
    double vram_gb = jnum(o->j, "gpu_total_ram") / 1024.0;
    double dlperf = jnum(o->j, "dlperf");
    double per = total > 0 ? dlperf / total : 0;
    json_object_set_new(j, "storage_total_cost", json_real(stc));
    json_object_set_new(j, "dph_total", json_real(total));
    json_object_set_new(j, "discounted_dph_total", json_real(total));
    json_object_set_new(j, "dph_total_adj", json_real(total));
    json_object_set_new(j, "vram_costperhour", json_real(vram_gb > 0 ? total / vram_gb : 0));
    json_object_set_new(j, "dlperf_per_dphtotal", json_real(per));
    json_object_set_new(j, "flops_per_dphtotal",
                        json_real(total > 0 ? jnum(o->j, "total_flops") / total : 0));
    json_object_set_new(j, "score", json_real(per * jnum(o->j, "reliability2")));
    json_object_set_new(j, "is_bid", json_boolean(bid));
    json_object_set_new(j, "expected_reliability", json_real(jnum(o->j, "reliability2")));
    json_object_set_new(j, "search", json_pack("{s:f, s:f, s:f, s:f, s:f}", "gpuCostPerHour", base,
                                               "diskHour", stc, "totalHour", total,
                                               "discountTotalHour", 0.0,
                                               "discountedTotalPerHour", total));
    json_object_set_new(j, "instance", json_pack("{s:f, s:f, s:f, s:f, s:f}", "gpuCostPerHour", base,
                                                 "diskHour", stc, "totalHour", total,
                                                 "discountTotalHour", 0.0,
                                                 "discountedTotalPerHour", total));
    double left = jnum(o->j, "end_date") - now_wall();
    if (left < 0) left = 0;
    json_object_set_new(j, "time_remaining",
                        json_sprintf("%d D %d Hr", (int)(left / 86400), (int)fmod(left / 3600, 24)));
    json_object_set_new(j, "time_remaining_isbid", json_string(""));
    json_object_set_new(j, "rn", json_integer(0));
    return j;
}

/* ---- filter language ---- */

static int num_of(const json_t *v, double *out)
{
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    if (json_is_boolean(v)) { *out = json_is_true(v) ? 1 : 0; return 0; }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "true")) { *out = 1; return 0; }
        if (!strcmp(s, "false")) { *out = 0; return 0; }
        return parse_double(s, out);
    }
    return -1;
}

int jv_compare(const json_t *a, const json_t *b, bool *comparable)
{
    *comparable = true;
    if (json_is_null(a) || json_is_null(b) || !a || !b) {
        bool an = !a || json_is_null(a), bn = !b || json_is_null(b);
        if (an && bn) return 0;
        *comparable = false;
        return an ? -1 : 1;
    }
    if (json_is_string(a) && json_is_string(b)) return strcmp(json_string_value(a), json_string_value(b));
    double x, y;
    if (num_of(a, &x) == 0 && num_of(b, &y) == 0) return x < y ? -1 : x > y ? 1 : 0;
    *comparable = false;
    return json_typeof(a) < json_typeof(b) ? -1 : 1;
}

static bool jv_eq(const json_t *a, const json_t *b)
{
    bool ok;
    int c = jv_compare(a, b, &ok);
    return c == 0 && (ok || ((!a || json_is_null(a)) && (!b || json_is_null(b))));
}

static bool in_list(const json_t *v, const json_t *list)
{
    if (!json_is_array(list)) return jv_eq(v, list);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) if (jv_eq(v, e)) return true;
    return false;
}

int filters_match(const json_t *row, const json_t *filters, bool (*valid_field)(const char *),
                  const char **bad)
{
    const char *field;
    json_t *cond;
    json_object_foreach((json_t *)filters, field, cond) {
        if (valid_field && !valid_field(field)) { *bad = field; return -1; }
        json_t *v = json_object_get(row, field);
        if (!json_is_object(cond)) {          /* bare value: equality */
            if (!jv_eq(v, cond)) return 0;
            continue;
        }
        const char *op;
        json_t *arg;
        json_object_foreach(cond, op, arg) {
            bool ok;
            int c;
            bool m;
            if (!strcmp(op, "eq")) m = jv_eq(v, arg);
            else if (!strcmp(op, "neq")) m = !jv_eq(v, arg);
            else if (!strcmp(op, "in")) m = in_list(v, arg);
            else if (!strcmp(op, "notin") || !strcmp(op, "nin")) m = !in_list(v, arg);
            else if (!strcmp(op, "gt")) { c = jv_compare(v, arg, &ok); m = ok && c > 0; }
            else if (!strcmp(op, "gte")) { c = jv_compare(v, arg, &ok); m = ok && c >= 0; }
            else if (!strcmp(op, "lt")) { c = jv_compare(v, arg, &ok); m = ok && c < 0; }
            else if (!strcmp(op, "lte")) { c = jv_compare(v, arg, &ok); m = ok && c <= 0; }
            else { *bad = op; return -1; }
            if (!m) return 0;
        }
    }
    return 1;
}

static int order_entry(const json_t *e, const char **col, bool *desc)
{
    const json_t *c = NULL, *d = NULL;
    if (json_is_array(e)) { c = json_array_get(e, 0); d = json_array_get(e, 1); }
    else if (json_is_object(e)) { c = json_object_get(e, "col"); d = json_object_get(e, "dir"); }
    else if (json_is_string(e)) c = e;
    if (!json_is_string(c)) return -1;
    *col = json_string_value(c);
    const char *ds = json_is_string(d) ? json_string_value(d) : "asc";
    *desc = !strcmp(ds, "desc") || !strcmp(ds, "-");
    return 0;
}

int rows_cmp(const json_t *a, const json_t *b, const json_t *order)
{
    size_t i;
    json_t *e;
    if (json_is_array(order)) {
        json_array_foreach(order, i, e) {
            const char *col;
            bool desc, ok;
            if (order_entry(e, &col, &desc) < 0) continue;
            int c = jv_compare(json_object_get(a, col), json_object_get(b, col), &ok);
            if (c) return desc ? -c : c;
        }
    }
    json_int_t x = json_integer_value(json_object_get(a, "id"));
    json_int_t y = json_integer_value(json_object_get(b, "id"));
    return x < y ? -1 : x > y;
}

static const json_t *g_sort_order;
static int sort_cb(const void *x, const void *y)
{
    return rows_cmp(*(json_t *const *)x, *(json_t *const *)y, g_sort_order);
}

void rows_sort(json_t *rows, const json_t *order)
{
    size_t n = json_array_size(rows);
    if (n < 2) return;
    json_t **v = xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(rows, i));
    g_sort_order = order;      /* callers hold sim.mu: one sort at a time */
    qsort(v, n, sizeof *v, sort_cb);
    g_sort_order = NULL;
    json_array_clear(rows);
    for (size_t i = 0; i < n; i++) json_array_append_new(rows, v[i]);
    free(v);
}

/* ---- search ---- */

static const char *CONTROL_KEYS[] = {
    "order", "type", "limit", "allocated_storage", "disable_bundling", "target_reliability",
    "extra_ids", "gpu_option", "show_incompatible", "sort_option", "template_id", "select_cols",
};
static const struct { const char *from, *to; } ALIASES[] = {
    {"cuda_vers", "cuda_max_good"}, {"dph", "dph_total"}, {"dlperf_usd", "dlperf_per_dphtotal"},
    {"flops_usd", "flops_per_dphtotal"}, {"display_active", "gpu_display_active"},
};

static const json_t *g_probe_row;
static bool offer_field_valid(const char *f)
{
    return json_object_get(g_probe_row, f) != NULL;
}

static bool is_control(const char *k)
{
    for (size_t i = 0; i < ARRAY_LEN(CONTROL_KEYS); i++)
        if (!strcmp(k, CONTROL_KEYS[i])) return true;
    return false;
}

static bool all_numeric_args(const json_t *cond)
{
    if (!json_is_object(cond)) return json_is_number(cond);
    const char *op;
    json_t *a;
    json_object_foreach((json_t *)cond, op, a) if (!json_is_number(a)) return false;
    return true;
}

json_t *catalog_search(json_t *body, int *http, json_t **err)
{
    if (!json_is_object(body)) {
        *http = 400;
        *err = jerr("invalid_args", "error 400/3410: Invalid args: search query must be a JSON object");
        return NULL;
    }
    double alloc = 5.0;
    json_t *as = json_object_get(body, "allocated_storage");
    if (as && !json_is_null(as)) {
        bool bad = false;
        if (json_is_number(as)) alloc = json_number_value(as);
        else if (!json_is_string(as) || parse_double(json_string_value(as), &alloc) < 0) bad = true;
        if (bad || alloc < 0 || alloc > 1e6) {
            *http = 400;
            *err = jerr("invalid_args", "error 400/3410: Invalid args: allocated_storage must be a number");
            return NULL;
        }
    }
    bool bid = false;
    json_t *ty = json_object_get(body, "type");
    if (ty && !json_is_null(ty)) {
        const char *t = json_string_value(ty);
        if (t && (!strcmp(t, "bid") || !strcmp(t, "interruptible"))) bid = true;
        else if (!t || (strcmp(t, "on-demand") && strcmp(t, "ondemand") && strcmp(t, "reserved"))) {
            *http = 400;
            *err = jerr("invalid_args",
                        "error 400/3410: Invalid args: type must be on-demand, bid or reserved");
            return NULL;
        }
    }
    long limit = 64;
    json_t *lim = json_object_get(body, "limit");
    if (lim && !json_is_null(lim)) {
        double d = 0;
        if (json_is_number(lim)) d = json_number_value(lim);
        else if (!json_is_string(lim) || parse_double(json_string_value(lim), &d) < 0) {
            *http = 400;
            *err = jerr("invalid_args", "error 400/3410: Invalid args: limit must be an integer");
            return NULL;
        }
        if (d > 0) limit = (long)d;
        if (limit > 10000) limit = 10000;
    }
    json_t *order = json_object_get(body, "order");
    if (order && !json_is_array(order) && !json_is_null(order)) {
        *http = 400;
        *err = jerr("invalid_args", "error 400/3410: Invalid args: order must be a list of [field, dir]");
        return NULL;
    }
    /* The filters: everything that is not a control key, with the CLI's aliases resolved. */
    json_t *filters = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (is_control(k)) continue;
        const char *name = k;
        for (size_t i = 0; i < ARRAY_LEN(ALIASES); i++)
            if (!strcmp(k, ALIASES[i].from)) name = ALIASES[i].to;
        /* The CLI turns driver versions a.b.c into integers aaabbbccc: compare with driver_vers. */
        if (!strcmp(name, "driver_version") && all_numeric_args(v)) name = "driver_vers";
        json_object_set(filters, name, v);
    }
    json_t *rows = json_array();
    const char *bad = NULL;
    for (offer *o = g_sim.offers; o; o = o->next) {
        json_t *row = catalog_priced(o, alloc, bid);
        /* Filter-only pseudo fields. */
        json_object_set_new(row, "verified",
                            json_boolean(!strcmp(json_string_value(json_object_get(row, "verification")), "verified")));
        json_object_set_new(row, "datacenter",
                            json_boolean(json_integer_value(json_object_get(row, "hosting_type")) == 1));
        g_probe_row = row;
        int m = filters_match(row, filters, offer_field_valid, &bad);
        g_probe_row = NULL;
        json_object_del(row, "verified");
        json_object_del(row, "datacenter");
        if (m < 0) {
            json_decref(row);
            break;
        }
        if (m) json_array_append_new(rows, row);
        else json_decref(row);
    }
    if (bad) {
        json_decref(rows);
        *http = 400;
        char *msg = xasprintf("error 400/3410: Error in query parameters: %s is not a valid search key "
                              "or operator", bad);
        *err = jerr("invalid_args", msg);
        free(msg);
        json_decref(filters);
        return NULL;
    }
    json_decref(filters);
    json_t *def_order = NULL;
    if (!order || json_is_null(order) || json_array_size(order) == 0) {
        def_order = json_pack("[[s,s]]", "score", "desc");
        order = def_order;
    }
    rows_sort(rows, order);
    json_decref(def_order);
    while ((long)json_array_size(rows) > limit) json_array_remove(rows, json_array_size(rows) - 1);
    return json_pack("{s:o}", "offers", rows);
}
