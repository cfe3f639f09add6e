/* config: every setting of gpuscribe, from one declarative table (CONFIG_TABLE below).
 *
 * Precedence, lowest first: built-in default < Vast CLI key file (VAST_API_KEY only:
 * $XDG_CONFIG_HOME/vastai/vast_api_key, ~/.vast_api_key) < the .env file (./.env, or
 * --env-file PATH) < the process environment < command-line flags (--name-with-dashes VALUE
 * or --name=VALUE). Secrets cannot be given as flags (they would show in process arguments).
 * config_load validates every value and reports the first bad one naming the option. The
 * same table drives --help (config_print_help), the redacted JSON dump and .env rewriting.
 * A loaded config is read-only and may be shared by all threads; config_env_set is the only
 * writer (of the file) and is serialised internally.
 */
#ifndef GS_CONFIG_H
#define GS_CONFIG_H

#include <stdio.h>

struct json_t;

enum cfg_type { CFG_T_STR, CFG_T_SECRET, CFG_T_INT, CFG_T_NUM, CFG_T_BOOL, CFG_T_ENUM };

/* X(id, type, default, min, max, choices, help) ; min/max apply to INT/NUM, choices to ENUM
 * ("a|b|c"). A default of NULL means unset. */
#define CONFIG_TABLE(X)                                                                        \
    X(HOST, CFG_T_STR, "127.0.0.1", 0, 0, NULL, "address to listen on (non-loopback needs API_TOKEN)") \
    X(PORT, CFG_T_INT, "8000", 0, 65535, NULL, "TCP port to listen on (0 = any free port)")   \
    X(DATA_DIR, CFG_T_STR, NULL, 0, 0, NULL,                                                   \
      "state directory (SQLite store, uploads, SSH key); default $XDG_DATA_HOME/gpuscribe")    \
    X(WEB_DIR, CFG_T_STR, NULL, 0, 0, NULL,                                                    \
      "static web UI directory; default the source tree's web/, else the installed one")      \
    X(VAST_API_KEY, CFG_T_SECRET, NULL, 0, 0, NULL,                                            \
      "Vast.ai API key (also read from the vast CLI's key file)")                              \
    X(VAST_URL, CFG_T_STR, "https://console.vast.ai", 0, 0, NULL, "Vast.ai API base URL")     \
    X(VAST_TIMEOUT_SECONDS, CFG_T_INT, "60", 1, 600, NULL,                                     \
      "how long one Vast.ai API call may take (searches retry up to 4 times)")                 \
    X(VAST_INSTANCE_ID, CFG_T_STR, NULL, 0, 0, NULL, "Vast.ai instance to auto-connect to")   \
    X(VAST_IMAGE, CFG_T_STR, "ghcr.io/ggml-org/whisper.cpp:main-cuda", 0, 0, NULL,             \
      "container image a boot rents")                                                          \
    X(VAST_DISK_GB, CFG_T_INT, "40", 8, 2048, NULL, "disk size (GB) a boot rents")            \
    X(VAST_IMAGE_MIN_CUDA, CFG_T_NUM, NULL, 0, 100, NULL,                                      \
      "lowest host CUDA (cuda_max_good) VAST_IMAGE runs on; default from the image table "    \
      "(main-cuda: 13.0, unknown images: none); 0: none")                                     \
    X(ENGINE, CFG_T_ENUM, "auto", 0, 0, "auto|whisper|parakeet|sphinx", "speech engine on workers") \
    X(WHISPER_MODEL, CFG_T_STR, "large-v3", 0, 0, NULL, "whisper model name")                  \
    X(MODELS_PRELOAD, CFG_T_STR, NULL, 0, 0, NULL, "more models setup fetches (comma-separated)") \
    X(VAD, CFG_T_ENUM, "auto", 0, 0, "auto|on|off", "Silero VAD in whisper (auto: when its model is there)") \
    X(GPU_ONLY, CFG_T_BOOL, "0", 0, 0, NULL, "1: never fall back to CPU or the OpenAI API")   \
    X(HF_TOKEN, CFG_T_SECRET, NULL, 0, 0, NULL, "Hugging Face token for instances")            \
    X(OPENAI_API_KEY, CFG_T_SECRET, NULL, 0, 0, NULL, "OpenAI API key (optional fallback)")    \
    X(OPENAI_BASE_URL, CFG_T_STR, "https://api.openai.com/v1", 0, 0, NULL, "OpenAI API base")  \
    X(API_TOKEN, CFG_T_SECRET, NULL, 0, 0, NULL, "Bearer token required on /api and /v1")     \
    X(METRICS_TOKEN, CFG_T_SECRET, NULL, 0, 0, NULL,                                           \
      "Bearer token GET /metrics accepts (besides API_TOKEN); when set, /metrics needs one")   \
    X(MAX_UPLOAD_MB, CFG_T_INT, "2048", 1, 1048576, NULL, "largest accepted upload (MB)")     \
    X(MAX_AUDIO_HOURS, CFG_T_NUM, "12", 0.01, 24, NULL, "longest accepted audio (hours)")   \
    X(WORKER_URL, CFG_T_STR, NULL, 0, 0, NULL,                                                 \
      "a gpuscribe worker of your own to send jobs to (e.g. http://127.0.0.1:8765 via ssh -L)") \
    X(JOBS_CONCURRENCY, CFG_T_INT, "1", 1, 16, NULL, "jobs run at once on local engines")     \
    X(CHUNK_MINUTES, CFG_T_NUM, "10", 1, 60, NULL,                                             \
      "audio longer than this is cut at pauses into chunks run in parallel (minutes)")         \
    X(IDLE_DESTROY_MINUTES, CFG_T_NUM, "15", 0, 1e6, NULL, "destroy an idle instance after")   \
    X(IDLE_WARN_MINUTES, CFG_T_NUM, "5", 0, 1e6, NULL, "warn this long before a destroy")      \
    X(AUTO_DESTROY_AFTER_HOURS, CFG_T_NUM, NULL, 0, 1e6, NULL, "hard cap on instance uptime") \
    X(BUDGET_DAILY_USD, CFG_T_NUM, NULL, 0, 1e9, NULL, "daily spending limit")                \
    X(BUDGET_MONTHLY_USD, CFG_T_NUM, NULL, 0, 1e9, NULL, "monthly spending limit")            \
    X(BUDGET_TOTAL_USD, CFG_T_NUM, NULL, 0, 1e9, NULL, "all-time spending limit")             \
    X(DESTROY_ORPHANS, CFG_T_BOOL, "0", 0, 0, NULL, "1: destroy labelled instances the store does not know") \
    X(DEADMAN_MINUTES, CFG_T_NUM, "30", 0, 1e6, NULL, "worker self-destroy delay without controller") \
    X(SSH_WAIT_MINUTES, CFG_T_NUM, "3", 0.01, 1440, NULL, "how long a new instance may take to answer SSH") \
    X(MAX_INSTANCES, CFG_T_INT, "1", 1, 64, NULL,                                              \
      "most instances at once; above 1, the backlog boots more GPUs (autoscaling)")           \
    X(SCALE_UP_WAIT_MINUTES, CFG_T_NUM, "10", 0, 1440, NULL,                                   \
      "autoscaling boots a GPU while the backlog's estimated wait is longer than this")       \
    X(BAD_HOST_HOURS, CFG_T_NUM, "24", 0, 8760, NULL,                                          \
      "hide a host whose instance failed or vanished this long (0: never)")                  \
    X(WORKER_SLOTS, CFG_T_INT, "1", 1, 64, NULL, "jobs a worker runs at once on one loaded model") \
    X(WORKER_PORT, CFG_T_INT, "8765", 1, 65535, NULL, "port of the worker API inside instances (loopback)") \
    X(LOG_LEVEL, CFG_T_ENUM, "info", 0, 0, "error|warn|info|debug", "log verbosity")

