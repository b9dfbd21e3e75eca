#include "submission/relay/client_session.hpp"

#include <utility>

#include "submission/core/command.hpp"
#include "submission/relay/dot_stuffing.hpp"

namespace truefrom::relay {

using smtp::Reply;

namespace {

std::string one_line(std::string text) {
  for (char& ch : text) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return text;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (const char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 32 && u <= 126) ? c : '?';
  }
  return out;
}

// The relay's refusal, passed back with its own codes.
Reply refusal(const Reply& relay, std::string_view stage) {
  Reply r = relay;
  if (!r.status) r.status = smtp::EnhancedStatus{relay.code / 100, 0, 0};
  r.text = "Relay refused " + std::string(stage) + ": " + one_line(relay.text);
  r.close_after = false;
  return r;
}

bool refused(const Reply& r) { return r.code >= 400 && r.code <= 599; }

}  // namespace

ClientSession::ClientSession(ClientConfig config) : config_(std::move(config)) {}

void ClientSession::receive(std::string_view bytes) {
  if (state_ == State::kClosed || bytes.empty()) return;
  // RFC 3207 6: nothing the relay sent before the handshake may be taken as said over TLS.
  if (state_ == State::kTlsHandshake) {
    fail(ClientError::kDataBeforeTls, "relay sent data before the TLS handshake");
    return;
  }
  if (input_pos_ > 0) {  // what was read is gone; a partial reply moves to the front
    input_.erase(0, input_pos_);
    scanned_ = scanned_ > input_pos_ ? scanned_ - input_pos_ : 0;
    input_pos_ = 0;
  }
  input_.append(bytes);
}

void ClientSession::connection_closed() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kReady && input_pos_ == input_.size()) {
    // Idle: the relay may close an idle connection; nothing was due.
    state_ = State::kClosed;
    return;
  }
  fail(ClientError::kConnectionClosed, "the relay closed the connection");
}

void ClientSession::tls_established() {
  if (state_ != State::kTlsHandshake) return;
  tls_ = true;
  extensions_ = {};
  command("EHLO " + config_.helo_name);
  state_ = State::kEhlo;
}

ClientEvent ClientSession::next_event() {
  for (;;) {
    if (!events_.empty()) {
      ClientEvent ev = std::move(events_.front());
      events_.pop_front();
      return ev;
    }
    switch (state_) {
      case State::kReady:
      case State::kTlsHandshake:
      case State::kClosed:
        return client_event::NeedData{};
      default:
        break;
    }
    Reply r;
    if (!next_reply(r)) {
      if (events_.empty()) return client_event::NeedData{};
      continue;
    }
    on_reply(r);
  }
}

// One whole reply from the input, or false (more is needed, or the session failed).
bool ClientSession::next_reply(Reply& reply) {
  while (state_ != State::kClosed) {
    const std::size_t from = scanned_ > input_pos_ ? scanned_ : input_pos_;
    const std::size_t crlf = input_.find("\r\n", from);
    if (crlf == std::string::npos) {
      // The last octet may be the CR of a CRLF still to come.
      scanned_ = input_.size() > input_pos_ ? input_.size() - 1 : input_pos_;
      if (reply_octets_ + (input_.size() - input_pos_) > config_.max_reply) {
        fail(ClientError::kReplyTooLong,
             "reply longer than " + std::to_string(config_.max_reply) + " octets");
      }
      return false;
    }
    const std::string_view line(input_.data() + input_pos_, crlf - input_pos_);
    reply_octets_ += line.size() + 2;
    input_pos_ = crlf + 2;
    scanned_ = input_pos_;
    if (reply_octets_ > config_.max_reply) {
      fail(ClientError::kReplyTooLong,
           "reply longer than " + std::to_string(config_.max_reply) + " octets");
      return false;
    }
    // RFC 5321 2.3.8: lines end with CRLF; a bare CR or LF would let text pass as a line.
    const bool bare = line.find_first_of("\r\n") != std::string_view::npos;
    const auto result = bare ? ReplyParser::Result::kError : parser_.feed(line);
    if (result == ReplyParser::Result::kError) {
      fail(ClientError::kMalformedReply, "malformed reply from relay: " + printable(line, 80));
      return false;
    }
    if (result == ReplyParser::Result::kDone) {
      ++replies_;
      reply = parser_.reply();
      parser_.reset();
      reply_octets_ = 0;
      return true;
    }
  }
  return false;
}

