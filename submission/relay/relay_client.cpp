#include "submission/relay/relay_client.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <mutex>

#include "submission/core/command.hpp"
#include "submission/relay/dot_stuffing.hpp"
#include "submission/relay/reply_parser.hpp"

namespace truefrom::relay {

namespace asio = boost::asio;
using asio::ip::tcp;
using smtp::Reply;
using Clock = std::chrono::steady_clock;

namespace {

// Limit on one reply from the relay (a misbehaving relay cannot grow our memory).
constexpr std::size_t kMaxReplyBuffer = 64 * 1024;
// RFC 5321 4.5.3.2.6: the reply to the final dot may take 10 minutes.
constexpr std::chrono::seconds kDataTimeout{600};

class RelayFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string one_line(std::string text) {
  for (char& ch : text) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return text;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

struct Extensions {
  bool starttls = false, pipelining = false, chunking = false, eight_bit = false, smtputf8 = false,
       auth_plain = false;
};

Extensions parse_extensions(const Reply& ehlo) {
  Extensions e;
  std::string_view text = ehlo.text;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string line(text.substr(0, nl));
    for (char& ch : line) {
      if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
    }
    const std::string word = line.substr(0, line.find(' '));
    if (word == "STARTTLS") e.starttls = true;
    if (word == "PIPELINING") e.pipelining = true;
    if (word == "CHUNKING") e.chunking = true;
    if (word == "8BITMIME") e.eight_bit = true;
    if (word == "SMTPUTF8") e.smtputf8 = true;
    if (word == "AUTH" && (" " + line + " ").find(" PLAIN ") != std::string::npos) {
      e.auth_plain = true;
    }
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return e;
}

// The relay's refusal, passed back with its own codes.
Reply refusal(const Reply& relay, std::string_view stage) {
  Reply r = relay;
  if (!r.status) r.status = smtp::EnhancedStatus{relay.code / 100, 0, 0};
  r.text = "Relay refused " + std::string(stage) + ": " + one_line(relay.text);
  r.close_after = false;
  return r;
}

// async_write's own completion conditions hand the kernel at most 64 KiB per call: a 100 KiB
// message would go out in two sendmsg() calls and wake the relay's reader twice. This one
// lets one call take as much as the socket buffer does (plain connections; TLS writes go
// out a record at a time anyway).
struct WholeWrites {
  std::size_t operator()(const boost::system::error_code& ec, std::size_t) const {
    return ec ? 0 : std::size_t{64} << 20;
  }
};

}  // namespace

std::string RelayHost::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// One connection to a relay, set up (EHLO, STARTTLS, AUTH) and ready for transactions.
struct Conn {
  Conn(const asio::any_io_executor& ex, asio::ssl::context& ctx) : stream(ex, ctx), timer(ex) {}
  asio::ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  bool tls = false;
  bool expired = false;
  bool dirty = false;    // a transaction was left open: RSET before the next
  bool closing = false;  // the relay said 421: do not reuse
  std::atomic<std::uint64_t> generation{0};
  std::string buffer;
  std::string relay;
  Extensions ext;
  Clock::time_point idle_since;

  // Closes the socket if `timeout` passes before disarm() (or the next arm()). The watchdog
  // runs on the caller's executor, the one using the socket; a watchdog of an earlier arm()
  // whose timer fired late sees another generation and leaves the socket alone.
  void arm(const asio::any_io_executor& ex, std::chrono::seconds timeout,
           const std::shared_ptr<Conn>& self) {
    expired = false;
    const std::uint64_t gen = ++generation;
    timer.expires_after(timeout);
    asio::co_spawn(ex, watchdog(self, gen), asio::detached);
  }
  void disarm() {
    ++generation;
    timer.cancel();
  }
  static asio::awaitable<void> watchdog(std::shared_ptr<Conn> self, std::uint64_t gen) {
    boost::system::error_code ec;
    co_await self->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && self->generation == gen) {
      self->expired = true;
      self->stream.next_layer().close(ec);
    }
  }

  void close() {
    boost::system::error_code ignored;
    disarm();
    stream.next_layer().close(ignored);
  }

