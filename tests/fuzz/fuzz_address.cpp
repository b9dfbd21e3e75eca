// libFuzzer target: RFC 5321 path and MAIL/RCPT argument parsing. Property: a parsed
// mailbox survives to_string() -> parse_mailbox() unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "submission/core/command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace truefrom::smtp;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ArgumentError err;
  if (auto m = parse_mail_argument(input, &err); m && m->sender) {
    auto again = parse_mailbox(m->sender->to_string());
    if (!again || !(*again == *m->sender)) __builtin_trap();
  }
  (void)parse_rcpt_argument(input, &err);
  (void)base64_decode(input);
  return 0;
}
