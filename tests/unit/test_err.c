/* Tests for core/err: the one error vocabulary and its mappings. */
#include "test.h"

#include "core/err.h"
#include "fleet/vastctl.h"
#include "ssh/ssh.h"
#include "vast/vast.h"

TEST(err_kinds_have_names_statuses_and_retry_rules)
{
    for (int e = GS_OK; e <= GS_E_INTERNAL; e++) {
        ASSERT_TRUE(strcmp(gs_err_name((gs_err)e), "unknown") != 0);
        ASSERT_TRUE(gs_err_http_status((gs_err)e) >= 200);
    }
    ASSERT_STR_EQ(gs_err_name((gs_err)999), "unknown");
    ASSERT_EQ(gs_err_http_status((gs_err)999), 500);
    /* what a retry can fix: the peer or the path to it */
    const gs_err again[] = {GS_E_RATE_LIMIT, GS_E_BUSY, GS_E_NETWORK, GS_E_TIMEOUT, GS_E_PEER,
                            GS_E_PROTOCOL};
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++)
        ASSERT_TRUE(gs_err_retryable(again[i]));
    /* what it cannot: the request, the audio, the account, a changed host key */
    const gs_err final[] = {GS_OK, GS_E_INVALID, GS_E_NOT_FOUND, GS_E_CONFLICT, GS_E_TOO_LARGE,
                            GS_E_UNSUPPORTED, GS_E_FORBIDDEN, GS_E_NO_CREDIT, GS_E_UNAUTHORIZED,
                            GS_E_HOSTKEY, GS_E_FAILED, GS_E_CANCELLED, GS_E_INTERNAL};
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        ASSERT_FALSE(gs_err_retryable(final[i]));
}

TEST(err_from_a_peers_http_status)
{
    ASSERT_EQ(gs_err_from_http_status(400), GS_E_INVALID);
    ASSERT_EQ(gs_err_from_http_status(413), GS_E_TOO_LARGE);
    ASSERT_EQ(gs_err_from_http_status(415), GS_E_UNSUPPORTED);
    ASSERT_EQ(gs_err_from_http_status(429), GS_E_RATE_LIMIT);
    ASSERT_EQ(gs_err_from_http_status(503), GS_E_BUSY);
    ASSERT_EQ(gs_err_from_http_status(500), GS_E_PEER);
    ASSERT_EQ(gs_err_from_http_status(418), GS_E_INVALID);
    ASSERT_EQ(gs_err_from_http_status(200), GS_E_PROTOCOL); /* not an error status */
}

TEST(err_vast_and_ssh_kinds_map_into_it)
{
    /* the statuses the Vast routes answered before the vocabulary existed */
    ASSERT_EQ(vastctl_http_status(VAST_ERR_AUTH), 502); /* our key, not the caller's fault */
    ASSERT_EQ(vastctl_http_status(VAST_ERR_NOT_FOUND), 404);
    ASSERT_EQ(vastctl_http_status(VAST_ERR_OFFER_TAKEN), 409);
    ASSERT_EQ(vastctl_http_status(VAST_ERR_RATE_LIMIT), 503);
    ASSERT_EQ(vastctl_http_status(VAST_ERR_TIMEOUT), 504);
    ASSERT_EQ(vastctl_http_status(VAST_ERR_BAD_REQUEST), 400);
    ASSERT_EQ(vastctl_http_status(VAST_ERR_NO_CREDIT), 402);
    ASSERT_EQ(vastctl_http_status(VAST_ERR_PARSE), 502);
    ASSERT_TRUE(gs_err_retryable(vast_err_gs(VAST_ERR_TIMEOUT)));
    ASSERT_FALSE(gs_err_retryable(vast_err_gs(VAST_ERR_OFFER_TAKEN)));
    ASSERT_TRUE(gs_err_retryable(sshc_err_gs(SSHC_ERR_CONNECT)));
    ASSERT_FALSE(gs_err_retryable(sshc_err_gs(SSHC_ERR_HOSTKEY)));
    ASSERT_EQ(sshc_err_gs(SSHC_ERR_HOSTKEY), GS_E_HOSTKEY);
}