  asio::awaitable<Reply> read_reply() {
    ReplyParser parser;
    for (;;) {
      auto buf = asio::dynamic_buffer(buffer, kMaxReplyBuffer);
      std::size_t n = 0;  // (no co_await inside ?: with GCC 12)
      if (tls) {
        n = co_await asio::async_read_until(stream, buf, "\r\n", asio::use_awaitable);
      } else {
        n = co_await asio::async_read_until(stream.next_layer(), buf, "\r\n", asio::use_awaitable);
      }
      const std::string line = buffer.substr(0, n - 2);
      buffer.erase(0, n);
      switch (parser.feed(line)) {
        case ReplyParser::Result::kMore:
          continue;
        case ReplyParser::Result::kDone:
          co_return parser.reply();
        case ReplyParser::Result::kError:
          throw RelayFailure("malformed reply from relay: " + line.substr(0, 80));
      }
    }
  }

  template <class Buffers>
  asio::awaitable<void> write(const Buffers& data) {
    if (tls) {
      co_await asio::async_write(stream, data, asio::use_awaitable);
    } else {
      co_await asio::async_write(stream.next_layer(), data, WholeWrites{}, asio::use_awaitable);
    }
  }

  asio::awaitable<Reply> command(const std::string& line) {
    const std::string out = line + "\r\n";
    co_await write(asio::buffer(out));
    co_return co_await read_reply();
  }
};

struct RelayClient::Impl {
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::mutex mutex;
  std::deque<std::shared_ptr<Conn>> idle;

  // Connects to one relay and sets the connection up. Throws RelayFailure (or a system
  // error) with the reason.
  asio::awaitable<void> open(Conn& c, const RelayOptions& o, const RelayHost& h) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    auto endpoints =
        co_await resolver.async_resolve(h.host, std::to_string(h.port), asio::use_awaitable);
    co_await asio::async_connect(c.stream.next_layer(), endpoints, asio::use_awaitable);
    // Commands and messages are written whole: Nagle would only delay them.
    c.stream.next_layer().set_option(tcp::no_delay(true));
    const Reply greeting = co_await c.read_reply();
    if (greeting.code != 220) throw RelayFailure("greeting " + greeting.summary());
    Reply ehlo = co_await c.command("EHLO " + o.helo_name);
    if (ehlo.code != 250) throw RelayFailure("EHLO answered " + ehlo.summary());
    c.ext = parse_extensions(ehlo);
    if (o.starttls != RelayTls::kNone && c.ext.starttls) {
      const Reply r = co_await c.command("STARTTLS");
      if (r.code == 220) {
        if (!c.buffer.empty()) throw RelayFailure("relay sent data before the TLS handshake");
        co_await handshake(c, o, h);
        c.tls = true;
        ehlo = co_await c.command("EHLO " + o.helo_name);
        if (ehlo.code != 250) throw RelayFailure("EHLO answered " + ehlo.summary());
        c.ext = parse_extensions(ehlo);
      } else if (o.starttls == RelayTls::kRequired) {
        throw RelayFailure("STARTTLS answered " + r.summary());
      }
    } else if (o.starttls == RelayTls::kRequired) {
      throw RelayFailure("does not offer STARTTLS, which [relay] starttls = \"required\" demands");
    }
    if (!o.username.empty()) {
      // Only over a verified channel: an unverified one may be a man in the middle.
      if (!c.tls || o.starttls != RelayTls::kRequired) {
        throw RelayFailure("no verified TLS, so the relay password is not sent");
      }
      if (!c.ext.auth_plain) throw RelayFailure("does not offer AUTH PLAIN");
      const std::string token =
          smtp::base64_encode(std::string(1, '\0') + o.username + '\0' + o.password);
      const Reply r = co_await c.command("AUTH PLAIN " + token);
      if (r.code != 235) {
        throw RelayFailure("refused [relay] username " + o.username + ": " + r.summary());
      }
    }
  }

