#include "fleet/adopt.h"

#include "core/log.h"
#include "core/util.h"
#include "fleet/instance.h"
#include "fleet/ledger.h"
#include "fleet/vast_status.h"
#include "store/instances.h"

#include <stdio.h>
#include <string.h>

/* VAST_INSTANCE_ID at start: 1 done (adopted, already known, or nothing to do), 0 retry later */
int adopt_current_instance(fleet *f)
{
    char cur[32];
    vastctl_current_instance(f->vc, cur, sizeof cur);
    long id;
    if (!cur[0] || !vastctl_has_key(f->vc) || parse_long(cur, &id) != 0 || id <= 0) return 1;
    instance_row known;
    int have = instances_by_vast_id(f->st, cur, &known);
    if (have < 0) return 0;
    long long rowid = have ? known.id : 0;
    const char *state = known.state;
    if (rowid && !inst_final_state(state)) {
        LOG_I("fleet", "VAST_INSTANCE_ID=%s: resuming instance %s (%s)", cur, cur, state);
        return 1;
    }
    vast_instance vi;
    vast_error e;
    if (vast_show_instance(f->client, id, &vi, &e) != 0) {
        if (e.kind == VAST_ERR_NOT_FOUND) return 1; /* vastctl reports and clears it */
        LOG_W("fleet", "VAST_INSTANCE_ID=%s: cannot check it yet: %s", cur, e.message);
        return 0;
    }
    char why[400];
    if (vast_status_classify(&vi, why, sizeof why) == VAST_STATUS_FAILED) {
        LOG_W("fleet", "VAST_INSTANCE_ID=%s: not usable: %s", cur, why);
        vast_instance_clear(&vi);
        return 1;
    }
    bool running = !strcmp(vi.actual_status, "running") && vi.ssh_port > 0;
    const char *st = running ? "ssh_wait" : "loading";
    const char *stage = running ? "waiting for SSH" : "loading image";
    int pct = running ? 30 : 20;
    double t = now_wall();
    bool fresh = !rowid;
    if (rowid) {
        instances_resume(f->st, rowid, st, stage, pct, vi.ssh_host, vi.ssh_port, t);
    } else {
        instance_row nr;
        memset(&nr, 0, sizeof nr);
        snprintf(nr.vast_id, sizeof nr.vast_id, "%s", cur);
        snprintf(nr.state, sizeof nr.state, "%s", st);
        snprintf(nr.stage, sizeof nr.stage, "%s", stage);
        nr.percent = pct;
        snprintf(nr.label, sizeof nr.label, "%s", vi.label);
        snprintf(nr.gpu_name, sizeof nr.gpu_name, "%s", vi.gpu_name);
        nr.num_gpus = vi.num_gpus;
        nr.dph_total = vi.dph_total;
        nr.dph_base = vi.dph_base;
        nr.storage_dph = vi.storage_total_cost;
        snprintf(nr.ssh_host, sizeof nr.ssh_host, "%s", vi.ssh_host);
        nr.ssh_port = vi.ssh_port;
        nr.created_at = vi.start_date > 0 ? vi.start_date : t;
        nr.updated_at = t;
        nr.running_at = running ? t : 0;
        rowid = instances_insert_found(f->st, &nr);
    }
    /* the ledger: storage since Vast's start date for an instance new to the store, GPU from
     * now while it runs (the reaper refines both from the API) */
    if (rowid > 0) {
        instance_facts fx = {.dph_total = vi.dph_total, .dph_base = vi.dph_base,
                             .storage_dph = vi.storage_total_cost};
        instances_observe(f->st, rowid, NULL, &fx, t);
        if (fresh) ledger_sync(f->st, rowid, false, true, vi.dph_base, vi.storage_total_cost,
                               vi.start_date > 0 && vi.start_date < t ? vi.start_date : t);
        ledger_sync(f->st, rowid, running, true, vi.dph_base, vi.storage_total_cost,
                    running ? ledger_running_since(t, ledger_uptime_s(vi.raw), vi.start_date) : t);
    }
    LOG_I("fleet", "VAST_INSTANCE_ID=%s: instance %s is %s on Vast.ai; connecting to it (setup "
          "only where something is missing)", cur, cur,
          vi.actual_status[0] ? vi.actual_status : "being created");
    vast_instance_clear(&vi);
    return 1;
}
