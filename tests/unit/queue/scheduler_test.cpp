// The scheduler against a real RelayClient: a delivery attempt that throws still releases its
// message and its slot and is retried; deferred messages come back spread over the retry
// window. The relay is a small SMTP server on a thread (MiniRelay), or a port that refuses.
#include "submission/queue/scheduler.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace truefrom::queue {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A socket bound to 127.0.0.1 on a port of the kernel's choice, listening or not (a bound
// socket that does not listen refuses connections: a relay that is down).
int bound_socket(std::uint16_t& port, bool listening) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (listening && ::listen(fd, 16) != 0) ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ADD_FAILURE() << "cannot open a test socket";
  }
  port = ntohs(a.sin_port);
  return fd;
}

// Answers SMTP with 250 to everything (354 to DATA) and keeps every message it got.
class MiniRelay {
 public:
  MiniRelay() : listener_(bound_socket(port_, true)) {
    accepter_ = std::thread([this] { accept_loop(); });
  }
  // On a socket bound already (a relay that refused connections until now).
  MiniRelay(int bound, std::uint16_t port) : port_(port), listener_(bound) {
    if (::listen(listener_, 16) != 0) ADD_FAILURE() << "cannot listen";
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~MiniRelay() {
    ::shutdown(listener_, SHUT_RDWR);  // accept() returns
    accepter_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : servers_) t.join();
    ::close(listener_);
  }
  MiniRelay(const MiniRelay&) = delete;
  MiniRelay& operator=(const MiniRelay&) = delete;
  std::uint16_t port() const { return port_; }
  // While set, every recipient gets 451 (the relay cannot take mail now).
  void defer(bool on) { defer_ = on; }
  // Each message's end of data is answered after this long (a slow relay).
  void answer_after(std::chrono::milliseconds delay) { delay_ = delay; }
  // The most messages that were between DATA and its answer at the same time.
  int most_at_once() const { return most_at_once_; }
  // Waits until `n` messages arrived; returns them.
  std::vector<std::string> wait_for(std::size_t n, std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, limit, [&] { return messages_.size() >= n; });
    return messages_;
  }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      std::lock_guard lock(mutex_);
      connections_.push_back(fd);
      servers_.emplace_back([this, fd] { serve(fd); });
    }
  }
  static void say(int fd, std::string_view text) {
    (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  }
  void serve(int fd) {
    say(fd, "220 mini ESMTP\r\n");
    std::string in, message;
    bool data = false;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      for (std::size_t eol; (eol = in.find("\r\n")) != std::string::npos;) {
        const std::string line = in.substr(0, eol);
        in.erase(0, eol + 2);
        std::string verb = line.substr(0, 4);
        for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (data && line == ".") {
          data = false;
          std::this_thread::sleep_for(delay_.load());
          --at_once_;
          {
            std::lock_guard lock(mutex_);
            messages_.push_back(std::move(message));
          }
          message.clear();
          cv_.notify_all();
          say(fd, "250 2.0.0 queued\r\n");
        } else if (data) {
          message += line + "\r\n";
        } else if (verb == "RCPT" && defer_) {
          say(fd, "451 4.3.0 not now\r\n");
        } else if (verb == "DATA") {
          data = true;
          const int now = ++at_once_;
          for (int m = most_at_once_; now > m && !most_at_once_.compare_exchange_weak(m, now);) {
          }
          say(fd, "354 go ahead\r\n");
        } else if (verb == "QUIT") {
          say(fd, "221 2.0.0 bye\r\n");
          ::close(fd);
          return;
        } else {
          say(fd, "250 2.0.0 ok\r\n");
        }
      }
    }
    ::close(fd);
  }

  std::uint16_t port_ = 0;
  int listener_;
  std::thread accepter_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<int> connections_;
  std::vector<std::thread> servers_;
  std::vector<std::string> messages_;
  std::atomic<bool> defer_{false};
  std::atomic<std::chrono::milliseconds> delay_{std::chrono::milliseconds(0)};
  std::atomic<int> at_once_{0}, most_at_once_{0};
};

// Sends one command to the scheduler's control socket, as `truefrom queue flush` does.
std::string control(const fs::path& dir, const std::string& command) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string path = (dir / "control").string();
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string line = command + "\n";
    (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    char buf[64];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) answer.assign(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer;
}

