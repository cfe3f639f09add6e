#include "api/api.h"
#include "api/upload.h"
#include "core/util.h"

#define GPU_STATUS_SCHEMA                                                                    \
    "{\"responses\":{\"200\":{\"description\":\"GPU availability\",\"content\":{"            \
    "\"application/json\":{\"schema\":{\"type\":\"object\",\"required\":[\"available\","     \
    "\"type\",\"cuda_available\",\"vast_instance\",\"message\"],\"properties\":{"            \
    "\"available\":{\"type\":\"boolean\"},\"type\":{\"type\":\"string\",\"enum\":[\"local\"," \
    "\"vast\",\"none\"]},\"cuda_available\":{\"type\":\"boolean\"},\"vast_instance\":{"      \
    "\"type\":\"string\",\"nullable\":true},\"message\":{\"type\":\"string\"}}}}}}}}"

#define JSON_BODY(schema) \
    "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{\"schema\":" schema "}}}"
#define JSON_RESP(code, desc, schema) \
    "\"" code "\":{\"description\":\"" desc "\",\"content\":{\"application/json\":{\"schema\":" \
    schema "}}}"
#define ERR_SCHEMA \
    "{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{\"error\":{\"type\":" \
    "\"string\"},\"kind\":{\"type\":\"string\"},\"success\":{\"type\":\"boolean\"}}}"
#define VAST_ERRS                                                                            \
    JSON_RESP("400", "invalid input (the message names the field)", ERR_SCHEMA) ","            \
    JSON_RESP("502", "Vast.ai rejected the API key, or could not be reached", ERR_SCHEMA) ","  \
    JSON_RESP("503", "no VAST_API_KEY configured, or Vast.ai rate limit", ERR_SCHEMA)
#define NUM "{\"type\":\"number\",\"minimum\":0}"

#define OFFER_SCHEMA                                                                         \
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"gpu_name\":"     \
    "{\"type\":\"string\"},\"num_gpus\":{\"type\":\"integer\"},\"gpu_ram\":" NUM          \
    ",\"dph_total\":" NUM ",\"reliability2\":" NUM ",\"disk_space\":" NUM                \
    ",\"inet_down\":" NUM ",\"inet_up\":" NUM ",\"cuda_max_good\":" NUM                   \
    ",\"compute_cap\":{\"type\":\"integer\"},\"geolocation\":{\"type\":\"string\"}}}"

#define VAST_SEARCH_SCHEMA                                                                   \
    "{" JSON_BODY("{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"     \
    "\"gpu_ram_min\":" NUM ",\"max_price\":" NUM ",\"min_reliability\":{\"type\":\"number\","  \
    "\"minimum\":0,\"maximum\":1},\"min_cuda\":" NUM ",\"min_disk\":" NUM ",\"min_inet_down\":" \
    NUM ",\"num_gpus\":{\"type\":\"integer\",\"minimum\":0},\"gpu_name\":{\"type\":\"string\"}," \
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":20},"          \
    "\"type\":{\"type\":\"string\",\"enum\":[\"on-demand\",\"interruptible\",\"reserved\"]},"   \
    "\"include_unverified\":{\"type\":\"boolean\"},\"disk\":" NUM ",\"min_compute_cap\":{"   \
    "\"type\":\"integer\",\"minimum\":0,\"description\":\"compute capability x 100\"},"       \
    "\"explain\":{\"type\":\"boolean\",\"description\":\"also list, as excluded, the offers "  \
    "the image's requirements leave out, each with its reason\"},\"sort\":{\"type\":"       \
    "\"string\",\"enum\":[\"dph_total\",\"cost_per_audio_hour\"],\"default\":\"dph_total\","  \
    "\"description\":\"cost_per_audio_hour: price over measured speed, boot time spread over "  \
    "the backlog\"}}}") ",\"responses\":{"                                                   \
    JSON_RESP("200", "offers whose hosts can run VAST_IMAGE (requirements), cheapest "       \
              "(dph_total) first; gpu_ram in GB, prices in $/h",                              \
              "{\"type\":\"object\",\"properties\":{\"offers\":{\"type\":\"array\",\"items\":" \
              OFFER_SCHEMA "},\"requirements\":{\"type\":\"object\",\"properties\":{"          \
              "\"image\":{\"type\":\"string\"},\"known\":{\"type\":\"boolean\"},\"min_cuda\":"  \
              NUM ",\"min_compute_cap\":{\"type\":\"integer\"},\"min_disk_gb\":" NUM              \
              ",\"model\":{\"type\":\"string\"},\"model_gb\":" NUM ",\"image_gb\":" NUM          \
              ",\"cuda_source\":{\"type\":\"string\",\"nullable\":true}}},\"excluded\":{"       \
              "\"type\":\"array\",\"description\":\"with explain: offers the image cannot run "    \
              "on\",\"items\":{\"allOf\":[" OFFER_SCHEMA ",{\"type\":\"object\",\"properties\":{" \
              "\"reason\":{\"type\":\"string\"},\"reasons\":{\"type\":\"array\",\"items\":{"    \
              "\"type\":\"string\"}}}}]}},\"explain_error\":{\"type\":\"string\"}}}")         \
    "," VAST_ERRS "}}"

