// The load mode of truefrom-loadgen: C connections run SMTP submission sessions (TLS, AUTH
// PLAIN, M messages each) until N messages were sent or T seconds have passed, then one
// JSON line reports throughput, latency percentiles and the load generator's own CPU use.
// Thread-safety: run_load_test() owns its io_contexts and threads; call it once.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/ip/tcp.hpp>

#include "contrib/bench/loadgen_options.hpp"

namespace truefrom::bench {

/// Runs the load and prints the report on stdout. Returns the exit status: 0, or 1 when no
/// message was accepted.
int run_load_test(const LoadgenOptions& options, const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace truefrom::bench