// A spool, a relay client for `relay_port`, a scheduler, and an io_context on a thread.
class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("scheduler-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    if (scheduler_) scheduler_->stop();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    workers_.join();
    scheduler_.reset();
    relay_.reset();
    spool_.reset();
    fs::remove_all(dir_);
  }
  // Starts everything except the scheduler's deliveries' hook, which the test sets first.
  void start(std::uint16_t relay_port, QueueOptions options,
             Scheduler::AttemptHook hook = nullptr) {
    std::string error;
    spool_ = std::make_unique<Spool>(dir_);
    ASSERT_TRUE(spool_->prepare(error)) << error;
    relay::RelayOptions ro;
    ro.hosts = {{"127.0.0.1", relay_port}};
    ro.starttls = relay::RelayTls::kNone;
    ro.timeouts.command = std::chrono::seconds(10);
    relay_ = relay::RelayClient::create(ro, error);
    ASSERT_TRUE(relay_) << error;
    options.hostname = "queue.test";
    scheduler_ = std::make_unique<Scheduler>(io_, *spool_, *relay_, workers_, options);
    if (hook) scheduler_->set_attempt_hook(std::move(hook));
    ASSERT_TRUE(scheduler_->start(error)) << error;
    io_thread_ = std::thread([this] { io_.run(); });
  }
  // Spools a message as a session does and hands it to the scheduler.
  MessageInfo submit(const std::string& id, const std::string& body) {
    MessageInfo info;
    info.id = id;
    info.mail_from = "alice@example.test";
    info.recipients = {"bob@dest.test"};
    info.arrival = std::time(nullptr);
    const std::string data = "Subject: " + id + "\r\n\r\n" + body + "\r\n";
    std::string error;
    auto w = spool_->write(info, {data}, error);
    EXPECT_TRUE(w && spool_->commit_and_wait(std::move(*w), error)) << error;
    info.size = data.size();
    scheduler_->enqueued(info, data);
    return info;
  }

  fs::path dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  boost::asio::thread_pool workers_{2};
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<relay::RelayClient> relay_;
  std::unique_ptr<Scheduler> scheduler_;
  std::thread io_thread_;
};

// An attempt that throws (here: the hook, before the relay transaction) must not leave the
// message "running": with one delivery at a time, a leaked slot would stop the queue. The
// message after it is delivered, and so is the one that threw, on its next attempt.
TEST_F(SchedulerTest, AnAttemptThatThrowsIsRetriedAndFreesItsSlot) {
  MiniRelay relay;
  std::atomic<int> attempts_a{0};
  QueueOptions options;
  options.retry_first = 1s;
  options.retry_max = 1s;
  options.concurrency = 1;
  start(relay.port(), options, [&](const MessageInfo& info, Scheduler::AttemptStage stage) {
    if (stage != Scheduler::AttemptStage::kRelay) return;
    if (info.id == "0123456789ABCDEFA1" && ++attempts_a == 1) {
      throw std::runtime_error("injected failure");
    }
  });
  submit("0123456789ABCDEFA1", "first");
  submit("0123456789ABCDEFB2", "second");
  const auto got = relay.wait_for(2, 20s);
  ASSERT_EQ(got.size(), 2u) << "a throwing attempt kept its slot or its message";
  EXPECT_NE(got[0].find("second"), std::string::npos);  // B went while A waited
  EXPECT_NE(got[1].find("first"), std::string::npos);
  EXPECT_EQ(attempts_a.load(), 2);
  // Delivered: nothing left in the spool.
  for (int i = 0;
       i < 100 && (spool_->find("0123456789ABCDEFA1") || spool_->find("0123456789ABCDEFB2")); ++i) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(spool_->find("0123456789ABCDEFA1"));
  EXPECT_FALSE(spool_->find("0123456789ABCDEFB2"));
}

// A throw that is not a std::exception is caught as well.
TEST_F(SchedulerTest, AnythingThrownIsCaught) {
  MiniRelay relay;
  std::atomic<int> attempts{0};
  QueueOptions options;
  options.retry_first = 1s;
  options.retry_max = 1s;
  options.concurrency = 1;
  start(relay.port(), options, [&](const MessageInfo&, Scheduler::AttemptStage stage) {
    if (stage == Scheduler::AttemptStage::kRelay && ++attempts == 1) throw 42;
  });
  submit("0123456789ABCDEFC3", "odd throw");
  EXPECT_EQ(relay.wait_for(1, 20s).size(), 1u);
  EXPECT_EQ(attempts.load(), 2);
}

