#include "submission/runtime/background_threads.hpp"

#include <sched.h>
#include <cerrno>
#include <cstring>

namespace truefrom::runtime {

std::string mark_background_thread() {
#if defined(SCHED_BATCH)
  // SCHED_BATCH keeps the nice value and needs no privilege (sched(7)).
  const sched_param param{};  // priority 0, the only one SCHED_BATCH has
  if (::sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    return std::string("cannot run background threads as SCHED_BATCH: ") + std::strerror(errno);
  }
#endif
  return {};
}

bool is_background_thread() {
#if defined(SCHED_BATCH)
  return ::sched_getscheduler(0) == SCHED_BATCH;
#else
  return false;
#endif
}

}  // namespace truefrom::runtime
