// truefrom-benchsink: a plain-SMTP relay sink fast enough not to be the bottleneck of a
// benchmark. It accepts every message (contrib/bench/sink_protocol.hpp: DATA or BDAT, every
// complete line in a read answered, in order, with one write), counts messages and octets,
// and optionally stores each message in a file. One thread, one coroutine per connection;
// hundreds of concurrent connections are fine.
// Thread-safety: single-threaded by design.
#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "contrib/bench/json_object.hpp"
#include "contrib/bench/process_info.hpp"
#include "contrib/bench/sink_protocol.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using truefrom::bench::JsonObject;
using truefrom::bench::SinkProtocol;

constexpr const char* kUsage = R"(usage: truefrom-benchsink [OPTIONS]
A fast SMTP relay sink for benchmarks: accepts every message over plain SMTP, counts them,
optionally stores them. Prints "truefrom-benchsink listening on HOST:PORT" when ready, and
{"messages":N,"octets":B,"connections":C} on SIGTERM or SIGINT.

  --host HOST         address to listen on (default 127.0.0.1)
  --port PORT         port (default 10025; 0 picks a free one, see the first line printed)
  --count-file FILE   rewritten with the message count (one number and a newline) at most
                      every 100 ms while it changes, and at exit
  --store DIR         write each message to DIR/NNNNNNNNNN.eml (slower: a file per message)
  --hostname NAME     name in the greeting and EHLO reply (default benchsink.invalid)
  --no-chunking       do not offer CHUNKING (clients then send every message with DATA)
  --help              this text

EHLO advertises PIPELINING, CHUNKING (BDAT), 8BITMIME, SMTPUTF8, SIZE and
ENHANCEDSTATUSCODES; there is no STARTTLS and no AUTH: point the server's relay at it
without TLS.
)";

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr auto kCountFileInterval = std::chrono::milliseconds(100);

struct SinkOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 10025;
  std::optional<std::filesystem::path> count_file;
  std::optional<std::filesystem::path> store_dir;
  std::string hostname = "benchsink.invalid";
  bool chunking = true;
};

class Sink {
 public:
  explicit Sink(const SinkOptions& options)
      : options_(options), acceptor_(io_), count_timer_(io_), signals_(io_, SIGINT, SIGTERM) {}

  /// Binds and listens; false with `error` set when it cannot.
  bool listen(std::string& error) {
    error_code ec;
    const auto address = asio::ip::make_address(options_.host, ec);
    if (ec) {
      error = "--host " + options_.host + ": not an IP address";
      return false;
    }
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      error = "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
              ec.message() + (ec == asio::error::address_in_use ? " (pick another --port)" : "");
      return false;
    }
    return true;
  }

  void run() {
    const auto local = acceptor_.local_endpoint();
    std::printf("truefrom-benchsink listening on %s:%u\n", local.address().to_string().c_str(),
                static_cast<unsigned>(local.port()));
    std::fflush(stdout);
    write_count_file();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    if (options_.count_file) asio::co_spawn(io_, count_file_loop(), asio::detached);
    signals_.async_wait([this](const error_code& ec, int) {
      if (!ec) stop();
    });
    io_.run();
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) {
        // Out of descriptors (EMFILE) and the like: wait for connections to end.
        std::fprintf(stderr, "truefrom-benchsink: accept: %s\n", ec.message().c_str());
        asio::steady_timer pause(io_, std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      ++connections_;
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    SinkProtocol protocol(options_.hostname, options_.store_dir.has_value(), options_.chunking);
    std::string in;
    std::string out = protocol.greeting();
    std::vector<char> chunk(kReadChunk);
    error_code ec;
    co_await asio::async_write(socket, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
    out.clear();
    while (!ec && !protocol.quit()) {
      const std::size_t n = co_await socket.async_read_some(
          asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      in.append(chunk.data(), n);
      in.erase(0, protocol.consume(in, out));
      messages_ += protocol.take_completed();
      octets_ += protocol.take_octets();
      for (std::string& message : protocol.kept()) store(message);
      protocol.kept().clear();
      if (!out.empty()) {
        co_await asio::async_write(socket, asio::buffer(out),
                                   asio::redirect_error(asio::use_awaitable, ec));
        out.clear();
      }
    }
    socket.close(ec);
  }

  void store(const std::string& message) {
    char name[32];
    std::snprintf(name, sizeof name, "%010llu.eml", static_cast<unsigned long long>(++stored_));
    const std::filesystem::path path = *options_.store_dir / name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(message.data(), 1, message.size(), f) != message.size()) {
      std::fprintf(stderr, "truefrom-benchsink: cannot write %s\n", path.c_str());
    }
    if (f != nullptr) std::fclose(f);
  }

  asio::awaitable<void> count_file_loop() {
    for (;;) {
      count_timer_.expires_after(kCountFileInterval);
      error_code ec;
      co_await count_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      if (messages_ != counted_) write_count_file();
    }
  }

  // Written to a temporary file and renamed, so that readers never see half a number.
  void write_count_file() {
    if (!options_.count_file) return;
    const std::filesystem::path tmp = options_.count_file->string() + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "truefrom-benchsink: cannot write %s\n", tmp.c_str());
      return;
    }
    std::fprintf(f, "%llu\n", static_cast<unsigned long long>(messages_));
    std::fclose(f);
    std::error_code ec;
    std::filesystem::rename(tmp, *options_.count_file, ec);
    if (!ec) counted_ = messages_;
  }

  void stop() {
    error_code ec;
    acceptor_.close(ec);
    count_timer_.cancel();
    write_count_file();
    JsonObject report;
    report.add_int("messages", static_cast<std::int64_t>(messages_))
        .add_int("octets", static_cast<std::int64_t>(octets_))
        .add_int("connections", static_cast<std::int64_t>(connections_));
    std::printf("%s\n", report.str().c_str());
    std::fflush(stdout);
    io_.stop();
  }

  const SinkOptions& options_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer count_timer_;
  asio::signal_set signals_;
  std::uint64_t messages_ = 0;
  std::uint64_t octets_ = 0;
  std::uint64_t connections_ = 0;
  std::uint64_t counted_ = 0;
  std::uint64_t stored_ = 0;
};