enum cfg_id {
#define X(id, ...) CFG_##id,
    CONFIG_TABLE(X)
#undef X
    CFG_COUNT
};

enum cfg_source { CFG_SRC_DEFAULT, CFG_SRC_KEYFILE, CFG_SRC_ENVFILE, CFG_SRC_ENV, CFG_SRC_FLAG };

typedef struct config config;

/* Parse the config for a command. argv holds only that command's flags (argv[0] is skipped).
 * Unknown flags, missing values, bad values: returns NULL and a message in err naming the
 * option. `--env-file PATH` chooses the .env file. Leftover positional arguments are
 * returned in *rest (heap array of borrowed argv pointers, NULL-terminated; may be NULL). */
config *config_load(int argc, char **argv, char ***rest, char *err, size_t errlen);
void config_free(config *c);

const char *config_str(const config *c, enum cfg_id id);   /* NULL when unset */
long config_int(const config *c, enum cfg_id id);
double config_num(const config *c, enum cfg_id id);          /* NAN when unset */
int config_bool(const config *c, enum cfg_id id);
int config_isset(const config *c, enum cfg_id id);
enum cfg_source config_source(const config *c, enum cfg_id id);
const char *config_name(enum cfg_id id);
const char *config_env_path(const config *c);
/* Change a value in memory (e.g. VAST_INSTANCE_ID after a boot). Safe against concurrent
 * readers: a string a reader got stays valid until config_free. */
