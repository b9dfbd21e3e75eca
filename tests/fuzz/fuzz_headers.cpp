// libFuzzer target: the header section splitter, the RFC 5322 address-list parser, the
// RFC 2047 decoder and the address-like string finder, on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "submission/core/address_list.hpp"
#include "submission/core/header_fields.hpp"
#include "submission/core/header_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (const auto section = truefrom::smtp::parse_header_section(in)) {
    for (const auto& f : section->fields) {
      if (const auto list = truefrom::smtp::parse_address_list(f.value)) {
        for (const auto& m : list->mailboxes) {
          (void)m.address.to_string();
          (void)truefrom::smtp::address_like_strings(m.display_name);
        }
      }
    }
  }
  (void)truefrom::smtp::parse_address_list(in);
  if (const auto text = truefrom::smtp::decode_encoded_words(in)) {
    (void)truefrom::smtp::address_like_strings(*text);
  }
  return 0;
}