// Returns the options, or nullopt after printing help or an error (`status` says which).
std::optional<SinkOptions> parse_options(int argc, char** argv, int& status) {
  SinkOptions o;
  status = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      std::fputs(kUsage, stdout);
      status = 0;
      return std::nullopt;
    }
    if (arg == "--no-chunking") {
      o.chunking = false;
      continue;
    }
    if (arg != "--host" && arg != "--port" && arg != "--count-file" && arg != "--store" &&
        arg != "--hostname") {
      std::fprintf(stderr, "truefrom-benchsink: unknown option \"%s\"; see --help\n", argv[i]);
      return std::nullopt;
    }
    if (i + 1 == argc) {
      std::fprintf(stderr, "truefrom-benchsink: %s needs a value; see --help\n", argv[i]);
      return std::nullopt;
    }
    const std::string value = argv[++i];
    if (arg == "--host") {
      o.host = value;
    } else if (arg == "--port") {
      unsigned port = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec != std::errc() || end != value.data() + value.size() || port > 65535) {
        std::fprintf(stderr,
                     "truefrom-benchsink: --port \"%s\" is not a port number (0 to 65535; 0 "
                     "picks a free one)\n",
                     value.c_str());
        return std::nullopt;
      }
      o.port = static_cast<std::uint16_t>(port);
    } else if (arg == "--count-file") {
      o.count_file = value;
    } else if (arg == "--store") {
      std::error_code ec;
      std::filesystem::create_directories(value, ec);
      if (ec || !std::filesystem::is_directory(value)) {
        std::fprintf(stderr, "truefrom-benchsink: --store %s: cannot create the directory: %s\n",
                     value.c_str(), ec ? ec.message().c_str() : "not a directory");
        return std::nullopt;
      }
      o.store_dir = value;
    } else {
      if (value.empty() || value.find_first_of(" \r\n") != std::string::npos) {
        std::fprintf(stderr, "truefrom-benchsink: --hostname needs one name without spaces\n");
        return std::nullopt;
      }
      o.hostname = value;
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  int status = 0;
  const std::optional<SinkOptions> options = parse_options(argc, argv, status);
  if (!options) return status;
  std::signal(SIGPIPE, SIG_IGN);
  truefrom::bench::raise_open_files_limit();
  Sink sink(*options);
  std::string error;
  if (!sink.listen(error)) {
    std::fprintf(stderr, "truefrom-benchsink: %s\n", error.c_str());
    return 1;
  }
  sink.run();
  return 0;
}
