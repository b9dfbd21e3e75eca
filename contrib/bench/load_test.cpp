#include "contrib/bench/load_test.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "contrib/bench/json_object.hpp"
#include "contrib/bench/process_info.hpp"
#include "contrib/bench/smtp_client.hpp"

namespace truefrom::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// RFC 5322 2.1.1: lines SHOULD be at most 78 characters; ours are 72 plus CRLF.
constexpr std::size_t kBodyLineOctets = 74;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// The messages sent: one body of the requested size shared by all, headers per message.
class MessageFactory {
 public:
  explicit MessageFactory(const LoadgenOptions& options) : options_(options) {
    const auto at = options.from.rfind('@');
    id_domain_ = options.from.substr(at + 1);
    make_body(options.size);
  }

  /// Writes message `sequence` of connection `worker` into `out`, with the final ".".
  void compose(std::string& out, unsigned worker, std::uint64_t sequence) const {
    char date[64];
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &utc);  // RFC 5322 3.3
    const std::string tag =
        std::to_string(getpid()) + "." + std::to_string(worker) + "." + std::to_string(sequence);
    out.clear();
    out += "From: " + options_.from + "\r\n";
    out += "To: " + options_.to + "\r\n";
    out += "Subject: truefrom-loadgen message " + tag + "\r\n";
    out += "Date: " + std::string(date) + "\r\n";
    out += "Message-ID: <loadgen." + tag + "@" + id_domain_ + ">\r\n";
    out += "\r\n";
    out += body_;
    out += ".\r\n";  // RFC 5321 4.1.1.4: the body ends with CRLF, then "." CRLF
  }

 private:
  // Letters, digits and spaces from a fixed pseudo-random sequence: no line starts with "."
  // (nothing to dot-stuff) and nothing is 8-bit.
  void make_body(std::size_t size) {
    static constexpr char kAlphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     ";
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    body_.reserve(size);
    std::size_t left = size;
    while (left > 0) {
      // A last line of 1 octet cannot end with CRLF: make this one shorter instead.
      const std::size_t line = left <= kBodyLineOctets       ? left
                               : left - kBodyLineOctets == 1 ? kBodyLineOctets - 1
                                                             : kBodyLineOctets;
      for (std::size_t i = 0; i + 2 < line; ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        char c = kAlphabet[state % (sizeof kAlphabet - 1)];
        if (c == ' ' && (i == 0 || i + 3 == line)) c = 'x';  // no leading/trailing blanks
        body_ += c;
      }
      body_ += "\r\n";
      left -= line;
    }
  }

  const LoadgenOptions& options_;
  std::string id_domain_;
  std::string body_;
};

// State shared by all workers of all threads.
struct Shared {
  Shared(const LoadgenOptions& o, const tcp::endpoint& e) : options(o), endpoint(e) {}

  const LoadgenOptions& options;
  tcp::endpoint endpoint;
  Clock::time_point start = Clock::now();
  std::optional<Clock::time_point> deadline;
  std::atomic<std::uint64_t> claimed{0};  ///< messages begun
  std::atomic<std::uint64_t> failed_sessions{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;  ///< guards stop_reason
  std::string stop_reason;

  void request_stop(const std::string& reason) {
    std::lock_guard lock(mutex);
    if (stop_reason.empty()) stop_reason = reason;
    stop = true;
  }
};

// The first notable event of its kind, with when it happened (to merge across workers).
struct FirstEvent {
  double at_s = 0;
  std::string text;
};

// What one worker saw.
struct Tally {
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;
  std::uint64_t errors = 0;    ///< failed sessions
  std::uint64_t sessions = 0;  ///< sessions that ended with QUIT
  std::vector<double> data_end_ms;
  std::vector<double> session_ms;
  std::optional<FirstEvent> first_refusal;
  std::optional<FirstEvent> first_error;

  void merge(Tally&& other) {
    accepted += other.accepted;
    refused += other.refused;
    errors += other.errors;
    sessions += other.sessions;
    data_end_ms.insert(data_end_ms.end(), other.data_end_ms.begin(), other.data_end_ms.end());
    session_ms.insert(session_ms.end(), other.session_ms.begin(), other.session_ms.end());
    keep_earlier(first_refusal, other.first_refusal);
    keep_earlier(first_error, other.first_error);
  }

