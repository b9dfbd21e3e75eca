// libFuzzer target: SRS address parsing (what the reverse service reads from the network).
// Properties: reverse() never crashes on any input; an address forward() made reverses to
// the input it was made from.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "signer/srs/srs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace truefrom::signer::srs;
  static const Srs srs(SrsOptions{"srs.example.net", {"fuzz-secret", "old-secret"}, 4, 21});
  constexpr std::int64_t kNow = 1790000000;
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string why, error;
  (void)srs.reverse(input, kNow, why);
  if (const auto fwd = srs.forward(input, kNow, error)) {
    if (*fwd != input) {  // unchanged only when already in the SRS domain
      const auto back = srs.reverse(*fwd, kNow, why);
      const auto at = input.rfind('@');
      const std::string local = input.substr(0, at);
      // SRS0 reverses to the input; SRS1 (input was SRS0/SRS1) to an SRS0 address.
      if (!back) __builtin_trap();
      if (!is_srs_local_part(local) && *back != input) __builtin_trap();
    }
  }
  return 0;
}
