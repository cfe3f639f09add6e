#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef GS_SRCDIR
#define GS_SRCDIR "."
#endif
#ifndef GS_SHAREDIR
#define GS_SHAREDIR "/usr/share/gpuscribe"
#endif

struct cfg_def {
    const char *name;
    enum cfg_type type;
    const char *def;
    double min, max;
    const char *choices;
    const char *help;
};

static const struct cfg_def defs[CFG_COUNT] = {
#define X(id, type, def, min, max, choices, help) {#id, type, def, min, max, choices, help},
    CONFIG_TABLE(X)
#undef X
};

struct config {
    char *val[CFG_COUNT];
    double num[CFG_COUNT];
    enum cfg_source src[CFG_COUNT];
    char *env_path;
    char **retired;        /* values replaced by config_set, freed with the config */
    size_t nretired;
};

const char *config_name(enum cfg_id id) { return defs[id].name; }
/* Values are read without a lock while config_set may replace one from another thread:
 * pointers are loaded and stored atomically and a replaced string is only freed with the
 * config, so a reader's pointer stays valid. */
static const char *val(const config *c, enum cfg_id id)
{
    return __atomic_load_n(&c->val[id], __ATOMIC_ACQUIRE);
}
static double num(const config *c, enum cfg_id id)
{
    double d;
    __atomic_load(&c->num[id], &d, __ATOMIC_ACQUIRE);
    return d;
}
const char *config_str(const config *c, enum cfg_id id) { return val(c, id); }
long config_int(const config *c, enum cfg_id id) { return val(c, id) ? (long)num(c, id) : 0; }
double config_num(const config *c, enum cfg_id id) { return val(c, id) ? num(c, id) : NAN; }
int config_bool(const config *c, enum cfg_id id) { return val(c, id) && num(c, id) != 0; }
int config_isset(const config *c, enum cfg_id id) { return val(c, id) != NULL; }
enum cfg_source config_source(const config *c, enum cfg_id id) { return c->src[id]; }
const char *config_env_path(const config *c) { return c->env_path; }

static int find_id(const char *name)
{
    for (int i = 0; i < CFG_COUNT; i++)
        if (strcmp(defs[i].name, name) == 0) return i;
    return -1;
}

/* "--data-dir" -> "DATA_DIR"; returns -1 when unknown */
static int flag_to_id(const char *flag)
{
    char name[64];
    size_t n = strlen(flag);
    if (n == 0 || n >= sizeof name) return -1;
    for (size_t i = 0; i <= n; i++)
        name[i] = flag[i] == '-' ? '_' : (char)toupper((unsigned char)flag[i]);
    return find_id(name);
}

static void flag_name(enum cfg_id id, char *out, size_t n)
{
    size_t i = 0;
    for (const char *p = defs[id].name; *p && i + 1 < n; p++)
        out[i++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
    out[i] = '\0';
}

static void set_raw(config *c, int id, const char *v, enum cfg_source src)
{
    free(c->val[id]);
    c->val[id] = v ? xstrdup(v) : NULL;
    c->src[id] = src;
}

void config_set(config *c, enum cfg_id id, const char *value)
{
    static pthread_mutex_t set_lock = PTHREAD_MUTEX_INITIALIZER;
    char *nv = value && *value ? xstrdup(value) : NULL;
    double d = 0;
    if (nv && (defs[id].type == CFG_T_NUM || defs[id].type == CFG_T_INT || defs[id].type == CFG_T_BOOL))
        parse_double(nv, &d);
    pthread_mutex_lock(&set_lock);
    char *old = c->val[id];
    if (old) {
        c->retired = xrealloc(c->retired, (c->nretired + 1) * sizeof *c->retired);
        c->retired[c->nretired++] = old;
    }
    __atomic_store(&c->num[id], &d, __ATOMIC_RELEASE);
    __atomic_store_n(&c->val[id], nv, __ATOMIC_RELEASE);
    c->src[id] = CFG_SRC_FLAG;
    pthread_mutex_unlock(&set_lock);
}

static int validate(config *c, int id, char *err, size_t errlen)
{
    const struct cfg_def *d = &defs[id];
    const char *v = c->val[id];
    if (!v) return 0;
    if (*v == '\0' && d->def == NULL) { /* empty = unset, for optional settings */
        SAFE_FREE(c->val[id]);
        return 0;
    }
    switch (d->type) {
    case CFG_T_STR:
    case CFG_T_SECRET:
        if (*v == '\0') { snprintf(err, errlen, "%s must not be empty", d->name); return -1; }
        return 0;
    case CFG_T_INT: {
        long l;
        if (parse_long(v, &l) != 0 || l < d->min || l > d->max) {
            snprintf(err, errlen, "%s: invalid value '%s' (expected an integer from %.0f to %.0f)",
                     d->name, v, d->min, d->max);
            return -1;
        }
        c->num[id] = (double)l;
        return 0;
    }
    case CFG_T_NUM: {
        double x;
        if (parse_double(v, &x) != 0 || x < d->min || x > d->max) {
            snprintf(err, errlen, "%s: invalid value '%s' (expected a number from %g to %g)",
                     d->name, v, d->min, d->max);
            return -1;
        }
        c->num[id] = x;
        return 0;
    }
    case CFG_T_BOOL: {
        static const char *t[] = {"1", "true", "yes", "on"}, *f[] = {"0", "false", "no", "off"};
        for (size_t i = 0; i < ARRAY_LEN(t); i++) {
            if (strcasecmp(v, t[i]) == 0) { c->num[id] = 1; return 0; }
            if (strcasecmp(v, f[i]) == 0) { c->num[id] = 0; return 0; }
        }
        snprintf(err, errlen, "%s: invalid value '%s' (expected 1 or 0)", d->name, v);
        return -1;
    }
    case CFG_T_ENUM: {
        size_t n = strlen(v);
        for (const char *p = d->choices; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && strncmp(p, v, n) == 0) return 0;
            p = bar ? bar + 1 : p + len;
        }
        snprintf(err, errlen, "%s: invalid value '%s' (expected one of %s)", d->name, v, d->choices);
        return -1;
    }
    }
    return 0;
}

