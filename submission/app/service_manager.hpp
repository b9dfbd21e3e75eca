// Telling the service manager how the server is doing (systemd's Type=notify, through
// libsystemd's sd_notify): READY=1 once the listeners and the database are up, STOPPING=1
// when it starts to stop, and WATCHDOG=1 from the I/O loop every half of WatchdogSec= (a
// loop that hangs stops them, and systemd restarts the service). Not started by systemd (no
// NOTIFY_SOCKET): every call does nothing.
// Thread-safety: ready() and stopping() from any thread; construct and destroy with the
// io_context's owner.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <string>

namespace truefrom::app {

class ServiceManager {
 public:
  explicit ServiceManager(boost::asio::io_context& io);

  /// READY=1 with a STATUS= line; starts the watchdog pings if the unit asks for them.
  void ready(const std::string& status);
  /// STOPPING=1; the watchdog pings end.
  void stopping();

 private:
  void ping();

  boost::asio::steady_timer timer_;
  std::chrono::microseconds interval_{0};
};

}  // namespace truefrom::app
