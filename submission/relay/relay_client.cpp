#include "submission/relay/relay_client.hpp"

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
#include <memory>

#include "submission/relay/reply_parser.hpp"

namespace truefrom::relay {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using smtp::Reply;

// Limit on one reply from the relay (a misbehaving relay cannot grow our memory).
constexpr std::size_t kMaxReplyBuffer = 64 * 1024;

asio::ssl::context& client_tls_context() {
  // Shared by all deliveries (SSL_CTX is thread-safe once configured). Certificate
  // verification of the relay is configured by the queue issue; for now the channel is
  // encrypted but the peer is not authenticated.
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
    c.set_verify_mode(asio::ssl::verify_none);
    return c;
  }();
  return ctx;
}

struct Connection {
  explicit Connection(const asio::any_io_executor& ex)
      : stream(ex, client_tls_context()), timer(ex) {}
  asio::ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  bool tls = false;
  bool expired = false;
  std::string buffer;
};

class RelayFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

asio::awaitable<Reply> read_reply(Connection& c) {
  ReplyParser parser;
  for (;;) {
    auto buf = asio::dynamic_buffer(c.buffer, kMaxReplyBuffer);
    const std::size_t n =
        c.tls ? co_await asio::async_read_until(c.stream, buf, "\r\n", asio::use_awaitable)
              : co_await asio::async_read_until(c.stream.next_layer(), buf, "\r\n",
                                                asio::use_awaitable);
    const std::string line = c.buffer.substr(0, n - 2);
    c.buffer.erase(0, n);
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

asio::awaitable<void> write_all(Connection& c, const std::string& data) {
  if (c.tls) {
    co_await asio::async_write(c.stream, asio::buffer(data), asio::use_awaitable);
  } else {
    co_await asio::async_write(c.stream.next_layer(), asio::buffer(data), asio::use_awaitable);
  }
}

asio::awaitable<Reply> command(Connection& c, const std::string& line) {
  co_await write_all(c, line + "\r\n");
  co_return co_await read_reply(c);
}

bool has_extension(const Reply& ehlo, std::string_view keyword) {
  std::string_view text = ehlo.text;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    const std::string_view word = line.substr(0, line.find(' '));
    if (word.size() == keyword.size()) {
      bool same = true;
      for (std::size_t i = 0; i < word.size(); ++i) {
        char a = word[i];
        if (a >= 'a' && a <= 'z') a = static_cast<char>(a - 32);
        if (a != keyword[i]) same = false;
      }
      if (same) return true;
    }
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return false;
}

// RFC 5321 4.5.2: a line starting with "." gets one more. `message` has CRLF line ends.
std::string dot_stuff(const std::string& message) {
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 8);
  bool line_start = true;
  for (char ch : message) {
    if (line_start && ch == '.') out += '.';
    out += ch;
    line_start = ch == '\n';
  }
  if (!message.empty() && !line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

// The relay's refusal, passed back with its own codes.
Reply refusal(const Reply& relay, std::string_view stage) {
  Reply r = relay;
  if (!r.status) r.status = smtp::EnhancedStatus{relay.code / 100, 0, 0};
  std::string text = relay.text;
  for (char& ch : text) {
    if (ch == '\n') ch = ' ';
  }
  r.text = "Relay refused " + std::string(stage) + ": " + text;
  r.close_after = false;
  return r;
}

asio::awaitable<Reply> converse(Connection& c, const RelayOptions& options,
                                const Envelope& envelope, const std::string& message) {
  Reply greeting = co_await read_reply(c);
  if (greeting.code != 220) co_return refusal(greeting, "the connection");
  Reply ehlo = co_await command(c, "EHLO " + options.helo_name);
  if (ehlo.code != 250) co_return refusal(ehlo, "EHLO");
  if (options.starttls != RelayTls::kNone) {
    if (has_extension(ehlo, "STARTTLS")) {
      Reply r = co_await command(c, "STARTTLS");
      if (r.code != 220) {
        if (options.starttls == RelayTls::kRequired) co_return refusal(r, "STARTTLS");
      } else {
        if (!c.buffer.empty()) throw RelayFailure("relay sent data before the TLS handshake");
        SSL_set_tlsext_host_name(c.stream.native_handle(), options.host.c_str());
        co_await c.stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        c.tls = true;
        ehlo = co_await command(c, "EHLO " + options.helo_name);
        if (ehlo.code != 250) co_return refusal(ehlo, "EHLO");
      }
    } else if (options.starttls == RelayTls::kRequired) {
      co_return Reply{
          451,
          {4, 7, 5},
          "Relay does not offer STARTTLS, which [relay] starttls = \"required\" demands"};
    }
  }
  std::string mail = "MAIL FROM:<" + envelope.mail_from + ">";
  if (envelope.eight_bit && has_extension(ehlo, "8BITMIME")) mail += " BODY=8BITMIME";
  if (envelope.smtputf8) {
    if (!has_extension(ehlo, "SMTPUTF8")) {
      co_return Reply{
          550, {5, 6, 7}, "The relay does not support SMTPUTF8, which this message needs"};
    }
    mail += " SMTPUTF8";
  }
  if (Reply r = co_await command(c, mail); r.code != 250) co_return refusal(r, "MAIL FROM");
  for (const auto& rcpt : envelope.recipients) {
    // All or nothing: the client has one answer for the whole message.
    Reply r = co_await command(c, "RCPT TO:<" + rcpt + ">");
    if (r.code != 250 && r.code != 251) co_return refusal(r, "RCPT TO:<" + rcpt + ">");
  }
  if (Reply r = co_await command(c, "DATA"); r.code != 354) co_return refusal(r, "DATA");
  co_await write_all(c, dot_stuff(message));
  Reply final_reply = co_await read_reply(c);
  if (final_reply.code != 250) co_return refusal(final_reply, "the message");
  co_await write_all(c, "QUIT\r\n");
  std::string text = final_reply.text;
  for (char& ch : text) {
    if (ch == '\n') ch = ' ';
  }
  co_return Reply{250, {2, 0, 0}, "Ok: relayed (relay said: " + text + ")"};
}

}  // namespace

asio::awaitable<Reply> deliver(const RelayOptions& options, const Envelope& envelope,
                               const std::string& message) {
  auto ex = co_await asio::this_coro::executor;
  auto c = std::make_shared<Connection>(ex);
  c->timer.expires_after(options.timeout);
  asio::co_spawn(
      ex,
      [c]() -> asio::awaitable<void> {
        boost::system::error_code ec;
        co_await c->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
          c->expired = true;
          c->stream.next_layer().close(ec);
        }
      },
      asio::detached);
  Reply result;
  try {
    tcp::resolver resolver(ex);
    auto endpoints = co_await resolver.async_resolve(options.host, std::to_string(options.port),
                                                     asio::use_awaitable);
    co_await asio::async_connect(c->stream.next_layer(), endpoints, asio::use_awaitable);
    result = co_await converse(*c, options, envelope, message);
  } catch (const std::exception& e) {
    const std::string why = c->expired ? "timed out" : e.what();
    result = Reply{451,
                   {4, 4, 1},
                   "Relay " + options.host + ":" + std::to_string(options.port) +
                       " unavailable, try again later (" + why + ")"};
  }
  c->timer.cancel();
  boost::system::error_code ignored;
  c->stream.next_layer().close(ignored);
  co_return result;
}

}  // namespace truefrom::relay
