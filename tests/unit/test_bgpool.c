/* Tests for core/bgpool and for ending hung Vast calls at shutdown (vast_cancel_all). */
#define _GNU_SOURCE
#include "test.h"

#include "core/bgpool.h"
#include "vast/vast.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int order[64], norder;
static bool gate_open, gate_running;

static void record(void *arg)
{
    pthread_mutex_lock(&mu);
    order[norder++] = (int)(long)arg;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void gate(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    gate_running = true;
    pthread_cond_broadcast(&cv);
    while (!gate_open) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

TEST(bgpool_runs_tasks_in_order_and_refuses_beyond_its_queue)
{
    bgpool *p = bgpool_new("t", 1, 3);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(bgpool_submit(p, gate, NULL), 0);
    pthread_mutex_lock(&mu); /* the gate task runs: the queue is empty */
    while (!gate_running) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    ASSERT_EQ(bgpool_pending(p), 1);
    for (long i = 1; i <= 3; i++) ASSERT_EQ(bgpool_submit(p, record, (void *)i), 0);
    ASSERT_EQ(bgpool_submit(p, record, (void *)99), -1); /* full: told at once */
    ASSERT_EQ(bgpool_pending(p), 4);
    pthread_mutex_lock(&mu);
    gate_open = true;
    pthread_cond_broadcast(&cv);
    while (norder < 3) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    ASSERT_EQ(order[0], 1);
    ASSERT_EQ(order[1], 2);
    ASSERT_EQ(order[2], 3);
    bgpool_free(p);
    ASSERT_EQ(norder, 3); /* the refused task never ran */
}

static atomic_int ran;
static void count(void *arg) { (void)arg; usleep(2000); atomic_fetch_add(&ran, 1); }

TEST(bgpool_free_runs_every_queued_task_once)
{
    bgpool *p = bgpool_new("t", 3, 100);
    for (int i = 0; i < 50; i++) ASSERT_EQ(bgpool_submit(p, count, NULL), 0);
    bgpool_free(p); /* while most are still queued */
    ASSERT_EQ(atomic_load(&ran), 50);
}

/* A listener that accepts and never answers: a hung Vast.ai. */
static int tarpit(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(fd, 8), 0);
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    *port = ntohs(a.sin_port);
    return fd;
}

struct call { vast_client *c; int rc; vast_error e; };

static void *search(void *arg)
{
    struct call *x = arg;
    vast_search s = {.limit = 1};
    vast_offer_list l;
    x->rc = vast_search_offers(x->c, &s, &l, &x->e);
    if (x->rc == 0) vast_offer_list_free(&l);
    return NULL;
}

TEST(vast_cancel_all_ends_a_call_to_a_hung_api)
{
    vast_global_init();
    int port, fd = tarpit(&port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    struct call x = {.c = vast_client_new(url, "made-up-key")};
    /* without the cancel this call would take 4 attempts of 100 s: the runner's timeout */
    vast_client_set_timeouts(x.c, 100000, 100000);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, search, &x), 0);
    int c = -1;
    for (int i = 0; i < 5000 && c < 0; i++) { /* the client is connected and waiting */
        c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) usleep(1000);
    }
    ASSERT_TRUE(c >= 0);
    vast_cancel_all();
    pthread_join(th, NULL);
    ASSERT_EQ(x.rc, -1);
    ASSERT_CONTAINS(x.e.message, "cancelled");
    /* and a later call fails at once, without connecting */
    search(&x);
    ASSERT_EQ(x.rc, -1);
    ASSERT_CONTAINS(x.e.message, "not sent");
    vast_client_free(x.c);
    close(c);
    close(fd);
    vast_global_cleanup();
}