/* ---- .env parsing ---------------------------------------------------------------------- */

/* Parse one .env line. Returns 1 with *key and *value (heap) set for an assignment, 0 for a
 * blank/comment line, -1 for a malformed line. */
static int env_parse_line(const char *line, char **key, char **value)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '#' || *p == '\n' || *p == '\r') return 0;
    if (strncmp(p, "export ", 7) == 0) p += 7;
    while (*p == ' ' || *p == '\t') p++;
    const char *k = p;
    while (isalnum((unsigned char)*p) || *p == '_') p++;
    if (p == k) return -1;
    const char *kend = p;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != '=') return -1;
    p++;
    while (*p == ' ' || *p == '\t') p++;
    buf v;
    buf_init(&v, 0);
    int ok = 1;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        while (*p && *p != q) {
            char ch = *p++;
            if (q == '"' && ch == '\\' && *p) {
                ch = *p++;
                if (ch == 'n') ch = '\n';
            }
            ok &= buf_append(&v, &ch, 1) == 0;
        }
        if (*p != q) { buf_release(&v); return -1; }
    } else {
        const char *e = p + strcspn(p, "\r\n");
        /* an unquoted value ends at " #" (inline comment) */
        for (const char *h = p; h < e; h++)
            if (*h == '#' && h > p && (h[-1] == ' ' || h[-1] == '\t')) { e = h; break; }
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        ok &= buf_append(&v, p, (size_t)(e - p)) == 0;
    }
    if (!ok) { buf_release(&v); return -1; }
    *key = xstrndup(k, (size_t)(kend - k));
    *value = buf_take(&v);
    return 1;
}

static int load_env_file(config *c, const char *path, int required, char *err, size_t errlen)
{
    char *text = read_file(path, 1 << 20, NULL);
    if (!text) {
        if (errno == ENOENT && !required) return 0;
        snprintf(err, errlen, "cannot read env file '%s': %s", path, strerror(errno));
        return -1;
    }
    int lineno = 0, rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *k = NULL, *v = NULL;
        int r = env_parse_line(line, &k, &v);
        if (r < 0) {
            snprintf(err, errlen, "%s:%d: malformed line (expected KEY=VALUE)", path, lineno);
            rc = -1;
            break;
        }
        if (r > 0) {
            int id = find_id(k);
            if (id >= 0) set_raw(c, id, v, CFG_SRC_ENVFILE);
            free(k);
            free(v);
        }
    }
    free(text);
    return rc;
}

