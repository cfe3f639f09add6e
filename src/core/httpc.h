/* httpc: what every outgoing HTTP request of gpuscribe sets on its libcurl handle.
 *
 * httpc_setup(c, url, hdr, body, errbuf), on an easy handle fresh from curl_easy_init or
 * curl_easy_reset, sets: the URL; no signals (we are threaded); http and https only; no
 * redirects; the User-Agent "gpuscribe/VERSION"; the request headers hdr (may be NULL; the
 * caller keeps the list alive until the transfer is over, then frees it); errbuf (at least
 * CURL_ERROR_SIZE bytes, emptied here) for libcurl's error text; and a write callback that
 * appends the answer to body. body's cap (buf_init's max) bounds the answer: past it the
 * transfer ends with CURLE_WRITE_ERROR and body keeps what fitted.
 * The method, request body, timeouts and any other option stay the caller's.
 * Thread-safe: it touches only its arguments (the handle's caller loaded libcurl: core/curl_dl.h).
 */
#ifndef GS_HTTPC_H
#define GS_HTTPC_H

#include "core/curl_dl.h"

#include "core/util.h"

void httpc_setup(CURL *c, const char *url, struct curl_slist *hdr, buf *body, char *errbuf);

#endif
