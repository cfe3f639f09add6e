/* fuzz_vast: the Vast client's handling of API answers (vast_http.c's error mapping,
 * vast_json.c's tolerant getters, and the offer/instance/key/user readers in vast.c),
 * through the public calls, against an in-process loopback responder that answers every
 * request with the fuzz input.
 *
 * Input: byte 0 picks the call, byte 1 the HTTP status, the rest is the answer body.
 * Properties: a failure always has a message; the API key never appears in an error (not
 * even cut short); parsed records keep their documented ranges. */
#define _GNU_SOURCE
#include "vast/vast.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_KEY "fuzzkey0123456789abcdef0123456789abcdef0123456789abcdef01234567"

static int lfd = -1, port;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *resp_body;
static size_t resp_len;
static int resp_status;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        c += w;
        n -= (size_t)w;
    }
}

/* Read one request (headers and a Content-Length body), answer it, close. */
static void *responder(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        char req[65536];
        size_t have = 0;
        char *end = NULL;
        while (have + 1 < sizeof req && !end) {
            ssize_t n = recv(fd, req + have, sizeof req - 1 - have, 0);
            if (n <= 0) break;
            have += (size_t)n;
            req[have] = '\0';
            end = strstr(req, "\r\n\r\n");
        }
        if (end) {
            const char *cl = strcasestr(req, "\r\nContent-Length:");
            size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
            size_t got = have - (size_t)(end + 4 - req);
            while (got < want) {
                char tmp[4096];
                ssize_t n = recv(fd, tmp, sizeof tmp, 0);
                if (n <= 0) break;
                got += (size_t)n;
            }
            pthread_mutex_lock(&lock);
            char head[160];
            int hn = snprintf(head, sizeof head,
                              "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                              resp_status, resp_len);
            write_all(fd, head, (size_t)hn);
            write_all(fd, resp_body, resp_len);
            pthread_mutex_unlock(&lock);
        }
        close(fd);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    if (vast_global_init() != 0) abort();
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        abort();
    port = ntohs(a.sin_port);
    pthread_t t;
    if (pthread_create(&t, NULL, responder, NULL) != 0) abort();
    pthread_detach(t);
    return 0;
}

/* Does the answer body hold p (n bytes) other than as the start of the whole key? */
static int body_has_partial(const char *p, size_t n)
{
    const char *k = API_KEY;
    size_t kl = strlen(k);
    for (size_t i = 0; i + n <= resp_len; i++)
        if (memcmp(resp_body + i, p, n) == 0 &&
            (i + kl > resp_len || memcmp(resp_body + i, k, kl) != 0))
            return 1;
    return 0;
}

/* The key never shows: not whole, and not cut short at the end of a truncated field (a
 * tail of s, 16 bytes or more, that is a prefix of the key and that the body only holds as
 * part of the whole key). */
static void check_secret(const char *what, const char *s)
{
    const char *k = API_KEY;
    size_t sl = strlen(s), kl = strlen(k);
    int bad = strstr(s, k) != NULL;
    for (size_t n = 16; !bad && n < kl && n <= sl; n++)
        bad = memcmp(s + sl - n, k, n) == 0 && !body_has_partial(k, n);
    if (bad) {
        fprintf(stderr, "API key in the error %s: %s\n", what, s);
        abort();
    }
}

static void check_err(int rc, const vast_error *e)
{
    if (rc == 0) return;
    if (!e->message[0]) {
        fprintf(stderr, "a failed call has no message (kind %s)\n", vast_err_kind_name(e->kind));
        abort();
    }
    check_secret("message", e->message);
    check_secret("code", e->code);
}

static void check_instance(const vast_instance *in)
{
    if (in->ssh_port < 0 || in->ssh_port > 65535 || in->direct_ssh_port < 0 ||
        in->direct_ssh_port > 65535 || !in->actual_status || !in->label || !in->ssh_host ||
        !in->public_ipaddr || !in->geolocation || !in->gpu_name)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 200, 200, 201, 204, 400, 401, 403, 404, 410, 411,
                                   429, 500, 502, 503, 301};
    if (size < 2 || size > 128 * 1024) return -1;
    pthread_mutex_lock(&lock);
    resp_status = statuses[data[1] % (sizeof statuses / sizeof statuses[0])];
    resp_body = data + 2;
    resp_len = size - 2;
    pthread_mutex_unlock(&lock);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    vast_client *c = vast_client_new(url, API_KEY);
    vast_client_set_retry(c, 1, 1, 1);
    vast_client_set_timeouts(c, 2000, 5000);
    vast_error e;
    memset(&e, 0, sizeof e);
    int rc;
    switch (data[0] % 9) {
    case 0: {
        vast_offer_list l;
        rc = vast_search_offers(c, NULL, &l, &e);
        check_err(rc, &e);
        if (rc == 0) {
            for (size_t i = 0; i < l.n; i++)
                if (l.items[i].id <= 0 || l.items[i].rented) abort();
            for (size_t i = 1; i < l.n; i++)
                if (l.items[i - 1].dph_total > l.items[i].dph_total) abort();
            vast_offer_list_free(&l);
        }
        break;
    }
    case 1: {
        vast_instance_list l;
        rc = vast_list_instances(c, &l, &e);
        check_err(rc, &e);
        if (rc == 0) {
            for (size_t i = 0; i < l.n; i++) {
                if (l.items[i].id <= 0) abort();
                check_instance(&l.items[i]);
            }
            vast_instance_list_free(&l);
        }
        break;
    }
    case 2: {
        vast_instance in;
        rc = vast_show_instance(c, 42, &in, &e);
        check_err(rc, &e);
        if (rc == 0) {
            check_instance(&in);
            vast_instance_clear(&in);
        }
        break;
    }
    case 3: {
        vast_ssh_key_list l;
        rc = vast_list_ssh_keys(c, &l, &e);
        check_err(rc, &e);
        if (rc == 0) {
            for (size_t i = 0; i < l.n; i++)
                if (l.items[i].id <= 0 || !l.items[i].public_key) abort();
            vast_ssh_key_list_free(&l);
        }
        break;
    }
    case 4: {
        vast_user u;
        rc = vast_current_user(c, &u, &e);
        check_err(rc, &e);
        if (rc == 0) {
            if (!u.email || !u.username) abort();
            vast_user_clear(&u);
        }
        break;
    }
    case 5: {
        vast_create req = {.image = "img", .label = "gpuscribe"};
        vast_created cr;
        rc = vast_create_instance(c, 7, &req, &cr, &e);
        check_err(rc, &e);
        if (rc == 0) {
            if (cr.instance_id <= 0) abort();
            vast_created_clear(&cr);
        }
        break;
    }
    case 6:
        rc = vast_destroy_instance(c, 42, &e);
        check_err(rc, &e);
        break;
    case 7: {
        long long id = 0;
        rc = vast_add_ssh_key(c, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFuzz fuzz@x", &id, &e);
        check_err(rc, &e);
        if (rc == 0 && id <= 0) abort();
        break;
    }
    default:
        rc = vast_attach_ssh_key(c, 42, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFuzz", &e);
        check_err(rc, &e);
        break;
    }
    vast_client_free(c);
    /* curl may stop reading early (204, 301): make sure the responder is done with data */
    pthread_mutex_lock(&lock);
    resp_body = NULL;
    resp_len = 0;
    pthread_mutex_unlock(&lock);
    return 0;
}