  static void keep_earlier(std::optional<FirstEvent>& mine, std::optional<FirstEvent>& theirs) {
    if (theirs && (!mine || theirs->at_s < mine->at_s)) mine = std::move(theirs);
  }
};

// One connection slot: runs sessions one after another until the run stops.
class Worker {
 public:
  Worker(asio::io_context& io, asio::ssl::context& tls, Shared& shared,
         const MessageFactory& messages, unsigned id)
      : shared_(shared),
        options_(shared.options),
        messages_(messages),
        id_(id),
        client_(io.get_executor(), tls,
                std::chrono::milliseconds(static_cast<long>(options_.timeout * 1000))) {
    ehlo_line_ = "EHLO " + options_.helo;
    mail_line_ = "MAIL FROM:<" + options_.from + ">";
    rcpt_line_ = "RCPT TO:<" + options_.to + ">";
    if (!options_.user.empty()) {
      // RFC 4616: authzid NUL authcid NUL passwd, sent as the initial response (RFC 4954).
      auth_line_ = "AUTH PLAIN " + base64(std::string(1, '\0') + options_.user +
                                          std::string(1, '\0') + options_.password);
    }
  }

  asio::awaitable<void> run() {
    while (!should_stop()) co_await session();
    client_.shutdown();
  }

  Tally& tally() { return tally_; }

 private:
  bool should_stop() const {
    if (shared_.stop || stop_requested()) return true;
    if (shared_.deadline && Clock::now() >= *shared_.deadline) return true;
    return options_.total && shared_.claimed.load() >= *options_.total;
  }

  // Takes the next message of the budget; false when the run is over. A session that began
  // before the deadline sends its first message: its handshake is not wasted.
  bool claim_message(bool first_of_session) {
    if (shared_.stop || stop_requested()) return false;
    if (!first_of_session && shared_.deadline && Clock::now() >= *shared_.deadline) return false;
    const std::uint64_t n = shared_.claimed.fetch_add(1);
    return !options_.total || n < *options_.total;
  }

  double since_start_s() const {
    return std::chrono::duration<double>(Clock::now() - shared_.start).count();
  }

  void note_refusal(std::string_view step, const SmtpReply& reply) {
    ++tally_.refused;
    if (!tally_.first_refusal) {
      tally_.first_refusal =
          FirstEvent{since_start_s(), std::string(step) + ": " + reply.to_string()};
    }
  }

  void note_failed_session(const std::string& why) {
    ++tally_.errors;
    if (!tally_.first_error) tally_.first_error = FirstEvent{since_start_s(), why};
    const std::uint64_t failed = shared_.failed_sessions.fetch_add(1) + 1;
    if (failed >= options_.max_errors) {
      shared_.request_stop("stopped after " + std::to_string(failed) +
                           " failed sessions (--max-errors)");
    }
  }

  // Greeting to QUIT. A refused greeting, EHLO, STARTTLS or AUTH fails the session; a
  // refused message only counts as refused.
  asio::awaitable<void> session() {
    const auto begin = Clock::now();
    try {
      co_await client_.open(shared_.endpoint, options_.tls == TlsMode::kImplicit);
      SmtpReply r = co_await client_.read_reply("greeting");
      if (r.code != 220) {
        refused_setup("greeting", r);
        co_return;
      }
      r = co_await client_.command(ehlo_line_, "EHLO");
      if (r.code != 250) {
        refused_setup("EHLO", r);
        co_return;
      }
      if (options_.tls == TlsMode::kStartTls) {
        r = co_await client_.command("STARTTLS", "STARTTLS");
        if (r.code != 220) {
          refused_setup("STARTTLS", r);
          co_return;
        }
        co_await client_.start_tls();
        r = co_await client_.command(ehlo_line_, "EHLO after STARTTLS");
        if (r.code != 250) {
          refused_setup("EHLO after STARTTLS", r);
          co_return;
        }
      }
      if (!auth_line_.empty()) {
        r = co_await client_.command(auth_line_, "AUTH PLAIN");
        if (r.code != 235) {
          refused_setup("AUTH PLAIN", r);
          co_return;
        }
      }
      for (unsigned m = 0; m < options_.messages_per_conn && claim_message(m == 0); ++m) {
        if (!co_await transaction()) {
          client_.close();
          co_return;
        }
      }
      co_await client_.command("QUIT", "QUIT");
      client_.close();
      ++tally_.sessions;
      tally_.session_ms.push_back(ms_between(begin, Clock::now()));
    } catch (const SessionError& e) {
      client_.close();
      note_failed_session(e.what());
    }
  }

  void refused_setup(std::string_view step, const SmtpReply& reply) {
    client_.close();
    note_failed_session(std::string(step) + " refused: " + reply.to_string());
  }

  // One message. Returns false when the session cannot go on (421, or RSET refused).
  asio::awaitable<bool> transaction() {
    SmtpReply r = co_await client_.command(mail_line_, "MAIL FROM");
    if (r.code != 250) co_return co_await refused_message("MAIL FROM", r);
    r = co_await client_.command(rcpt_line_, "RCPT TO");
    if (r.code != 250 && r.code != 251) co_return co_await refused_message("RCPT TO", r);
    r = co_await client_.command("DATA", "DATA");
    if (r.code != 354) co_return co_await refused_message("DATA", r);
    messages_.compose(message_, id_, sequence_++);
    co_await client_.write(message_, "message content");
    const auto sent = Clock::now();
    r = co_await client_.read_reply("end of data");
    tally_.data_end_ms.push_back(ms_between(sent, Clock::now()));
    if (r.code == 250) {
      ++tally_.accepted;
      co_return true;
    }
    note_refusal("end of data", r);
    co_return r.code != 421;
  }