void ClientSession::on_reply(const Reply& r) {
  switch (state_) {
    case State::kGreeting:
      return on_greeting(r);
    case State::kEhlo:
      return on_ehlo(r);
    case State::kStartTls:
      return on_starttls(r);
    case State::kAuth:
      return on_auth(r);
    case State::kCheck:
      return on_check(r);
    case State::kRset:
    case State::kMail:
    case State::kRcpt:
    case State::kData:
    case State::kMessage: {
      const Expect what = expected_.front();
      expected_.pop_front();
      return on_transaction_reply(what, r);
    }
    case State::kTlsHandshake:
    case State::kReady:
    case State::kClosed:
      return;
  }
}

// --- setup -----------------------------------------------------------------------------

void ClientSession::on_greeting(const Reply& r) {
  // RFC 5321 4.3.1: 220 opens the session; 554 (or anything else) refuses it.
  if (r.code != 220) return fail(ClientError::kGreetingRefused, "greeting " + r.summary());
  command("EHLO " + config_.helo_name);
  state_ = State::kEhlo;
}

void ClientSession::on_ehlo(const Reply& r) {
  if (r.code != 250) return fail(ClientError::kEhloRefused, "EHLO answered " + r.summary());
  extensions_ = parse_extensions(r);
  if (!tls_ && config_.starttls != RelayTls::kNone) {
    if (extensions_.starttls) {
      command("STARTTLS");
      state_ = State::kStartTls;
      return;
    }
    if (config_.starttls == RelayTls::kRequired) {
      return fail(ClientError::kStartTlsNotOffered,
                  "does not offer STARTTLS, which [relay] starttls = \"required\" demands");
    }
  }
  proceed_auth();
}

void ClientSession::on_starttls(const Reply& r) {
  if (r.code == 220) {
    if (input_pos_ != input_.size()) {
      return fail(ClientError::kDataBeforeTls, "relay sent data before the TLS handshake");
    }
    input_.clear();
    input_pos_ = scanned_ = 0;
    state_ = State::kTlsHandshake;
    events_.emplace_back(client_event::StartTls{});
    return;
  }
  if (config_.starttls == RelayTls::kRequired) {
    return fail(ClientError::kStartTlsRefused, "STARTTLS answered " + r.summary());
  }
  proceed_auth();  // opportunistic: on without TLS
}

void ClientSession::proceed_auth() {
  if (config_.username.empty()) {
    state_ = State::kReady;
    events_.emplace_back(client_event::Ready{});
    return;
  }
  // Only over a verified channel: an unverified one may be a man in the middle.
  if (!tls_ || config_.starttls != RelayTls::kRequired) {
    return fail(ClientError::kTlsNotVerified, "no verified TLS, so the relay password is not sent");
  }
  if (!extensions_.auth_plain)
    return fail(ClientError::kAuthNotOffered, "does not offer AUTH PLAIN");
  // RFC 4616: authzid NUL authcid NUL passwd (the authzid empty: act as ourselves).
  std::string token;
  token.reserve(config_.username.size() + config_.password.size() + 2);
  token += '\0';
  token += config_.username;
  token += '\0';
  token += config_.password;
  command("AUTH PLAIN " + smtp::base64_encode(token));
  state_ = State::kAuth;
}

void ClientSession::on_auth(const Reply& r) {
  if (r.code != 235) {
    return fail(ClientError::kAuthRefused,
                "refused [relay] username " + config_.username + ": " + r.summary());
  }
  state_ = State::kReady;
  events_.emplace_back(client_event::Ready{});
}

