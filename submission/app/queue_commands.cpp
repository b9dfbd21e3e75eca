// `truefrom queue list|show|flush|hold|release|delete`: works on the spool files directly
// (under the per-message lock the scheduler also takes), then tells a running server
// through the control socket, so the commands work the same on a live and a stopped server.
// A message still in a segment file is on its first delivery attempt by a running server:
// it is listed and shown, and changed once the attempt moved it into a file of its own; the
// segments of a stopped server are first moved into active/ (what its next start does).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "auth/identity_syntax.hpp"
#include "submission/app/cli.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/queue/spool.hpp"

namespace truefrom::app {
namespace {

using queue::Spool;
using queue::Where;

std::string age(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  if (seconds < 172800) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

std::string size_text(std::uint64_t n) {
  if (n < 10 * 1024) return std::to_string(n);
  if (n < 10 * 1024 * 1024) return std::to_string(n / 1024) + "K";
  return std::to_string(n / (1024 * 1024)) + "M";
}

// Sends one control command to a running server. Returns false when none listens.
bool notify_server(const Spool& spool, const std::string& command, std::string& answer) {
  const auto path = (spool.dir() / "control").string();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  const std::string line = command + "\n";
  ok = ok && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  char buf[64];
  const ssize_t n = ok ? ::read(fd, buf, sizeof buf) : -1;
  ::close(fd);
  if (n <= 0) return false;
  answer.assign(buf, static_cast<std::size_t>(n));
  return true;
}

void tell(const Spool& spool, const std::string& command) {
  std::string answer;
  if (notify_server(spool, command, answer)) {
    if (answer != "ok\n") std::cerr << "truefrom: warning: the server answered " << answer;
  } else {
    std::cout << "(no running server answered on " << (spool.dir() / "control").string()
              << "; the change applies when it starts)\n";
  }
}

std::vector<std::string> pending_recipients(const queue::MessageInfo& info,
                                            const queue::DeliveryState& st) {
  std::vector<std::string> out;
  for (const auto& r : info.recipients) {
    if (std::find(st.finished.begin(), st.finished.end(), r) == st.finished.end()) {
      out.push_back(r);
    }
  }
  return out;
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) std::cerr << "truefrom: warning: " << w << "\n";
}

bool same_login(const std::string& a, const std::string& b) {
  return auth::ascii_lower(a) == auth::ascii_lower(b);
}

// One message as `queue list` shows it.
struct ListedMessage {
  std::string id;
  std::string state;  // active, delivering, deferred, held; "unreadable" with `error`
  std::int64_t arrival = 0;
  std::uint64_t size = 0;
  std::string mail_from;
  std::vector<std::string> recipients;  // still to deliver
  std::string user;
  unsigned attempts = 0;
  std::int64_t next_attempt = 0;  // deferred only
  std::string last_error;
  std::string error;  // unreadable only
};

// `account`: only that account's messages (nullopt: all).
std::vector<ListedMessage> listed(const Spool& spool, const std::optional<std::string>& account) {
  std::vector<ListedMessage> out;
  for (const auto& m : spool.list_segments()) {
    if (account && !same_login(m.info.user, *account)) continue;
    ListedMessage l;
    l.id = m.info.id;
    l.state = m.held_by_server ? "delivering" : "active";
    l.arrival = m.info.arrival;
    l.size = m.info.size;
    l.mail_from = m.info.mail_from;
    l.recipients = m.info.recipients;
    l.user = m.info.user;
    out.push_back(std::move(l));
  }
  for (Where where : {Where::kActive, Where::kHold}) {
    for (const auto& id : spool.list(where)) {
      std::string error;
      const auto info = spool.read(id, where, nullptr, error);
      if (!info) {  // delivered and removed meanwhile, or unreadable
        if (spool.find(id) && !account) {
          ListedMessage u;
          u.id = id;
          u.state = "unreadable";
          u.error = error;
          out.push_back(std::move(u));
        }
        continue;
      }
      if (account && !same_login(info->user, *account)) continue;
      const auto st = spool.load_state(id);
      ListedMessage l;
      l.id = id;
      l.state = where == Where::kHold ? "held" : st.attempts > 0 ? "deferred" : "active";
      l.arrival = info->arrival;
      l.size = info->size;
      l.mail_from = info->mail_from;
      l.recipients = pending_recipients(*info, st);
      l.user = info->user;
      l.attempts = st.attempts;
      l.next_attempt = where == Where::kActive ? st.next_attempt : 0;
      l.last_error = st.last_error;
      out.push_back(std::move(l));
    }
  }
  return out;
}

// One JSON object per message, one per line, in an array (jq reads it whole; grep a line).
void print_json(const std::vector<ListedMessage>& messages) {
  std::cout << "[";
  const char* sep = "\n";
  for (const auto& m : messages) {
    nlohmann::json j{{"id", m.id}, {"state", m.state}};
    if (m.state == "unreadable") {
      j["error"] = m.error;
    } else {
      j["arrival"] = m.arrival;
      j["size"] = m.size;
      j["mail_from"] = m.mail_from;
      j["recipients"] = m.recipients;
      j["user"] = m.user;
      j["attempts"] = m.attempts;
      if (m.next_attempt) j["next_attempt"] = m.next_attempt;
      if (!m.last_error.empty()) j["last_error"] = m.last_error;
    }
    // Invalid UTF-8 (a raw 8-bit address) is shown with U+FFFD rather than refused.
    std::cout << sep << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    sep = ",\n";
  }
  std::cout << (messages.empty() ? "]\n" : "\n]\n");
}

int list(const Spool& spool, const std::optional<std::string>& account, bool json) {
  const auto messages = listed(spool, account);
  if (json) {
    print_json(messages);
    return 0;
  }
  const auto now = std::time(nullptr);
  for (const auto& m : messages) {
    if (m.state == "unreadable") {
      std::cout << m.id << "  unreadable: " << m.error << "\n";
      continue;
    }
    std::string rcpts;
    for (const auto& r : m.recipients) rcpts += (rcpts.empty() ? "<" : ", <") + r + ">";
    std::cout << m.id << "  " << m.state << "  " << age(now - m.arrival) << "  "
              << size_text(m.size) << "  <" << m.mail_from << "> -> " << rcpts << "\n";
    if (m.attempts > 0) {
      std::cout << "    " << m.attempts << " attempt(s)";
      if (m.state == "deferred") std::cout << ", next in " << age(m.next_attempt - now);
      if (!m.last_error.empty()) std::cout << ", last error: " << m.last_error;
      std::cout << "\n";
    }
  }
  const std::size_t count = messages.size();
  if (account) {
    std::cout << count << " message(s) of " << *account << "\n";
  } else {
    std::cout << (count == 0 ? std::string("the queue is empty")
                             : std::to_string(count) + " message(s)")
              << "\n";
  }
  return 0;
}

// The message in a segment file, if it is there.
std::optional<Spool::SegmentMessage> in_segments(const Spool& spool, const std::string& id,
                                                 bool with_data) {
  for (auto& m : spool.list_segments(with_data)) {
    if (m.info.id == id) return std::move(m);
  }
  return std::nullopt;
}

int show(const Spool& spool, const std::string& id) {
  const auto where = spool.find(id);
  std::optional<queue::MessageInfo> info;
  std::string data, error, note;
  if (where) {
    info = spool.read(id, *where, &data, error);
    if (!info) return fail(error);
    if (*where == Where::kHold) note = " (held)";
  } else if (auto m = in_segments(spool, id, true)) {
    info = std::move(m->info);
    data = std::move(m->data);
    note = m->held_by_server ? " (first delivery attempt under way)"
                             : " (in a segment file: moved to active/ when the server starts)";
  } else {
    return fail("no message " + id + " in the queue (see truefrom queue list)");
  }
  const auto st = where ? spool.load_state(id) : queue::DeliveryState{};
  const auto now = std::time(nullptr);
  std::cout << "id: " << id << note << "\n"
            << "from: <" << info->mail_from << ">\n";
  for (const auto& r : info->recipients) {
    const bool done = std::find(st.finished.begin(), st.finished.end(), r) != st.finished.end();
    std::cout << "to: <" << r << ">" << (done ? " (finished)" : "") << "\n";
  }
  std::cout << "user: " << (info->user.empty() ? "(report generated by truefrom)" : info->user)
            << "\n"
            << "age: " << age(now - info->arrival) << "\n"
            << "size: " << info->size << " octets" << (info->eight_bit ? ", 8BITMIME" : "")
            << (info->smtputf8 ? ", SMTPUTF8" : "") << "\n"
            << "attempts: " << st.attempts << "\n";
  if (st.attempts > 0 && where == Where::kActive) {
    std::cout << "next attempt in: " << age(st.next_attempt - now) << "\n";
  }
  if (!st.last_error.empty()) std::cout << "last error: " << st.last_error << "\n";
  std::string why;
  const auto section = smtp::parse_header_section(data, &why);
  const std::size_t end =
      section ? section->body_offset(data.size()) : std::min<std::size_t>(data.size(), 4096);
  std::cout << "\n" << data.substr(0, end);
  return 0;
}

// hold, release, delete: under the message's lock, so never while it is being delivered.
// `tell_server`: poke a running server afterwards (one poke for many changes: false).
int change(Spool& spool, const std::string& verb, const std::string& id, bool tell_server = true) {
  auto where = spool.find(id);
  if (!where) {
    std::vector<std::string> warnings;
    if (spool.recover(warnings) > 0) where = spool.find(id);  // a stopped server's segments
    print_warnings(warnings);
  }
  if (!where) {
    if (in_segments(spool, id, false)) {
      return fail(id +
                  " is on its first delivery attempt right now; try again in a few seconds "
                  "(a message that has to wait can be changed)");
    }
    return fail("no message " + id + " in the queue (see truefrom queue list)");
  }
  if (verb == "hold" && *where == Where::kHold) return fail(id + " is already held");
  if (verb == "release" && *where == Where::kActive) return fail(id + " is not held");
  std::string error;
  {
    queue::MessageLock lock(spool.path(id, *where));
    if (!lock.locked()) {
      if (lock.missing()) return fail(id + " left the queue meanwhile (delivered or moved)");
      return fail(id + " is being delivered right now; try again in a second");
    }
    bool ok = false;
    if (verb == "delete") {
      ok = spool.remove(id, *where, error);
    } else if (verb == "hold") {
      ok = spool.move(id, Where::kActive, Where::kHold, error);
    } else {
      ok = spool.move(id, Where::kHold, Where::kActive, error);
    }
    if (!ok) return fail(error);
  }  // unlocked before the server looks at it
  std::cout << id
            << (verb == "delete" ? " deleted"
                : verb == "hold" ? " held"
                                 : " released")
            << "\n";
  if (tell_server && (*where == Where::kActive || verb == "release")) tell(spool, "scan");
  return 0;
}

// What belongs to `login` in active/ and hold/, and in segments (not changeable yet).
struct AccountMessages {
  std::vector<std::pair<std::string, Where>> files;
  std::vector<std::string> in_segments;
};
AccountMessages messages_of(const Spool& spool, const std::string& login) {
  AccountMessages out;
  for (Where where : {Where::kActive, Where::kHold}) {
    for (const auto& id : spool.list(where)) {
      std::string error;
      const auto info = spool.read(id, where, nullptr, error);
      if (info && same_login(info->user, login)) out.files.emplace_back(id, where);
    }
  }
  for (const auto& m : spool.list_segments()) {
    if (same_login(m.info.user, login)) out.in_segments.push_back(m.info.id);
  }
  return out;
}

}  // namespace

int queue_change_account(const Config& config, const std::string& verb, const std::string& login) {
  Spool spool(config.queue_dir);
  if (!spool.exists()) {
    std::cout << "no queue at " << config.queue_dir.string() << ": no message of " << login
              << " to " << verb << "\n";
    return 0;
  }
  std::vector<std::string> warnings;
  spool.recover(warnings);  // a stopped server's segments become files that can be changed
  print_warnings(warnings);
  const Where from = verb == "release" ? Where::kHold : Where::kActive;
  const auto found = messages_of(spool, login);
  std::size_t changed = 0, failed = 0;
  for (const auto& [id, where] : found.files) {
    if (verb != "delete" && where != from) continue;
    if (change(spool, verb, id, false) == 0) {
      ++changed;
    } else {
      ++failed;
    }
  }
  for (const auto& id : found.in_segments) {
    std::cout << id << " is on its first delivery attempt right now: "
              << (verb == "delete" ? "it may still be delivered" : "not changed") << "\n";
    ++failed;
  }
  std::cout << changed << " message(s) of " << login << " "
            << (verb == "delete" ? "deleted"
                : verb == "hold" ? "held"
                                 : "released")
            << (failed ? ", " + std::to_string(failed) + " not (see above; try again)" : "")
            << "\n";
  if (changed) tell(spool, "scan");
  return failed ? 1 : 0;
}

namespace {

int account_messages(const Args& a, const Config& config, const std::string& verb) {
  if (verb == "release") {
    // Released while still suspended, they would be held again when the server comes to
    // deliver them.
    Database db(config);
    std::string error;
    if (!db.open(error)) return fail(error);
    std::optional<auth::AccountIdentities> account;
    if (auto st = db.store().find_for_auth(*a.account, account); !st) return fail(describe(st));
    if (account && account->account.suspended) {
      return fail(account->account.login +
                  " is suspended: its messages would be held again. Resume it first "
                  "(truefrom account resume " +
                  account->account.login + "), or delete them (queue delete --account)");
    }
  }
  return queue_change_account(config, verb, *a.account);
}

}  // namespace

int cmd_queue(const Args& a, const Config& config) {
  const auto& p = a.positional;
  const std::string verb = p.size() >= 2 ? p[1] : std::string{};
  const bool takes_id = verb == "show" || verb == "hold" || verb == "release" || verb == "delete";
  if (!takes_id && verb != "list" && verb != "flush") {
    return usage_error(
        verb.empty() ? "expected a queue command" : "unknown queue command \"" + verb + "\"",
        "queue");
  }
  if (a.account) {
    if (verb == "show" || verb == "flush") {
      return usage_error(verb + " takes no --account", "queue");
    }
    if (p.size() != 2) {
      return usage_error("expected: truefrom queue " + verb + " --account LOGIN (no ID)", "queue");
    }
    if (verb != "list") return account_messages(a, config, verb);
  }
  if (p.size() != (takes_id ? 3u : 2u)) {
    return usage_error(
        takes_id ? "expected: truefrom queue " + verb + " ID" : "expected: truefrom queue " + verb,
        "queue");
  }
  Spool spool(config.queue_dir);
  if (!spool.exists()) {
    return fail("no queue at " + config.queue_dir.string() +
                " (the server creates it at start; check [queue] dir and --config)");
  }
  if (takes_id && !queue::valid_id(p[2])) {
    return fail("\"" + p[2] + "\" is not a queue id (see truefrom queue list)");
  }
  if (verb == "list") return list(spool, a.account, a.json);
  if (verb == "show") return show(spool, p[2]);
  if (verb == "flush") {
    std::string answer;
    if (!notify_server(spool, "flush", answer)) {
      return fail("no running server answered on " + (spool.dir() / "control").string() +
                  "; a server delivers everything due when it starts");
    }
    std::cout << "flushed: every deferred message is due now\n";
    // "ok cut N": deliveries stuck on a relay that did not answer were cut (and retried).
    if (answer.rfind("ok cut ", 0) == 0) {
      std::cout << "cut " << answer.substr(7, answer.find('\n') - 7)
                << " delivery attempt(s) stuck waiting for the relay; retried now\n";
    }
    return 0;
  }
  return change(spool, verb, p[2]);
}

}  // namespace truefrom::app
