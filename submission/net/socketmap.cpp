#include "submission/net/socketmap.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <ctime>

#include "submission/core/netstring.hpp"
#include "submission/runtime/log.hpp"

namespace truefrom::net {

using runtime::log_info;

using runtime::log_warning;
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Postfix's socketmap client refuses replies over 100000 octets; requests are addresses.
constexpr std::size_t kMaxRequest = 10000;

}  // namespace

std::string socketmap_answer(const signer::srs::Srs& srs, std::string_view request,
                             std::int64_t now, std::string* log_line) {
  const auto sp = request.find(' ');
  const std::string_view name = request.substr(0, sp);
  const std::string_view key =
      sp == std::string_view::npos ? std::string_view{} : request.substr(sp + 1);
  if (name != "reverse") return "PERM unknown map \"" + std::string(name.substr(0, 40)) + "\"";
  if (!srs.in_domain(key)) return "NOTFOUND ";
  std::string why;
  const auto original = srs.reverse(key, now, why);
  if (!original) {
    if (log_line) *log_line = "srs: reverse <" + std::string(key) + ">: " + why;
    return "NOTFOUND ";
  }
  return "OK " + *original;
}

SocketmapServer::SocketmapServer(asio::io_context& io, const signer::srs::Srs& srs)
    : io_(io), srs_(srs), acceptor_(io) {}

bool SocketmapServer::listen(const std::string& host, std::uint16_t port, std::string& error) {
  name_ = host + ":" + std::to_string(port);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    error = "cannot listen on [srs] socketmap " + name_ + ": \"" + host + "\" is not an IP address";
    return false;
  }
  const tcp::endpoint ep(address, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on [srs] socketmap " + name_ + ": " + ec.message();
    return false;
  }
  log_info("srs: reverse socketmap listening on " + name_);
  return true;
}

void SocketmapServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void SocketmapServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> SocketmapServer::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket(asio::make_strand(io_));
    co_await acceptor_.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    auto ex = socket.get_executor();
    asio::co_spawn(ex, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> SocketmapServer::serve(tcp::socket socket) {
  smtp::NetstringReader reader(kMaxRequest);
  std::string buffer(4096, '\0');
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = co_await socket.async_read_some(
        asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    reader.feed(std::string_view(buffer.data(), n));
    std::string request, error, out;
    for (;;) {
      const auto r = reader.next(request, error);
      if (r == smtp::NetstringReader::Result::kMore) break;
      if (r == smtp::NetstringReader::Result::kError) {
        log_warning("srs: socketmap client sent a bad request (" + error + "); closing");
        co_await asio::async_write(socket, asio::buffer(out),
                                   asio::redirect_error(asio::use_awaitable, ec));
        co_return;
      }
      std::string log_line;
      out += smtp::netstring(socketmap_answer(srs_, request, std::time(nullptr), &log_line));
      if (!log_line.empty()) log_info(log_line);
    }
    if (!out.empty()) {
      co_await asio::async_write(socket, asio::buffer(out),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
  }
}

}  // namespace truefrom::net