#define VAST_BOOT_SCHEMA                                                                     \
    "{\"parameters\":[{\"name\":\"Idempotency-Key\",\"in\":\"header\",\"required\":false,"    \
    "\"schema\":{\"type\":\"string\",\"maxLength\":200},\"description\":\"one rental per key; " \
    "without it a repeat for the same offer within 10 minutes returns the same instance\"}],"  \
    JSON_BODY("{\"type\":\"object\",\"required\":[\"offer_id\"],\"properties\":{\"offer_id\":" \
              "{\"type\":\"integer\",\"minimum\":1}}}") ",\"responses\":{"                     \
    JSON_RESP("200", "instance created (or the one an identical earlier request created)",     \
              "{\"type\":\"object\",\"properties\":{\"success\":{\"type\":\"boolean\"},"        \
              "\"instance_id\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"},"        \
              "\"offer_id\":{\"type\":\"integer\"},\"label\":{\"type\":\"string\"},"            \
              "\"reused\":{\"type\":\"boolean\"}}}") ","                                        \
    JSON_RESP("409", "the offer is no longer available (search again), or its host cannot "  \
              "run VAST_IMAGE (kind image_mismatch; nothing was rented)", ERR_SCHEMA) ","     \
    VAST_ERRS "}}"

#define COST_SUMMARY                                                                         \
    "{\"type\":\"object\",\"properties\":{\"uptime_s\":" NUM ",\"running_s\":" NUM               \
    ",\"cost_usd\":" NUM ",\"gpu_cost\":" NUM ",\"storage_cost\":" NUM ",\"jobs\":{\"type\":"     \
    "\"integer\"},\"audio_hours\":" NUM "}}"
#define VAST_DESTROY_SCHEMA                                                                  \
    "{\"responses\":{"                                                                       \
    JSON_RESP("200", "destroyed, with what it cost", "{\"type\":\"object\",\"properties\":{"  \
              "\"success\":{\"type\":\"boolean\"},\"message\":{\"type\":\"string\"},\"cost\":"  \
              COST_SUMMARY "}}") ","                                                          \
    JSON_RESP("404", "no such instance on the account", ERR_SCHEMA) "," VAST_ERRS "}}"

#define VAST_KEEPALIVE_SCHEMA                                                                \
    "{\"responses\":{"                                                                       \
    JSON_RESP("200", "idle destroy postponed", "{\"type\":\"object\",\"properties\":{"         \
              "\"success\":{\"type\":\"boolean\"},\"message\":{\"type\":\"string\"},"           \
              "\"instance_id\":{\"type\":\"string\"},\"idle_destroy_at\":" NUM "}}") ","          \
    JSON_RESP("400", "the id is not a positive integer", ERR_SCHEMA) ","                       \
    JSON_RESP("404", "no live instance of gpuscribe's has this id", ERR_SCHEMA) "}}"

#define BUDGET_SCHEMA                                                                        \
    "{\"type\":\"object\",\"properties\":{\"limit\":{\"type\":\"number\",\"nullable\":true}," \
    "\"spent\":" NUM ",\"percent\":{\"type\":\"number\",\"nullable\":true},\"warning\":{"       \
    "\"type\":\"boolean\"},\"reached\":{\"type\":\"boolean\"}}}"
