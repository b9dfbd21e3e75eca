// A scripted transport that drives one smtp::Session through a list of reads and records
// what happens, in order: reply lines, accepted messages, TLS handshakes, the close. Used by
// the golden dialogues (session_golden_test.cpp) and by the few session tests that are not
// dialogues (session_test.cpp).
// Thread-safety: none needed; one driver per test.
#pragma once

#include <gtest/gtest.h>

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
  static constexpr char kHex[] = "0123456789ABCDEF";
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

/// Feeds `reads` to a new Session, each only when the session asks for data (NeedData), and
/// answers its decision events as `transport` says. Stops at Close or when the reads are
/// used up.
inline Recording drive(const SessionConfig& config, const Transport& transport,
                       const std::vector<std::string_view>& reads) {
  Session s(config);
  Recording rec;
  rec.per_read.resize(reads.size() + 1);
  std::size_t next = 0;
  std::string pending_output;
  auto take_output = [&] {
    pending_output += s.take_output();
    std::size_t pos = 0;
    for (std::size_t end; (end = pending_output.find("\r\n", pos)) != std::string::npos;
         pos = end + 2) {
      rec.per_read[next].push_back("S: " +
                                   escape(std::string_view(pending_output).substr(pos, end - pos)));
    }
    pending_output.erase(0, pos);
  };
  auto record_message = [&](std::string_view m) {
    std::size_t pos = 0;
    for (std::size_t end; (end = m.find("\r\n", pos)) != std::string_view::npos; pos = end + 2) {
      const std::string line = escape(m.substr(pos, end - pos));
      rec.per_read[next].push_back(line.empty() ? "M:" : "M: " + line);
    }
    if (pos < m.size() || m.empty()) {  // a last line without CRLF (never from DATA today)
      rec.per_read[next].push_back("M: " + escape(m.substr(pos)) + "\\c");
    }
  };
  std::size_t mail = 0;
  std::size_t rcpt = 0;
  std::size_t data = 0;
  auto decide = [&s](const std::vector<Reply>& replies, std::size_t& n) {
    const Reply& r = replies.at(std::min(n++, replies.size() - 1));
    if (r.code >= 200 && r.code < 300) {
      s.accept(r);
    } else {
      s.reply(r);
    }
  };
  enum class Login { kNone, kPlain, kUser, kPassword } login = Login::kNone;
  std::string login_user;
  auto check = [&](std::string_view user, std::string_view password) {
    if (user == transport.user && password == transport.password) {
      s.auth_succeeded(std::string(user));
    } else {
      s.auth_failed(transport.auth_failure);
    }
  };
  auto check_plain = [&](std::string_view response) {  // RFC 4616: authzid NUL authcid NUL pw
    const auto first = response.find('\0');
    const auto second = first == std::string_view::npos ? first : response.find('\0', first + 1);
    if (second == std::string_view::npos || first != 0) {
      s.auth_failed(transport.auth_failure);
    } else {
      check(response.substr(1, second - 1), response.substr(second + 1));
    }
  };
  for (int guard = 0; guard < 1000000; ++guard) {
    Event ev = s.next_event();
    take_output();
    if (std::holds_alternative<event::NeedData>(ev)) {
      if (next == reads.size()) return rec;
      s.receive(reads[next++]);
    } else if (std::holds_alternative<event::StartTls>(ev)) {
      rec.per_read[next].push_back("-- tls");
      s.tls_established();
    } else if (auto* a = std::get_if<event::AuthStart>(&ev)) {
      if (a->mechanism == "PLAIN") {
        if (a->initial_response) {
          check_plain(*a->initial_response);
        } else {
          login = Login::kPlain;
          s.auth_challenge("");
        }
      } else {
        login = Login::kUser;
        s.auth_challenge("Username:");
      }
    } else if (auto* r = std::get_if<event::AuthResponse>(&ev)) {
      if (login == Login::kPlain) {
        check_plain(r->response);
      } else if (login == Login::kUser) {
        login_user = r->response;
        login = Login::kPassword;
        s.auth_challenge("Password:");
      } else {
        check(login_user, r->response);
      }
    } else if (std::holds_alternative<event::MailFrom>(ev)) {
      decide(transport.mail, mail);
    } else if (std::holds_alternative<event::RcptTo>(ev)) {
      decide(transport.rcpt, rcpt);
    } else if (std::holds_alternative<event::DataStart>(ev)) {
      EXPECT_EQ(s.message(), "") << "DATA starts with content of an earlier message";
    } else if (std::holds_alternative<event::DataEnd>(ev)) {
      record_message(s.message());
      decide(transport.data, data);
    } else if (std::holds_alternative<event::DataAborted>(ev)) {
      EXPECT_EQ(s.message(), "") << "a refused message was not dropped";
    } else if (std::holds_alternative<event::Close>(ev)) {
      rec.per_read[next].push_back("-- close");
      return rec;
    }
  }
  ADD_FAILURE() << "session did not settle";
  return rec;
}

}  // namespace truefrom::smtp::golden
