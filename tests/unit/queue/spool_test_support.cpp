#include "spool_test_support.hpp"

#include <sys/syscall.h>

#include <cerrno>

// Failure injection: the spool's fdatasync() calls resolve to this definition (the test
// executable's own symbol comes before libc's). While armed, the next calls fail with EIO,
// as when the kernel lost a write-back: Linux reports that once per open file, and a later
// fdatasync() of the same file succeeds without the lost pages.
// Every call is counted in g_syncs.
std::atomic<int> g_failing_syncs{0};
std::atomic<int> g_syncs{0};

extern "C" int fdatasync(int fd) {
  ++g_syncs;
  for (int n = g_failing_syncs.load(); n > 0;) {
    if (g_failing_syncs.compare_exchange_weak(n, n - 1)) {
      errno = EIO;
      return -1;
    }
  }
  return static_cast<int>(::syscall(SYS_fdatasync, fd));
}
