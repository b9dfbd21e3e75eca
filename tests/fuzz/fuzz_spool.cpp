// libFuzzer target: the queue's spool file head, segment and delivery-state parsers (what a
// restart reads back from disk). Properties: a decoded head re-encodes to an equal envelope;
// a decoded state survives encode -> decode unchanged; the records found in a segment,
// encoded again, give back exactly the part of the file they were read from.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "submission/queue/spool_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace truefrom::queue;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t offset = 0;
  std::string error;
  if (auto head = decode_head(input, offset, error)) {
    if (offset > input.size() || head->size != input.size() - offset) __builtin_trap();
    // Re-encoding may normalise key order; it must decode to the same envelope.
    const std::string again = encode_head(*head) + std::string(input.substr(offset));
    std::size_t offset2 = 0;
    auto head2 = decode_head(again, offset2, error);
    if (!head2 || head2->recipients != head->recipients || head2->mail_from != head->mail_from ||
        head2->id != head->id || head2->size != head->size) {
      __builtin_trap();
    }
  }
  std::size_t end = 0;
  if (auto records = parse_segment(input, end)) {
    if (end > input.size()) __builtin_trap();
    std::string again(input.substr(0, kSegmentMagic.size()));
    for (const auto& r : *records) {
      if (r.offset != again.size()) __builtin_trap();
      again += encode_record(r.payload, r.live, r.header == kRecordHeaderV1);
    }
    if (again != input.substr(0, end)) __builtin_trap();
  }
  if (auto state = decode_state(input, error)) {
    auto back = decode_state(encode_state(*state), error);
    if (!back || back->attempts != state->attempts || back->finished != state->finished ||
        back->next_attempt != state->next_attempt) {
      __builtin_trap();
    }
  }
  return 0;
}
