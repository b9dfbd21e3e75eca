// truefrom-loadgen: a load generator for SMTP submission servers (RFC 6409): concurrent
// connections doing STARTTLS or implicit TLS, AUTH PLAIN and messages, reporting one JSON
// line; or, with --idle, an idle-connection memory test. See contrib/bench/README.md and
// truefrom-loadgen --help.
#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <csignal>
#include <cstdio>

#include "contrib/bench/idle_test.hpp"
#include "contrib/bench/load_test.hpp"
#include "contrib/bench/loadgen_options.hpp"
#include "contrib/bench/process_info.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

}  // namespace

int main(int argc, char** argv) {
  using namespace truefrom::bench;
  const LoadgenCommandLine command_line = parse_loadgen_options(argc, argv);
  if (command_line.help) {
    std::fputs(kLoadgenUsage, stdout);
    return 0;
  }
  if (!command_line.options) {
    std::fprintf(stderr, "truefrom-loadgen: %s\n", command_line.error.c_str());
    return 2;
  }
  const LoadgenOptions& options = *command_line.options;

  asio::io_context resolver_io;
  tcp::resolver resolver(resolver_io);
  boost::system::error_code ec;
  const auto results = resolver.resolve(options.host, std::to_string(options.port), ec);
  if (ec || results.empty()) {
    std::fprintf(stderr, "truefrom-loadgen: --host %s: cannot resolve: %s\n", options.host.c_str(),
                 ec ? ec.message().c_str() : "no address");
    return 2;
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();

  std::signal(SIGPIPE, SIG_IGN);  // a server that closes early is an error to report, not death
  catch_stop_signals();
  raise_open_files_limit();
  if (options.idle) return run_idle_test(options, endpoint);
  return run_load_test(options, endpoint);
}
