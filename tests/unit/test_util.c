#include "test.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>


TEST(util_write_file_atomic_follows_links_and_sets_mode)
{
    ASSERT_EQ(write_file_atomic("f.txt", "one", 3, 0644), 0);
    struct stat st;
    ASSERT_EQ(stat("f.txt", &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0644);
    ASSERT_EQ(symlink("f.txt", "link.txt"), 0);
    ASSERT_EQ(write_file_atomic("link.txt", "two", 3, 0600), 0);
    ASSERT_EQ(lstat("link.txt", &st), 0);
    ASSERT_TRUE(S_ISLNK(st.st_mode));
    char *t = read_file("f.txt", 100, NULL);
    ASSERT_STR_EQ(t, "two");
    free(t);
    ASSERT_EQ(stat("f.txt", &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0600); /* the mode asked for (private keys rely on it) */
    ASSERT_EQ(test_temp_files("."), 0);
    /* write_file_replace itself never follows a link: it refuses one */
    errno = 0;
    ASSERT_EQ(write_file_replace("link.txt", "x", 1, 0600, -1, -1), -1);
    ASSERT_EQ(errno, EINVAL);
    ASSERT_EQ(lstat("link.txt", &st), 0);
    ASSERT_TRUE(S_ISLNK(st.st_mode));
    ASSERT_EQ(test_temp_files("."), 0);
}

TEST(util_write_file_atomic_refuses_devices_fifos_dirs)
{
    ASSERT_EQ(mkdir("d", 0755), 0);
    errno = 0;
    ASSERT_EQ(write_file_atomic("d", "x", 1, 0600), -1);
    ASSERT_EQ(errno, EISDIR);
    ASSERT_EQ(mkfifo("p", 0600), 0);
    errno = 0;
    ASSERT_EQ(write_file_atomic("p", "x", 1, 0600), -1);
    ASSERT_EQ(errno, EINVAL);
    struct stat st;
    ASSERT_EQ(lstat("p", &st), 0);
    ASSERT_TRUE(S_ISFIFO(st.st_mode));
    ASSERT_STR_EQ(file_kind(st.st_mode), "a fifo");
    ASSERT_EQ(test_temp_files("."), 0);
    struct stat dn;
    ASSERT_EQ(stat("/dev/null", &dn), 0);
    if (mknod("null", S_IFCHR | 0666, dn.st_rdev) != 0)
        SKIP("mknod of a character device is not permitted here: %s", strerror(errno));
    ASSERT_EQ(symlink("null", "to-null"), 0);
    errno = 0;
    ASSERT_EQ(write_file_atomic("to-null", "x", 1, 0600), -1);
    ASSERT_EQ(errno, EINVAL);
    ASSERT_EQ(lstat("null", &st), 0);
    ASSERT_TRUE(S_ISCHR(st.st_mode));
    ASSERT_EQ(st.st_rdev, dn.st_rdev);
    ASSERT_STR_EQ(file_kind(st.st_mode), "a character device");
    ASSERT_EQ(test_temp_files("."), 0);
}

TEST(util_tmpfile_beside_is_exclusive_and_unpredictable)
{
    ASSERT_EQ(mkdir("dir", 0755), 0);
    char *a = NULL, *b = NULL;
    int fa = tmpfile_beside("dir/name", 0600, &a);
    int fb = tmpfile_beside("dir/name", 0600, &b);
    ASSERT_TRUE(fa >= 0 && fb >= 0);
    ASSERT_TRUE(strncmp(a, "dir/.name.", 10) == 0);
    ASSERT_EQ(strlen(a), strlen("dir/.name.") + 12 + 4);
    ASSERT_TRUE(strcmp(a, b) != 0);
    struct stat st;
    ASSERT_EQ(fstat(fa, &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0600);
    ASSERT_TRUE((fcntl(fa, F_GETFD) & FD_CLOEXEC) != 0);
    close(fa);
    close(fb);
    unlink(a);
    unlink(b);
    free(a);
    free(b);
    /* a name in a missing directory: -1 with errno, nothing returned */
    char *c = (char *)"untouched";
    ASSERT_EQ(tmpfile_beside("nodir/name", 0600, &c), -1);
    ASSERT_EQ(errno, ENOENT);
    ASSERT_NULL(c);
    /* resolve_symlinks: plain, missing, relative chain */
    char *r = resolve_symlinks("plain");
    ASSERT_STR_EQ(r, "plain");
    free(r);
    ASSERT_EQ(symlink("../target", "dir/l"), 0);
    ASSERT_EQ(symlink("dir/l", "top"), 0);
    r = resolve_symlinks("top");
    ASSERT_STR_EQ(r, "dir/../target");
    free(r);
}