// --- reuse -----------------------------------------------------------------------------

// Bytes after the last reply that was due: the relay is out of step with our commands.
bool ClientSession::in_step(std::string_view when) {
  if (input_pos_ == input_.size()) return true;
  std::string_view rest = std::string_view(input_).substr(input_pos_);
  rest = rest.substr(0, rest.find_first_of("\r\n"));
  fail(ClientError::kUnexpectedReply,
       std::string(when) + "the relay sent what no command asked for: " + printable(rest, 80));
  return false;
}

void ClientSession::check() {
  if (state_ != State::kReady || !in_step("reuse check: ")) return;
  command("RSET");
  state_ = State::kCheck;
}

void ClientSession::on_check(const Reply& r) {
  if (r.code == 421) {
    return fail(ClientError::kRelayClosing, "the relay closed the connection: " + r.summary());
  }
  if (r.code != 250) {
    return fail(ClientError::kRsetRefused, "RSET (reuse check) answered " + r.summary());
  }
  dirty_ = false;
  state_ = State::kReady;
  events_.emplace_back(client_event::Ready{});
}

ClientSession::Wait ClientSession::waiting_for() const {
  switch (state_) {
    case State::kReady:
    case State::kTlsHandshake:
    case State::kClosed:
      return Wait::kNothing;
    case State::kGreeting:
      return Wait::kGreeting;
    case State::kMessage:
      return Wait::kMessageReply;
    default:
      return Wait::kReply;
  }
}

// --- the transaction -------------------------------------------------------------------

void ClientSession::start(const Envelope& envelope, const std::vector<std::string_view>& message,
                          bool all_or_nothing) {
  if (state_ != State::kReady) return;
  txn_ = Transaction{};
  txn_.envelope = envelope;
  txn_.message = message;
  txn_.all_or_nothing = all_or_nothing;
  answered_ = false;
  if (!in_step("")) return;
  if (envelope.smtputf8 && !extensions_.smtputf8) {
    // RFC 6531 3.4: such a message cannot go to a server without SMTPUTF8. Nothing is sent.
    events_.emplace_back(client_event::Done{
        Reply{550, {5, 6, 7}, "The relay does not support SMTPUTF8, which this message needs"},
        {},
        true});
    return;
  }
  if (dirty_) {
    command("RSET");
    expect(Expect::kRset);
    return;
  }
  proceed_transaction();
}

void ClientSession::proceed_transaction() {
  const Envelope& env = txn_.envelope;
  std::string mail = "MAIL FROM:<" + env.mail_from + ">";
  if (env.eight_bit && extensions_.eight_bit) mail += " BODY=8BITMIME";
  if (env.smtputf8) mail += " SMTPUTF8";
  // With PIPELINING the whole transaction goes in one write (RFC 2920): MAIL, every RCPT,
  // then "BDAT <size> LAST" and the message when the relay offers CHUNKING (RFC 3030: one
  // round trip), else DATA (two). Not when all-or-nothing has several recipients: the
  // message must not go to some of them when another is refused.
  const bool pipelining = extensions_.pipelining;
  txn_.group = pipelining && (!txn_.all_or_nothing || env.recipients.size() == 1);
  txn_.bdat = txn_.group && extensions_.chunking;
  dirty_ = true;
  command(mail);
  expect(Expect::kMail);
  if (!pipelining) return;  // RCPT after MAIL's 250 (on_mail)
  for (const auto& rcpt : env.recipients) {
    command("RCPT TO:<" + rcpt + ">");
    expect(Expect::kRcpt);
  }
  if (txn_.bdat) {
    std::vector<std::string_view> pieces;
    const std::size_t size = chunk(txn_.message, pieces);
    command("BDAT " + std::to_string(size) + " LAST");
    for (const auto p : pieces) external(p);
    carries_message_ = true;
    expect(Expect::kBdat);
  } else if (txn_.group) {
    command("DATA");
    expect(Expect::kData);
  }
}

