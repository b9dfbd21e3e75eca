#include "submission/queue/scheduler.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <ctime>
#include <exception>
#include <optional>
#include <random>
#include <type_traits>

#include "submission/core/header_fields.hpp"
#include "submission/queue/dsn.hpp"
#include "submission/runtime/log.hpp"
#include "submission/runtime/on_workers.hpp"

namespace truefrom::queue {

namespace asio = boost::asio;
using smtp::Reply;

namespace {

constexpr std::chrono::seconds kTick{1};
// A message the CLI holds locked is looked at again after this long.
constexpr std::int64_t kBusyRetry = 5;
// At most this many octets of first attempts' data are held in memory.
constexpr std::size_t kFirstAttemptMemory = 64 * 1024 * 1024;

// What a job on the workers returned, or what it threw: an exception must not escape into a
// pool thread (that ends the process); take() rethrows it in the awaiting attempt, whose
// completion handler (settle) then deals with it.
template <class R>
struct Caught {
  std::optional<R> value;
  std::exception_ptr error;
  R take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

// `f` (capturing pointers only: see on_workers) wrapped for the workers.
template <class F>
auto catching(F f) {
  return [f]() mutable {
    Caught<std::invoke_result_t<F&>> c;
    try {
      c.value.emplace(f());
    } catch (...) {
      c.error = std::current_exception();
    }
    return c;
  };
}

std::string random_hex(std::size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string s;
  std::uint64_t v = rng();
  for (std::size_t i = 0; i < n; ++i) {
    s += kHex[v & 15];
    v >>= 4;
  }
  return s;
}

}  // namespace

std::string new_queue_id() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  char t[17];
  std::snprintf(t, sizeof t, "%013llX", static_cast<unsigned long long>(us));
  return std::string(t) + random_hex(5);
}

struct Scheduler::Io {
  explicit Io(asio::io_context& io) : strand(asio::make_strand(io)), tick(strand), control(io) {}
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer tick;
  asio::local::stream_protocol::acceptor control;
};

// What one attempt did, per recipient.
struct Scheduler::Outcome {
  std::vector<std::string> delivered;
  std::vector<FailedRecipient> failed;
  std::vector<std::pair<std::string, Reply>> deferred;
};

Scheduler::Scheduler(asio::io_context& io, Spool& spool, relay::RelayClient& relay,
                     asio::thread_pool& workers, QueueOptions options)
    : io_(io),
      spool_(spool),
      relay_(relay),
      workers_(workers),
      options_(std::move(options)),
      retry_{options_.retry_first, options_.retry_max, options_.lifetime},
      random_(std::random_device{}()),
      io_objects_(std::make_unique<Io>(io)) {}

Scheduler::~Scheduler() { stop(); }

bool Scheduler::start(std::string& error) {
  scan(true);
  const auto path = spool_.dir() / "control";
  ::unlink(path.c_str());
  boost::system::error_code ec;
  auto& acc = io_objects_->control;
  acc.open(asio::local::stream_protocol(), ec);
  if (!ec) acc.bind(asio::local::stream_protocol::endpoint(path.string()), ec);
  if (!ec) acc.listen(16, ec);
  if (ec) {
    error = "cannot open the queue control socket " + path.string() + ": " + ec.message();
    return false;
  }
  relay_.set_on_relay_up([this] { relay_up(); });
  asio::co_spawn(io_objects_->strand, tick_loop(), asio::detached);
  asio::co_spawn(io_, control_loop(), asio::detached);
  std::lock_guard lock(mutex_);
  pump();
  return true;
}

void Scheduler::stop() {
  relay_.set_on_relay_up(nullptr);  // returns once a call running now has ended
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ec;
  io_objects_->tick.cancel();
  io_objects_->control.close(ec);
}

void Scheduler::enqueued(MessageInfo info, std::string data) {
  std::lock_guard lock(mutex_);
  const std::string id = info.id;
  // A scan may have picked the file up already: never replace an entry (its state).
  const auto [it, fresh] =
      entries_.try_emplace(id, Entry{std::move(info), {}, false, std::nullopt});
  if (!fresh) return;
  // Kept in memory only while the first attempts waiting do not hold too much (a slow relay
  // must not make the queue's memory grow with its backlog): else read back from the spool.
  if (data.size() == it->second.info.size && memory_ + data.size() <= kFirstAttemptMemory) {
    memory_ += data.size();
    it->second.data = std::move(data);
  }
  ready_.insert(id);
  pump();
}

void Scheduler::pump() {
  while (!stopping_ && running_ < options_.concurrency && !ready_.empty()) {
    const std::string id = *ready_.begin();
    ready_.erase(ready_.begin());
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.running) continue;
    it->second.running = true;
    it->second.attempt_flushes = flushes_;
    it->second.attempt_up_changes = relay_.up_changes();
    ++running_;
    // The completion handler runs whatever the attempt does, exceptions included.
    asio::co_spawn(asio::make_strand(io_), deliver(id),
                   [this, id](std::exception_ptr failure, Finished finished) {
                     settle(id, failure, std::move(finished));
                   });
  }
}

