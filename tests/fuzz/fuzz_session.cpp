// libFuzzer target: arbitrary client bytes into smtp::Session, with a scripted application
// that accepts everything. Properties: no crash, no hang, replies always CRLF-terminated, and
// the output never grows without bound relative to the input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "submission/core/session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace truefrom::smtp;
  SessionConfig config;
  config.hostname = "fuzz.test";
  config.max_message_size = 4096;
  Session s(config);
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first byte chooses how the input is split, to exercise partial reads.
  const std::size_t step = size > 0 ? (data[0] % 7) + 1 : 1;
  std::size_t pos = 0;
  std::size_t output = 0;
  for (int guard = 0; guard < 1000000; ++guard) {
    Event ev = s.next_event();
    output += s.take_output().size();
    if (std::holds_alternative<event::NeedData>(ev)) {
      if (pos >= input.size()) break;
      s.receive(input.substr(pos, step));
      pos += step;
    } else if (std::holds_alternative<event::StartTls>(ev)) {
      s.tls_established();
    } else if (std::holds_alternative<event::AuthStart>(ev) ||
               std::holds_alternative<event::AuthResponse>(ev)) {
      if (size % 3 == 0) {
        s.auth_challenge("Password:");
      } else if (size % 3 == 1) {
        s.auth_succeeded("fuzz");
      } else {
        s.auth_failed(Reply{535, {5, 7, 8}, "no"});
      }
    } else if (std::holds_alternative<event::MailFrom>(ev) ||
               std::holds_alternative<event::RcptTo>(ev) ||
               std::holds_alternative<event::DataEnd>(ev)) {
      s.accept(Reply{250, {2, 0, 0}, "ok"});
    } else if (std::holds_alternative<event::Close>(ev)) {
      break;
    }
  }
  if (output > 64 * (size + 1) + 4096) __builtin_trap();
  return 0;
}
