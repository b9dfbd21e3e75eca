#include "submission/core/session.hpp"

#include <stdexcept>
#include <utility>

namespace truefrom::smtp {
namespace {

// RFC 5321 4.5.3.1.4: a command line is at most 512 octets including the CRLF.
constexpr std::size_t kMaxCommandLine = 512;
// RFC 4954 4: AUTH command and response lines may be up to 12288 octets.
constexpr std::size_t kMaxAuthLine = 12288;

const Reply kReplyOk{250, {2, 0, 0}, "Ok"};

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 33 && u <= 126) ? c : '?';
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  }
  return out;
}

}  // namespace

Session::Pending Session::decision_for(const Event& ev) {
  if (std::holds_alternative<event::AuthStart>(ev) ||
      std::holds_alternative<event::AuthResponse>(ev)) {
    return Pending::kAuth;
  }
  if (std::holds_alternative<event::MailFrom>(ev)) return Pending::kMail;
  if (std::holds_alternative<event::RcptTo>(ev)) return Pending::kRcpt;
  if (std::holds_alternative<event::DataEnd>(ev)) return Pending::kData;
  return Pending::kNone;
}

Session::Session(SessionConfig config)
    : config_(std::move(config)), tls_(config_.implicit_tls), data_(config_.max_message_size) {
  send(Reply::plain(220, config_.hostname + " ESMTP truefrom"));
}

void Session::receive(std::string_view bytes) {
  // Nothing read while a handshake is pending is trusted (RFC 3207 4.2, 6).
  if (phase_ == Phase::kTlsPending || phase_ == Phase::kClosed) return;
  input_.append(bytes);
}

std::string Session::take_output() { return std::exchange(output_, {}); }

void Session::send(const Reply& r) {
  output_ += r.serialize();
  if (r.close_after) {
    phase_ = Phase::kClosed;
    events_.clear();
    events_.emplace_back(event::Close{});
  }
}

void Session::refuse(const Reply& r) {
  send(r);
  if (phase_ != Phase::kClosed && ++errors_ >= config_.max_errors) {
    send(Reply{421, {4, 7, 0}, config_.hostname + " too many errors, closing connection", true});
  }
}

void Session::reset_transaction() {
  in_transaction_ = false;
  mail_from_.reset();
  mail_argument_ = {};
  recipients_.clear();
  message_.clear();
}

void Session::compact_input() {
  if (input_pos_ == input_.size()) {
    input_.clear();
    input_pos_ = 0;
  } else if (input_pos_ > 4096 && input_pos_ * 2 > input_.size()) {
    input_.erase(0, input_pos_);
    input_pos_ = 0;
  }
}

Event Session::next_event() {
  if (pending_ != Pending::kNone) {
    throw std::logic_error("Session::next_event called while a decision is pending");
  }
  for (;;) {
    if (!events_.empty()) {
      Event ev = std::move(events_.front());
      if (!std::holds_alternative<event::Close>(ev)) events_.pop_front();
      pending_ = decision_for(ev);
      return ev;
    }
    if (phase_ == Phase::kClosed) return event::Close{};
    if (phase_ == Phase::kTlsPending) return event::NeedData{};
    if (phase_ == Phase::kData) {
      consume_data();
      if (!events_.empty()) continue;
      compact_input();
      return event::NeedData{};
    }
    std::string_view line;
    if (!next_line(line)) {
      compact_input();
      return event::NeedData{};
    }
    handle_line(line);
  }
}

// Finds the next CRLF-terminated line. Bare LF is refused at once (it never ends a line);
// an over-long line is discarded up to its end and refused.
bool Session::next_line(std::string_view& line) {
  for (;;) {
    std::string_view avail(input_);
    avail.remove_prefix(input_pos_);
    const auto lf = avail.find('\n');
    if (lf == std::string_view::npos) {
      if (avail.size() > kMaxAuthLine) {
        discarding_long_line_ = true;
        input_pos_ = input_.size();
      }
      return false;
    }
    input_pos_ += lf + 1;
    if (discarding_long_line_) {
      discarding_long_line_ = false;
      refuse(Reply{500, {5, 5, 2}, "Line too long"});
      if (phase_ == Phase::kClosed) return false;
      continue;
    }
    if (lf + 1 > kMaxAuthLine) {
      refuse(Reply{500, {5, 5, 2}, "Line too long"});
      if (phase_ == Phase::kClosed) return false;
      continue;
    }
    if (lf == 0 || avail[lf - 1] != '\r') {
      refuse(Reply{500, {5, 5, 2}, "Line must end with CRLF (bare LF received)"});
      if (phase_ == Phase::kClosed) return false;
      continue;
    }
    line = avail.substr(0, lf - 1);
    return true;
  }
}