std::optional<std::chrono::seconds> Scheduler::retry_after(unsigned attempts,
                                                           std::int64_t arrival) {
  const std::chrono::seconds age(std::time(nullptr) - arrival);
  return next_retry(retry_, attempts, age, random_);
}

void Scheduler::settle(const std::string& id, std::exception_ptr failure, Finished finished) {
  std::lock_guard lock(mutex_);
  --running_;
  auto it = entries_.find(id);
  if (failure) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    finished = Finished{};
    if (it != entries_.end()) {
      // Like a 4xx: it counts as an attempt (in memory: the state file keeps what the last
      // attempt that ended wrote), so that an attempt that throws every time backs off.
      DeliveryState& state = it->second.state;
      ++state.attempts;
      state.last_error = "the delivery attempt failed: " + what;
      const auto delay = retry_after(state.attempts, it->second.info.arrival);
      // Past its lifetime: the next attempt reports it as expired.
      finished.next_attempt = std::time(nullptr) + (delay ? *delay : retry_.first).count();
      runtime::log_error("queue: " + id + ": the delivery attempt failed: " + what +
                         "; next attempt in " +
                         std::to_string(finished.next_attempt - std::time(nullptr)) + " s");
    }
  }
  if (it == entries_.end()) {
    // forgotten meanwhile
  } else if (finished.kind != Finished::Kind::kRetry) {
    entries_.erase(it);
  } else {
    Entry& e = it->second;
    e.running = false;
    if (finished.state) e.state = std::move(*finished.state);
    e.state.next_attempt = finished.next_attempt;
    // A flush while the attempt ran, or a relay back up since it began (it failed because
    // none answered): due now, not after its backoff. Once per flush or return: an attempt
    // that begins after them compares with their new counts.
    const bool flushed = e.attempt_flushes != flushes_;
    const bool relay_back = finished.unreachable && e.attempt_up_changes != relay_.up_changes();
    if (flushed || relay_back) {
      e.state.next_attempt = 0;
      ready_.insert(id);
    } else {
      waiting_.insert({e.state.next_attempt, id});
      if (finished.unreachable) unreachable_.insert(id);
    }
  }
  pump();
}

void Scheduler::relay_up() {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  std::size_t due = 0;
  for (const auto& id : unreachable_) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.running) continue;
    if (waiting_.erase({it->second.state.next_attempt, id}) == 0) continue;  // due already
    it->second.state.next_attempt = 0;
    ready_.insert(id);
    ++due;
  }
  unreachable_.clear();
  if (due > 0) {
    runtime::log_info("queue: a relay answers again: " + std::to_string(due) +
                      " message(s) deferred while none answered are due now");
  }
  pump();
}

// Loads the spool (at start: everything; later: what the CLI released) and forgets what
// is no longer in active/ (deleted or held by the admin).
void Scheduler::scan(bool initial) {
  const auto ids = spool_.list(Where::kActive);
  std::vector<std::pair<MessageInfo, DeliveryState>> found;
  std::set<std::string> present(ids.begin(), ids.end());
  {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      // Not in the listing, which was taken before the lock: committed since, or really gone?
      if (!it->second.running && !present.count(it->first) &&
          spool_.find(it->first) != Where::kActive) {
        waiting_.erase({it->second.state.next_attempt, it->first});
        ready_.erase(it->first);
        unreachable_.erase(it->first);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& id : ids) {
      if (entries_.count(id)) present.erase(id);
    }
  }
  for (const auto& id : present) {
    std::string error;
    bool corrupt = false;
    auto info = spool_.read(id, Where::kActive, nullptr, error, &corrupt);
    if (!info) {
      if (corrupt) {
        runtime::log_error("queue: " + error + "; moved to hold/ for the administrator");
        std::string ignored;
        spool_.move(id, Where::kActive, Where::kHold, ignored);
      } else if (spool_.find(id)) {
        runtime::log_error("queue: " + error + "; tried again at the next scan or restart");
      }
      continue;
    }
    found.emplace_back(std::move(*info), spool_.load_state(id));
  }
  std::lock_guard lock(mutex_);
  const auto now = std::time(nullptr);
  for (auto& [info, state] : found) {
    const std::string id = info.id;
    if (entries_.count(id)) continue;
    const bool due = state.next_attempt <= now;
    if (due) {
      ready_.insert(id);
    } else {
      waiting_.insert({state.next_attempt, id});
    }
    entries_[id] = Entry{std::move(info), std::move(state), false, std::nullopt};
  }
  if (initial && !entries_.empty()) {
    runtime::log_info("queue: " + std::to_string(entries_.size()) + " message(s) in " +
                      spool_.dir().string() + ", " + std::to_string(ready_.size()) + " due now");
  }
  pump();
}