#define COST_SCHEMA                                                                          \
    "{\"responses\":{"                                                                       \
    JSON_RESP("200", "the cost ledger (Vast.ai bills GPU while running, storage while the "    \
              "instance exists, per second)",                                                \
              "{\"type\":\"object\",\"properties\":{\"instances\":{\"type\":\"array\",\"items\":{"  \
              "\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},\"label\":"          \
              "{\"type\":\"string\",\"nullable\":true},\"state\":{\"type\":\"string\"},\"running\":" \
              "{\"type\":\"boolean\"},\"uptime_s\":" NUM ",\"dph_total\":" NUM ",\"gpu_rate\":" NUM \
              ",\"storage_rate\":" NUM ",\"cost_usd\":" NUM ",\"started_at\":{\"type\":\"number\","  \
              "\"nullable\":true},\"destroyed_at\":{\"type\":\"number\",\"nullable\":true},"         \
              "\"destroy_reason\":{\"type\":\"string\",\"nullable\":true},\"orphan\":{\"type\":"    \
              "\"boolean\"},\"summary\":{\"type\":\"string\"},\"idle_destroy_at\":{\"type\":"       \
              "\"number\",\"nullable\":true},\"warning\":{\"type\":\"string\",\"nullable\":true}}}},"  \
              "\"totals\":{\"type\":\"object\",\"properties\":{\"today\":" NUM ",\"month\":" NUM      \
              ",\"all_time\":" NUM "}},\"cost_per_audio_hour\":" NUM ",\"audio_hours\":" NUM          \
              ",\"burn_rate_per_hour\":" NUM ",\"budgets\":{\"type\":\"object\",\"properties\":{"   \
              "\"daily\":" BUDGET_SCHEMA ",\"monthly\":" BUDGET_SCHEMA ",\"total\":" BUDGET_SCHEMA   \
              "}}}}") "}}"

#define VAST_INSTANCES_SCHEMA                                                                \
    "{\"responses\":{"                                                                       \
    JSON_RESP("200", "the account's instances merged with gpuscribe's own state",            \
              "{\"type\":\"object\",\"properties\":{\"vast_instance\":{\"type\":\"string\","    \
              "\"nullable\":true},\"instances\":{\"type\":\"array\",\"items\":{\"type\":"       \
              "\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"label\":{\"type\":"   \
              "\"string\",\"nullable\":true},\"actual_status\":{\"type\":\"string\","           \
              "\"nullable\":true},\"state\":{\"type\":\"string\",\"nullable\":true},"           \
              "\"gpu_name\":{\"type\":\"string\"},\"dph_total\":" NUM ",\"ssh_host\":{\"type\":" \
              "\"string\",\"nullable\":true},\"ssh_port\":{\"type\":\"integer\",\"nullable\":"   \
              "true},\"created_at\":{\"type\":\"number\",\"nullable\":true},\"ours\":{\"type\":" \
              "\"boolean\"},\"current\":{\"type\":\"boolean\"}}}}}}") "," VAST_ERRS "}}"

