#include "contrib/bench/smtp_client.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>

namespace truefrom::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// A reply longer than this is not an SMTP server speaking (RFC 5321 4.5.3.1.5 allows 512
// octets per reply line; EHLO replies have a few dozen lines).
constexpr std::size_t kMaxReplyBytes = 64 * 1024;
constexpr int kMaxReplyLines = 100;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string SmtpReply::to_string() const { return std::to_string(code) + " " + text; }

asio::ssl::context make_client_tls_context() {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  ctx.set_verify_mode(asio::ssl::verify_none);
  // Every connection makes a full handshake, as clients on different hosts would: no
  // client-side session cache, and no tickets asked for.
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  return ctx;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

SmtpClient::SmtpClient(const asio::any_io_executor& executor, asio::ssl::context& tls,
                       std::chrono::milliseconds timeout)
    : executor_(executor), tls_(tls), timeout_(timeout), watchdog_(executor) {}

void SmtpClient::arm() {
  deadline_ = std::chrono::steady_clock::now() + timeout_;
  armed_ = true;
  if (!waiting_) watch();
}

void SmtpClient::watch() {
  waiting_ = true;
  watchdog_.expires_at(deadline_);
  // `this` outlives the io_context's run() (see the header), so the handler may use it.
  watchdog_.async_wait([this](const error_code& ec) {
    waiting_ = false;
    if (ec == asio::error::operation_aborted || stopped_ || !armed_) return;
    if (std::chrono::steady_clock::now() < deadline_) {
      watch();  // the deadline moved on since this wait began
      return;
    }
    timed_out_ = true;
    armed_ = false;
    if (stream_) {
      error_code ignored;
      stream_->lowest_layer().close(ignored);
    }
  });
}

void SmtpClient::fail(std::string_view step, const error_code& ec) {
  std::string what;
  if (timed_out_) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", static_cast<double>(timeout_.count()) / 1000);
    what = "timeout after " + std::string(seconds) + " s in " + std::string(step);
  } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
             ec == asio::error::connection_reset) {
    what =
        "connection closed by the server during " + std::string(step) + " (" + ec.message() + ")";
  } else {
    what = std::string(step) + ": " + ec.message();
  }
  throw SessionError(what);
}

asio::awaitable<void> SmtpClient::open(const tcp::endpoint& endpoint, bool implicit_tls) {
  close();
  stream_.emplace(executor_, tls_);
  timed_out_ = false;
  tls_active_ = false;
  input_.clear();
  error_code ec;
  arm();
  co_await stream_->next_layer().async_connect(endpoint,
                                               asio::redirect_error(asio::use_awaitable, ec));
  if (ec)
    fail("connect to " + endpoint.address().to_string() + ":" + std::to_string(endpoint.port()),
         ec);
  stream_->next_layer().set_option(tcp::no_delay(true), ec);
  if (implicit_tls) {
    co_await stream_->async_handshake(asio::ssl::stream_base::client,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec) fail("TLS handshake", ec);
    tls_active_ = true;
  }
}

asio::awaitable<SmtpReply> SmtpClient::read_reply(std::string_view step) {
  if (!stream_) throw SessionError(std::string(step) + ": not connected");
  SmtpReply reply;
  for (int lines = 0;; ++lines) {
    if (lines == kMaxReplyLines) {
      throw SessionError("reply to " + std::string(step) + " has more than " +
                         std::to_string(kMaxReplyLines) + " lines");
    }
    error_code ec;
    auto buffer = asio::dynamic_buffer(input_, kMaxReplyBytes);
    arm();
    const std::size_t n =
        tls_active_
            ? co_await asio::async_read_until(*stream_, buffer, "\r\n",
                                              asio::redirect_error(asio::use_awaitable, ec))
            : co_await asio::async_read_until(stream_->next_layer(), buffer, "\r\n",
                                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) fail("reply to " + std::string(step), ec);
    const std::string line = input_.substr(0, n - 2);
    input_.erase(0, n);
    // RFC 5321 4.2: "NNN-text" continues, "NNN text" (or "NNN") ends the reply.
    const bool well_formed = line.size() >= 3 && is_digit(line[0]) && is_digit(line[1]) &&
                             is_digit(line[2]) &&
                             (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!well_formed) {
      throw SessionError("malformed reply line to " + std::string(step) + ": \"" +
                         line.substr(0, 80) + "\"");
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (lines > 0 && code != reply.code) {
      throw SessionError("reply to " + std::string(step) + " mixes codes " +
                         std::to_string(reply.code) + " and " + std::to_string(code));
    }
    reply.code = code;
    if (line.size() > 4) {
      if (!reply.text.empty()) reply.text += " / ";
      reply.text.append(line, 4);
    }
    if (line.size() == 3 || line[3] == ' ') break;
  }
  armed_ = false;
  co_return reply;
}

asio::awaitable<void> SmtpClient::write(std::string_view data, std::string_view step) {
  if (!stream_) throw SessionError(std::string(step) + ": not connected");
  error_code ec;
  arm();
  if (tls_active_) {
    co_await asio::async_write(*stream_, asio::buffer(data),
                               asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(stream_->next_layer(), asio::buffer(data),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) fail(step, ec);
  armed_ = false;
}

asio::awaitable<SmtpReply> SmtpClient::command(std::string_view line, std::string_view step) {
  output_.assign(line);
  output_ += "\r\n";
  co_await write(output_, step);
  co_return co_await read_reply(step);
}

asio::awaitable<void> SmtpClient::start_tls() {
  // RFC 3207 5: nothing the server sent before the handshake may be used after it.
  if (!input_.empty()) {
    throw SessionError("the server sent " + std::to_string(input_.size()) +
                       " bytes after its 220 to STARTTLS, before the TLS handshake");
  }
  error_code ec;
  arm();
  co_await stream_->async_handshake(asio::ssl::stream_base::client,
                                    asio::redirect_error(asio::use_awaitable, ec));
  if (ec) fail("TLS handshake after STARTTLS", ec);
  armed_ = false;
  tls_active_ = true;
}

void SmtpClient::close() {
  if (!stream_) return;
  error_code ignored;
  stream_->lowest_layer().close(ignored);
}

void SmtpClient::shutdown() {
  close();
  stopped_ = true;
  armed_ = false;
  watchdog_.cancel();
}

}  // namespace truefrom::bench