std::size_t Scheduler::flush() {
  {
    std::lock_guard lock(mutex_);
    ++flushes_;  // attempts running now are retried at once when they end (settle)
    for (const auto& [when, id] : waiting_) {
      auto it = entries_.find(id);
      if (it == entries_.end()) continue;
      ready_.insert(id);
      it->second.state.next_attempt = 0;
    }
    waiting_.clear();
    unreachable_.clear();
    pump();
  }
  // Attempts stuck on a relay that does not answer end now (451 4.4.1), and are retried.
  const std::size_t cut = relay_.cut_stuck(options_.stuck_after);
  if (cut > 0) {
    runtime::log_info("queue: flush cut " + std::to_string(cut) +
                      " relay connection(s) that waited more than " +
                      std::to_string(options_.stuck_after.count()) +
                      " s for the relay; their messages are retried now");
  }
  return cut;
}

asio::awaitable<void> Scheduler::tick_loop() {
  auto& timer = io_objects_->tick;
  for (;;) {
    timer.expires_after(kTick);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::lock_guard lock(mutex_);
    if (stopping_) co_return;
    const auto now = std::time(nullptr);
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
      ready_.insert(waiting_.begin()->second);
      unreachable_.erase(waiting_.begin()->second);
      waiting_.erase(waiting_.begin());
    }
    pump();
  }
}

