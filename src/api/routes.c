#include "api/api.h"
#include "core/util.h"

#define GPU_STATUS_SCHEMA                                                                    \
    "{\"responses\":{\"200\":{\"description\":\"GPU availability\",\"content\":{"            \
    "\"application/json\":{\"schema\":{\"type\":\"object\",\"required\":[\"available\","     \
    "\"type\",\"cuda_available\",\"vast_instance\",\"message\"],\"properties\":{"            \
    "\"available\":{\"type\":\"boolean\"},\"type\":{\"type\":\"string\",\"enum\":[\"local\"," \
    "\"vast\",\"none\"]},\"cuda_available\":{\"type\":\"boolean\"},\"vast_instance\":{"      \
    "\"type\":\"string\",\"nullable\":true},\"message\":{\"type\":\"string\"}}}}}}}}"

const http_route api_routes[] = {
    {"GET", "/healthz", api_healthz, HTTP_ROUTE_PUBLIC, NULL, "meta", "liveness probe", NULL},
    {"GET", "/openapi.json", api_openapi, HTTP_ROUTE_PUBLIC, NULL, "meta",
     "this OpenAPI description", NULL},
    {"GET", "/docs", api_docs, HTTP_ROUTE_PUBLIC, NULL, "meta", "API documentation page", NULL},
    {"GET", "/api/gpu-status", api_gpu_status, 0, NULL, "gpu",
     "whether a GPU (local or Vast.ai) is available", GPU_STATUS_SCHEMA},
    {"GET", "/api/config", api_config, 0, NULL, "meta",
     "effective configuration (secrets show only whether they are set)", NULL},
};

const size_t api_nroutes = ARRAY_LEN(api_routes);