// A throw on a worker (here: while a deferral's state is written) reaches the attempt too,
// instead of ending the process from the pool's thread; the message is tried again.
TEST_F(SchedulerTest, AThrowOnAWorkerIsRetriedToo) {
  std::uint16_t port = 0;
  const int refusing = bound_socket(port, false);
  std::atomic<int> relay_stages{0}, record_stages{0};
  QueueOptions options;
  options.retry_first = 1s;
  options.retry_max = 1s;
  options.concurrency = 1;
  start(port, options, [&](const MessageInfo&, Scheduler::AttemptStage stage) {
    if (stage == Scheduler::AttemptStage::kRelay) ++relay_stages;
    if (stage == Scheduler::AttemptStage::kRecord && ++record_stages == 1) {
      throw std::runtime_error("injected failure on a worker");
    }
  });
  submit("0123456789ABCDEFD4", "deferred twice");
  DeliveryState st;
  for (int i = 0; i < 400 && st.attempts == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    st = spool_->load_state("0123456789ABCDEFD4");
  }
  ::close(refusing);
  EXPECT_GE(relay_stages.load(), 2);
  EXPECT_GE(record_stages.load(), 2);
  // The first attempt's state never got written; the second's did.
  EXPECT_EQ(st.attempts, 1u);
  EXPECT_NE(st.last_error.find("451"), std::string::npos) << st.last_error;
}

// Messages deferred because no relay answered wait for the relay, not for their backoff
// (an hour here): the relay client's prober finds it answering again, and they all go.
TEST_F(SchedulerTest, DeferredWhileNoRelayAnsweredGoWhenItAnswersAgain) {
  std::uint16_t port = 0;
  const int refusing = bound_socket(port, false);
  QueueOptions options;
  options.retry_first = 3600s;
  options.retry_max = 3600s;
  options.concurrency = 2;
  start(port, options);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCF%04d", i);
    ids.emplace_back(id);
    submit(id, "waited for the relay " + std::to_string(i));
  }
  for (int round = 0; round < 400; ++round) {
    const bool all = std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return spool_->load_state(id).attempts >= 1;
    });
    if (all) break;
    std::this_thread::sleep_for(50ms);
  }
  for (const auto& id : ids) ASSERT_GE(spool_->load_state(id).attempts, 1u) << id;
  MiniRelay relay(refusing, port);  // the relay answers from now on
  const auto got = relay.wait_for(ids.size(), 20s);
  EXPECT_EQ(got.size(), ids.size()) << "deferred messages waited for their own backoff";
}

// After a flush every deferred message is due at once; they start at most `concurrency` at
// a time, each as a slot frees, never all together.
TEST_F(SchedulerTest, AFlushStartsNoMoreThanTheConcurrencyAtOnce) {
  MiniRelay relay;
  relay.defer(true);
  QueueOptions options;
  options.retry_first = 600s;
  options.concurrency = 2;
  start(relay.port(), options);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCE%04d", i);
    ids.emplace_back(id);
    submit(id, "flushed " + std::to_string(i));
  }
  for (int round = 0; round < 300; ++round) {
    const bool all = std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return spool_->load_state(id).attempts == 1;
    });
    if (all) break;
    std::this_thread::sleep_for(50ms);
  }
  relay.defer(false);
  relay.answer_after(200ms);
  EXPECT_EQ(control(dir_, "flush"), "ok\n");
  EXPECT_EQ(relay.wait_for(6, 20s).size(), 6u);
  EXPECT_GE(relay.most_at_once(), 1);
  EXPECT_LE(relay.most_at_once(), 2);
}

// Messages deferred together (the relay is down) get next attempts spread over the retry
// window (±10% of 100 s here), not all the same second.
TEST_F(SchedulerTest, DeferredMessagesAreSpreadOverTheRetryWindow) {
  std::uint16_t port = 0;
  const int refusing = bound_socket(port, false);
  QueueOptions options;
  options.retry_first = 100s;
  options.retry_max = 3600s;
  options.concurrency = 8;
  start(port, options);
  const auto before = std::time(nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0123456789ABCD%04d", i);
    ids.emplace_back(id);
    submit(id, "deferred " + std::to_string(i));
  }
  std::vector<std::int64_t> next;
  for (int round = 0; round < 300; ++round) {
    next.clear();
    for (const auto& id : ids) {
      const auto st = spool_->load_state(id);
      if (st.attempts == 1) next.push_back(st.next_attempt);
    }
    if (next.size() == ids.size()) break;
    std::this_thread::sleep_for(50ms);
  }
  const auto after = std::time(nullptr);
  ::close(refusing);
  ASSERT_EQ(next.size(), ids.size()) << "not every message was deferred";
  const auto [lo, hi] = std::minmax_element(next.begin(), next.end());
  EXPECT_GE(*lo, before + 90);
  EXPECT_LE(*hi, after + 110);
  EXPECT_GE(*hi - *lo, 5) << "the deferred messages would all come back together";
}

}  // namespace
}  // namespace truefrom::queue
