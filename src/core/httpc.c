#include "core/httpc.h"

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

void httpc_setup(CURL *c, const char *url, struct curl_slist *hdr, buf *body, char *errbuf)
{
    errbuf[0] = '\0';
    gs_curl.curl_easy_setopt(c, CURLOPT_URL, url);
    gs_curl.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    gs_curl.curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    gs_curl.curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    gs_curl.curl_easy_setopt(c, CURLOPT_USERAGENT, "gpuscribe/" GS_VERSION);
    gs_curl.curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    gs_curl.curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    gs_curl.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    gs_curl.curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
}
