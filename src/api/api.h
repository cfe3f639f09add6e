/* api: the controller's REST handlers, one file per resource, and the route table
 * (routes.c) that the HTTP server serves and /openapi.json describes. Handlers receive the
 * `app` (app.h) as their second argument. */
#ifndef GS_API_H
#define GS_API_H

#include "http/http.h"

extern const http_route api_routes[];
extern const size_t api_nroutes;

/* status.c */
void api_healthz(http_req *r, void *app);
void api_gpu_status(http_req *r, void *app);
void api_openapi(http_req *r, void *app);
void api_docs(http_req *r, void *app);
void api_config(http_req *r, void *app);

#endif
