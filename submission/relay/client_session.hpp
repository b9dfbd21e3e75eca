// ClientSession: the sans-IO SMTP client side of one connection to a relay (RFC 5321),
// with STARTTLS (RFC 3207), AUTH PLAIN (RFC 4954), PIPELINING (RFC 2920), CHUNKING
// (RFC 3030: one "BDAT <n> LAST"), 8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531).
//
// Replies in (`receive`, any split), events out (`next_event`), decisions in (`start`,
// `tls_established`, `connection_closed`), commands out (`pending_output`). The session
// owns reply framing and its length limit, the extension set from EHLO, the order of
// setup (greeting, EHLO, STARTTLS, EHLO again, AUTH), the grouping of a transaction
// (pipelined MAIL+RCPT+DATA or BDAT, or one command at a time; all-or-nothing for
// passthrough), dot-stuffing, RSET before a transaction on a reused connection (and as the
// check of a connection that idled in the pool), which reply is due (for the driver's
// per-phase timeouts), and the decision whether the connection may be used again. It never touches
// a socket, a timer or a certificate: the driver (relay_client.cpp) moves bytes, runs the TLS
// handshake and its verification, and keeps the pool.
//
// The shape is OpenSMTPD's smtp_session.c: an explicit State, and for each state the
// check of the reply and its effect. Nothing is honoured across STARTTLS: bytes after the
// relay's 220 and before the handshake end the session.
//
// Any split of the input yields the same events and output.
// Thread-safety: not thread-safe; one owner at a time.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "submission/core/reply.hpp"
#include "submission/relay/client_error.hpp"
#include "submission/relay/extensions.hpp"
#include "submission/relay/reply_parser.hpp"

namespace truefrom::relay {

enum class RelayTls { kNone, kOpportunistic, kRequired };

struct Envelope {
  std::string mail_from;                ///< without brackets; empty for <>
  std::vector<std::string> recipients;  ///< without brackets
  bool eight_bit = false;               ///< BODY=8BITMIME was declared
  bool smtputf8 = false;                ///< SMTPUTF8 was declared (RFC 6531)
};

struct ClientConfig {
  std::string helo_name = "localhost";
  /// kRequired: no STARTTLS offered (or refused) fails the session, and the driver verifies
  /// the certificate; only then is the password sent.
  RelayTls starttls = RelayTls::kRequired;
  std::string username;  ///< AUTH PLAIN when not empty (only over verified TLS)
  std::string password;
  /// One reply, all its lines with their CRLFs (a relay cannot grow our memory).
  std::size_t max_reply = 64 * 1024;
};

namespace client_event {
/// The session waits for a reply: read more bytes and call receive() (or
/// connection_closed() at the end of the stream).
struct NeedData {};
/// The relay said 220 to STARTTLS: write the output, run the handshake, then call
/// tls_established(). Bytes received before that fail the session.
struct StartTls {};
/// The connection is set up: start() may be called, and again after each Done that is
/// `reusable` (the session is then idle in kReady). A second Ready comes only after check().
struct Ready {};
/// The transaction ended. `reply` is the relay's 250 for the message, or the refusal that
/// ended the transaction ("Relay refused <stage>: ..." with the relay's codes), or a
/// refusal of the session's own (SMTPUTF8 not offered). `recipients` holds one reply per
/// envelope recipient once the RCPT stage was reached (empty otherwise).
struct Done {
  smtp::Reply reply;
  std::vector<smtp::Reply> recipients;
  bool reusable = true;  ///< false: close the connection (the relay took data it refused)
};
/// The connection cannot be used (any more); close it. `reason` is for admins.
struct Failed {
  std::error_code error;
  std::string reason;
};
}  // namespace client_event

using ClientEvent = std::variant<client_event::NeedData, client_event::StartTls,
                                 client_event::Ready, client_event::Done, client_event::Failed>;

class ClientSession {
 public:
  /// What the session waits for. Setup: kGreeting .. kAuth; idle: kReady; a transaction:
  /// kRset .. kMessage (the reply the earliest outstanding command is due); kClosed after
  /// Failed or a Done that is not reusable.
  enum class State {
    kGreeting,
    kEhlo,
    kStartTls,
    kTlsHandshake,
    kAuth,
    kReady,
    kCheck,  ///< the reply to the RSET of check()
    kRset,
    kMail,
    kRcpt,
    kData,     ///< the reply to DATA (354)
    kMessage,  ///< the reply to the message (after the final dot, or to BDAT LAST)
    kClosed,
  };

  explicit ClientSession(ClientConfig config);

  /// Appends bytes read from the relay.
  void receive(std::string_view bytes);
  /// The relay closed the connection (end of stream).
  void connection_closed();
  /// The handshake asked for by StartTls succeeded (and was verified as the config says):
  /// the session starts over with EHLO (RFC 3207 4.2).
  void tls_established();
  /// Starts a transaction; only in kReady. Bytes received while idle (a reply nobody asked
  /// for) fail the session here. The pieces of `message` (CRLF line ends, not
  /// dot-stuffed) must stay valid until Done or Failed: the output points into them.
  void start(const Envelope& envelope, const std::vector<std::string_view>& message,
             bool all_or_nothing);