  asio::awaitable<void> handshake(Conn& c, const RelayOptions& o, const RelayHost& h) {
    SSL* ssl = c.stream.native_handle();
    const bool verify_chain = o.starttls == RelayTls::kRequired && o.fingerprint.empty();
    if (!is_ip_literal(h.host)) SSL_set_tlsext_host_name(ssl, h.host.c_str());
    if (verify_chain) {
      SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
      if (is_ip_literal(h.host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h.host.c_str());
      } else {
        SSL_set1_host(ssl, h.host.c_str());
      }
    } else {
      SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    }
    boost::system::error_code ec;
    co_await c.stream.async_handshake(asio::ssl::stream_base::client,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      const long v = SSL_get_verify_result(ssl);
      if (verify_chain && v != X509_V_OK) {
        throw RelayFailure(std::string("certificate not trusted: ") +
                           X509_verify_cert_error_string(v) +
                           " (set [relay] ca_file to the CA that issued it, or pin it with "
                           "[relay] fingerprint)");
      }
      throw RelayFailure("TLS handshake failed: " + ec.message());
    }
    if (o.starttls == RelayTls::kRequired && !o.fingerprint.empty()) {
      X509* cert = SSL_get1_peer_certificate(ssl);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      const bool ok = cert && X509_digest(cert, EVP_sha256(), md, &len) == 1 &&
                      len == o.fingerprint.size() &&
                      std::equal(o.fingerprint.begin(), o.fingerprint.end(), md);
      X509_free(cert);
      if (!ok) {
        throw RelayFailure(
            "certificate does not match [relay] fingerprint (see `openssl x509 -noout "
            "-fingerprint -sha256` of the relay's certificate)");
      }
    }
  }

  // An idle connection, or a new one to the first relay that works. Null with `why` when
  // none could be reached.
  asio::awaitable<std::shared_ptr<Conn>> acquire(const RelayOptions& o, bool fresh, bool& reused,
                                                 std::string& why) {
    if (!fresh) {
      std::lock_guard lock(mutex);
      const auto now = Clock::now();
      while (!idle.empty()) {
        auto c = std::move(idle.front());
        idle.pop_front();
        if (now - c->idle_since < o.idle_keep) {
          reused = true;
          co_return c;
        }
        c->close();
      }
    }
    reused = false;
    auto ex = co_await asio::this_coro::executor;
    for (const auto& h : o.hosts) {
      auto c = std::make_shared<Conn>(ex, tls);
      c->relay = h.to_string();
      c->arm(ex, o.timeout, c);
      std::string error;
      try {
        co_await open(*c, o, h);
      } catch (const std::exception& e) {
        error = c->expired ? "timed out" : e.what();
      }
      c->disarm();
      if (error.empty()) co_return c;
      c->close();
      why += (why.empty() ? "" : "; ") + h.to_string() + ": " + error;
    }
    co_return nullptr;
  }

  void release(std::shared_ptr<Conn> c, const RelayOptions& o) {
    c->disarm();
    if (c->closing) {
      c->close();
      return;
    }
    c->idle_since = Clock::now();
    std::lock_guard lock(mutex);
    if (idle.size() >= o.max_idle_connections) {
      c->close();
      return;
    }
    idle.push_back(std::move(c));
  }

