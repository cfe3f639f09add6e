/* fuzz_env: the .env parser and rewriter (core/config.c) through their public entry points.
 *
 * The input is written to a .env file and loaded with config_load(--env-file). When it
 * loads, config_env_set rewrites one key with a value taken from the input, and the result
 * must load again with every other setting unchanged and the new value read back exactly
 * (the writer's quoting and the reader's parsing must agree). */
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], path[96];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/gs-fuzz-env-XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(path, sizeof path, "%s/env", dir);
    /* only the file may set things: clear the variables the environment could set */
    static const char *vars[] = {"HOST", "PORT", "DATA_DIR", "WEB_DIR", "VAST_API_KEY",
                                 "VAST_URL", "VAST_INSTANCE_ID", "LOG_LEVEL", "API_TOKEN",
                                 "HF_TOKEN", "OPENAI_API_KEY", "HOME", "XDG_CONFIG_HOME"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    setenv("HOME", dir, 1); /* no real key file */
    log_set_level(LOG_ERROR);
    return 0;
}

static config *load(char *err, size_t errlen)
{
    char *argv[] = {"fuzz", "--env-file", path, NULL};
    return config_load(3, argv, NULL, err, errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) return -1;
    if (write_file_atomic(path, data, size, 0600) != 0) abort();
    char err[512];
    config *c = load(err, sizeof err);
    if (!c) {
        if (!err[0]) abort(); /* a refusal always says why */
        log_clear_secrets();
        return 0;
    }
    /* the new value: the input's last line (bounded), without NUL bytes */
    char val[256];
    size_t vn = 0;
    const uint8_t *lastnl = memchr(data, '\n', size) ? data : NULL;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\n') lastnl = data + i + 1;
    for (const uint8_t *p = lastnl ? lastnl : data; p < data + size && vn + 1 < sizeof val; p++)
        if (*p) val[vn++] = (char)*p;
    val[vn] = '\0';
    /* leading/trailing blanks of an unquoted value are not kept; use a value that survives */
    const char *newval = vn && val[0] != ' ' && val[0] != '\t' && val[vn - 1] != ' ' &&
                         val[vn - 1] != '\t' ? val : "12345";
    if (config_env_set(path, "VAST_INSTANCE_ID", newval, err, sizeof err) != 0) abort();
    char err2[512];
    config *c2 = load(err2, sizeof err2);
    if (!c2) {
        fprintf(stderr, "rewritten .env no longer loads: %s\n", err2);
        abort();
    }
    const char *got = config_str(c2, CFG_VAST_INSTANCE_ID);
    if (!got || strcmp(got, newval) != 0) {
        fprintf(stderr, "VAST_INSTANCE_ID round trip: wrote '%s', read '%s'\n", newval,
                got ? got : "(unset)");
        abort();
    }
    for (int i = 0; i < CFG_COUNT; i++) {
        if (i == CFG_VAST_INSTANCE_ID) continue;
        const char *a = config_str(c, (enum cfg_id)i), *b = config_str(c2, (enum cfg_id)i);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
            fprintf(stderr, "%s changed by a rewrite of another key: '%s' -> '%s'\n",
                    config_name((enum cfg_id)i), a ? a : "(unset)", b ? b : "(unset)");
            abort();
        }
    }
    config_free(c2);
    config_free(c);
    log_clear_secrets();
    return 0;
}
