/* offers.c: pricing, the image's requirements, budgets, and the JSON views of offers and
 * instances (part of vastctl: see vastctl_int.h). */
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
/* ---- pricing and budgets */

int vastctl_offer_get(vastctl *v, long long offer_id, vast_offer *out, vast_error *e)
{
    vast_search s = {0};
    s.offer_id = offer_id;
    s.include_unverified = true;
    s.limit = 1;
    s.allocated_storage = (double)config_int(v->cfg, CFG_VAST_DISK_GB);
    vast_offer_list l;
    if (vast_search_offers(v->client, &s, &l, e) != 0) return -1;
    int found = 0;
    for (size_t i = 0; i < l.n && !found; i++) {
        if (l.items[i].id != offer_id) continue;
        *out = l.items[i];
        found = 1;
    }
    vast_offer_list_free(&l);
    return found;
}

int vastctl_offer_price(vastctl *v, long long offer_id, double *dph_total, double *dph_base,
                        double *storage, vast_error *e)
{
    vast_offer o;
    int found = vastctl_offer_get(v, offer_id, &o, e);
    if (found == 1) {
        *dph_total = o.dph_total;
        *dph_base = o.dph_base;
        *storage = o.storage_total_cost;
    }
    return found;
}

void vastctl_image_req(const config *cfg, image_req *out)
{
    image_req_for(config_str(cfg, CFG_VAST_IMAGE), config_str(cfg, CFG_WHISPER_MODEL),
                  config_num(cfg, CFG_VAST_IMAGE_MIN_CUDA), out);
    image_req_add_models(out, config_str(cfg, CFG_MODELS_PRELOAD));
}

json_t *vastctl_image_req_json(const image_req *r)
{
    const char *src = r->cuda_overridden ? "VAST_IMAGE_MIN_CUDA" : r->known ? "table" : NULL;
    return json_pack("{s:s,s:b,s:f,s:i,s:f,s:s,s:f,s:f,s:s?}", "image", r->image, "known",
                     r->known, "min_cuda", r->min_cuda, "min_compute_cap", r->min_compute_cap,
                     "min_disk_gb", r->min_disk_gb, "model", r->model, "model_gb", r->model_gb,
                     "image_gb", r->image_gb, "cuda_source", src);
}

int vastctl_offer_mismatch(const config *cfg, const image_req *r, const vast_offer *o,
                           char *msg, size_t msglen)
{
    char why[512];
    int n = o ? image_req_check(r, o, why, sizeof why) : 0;
    long disk = config_int(cfg, CFG_VAST_DISK_GB);
    if (n > 0) {
        snprintf(msg, msglen, "Offer %lld (%s) does not fit the image: %s. Nothing was rented; "
                 "pick another offer (search lists only the hosts that fit)%s", o->id,
                 o->gpu_name[0] ? o->gpu_name : "GPU", why,
                 r->cuda_overridden || r->min_cuda <= 0 ? ""
                 : ", or set VAST_IMAGE_MIN_CUDA if a custom image needs less");
        return n;
    }
    if ((double)disk + 1e-6 < r->min_disk_gb) {
        snprintf(msg, msglen, "VAST_DISK_GB=%ld is smaller than the %.0f GB that %s with model "
                 "%s needs (image ~%.1f GB + model %.2f GB + %.0f GB margin). Nothing was "
                 "rented; raise VAST_DISK_GB", disk, r->min_disk_gb, r->image,
                 r->model[0] ? r->model : "(any)", r->image_gb, r->model_gb,
                 IMAGE_REQ_MARGIN_GB);
        return 1;
    }
    if (msglen) msg[0] = '\0';
    return 0;
}

ledger_budgets vastctl_budgets(const config *cfg)
{
    ledger_budgets b = {config_num(cfg, CFG_BUDGET_DAILY_USD), config_num(cfg, CFG_BUDGET_MONTHLY_USD),
                        config_num(cfg, CFG_BUDGET_TOTAL_USD)};
    return b;
}

/* ---- JSON views shared by the API and the CLI */

/* Vast's gpu_ram is MiB; the client reports MB/1000. Whole GiB is what people call it. */
static json_int_t gib(double gb) { return (json_int_t)llround(gb * 1000.0 / 1024.0); }
static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

json_t *vastctl_offer_json(const vast_offer *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(o->id));
    json_object_set_new(j, "gpu_name", json_string(o->gpu_name));
    json_object_set_new(j, "num_gpus", json_integer(o->num_gpus));
    json_object_set_new(j, "gpu_ram", json_integer(gib(o->gpu_ram_gb)));
    json_object_set_new(j, "gpu_total_ram", json_integer(gib(o->gpu_total_ram_gb)));
    json_object_set_new(j, "dph_total", json_real(round_to(o->dph_total, 1e4)));
    json_object_set_new(j, "dph_base", json_real(round_to(o->dph_base, 1e4)));
    json_object_set_new(j, "storage_total_cost", json_real(round_to(o->storage_total_cost, 1e4)));
    json_object_set_new(j, "min_bid", json_real(round_to(o->min_bid, 1e4)));
    json_object_set_new(j, "reliability2", json_real(round_to(o->reliability2, 1e4)));
    json_object_set_new(j, "disk_space", json_real(round_to(o->disk_space_gb, 10)));
    json_object_set_new(j, "inet_down", json_real(round_to(o->inet_down, 10)));
    json_object_set_new(j, "inet_up", json_real(round_to(o->inet_up, 10)));
    json_object_set_new(j, "cuda_max_good", json_real(o->cuda_max_good));
    json_object_set_new(j, "compute_cap", json_integer(o->compute_cap));
    json_object_set_new(j, "cpu_ram", json_real(round_to(o->cpu_ram_gb, 10)));
    json_object_set_new(j, "cpu_cores_effective", json_real(round_to(o->cpu_cores_effective, 10)));
    json_object_set_new(j, "direct_port_count", json_integer(o->direct_port_count));
    json_object_set_new(j, "dlperf", json_real(round_to(o->dlperf, 100)));
    json_object_set_new(j, "score", json_real(round_to(o->score, 100)));
    json_object_set_new(j, "geolocation", json_string(o->geolocation));
    json_object_set_new(j, "verified", json_boolean(o->verified));
    json_object_set_new(j, "machine_id", json_integer(o->machine_id));
    return j;
}

json_t *vastctl_instance_json(const vast_instance *in)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(in->id));
    json_object_set_new(j, "label", str_or_null(in->label));
    json_object_set_new(j, "actual_status", str_or_null(in->actual_status));
    json_object_set_new(j, "intended_status", str_or_null(in->intended_status));
    json_object_set_new(j, "status_msg", str_or_null(in->status_msg));
    json_object_set_new(j, "gpu_name", str_or_null(in->gpu_name));
    json_object_set_new(j, "num_gpus", json_integer(in->num_gpus));
    json_object_set_new(j, "gpu_ram", json_integer(gib(in->gpu_ram_gb)));
    json_object_set_new(j, "dph_total", json_real(round_to(in->dph_total, 1e4)));
    json_object_set_new(j, "ssh_host", str_or_null(in->ssh_host));
    json_object_set_new(j, "ssh_port", in->ssh_port ? json_integer(in->ssh_port) : json_null());
    json_object_set_new(j, "geolocation", str_or_null(in->geolocation));
    json_object_set_new(j, "created_at", in->start_date > 0 ? json_real(in->start_date) : json_null());
    return j;
}