static void load_key_file(config *c)
{
    const char *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME");
    char *paths[2] = {NULL, NULL};
    if (xdg && *xdg) paths[0] = xasprintf("%s/vastai/vast_api_key", xdg);
    else if (home && *home) paths[0] = xasprintf("%s/.config/vastai/vast_api_key", home);
    if (home && *home) paths[1] = xasprintf("%s/.vast_api_key", home);
    for (int i = 0; i < 2; i++) {
        if (!paths[i] || c->val[CFG_VAST_API_KEY]) continue;
        char *s = read_file(paths[i], 4096, NULL);
        if (!s) continue;
        s[strcspn(s, "\r\n")] = '\0';
        char *t = s;
        while (isspace((unsigned char)*t)) t++;
        size_t n = strlen(t);
        while (n && isspace((unsigned char)t[n - 1])) t[--n] = '\0';
        if (*t) set_raw(c, CFG_VAST_API_KEY, t, CFG_SRC_KEYFILE);
        free(s);
    }
    free(paths[0]);
    free(paths[1]);
}

config *config_load(int argc, char **argv, char ***rest, char *err, size_t errlen)
{
    config *c = xcalloc(1, sizeof *c);
    char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    const char *env_file = NULL;
    err[0] = '\0';

    for (int i = 0; i < CFG_COUNT; i++) set_raw(c, i, defs[i].def, CFG_SRC_DEFAULT);
    load_key_file(c);

    /* first pass over flags: find --env-file (it decides what the .env layer is) */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc) env_file = argv[i + 1];
        else if (strncmp(argv[i], "--env-file=", 11) == 0) env_file = argv[i] + 11;
    }
    c->env_path = xstrdup(env_file ? env_file : ".env");
    if (load_env_file(c, c->env_path, env_file != NULL, err, errlen) != 0) goto fail;

    for (int i = 0; i < CFG_COUNT; i++) {
        const char *v = getenv(defs[i].name);
        if (v) set_raw(c, i, v, CFG_SRC_ENV);
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (++i < argc) pos[npos++] = argv[i];
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            pos[npos++] = argv[i];
            continue;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen >= sizeof name) nlen = sizeof name - 1;
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        const char *val = eq ? eq + 1 : NULL;
        if (strcmp(name, "env-file") == 0) {
            if (!val) i++;
            continue;
        }
        int id = flag_to_id(name);
        if (id < 0) {
            /* not a config option: leave it to the command (e.g. --json, --format) */
            pos[npos++] = argv[i];
            continue;
        }
        if (defs[id].type == CFG_T_SECRET) {
            snprintf(err, errlen, "--%s: secrets are not accepted on the command line "
                     "(they would show in the process list); set %s in the environment or .env",
                     name, defs[id].name);
            goto fail;
        }
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s needs a value", name);
                goto fail;
            }
            val = argv[++i];
        }
        set_raw(c, id, val, CFG_SRC_FLAG);
    }

    for (int i = 0; i < CFG_COUNT; i++)
        if (validate(c, i, err, errlen) != 0) goto fail;

    if (!c->val[CFG_DATA_DIR]) {
        const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
        char *d = xdg && *xdg ? xasprintf("%s/gpuscribe", xdg)
                  : xasprintf("%s/.local/share/gpuscribe", home && *home ? home : ".");
        set_raw(c, CFG_DATA_DIR, d, CFG_SRC_DEFAULT);
        free(d);
    }
    if (!c->val[CFG_WEB_DIR]) set_raw(c, CFG_WEB_DIR, config_default_web_dir(), CFG_SRC_DEFAULT);

    for (int i = 0; i < CFG_COUNT; i++)
        if (defs[i].type == CFG_T_SECRET && c->val[i]) log_add_secret(c->val[i]);

    if (rest) *rest = pos;
    else free(pos);
    return c;
fail:
    free(pos);
    config_free(c);
    if (rest) *rest = NULL;
    return NULL;
}

void config_free(config *c)
{
    if (!c) return;
    for (int i = 0; i < CFG_COUNT; i++) free(c->val[i]);
    for (size_t i = 0; i < c->nretired; i++) free(c->retired[i]);
    free(c->retired);
    free(c->env_path);
    free(c);
}

const char *config_pick_web_dir(const char *src_web, const char *installed_web)
{
    struct stat st;
    return stat(src_web, &st) == 0 && S_ISDIR(st.st_mode) ? src_web : installed_web;
}

const char *config_default_web_dir(void)
{
    return config_pick_web_dir(GS_SRCDIR "/web", GS_SHAREDIR "/web");
}

