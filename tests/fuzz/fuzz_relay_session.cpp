// libFuzzer target: arbitrary relay bytes into relay::ClientSession, with a driver that
// does what the Asio one does (handshake at StartTls, a transaction at Ready and after each
// reusable Done, stop at Failed). The first octet chooses the options and how the input is
// split. Properties: no crash or hang; the output is whole CRLF lines of bounded size; no
// event after Failed; a Done has at most one reply per recipient, and a 2xx-5xx code.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "submission/relay/client_session.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace truefrom::relay;
  if (size == 0) return 0;
  const std::uint8_t options = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  ClientConfig config;
  config.helo_name = "fuzz.test";
  config.starttls = static_cast<RelayTls>((options & 3) % 3);
  if (options & 4) {
    config.username = "user";
    config.password = "secret";
  }
  config.max_reply = 512;
  const bool all_or_nothing = (options & 8) != 0;
  const std::size_t step = ((options >> 4) % 7) + 1;

  ClientSession s(config);
  Envelope env;
  env.mail_from = "a@fuzz.test";
  env.recipients = {"b@dest.test", "c@dest.test"};
  if (options & 0x80) env.recipients.pop_back();
  env.eight_bit = true;
  const std::string text = "Subject: x\r\n\r\n.dot\r\nbody";
  const std::vector<std::string_view> message{text};

  std::size_t pos = 0;
  std::size_t output = 0;
  int transactions = 0;
  bool failed = false;
  bool closed = false;
  for (int guard = 0; guard < 100000; ++guard) {
    const ClientEvent ev = s.next_event();
    std::string out;
    for (const auto piece : s.pending_output()) out.append(piece);
    check(out.empty() || out.size() >= 2);
    if (!out.empty()) check(out.compare(out.size() - 2, 2, "\r\n") == 0);
    output += out.size();
    check(output <= 4096 + 2048 * static_cast<std::size_t>(transactions));
    if (std::holds_alternative<client_event::NeedData>(ev)) {
      if (s.state() == ClientSession::State::kTlsHandshake) {
        s.tls_established();
        continue;
      }
      if (pos >= input.size()) {
        if (closed) break;
        s.connection_closed();  // the end of the input is the end of the stream
        closed = true;
        continue;
      }
      s.receive(input.substr(pos, step));
      pos += step;
      continue;
    }
    check(!failed);
    if (std::holds_alternative<client_event::Ready>(ev)) {
      ++transactions;
      s.start(env, message, all_or_nothing);
    } else if (const auto* d = std::get_if<client_event::Done>(&ev)) {
      check(d->recipients.size() <= env.recipients.size());
      check(d->reply.code >= 200 && d->reply.code <= 599);
      if (d->reusable && transactions < 3) {
        ++transactions;
        s.start(env, message, all_or_nothing);
      }
    } else if (std::holds_alternative<client_event::Failed>(ev)) {
      failed = true;
    }
  }
  return 0;
}
