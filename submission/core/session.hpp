// Session: the sans-IO SMTP submission state machine (RFC 5321, RFC 6409 submission,
// RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME,
// RFC 2034 ENHANCEDSTATUSCODES).
//
// Bytes in (`receive`), events out (`next_event`), decisions in (`accept`, `reply`,
// `auth_*`), bytes out (`take_output`). The session owns line framing and limits, command
// order, pipelining, dot-unstuffing, discarding input buffered across STARTTLS, and closing
// after too many errors. It never touches a socket, a database or a clock: the transport
// performs effects (TLS handshake, SASL, policy lookups, relaying) and reports the result.
//
// Any split of the input yields the same events and replies.
// Thread-safety: not thread-safe; one owner at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "submission/core/address.hpp"
#include "submission/core/command.hpp"
#include "submission/core/data_receiver.hpp"
#include "submission/core/reply.hpp"

namespace truefrom::smtp {

struct SessionConfig {
  std::string hostname = "localhost";
  std::size_t max_message_size = 25 * 1024 * 1024;
  std::size_t max_recipients = 100;
  /// Refusals caused by the client (syntax, order) before the session closes.
  int max_errors = 10;
  int max_auth_failures = 3;
  std::string auth_mechanisms = "PLAIN LOGIN";
  /// True on an implicit-TLS listener (RFC 8314): TLS is up before the greeting.
  bool implicit_tls = false;
};

namespace event {
/// All buffered input is used; read more bytes and call receive().
struct NeedData {};
/// "220 Ready to start TLS" is queued: write the output, run the handshake, then call
/// tls_established(). Input buffered before the handshake has been discarded.
struct StartTls {};
/// AUTH: answer with auth_challenge(), auth_succeeded() or auth_failed().
struct AuthStart {
  std::string mechanism;                        ///< upper-cased
  std::optional<std::string> initial_response;  ///< decoded; "" for "="
};
/// The client's answer to a 334 challenge (decoded). Answer as for AuthStart.
struct AuthResponse {
  std::string response;
};
/// MAIL FROM: answer with accept() or reply().
struct MailFrom {
  MailArgument argument;
};
/// RCPT TO: answer with accept() or reply().
struct RcptTo {
  Mailbox recipient;
};
/// DATA was accepted with 354; content follows (into Session::message()). No answer needed.
struct DataStart {};
/// The whole message was received intact, in Session::message(): answer with accept() or
/// reply().
struct DataEnd {};
/// The message was refused by the session itself (framing, line length, size); the reply is
/// queued and what was received is dropped. No answer needed.
struct DataAborted {};
/// Write the pending output, then close the connection.
struct Close {};
}  // namespace event

using Event = std::variant<event::NeedData, event::StartTls, event::AuthStart, event::AuthResponse,
                           event::MailFrom, event::RcptTo, event::DataStart, event::DataEnd,
                           event::DataAborted, event::Close>;

class Session {
 public:
  /// Queues the greeting.
  explicit Session(SessionConfig config);

  /// Appends bytes read from the client.
  void receive(std::string_view bytes);
  /// The next event. Must not be called while a decision is awaited.
  Event next_event();

  /// Accepts the pending MAIL, RCPT or end of DATA with `positive` (a 2xx reply).
  void accept(Reply positive);
  /// Refuses the pending MAIL, RCPT or end of DATA; the state does not advance.
  void reply(Reply refusal);
  /// Sends a 334 challenge for the pending AUTH exchange.
  void auth_challenge(std::string_view challenge);
  /// Completes AUTH: 235, the session is authenticated as `login`.
  void auth_succeeded(std::string login);
  /// Completes AUTH with a refusal (535, 454, ...).
  void auth_failed(Reply refusal);
  /// The TLS handshake requested by StartTls succeeded: the session starts over (RFC 3207 4.2).
  void tls_established();
  /// The idle or session time limit passed: 421 and close.
  void timed_out();
  /// The server is stopping: 421 and close.
  void shutting_down();
  /// The client sent before the greeting (RFC 5321 3.1: a client waits for the 220; a bot
  /// that does not is not served): the queued greeting is replaced by 554 5.5.0 and the
  /// connection closes. Call before the first take_output().
  void spoke_before_greeting();
  /// The client's next command (whatever it is) gets `reply` and the connection closes,
  /// e.g. when its account was suspended meanwhile. Ignored once the session is closed.
  void end_at_next_command(Reply reply);

  /// Bytes to write to the client; the buffer is emptied.
  std::string take_output();
  bool has_output() const { return !output_.empty(); }
  /// True once a decision is needed before next_event() may be called.
  bool awaiting_decision() const { return pending_ != Pending::kNone; }

  /// True while DATA content is being received (after 354, before the end of data).
  bool receiving_data() const { return phase_ == Phase::kData; }
  /// A transaction is under way: MAIL FROM accepted, or the message being received.
  bool in_transaction() const { return mail_from_.has_value() || phase_ == Phase::kData; }
  bool tls_active() const { return tls_; }
  bool authenticated() const { return login_.has_value(); }
  const std::optional<std::string>& login() const { return login_; }
  /// The EHLO/HELO argument (printable ASCII only) and whether it was EHLO.
  const std::string& helo_name() const { return helo_; }
  bool esmtp() const { return esmtp_; }
  /// The envelope of the current transaction (valid from MAIL accepted until end of DATA).
  const std::optional<Mailbox>& mail_from() const { return mail_from_; }
  const std::vector<Mailbox>& recipients() const { return recipients_; }
  const MailArgument& mail_argument() const { return mail_argument_; }
  /// The content of the current DATA (dot-unstuffed, CRLF line ends), whole at DataEnd and
  /// kept, like the envelope, until DataEnd is answered. Received straight into this buffer
  /// (no copy per read), which keeps its capacity for the connection's next message.
  const std::string& message() const { return message_; }

 private:
  enum class Phase { kCommand, kAuthResponse, kData, kTlsPending, kClosed };
  enum class Pending { kNone, kMail, kRcpt, kData, kAuth };

  static Pending decision_for(const Event& ev);
  void send(const Reply& r);
  void refuse(const Reply& r);  // a client error: counts towards max_errors
  void reset_transaction();
  bool next_line(std::string_view& line);
  void handle_line(std::string_view line);
  void handle_command(std::string_view line);
  void handle_auth_line(std::string_view line);
  void handle_ehlo(std::string_view arg, bool esmtp);
  void handle_auth(std::string_view arg);
  void handle_mail(std::string_view arg);
  void handle_rcpt(std::string_view arg);
  void handle_data(std::string_view arg);
  void consume_data();
  void compact_input();

  SessionConfig config_;
  std::string input_;
  std::size_t input_pos_ = 0;
  bool discarding_long_line_ = false;
  std::string output_;
  std::deque<Event> events_;

  Phase phase_ = Phase::kCommand;
  Pending pending_ = Pending::kNone;
  bool tls_ = false;
  bool esmtp_ = false;
  std::string helo_;
  std::optional<std::string> login_;
  int errors_ = 0;
  int auth_failures_ = 0;

  bool in_transaction_ = false;
  std::optional<Mailbox> mail_from_;
  MailArgument mail_argument_;
  std::vector<Mailbox> recipients_;
  MailArgument pending_mail_;
  std::optional<Mailbox> pending_rcpt_;
  std::optional<Reply> end_reply_;  ///< end_at_next_command()

  DataReceiver data_;
  std::string message_;
};

}  // namespace truefrom::smtp
