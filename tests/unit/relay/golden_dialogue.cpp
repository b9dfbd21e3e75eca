#include "golden_dialogue.hpp"

#include <sstream>
#include <utility>

namespace truefrom::relay::golden {
namespace {

bool starts(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

bool dialogue_line(const std::string& l) {
  return starts(l, "S:") || starts(l, "C:") || starts(l, "=>") || starts(l, "--");
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string unbracket(const std::string& s) {
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') return s.substr(1, s.size() - 2);
  return s;
}

const char* error_name(ClientError e) {
  switch (e) {
    case ClientError::kGreetingRefused:
      return "greeting_refused";
    case ClientError::kEhloRefused:
      return "ehlo_refused";
    case ClientError::kStartTlsNotOffered:
      return "starttls_not_offered";
    case ClientError::kStartTlsRefused:
      return "starttls_refused";
    case ClientError::kDataBeforeTls:
      return "data_before_tls";
    case ClientError::kTlsNotVerified:
      return "tls_not_verified";
    case ClientError::kAuthNotOffered:
      return "auth_not_offered";
    case ClientError::kAuthRefused:
      return "auth_refused";
    case ClientError::kRsetRefused:
      return "rset_refused";
    case ClientError::kRelayClosing:
      return "relay_closing";
    case ClientError::kUnexpectedReply:
      return "unexpected_reply";
    case ClientError::kMalformedReply:
      return "malformed_reply";
    case ClientError::kReplyTooLong:
      return "reply_too_long";
    case ClientError::kConnectionClosed:
      return "connection_closed";
  }
  return "?";
}

const char* state_name(ClientSession::State s) {
  using S = ClientSession::State;
  switch (s) {
    case S::kGreeting:
      return "greeting";
    case S::kEhlo:
      return "ehlo";
    case S::kStartTls:
      return "starttls";
    case S::kTlsHandshake:
      return "tls_handshake";
    case S::kAuth:
      return "auth";
    case S::kReady:
      return "ready";
    case S::kCheck:
      return "check";
    case S::kRset:
      return "rset";
    case S::kMail:
      return "mail";
    case S::kRcpt:
      return "rcpt";
    case S::kData:
      return "data";
    case S::kMessage:
      return "message";
    case S::kClosed:
      return "closed";
  }
  return "?";
}

}  // namespace

std::string escape(std::string_view bytes) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 32 || u > 126) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape(std::string_view text, bool& crlf) {
  std::string out;
  crlf = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (i + 1 == text.size()) {
      crlf = false;
      break;
    }
    const char n = text[++i];
    if (n == 'r') {
      out += '\r';
    } else if (n == 'n') {
      out += '\n';
    } else if (n == 't') {
      out += '\t';
    } else if (n == 'x' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += n;
    }
  }
  return out;
}

std::vector<Case> parse(const std::vector<std::string>& lines) {
  std::vector<Case> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (!starts(lines[i], "### ")) continue;
    Case c;
    c.name = lines[i].substr(4);
    c.begin = i;
    c.config.helo_name = "client.test";
    c.config.starttls = RelayTls::kNone;
    std::size_t j = i + 1;
    bool check = false;  // "% check" applies to the next "% mail"
    for (; j < lines.size() && !starts(lines[j], "### ") && !dialogue_line(lines[j]); ++j) {
      if (!starts(lines[j], "% ")) continue;  // prose
      const auto w = words(lines[j].substr(2));
      if (w.empty()) continue;
      if (w[0] == "starttls" && w.size() == 2) {
        c.config.starttls = w[1] == "required"        ? RelayTls::kRequired
                            : w[1] == "opportunistic" ? RelayTls::kOpportunistic
                                                      : RelayTls::kNone;
      } else if (w[0] == "auth" && w.size() == 3) {
        c.config.username = w[1];
        c.config.password = w[2];
      } else if (w[0] == "max_reply" && w.size() == 2) {
        c.config.max_reply = std::stoul(w[1]);
      } else if (w[0] == "helo" && w.size() == 2) {
        c.config.helo_name = w[1];
      } else if (w[0] == "check" && w.size() == 1) {
        check = true;
      } else if (w[0] == "mail" && w.size() >= 2) {
        Transaction t;
        t.check = std::exchange(check, false);
        t.envelope.mail_from = unbracket(w[1]);
        for (std::size_t k = 2; k < w.size(); ++k) {
          if (w[k] == "8bitmime")
            t.envelope.eight_bit = true;
          else if (w[k] == "smtputf8")
            t.envelope.smtputf8 = true;
          else if (w[k] == "all_or_nothing")
            t.all_or_nothing = true;
          else
            c.error = "unknown mail option " + w[k];
        }
        c.transactions.push_back(std::move(t));
      } else if (w[0] == "rcpt" && w.size() == 2 && !c.transactions.empty()) {
        c.transactions.back().envelope.recipients.push_back(unbracket(w[1]));
      } else if (w[0] == "message" && !c.transactions.empty()) {
        bool crlf = true;
        const std::string text = lines[j].substr(lines[j].find("message") + 8);
        c.transactions.back().parts.push_back(unescape(text, crlf));
      } else {
        c.error = "unknown option: " + lines[j];
      }
    }
    c.header_end = j;
    bool in_turn = false;
    for (; j < lines.size() && !starts(lines[j], "### "); ++j) {
      const std::string& l = lines[j];
      if (l.empty()) continue;
      c.expected += l + "\n";
      if (starts(l, "S:") || starts(l, "--")) {
        if (!in_turn) c.turns.emplace_back();
        in_turn = true;
        Turn& t = c.turns.back();
        t.lines.push_back(l);
        if (starts(l, "-- relay closes the connection")) {
          t.closes = true;
        } else if (starts(l, "S:")) {
          bool crlf = true;
          t.bytes += unescape(l.size() > 3 ? std::string_view(l).substr(3) : "", crlf);
          if (crlf) t.bytes += "\r\n";
        } else {
          c.error = "unknown line: " + l;
        }
      } else {
        in_turn = false;
      }
    }
    c.end = j;
    while (c.end > c.header_end && lines[c.end - 1].empty()) --c.end;
    out.push_back(std::move(c));
    i = j - 1;
  }
  return out;
}

