#include "contrib/bench/idle_test.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "contrib/bench/json_object.hpp"
#include "contrib/bench/process_info.hpp"
#include "contrib/bench/smtp_client.hpp"

namespace truefrom::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Descriptors kept free for the tool itself (stdio, epoll, the resolver, /proc reads).
constexpr std::uint64_t kSpareDescriptors = 32;

class IdleTest {
 public:
  IdleTest(const LoadgenOptions& options, const tcp::endpoint& endpoint, std::size_t count)
      : options_(options), endpoint_(endpoint), tls_(make_client_tls_context()) {
    const auto timeout = std::chrono::milliseconds(static_cast<long>(options.timeout * 1000));
    for (std::size_t i = 0; i < count; ++i) {
      clients_.push_back(std::make_unique<SmtpClient>(io_.get_executor(), tls_, timeout));
    }
    ehlo_line_ = "EHLO " + options.helo;
  }

  asio::io_context& io() { return io_; }

  /// Opens every connection, P at a time; returns when all were tried.
  asio::awaitable<void> open_all() {
    const unsigned openers =
        static_cast<unsigned>(std::min<std::size_t>(options_.idle_parallel, clients_.size()));
    running_openers_ = openers;
    for (unsigned i = 0; i < openers; ++i) {
      asio::co_spawn(io_, opener(), asio::detached);
    }
    asio::steady_timer poll(io_);
    while (running_openers_ > 0) {
      poll.expires_after(std::chrono::milliseconds(20));
      co_await poll.async_wait(asio::use_awaitable);
    }
  }

  /// Sleeps `seconds`, waking early on SIGINT/SIGTERM.
  asio::awaitable<void> pause(double seconds) {
    asio::steady_timer poll(io_);
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(seconds));
    while (Clock::now() < until && !stop_requested()) {
      poll.expires_after(
          std::min<Clock::duration>(std::chrono::milliseconds(100), until - Clock::now()));
      co_await poll.async_wait(asio::use_awaitable);
    }
  }

  void close_all() {
    for (auto& c : clients_) c->shutdown();
  }

  std::size_t open() const { return open_; }
  std::size_t failed() const { return failed_; }
  const std::optional<std::string>& first_error() const { return first_error_; }

 private:
  asio::awaitable<void> opener() {
    while (next_ < clients_.size() && !stop_requested()) {
      SmtpClient& client = *clients_[next_++];
      if (co_await open_one(client)) {
        client.disarm();
        ++open_;
      } else {
        client.shutdown();
        ++failed_;
      }
    }
    --running_openers_;
  }

  asio::awaitable<bool> open_one(SmtpClient& client) {
    try {
      co_await client.open(endpoint_, options_.tls == TlsMode::kImplicit);
      SmtpReply r = co_await client.read_reply("greeting");
      if (r.code != 220) co_return refused("greeting", r);
      r = co_await client.command(ehlo_line_, "EHLO");
      if (r.code != 250) co_return refused("EHLO", r);
      if (options_.idle_tls && options_.tls == TlsMode::kStartTls) {
        r = co_await client.command("STARTTLS", "STARTTLS");
        if (r.code != 220) co_return refused("STARTTLS", r);
        co_await client.start_tls();
        r = co_await client.command(ehlo_line_, "EHLO after STARTTLS");
        if (r.code != 250) co_return refused("EHLO after STARTTLS", r);
      }
      co_return true;
    } catch (const SessionError& e) {
      if (!first_error_) first_error_ = e.what();
      co_return false;
    }
  }

  bool refused(std::string_view step, const SmtpReply& reply) {
    if (!first_error_) first_error_ = std::string(step) + " refused: " + reply.to_string();
    return false;
  }

  const LoadgenOptions& options_;
  tcp::endpoint endpoint_;
  asio::io_context io_{1};
  asio::ssl::context tls_;
  // Destroyed before io_ (members go in reverse order), once run() has returned.
  std::vector<std::unique_ptr<SmtpClient>> clients_;
  std::string ehlo_line_;
  std::size_t next_ = 0;
  std::size_t open_ = 0;
  std::size_t failed_ = 0;
  unsigned running_openers_ = 0;
  std::optional<std::string> first_error_;
};

struct Reading {
  std::optional<std::uint64_t> rss_kib;
  std::optional<std::uint64_t> fds;
};

