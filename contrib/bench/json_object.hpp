// A flat-or-nested JSON object written field by field, for the one-line reports of the
// benchmark tools (RFC 8259 string escaping; numbers with three decimals).
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace truefrom::bench {

class JsonObject {
 public:
  JsonObject& add_int(std::string_view key, std::int64_t value);
  JsonObject& add_number(std::string_view key, double value);
  JsonObject& add_string(std::string_view key, std::string_view value);
  /// null when absent
  JsonObject& add_optional_string(std::string_view key, const std::optional<std::string>& value);
  JsonObject& add_bool(std::string_view key, bool value);
  JsonObject& add_null(std::string_view key);
  JsonObject& add_object(std::string_view key, const JsonObject& value);

  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(std::string_view name);
  std::string body_;
};

/// `text` as a JSON string literal, quotes included.
std::string json_quote(std::string_view text);

}  // namespace truefrom::bench