void Session::handle_line(std::string_view line) {
  if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
    refuse(Reply{500, {5, 5, 2}, "Bare CR or NUL in command line"});
    if (phase_ == Phase::kAuthResponse) phase_ = Phase::kCommand;
    return;
  }
  if (phase_ == Phase::kAuthResponse) {
    handle_auth_line(line);
  } else {
    handle_command(line);
  }
}

void Session::handle_command(std::string_view line) {
  if (end_reply_) {
    Reply r = std::move(*end_reply_);
    end_reply_.reset();
    r.close_after = true;
    send(r);
    return;
  }
  const CommandLine cmd = split_command(line);
  if (cmd.verb != Verb::kAuth && line.size() + 2 > kMaxCommandLine) {
    refuse(Reply{500, {5, 5, 2}, "Command line too long (limit 512 octets)"});
    return;
  }
  switch (cmd.verb) {
    case Verb::kEhlo:
      return handle_ehlo(cmd.argument, true);
    case Verb::kHelo:
      return handle_ehlo(cmd.argument, false);
    case Verb::kStartTls:
      if (tls_) return refuse(Reply{503, {5, 5, 1}, "TLS is already active"});
      if (!cmd.argument.empty()) return refuse(Reply{501, {5, 5, 4}, "STARTTLS takes no argument"});
      send(Reply{220, {2, 0, 0}, "Ready to start TLS"});
      // RFC 3207 6: input pipelined behind STARTTLS is discarded, never executed.
      input_.clear();
      input_pos_ = 0;
      phase_ = Phase::kTlsPending;
      events_.emplace_back(event::StartTls{});
      return;
    case Verb::kAuth:
      return handle_auth(cmd.argument);
    case Verb::kMail:
      return handle_mail(cmd.argument);
    case Verb::kRcpt:
      return handle_rcpt(cmd.argument);
    case Verb::kData:
      return handle_data(cmd.argument);
    case Verb::kBdat:
      return refuse(Reply{502, {5, 5, 1}, "BDAT is not supported here; use DATA"});
    case Verb::kRset:
      if (!cmd.argument.empty()) return refuse(Reply{501, {5, 5, 4}, "RSET takes no argument"});
      reset_transaction();
      return send(kReplyOk);
    case Verb::kNoop:
      return send(kReplyOk);
    case Verb::kQuit:
      return send(Reply{221, {2, 0, 0}, config_.hostname + " closing connection", true});
    case Verb::kVrfy:
      if (cmd.argument.empty()) return refuse(Reply{501, {5, 5, 4}, "VRFY needs an argument"});
      return send(
          Reply{252, {2, 5, 0}, "Cannot VRFY user, but will accept message and attempt delivery"});
    case Verb::kExpn:
      return refuse(Reply{502, {5, 5, 1}, "EXPN is not supported"});
    case Verb::kHelp:
      return send(
          Reply{214,
                {2, 0, 0},
                "truefrom: authenticated mail submission (RFC 6409)\n"
                "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"});
    case Verb::kHttp:
      // A web client on the mail port: stop before it sends headers that look like commands.
      return send(Reply{421, {4, 7, 0}, "This is an SMTP server, not a web server", true});
    case Verb::kUnknown:
      return refuse(
          Reply{500,
                {5, 5, 1},
                "Command unrecognized: " + printable(line.substr(0, line.find(' ')), 16)});
  }
}

void Session::handle_ehlo(std::string_view arg, bool esmtp) {
  if (arg.empty()) {
    return refuse(
        Reply{501,
              {5, 5, 4},
              std::string(esmtp ? "EHLO" : "HELO") + " needs a domain or address literal"});
  }
  reset_transaction();
  helo_ = printable(arg.substr(0, arg.find(' ')), 255);
  esmtp_ = esmtp;
  if (!esmtp) return send(Reply::plain(250, config_.hostname));
  std::string text = config_.hostname;
  text += "\nPIPELINING";
  text += "\nSIZE " + std::to_string(config_.max_message_size);
  text += "\n8BITMIME";
  text += "\nSMTPUTF8";
  text += "\nENHANCEDSTATUSCODES";
  // RFC 4954 4 / RFC 6409: AUTH is offered only on an encrypted connection.
  if (tls_) {
    text += "\nAUTH " + config_.auth_mechanisms;
  } else {
    text += "\nSTARTTLS";
  }
  send(Reply::plain(250, std::move(text)));
}