  // One transaction on a set-up connection. `answered` tells whether the relay replied to
  // anything of it, `message_sent` whether the message went out before any reply (BDAT):
  // a reused connection that fails before a reply is tried again on a fresh one, unless
  // the relay may have the message and did not answer in time.
  asio::awaitable<Attempt> transact(const std::shared_ptr<Conn>& self,
                                    std::chrono::seconds o_timeout, const Envelope& env,
                                    const std::vector<std::string_view>& message,
                                    bool all_or_nothing, bool& answered, bool& message_sent) {
    Conn& c = *self;
    const asio::any_io_executor ex = co_await asio::this_coro::executor;
    Attempt a;
    a.relay = c.relay;
    if (c.dirty) {
      const Reply r = co_await c.command("RSET");
      if (r.code == 421) c.closing = true;  // closing down: not an answer to this message
      if (r.code != 250) throw RelayFailure("RSET answered " + r.summary());
      answered = true;
      c.dirty = false;
    }
    std::string mail = "MAIL FROM:<" + env.mail_from + ">";
    if (env.eight_bit && c.ext.eight_bit) mail += " BODY=8BITMIME";
    if (env.smtputf8) {
      if (!c.ext.smtputf8) {
        a.reply = Reply{550,
                        {5, 6, 7},
                        "The relay does not support SMTPUTF8, which this "
                        "message needs"};
        co_return a;
      }
      mail += " SMTPUTF8";
    }
    // With PIPELINING the whole transaction goes in one write (RFC 2920): MAIL, every RCPT,
    // then "BDAT <size> LAST" and the message when the relay offers CHUNKING (RFC 3030: one
    // round trip), else DATA (two). Not when all-or-nothing has several recipients: the
    // message must not go to some of them when another is refused.
    const bool group = c.ext.pipelining && (!all_or_nothing || env.recipients.size() == 1);
    const bool bdat = group && c.ext.chunking;
    std::string commands = mail + "\r\n";
    for (const auto& rcpt : env.recipients) commands += "RCPT TO:<" + rcpt + ">\r\n";
    std::vector<std::string_view> pieces;
    if (bdat) {
      const std::size_t size = chunk(message, pieces);
      commands += "BDAT " + std::to_string(size) + " LAST\r\n";
      // RFC 5321 4.5.3.2.5/6: sending the data may take minutes.
      c.arm(ex, std::max(o_timeout, kDataTimeout), self);
    } else if (group) {
      commands += "DATA\r\n";
    }
    c.dirty = true;
    if (c.ext.pipelining) {
      std::vector<asio::const_buffer> out;
      out.reserve(pieces.size() + 1);
      out.emplace_back(commands.data(), commands.size());
      for (const auto p : pieces) out.emplace_back(p.data(), p.size());
      co_await c.write(out);
    } else {
      co_await c.write(asio::buffer(commands.data(), commands.find('\n') + 1));
    }
    if (bdat) {
      // The relay may have the message now: never sent again as if it had not (even when
      // its replies do not come), and what remains in flight is at most a socket buffer,
      // so the replies to MAIL and RCPT are due within the command timeout again.
      message_sent = true;
      c.arm(ex, o_timeout, self);
    }
    const Reply mail_reply = co_await c.read_reply();
    if (mail_reply.code == 421) {  // a reused connection the relay is closing
      c.closing = true;
      throw RelayFailure("the relay closed the connection: " + mail_reply.summary());
    }
    answered = true;
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
      if (!c.ext.pipelining) {
        if (mail_reply.code != 250) break;
        co_await c.write(asio::buffer("RCPT TO:<" + env.recipients[i] + ">\r\n"));
      }
      a.recipients.push_back(co_await c.read_reply());
      accepted += a.recipients.back().positive() ? 1 : 0;
      if (a.recipients.back().code == 421) c.closing = true;
    }
    // The reply to the pipelined BDAT or DATA: the message's, or (with no transaction or no
    // recipient) a refusal that says nothing more than the earlier ones.
    Reply last;
    // RFC 5321 4.5.3.2.6: the reply to the end of the data may take minutes.
    if (bdat) c.arm(ex, std::max(o_timeout, kDataTimeout), self);
    if (group) last = co_await c.read_reply();
    if (last.code == 421) c.closing = true;
    if (mail_reply.code != 250 || accepted == 0) {
      // A relay that takes the data of a transaction it refused is broken: drop it.
      if (last.code == 354 || last.code == 250) c.closing = true;
      if (mail_reply.code != 250) {
        a.recipients.clear();
        a.reply = refusal(mail_reply, "MAIL FROM");
        co_return a;
      }
    }
    // Passthrough: the first refusal answers the client. Queue: the message goes to the
    // accepted recipients; the refused ones are reported per recipient.
    for (std::size_t i = 0; i < a.recipients.size(); ++i) {
      if (!a.recipients[i].positive() && (all_or_nothing || accepted == 0)) {
        if (last.code == 354) c.closing = true;  // the relay waits for data we do not send
        a.reply = refusal(a.recipients[i], "RCPT TO:<" + env.recipients[i] + ">");
        co_return a;
      }
    }
    if (bdat) {
      if (last.code == 250) c.dirty = false;
      a.reply = last.code == 250 ? last : refusal(last, "the message");
      co_return a;
    }
    Reply data = last;  // (no co_await inside ?: with GCC 12)
    if (!group) data = co_await c.command("DATA");
    if (data.code != 354) {
      if (data.code == 421) c.closing = true;
      a.reply = refusal(data, "DATA");
      co_return a;
    }
    c.arm(ex, std::max(o_timeout, kDataTimeout), self);
    dot_stuff(message, pieces);
    std::vector<asio::const_buffer> out;
    out.reserve(pieces.size());
    for (const auto p : pieces) out.emplace_back(p.data(), p.size());
    co_await c.write(out);
    const Reply final_reply = co_await c.read_reply();
    if (final_reply.code == 421) c.closing = true;
    c.dirty = false;
    a.reply = final_reply.code == 250 ? final_reply : refusal(final_reply, "the message");
    co_return a;
  }
};