static void help_left(enum cfg_id id, char *left, size_t n)
{
    char flag[64];
    flag_name(id, flag, sizeof flag);
    if (defs[id].type == CFG_T_SECRET) snprintf(left, n, "%s", defs[id].name);
    else snprintf(left, n, "--%s, %s", flag, defs[id].name);
}

void config_print_help(FILE *out)
{
    int w = (int)strlen("--env-file PATH");
    char left[96];
    for (int i = 0; i < CFG_COUNT; i++) {
        help_left((enum cfg_id)i, left, sizeof left);
        if ((int)strlen(left) > w) w = (int)strlen(left);
    }
    fprintf(out, "Options (flag, or the variable in the environment or .env; defaults in brackets):\n");
    for (int i = 0; i < CFG_COUNT; i++) {
        help_left((enum cfg_id)i, left, sizeof left);
        fprintf(out, "  %-*s  %s", w, left, defs[i].help);
        if (defs[i].type == CFG_T_SECRET) fprintf(out, " (env/.env only)");
        else if (defs[i].type == CFG_T_ENUM) fprintf(out, " {%s} [%s]", defs[i].choices, defs[i].def);
        else if (defs[i].def) fprintf(out, " [%s]", defs[i].def);
        fputc('\n', out);
    }
    fprintf(out, "  %-*s  %s\n", w, "--env-file PATH", "read settings from PATH instead of ./.env");
}

/* roff text: a leading '.' or '\'' would be a request, a backslash an escape, '-' a hyphen */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'') fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", out);
        else if (*s == '-') fputs("\\-", out);
        else fputc(*s, out);
    }
}

void config_print_man_options(FILE *out)
{
    char flag[64];
    for (int i = 0; i < CFG_COUNT; i++) {
        flag_name((enum cfg_id)i, flag, sizeof flag);
        fputs(".TP\n", out);
        if (defs[i].type == CFG_T_SECRET) {
            fprintf(out, ".B %s\n", defs[i].name);
        } else {
            fputs(".BR \"", out);
            roff_text(out, "--");
            roff_text(out, flag);
            fprintf(out, "\" \" \\fIVALUE\\fR, \" %s\n", defs[i].name);
        }
        roff_text(out, defs[i].help);
        if (i == CFG_WEB_DIR) roff_text(out, " (" GS_SHAREDIR "/web)");
        if (defs[i].type == CFG_T_SECRET) {
            fputs(".\nEnvironment or env file only: secrets are not accepted as flags.\n", out);
        } else if (defs[i].type == CFG_T_ENUM) {
            fputs(": one of ", out);
            roff_text(out, defs[i].choices);
            fputs(" (default: ", out);
            roff_text(out, defs[i].def);
            fputs(").\n", out);
        } else if (defs[i].def) {
            fputs(" (default: ", out);
            roff_text(out, defs[i].def);
            fputs(").\n", out);
        } else {
            fputs(".\n", out);
        }
    }
    fputs(".TP\n.BI \"\\-\\-env\\-file \" PATH\nRead settings from PATH instead of ./.env "
          "(PATH must then be readable).\n", out);
}

void config_print_flags(FILE *out)
{
    char flag[64];
    for (int i = 0; i < CFG_COUNT; i++) {
        if (defs[i].type == CFG_T_SECRET) continue;
        flag_name((enum cfg_id)i, flag, sizeof flag);
        fprintf(out, "--%s ", flag);
    }
    fputs("--env-file", out);
}

json_t *config_dump_json(const config *c)
{
    json_t *o = json_object();
    for (int i = 0; i < CFG_COUNT; i++) {
        json_t *v;
        enum cfg_id id = (enum cfg_id)i;
        const char *sv = val(c, id);
        if (defs[i].type == CFG_T_SECRET) v = json_boolean(sv != NULL);
        else if (!sv) v = json_null();
        else if (defs[i].type == CFG_T_INT) v = json_integer((json_int_t)num(c, id));
        else if (defs[i].type == CFG_T_NUM) v = json_real(num(c, id));
        else if (defs[i].type == CFG_T_BOOL) v = json_boolean(num(c, id) != 0);
        else v = json_string(sv);
        json_object_set_new(o, defs[i].name, v);
    }
    return o;
}

/* ---- .env rewriting -------------------------------------------------------------------- */

static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;

static int needs_quotes(const char *v)
{
    if (!*v) return 0;
    for (const char *p = v; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("-_./:@+,", *p))) return 1;
    return 0;
}