void Session::handle_auth(std::string_view arg) {
  if (!tls_) return refuse(Reply{538, {5, 7, 11}, "Encryption required: issue STARTTLS first"});
  // RFC 4954 4: AUTH is an ESMTP extension, so it needs EHLO (not HELO).
  if (!esmtp_) return refuse(Reply{503, {5, 5, 1}, "Send EHLO first"});
  if (login_) return refuse(Reply{503, {5, 5, 1}, "Already authenticated"});
  if (in_transaction_)
    return refuse(Reply{503, {5, 5, 1}, "AUTH is not allowed during a mail transaction"});
  const auto sp = arg.find(' ');
  const std::string mechanism = upper(arg.substr(0, sp));
  bool offered = false;
  std::string_view list = config_.auth_mechanisms;
  while (!list.empty()) {
    const auto end = list.find(' ');
    if (list.substr(0, end) == mechanism) offered = true;
    list = end == std::string_view::npos ? std::string_view{} : list.substr(end + 1);
  }
  if (mechanism.empty() || !offered) {
    return refuse(
        Reply{504,
              {5, 5, 4},
              "Unrecognized authentication mechanism; offered: " + config_.auth_mechanisms});
  }
  event::AuthStart ev;
  ev.mechanism = mechanism;
  if (sp != std::string_view::npos) {
    const std::string_view initial = arg.substr(sp + 1);
    if (initial == "=") {
      ev.initial_response = std::string{};  // RFC 4954 4: "=" is an empty response
    } else {
      auto decoded = base64_decode(initial);
      if (!decoded) return refuse(Reply{501, {5, 5, 2}, "Initial response is not valid base64"});
      ev.initial_response = std::move(*decoded);
    }
  }
  events_.emplace_back(std::move(ev));
}

void Session::handle_auth_line(std::string_view line) {
  phase_ = Phase::kCommand;
  if (line.size() + 2 > kMaxAuthLine) {
    return auth_failed(Reply{500, {5, 5, 6}, "Authentication exchange line is too long"});
  }
  if (line == "*") {
    // RFC 4954 4: the client cancelled the exchange.
    ++auth_failures_;
    return refuse(Reply{501, {5, 7, 0}, "Authentication cancelled"});
  }
  auto decoded = base64_decode(line);
  if (!decoded) {
    ++auth_failures_;
    return refuse(Reply{501, {5, 5, 2}, "Authentication response is not valid base64"});
  }
  events_.emplace_back(event::AuthResponse{std::move(*decoded)});
}

void Session::handle_mail(std::string_view arg) {
  if (helo_.empty()) return refuse(Reply{503, {5, 5, 1}, "Send EHLO first"});
  if (!tls_) return refuse(Reply{530, {5, 7, 0}, "Must issue a STARTTLS command first"});
  if (!login_) return refuse(Reply{530, {5, 7, 0}, "Authentication required"});
  if (in_transaction_) return refuse(Reply{503, {5, 5, 1}, "Nested MAIL command"});
  ArgumentError error;
  auto parsed = parse_mail_argument(arg, &error);
  if (!parsed) {
    if (error.needs_smtputf8) return refuse(Reply{553, {5, 6, 7}, error.reason + " (RFC 6531)"});
    if (error.parameter)
      return refuse(Reply{555, {5, 5, 4}, "MAIL parameter refused: " + error.reason});
    return refuse(Reply{501, {5, 1, 7}, "Bad sender address syntax: " + error.reason});
  }
  if (parsed->size && *parsed->size > config_.max_message_size) {
    return refuse(Reply{552,
                        {5, 3, 4},
                        "Message size exceeds the limit of " +
                            std::to_string(config_.max_message_size) + " octets"});
  }
  pending_mail_ = *parsed;
  events_.emplace_back(event::MailFrom{std::move(*parsed)});
}

void Session::handle_rcpt(std::string_view arg) {
  if (!in_transaction_) return refuse(Reply{503, {5, 5, 1}, "Need MAIL before RCPT"});
  ArgumentError error;
  auto parsed = parse_rcpt_argument(arg, &error, mail_argument_.smtputf8);
  if (!parsed) {
    if (error.needs_smtputf8) return refuse(Reply{553, {5, 6, 7}, error.reason + " (RFC 6531)"});
    if (error.parameter)
      return refuse(Reply{555, {5, 5, 4}, "RCPT parameter refused: " + error.reason});
    return refuse(Reply{501, {5, 1, 3}, "Bad recipient address syntax: " + error.reason});
  }
  if (recipients_.size() >= config_.max_recipients) {
    // RFC 5321 4.5.3.1.10: 452 for too many recipients; not counted as a client error.
    return send(
        Reply{452,
              {4, 5, 3},
              "Too many recipients (limit " + std::to_string(config_.max_recipients) + ")"});
  }
  pending_rcpt_ = parsed->recipient;
  events_.emplace_back(event::RcptTo{std::move(parsed->recipient)});
}