#define STR_N "{\"type\":\"string\",\"nullable\":true}"
#define VAST_INSTANCE_SCHEMA                                                                 \
    "{\"responses\":{"                                                                       \
    JSON_RESP("200", "provisioning state of one instance (also sent as the instance.state event)", \
              "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},\"row_id\":{" \
              "\"type\":\"integer\"},\"label\":" STR_N ",\"state\":{\"type\":\"string\","       \
              "\"enum\":[\"requested\",\"creating\",\"loading\",\"ssh_wait\",\"installing\","     \
              "\"starting_worker\",\"ready\",\"failed\",\"destroying\",\"destroyed\"]},"           \
              "\"stage\":{\"type\":\"string\"},\"percent\":{\"type\":\"integer\",\"minimum\":0," \
              "\"maximum\":100},\"error\":" STR_N ",\"log\":{\"type\":\"array\",\"items\":{"     \
              "\"type\":\"string\"},\"description\":\"last 50 setup lines\"},\"gpu_name\":" STR_N \
              ",\"num_gpus\":{\"type\":\"integer\",\"nullable\":true},\"dph_total\":{\"type\":"   \
              "\"number\",\"nullable\":true},\"ssh_host\":" STR_N ",\"ssh_port\":{\"type\":"       \
              "\"integer\",\"nullable\":true},\"created_at\":{\"type\":\"number\"},\"ready_at\":{" \
              "\"type\":\"number\",\"nullable\":true},\"worker\":{\"type\":\"object\","         \
              "\"nullable\":true,\"properties\":{\"engine\":" STR_N ",\"model\":" STR_N           \
              ",\"gpu\":" STR_N "}},\"tunnel\":{\"type\":\"object\",\"nullable\":true,"         \
              "\"properties\":{\"state\":{\"type\":\"string\",\"enum\":[\"connecting\",\"up\","   \
              "\"degraded\",\"reconnecting\",\"down\"]},\"rtt_ms\":{\"type\":\"number\"},"       \
              "\"last_error\":" STR_N ",\"reconnects\":{\"type\":\"integer\"}}}}}") ","           \
    JSON_RESP("400", "the id is not a positive integer", ERR_SCHEMA) ","                       \
    JSON_RESP("404", "gpuscribe has no record of this instance", ERR_SCHEMA) "}}"

#define UPLOAD_FIELDS                                                                        \
    "\"file\":{\"type\":\"string\",\"format\":\"binary\"},\"language\":{\"type\":\"string\"},"     \
    "\"prompt\":{\"type\":\"string\"},\"model\":{\"type\":\"string\"},\"temperature\":{"          \
    "\"type\":\"number\"},\"response_format\":{\"type\":\"string\",\"enum\":[\"json\",\"text\","    \
    "\"srt\",\"vtt\",\"verbose_json\",\"diarized_json\"]},\"timestamp_granularities[]\":{"          \
    "\"type\":\"string\"},\"diarize\":{\"type\":\"boolean\"},\"num_speakers\":{\"type\":"       \
    "\"integer\",\"minimum\":1,\"maximum\":16},\"min_speakers\":{\"type\":\"integer\"},"          \
    "\"max_speakers\":{\"type\":\"integer\"}"

#define JOB_CREATE_DOC                                                                       \
    "{\"requestBody\":{\"required\":true,\"content\":{\"multipart/form-data\":{\"schema\":{"     \
    "\"type\":\"object\",\"required\":[\"file\"],\"properties\":{" UPLOAD_FIELDS "}}},"           \
    "\"application/octet-stream\":{\"schema\":{\"type\":\"string\",\"format\":\"binary\"}}}},"     \
    "\"responses\":{\"202\":{\"description\":\"the queued job\"},\"400\":{\"description\":"      \
    "\"no file, bad options, or audio that cannot be decoded\"},\"413\":{\"description\":"           \
    "\"larger than MAX_UPLOAD_MB\"}}}"

#define JOB_LIST_DOC                                                                         \
    "{\"parameters\":[{\"name\":\"state\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"   \
    "{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":\"integer\"}},{\"name\":"        \
    "\"offset\",\"in\":\"query\",\"schema\":{\"type\":\"integer\"}}]}"

#define JOB_TRANSCRIPT_DOC                                                                   \
    "{\"parameters\":[{\"name\":\"format\",\"in\":\"query\",\"schema\":{\"type\":\"string\","   \
    "\"enum\":[\"json\",\"verbose_json\",\"diarized_json\",\"srt\",\"vtt\",\"txt\",\"text\"]}},{\"name\":" \
    "\"download\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],\"responses\":{\"409\":"  \
    "{\"description\":\"the job is not done\"}}}"

#define OPENAI_DOC                                                                           \
    "{\"requestBody\":{\"required\":true,\"content\":{\"multipart/form-data\":{\"schema\":{"     \
    "\"type\":\"object\",\"required\":[\"file\"],\"properties\":{" UPLOAD_FIELDS "}}}}},"         \
    "\"responses\":{\"200\":{\"description\":\"the transcript in response_format\"}}}"