  /// Checks an idle connection before it is used again (it sat in the pool: the relay may
  /// have gone away or stopped answering): RSET (RFC 5321 4.1.1.5, harmless at any time, and
  /// it ends a transaction left open), then Ready when the relay says 250, or Failed. Only in
  /// kReady; bytes received while idle fail the session as in start().
  void check();

  /// The next event; NeedData also when idle (kReady) or closed (nothing to read then).
  ClientEvent next_event();

  /// The bytes to write, as pieces in order (commands, and the message's pieces without a
  /// copy). Valid until the next call of pending_output(); the output is emptied.
  std::vector<std::string_view> pending_output();
  bool has_output() const { return !pieces_.empty(); }
  /// Whether the pieces pending_output() last returned carry the message (its write may take
  /// minutes, RFC 5321 4.5.3.2.5).
  bool output_carries_message() const { return output_carries_message_; }
  /// Whether the reply now due is the one to the end of the message (RFC 5321 4.5.3.2.6:
  /// may take 10 minutes).
  bool awaiting_message_reply() const { return state_ == State::kMessage; }
  /// What the session waits for, for the driver's timeouts (RFC 5321 4.5.3.2): nothing
  /// (idle, closed, or the TLS handshake, which the driver runs), the greeting, the reply to
  /// a command, or the reply to the message (after the final dot, or to BDAT LAST).
  enum class Wait { kNothing, kGreeting, kReply, kMessageReply };
  Wait waiting_for() const;
  /// How many whole replies were read so far: the driver's timeout for "each reply" starts
  /// again when this changes (bytes of a reply that does not end do not count).
  std::size_t replies() const { return replies_; }
  /// Whether the relay answered any command of the current transaction (other than with
  /// 421 or a refused RSET): before that, a failure on a reused connection may be retried.
  bool answered() const { return answered_; }

  State state() const { return state_; }
  /// Idle and in step: nothing received since the last reply that was due.
  bool reusable() const { return state_ == State::kReady && input_pos_ == input_.size(); }
  bool tls_active() const { return tls_; }
  const Extensions& extensions() const { return extensions_; }

 private:
  enum class Expect { kRset, kMail, kRcpt, kData, kBdat, kDot };
  struct Piece {
    const char* external = nullptr;  // null: `offset` into commands_
    std::size_t offset = 0;
    std::size_t size = 0;
  };
  struct Transaction {
    Envelope envelope;
    std::vector<std::string_view> message;
    bool all_or_nothing = false;
    bool group = false;  // MAIL, RCPTs and DATA/BDAT in one write
    bool bdat = false;
    smtp::Reply mail;
    std::vector<smtp::Reply> recipients;
    std::size_t accepted = 0;
    smtp::Reply last;  // the grouped DATA's or BDAT's reply
  };

  bool next_reply(smtp::Reply& reply);
  void on_reply(const smtp::Reply& reply);
  void on_greeting(const smtp::Reply& r);
  void on_ehlo(const smtp::Reply& r);
  void on_starttls(const smtp::Reply& r);
  void on_auth(const smtp::Reply& r);
  void on_check(const smtp::Reply& r);
  bool in_step(std::string_view when);
  void proceed_auth();
  void on_transaction_reply(Expect what, const smtp::Reply& r);
  void on_rset(const smtp::Reply& r);
  void on_mail(const smtp::Reply& r);
  void on_rcpt(const smtp::Reply& r);
  void on_data(const smtp::Reply& r);
  void on_message(const smtp::Reply& r);
  void on_end_of_message(const smtp::Reply& r);
  void proceed_transaction();
  void proceed_after_envelope();
  void send_message_data();
  void expect(Expect e);
  void advance();
  void done(smtp::Reply reply, bool clear_recipients = false);
  void fail(ClientError error, std::string reason);
  void command(std::string_view line);
  void external(std::string_view piece);

  ClientConfig config_;
  State state_ = State::kGreeting;
  bool tls_ = false;
  bool dirty_ = false;   // a transaction was left open: RSET before the next
  bool broken_ = false;  // the relay took data for a refused transaction
  bool answered_ = false;
  std::size_t replies_ = 0;
  Extensions extensions_;
  std::deque<ClientEvent> events_;

  std::string input_;
  std::size_t input_pos_ = 0;
  std::size_t scanned_ = 0;       // input_[input_pos_, scanned_) holds no CRLF
  std::size_t reply_octets_ = 0;  // of the reply being read
  ReplyParser parser_;

  std::deque<Expect> expected_;  // replies due, in order
  Transaction txn_;

  std::string commands_;  // filled; pieces_ point into it
  std::string written_;   // what the last pending_output() pointed into
  std::vector<Piece> pieces_;
  bool carries_message_ = false;
  bool output_carries_message_ = false;
};

}  // namespace truefrom::relay
