// The idle-connection mode of truefrom-loadgen: open K connections that EHLO (and, with
// --idle-tls, STARTTLS and EHLO again), leave them idle, and report how much resident memory
// the server process gained per connection (/proc/PID/status VmRSS read before and after).
// Thread-safety: run_idle_test() owns its io_context; call it once.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/ip/tcp.hpp>

#include "contrib/bench/loadgen_options.hpp"

namespace truefrom::bench {

/// Runs the test and prints the report on stdout. Returns the exit status: 0 when all K
/// connections were open at the reading, 1 when fewer were, 2 when the server's memory
/// could not be read.
int run_idle_test(const LoadgenOptions& options, const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace truefrom::bench
