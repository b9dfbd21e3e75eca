#include "submission/app/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <boost/asio/post.hpp>
#include <cstdint>

#include "submission/runtime/log.hpp"

namespace truefrom::app {

ServiceManager::ServiceManager(boost::asio::io_context& io) : timer_(io) {}

void ServiceManager::ready(const std::string& status) {
  const int rc = sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
  if (rc < 0) {
    runtime::log_warning("systemd: READY=1 not sent (sd_notify: error " + std::to_string(-rc) +
                         "); check NOTIFY_SOCKET");
    return;
  }
  std::uint64_t usec = 0;
  if (rc > 0 && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    interval_ = std::chrono::microseconds(usec / 2);
    runtime::log_info("systemd: watchdog every " + std::to_string(interval_.count() / 1000) +
                      " ms");
    ping();
  }
}

void ServiceManager::ping() {
  sd_notify(0, "WATCHDOG=1");
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) ping();
  });
}

void ServiceManager::stopping() {
  sd_notify(0, "STOPPING=1\nSTATUS=stopping: ending the sessions");
  boost::asio::post(timer_.get_executor(), [this] { timer_.cancel(); });
}

}  // namespace truefrom::app