RelayClient::RelayClient(RelayOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

RelayClient::~RelayClient() { close_idle(); }

std::unique_ptr<RelayClient> RelayClient::create(RelayOptions options, std::string& error) {
  std::unique_ptr<RelayClient> c(new RelayClient(std::move(options)));
  auto& ctx = c->impl_->tls;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (!c->options_.ca_file.empty()) {
    ctx.load_verify_file(c->options_.ca_file, ec);
    if (ec) {
      error = "cannot load [relay] ca_file " + c->options_.ca_file + ": " + ec.message() +
              " (it must be a PEM file of CA certificates)";
      return nullptr;
    }
  } else {
    ctx.set_default_verify_paths(ec);
    if (ec) {
      error = "cannot load the system's CA certificates: " + ec.message();
      return nullptr;
    }
  }
  if (c->options_.hosts.empty()) {
    error = "no relay configured";
    return nullptr;
  }
  return c;
}

void RelayClient::close_idle() {
  std::lock_guard lock(impl_->mutex);
  for (auto& c : impl_->idle) c->close();
  impl_->idle.clear();
}

asio::awaitable<Attempt> RelayClient::send(const Envelope& envelope,
                                           const std::vector<std::string_view>& message,
                                           bool all_or_nothing) {
  auto ex = co_await asio::this_coro::executor;
  for (int round = 0;; ++round) {
    bool reused = false;
    std::string why;
    // The second round never takes a pooled connection: they may all be stale.
    auto c = co_await impl_->acquire(options_, round > 0, reused, why);
    if (!c) {
      Attempt a;
      a.reply = Reply{451, {4, 4, 1}, "No relay reachable (" + why + "), try again later"};
      co_return a;
    }
    c->arm(ex, options_.timeout, c);
    bool answered = false;
    bool message_sent = false;
    std::string error;
    Attempt a;
    try {
      a = co_await impl_->transact(c, options_.timeout, envelope, message, all_or_nothing, answered,
                                   message_sent);
    } catch (const std::exception& e) {
      error = c->expired ? "timed out" : e.what();
    }
    if (error.empty()) {
      impl_->release(std::move(c), options_);
      co_return a;
    }
    const std::string relay = c->relay;
    c->close();
    // An idle connection the relay closed meanwhile: once more on a fresh one. (Silence
    // after the message went out is no sign of that: a relay slow to answer may have it.)
    const bool silent_after_message = message_sent && c->expired;
    if (reused && !answered && !silent_after_message && round == 0) continue;
    a = Attempt{};
    a.relay = relay;
    a.reply = Reply{451, {4, 4, 1}, "Relay " + relay + " failed (" + error + "), try again later"};
    co_return a;
  }
}

Reply RelayClient::client_reply(const Attempt& a, const Envelope&) {
  if (a.reply.code != 250) return a.reply;
  return Reply{250, {2, 0, 0}, "Ok: relayed (relay said: " + one_line(a.reply.text) + ")"};
}

}  // namespace truefrom::relay