#define JOB_PEAKS_DOC                                                                        \
    "{\"parameters\":[{\"name\":\"n\",\"in\":\"query\",\"schema\":{\"type\":\"integer\","   \
    "\"minimum\":16,\"maximum\":4000,\"default\":800},\"description\":\"(min, max) pairs across " \
    "the audio\"}],\"responses\":{"                                                          \
    JSON_RESP("200", "the waveform outline of the job's 16 kHz mono audio (cached beside it)", \
              "{\"type\":\"object\",\"properties\":{\"job_id\":{\"type\":\"string\"},\"n\":{" \
              "\"type\":\"integer\"},\"rate\":{\"type\":\"integer\"},\"samples\":{\"type\":"     \
              "\"integer\"},\"duration\":" NUM ",\"min\":{\"type\":\"array\",\"items\":{\"type\":"  \
              "\"integer\"}},\"max\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},"      \
              "\"cached\":{\"type\":\"boolean\"}}}") ","                                          \
    JSON_RESP("400", "n is not an integer from 16 to 4000", ERR_SCHEMA) ","                    \
    JSON_RESP("404", "no such job, or no audio for it", ERR_SCHEMA) "}}"

#define COST_HISTORY_DOC                                                                     \
    "{\"parameters\":[{\"name\":\"days\",\"in\":\"query\",\"schema\":{\"type\":\"integer\","  \
    "\"minimum\":1,\"maximum\":366,\"default\":14}}],\"responses\":{"                         \
    JSON_RESP("200", "spending per local day (oldest first) and per instance, from the ledger", \
              "{\"type\":\"object\",\"properties\":{\"days\":{\"type\":\"integer\"},\"per_day\":{" \
              "\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"date\":{\"type\":" \
              "\"string\"},\"start\":" NUM ",\"end\":" NUM ",\"total\":" NUM ",\"instances\":{"     \
              "\"type\":\"object\",\"additionalProperties\":" NUM "}}}},\"instances\":{\"type\":"      \
              "\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}," \
              "\"label\":{\"type\":\"string\",\"nullable\":true},\"total\":" NUM "}}},\"total\":" NUM \
              "}}") ","                                                                        \
    JSON_RESP("400", "days is not an integer from 1 to 366", ERR_SCHEMA) "}}"