Reading read_server(int pid, std::string& error) {
  Reading r;
  r.rss_kib = resident_kib(pid, error);
  r.fds = open_fd_count(pid);
  return r;
}

// Open, settle, read the server, hold, close, settle, read the server again (does it give
// the memory back?). Pointers, not captures: see NOTES.md (GCC 12).
asio::awaitable<void> run_steps(IdleTest* test, const LoadgenOptions* options, Reading* after,
                                Reading* closed, std::string* error, double* open_seconds) {
  const auto begin = Clock::now();
  co_await test->open_all();
  *open_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  co_await test->pause(options->idle_settle);
  *after = read_server(*options->server_pid, *error);
  co_await test->pause(options->idle_hold);
  test->close_all();
  co_await test->pause(options->idle_settle);
  std::string ignored;
  *closed = read_server(*options->server_pid, ignored);
}

void add_optional(JsonObject& json, std::string_view key, const std::optional<std::uint64_t>& v) {
  if (v) {
    json.add_int(key, static_cast<std::int64_t>(*v));
  } else {
    json.add_null(key);
  }
}

}  // namespace

int run_idle_test(const LoadgenOptions& options, const tcp::endpoint& endpoint) {
  const int pid = *options.server_pid;
  const std::uint64_t wanted = *options.idle;
  const std::uint64_t limit = raise_open_files_limit();
  const std::uint64_t reachable = limit > kSpareDescriptors ? limit - kSpareDescriptors : 0;
  const std::uint64_t count = std::min(wanted, reachable);
  if (count < wanted) {
    std::fprintf(stderr,
                 "truefrom-loadgen: %llu connections need about %llu open files, the limit is "
                 "%llu: opening %llu. Raise the hard limit (ulimit -Hn, or LimitNOFILE= in a "
                 "systemd unit) to reach %llu.\n",
                 static_cast<unsigned long long>(wanted),
                 static_cast<unsigned long long>(wanted + kSpareDescriptors),
                 static_cast<unsigned long long>(limit), static_cast<unsigned long long>(count),
                 static_cast<unsigned long long>(wanted));
  }

  std::string error;
  const Reading before = read_server(pid, error);  // first, before any connection exists
  if (!before.rss_kib) {
    std::fprintf(stderr, "truefrom-loadgen: --server-pid %d: %s\n", pid, error.c_str());
    return 2;
  }

  IdleTest test(options, endpoint, count);
  Reading after, closed;
  double open_seconds = 0;
  asio::co_spawn(test.io(), run_steps(&test, &options, &after, &closed, &error, &open_seconds),
                 asio::detached);
  test.io().run();
  if (!after.rss_kib) {
    std::fprintf(stderr, "truefrom-loadgen: --server-pid %d after opening: %s\n", pid,
                 error.c_str());
    return 2;
  }

  const double grown = static_cast<double>(*after.rss_kib) - static_cast<double>(*before.rss_kib);
  JsonObject report;
  report.add_string("tool", "truefrom-loadgen")
      .add_string("mode", "idle")
      .add_string("target", endpoint.address().to_string() + ":" + std::to_string(endpoint.port()))
      .add_bool("tls", options.idle_tls)
      .add_int("server_pid", pid)
      .add_int("requested", static_cast<std::int64_t>(wanted))
      .add_int("open", static_cast<std::int64_t>(test.open()))
      .add_int("failed", static_cast<std::int64_t>(test.failed()))
      .add_int("open_files_limit", static_cast<std::int64_t>(limit))
      .add_bool("limited_by_open_files", count < wanted)
      .add_number("seconds_to_open", open_seconds)
      .add_int("rss_before_kib", static_cast<std::int64_t>(*before.rss_kib))
      .add_int("rss_after_kib", static_cast<std::int64_t>(*after.rss_kib));
  if (test.open() > 0) {
    report.add_number("per_connection_kib", grown / static_cast<double>(test.open()));
  } else {
    report.add_null("per_connection_kib");
  }
  add_optional(report, "rss_after_close_kib", closed.rss_kib);
  add_optional(report, "server_fds_before", before.fds);
  add_optional(report, "server_fds_after", after.fds);
  add_optional(report, "server_fds_after_close", closed.fds);
  report.add_optional_string("first_error", test.first_error());
  std::printf("%s\n", report.str().c_str());
  std::fflush(stdout);
  return test.open() == wanted ? 0 : 1;
}

}  // namespace truefrom::bench