namespace {

// Plays one case; the log of each turn is what the client said and did after it.
class Player {
 public:
  explicit Player(const Case& c) : case_(c), session_(c.config) {}

  std::string run(const std::vector<std::size_t>& cuts, bool byte_by_byte) {
    std::vector<std::string> logs(case_.turns.size() + 1);
    log_ = &logs[0];
    drain();
    std::size_t offset = 0;  // of the turn in all the relay's bytes
    for (std::size_t t = 0; t < case_.turns.size(); ++t) {
      log_ = &logs[t + 1];
      const std::string& bytes = case_.turns[t].bytes;
      std::size_t from = 0;
      while (from < bytes.size()) {
        std::size_t to = bytes.size();
        if (byte_by_byte) to = from + 1;
        for (const std::size_t cut : cuts) {
          if (cut > offset + from && cut < offset + to) to = cut - offset;
        }
        session_.receive(std::string_view(bytes).substr(from, to - from));
        from = to;
        drain();
      }
      if (case_.turns[t].closes) {
        session_.connection_closed();
        drain();
      }
      // The handshake, and the next transaction, come when the relay has said all it said
      // before them (a next message comes later; bytes behind a reply are already there).
      while (tls_pending_ || start_pending_) {
        if (tls_pending_) {
          tls_pending_ = false;
          if (session_.state() != ClientSession::State::kTlsHandshake) continue;
          *log_ += "=> StartTls (handshake done)\n";
          session_.tls_established();
        } else {
          start_pending_ = false;
          start_next();
        }
        drain();
      }
      offset += bytes.size();
    }
    std::string out;
    for (std::size_t t = 0; t <= case_.turns.size(); ++t) {
      if (t > 0) {
        for (const auto& l : case_.turns[t - 1].lines) out += l + "\n";
      }
      out += logs[t];
    }
    out += std::string("=> end ") + state_name(session_.state()) +
           (session_.reusable() ? " (reusable)" : "") + "\n";
    return out;
  }

 private:
  void output() {
    std::string bytes;
    for (const auto p : session_.pending_output()) bytes.append(p);
    std::size_t from = 0;
    while (from < bytes.size()) {
      const auto crlf = bytes.find("\r\n", from);
      if (crlf == std::string::npos) {
        *log_ += "C: " + escape(std::string_view(bytes).substr(from)) + "\\\n";
        break;
      }
      *log_ += "C: " + escape(std::string_view(bytes).substr(from, crlf - from)) + "\n";
      from = crlf + 2;
    }
  }

  void start_next() {
    if (next_ >= case_.transactions.size()) return;
    if (case_.transactions[next_].check && !checked_) {
      checked_ = true;  // the transaction starts at the Ready that ends the check
      session_.check();
      return;
    }
    checked_ = false;
    const Transaction& t = case_.transactions[next_++];
    message_.clear();
    for (const auto& p : t.parts) message_.emplace_back(p);
    session_.start(t.envelope, message_, t.all_or_nothing);
  }

  void drain() {
    for (;;) {
      ClientEvent ev = session_.next_event();
      output();
      if (std::holds_alternative<client_event::NeedData>(ev)) return;
      if (std::holds_alternative<client_event::StartTls>(ev)) {
        tls_pending_ = true;
      } else if (std::holds_alternative<client_event::Ready>(ev)) {
        *log_ += "=> Ready\n";
        start_pending_ = true;
      } else if (const auto* d = std::get_if<client_event::Done>(&ev)) {
        *log_ += "=> Done " + d->reply.summary() + (d->reusable ? "" : " [not reusable]") + "\n";
        for (const auto& r : d->recipients) *log_ += "=>   rcpt " + r.summary() + "\n";
        if (d->reusable) start_pending_ = true;
      } else if (const auto* f = std::get_if<client_event::Failed>(&ev)) {
        const std::string name = f->error.category() == client_category()
                                     ? error_name(static_cast<ClientError>(f->error.value()))
                                     : f->error.message();
        *log_ += "=> Failed " + name + ": " + f->reason + "\n";
      }
    }
  }

  const Case& case_;
  ClientSession session_;
  std::vector<std::string_view> message_;
  std::size_t next_ = 0;
  bool checked_ = false;
  bool tls_pending_ = false;
  bool start_pending_ = false;
  std::string* log_ = nullptr;
};

}  // namespace

std::string play(const Case& c, const std::vector<std::size_t>& cuts, bool byte_by_byte) {
  return Player(c).run(cuts, byte_by_byte);
}

}  // namespace truefrom::relay::golden
