/* Unit tests for src/fleet/vast_status: Vast.ai's instance status as provisioning reads it
 * (waiting / running / failed, and the reason given for failed). */
#include "test.h"

#include "core/util.h"
#include "fleet/vast_status.h"

#include <string.h>

static vast_instance vi_of(const char *actual, const char *intended, const char *msg)
{
    vast_instance vi;
    memset(&vi, 0, sizeof vi);
    vi.id = 42;
    vi.actual_status = (char *)actual;
    vi.intended_status = (char *)intended;
    vi.status_msg = (char *)msg;
    return vi;
}

static vast_status_class classify(const char *actual, const char *intended, const char *msg,
                                  char *why, size_t whylen)
{
    vast_instance vi = vi_of(actual, intended, msg);
    why[0] = '\0';
    return vast_status_classify(&vi, why, whylen);
}

TEST(vast_status_waiting_and_running)
{
    char why[256];
    ASSERT_EQ(classify("", "running", "", why, sizeof why), VAST_STATUS_WAITING);
    ASSERT_STR_EQ(why, "");
    ASSERT_EQ(classify("created", "running", "", why, sizeof why), VAST_STATUS_WAITING);
    ASSERT_EQ(classify("loading", "running", "Pulling layer 3/7", why, sizeof why),
              VAST_STATUS_WAITING);
    ASSERT_STR_EQ(why, "");
    ASSERT_EQ(classify("running", "running", "", why, sizeof why), VAST_STATUS_RUNNING);
    /* a running instance's message is not read for errors */
    ASSERT_EQ(classify("running", "running", "error: old pull retried", why, sizeof why),
              VAST_STATUS_RUNNING);
    ASSERT_STR_EQ(why, "");
    ASSERT_STR_EQ(vast_status_name(VAST_STATUS_WAITING), "waiting");
    ASSERT_STR_EQ(vast_status_name(VAST_STATUS_RUNNING), "running");
    ASSERT_STR_EQ(vast_status_name(VAST_STATUS_FAILED), "failed");
}

TEST(vast_status_dead_states)
{
    char why[256];
    const char *dead[] = {"exited", "unknown", "offline", "stopped", "frozen"};
    for (size_t i = 0; i < ARRAY_LEN(dead); i++)
        ASSERT_EQ(classify(dead[i], "running", "", why, sizeof why), VAST_STATUS_FAILED);
    ASSERT_EQ(classify("exited", "running", "", why, sizeof why), VAST_STATUS_FAILED);
    ASSERT_STR_EQ(why, "Vast.ai reports instance 42 exited");
    ASSERT_EQ(classify("offline", "running", "host down", why, sizeof why), VAST_STATUS_FAILED);
    ASSERT_STR_EQ(why, "Vast.ai reports instance 42 offline: host down");
    /* intended stopped: outbid or stopped, even while still running */
    ASSERT_EQ(classify("running", "stopped", "", why, sizeof why), VAST_STATUS_FAILED);
    ASSERT_STR_EQ(why, "Vast.ai stopped instance 42 (outbid or stopped)");
    ASSERT_EQ(classify("loading", "stopped", "outbid", why, sizeof why), VAST_STATUS_FAILED);
    ASSERT_STR_EQ(why, "Vast.ai stopped instance 42 (outbid or stopped): outbid");
}

TEST(vast_status_error_messages)
{
    char why[256];
    const char *errs[] = {"OCI runtime create failed: runc", "Error response from daemon",
                          "pull FAILED", "unauthorized: authentication required",
                          "manifest unknown", "pull access denied for x/y", "access Denied"};
    for (size_t i = 0; i < ARRAY_LEN(errs); i++) {
        ASSERT_EQ(classify("loading", "running", errs[i], why, sizeof why), VAST_STATUS_FAILED);
        ASSERT_TRUE(strstr(why, errs[i]) != NULL);
        ASSERT_TRUE(strncmp(why, "instance 42 failed to start: ", 29) == 0);
    }
    ASSERT_EQ(classify("", "running", "oci runtime error", why, sizeof why), VAST_STATUS_FAILED);
    ASSERT_STR_EQ(why, "instance 42 failed to start: oci runtime error");
    /* no room for the reason: still classified */
    ASSERT_EQ(classify("exited", "running", "", why, 0), VAST_STATUS_FAILED);
    char small[8];
    ASSERT_EQ(classify("exited", "running", "", small, sizeof small), VAST_STATUS_FAILED);
    ASSERT_STR_EQ(small, "Vast.ai");
}
