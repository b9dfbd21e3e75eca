// The SRS reverse service for the inbound MTA: a Postfix socketmap endpoint
// (socketmap_table(5): netstring "NAME KEY" in, netstring "OK value" / "NOTFOUND " /
// "PERM reason" out) answering the map "reverse": an SRS address in [srs] domain whose hash
// and age check out maps to the address it stands for; anything else is NOTFOUND, so Postfix
// leaves the recipient alone. Use it as recipient_canonical_maps (contrib/postfix-srs.cf).
// Thread-safety: runs on the server's io_context; the Srs is immutable.
#pragma once

#include <utility>  // before Boost.Asio: Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>

#include "signer/srs/srs.hpp"

namespace truefrom::net {

/// The reply (without netstring framing) to one socketmap request "NAME KEY".
std::string socketmap_answer(const signer::srs::Srs& srs, std::string_view request,
                             std::int64_t now, std::string* log_line);

class SocketmapServer {
 public:
  SocketmapServer(boost::asio::io_context& io, const signer::srs::Srs& srs);
  bool listen(const std::string& host, std::uint16_t port, std::string& error);
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  const signer::srs::Srs& srs_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::string name_;
};

}  // namespace truefrom::net
