#include "fleet/keys.h"

#include "core/log.h"
#include "core/util.h"
#include "store/instances.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void keys_register_account(fleet *f)
{
    if (f->account_key_id > 0 || !vastctl_has_key(f->vc)) return;
    char *path = xasprintf("%s/ssh/vast_key_id", f->data_dir);
    const char *url = vast_client_base_url(f->client);
    char *txt = read_file(path, 4096, NULL);
    if (txt) {
        char *sp = strrchr(txt, ' ');
        if (sp) {
            *sp = '\0';
            if (!strcmp(txt, url)) f->account_key_id = strtoll(sp + 1, NULL, 10);
        }
        free(txt);
    }
    if (f->account_key_id <= 0) {
        long long id = 0;
        vast_error e;
        if (vast_add_ssh_key(f->client, f->pubkey, &id, &e) == 0 && id > 0) {
            f->account_key_id = id;
            char *line = xasprintf("%s %lld\n", url, id);
            write_file_atomic(path, line, strlen(line), 0600);
            free(line);
            LOG_I("fleet", "registered gpuscribe's SSH key on the Vast.ai account (key %lld)", id);
        } else {
            LOG_W("fleet", "cannot register gpuscribe's SSH key on the Vast.ai account yet: %s "
                  "(it is attached to each instance instead)", e.message);
        }
    }
    free(path);
}

void keys_attach(inst *in, row *r)
{
    fleet *f = in->f;
    vast_error e;
    if (vast_attach_ssh_key(f->client, strtoll(in->vid, NULL, 10), f->pubkey, &e) != 0) {
        LOG_D("fleet", "instance %s: attaching the SSH key: %s", in->vid, e.message);
        return;
    }
    instances_set_ssh_key(f->st, in->row, f->account_key_id);
    r->key_attached = true;
}

void keys_target(inst *in, const row *r, sshc_target *t, char *alias, size_t alen)
{
    fleet *f = in->f;
    snprintf(alias, alen, "vast-%s", in->vid);
    memset(t, 0, sizeof *t);
    t->host = r->ssh_host;
    t->port = r->ssh_port;
    t->user = "root";
    t->key_path = f->key_path;
    t->known_hosts = f->known_hosts;
    t->host_alias = alias;
    t->connect_timeout_s = 5;
}

void keys_forget_host(fleet *f, const char *vid)
{
    char alias[48], err[256];
    snprintf(alias, sizeof alias, "vast-%s", vid);
    if (sshc_forget_host(f->known_hosts, alias, err, sizeof err) != 0)
        LOG_W("fleet", "cannot forget the host key of instance %s: %s", vid, err);
}