void config_set(config *c, enum cfg_id id, const char *value);

/* Every option with its flag, default and meaning. */
void config_print_help(FILE *out);
/* The same options as roff (.TP paragraphs) for the OPTIONS section of gpuscribe(1). */
void config_print_man_options(FILE *out);
/* The options' flags (not the secrets': they are no flags) and --env-file, on one line,
 * separated by spaces, no newline: what the bash completion offers. */
void config_print_flags(FILE *out);
/* WEB_DIR's default: GS_SRCDIR/web when it is a directory (a development build, run from its
 * tree or not), else GS_SHAREDIR/web (an installed build: /usr/share/gpuscribe/web); that is
 * config_pick_web_dir(GS_SRCDIR "/web", GS_SHAREDIR "/web"), which returns one of its
 * arguments. */
const char *config_default_web_dir(void);
const char *config_pick_web_dir(const char *src_web, const char *installed_web);
/* The effective configuration as JSON; secrets show only whether they are set. */
struct json_t *config_dump_json(const config *c);

/* Set (value != NULL) or remove (value == NULL) KEY in the .env file at path, keeping every
 * other line and comment. 0 on success; else -1 with a message naming the path in err, the
 * file untouched (the caller logs it and goes on: the value is only not persisted).
 * - A symlink (or a chain of them, relative ones relative to the link) is followed: the link
 *   stays and its target is rewritten; a dangling link's target is created.
 * - Only a regular file is edited: a device (--env-file /dev/null), fifo, socket or directory
 *   is refused ("... is a character device: not editing it") and never written or replaced.
 * - Atomic: a new temp file beside the target (unpredictable name, O_EXCL|O_NOFOLLOW), the
 *   target's mode and owner (a new file: 0600, ours), fsync, rename, fsync the directory.
 * Thread-safe: serialised by a mutex of its own (env_lock in config.c), taken after any lock
 * the caller holds (vastctl calls it under its own lock); it does blocking file I/O (fsync),
 * so it belongs off latency-sensitive threads. */
int config_env_set(const char *path, const char *key, const char *value, char *err, size_t errlen);

/* True when host is a loopback address or name (127.0.0.0/8, ::1, localhost). */
int config_host_is_loopback(const char *host);

#endif
