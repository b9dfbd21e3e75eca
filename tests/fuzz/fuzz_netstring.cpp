// libFuzzer target: the netstring reader of the socketmap service. Properties: it never
// yields a string longer than its limit, and what it yields re-encodes to the bytes it used.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "submission/core/netstring.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace truefrom::smtp;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  NetstringReader r(1000);
  // Fed in two pieces, split where the first byte says.
  const std::size_t split = size ? data[0] % (size + 1) : 0;
  r.feed(input.substr(0, split));
  std::string out, error, consumed;
  for (int round = 0; round < 2; ++round) {
    for (;;) {
      const auto res = r.next(out, error);
      if (res != NetstringReader::Result::kDone) break;
      if (out.size() > 1000) __builtin_trap();
      consumed += netstring(out);
    }
    if (round == 0) r.feed(input.substr(split));
  }
  if (input.substr(0, consumed.size()) != consumed) __builtin_trap();
  return 0;
}