int config_env_set(const char *path, const char *key, const char *value, char *err, size_t errlen)
{
    for (const char *p = key; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_')) {
            snprintf(err, errlen, "invalid key '%s'", key);
            return -1;
        }
    pthread_mutex_lock(&env_lock);
    int rc = -1;
    char *old = NULL, *newline = NULL;
    buf nb;
    buf_init(&nb, 0);
    /* edit what the path names: a symlink (or chain) stays, its target is rewritten */
    char *target = resolve_symlinks(path);
    char what[PATH_MAX + 64];
    if (target && strcmp(target, path) != 0)
        snprintf(what, sizeof what, "env file %s (a symlink to %s)", path, target);
    else
        snprintf(what, sizeof what, "env file %s", path);
    if (!target) {
        snprintf(err, errlen, "cannot resolve %s: %s", what, strerror(errno));
        goto out;
    }
    struct stat st;
    int exists = 1;
    if (lstat(target, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot stat %s: %s", what, strerror(errno));
            goto out;
        }
        exists = 0;
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is %s: not editing it", what, file_kind(st.st_mode));
        goto out;
    }
    if (exists) {
        /* O_NOFOLLOW|O_NONBLOCK: what was checked above may have been swapped since; a fifo
         * must not block here and a link must not be followed */
        int fd = open(target, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "cannot read %s: %s", what, strerror(errno));
            goto out;
        }
        struct stat fst;
        if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_ino != st.st_ino ||
            fst.st_dev != st.st_dev) {
            close(fd);
            snprintf(err, errlen, "%s changed while being read: not editing it", what);
            goto out;
        }
        old = read_fd(fd, 1 << 20, NULL);
        int e = errno;
        close(fd);
        if (!old) {
            snprintf(err, errlen, "cannot read %s: %s", what, strerror(e));
            goto out;
        }
    }
    if (value) {
        buf q;
        buf_init(&q, 0);
        if (needs_quotes(value)) {
            int ok = buf_append(&q, "\"", 1) == 0;
            for (const char *p = value; *p; p++) {
                if (*p == '"' || *p == '\\') ok &= buf_append(&q, "\\", 1) == 0;
                if (*p == '\n') ok &= buf_append(&q, "\\n", 2) == 0;
                else ok &= buf_append(&q, p, 1) == 0;
            }
            ok &= buf_append(&q, "\"", 1) == 0;
            (void)ok;
        } else if (buf_append(&q, value, strlen(value)) != 0) {
            buf_release(&q);
        }
        newline = xasprintf("%s=%s\n", key, q.data ? q.data : "");
        buf_release(&q);
    }
    int placed = 0;
    const char *p = old ? old : "";
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        char *line = xstrndup(p, n);
        char *k = NULL, *v = NULL;
        int r = env_parse_line(line, &k, &v);
        int match = r > 0 && strcmp(k, key) == 0;
        if (match) {
            if (newline && !placed) { (void)!buf_append(&nb, newline, strlen(newline)); placed = 1; }
        } else {
            (void)!buf_append(&nb, line, n);
            if (!e) (void)!buf_append(&nb, "\n", 1);
        }
        free(k);
        free(v);
        free(line);
        p += n;
    }
    if (newline && !placed) (void)!buf_append(&nb, newline, strlen(newline));
    /* keep the file's mode and owner; a new file is 0600 (it may hold secrets) */
    unsigned mode = exists ? (unsigned)(st.st_mode & 07777) : 0600;
    long long uid = exists ? (long long)st.st_uid : -1, gid = exists ? (long long)st.st_gid : -1;
    if (write_file_replace(target, nb.data ? nb.data : "", nb.len, mode, uid, gid) != 0) {
        int e = errno;
        if (e == EISDIR || e == EINVAL)
            snprintf(err, errlen, "%s is no longer a regular file: not editing it", what);
        else if (e == EPERM && exists)
            snprintf(err, errlen, "cannot write %s keeping its owner (uid %lld, gid %lld): %s",
                     what, uid, gid, strerror(e));
        else
            snprintf(err, errlen, "cannot write %s: %s", what, strerror(e));
    } else {
        rc = 0;
    }
out:
    buf_release(&nb);
    free(newline);
    free(old);
    free(target);
    pthread_mutex_unlock(&env_lock);
    return rc;
}

int config_host_is_loopback(const char *host)
{
    if (!host) return 0;
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}
