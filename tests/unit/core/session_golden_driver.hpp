// A scripted transport that drives one smtp::Session through a list of reads and records
// what happens, in order: reply lines, accepted messages, TLS handshakes, the close. Used by
// the golden dialogues (session_golden_test.cpp) and by the few session tests that are not
// dialogues (session_test.cpp).
// Thread-safety: none needed; one driver per test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "submission/core/session.hpp"

namespace truefrom::smtp::golden {

/// The decisions the transport makes, as a golden file's `%` lines state them.
struct Transport {
  /// The one account AUTH PLAIN and AUTH LOGIN accept (`% auth LOGIN PASSWORD`).
  std::string user = "alice";
  std::string password = "secret";
  /// The answer to any other credentials (`% auth-failure REPLY`).
  Reply auth_failure{535, {5, 7, 8}, "Authentication credentials invalid"};
  /// Answers to MAIL FROM, RCPT TO and the end of DATA (`% mail|rcpt|data REPLY`), in order;
  /// the last one answers every later decision. A 2xx reply accepts, any other refuses.
  std::vector<Reply> mail{Reply{250, {2, 1, 0}, "Sender OK"}};
  std::vector<Reply> rcpt{Reply{250, {2, 1, 5}, "Recipient OK"}};
  std::vector<Reply> data{Reply{250, {2, 0, 0}, "queued"}};
};

/// A golden line for `text` after its prefix: backslash, CR, LF, TAB, other control octets
/// and octets >= 0x80 escaped (\\ \r \n \t \xHH), and a space at the end written \x20, so
/// that the line survives editors that strip trailing blanks.
inline std::string escape(std::string_view text) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f || (c == ' ' && i + 1 == text.size())) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// What one run produced, one entry per read (entry 0: before the first read, i.e. the
/// greeting). Each record is a golden line without its indentation: "S: <reply line>",
/// "M: <message line>", "-- tls" or "-- close".
struct Recording {
  std::vector<std::vector<std::string>> per_read;

  std::vector<std::string> flat() const {
    std::vector<std::string> out;
    for (const auto& r : per_read) out.insert(out.end(), r.begin(), r.end());
    return out;
  }
};

/// One run: a Session, the transport's state and what was recorded so far.
class Run {
 public:
  Run(const SessionConfig& config, const Transport& transport, std::size_t reads)
      : s_(config), transport_(transport) {
    rec_.per_read.resize(reads + 1);
  }

  /// Feeds `reads`, each only when the session asks for data (NeedData), and answers its
  /// decision events. Stops at Close or when the reads are used up.
  Recording drive(const std::vector<std::string_view>& reads) {
    for (int guard = 0; guard < 1000000; ++guard) {
      Event ev = s_.next_event();
      take_output();
      if (std::holds_alternative<event::NeedData>(ev)) {
        if (next_ == reads.size()) return rec_;
        s_.receive(reads[next_++]);
      } else if (std::holds_alternative<event::Close>(ev)) {
        record("-- close");
        return rec_;
      } else {
        answer(ev);
      }
    }
    ADD_FAILURE() << "session did not settle";
    return rec_;
  }

 private:
  enum class Login { kNone, kPlain, kUser, kPassword };

  void record(std::string line) { rec_.per_read[next_].push_back(std::move(line)); }

  void answer(const Event& ev) {
    if (std::holds_alternative<event::StartTls>(ev)) {
      record("-- tls");
      s_.tls_established();
    } else if (const auto* a = std::get_if<event::AuthStart>(&ev)) {
      auth_start(*a);
    } else if (const auto* r = std::get_if<event::AuthResponse>(&ev)) {
      auth_response(*r);
    } else if (std::holds_alternative<event::MailFrom>(ev)) {
      decide(transport_.mail, mail_);
    } else if (std::holds_alternative<event::RcptTo>(ev)) {
      decide(transport_.rcpt, rcpt_);
    } else if (std::holds_alternative<event::DataStart>(ev)) {
      EXPECT_EQ(s_.message(), "") << "DATA starts with content of an earlier message";
    } else if (std::holds_alternative<event::DataEnd>(ev)) {
      record_message(s_.message());
      decide(transport_.data, data_);
    } else if (std::holds_alternative<event::DataAborted>(ev)) {
      EXPECT_EQ(s_.message(), "") << "a refused message was not dropped";
    }
  }

  void take_output() {
    output_ += s_.take_output();
    std::size_t pos = 0;
    for (std::size_t end = 0; (end = output_.find("\r\n", pos)) != std::string::npos;
         pos = end + 2) {
      record("S: " + escape(std::string_view(output_).substr(pos, end - pos)));
    }
    output_.erase(0, pos);
  }

  void record_message(std::string_view m) {
    std::size_t pos = 0;
    for (std::size_t end = 0; (end = m.find("\r\n", pos)) != std::string_view::npos;
         pos = end + 2) {
      const std::string line = escape(m.substr(pos, end - pos));
      record(line.empty() ? "M:" : "M: " + line);
    }
    if (pos < m.size() || m.empty()) {  // a last line without CRLF (never from DATA today)
      record("M: " + escape(m.substr(pos)) + "\\c");
    }
  }

  void decide(const std::vector<Reply>& replies, std::size_t& n) {
    const Reply& r = replies.at(std::min(n++, replies.size() - 1));
    if (r.code >= 200 && r.code < 300) {
      s_.accept(r);
    } else {
      s_.reply(r);
    }
  }

  void check(std::string_view user, std::string_view password) {
    if (user == transport_.user && password == transport_.password) {
      s_.auth_succeeded(std::string(user));
    } else {
      s_.auth_failed(transport_.auth_failure);
    }
  }

  void check_plain(std::string_view response) {  // RFC 4616: authzid NUL authcid NUL passwd
    const auto first = response.find('\0');
    const auto second = first == std::string_view::npos ? first : response.find('\0', first + 1);
    if (second == std::string_view::npos || first != 0) {
      s_.auth_failed(transport_.auth_failure);
    } else {
      check(response.substr(1, second - 1), response.substr(second + 1));
    }
  }

  void auth_start(const event::AuthStart& a) {
    if (a.mechanism != "PLAIN") {  // LOGIN: the session offers no other mechanism
      login_ = Login::kUser;
      s_.auth_challenge("Username:");
    } else if (a.initial_response) {
      check_plain(*a.initial_response);
    } else {
      login_ = Login::kPlain;
      s_.auth_challenge("");
    }
  }

  void auth_response(const event::AuthResponse& r) {
    if (login_ == Login::kPlain) {
      check_plain(r.response);
    } else if (login_ == Login::kUser) {
      login_user_ = r.response;
      login_ = Login::kPassword;
      s_.auth_challenge("Password:");
    } else {
      check(login_user_, r.response);
    }
  }

  Session s_;
  const Transport& transport_;
  Recording rec_;
  std::size_t next_ = 0;
  std::string output_;
  std::size_t mail_ = 0;
  std::size_t rcpt_ = 0;
  std::size_t data_ = 0;
  Login login_ = Login::kNone;
  std::string login_user_;
};

/// Runs `reads` through a new Session with `transport` deciding (see Run::drive).
inline Recording drive(const SessionConfig& config, const Transport& transport,
                       const std::vector<std::string_view>& reads) {
  return Run(config, transport, reads.size()).drive(reads);
}

}  // namespace truefrom::smtp::golden