const http_route api_routes[] = {
    {"GET", "/healthz", api_healthz, HTTP_ROUTE_PUBLIC, NULL, "meta", "liveness probe", NULL},
    {"GET", "/openapi.json", api_openapi, HTTP_ROUTE_PUBLIC, NULL, "meta",
     "this OpenAPI description", NULL},
    {"GET", "/docs", api_docs, HTTP_ROUTE_PUBLIC, NULL, "meta", "API documentation page", NULL},
    {"GET", "/metrics", api_metrics, HTTP_ROUTE_METRICS, NULL, "meta",
     "Prometheus metrics (text format 0.0.4): jobs, queue, audio and GPU seconds, retries, "
     "instances, tunnels, cost and budgets, Vast API calls, HTTP requests and latency; "
     "open on loopback without tokens, else Bearer API_TOKEN or METRICS_TOKEN",
     "{\"responses\":{\"200\":{\"description\":\"the metrics\",\"content\":{"
     "\"text/plain; version=0.0.4; charset=utf-8\":{\"schema\":{\"type\":\"string\"}}}},"
     "\"401\":{\"description\":\"a token is configured and was not sent\"}}}"},
    {"GET", "/api/gpu-status", api_gpu_status, 0, NULL, "gpu",
     "whether a GPU (local or Vast.ai) is available", GPU_STATUS_SCHEMA},
    {"GET", "/api/config", api_config, 0, NULL, "meta",
     "effective configuration (secrets show only whether they are set)", NULL},
    {"POST", "/api/jobs", api_jobs_create, HTTP_ROUTE_STREAM, upload_body, "jobs",
     "upload audio and queue a transcription job", JOB_CREATE_DOC},
    {"GET", "/api/jobs", api_jobs_list, 0, NULL, "jobs", "list jobs, newest first", JOB_LIST_DOC},
    {"GET", "/api/jobs/{id}", api_jobs_get, 0, NULL, "jobs", "one job: state, progress, timing, engine, error", NULL},
    {"DELETE", "/api/jobs/{id}", api_jobs_delete, 0, NULL, "jobs",
     "cancel an active job, or delete a finished one (its files too)", NULL},
    {"GET", "/api/jobs/{id}/transcript", api_jobs_transcript, 0, NULL, "jobs",
     "the transcript of a done job", JOB_TRANSCRIPT_DOC},
    {"PATCH", "/api/jobs/{id}/speakers", api_jobs_speakers, 0, NULL, "jobs",
     "rename a diarized job's speakers: a JSON object {\"1\": \"Alice\", \"2\": null, ...} "
     "(null restores \"Speaker N\"); every format then uses the names",
     "{\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{\"schema\":{"
     "\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"nullable\":true,"
     "\"maxLength\":64}}}}},\"responses\":{\"200\":{\"description\":\"the speakers\"},"
     "\"400\":{\"description\":\"unknown speaker id or bad name\"},\"404\":{\"description\":"
     "\"no such job\"},\"409\":{\"description\":\"not done, or not diarized\"}}}"},
    {"GET", "/api/jobs/{id}/audio", api_jobs_audio, 0, NULL, "jobs", "the uploaded audio", NULL},
    {"GET", "/api/jobs/{id}/peaks", api_jobs_peaks, 0, NULL, "jobs",
     "the waveform of the job's audio: n (min, max) pairs of 16-bit samples", JOB_PEAKS_DOC},
    {"GET", "/api/events", api_events, 0, NULL, "events",
     "Server-Sent Events: job.created, job.progress, job.state, job.deleted, instance.state; "
     "heartbeats", NULL},
    {"POST", "/v1/audio/transcriptions", api_openai_transcriptions, HTTP_ROUTE_STREAM, upload_body,
     "openai", "OpenAI-compatible transcription (synchronous)", OPENAI_DOC},
    {"GET", "/v1/models", api_openai_models, 0, NULL, "openai", "OpenAI-compatible model list", NULL},
    {"POST", "/api/vast/search", api_vast_search, 0, NULL, "vast",
     "search Vast.ai GPU offers, cheapest first (or cheapest per audio hour)", VAST_SEARCH_SCHEMA},
    {"POST", "/api/vast/boot", api_vast_boot, 0, NULL, "vast",
     "rent an offer (never twice for one request)", VAST_BOOT_SCHEMA},
    {"POST", "/api/vast/destroy/{instance_id}", api_vast_destroy, 0, NULL, "vast",
     "destroy a Vast.ai instance", VAST_DESTROY_SCHEMA},
    {"GET", "/api/vast/instances", api_vast_instances, 0, NULL, "vast",
     "the account's instances with gpuscribe's state", VAST_INSTANCES_SCHEMA},
    {"GET", "/api/vast/instances/{instance_id}", api_vast_instance, 0, NULL, "vast",
     "one instance's provisioning state, stage, percent, setup log, worker and tunnel",
     VAST_INSTANCE_SCHEMA},
    {"POST", "/api/vast/keepalive/{instance_id}", api_vast_keepalive, 0, NULL, "vast",
     "postpone an instance's idle destroy by IDLE_DESTROY_MINUTES", VAST_KEEPALIVE_SCHEMA},
    {"GET", "/api/fleet", api_fleet_get, 0, NULL, "fleet",
     "the fleet: every live instance with its slots, chunks in flight, speed and cost; the "
     "autoscaling plan; measured GPU speeds; hosts remembered as bad", NULL},
    {"PUT", "/api/fleet", api_fleet_put, 0, NULL, "fleet",
     "change MAX_INSTANCES (1-64) now (also written to .env): {\"max_instances\": n}", NULL},
    {"GET", "/api/cost", api_cost, 0, NULL, "cost",
     "running cost per instance, totals (today, month, all time), cost per audio hour, budgets",
     COST_SCHEMA},
    {"GET", "/api/cost/history", api_cost_history, 0, NULL, "cost",
     "spending per day and per instance over the last N days (the ledger)", COST_HISTORY_DOC},
};

const size_t api_nroutes = ARRAY_LEN(api_routes);