void Session::handle_data(std::string_view arg) {
  if (!arg.empty()) return refuse(Reply{501, {5, 5, 4}, "DATA takes no argument"});
  if (!in_transaction_) return refuse(Reply{503, {5, 5, 1}, "Need MAIL before DATA"});
  if (recipients_.empty()) return refuse(Reply{554, {5, 5, 1}, "No valid recipients"});
  send(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
  phase_ = Phase::kData;
  data_.reset();
  events_.emplace_back(event::DataStart{});
}

void Session::consume_data() {
  std::string_view avail(input_);
  avail.remove_prefix(input_pos_);
  const auto progress = data_.consume(avail, message_);
  input_pos_ += progress.consumed;
  if (!progress.done) return;
  phase_ = Phase::kCommand;
  switch (data_.defect()) {
    case DataReceiver::Defect::kNone:
      events_.emplace_back(event::DataEnd{});
      return;
    case DataReceiver::Defect::kBareNewline:
      refuse(Reply{550,
                   {5, 6, 0},
                   "Message refused: bare CR or LF in the message; lines must end with CRLF "
                   "(RFC 5321 2.3.8)"});
      break;
    case DataReceiver::Defect::kLineTooLong:
      refuse(Reply{550,
                   {5, 6, 0},
                   "Message refused: a line is longer than 1000 octets (RFC 5321 4.5.3.1.6)"});
      break;
    case DataReceiver::Defect::kNul:
      refuse(Reply{550,
                   {5, 6, 0},
                   "Message refused: NUL octet in the message (not allowed in mail text, "
                   "RFC 5322 3.5)"});
      break;
    case DataReceiver::Defect::kTooBig:
      send(Reply{552,
                 {5, 3, 4},
                 "Message size exceeds the limit of " + std::to_string(config_.max_message_size) +
                     " octets"});
      break;
  }
  reset_transaction();
  if (phase_ != Phase::kClosed) events_.emplace_back(event::DataAborted{});
}

void Session::accept(Reply positive) {
  switch (pending_) {
    case Pending::kMail:
      in_transaction_ = true;
      mail_argument_ = std::move(pending_mail_);
      mail_from_ = mail_argument_.sender;
      recipients_.clear();
      break;
    case Pending::kRcpt:
      recipients_.push_back(std::move(*pending_rcpt_));
      pending_rcpt_.reset();
      break;
    case Pending::kData:
      reset_transaction();
      break;
    case Pending::kAuth:
    case Pending::kNone:
      throw std::logic_error("Session::accept without a pending MAIL, RCPT or DATA");
  }
  pending_ = Pending::kNone;
  send(positive);
}

void Session::reply(Reply refusal) {
  if (pending_ == Pending::kNone || pending_ == Pending::kAuth) {
    throw std::logic_error("Session::reply without a pending MAIL, RCPT or DATA");
  }
  if (pending_ == Pending::kData) reset_transaction();
  pending_rcpt_.reset();
  pending_ = Pending::kNone;
  send(refusal);
}

void Session::auth_challenge(std::string_view challenge) {
  if (pending_ != Pending::kAuth) throw std::logic_error("Session::auth_challenge without AUTH");
  pending_ = Pending::kNone;
  phase_ = Phase::kAuthResponse;
  send(Reply::plain(334, base64_encode(challenge)));
}

void Session::auth_succeeded(std::string login) {
  if (pending_ != Pending::kAuth) throw std::logic_error("Session::auth_succeeded without AUTH");
  pending_ = Pending::kNone;
  login_ = std::move(login);
  send(Reply{235, {2, 7, 0}, "Authentication successful"});
}

void Session::auth_failed(Reply refusal) {
  pending_ = Pending::kNone;
  phase_ = Phase::kCommand;
  send(refusal);
  if (phase_ != Phase::kClosed && ++auth_failures_ >= config_.max_auth_failures) {
    send(Reply{421, {4, 7, 0}, config_.hostname + " too many failed authentications", true});
  }
}

void Session::tls_established() {
  // RFC 3207 4.2: forget everything learnt before the handshake.
  tls_ = true;
  phase_ = Phase::kCommand;
  helo_.clear();
  esmtp_ = false;
  reset_transaction();
  input_.clear();
  input_pos_ = 0;
}

void Session::timed_out() {
  pending_ = Pending::kNone;
  send(Reply{421, {4, 4, 2}, config_.hostname + " timeout, closing connection", true});
}

void Session::end_at_next_command(Reply reply) {
  if (phase_ == Phase::kClosed) return;
  end_reply_ = std::move(reply);
}

void Session::spoke_before_greeting() {
  pending_ = Pending::kNone;
  input_.clear();
  output_.clear();
  send(Reply{
      554, {5, 5, 0}, config_.hostname + " input before the greeting, closing connection", true});
}

void Session::shutting_down() {
  pending_ = Pending::kNone;
  send(Reply{421, {4, 3, 2}, config_.hostname + " service shutting down", true});
}

}  // namespace truefrom::smtp