void ClientSession::on_transaction_reply(Expect what, const Reply& r) {
  // RFC 5321 3.8: 421 to any command, and the relay closes the connection: whatever else
  // is outstanding will not be answered.
  if (r.code == 421) {
    return fail(ClientError::kRelayClosing, "the relay closed the connection: " + r.summary());
  }
  switch (what) {
    case Expect::kRset:
      return on_rset(r);
    case Expect::kMail:
      return on_mail(r);
    case Expect::kRcpt:
      return on_rcpt(r);
    case Expect::kData:
      return on_data(r);
    case Expect::kBdat:
    case Expect::kDot:
      return on_message(r);
  }
}

void ClientSession::on_rset(const Reply& r) {
  if (r.code != 250) return fail(ClientError::kRsetRefused, "RSET answered " + r.summary());
  answered_ = true;
  dirty_ = false;
  proceed_transaction();
  advance();
}

void ClientSession::on_mail(const Reply& r) {
  if (r.code != 250 && !refused(r)) {
    return fail(ClientError::kUnexpectedReply, "MAIL FROM answered " + r.summary());
  }
  answered_ = true;
  txn_.mail = r;
  if (extensions_.pipelining) {
    if (expected_.empty()) return proceed_after_envelope();  // no recipients
    return advance();
  }
  if (r.code != 250 || txn_.envelope.recipients.empty()) return proceed_after_envelope();
  command("RCPT TO:<" + txn_.envelope.recipients.front() + ">");
  expect(Expect::kRcpt);
}

void ClientSession::on_rcpt(const Reply& r) {
  if (r.code != 250 && r.code != 251 && !refused(r)) {
    return fail(ClientError::kUnexpectedReply, "RCPT TO answered " + r.summary());
  }
  txn_.recipients.push_back(r);
  if (!refused(r)) ++txn_.accepted;
  const std::size_t next = txn_.recipients.size();
  if (extensions_.pipelining) {
    if (expected_.empty()) return proceed_after_envelope();  // all-or-nothing, not grouped
    return advance();
  }
  if (next < txn_.envelope.recipients.size()) {
    command("RCPT TO:<" + txn_.envelope.recipients[next] + ">");
    expect(Expect::kRcpt);
    return;
  }
  proceed_after_envelope();
}

// Every reply of the envelope is in (and, grouped, the DATA's or BDAT's): decide.
void ClientSession::proceed_after_envelope() {
  const bool transaction_refused = txn_.mail.code != 250 || txn_.accepted == 0;
  if (txn_.group && transaction_refused && txn_.last.positive()) {
    // A relay that takes the data of a transaction it refused is broken (RFC 2920 3.1: it
    // must answer DATA 503/554): it now waits for a message we do not send, or it has
    // one for nobody. Nothing counts as sent, and the connection is not used again.
    broken_ = true;
  }
  if (txn_.mail.code != 250) return done(refusal(txn_.mail, "MAIL FROM"), true);
  // Passthrough: the first refusal answers the client. Queue: the message goes to the
  // accepted recipients; the refused ones are reported per recipient.
  for (std::size_t i = 0; i < txn_.recipients.size(); ++i) {
    if (refused(txn_.recipients[i]) && (txn_.all_or_nothing || txn_.accepted == 0)) {
      return done(refusal(txn_.recipients[i], "RCPT TO:<" + txn_.envelope.recipients[i] + ">"));
    }
  }
  if (txn_.envelope.recipients.empty()) {
    return done(Reply{554, {5, 5, 1}, "No recipients to relay to"});
  }
  if (txn_.bdat) return on_end_of_message(txn_.last);
  if (!txn_.group) {
    command("DATA");
    expect(Expect::kData);
    return;
  }
  if (txn_.last.code == 354) return send_message_data();
  if (refused(txn_.last)) return done(refusal(txn_.last, "DATA"));
  // Not passed on as the message's reply: a 250 to DATA would count a message never sent.
  fail(ClientError::kUnexpectedReply, "DATA answered " + txn_.last.summary());
}