  asio::awaitable<bool> refused_message(std::string_view step, const SmtpReply& reply) {
    note_refusal(step, reply);
    if (reply.code == 421) co_return false;  // RFC 5321 3.8: the server is closing
    const SmtpReply r = co_await client_.command("RSET", "RSET");
    co_return r.code == 250;
  }

  Shared& shared_;
  const LoadgenOptions& options_;
  const MessageFactory& messages_;
  unsigned id_;
  SmtpClient client_;
  Tally tally_;
  std::uint64_t sequence_ = 0;
  std::string ehlo_line_, mail_line_, rcpt_line_, auth_line_;
  std::string message_;
};

// Nearest-rank percentiles in milliseconds; null when there are no samples.
JsonObject percentiles(std::vector<double>& samples) {
  JsonObject out;
  std::sort(samples.begin(), samples.end());
  static constexpr std::pair<const char*, double> kRanks[] = {
      {"p50", 50.0}, {"p90", 90.0}, {"p99", 99.0}};
  for (const auto& [name, p] : kRanks) {
    if (samples.empty()) {
      out.add_null(name);
      continue;
    }
    const auto rank =
        static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(samples.size())));
    out.add_number(name, samples[std::max<std::size_t>(rank, 1) - 1]);
  }
  return out;
}

std::optional<std::string> text_of(const std::optional<FirstEvent>& event) {
  if (!event) return std::nullopt;
  return event->text;
}

}  // namespace

int run_load_test(const LoadgenOptions& options, const tcp::endpoint& endpoint) {
  asio::ssl::context tls = make_client_tls_context();
  const MessageFactory messages(options);
  Shared shared(options, endpoint);

  std::vector<std::unique_ptr<asio::io_context>> ios;
  for (unsigned t = 0; t < options.threads; ++t) {
    ios.push_back(std::make_unique<asio::io_context>(1));
  }
  // Workers outlive every run(): their watchdogs' handlers refer to them.
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < options.connections; ++i) {
    workers.push_back(
        std::make_unique<Worker>(*ios[i % options.threads], tls, shared, messages, i));
  }

  const double cpu_before = own_cpu_seconds();
  shared.start = Clock::now();
  if (options.duration) {
    shared.deadline = shared.start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(*options.duration));
  }
  for (unsigned i = 0; i < options.connections; ++i) {
    asio::co_spawn(*ios[i % options.threads], workers[i]->run(), asio::detached);
  }
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < options.threads; ++t) {
    threads.emplace_back([io = ios[t].get()] { io->run(); });
  }
  ios[0]->run();
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - shared.start).count();
  const double cpu = own_cpu_seconds() - cpu_before;

  Tally all;
  for (auto& w : workers) all.merge(std::move(w->tally()));

  std::string stopped_by = shared.stop_reason;
  if (stopped_by.empty()) {
    stopped_by = stop_requested()                                           ? "signal"
                 : options.total && shared.claimed.load() >= *options.total ? "total"
                                                                            : "duration";
  }
  JsonObject report;
  report.add_string("tool", "truefrom-loadgen")
      .add_string("mode", "load")
      .add_string("target", endpoint.address().to_string() + ":" + std::to_string(endpoint.port()))
      .add_string("tls", to_string(options.tls))
      .add_bool("auth", !options.user.empty())
      .add_int("connections", options.connections)
      .add_int("messages_per_conn", options.messages_per_conn)
      .add_int("size", static_cast<std::int64_t>(options.size))
      .add_int("threads", options.threads)
      .add_int("accepted", static_cast<std::int64_t>(all.accepted))
      .add_int("refused", static_cast<std::int64_t>(all.refused))
      .add_int("errors", static_cast<std::int64_t>(all.errors))
      .add_int("sessions", static_cast<std::int64_t>(all.sessions))
      .add_number("seconds", seconds)
      .add_number("messages_per_s", seconds > 0 ? static_cast<double>(all.accepted) / seconds : 0)
      .add_object("data_end_ms", percentiles(all.data_end_ms))
      .add_object("session_ms", percentiles(all.session_ms))
      .add_number("loadgen_cpu_s", cpu)
      .add_number("loadgen_cpu_share", seconds > 0 ? cpu / seconds : 0)
      .add_string("stopped_by", stopped_by)
      .add_optional_string("first_refusal", text_of(all.first_refusal))
      .add_optional_string("first_error", text_of(all.first_error));
  std::printf("%s\n", report.str().c_str());
  std::fflush(stdout);
  return all.accepted > 0 ? 0 : 1;
}

}  // namespace truefrom::bench