asio::awaitable<void> Scheduler::control_loop() {
  auto& acc = io_objects_->control;
  for (;;) {
    boost::system::error_code ec;
    asio::local::stream_protocol::socket peer(io_);
    co_await acc.async_accept(peer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      continue;
    }
    std::string line;
    co_await asio::async_read_until(peer, asio::dynamic_buffer(line, 64), '\n',
                                    asio::redirect_error(asio::use_awaitable, ec));
    std::string answer = "ok\n";
    if (ec) {
      continue;
    } else if (line == "flush\n") {
      const std::size_t cut = flush();
      if (cut > 0) answer = "ok cut " + std::to_string(cut) + "\n";
    } else if (line == "scan\n") {
      Scheduler* self = this;
      auto scanned = co_await runtime::on_workers(workers_, catching([self] {
                                                    self->scan(false);
                                                    return 0;
                                                  }));
      if (scanned.error) {
        answer = "scan failed\n";
        try {
          std::rethrow_exception(scanned.error);
        } catch (const std::exception& e) {
          runtime::log_error(std::string("queue: the scan of the spool failed: ") + e.what());
        } catch (...) {
          runtime::log_error("queue: the scan of the spool failed");
        }
      }
    } else {
      answer = "unknown command\n";
    }
    co_await asio::async_write(peer, asio::buffer(answer),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<Scheduler::Finished> Scheduler::deliver(std::string id) {
  // (held_user_ is set before start() and never changes: read without the mutex.)
  // Lock and read the file and its state on the workers (blocking file I/O). What is on
  // disk decides, not the copy in memory: the file is the truth after a scan or a restart.
  struct Loaded {
    std::shared_ptr<MessageLock> lock;
    std::optional<MessageInfo> info;
    DeliveryState state;
    std::string data;
    std::string error;
    bool corrupt = false;
    bool held = false;         // a held user's: moved to hold/ instead of delivered
    bool hold_failed = false;  // a held user's that could not be moved (error says why)
  };
  Spool* spool = &spool_;
  const std::string* idp = &id;
  const HeldUser* held_user = held_user_ ? &held_user_ : nullptr;
  Loaded l;
  {
    // The first attempt of a message a session just committed: its data is in memory, and
    // the message is in a segment, out of the admin's commands' reach.
    std::lock_guard lock(mutex_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.data) {
      l.info = it->second.info;
      l.state = it->second.state;
      l.data = std::move(*it->second.data);
      it->second.data.reset();
      memory_ -= l.data.size();
    }
  }
  if (!l.info) {
    auto loaded = co_await runtime::on_workers(
        workers_, catching([spool, idp, held_user] {
          Loaded r;
          // A message still in a segment has no file to lock: the admin's commands leave it alone
          // until this attempt moves it into active/ or delivers it.
          if (!spool->in_segment(*idp)) {
            r.lock = std::make_shared<MessageLock>(spool->path(*idp, Where::kActive));
          }
          if (!r.lock || r.lock->locked()) {
            r.info = spool->read(*idp, Where::kActive, &r.data, r.error, &r.corrupt);
            if (r.info) r.state = spool->load_state(*idp);
          }
          if (r.corrupt) {
            std::string ignored;
            spool->move(*idp, Where::kActive, Where::kHold, ignored);
          }
          if (r.info && held_user && !r.info->user.empty() && (*held_user)(r.info->user, true)) {
            r.held = spool->move(*idp, Where::kActive, Where::kHold, r.error);
            r.hold_failed = !r.held;
          }
          return r;
        }));
    l = loaded.take();
  } else if (held_user && !l.info->user.empty() && (*held_user)(l.info->user, false)) {
    // A first attempt (from memory): only what the I/O thread knows without blocking.
    auto moved = co_await runtime::on_workers(workers_, catching([spool, idp] {
                                                std::string error;
                                                spool->move(*idp, Where::kActive, Where::kHold,
                                                            error);
                                                return error;
                                              }));
    l.error = moved.take();
    l.held = l.error.empty();
    l.hold_failed = !l.held;
  }
  if (l.held || l.hold_failed) {
    Finished gone;
    if (l.held) {
      runtime::log_warning("queue: " + id + " from " + l.info->user +
                           " held: the account is suspended (truefrom queue list --account " +
                           l.info->user + ")");
      gone.kind = Finished::Kind::kGone;
    } else {
      runtime::log_error("queue: " + id + " from suspended " + l.info->user +
                         " could not be held: " + l.error + "; trying again shortly");
      gone.next_attempt = std::time(nullptr) + kBusyRetry;
    }
    co_return gone;
  }

  if (!l.info) {
    Finished gone;
    if ((l.lock && l.lock->missing()) || l.corrupt) {
      // deleted or held by the admin meanwhile, or damaged (now in hold/)
      if (l.corrupt) {
        runtime::log_error("queue: " + l.error + "; moved to hold/ for the administrator");
      }
      gone.kind = Finished::Kind::kGone;
    } else {
      // the CLI holds the lock, or a passing read error: look again shortly
      if (!l.error.empty()) runtime::log_error("queue: " + l.error + "; trying again shortly");
      gone.next_attempt = std::time(nullptr) + kBusyRetry;
    }
    co_return gone;
  }
  const MessageInfo& info = *l.info;
  DeliveryState state = l.state;

  relay::Envelope env;
  env.mail_from = info.mail_from;
  env.eight_bit = info.eight_bit;
  env.smtputf8 = info.smtputf8;
  for (const auto& r : info.recipients) {
    if (std::find(state.finished.begin(), state.finished.end(), r) == state.finished.end()) {
      env.recipients.push_back(r);
    }
  }
  Outcome out;
  std::string relay_name;
  bool unreachable = false;                   // no relay answered: retried as soon as one does
  std::optional<std::chrono::seconds> retry;  // after this attempt; nullopt: give up
  if (!env.recipients.empty()) {
    if (attempt_hook_) attempt_hook_(info, AttemptStage::kRelay);
    const std::vector<std::string_view> parts{l.data};
    const relay::Attempt a = co_await relay_.send(env, parts, false);
    relay_name = a.relay;
    unreachable = a.unreachable;
    {
      std::lock_guard lock(mutex_);
      retry = retry_after(state.attempts + 1, info.arrival);
    }
    const bool expired = !retry;
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
      const Reply& r =
          (i < a.recipients.size() && !a.recipients[i].positive()) ? a.recipients[i] : a.reply;
      if (r.code == 250 || (r.positive() && a.reply.code == 250)) {
        out.delivered.push_back(env.recipients[i]);
      } else if (r.code >= 500) {
        out.failed.push_back({env.recipients[i], r, false});
      } else if (expired) {
        out.failed.push_back({env.recipients[i], r, true});
      } else {
        out.deferred.emplace_back(env.recipients[i], r);
      }
    }
  }

  // Reports for the failed recipients (never for a null sender: RFC 5321 4.5.5).
  bool reported = true;
  std::string dsn_id;
  if (!out.failed.empty() && !info.mail_from.empty()) {
    DsnInput in;
    in.reporting_host = options_.hostname;
    in.original_sender = info.mail_from;
    in.original_id = id;
    in.arrival = info.arrival;
    in.now = std::time(nullptr);
    in.relay = relay_name;
    in.failed = out.failed;
    std::string why;
    const auto section = smtp::parse_header_section(l.data, &why);
    in.original_headers =
        section ? std::string_view(l.data).substr(0, section->body_offset(l.data.size()))
                : std::string_view{};
    dsn_id = new_queue_id();
    in.message_id = "<" + dsn_id + ".dsn@" + options_.hostname + ">";
    in.boundary = "=_" + dsn_id + ".report";  // RFC 2046 5.1.1: at most 70 characters
    const Dsn dsn = build_dsn(in);
    MessageInfo dinfo;
    dinfo.id = dsn_id;
    dinfo.recipients = {info.mail_from};
    dinfo.eight_bit = dsn.eight_bit;
    dinfo.smtputf8 = dsn.smtputf8;
    dinfo.arrival = in.now;
    const MessageInfo* dp = &dinfo;
    const std::string* text = &dsn.message;
    std::string error;
    std::string* ep = &error;
    auto queued =
        co_await runtime::on_workers(workers_, catching([spool, dp, text, ep] {
                                       auto w = spool->write(*dp, {*text}, *ep);
                                       return w && spool->commit_and_wait(std::move(*w), *ep);
                                     }));
    bool ok = false;
    try {
      ok = queued.take();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    if (ok) {
      dinfo.size = dsn.message.size();
      enqueued(dinfo);
    } else {
      reported = false;
      runtime::log_error("queue: " + id + ": cannot queue the delivery status notification to <" +
                         info.mail_from + ">: " + error + "; the failed recipients are retried");
    }
  }

  for (const auto& r : out.delivered) {
    runtime::log_info("queue: " + id + " to <" + r + ">: delivered via " + relay_name);
    state.finished.push_back(r);
  }
  for (const auto& f : out.failed) {
    if (!reported) {
      out.deferred.emplace_back(f.address, f.reply);
      continue;
    }
    runtime::log_warning(
        "queue: " + id + " to <" + f.address + ">: " +
        (f.expired ? "delivery time expired, last error " : "refused: ") + f.reply.summary() +
        (info.mail_from.empty() ? "; null sender, no report"
                                : "; report " + dsn_id + " to <" + info.mail_from + ">"));
    state.finished.push_back(f.address);
  }
  const auto now = std::time(nullptr);
  ++state.attempts;
  if (!out.deferred.empty()) {
    // Deferred recipients remain only when the policy gave a delay (else they expired);
    // failed recipients that could not be reported (reported == false) retry after it too.
    const auto delay = retry ? *retry : retry_.first;
    state.next_attempt = now + delay.count();
    state.last_error = out.deferred.front().second.summary();
    for (const auto& [r, reply] : out.deferred) {
      runtime::log_info("queue: " + id + " to <" + r + ">: deferred (" + reply.summary() +
                        "), next attempt in " + std::to_string(delay.count()) + " s");
    }
  }
  const bool done = out.deferred.empty();
  const DeliveryState* sp = &state;
  std::string error;
  std::string* ep = &error;
  // A delivered message in a segment only needs its done mark, which the spool's commit
  // thread writes: no round trip through the workers.
  // (Never co_await inside a conditional expression: see NOTES.md.)
  bool saved = true;
  if (!done || !spool_.remove_later(id)) {
    const AttemptHook* hook = &attempt_hook_;
    const MessageInfo* ip = &info;
    auto stored =
        co_await runtime::on_workers(workers_, catching([spool, idp, sp, done, ep, hook, ip] {
                                       if (*hook) (*hook)(*ip, AttemptStage::kRecord);
                                       return done ? spool->remove(*idp, Where::kActive, *ep)
                                                   : spool->save_state(*idp, *sp, *ep);
                                     }));
    // The relay has answered: a throw here is a failed save, not a failed attempt (which
    // would deliver the delivered recipients again at once). The outcome stands in memory.
    try {
      saved = stored.take();
    } catch (const std::exception& e) {
      saved = false;
      error = std::string("cannot record the outcome: ") + e.what();
    } catch (...) {
      saved = false;
      error = "cannot record the outcome: unknown exception";
    }
  }
  if (!saved) {
    runtime::log_error(
        "queue: " + id + ": " + error +
        (done ? "" : "; recipients delivered now may be delivered again after a restart"));
  }
  l.lock.reset();
  Finished finished;
  if (done) {
    finished.kind = Finished::Kind::kDone;
  } else {
    finished.next_attempt = state.next_attempt;
    finished.state = std::move(state);
    finished.unreachable = unreachable;
  }
  co_return finished;
}

}  // namespace truefrom::queue