void ClientSession::on_data(const Reply& r) {
  if (txn_.group) {
    txn_.last = r;  // judged with the envelope's replies
    return proceed_after_envelope();
  }
  if (r.code == 354) return send_message_data();
  if (refused(r)) return done(refusal(r, "DATA"));
  fail(ClientError::kUnexpectedReply, "DATA answered " + r.summary());
}

void ClientSession::send_message_data() {
  std::vector<std::string_view> pieces;
  dot_stuff(txn_.message, pieces);
  for (const auto p : pieces) external(p);
  carries_message_ = true;
  expect(Expect::kDot);
}

void ClientSession::on_message(const Reply& r) {
  if (txn_.bdat) {
    txn_.last = r;  // judged with the envelope's replies
    return proceed_after_envelope();
  }
  on_end_of_message(r);
}

// The reply to the final dot, or to BDAT LAST in a transaction the relay accepted.
void ClientSession::on_end_of_message(const Reply& r) {
  // RFC 5321 4.1.1.4: the reply to the final dot ends the transaction either way; a refused
  // BDAT LAST may leave it open (RFC 3030 2), so RSET comes first next time.
  if (!txn_.bdat || r.code == 250) dirty_ = false;
  if (r.code == 250) return done(r);
  if (refused(r)) return done(refusal(r, "the message"));
  fail(ClientError::kUnexpectedReply, "the message answered " + r.summary());
}

// --- plumbing --------------------------------------------------------------------------

void ClientSession::expect(Expect e) {
  expected_.push_back(e);
  advance();
}

// The state names the reply due first.
void ClientSession::advance() {
  if (state_ == State::kClosed || expected_.empty()) return;
  switch (expected_.front()) {
    case Expect::kRset:
      state_ = State::kRset;
      break;
    case Expect::kMail:
      state_ = State::kMail;
      break;
    case Expect::kRcpt:
      state_ = State::kRcpt;
      break;
    case Expect::kData:
      state_ = State::kData;
      break;
    case Expect::kBdat:
    case Expect::kDot:
      state_ = State::kMessage;
      break;
  }
}

void ClientSession::done(Reply reply, bool clear_recipients) {
  client_event::Done d;
  d.reply = std::move(reply);
  if (!clear_recipients) d.recipients = std::move(txn_.recipients);
  d.reusable = !broken_;
  expected_.clear();
  state_ = d.reusable ? State::kReady : State::kClosed;
  txn_.message.clear();
  events_.emplace_back(std::move(d));
}

void ClientSession::fail(ClientError error, std::string reason) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  expected_.clear();
  events_.emplace_back(client_event::Failed{error, std::move(reason)});
}

void ClientSession::command(std::string_view line) {
  if (!pieces_.empty() && pieces_.back().external == nullptr) {
    pieces_.back().size += line.size() + 2;
  } else {
    pieces_.push_back(Piece{nullptr, commands_.size(), line.size() + 2});
  }
  commands_ += line;
  commands_ += "\r\n";
}

void ClientSession::external(std::string_view piece) {
  if (!piece.empty()) pieces_.push_back(Piece{piece.data(), 0, piece.size()});
}

std::vector<std::string_view> ClientSession::pending_output() {
  written_.swap(commands_);
  commands_.clear();
  std::vector<std::string_view> out;
  out.reserve(pieces_.size());
  for (const auto& p : pieces_) {
    out.emplace_back(p.external ? std::string_view(p.external, p.size)
                                : std::string_view(written_.data() + p.offset, p.size));
  }
  pieces_.clear();
  output_carries_message_ = std::exchange(carries_message_, false);
  return out;
}

}  // namespace truefrom::relay
